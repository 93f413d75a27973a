"""People in the loop over real HTTP against ``loopline serve --outbox DIR``: approval
emails and their links, the API's decisions, the inbox, Slack, escalation.

Every message is real: the email is the MIME message SES was asked to send (written by the
local stack to the outbox), the Slack calls reach a Slack Web API server on 127.0.0.1, and
the clicks come back signed as Slack signs them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from tests.e2e.conftest import (
    SLACK_SIGNING_SECRET,
    Service,
    email_text,
    link_of,
    register,
)


def _start(service: Service, workflow: str, inputs: dict[str, Any]) -> str:
    with service.client() as c:
        r = c.post("/v1/tasks", json={"workflow": workflow, "inputs": inputs})
        assert r.status_code == 202, r.text
        return str(r.json()["id"])


def _human_task(service: Service, task_id: str, step: str, timeout: float = 30) -> dict[str, Any]:
    """The open human task of ``step`` once the task waits on it."""
    deadline = time.monotonic() + timeout
    with service.client() as c:
        while time.monotonic() < deadline:
            view = c.get(f"/v1/tasks/{task_id}").json()
            for w in view.get("waiting") or []:
                if w["step"] == step:
                    r = c.get(f"/v1/human-tasks/{w['human_task']}")
                    assert r.status_code == 200, r.text
                    return dict(r.json())
            assert view["status"] not in ("SUCCEEDED", "FAILED", "CANCELLED"), view
            time.sleep(0.1)
    raise AssertionError(f"{task_id} never waited at {step}")


def _events(service: Service, task_id: str) -> list[dict[str, Any]]:
    with service.client() as c:
        return list(c.get(f"/v1/tasks/{task_id}/events", params={"limit": 100}).json()["items"])


@pytest.fixture(scope="module")
def workflows(service: Service) -> None:
    for name in ("signoff", "intake", "escalate"):
        register(service, name)


# --------------------------------------------------------------------------- email links


def test_an_approval_email_link_shows_the_task_then_approves_it_once(
    service: Service, workflows: None
) -> None:
    task_id = _start(service, "signoff", {"topic": "tides"})
    human = _human_task(service, task_id, "review")
    email = service.wait_email("editor@example.com", saying="about tides")
    text, html = email_text(email)
    assert "Sign off the note about tides" in text and "Sign off the note about tides" in html
    link = link_of(email)

    with httpx.Client(timeout=30) as browser:
        page = browser.get(link)
        assert page.status_code == 200 and "tides" in page.text
        assert page.headers["content-type"].startswith("text/html")
        assert "default-src 'none'" in page.headers["content-security-policy"]
        assert page.headers["referrer-policy"] == "no-referrer"
        # Looking changed nothing: the task still waits.
        with service.client() as c:
            assert c.get(f"/v1/tasks/{task_id}").json()["status"] == "WAITING"
            assert c.get(f"/v1/human-tasks/{human['id']}").json()["status"] == "open"

        done = browser.post(link, data={"action": "approve", "comment": "ship it"})
        assert done.status_code == 200, done.text
        assert "approve" in done.text.lower()

        with service.client() as c:
            view = service.wait_done(c, task_id)
        assert view["status"] == "SUCCEEDED"
        assert view["output"] == {"approved_by": "editor@example.com", "comment": "ship it"}

        again = browser.post(link, data={"action": "approve"})
        assert again.status_code == 409
        assert browser.get(link).status_code == 409

    decided = [e for e in _events(service, task_id) if e["type"] == "human.decided"]
    assert len(decided) == 1 and decided[0]["data"]["via"] == "link"


def test_reject_with_rollback_reruns_the_target_and_asks_again_by_a_new_email(
    service: Service, workflows: None
) -> None:
    task_id = _start(service, "signoff", {"topic": "rollback"})
    first = _human_task(service, task_id, "review")
    with service.client("acme-editor") as c:
        r = c.post(
            f"/v1/human-tasks/{first['id']}/reject",
            json={"comment": "redo it", "rollback_to": "draft"},
        )
        assert r.status_code == 200, r.text
        assert r.json()["decision"]["rollback_to"] == "draft"
    # A new wait, a new human task, a new email with a new link.
    second_email = service.wait_email("editor@example.com", count=2, saying="about rollback")
    deadline = time.monotonic() + 30
    second: dict[str, Any] = first
    while second["id"] == first["id"] and time.monotonic() < deadline:
        second = _human_task(service, task_id, "review")
    assert second["id"] != first["id"]
    link = link_of(second_email)
    with httpx.Client(timeout=30) as browser:
        assert browser.post(link, data={"action": "approve"}).status_code == 200
    with service.client() as c:
        view = service.wait_done(c, task_id)
    assert view["status"] == "SUCCEEDED"
    draft_starts = [
        e
        for e in _events(service, task_id)
        if e["type"] == "step.started" and e.get("step") == "draft"
    ]
    assert len(draft_starts) == 2


def test_a_human_task_with_invalid_form_data_keeps_waiting_then_valid_data_completes_it(
    service: Service, workflows: None
) -> None:
    task_id = _start(service, "intake", {"topic": "boats"})
    _human_task(service, task_id, "form")
    link = link_of(service.wait_email("clerk@example.com", saying="boats"))
    with httpx.Client(timeout=30) as browser:
        bad = browser.post(
            link, data={"action": "complete", "field.name": "x", "field.count": "zero"}
        )
        assert bad.status_code == 422
        assert "data.name" in bad.text or "name" in bad.text
        assert "count" in bad.text
        with service.client() as c:
            assert c.get(f"/v1/tasks/{task_id}").json()["status"] == "WAITING"
        good = browser.post(
            link,
            data={
                "action": "complete",
                "field.name": "Ada",
                "field.count": "3",
                "field.urgent": "on",
                "field.level": "high",
            },
        )
        assert good.status_code == 200, good.text
    with service.client() as c:
        view = service.wait_done(c, task_id)
    assert view["status"] == "SUCCEEDED"
    assert view["output"]["form"] == {"name": "Ada", "count": 3, "urgent": True, "level": "high"}


# --------------------------------------------------------------------------- the API


def test_twenty_concurrent_decisions_one_wins_and_the_others_name_it(
    service: Service, workflows: None
) -> None:
    task_id = _start(service, "signoff", {"topic": "race"})
    human = _human_task(service, task_id, "review")

    def decide(i: int) -> httpx.Response:
        action = "approve" if i % 2 else "reject"
        with service.client() as c:
            return c.post(f"/v1/human-tasks/{human['id']}/{action}", json={"comment": f"#{i}"})

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(decide, range(20)))
    codes = sorted(r.status_code for r in answers)
    assert codes == [200] + [409] * 19, [r.text for r in answers if r.status_code >= 500]
    winner = next(r.json() for r in answers if r.status_code == 200)["decision"]
    for r in answers:
        if r.status_code == 409:
            assert winner["action"] in r.json()["detail"] and winner["at"] in r.json()["detail"]
    with service.client() as c:
        view = service.wait_done(c, task_id)
        human_now = c.get(f"/v1/human-tasks/{human['id']}").json()
    assert view["status"] == ("SUCCEEDED" if winner["action"] == "approve" else "FAILED")
    assert human_now["decision"]["delivery"] == "sent"
    events = _events(service, task_id)
    assert [e["type"] for e in events].count("human.decided") == 1
    review_ends = [
        e
        for e in events
        if e.get("step") == "review" and e["type"] in ("step.succeeded", "step.failed")
    ]
    assert len(review_ends) == 1  # Step Functions was told once


def test_only_the_assignee_or_an_admin_decides(service: Service, workflows: None) -> None:
    task_id = _start(service, "signoff", {"topic": "who"})
    human = _human_task(service, task_id, "review")
    with service.client("acme-intern") as c:
        r = c.post(f"/v1/human-tasks/{human['id']}/approve", json={})
        assert r.status_code == 403, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
    with service.client("globex") as c:
        assert c.post(f"/v1/human-tasks/{human['id']}/approve", json={}).status_code == 404
        assert c.get(f"/v1/human-tasks/{human['id']}").status_code == 404
    with service.client("acme-editor") as c:
        r = c.post(f"/v1/human-tasks/{human['id']}/approve", json={"comment": "fine"})
        assert r.status_code == 200, r.text
        assert r.json()["decision"]["by"] == "ed"
    with service.client() as c:
        assert service.wait_done(c, task_id)["output"]["approved_by"] == "ed"


def test_the_inbox_lists_by_role_user_status_and_task(service: Service, workflows: None) -> None:
    task_id = _start(service, "signoff", {"topic": "inbox"})
    human = _human_task(service, task_id, "review")
    with service.client("acme-editor") as c:
        mine = c.get("/v1/human-tasks", params={"task": task_id}).json()["items"]
        assert [h["id"] for h in mine] == [human["id"]]
        by_role = c.get("/v1/human-tasks", params={"role": "editors", "task": task_id}).json()
        assert [h["id"] for h in by_role["items"]] == [human["id"]]
        other = c.get("/v1/human-tasks", params={"role": "lawyers", "task": task_id}).json()
        assert other["items"] == []
    with service.client("acme-intern") as c:
        assert c.get("/v1/human-tasks", params={"task": task_id}).json()["items"] == []
    with service.client() as c:
        c.post(f"/v1/human-tasks/{human['id']}/approve", json={})
        decided = c.get("/v1/human-tasks", params={"status": "decided", "task": task_id}).json()
        assert [h["id"] for h in decided["items"]] == [human["id"]]
        assert c.get("/v1/human-tasks", params={"status": "maybe"}).status_code == 422
        view = c.get(f"/v1/human-tasks/{human['id']}").json()
        assert view["kind"] == "approval" and view["rollback_to"] == ["draft"]
        assert view["context"]["topic"] == "inbox"


# --------------------------------------------------------------------------- Slack


def _signed(
    body: str, timestamp: int | None = None, secret: str = SLACK_SIGNING_SECRET
) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": "application/x-www-form-urlencoded",
    }


def _click(human_id: str, action: str, message: dict[str, Any]) -> str:
    payload = {
        "type": "block_actions",
        "user": {"id": "U123", "username": "pat"},
        "team": {"id": "T1"},
        "channel": {"id": message.get("channel", "C1")},
        "container": {"message_ts": message.get("ts", "1.0")},
        "actions": [
            {"action_id": f"loopline_{action}", "value": f"{human_id}:{action}", "type": "button"}
        ],
    }
    return urlencode({"payload": json.dumps(payload)})


def test_slack_gets_buttons_and_a_signed_click_decides_while_forgeries_change_nothing(
    service: Service, workflows: None
) -> None:
    task_id = _start(service, "signoff", {"topic": "slack"})
    human = _human_task(service, task_id, "review")
    deadline = time.monotonic() + 30
    posted: list[Any] = []
    while not posted and time.monotonic() < deadline:
        posted = [
            r
            for r in service.slack.requests
            if r.path.endswith("chat.postMessage") and human["id"] in json.dumps(r.body)
        ]
        time.sleep(0.1)
    assert posted, "no chat.postMessage for the human task"
    blocks = json.dumps(posted[0].body)
    assert f"{human['id']}:approve" in blocks and f"{human['id']}:reject" in blocks
    message = {"channel": "C1", "ts": "1.0"}
    body = _click(human["id"], "approve", message)
    with httpx.Client(base_url=service.url, timeout=30) as slack:
        wrong = _signed(body, secret="not-the-secret")
        assert slack.post("/v1/slack/actions", content=body, headers=wrong).status_code == 401
        stale = _signed(body, timestamp=int(time.time()) - 600)
        assert slack.post("/v1/slack/actions", content=body, headers=stale).status_code == 401
        with service.client() as c:
            assert c.get(f"/v1/human-tasks/{human['id']}").json()["status"] == "open"
        headers = _signed(body)
        ok = slack.post("/v1/slack/actions", content=body, headers=headers)
        assert ok.status_code == 200, ok.text
        replay = slack.post("/v1/slack/actions", content=body, headers=headers)
        assert replay.status_code == 401
    with service.client() as c:
        view = service.wait_done(c, task_id)
    assert view["output"]["approved_by"] == "slack:U123"
    deadline = time.monotonic() + 30
    updated: list[Any] = []
    while not updated and time.monotonic() < deadline:
        updated = [r for r in service.slack.requests if r.path.endswith("chat.update")]
        time.sleep(0.1)
    assert updated, "the Slack message was not updated with the outcome"
    decided = [e for e in _events(service, task_id) if e["type"] == "human.decided"]
    assert len(decided) == 1


# --------------------------------------------------------------------------- escalation


def test_escalation_on_timeout_tells_the_escalation_assignee_and_revokes_the_old_link(
    service: Service, workflows: None
) -> None:
    task_id = _start(service, "escalate", {})
    first_link = link_of(service.wait_email("first@example.com"))
    boss_email = service.wait_email("boss@example.com", timeout=60)
    boss_link = link_of(boss_email)
    with httpx.Client(timeout=30) as browser:
        assert browser.get(first_link).status_code == 410
        assert browser.post(first_link, data={"action": "approve"}).status_code == 410
        assert browser.post(boss_link, data={"action": "approve"}).status_code == 200
    with service.client() as c:
        view = service.wait_done(c, task_id)
    assert view["status"] == "SUCCEEDED"
    assert view["output"] == {"approved_by": "boss@example.com"}
    types = [e["type"] for e in _events(service, task_id)]
    assert "human.escalated" in types
    assert types.index("human.waiting") < types.index("human.escalated")
