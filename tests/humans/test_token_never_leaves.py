"""A Step Functions task token never leaves the server: not in an API answer, a page, an
email, a Slack message, an event, a log line or anything the process printed.

The service runs in this process (``LocalService``, what ``loopline serve`` runs) so the
test can read the tokens from the table afterwards and everything the process wrote (log
records at every level, stdout and stderr) while the human tasks were opened, shown,
escalated and decided through the API, links and Slack. Every log record counts, at every
level, except the DEBUG wire logs of the HTTP and AWS client libraries (``WIRE_LOGGERS``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from loopline import store
from loopline.local.serve import LocalService
from loopline.runtime.scripted import ScriptedModel
from loopline.service import humans

from tests.e2e.conftest import LINK, ROOT, SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET, WORKFLOWS
from tests.support.slack_server import SlackServer

pytestmark = pytest.mark.moto

#: Third-party wire logs: at DEBUG they print every request whole (a token sent to Step
#: Functions, a key, a password), which is why they are off unless someone turns them on.
#: Their records below INFO are the only ones not scanned.
WIRE_LOGGERS = ("botocore", "boto3", "urllib3", "moto", "httpx", "httpcore", "werkzeug")


@pytest.fixture
def served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[LocalService, SlackServer, Path]]:
    slack = SlackServer(token=SLACK_BOT_TOKEN).__enter__()
    monkeypatch.setenv("LOOPLINE_SLACK_API_URL", slack.url)
    monkeypatch.setenv("LOOPLINE_SLACK_BOT_TOKEN", SLACK_BOT_TOKEN)
    monkeypatch.setenv("LOOPLINE_SLACK_SIGNING_SECRET", SLACK_SIGNING_SECRET)
    outbox = tmp_path / "outbox"
    model = ScriptedModel.from_data({"responses": [{"answer": "a short draft"}]})
    service = LocalService(ROOT / "template.yaml", port=0, outbox=outbox, model=model)
    service.start()
    try:
        yield service, slack, outbox
    finally:
        service.stop()
        slack.__exit__(None, None, None)


def _wait(check: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_no_answer_page_message_event_or_log_line_holds_a_task_token(
    served: tuple[LocalService, SlackServer, Path],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    service, slack, outbox = served
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []  # every body the clients received
    key = service.keys[0].key
    with httpx.Client(
        base_url=service.url, headers={"Authorization": f"Bearer {key}"}, timeout=60
    ) as c:

        def call(method: str, path: str, **kw: Any) -> httpx.Response:
            r = c.request(method, path, **kw)
            seen.append(r.text)
            seen.append(json.dumps(dict(r.headers)))
            return r

        for name in ("signoff", "intake", "escalate"):
            body = (WORKFLOWS / f"{name}.yaml").read_bytes()
            r = call("PUT", f"/v1/workflows/{name}", content=body,
                     headers={"Content-Type": "application/yaml"})  # fmt: skip
            assert r.status_code in (200, 201), r.text
        ids = {}
        for name, inputs in (("signoff", {"topic": "t"}), ("intake", {"topic": "i"}),
                             ("escalate", {})):  # fmt: skip
            r = call("POST", "/v1/tasks", json={"workflow": name, "inputs": inputs})
            assert r.status_code == 202, r.text
            ids[name] = r.json()["id"]

        def waiting(task_id: str) -> list[dict[str, Any]]:
            return list(call("GET", f"/v1/tasks/{task_id}").json().get("waiting") or [])

        [signoff] = _wait(lambda: waiting(ids["signoff"]))
        [intake] = _wait(lambda: waiting(ids["intake"]))
        call("GET", f"/v1/human-tasks/{signoff['human_task']}")
        call("GET", "/v1/human-tasks")
        # The intake through its link (a page, an invalid then a valid post).
        mail = outbox / "mail"
        _wait(lambda: len(list(mail.glob("*.eml"))) >= 2)
        links = [
            m for p in mail.glob("*.eml") for m in LINK.findall(p.read_text("utf-8", "replace"))
        ]
        for link in links:
            page = httpx.get(link, timeout=30)
            seen.append(page.text)
        # The escalation happens (2 s), then everything is decided.
        _wait(lambda: any("boss@example.com" in p.read_text("utf-8", "replace")
                          for p in mail.glob("*.eml")), timeout=60)  # fmt: skip
        call("POST", f"/v1/human-tasks/{signoff['human_task']}/approve", json={"comment": "ok"})
        call("POST", f"/v1/human-tasks/{signoff['human_task']}/approve", json={})  # 409
        call("POST", f"/v1/human-tasks/{intake['human_task']}/complete", json={"data": {}})  # 422
        call("POST", f"/v1/human-tasks/{intake['human_task']}/complete",
             json={"data": {"name": "Ada", "count": 2}})  # fmt: skip
        for task_id in ids.values():
            call("GET", f"/v1/tasks/{task_id}/events", params={"limit": 100})
        service.drain()
        # Every token the human steps were given, from the table.
        records = [r for t in ids.values() for r in store.list_task_human_tasks(t)]
        tokens = {str(r["task_token"]) for r in records}
        events = [e for t in ids.values() for e in store.list_events(t, limit=1000)]
    # signoff, intake, and escalate's (its escalation's token replaced the first one)
    assert len(tokens) == 3 and any(r["escalated"] for r in records)
    emails = [p.read_text("utf-8", "replace") for p in sorted(mail.glob("*.eml"))]
    slack_messages = [json.dumps(r.body) + json.dumps(r.headers) for r in slack.requests]
    printed = capfd.readouterr()
    logs = [
        r.getMessage() + json.dumps(getattr(r, "__dict__", {}), default=str)
        for r in caplog.records
        if not (r.levelno < logging.INFO and r.name.startswith(WIRE_LOGGERS))
    ]
    haystacks = {
        "API answers and pages": seen,
        "emails": emails,
        "Slack messages": slack_messages,
        "events": [json.dumps(e) for e in events],
        "views": [json.dumps(humans.view(r)) for r in records],
        "log records": logs,
        "stdout and stderr": [printed.out, printed.err],
    }
    assert emails and slack_messages and seen and logs
    for where, texts in haystacks.items():
        for token in tokens:
            for text in texts:
                assert token not in text, f"a task token in {where}"
