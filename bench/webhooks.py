"""Webhooks through the served local stack in this process (``tests/webhooks/stack.py``):
delivery throughput from the table through the stream, the fan-out function, the webhook
queue and the webhook function to a receiver on 127.0.0.1, with a reference measured
beside it in the same run (a bare loop of signed POSTs of the same bodies to the same
receiver, so the ratio stays meaningful on a noisy machine); the latency from a task's
end (its ``task.succeeded`` event's ``at``) to its webhook receiving it; and the load
scenario of ``tests/webhooks/load.py`` at full size (1,000 events to 10 receivers, one
always failing), whose properties must hold. Each part starts from a fresh stack (and
each throughput round too): the table's size is part of what a delivery costs locally.
"""

from __future__ import annotations

import os
import statistics
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from loopline import ids  # noqa: E402

from tests.support.webhook_receiver import WebhookReceiver  # noqa: E402
from tests.webhooks.load import run_load  # noqa: E402
from tests.webhooks.stack import served  # noqa: E402

ROUNDS = 3
#: Events per throughput round.
EVENTS = 100
LATENCY_TASKS = 30
LOAD_EVENTS = 1000
LOAD_RECEIVERS = 10
#: The load run ends this process when it holds more memory than this (MB).
MAX_RSS_MB = 4000


def _rss_mb() -> float:
    """This process's resident memory in MB (Linux), 0 when unknown."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _reference(url: str, bodies: list[bytes], secret: str) -> float:
    """Events per second of a bare loop POSTing ``bodies`` to ``url``, each signed per
    Standard Webhooks as a delivery is, over one kept-alive connection."""
    from standardwebhooks import Webhook

    hook = Webhook(secret)
    with httpx.Client(timeout=15) as client:
        t0 = time.perf_counter()
        for n, body in enumerate(bodies):
            now = datetime.now(UTC)
            msg_id = f"ref_{n}"
            text = body.decode()
            r = client.post(
                url,
                content=body,
                headers={
                    "content-type": "application/json",
                    "webhook-id": msg_id,
                    "webhook-timestamp": str(int(now.timestamp())),
                    "webhook-signature": hook.sign(msg_id, now, text),
                },
            )
            r.raise_for_status()
        return len(bodies) / (time.perf_counter() - t0)


def bench_throughput() -> None:
    print()
    print(
        f"Webhook delivery throughput: {EVENTS} events appended to the table → 1 receiver, "
        f"{ROUNDS} rounds on fresh stacks; ref = the same bodies, signed, POSTed in a loop"
    )
    pipeline: list[float] = []
    reference: list[float] = []
    for _ in range(ROUNDS):
        with served("1,1,1,1") as stack, WebhookReceiver() as receiver:
            result = run_load(
                stack, events=EVENTS, receivers=1, failing=0, tasks=4, timeout=600, hooks=[receiver]
            )
            if result.problems:
                raise SystemExit("webhook throughput round: " + "; ".join(result.problems[:5]))
            pipeline.append(result.events_per_second)
            bodies = [r.body for r in receiver.received("task.succeeded")[:EVENTS]]
            reference.append(_reference(receiver.url, bodies, receiver.secrets[0]))
    ratios = [p / r for p, r in zip(pipeline, reference, strict=True)]
    print(f"{'path':<34} {'median ev/s':>11} {'min-max':>15} {'/ref':>7}")
    print(
        f"{'signed POST loop (ref)':<34} {statistics.median(reference):>11.0f} "
        f"{min(reference):>7.0f}-{max(reference):<7.0f} {1:>7.3f}"
    )
    print(
        f"{'table → stream → queue → receiver':<34} {statistics.median(pipeline):>11.1f} "
        f"{min(pipeline):>7.1f}-{max(pipeline):<7.1f} {statistics.median(ratios):>7.3f}"
    )


def bench_latency() -> None:
    print()
    print(
        f"Webhook latency: task end (task.succeeded's at) → its webhook receives it, "
        f"{LATENCY_TASKS} tasks one after another"
    )
    latencies: list[float] = []
    with served("1,1,1,1") as stack, WebhookReceiver() as receiver:
        for n in range(LATENCY_TASKS):
            task_id = stack.run(webhook=receiver.url, n=n)
            [hit] = receiver.wait_for(lambda r, t=task_id: r.received("task.succeeded", task=t))
            ended = ids.parse_time(hit.json["timestamp"]).timestamp()
            latencies.append(hit.at - ended)
    print(f"{'median ms':>9} {'p95 ms':>7} {'min ms':>7} {'max ms':>7}")
    print(
        f"{statistics.median(latencies) * 1000:>9.0f} {_pct(latencies, 0.95) * 1000:>7.0f} "
        f"{min(latencies) * 1000:>7.0f} {max(latencies) * 1000:>7.0f}"
    )


def _memory_watchdog(limit_mb: float, stop: threading.Event) -> None:
    """End this process (exit status 3) when it holds more than ``limit_mb``: under this
    load the local stack's memory can grow without bound, and the machine is shared."""
    while not stop.wait(0.25):
        rss = _rss_mb()
        if rss > limit_mb:
            print(
                f"  stopped: this process holds {rss:.0f} MB (limit {limit_mb:.0f} MB); the "
                "webhook load properties were not checked",
                flush=True,
            )
            os._exit(3)


def bench_load() -> None:
    print()
    print(
        f"Webhook load: {LOAD_EVENTS} events to {LOAD_RECEIVERS} receivers, one always "
        "answering 500 (retries 1 s apart)",
        flush=True,
    )
    started = time.monotonic()
    shown = [started]

    def watch(arrived: int, expected: int) -> str | None:
        now = time.monotonic()
        if now - shown[0] >= 30:
            shown[0] = now
            print(
                f"  {now - started:>5.0f} s: {arrived}/{expected} arrived, {_rss_mb():.0f} MB held",
                flush=True,
            )
        return None

    done = threading.Event()
    threading.Thread(target=_memory_watchdog, args=(MAX_RSS_MB, done), daemon=True).start()
    try:
        with served("1,1,1,1") as stack:
            result = run_load(
                stack,
                events=LOAD_EVENTS,
                receivers=LOAD_RECEIVERS,
                failing=1,
                tasks=4,
                timeout=3600,
                watch=watch,
            )
    finally:
        done.set()
    print(
        f"{'seconds':>8} {'events/s':>9} {'deliveries/s':>12} {'requests':>9} {'logged':>7}  holds"
    )
    verdict = "yes" if not result.problems else f"NO ({len(result.problems)} problems)"
    print(
        f"{result.seconds:>8.1f} {result.events_per_second:>9.1f} "
        f"{result.deliveries_per_second:>12.1f} {result.requests:>9} {result.logged:>7}  {verdict}"
    )
    if result.problems:
        for problem in result.problems[:20]:
            print("  " + problem)
        raise SystemExit("webhook load: the properties do not hold")


def bench_webhooks() -> None:
    bench_throughput()
    bench_latency()
    bench_load()


if __name__ == "__main__":
    bench_webhooks()
