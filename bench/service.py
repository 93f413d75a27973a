"""The task service through ``loopline serve``'s mechanism (in this process): request
latency with 20 concurrent clients, the AWS calls each request makes, and the state
transitions of each example run as a task (with tracking) and as a plain run (without).

Latencies are shown with a reference measured beside them in the same run: the served
OpenAPI document (``GET /v1/openapi.json``: the same HTTP server, API Gateway emulation and
API function, but no authorizer and no table), so a ratio stays meaningful on a noisy
machine.
"""

from __future__ import annotations

import concurrent.futures
import statistics
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
CLIENTS = 20
POSTS = 200
GETS = 400
KEY = "llk_" + "bench".ljust(43, "b")
FLOW = """\
name: bench
version: 1.0.0
inputs:
  n: {type: integer, required: true}
steps:
  - id: first
    tool: render
    args: {template: "task {{ inputs.n }}"}
  - id: last
    tool: render
    args: {template: "{{ steps.first.output }} done"}
"""


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class _Calls:
    """AWS calls made by the threads that serve HTTP requests (the authorizer and the API
    function run there), by service."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()

    def __call__(self, model: Any, **_: Any) -> None:
        if "process_request_thread" not in threading.current_thread().name:
            return
        with self.lock:
            self.counts[model.service_model.service_name] += 1

    def take(self) -> Counter[str]:
        with self.lock:
            taken, self.counts = self.counts, Counter()
        return taken


def _timed(client: httpx.Client, method: str, path: str, **kwargs: Any) -> float:
    t0 = time.perf_counter()
    r = client.request(method, path, **kwargs)
    elapsed = time.perf_counter() - t0
    if r.status_code >= 400:
        raise SystemExit(f"{method} {path}: {r.status_code} {r.text}")
    return elapsed


def _row(name: str, times: list[float], ref: float, calls: Counter[str], n: int) -> None:
    p50, p99 = statistics.median(times), _pct(times, 0.99)
    ddb = calls.get("dynamodb", 0) / n
    sfn = calls.get("stepfunctions", 0) / n
    print(
        f"{name:<24} {p50 * 1000:>7.1f} {p99 * 1000:>7.1f} {p50 / ref:>7.2f} "
        f"{_pct(times, 0.1) * 1000:>5.1f}-{_pct(times, 0.9) * 1000:<6.1f} {ddb:>6.2f} {sfn:>6.2f}"
    )


def bench_requests() -> None:
    import boto3
    from loopline import aws
    from loopline.local.serve import LocalService

    print()
    print(f"Task API through the local stack, {CLIENTS} concurrent clients")
    with tempfile.TemporaryDirectory() as tmp:
        keys = Path(tmp, "keys.yaml")
        keys.write_text(f"keys:\n  - {{key: {KEY}, tenant: bench}}\n", encoding="utf-8")
        service = LocalService(ROOT / "template.yaml", port=0, keys_file=keys).start()
        try:
            calls = _Calls()
            boto3.setup_default_session()
            assert boto3.DEFAULT_SESSION is not None
            boto3.DEFAULT_SESSION.events.register("before-call", calls)
            aws.reset()  # the functions' clients come from the session counted
            headers = {"Authorization": f"Bearer {KEY}"}
            with httpx.Client(base_url=service.url, headers=headers, timeout=60) as c:
                r = c.put(
                    "/v1/workflows/bench", content=FLOW, headers={"Content-Type": "text/yaml"}
                )
                assert r.status_code in (200, 201), r.text
            local = threading.local()

            def client() -> httpx.Client:
                if not hasattr(local, "c"):
                    local.c = httpx.Client(base_url=service.url, headers=headers, timeout=60)
                return local.c  # type: ignore[no-any-return]

            with concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
                ref_times = list(
                    pool.map(lambda _: _timed(client(), "GET", "/v1/openapi.json"), range(GETS))
                )
                calls.take()
                ids: list[str] = []

                def post(n: int) -> float:
                    t0 = time.perf_counter()
                    r = client().post("/v1/tasks", json={"workflow": "bench", "inputs": {"n": n}})
                    if r.status_code != 202:
                        raise SystemExit(f"POST /v1/tasks: {r.status_code} {r.text}")
                    ids.append(r.json()["id"])
                    return time.perf_counter() - t0

                post_times = list(pool.map(post, range(POSTS)))
                post_calls = calls.take()
                get_times = list(
                    pool.map(
                        lambda i: _timed(client(), "GET", f"/v1/tasks/{ids[i % len(ids)]}"),
                        range(GETS),
                    )
                )
                get_calls = calls.take()
            ref = statistics.median(ref_times)
            print(
                f"{'request':<24} {'p50 ms':>7} {'p99 ms':>7} {'p50/ref':>7} {'p10-p90':>12} "
                f"{'DDB/req':>6} {'SFN/req':>6}"
            )
            _row("GET /v1/openapi.json (ref)", ref_times, ref, Counter(), GETS)
            _row("POST /v1/tasks", post_times, ref, post_calls, POSTS)
            _row("GET /v1/tasks/{id}", get_times, ref, get_calls, GETS)
        finally:
            service.stop()


def bench_tracking_transitions() -> None:
    import sys

    sys.path.insert(0, str(ROOT))
    from tests.examples.cases import SAMPLES, health_server
    from tests.tracking.driver import run_json, run_task

    print()
    print("State transitions per example: a plain run, and the same run as a tracked task")
    print(f"{'workflow':<22} {'run':>5} {'task':>5}  equal")
    with health_server() as url:
        for name in sorted(SAMPLES):
            source = (ROOT / "workflows" / f"{name}.yaml").read_text()
            script = ROOT / "workflows" / "scripts" / f"{name}.yaml"
            inputs, decisions = SAMPLES[name]
            if name == "release_gate":
                inputs = {**inputs, "health_url": url}
            llm = script if script.exists() else None
            plain = run_json(source, inputs, decisions, llm_script=llm)
            task, _, _ = run_task(source, inputs, decisions, llm_script=llm)
            same = "yes" if plain.transitions == task["transitions"] else "NO"
            print(f"{name:<22} {plain.transitions:>5} {task['transitions']:>5}  {same}")


if __name__ == "__main__":
    bench_requests()
    bench_tracking_transitions()
