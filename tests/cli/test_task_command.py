"""``loopline task start|show|events|cancel`` as a user runs them, against a task service
on 127.0.0.1 that speaks the contract's wire format (``/work``-independent: a small
in-memory implementation of the routes the client uses, with real state: tasks, events
with gapless ``seq``, idempotency keys, long-polled ``wait``), recording each request so
the tests check what the client sends."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.conftest import ROOT

KEY = "llk_test-key-of-tenant-acme"
ENDED = {"SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT"}
END_EVENTS = {"task.succeeded": "SUCCEEDED", "task.failed": "FAILED", "task.cancelled": "CANCELLED"}


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class Service:
    """The tenant's tasks: what the API would hold in its table."""

    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    idempotency: dict[str, tuple[str, str]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def append(self, task_id: str, type: str, step: str | None = None, **data: Any) -> None:
        with self.changed:
            events = self.events[task_id]
            events.append(
                {
                    "seq": len(events) + 1,
                    "at": f"2026-11-23T10:15:{len(events):02d}Z",
                    "type": type,
                    "step": step,
                    "data": data,
                }
            )
            task = self.tasks[task_id]
            if type in END_EVENTS:
                task["status"] = END_EVENTS[type]
                task["finished_at"] = events[-1]["at"]
            if step and type == "step.succeeded":
                task["steps"][step] = {"status": "SUCCEEDED", "starts": 1}
            self.changed.notify_all()

    def requests_to(self, suffix: str) -> list[Request]:
        return [r for r in self.requests if r.path.endswith(suffix)]


def problem(
    status: int, title: str, detail: str, errors: list[dict[str, Any]] | None = None
) -> tuple[int, dict[str, Any], dict[str, str]]:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return status, {**body, "errors": errors or []}, {}


def _view(task: dict[str, Any]) -> dict[str, Any]:
    return {**task, "links": {"self": f"/v1/tasks/{task['id']}"}}


class Handler(BaseHTTPRequestHandler):
    service: Service

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.service.requests.append(Request(method, url.path, query, headers, body))
        if url.path == "/v1/tasks/tsk_proxy_failure":
            return self._send(502, b"<html>Bad Gateway</html>", "text/html", {})
        if headers.get("authorization") != f"Bearer {KEY}":
            status, doc, _ = problem(401, "Unauthorized", "Unauthorized")
            return self._json(status, doc, {"WWW-Authenticate": "Bearer"})
        status, doc, extra = self._route(method, url.path.split("/")[1:], query, headers, body)
        self._json(status, doc, extra)

    def _route(
        self,
        method: str,
        parts: list[str],
        query: dict[str, str],
        headers: dict[str, str],
        body: Any,
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        s = self.service
        if method == "POST" and parts == ["v1", "tasks"]:
            if headers.get("content-type") != "application/json":
                return problem(415, "Unsupported Media Type", "send JSON")
            return self._submit(body, headers.get("idempotency-key"))
        if len(parts) < 3 or parts[:2] != ["v1", "tasks"] or parts[2] not in s.tasks:
            return problem(404, "Not Found", "no such task")
        task = s.tasks[parts[2]]
        if method == "GET" and len(parts) == 3:
            return 200, _view(task), {}
        if method == "GET" and parts[3:] == ["events"]:
            after, wait = int(query.get("after", 0)), int(query.get("wait", 0))
            if wait > 20:
                return problem(
                    422,
                    "Unprocessable Content",
                    "invalid query",
                    [{"field": "wait", "rule": "maximum", "message": "at most 20"}],
                )
            with s.changed:
                s.changed.wait_for(lambda: len(s.events[task["id"]]) > after, timeout=wait)
                items = s.events[task["id"]][after:]
            return 200, {"items": items, "next_cursor": None}, {}
        if method == "POST" and parts[3:] == ["cancel"]:
            if task["status"] in ENDED:
                return problem(409, "Conflict", f"the task has already ended: {task['status']}")
            s.append(task["id"], "task.cancelled", status="CANCELLED")
            return 200, _view(task), {}
        return problem(404, "Not Found", "no such route")

    def _submit(
        self, body: dict[str, Any], key: str | None
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        s = self.service
        body_hash = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        if key and key in s.idempotency:
            seen_hash, task_id = s.idempotency[key]
            if seen_hash != body_hash:
                return problem(409, "Conflict", "the key was used with another request")
            return 200, _view(s.tasks[task_id]), {}
        if body.get("workflow") != "ticket-triage":
            return problem(404, "Not Found", f"no workflow {body.get('workflow')}")
        inputs = body.get("inputs") or {}
        errors = []
        if not isinstance(inputs.get("ticket"), str):
            errors.append({"field": "inputs.ticket", "rule": "required", "message": "is required"})
        if "priority" in inputs and not isinstance(inputs["priority"], int):
            errors.append(
                {
                    "field": "inputs.priority",
                    "rule": "type",
                    "message": "must be an integer",
                    "value": inputs["priority"],
                }
            )
        if errors:
            return problem(422, "Unprocessable Content", "invalid inputs", errors)
        task_id = f"tsk_{len(s.tasks) + 1:04d}"
        s.tasks[task_id] = {
            "id": task_id,
            "workflow": "ticket-triage",
            "version": "1.0.0",
            "status": "RUNNING",
            "run": 1,
            "inputs": inputs,
            "labels": body.get("labels") or {},
            "output": None,
            "error": None,
            "cause": None,
            "created_at": "2026-11-23T10:15:00Z",
            "started_at": None,
            "finished_at": None,
            "steps": {},
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        s.events[task_id] = []
        s.append(task_id, "task.started")
        s.tasks[task_id]["started_at"] = "2026-11-23T10:15:00Z"
        if key:
            s.idempotency[key] = (body_hash, task_id)
        return 202, _view(s.tasks[task_id]), {"Location": f"/v1/tasks/{task_id}"}

    def _json(self, status: int, doc: dict[str, Any], headers: dict[str, str]) -> None:
        kind = "application/problem+json" if status >= 400 else "application/json"
        self._send(status, json.dumps(doc).encode(), kind, headers)

    def _send(self, status: int, data: bytes, kind: str, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def service() -> Iterator[tuple[Service, str]]:
    state = Service()
    handler = type("BoundHandler", (Handler,), {"service": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPLINE_API_")}
    return {**env, **extra}


def task(
    *args: str, url: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    auth = ["--api", url, "--key", KEY] if url else []
    return subprocess.run(
        [sys.executable, "-m", "loopline.cli", "task", *args, *auth],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env or _env(),
        timeout=60,
    )


def _start(url: str, *extra: str) -> str:
    proc = task("start", "ticket-triage", "--input", "ticket=charged twice", *extra, url=url)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


# --------------------------------------------------------------------------- start


def test_start_sends_the_key_the_idempotency_key_and_the_inputs_as_json(
    service: tuple[Service, str],
) -> None:
    state, url = service
    proc = task(
        "start",
        "ticket-triage",
        "--inputs",
        '{"ticket": "I was charged twice", "priority": 1}',
        "--input",
        "priority=3",
        "--input",
        "note=two words",
        "--label",
        "team=billing",
        "--webhook",
        "https://hooks.example.com/loopline",
        "--idempotency-key",
        "order-42",
        url=url,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "tsk_0001\n"
    assert "ticket-triage: RUNNING" in proc.stderr
    [request] = state.requests
    assert (request.method, request.path) == ("POST", "/v1/tasks")
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["idempotency-key"] == "order-42"
    assert request.headers["content-type"] == "application/json"
    assert request.body == {
        "workflow": "ticket-triage",
        "inputs": {"ticket": "I was charged twice", "priority": 3, "note": "two words"},
        "labels": {"team": "billing"},
        "webhook": "https://hooks.example.com/loopline",
    }


def test_start_reads_the_inputs_from_a_file_and_prints_the_view_as_json(
    service: tuple[Service, str], tmp_path: Any
) -> None:
    state, url = service
    (tmp_path / "inputs.json").write_text('{"ticket": "from a file"}', encoding="utf-8")
    proc = task(
        "start", "ticket-triage", "--inputs", f"@{tmp_path / 'inputs.json'}", "--json", url=url
    )
    assert proc.returncode == 0, proc.stderr
    view = json.loads(proc.stdout)
    assert view["id"] == "tsk_0001"
    assert view["inputs"] == {"ticket": "from a file"}
    assert "idempotency-key" not in state.requests[0].headers


def test_the_same_idempotency_key_gives_the_same_task_and_another_body_a_conflict(
    service: tuple[Service, str],
) -> None:
    state, url = service
    first = _start(url, "--idempotency-key", "k1")
    assert _start(url, "--idempotency-key", "k1") == first
    assert len(state.tasks) == 1
    proc = task(
        "start", "ticket-triage", "--input", "ticket=other", "--idempotency-key", "k1", url=url
    )
    assert proc.returncode == 2
    assert proc.stderr == "error: 409 Conflict: the key was used with another request\n"


def test_invalid_inputs_print_every_violation_and_exit_2(service: tuple[Service, str]) -> None:
    state, url = service
    proc = task("start", "ticket-triage", "--input", "priority=high", url=url)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "error: 422 Unprocessable Content: inputs.ticket: is required",
        "error: 422 Unprocessable Content: inputs.priority: must be an integer",
    ]
    assert proc.stdout == ""
    assert state.tasks == {}


def test_an_unknown_workflow_is_a_404_problem(service: tuple[Service, str]) -> None:
    _, url = service
    proc = task("start", "nope", url=url)
    assert (proc.returncode, proc.stderr) == (2, "error: 404 Not Found: no workflow nope\n")


def test_a_wrong_key_is_a_401_problem(service: tuple[Service, str]) -> None:
    _, url = service
    proc = task("show", "tsk_0001", env=_env(LOOPLINE_API_URL=url, LOOPLINE_API_KEY="llk_wrong"))
    assert (proc.returncode, proc.stderr) == (2, "error: 401 Unauthorized: Unauthorized\n")


def test_the_url_and_key_come_from_the_environment(service: tuple[Service, str]) -> None:
    state, url = service
    task_id = _start(url)
    proc = task("show", task_id, env=_env(LOOPLINE_API_URL=url + "/", LOOPLINE_API_KEY=KEY))
    assert proc.returncode == 0, proc.stderr
    assert state.requests[-1].path == f"/v1/tasks/{task_id}"


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        ([], {}, "error: no API URL: pass --api URL or set LOOPLINE_API_URL\n"),
        (
            ["--api", "http://127.0.0.1:1"],
            {},
            "error: no API key: pass --key KEY or set LOOPLINE_API_KEY\n",
        ),
        (
            ["--api", "ftp://example.com", "--key", "k"],
            {},
            'error: --api must be an http:// or https:// URL with a host, got "ftp://example.com"\n',
        ),
        (
            ["--key", "k", "--input", "novalue"],
            {"LOOPLINE_API_URL": "http://127.0.0.1:1"},
            "error: --input 'novalue': expected NAME=VALUE\n",
        ),
    ],
)
def test_missing_or_wrong_options_are_usage_errors(
    args: list[str], env: dict[str, str], message: str
) -> None:
    proc = task("start", "ticket-triage", *args, env=_env(**env))
    assert (proc.returncode, proc.stderr) == (2, message)


# --------------------------------------------------------------------------- show


def test_show_prints_the_task_and_its_view_as_json(service: tuple[Service, str]) -> None:
    state, url = service
    task_id = _start(url, "--label", "team=billing")
    state.append(task_id, "step.succeeded", "classify", attempt=0)
    state.tasks[task_id]["output"] = {"severity": 2}
    proc = task("show", task_id, url=url)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[:3] == [
        f"id        {task_id}",
        "workflow  ticket-triage 1.0.0",
        "status    RUNNING",
    ]
    assert "labels    team=billing" in lines
    assert "  classify  SUCCEEDED  1 start" in lines
    assert proc.stdout.endswith('output\n{\n  "severity": 2\n}\n')
    as_json = task("show", task_id, "--json", url=url)
    assert json.loads(as_json.stdout) == {
        **state.tasks[task_id],
        "links": {"self": f"/v1/tasks/{task_id}"},
    }


def test_a_task_of_nobody_is_a_404_problem(service: tuple[Service, str]) -> None:
    _, url = service
    proc = task("show", "tsk_9999", url=url)
    assert (proc.returncode, proc.stderr) == (2, "error: 404 Not Found: no such task\n")


def test_an_answer_that_is_not_a_problem_still_reads_as_one_line(
    service: tuple[Service, str],
) -> None:
    _, url = service
    proc = task("show", "tsk_proxy_failure", url=url)
    assert (proc.returncode, proc.stderr) == (
        1,
        "error: 502 Bad Gateway: <html>Bad Gateway</html>\n",
    )


def test_an_unreachable_service_is_one_readable_line() -> None:
    proc = task("show", "tsk_0001", url="http://127.0.0.1:1")
    assert proc.returncode == 1
    assert proc.stderr == "error: cannot reach http://127.0.0.1:1: connection refused\n"


# --------------------------------------------------------------------------- events


def _wait_for(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_events_follow_with_long_polls_until_the_task_ends(service: tuple[Service, str]) -> None:
    state, url = service
    task_id = _start(url)
    follower = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "loopline.cli",
            "task",
            "events",
            task_id,
            "--api",
            url,
            "--key",
            KEY,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=_env(),
    )
    try:
        # Given the follower holds a long poll after the first event...
        _wait_for(lambda: any(r.query.get("after") == "1" for r in state.requests_to("/events")))
        # ...when the task's steps run and it ends,
        state.append(task_id, "step.started", "classify", attempt=0)
        time.sleep(0.1)
        state.append(
            task_id,
            "step.failed",
            "classify",
            attempt=0,
            error="Loopline.Transient",
            cause="timed out after 60 s",
        )
        state.append(task_id, "step.retried", "classify", attempt=1)
        time.sleep(0.1)
        state.append(task_id, "task.succeeded", status="SUCCEEDED")
        out, err = follower.communicate(timeout=30)
    finally:
        follower.kill()
    # ...then it printed every event once, in order, and stopped by itself.
    assert follower.returncode == 0, err
    assert out.splitlines() == [
        "1  2026-11-23T10:15:00Z  task.started  -",
        "2  2026-11-23T10:15:01Z  step.started  classify  attempt=0",
        '3  2026-11-23T10:15:02Z  step.failed  classify  attempt=0 error=Loopline.Transient cause="timed out after 60 s"',
        "4  2026-11-23T10:15:03Z  step.retried  classify  attempt=1",
        "5  2026-11-23T10:15:04Z  task.succeeded  -  status=SUCCEEDED",
    ]
    polls = state.requests_to("/events")
    # What there is first, then long polls from the last event seen.
    assert polls[0].query == {"after": "0"}
    assert all(r.query["wait"] == "20" for r in polls[1:])
    afters = [int(r.query["after"]) for r in polls]
    assert afters == sorted(afters) and afters[0] == 0 and afters[-1] < 5
    assert all(r.headers["authorization"] == f"Bearer {KEY}" for r in polls)


def test_events_as_json_lines_after_a_sequence_without_following(
    service: tuple[Service, str],
) -> None:
    state, url = service
    task_id = _start(url)
    state.append(task_id, "step.started", "classify", attempt=0)
    proc = task("events", task_id, "--after", "1", "--no-follow", "--json", url=url)
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(line) for line in proc.stdout.splitlines()] == state.events[task_id][1:]
    [poll] = state.requests_to("/events")
    assert poll.query == {"after": "1"}


def test_following_a_task_that_already_ended_stops_at_once(service: tuple[Service, str]) -> None:
    state, url = service
    task_id = _start(url)
    state.append(task_id, "task.failed", status="FAILED", error="Loopline.Failed")
    # Everything after its end: nothing comes; the task's status says it is over.
    started = time.monotonic()
    proc = task("events", task_id, "--after", "2", url=url)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert state.requests[-1].path == f"/v1/tasks/{task_id}/events"
    assert time.monotonic() - started < 10  # no long poll


# --------------------------------------------------------------------------- cancel


def test_cancel_stops_a_task_and_a_second_cancel_is_a_conflict(
    service: tuple[Service, str],
) -> None:
    state, url = service
    task_id = _start(url)
    proc = task("cancel", task_id, url=url)
    assert (proc.returncode, proc.stdout) == (0, f"{task_id} CANCELLED\n")
    assert state.requests[-1].method == "POST"
    assert state.requests[-1].path == f"/v1/tasks/{task_id}/cancel"
    again = task("cancel", task_id, url=url)
    assert again.returncode == 2
    assert again.stderr == "error: 409 Conflict: the task has already ended: CANCELLED\n"
