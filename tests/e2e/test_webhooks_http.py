"""Webhooks over real HTTP against ``loopline serve``: receivers are real HTTP servers on
127.0.0.1 that verify each request with the ``standardwebhooks`` library, as a user's
receiver does (``tests/support/webhook_receiver.py``).

The served stack retries a delivery after 1 s four times (``LOOPLINE_WEBHOOK_RETRY_DELAYS``
in ``conftest.py``): five attempts in all. What needs the stack's queues from inside (the
dead-letter queue, the allowed hosts changed under a delivery) is in ``tests/webhooks``.
"""

from __future__ import annotations

import base64
import binascii
import itertools
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import WORKFLOWS, Service
from tests.support.waiting import task_events, until
from tests.support.webhook_receiver import WebhookReceiver, verify

HOOK_TYPES = ("task.", "human.")
#: A public address (example.com's), only ever named in URLs the service must refuse.
PUBLIC = "93.184.215.14"
#: An allowed URL nothing listens on (the discard port), for requests refused before any
#: delivery.
NOWHERE = "http://127.0.0.1:9/hook"


# --------------------------------------------------------------------------- helpers


def _submit(c: httpx.Client, workflow: str, inputs: dict[str, Any], webhook: str) -> str:
    r = c.post("/v1/tasks", json={"workflow": workflow, "inputs": inputs, "webhook": webhook})
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def _deliveries(c: httpx.Client, task_id: str) -> list[dict[str, Any]]:
    """Every delivery of a task, following the pages."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"task": task_id, "limit": 100}
        if cursor:
            params["cursor"] = cursor
        page = c.get("/v1/webhook-deliveries", params=params)
        assert page.status_code == 200, page.text
        items.extend(page.json()["items"])
        cursor = page.json()["next_cursor"]
        if not cursor:
            return items


def _delivery(
    c: httpx.Client, task_id: str, event_type: str, status: str, timeout: float = 30
) -> dict[str, Any]:
    """The task's delivery of its ``event_type`` event once it has ``status``."""

    def found() -> dict[str, Any] | None:
        for d in _deliveries(c, task_id):
            if d["event"]["type"] == event_type and d["status"] == status:
                return d
        return None

    return until(found, timeout, f"{event_type} delivery of {task_id} {status}")


def _signing_secret(c: httpx.Client) -> dict[str, Any]:
    r = c.get("/v1/webhooks/signing-secret")
    assert r.status_code == 200, r.text
    return dict(r.json())


def _is_secret(secret: str) -> bool:
    if not secret.startswith("whsec_"):
        return False
    try:
        return len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 24
    except binascii.Error:
        return False


def _problem(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    body = dict(r.json())
    assert body["status"] == status
    return body


def _fields(r: httpx.Response) -> list[str]:
    return [e["field"] for e in _problem(r, 422)["errors"]]


# --------------------------------------------------------------------------- delivery


def test_a_task_webhook_gets_its_task_events_signed_with_the_tenant_signing_secret(
    service: Service, brief: str
) -> None:
    with service.client() as c, WebhookReceiver() as receiver:
        secret = _signing_secret(c)["secret"]
        assert _is_secret(secret), secret
        receiver.secrets = [secret]
        task_id = _submit(c, brief, {"topic": "tides"}, receiver.url)
        view = service.wait_done(c, task_id)
        assert view["status"] == "SUCCEEDED", view

        [hit] = receiver.wait_for(lambda r: r.received("task.succeeded", task=task_id))
        assert hit.secret == secret, hit.error
        assert set(hit.json) == {"type", "timestamp", "data"}
        assert hit.json["type"] == "task.succeeded"
        # data is the task view as the API shows it.
        assert hit.data == c.get(f"/v1/tasks/{task_id}").json()
        assert hit.data["status"] == "SUCCEEDED"
        [ended] = [e for e in task_events(c, task_id) if e["type"] == "task.succeeded"]
        assert hit.json["timestamp"] == ended["at"]
        assert hit.headers["content-type"].startswith("application/json")
        assert hit.headers["user-agent"] == "Loopline-Webhooks/1"
        assert abs(int(hit.headers["webhook-timestamp"]) - hit.at) < 60

        # The task's webhook gets its task.* (and human.*) events, nothing else, each signed.
        receiver.wait_for(lambda r: r.received("task.started", task=task_id))
        mine = receiver.received(task=task_id)
        assert all(r.verified for r in mine), [r.error for r in mine]
        assert all(str(r.type).startswith(HOOK_TYPES) for r in mine), [r.type for r in mine]
        delivery = _delivery(c, task_id, "task.succeeded", "delivered")
        assert hit.webhook_id == delivery["id"]
        assert delivery["target"]["kind"] == "task" and delivery["url"] == receiver.url


def _register_hooked(service: Service, receiver: WebhookReceiver) -> str:
    body = (WORKFLOWS / "hooked.yaml").read_text().replace("RECEIVER_URL", receiver.url)
    with service.client() as c:
        r = c.put("/v1/workflows/hooked", content=body, headers={"Content-Type": "text/yaml"})
        assert r.status_code in (200, 201), r.text
    return "hooked"


def test_a_notify_webhook_gets_human_waiting_with_a_link_that_opens_the_approval(
    service: Service,
) -> None:
    with service.client() as c, WebhookReceiver() as receiver:
        receiver.secrets = [_signing_secret(c)["secret"]]
        name = _register_hooked(service, receiver)
        r = c.post("/v1/tasks", json={"workflow": name, "inputs": {"release": "r-42"}})
        assert r.status_code == 202, r.text
        task_id = r.json()["id"]

        [hit] = receiver.wait_for(lambda r: r.received("human.waiting", task=task_id))
        assert hit.verified, hit.error
        assert set(hit.json) == {"type", "timestamp", "data"}
        data = hit.data
        assert set(data) >= {"task", "human_task", "link"}, data
        assert data["task"]["id"] == task_id and data["task"]["status"] == "WAITING"
        human = c.get(f"/v1/human-tasks/{data['human_task']['id']}").json()
        assert human["step"] == "review" and human["status"] == "open"
        assert data["human_task"]["instruction"] == "Approve release r-42."
        [waited] = [e for e in task_events(c, task_id) if e["type"] == "human.waiting"]
        assert hit.json["timestamp"] == waited["at"]

        with httpx.Client(timeout=30) as browser:
            page = browser.get(data["link"])
            assert page.status_code == 200, page.text
            assert "Approve release r-42." in page.text
            decided = browser.post(
                data["link"], json={"action": "approve"}, headers={"Accept": "application/json"}
            )
            assert decided.status_code == 200, decided.text
        view = service.wait_done(c, task_id)
        assert view["status"] == "SUCCEEDED" and view["output"]["approved"] is True
        delivery = _delivery(c, task_id, "human.waiting", "delivered")
        assert delivery["target"]["kind"] == "notify"
        assert delivery["target"]["human_task"] == human["id"]
        assert hit.webhook_id == delivery["id"]


def test_a_receiver_down_for_three_attempts_gets_the_fourth_with_the_same_webhook_id(
    service: Service, brief: str
) -> None:
    with service.client() as c, WebhookReceiver() as receiver:
        receiver.secrets = [_signing_secret(c)["secret"]]
        receiver.fail_first(3, 503)
        task_id = _submit(c, brief, {"topic": "retries"}, receiver.url)
        service.wait_done(c, task_id)

        hits = receiver.wait_for(
            lambda r: (
                (got := r.received("task.succeeded", task=task_id))
                and got[-1].status == 200
                and got
            ),
            timeout=30,
        )
        assert [h.status for h in hits] == [503, 503, 503, 200]
        assert len({h.webhook_id for h in hits}) == 1
        assert all(h.verified for h in hits), [h.error for h in hits]
        # Each retry waited its delay (1 s, with jitter).
        gaps = [b.monotonic - a.monotonic for a, b in itertools.pairwise(hits)]
        assert all(gap >= 0.8 for gap in gaps), gaps

        delivery = _delivery(c, task_id, "task.succeeded", "delivered")
        assert delivery["id"] == hits[0].webhook_id
        attempts = delivery["attempts"]
        assert [a["status_code"] for a in attempts] == [503, 503, 503, 200]
        assert all(a["error"] for a in attempts[:3]) and attempts[3]["error"] is None
        assert all(isinstance(a["duration_ms"], int | float) for a in attempts)
        assert all(a["duration_ms"] >= 0 for a in attempts)
        assert [a["at"] for a in attempts] == sorted(a["at"] for a in attempts)
        assert delivery["delivered_at"] and delivery["failed_at"] is None
        assert delivery["event"]["type"] == "task.succeeded"
        assert "body" not in delivery and "secret" not in delivery
        one = c.get(f"/v1/webhook-deliveries/{delivery['id']}")
        assert one.status_code == 200 and one.json() == delivery

        until(
            lambda: [e for e in task_events(c, task_id) if e["type"] == "webhook.delivered"],
            10,
            "webhook.delivered event",
        )
        assert not receiver.received("webhook.delivered")


# --------------------------------------------------------------------------- rotation


def test_after_a_signing_secret_rotation_the_old_and_the_new_secret_both_verify(
    service: Service, brief: str
) -> None:
    with service.client() as c:
        old = _signing_secret(c)["secret"]
        r = c.post("/v1/webhooks/signing-secret/rotate")
        assert r.status_code == 200, r.text
        rotated = r.json()
        new = rotated["secret"]
        assert _is_secret(new) and new != old
        assert rotated["previous"] == old and rotated["rotated_at"]
        again = _signing_secret(c)
        assert (again["secret"], again["previous"]) == (new, old)

        with WebhookReceiver([old]) as holds_old, WebhookReceiver([new]) as holds_new:
            first = _submit(c, brief, {"topic": "old key"}, holds_old.url)
            second = _submit(c, brief, {"topic": "new key"}, holds_new.url)
            [a] = holds_old.wait_for(lambda r: r.received("task.succeeded", task=first))
            [b] = holds_new.wait_for(lambda r: r.received("task.succeeded", task=second))
        assert a.secret == old, a.error
        assert b.secret == new, b.error
        for hit in (a, b):
            assert len(hit.signatures) == 2 and all(s.startswith("v1,") for s in hit.signatures)
            # The same request verifies with either secret alone.
            assert verify(hit.body, hit.headers, [old])[0] == old
            assert verify(hit.body, hit.headers, [new])[0] == new


def test_after_a_subscription_secret_rotation_the_old_and_the_new_secret_both_verify(
    service: Service, brief: str
) -> None:
    with service.client() as c, WebhookReceiver() as receiver:
        r = c.post("/v1/webhooks", json={"url": receiver.url, "events": ["task.succeeded"]})
        assert r.status_code == 201, r.text
        sub = r.json()
        try:
            old = sub["secret"]
            r = c.post(f"/v1/webhooks/{sub['id']}/rotate-secret")
            assert r.status_code == 200, r.text
            new = r.json()["secret"]
            assert _is_secret(new) and new != old and r.json()["previous"] == old
            receiver.secrets = [old]
            r = c.post("/v1/tasks", json={"workflow": brief, "inputs": {"topic": "rotated"}})
            assert r.status_code == 202, r.text
            task_id = r.json()["id"]
            [hit] = receiver.wait_for(lambda r: r.received("task.succeeded", task=task_id))
            assert hit.secret == old, hit.error
            assert len(hit.signatures) == 2
            assert verify(hit.body, hit.headers, [new])[0] == new
            delivery = _delivery(c, task_id, "task.succeeded", "delivered")
            assert delivery["target"] == {"kind": "subscription", "subscription": sub["id"]} or (
                delivery["target"]["kind"] == "subscription"
                and delivery["target"]["subscription"] == sub["id"]
            )
        finally:
            c.delete(f"/v1/webhooks/{sub['id']}")


# --------------------------------------------------------------------------- SSRF

#: URLs the webhook rules refuse although they are https: addresses the HTTP step refuses,
#: in each way of writing them, and names that resolve to them. (The served stack allows
#: 127.0.0.1 itself, as ``--allow-hosts 127.0.0.1``: a user's local receiver.)
REFUSED = [
    "https://127.0.0.2/hook",
    "https://2130706433/hook",  # 127.0.0.1, decimal
    "https://0177.0.0.1/hook",  # octal
    "https://0x7f.0.0.1/hook",  # hex
    "https://0x7f000001/hook",
    "https://127.1/hook",
    "https://[::1]/hook",
    "https://[::ffff:127.0.0.1]/hook",  # IPv4-mapped IPv6
    "https://[::ffff:169.254.169.254]/hook",
    "https://0.0.0.0/hook",
    "https://[::]/hook",
    "https://169.254.169.254/latest/meta-data/",
    "https://[fd00:ec2::254]/hook",
    "https://169.254.1.1/hook",  # link-local
    "https://[fe80::1]/hook",
    "https://10.0.0.1/hook",  # private
    "https://172.16.0.1/hook",
    "https://192.168.1.1/hook",
    "https://[fc00::1]/hook",
    "https://localhost/hook",  # a name resolving to loopback
]
#: Refused whatever the address (a public one here, written as an address so that nothing
#: is looked up outside this machine).
MALFORMED = [
    f"http://{PUBLIC}/hook",  # plain http to a host that is not allowed
    f"https://user:secret@{PUBLIC}/hook",  # credentials in the URL
    f"ftp://{PUBLIC}/hook",
    "example.com/hook",
]


@pytest.mark.parametrize("url", REFUSED + MALFORMED)
def test_a_subscription_to_an_internal_or_plain_http_url_is_422_on_url(
    service: Service, url: str
) -> None:
    with service.client() as c:
        r = c.post("/v1/webhooks", json={"url": url, "events": ["task.succeeded"]})
        assert _fields(r) == ["url"], r.text
        message = r.json()["errors"][0]["message"]
        if url in REFUSED:
            assert "address" in message, message
        assert "Traceback" not in r.text and "Error(" not in r.text
        listed = c.get("/v1/webhooks", params={"limit": 100}).json()["items"]
        assert url not in [s["url"] for s in listed]


@pytest.mark.parametrize("url", REFUSED + MALFORMED)
def test_a_task_with_an_internal_or_plain_http_webhook_is_422_on_webhook(
    service: Service, brief: str, url: str
) -> None:
    with service.client() as c:
        before = c.get("/v1/tasks", params={"workflow": brief, "limit": 1}).json()["items"]
        body = {"workflow": brief, "inputs": {"topic": "tides"}, "webhook": url}
        r = c.post("/v1/tasks", json=body)
        assert _fields(r) == ["webhook"], r.text
        after = c.get("/v1/tasks", params={"workflow": brief, "limit": 1}).json()["items"]
        assert [t["id"] for t in after] == [t["id"] for t in before], "a task was started"


# --------------------------------------------------------------------------- the API


def test_a_subscription_is_created_listed_read_and_deleted(service: Service) -> None:
    with service.client() as c, WebhookReceiver() as receiver:
        r = c.post(
            "/v1/webhooks", json={"url": receiver.url, "events": ["task.*", "human.waiting"]}
        )
        assert r.status_code == 201, r.text
        sub = r.json()
        try:
            assert r.headers["Location"] == f"/v1/webhooks/{sub['id']}"
            assert sub["url"] == receiver.url
            assert sub["events"] == ["task.*", "human.waiting"]
            assert _is_secret(sub["secret"]) and sub["created_at"]
            shown = {k: sub[k] for k in ("id", "url", "events", "created_at")}

            got = c.get(f"/v1/webhooks/{sub['id']}")
            # The fields the contract names (links beside them are welcome), never the secret.
            assert got.status_code == 200, got.text
            assert shown.items() <= got.json().items() and "secret" not in got.json()
            listed = c.get("/v1/webhooks", params={"limit": 100})
            assert listed.status_code == 200
            [item] = [s for s in listed.json()["items"] if s["id"] == sub["id"]]
            assert shown.items() <= item.items()
            assert all("secret" not in s for s in listed.json()["items"])
            assert "next_cursor" in listed.json()
        finally:
            gone = c.delete(f"/v1/webhooks/{sub['id']}")
        assert gone.status_code == 204 and not gone.content
        _problem(c.get(f"/v1/webhooks/{sub['id']}"), 404)
        _problem(c.delete(f"/v1/webhooks/{sub['id']}"), 404)
        listed = c.get("/v1/webhooks", params={"limit": 100}).json()["items"]
        assert sub["id"] not in [s["id"] for s in listed]


def test_another_tenants_subscriptions_and_deliveries_are_404(service: Service, brief: str) -> None:
    with (
        service.client("acme") as acme,
        service.client("globex") as globex,
        WebhookReceiver() as receiver,
    ):
        r = acme.post("/v1/webhooks", json={"url": receiver.url, "events": ["*"]})
        assert r.status_code == 201, r.text
        sub = r.json()
        try:
            task_id = _submit(acme, brief, {"topic": "private"}, receiver.url)
            delivery = _delivery(acme, task_id, "task.succeeded", "delivered")

            _problem(globex.get(f"/v1/webhooks/{sub['id']}"), 404)
            _problem(globex.delete(f"/v1/webhooks/{sub['id']}"), 404)
            _problem(globex.post(f"/v1/webhooks/{sub['id']}/rotate-secret"), 404)
            _problem(globex.get(f"/v1/webhook-deliveries/{delivery['id']}"), 404)
            _problem(globex.post(f"/v1/webhook-deliveries/{delivery['id']}/retry"), 404)
            theirs = globex.get("/v1/webhook-deliveries", params={"task": task_id})
            assert theirs.status_code == 404 or theirs.json()["items"] == [], theirs.text
            ids = [s["id"] for s in globex.get("/v1/webhooks").json()["items"]]
            assert sub["id"] not in ids
            # Still acme's, untouched.
            assert acme.get(f"/v1/webhooks/{sub['id']}").status_code == 200
        finally:
            acme.delete(f"/v1/webhooks/{sub['id']}")


def test_a_delivered_delivery_retried_is_sent_again_with_the_same_webhook_id(
    service: Service, brief: str
) -> None:
    with service.client() as c, WebhookReceiver() as receiver:
        receiver.secrets = [_signing_secret(c)["secret"]]
        task_id = _submit(c, brief, {"topic": "again"}, receiver.url)
        delivery = _delivery(c, task_id, "task.succeeded", "delivered")
        r = c.post(f"/v1/webhook-deliveries/{delivery['id']}/retry")
        assert r.status_code == 202, r.text
        assert r.json()["id"] == delivery["id"] and r.json()["status"] == "pending"
        hits = receiver.wait_for(
            lambda r: len(got := r.received("task.succeeded", task=task_id)) == 2 and got
        )
        assert {h.webhook_id for h in hits} == {delivery["id"]}
        assert hits[0].body == hits[1].body
        assert all(h.verified for h in hits)
        again = until(
            lambda: (
                (d := c.get(f"/v1/webhook-deliveries/{delivery['id']}").json())["status"]
                == "delivered"
                and len(d["attempts"]) == 2
                and d
            ),
            10,
            "the retried delivery delivered",
        )
        assert [a["status_code"] for a in again["attempts"]] == [200, 200]


def test_the_webhook_routes_need_a_key(service: Service) -> None:
    routes = [
        ("POST", "/v1/webhooks"),
        ("GET", "/v1/webhooks"),
        ("GET", "/v1/webhooks/wh_0"),
        ("DELETE", "/v1/webhooks/wh_0"),
        ("POST", "/v1/webhooks/wh_0/rotate-secret"),
        ("GET", "/v1/webhooks/signing-secret"),
        ("POST", "/v1/webhooks/signing-secret/rotate"),
        ("GET", "/v1/webhook-deliveries"),
        ("GET", "/v1/webhook-deliveries/whd_0"),
        ("POST", "/v1/webhook-deliveries/whd_0/retry"),
    ]
    with service.client(None) as anonymous:
        for method, path in routes:
            r = anonymous.request(method, path, json={} if method == "POST" else None)
            _problem(r, 401)
            assert r.headers["WWW-Authenticate"].startswith("Bearer"), (method, path)


@pytest.mark.parametrize(
    ("events", "field"),
    [
        (["task.exploded"], "events[0]"),
        (["task.succeeded", "step.started"], "events[1]"),
        (["task.succeeded", "webhook.failed"], "events[1]"),
        (["human.*", "tasks.*"], "events[1]"),
        ([], "events"),
        ("task.succeeded", "events"),
    ],
)
def test_a_subscription_to_an_unknown_event_type_is_422_on_it(
    service: Service, events: Any, field: str
) -> None:
    with service.client() as c:
        r = c.post("/v1/webhooks", json={"url": NOWHERE, "events": events})
        assert field in _fields(r), r.text


def test_a_tenant_has_at_most_twenty_subscriptions(service: Service) -> None:
    with service.client("acme-editor") as c:
        # URLs on this machine where nothing listens: an event meanwhile goes nowhere else.
        made: list[str] = []
        try:
            have = len(c.get("/v1/webhooks", params={"limit": 100}).json()["items"])
            for n in range(20 - have):
                r = c.post("/v1/webhooks", json={"url": f"{NOWHERE}/{n}", "events": ["*"]})
                assert r.status_code == 201, r.text
                made.append(r.json()["id"])
            r = c.post("/v1/webhooks", json={"url": f"{NOWHERE}/21", "events": ["*"]})
            _problem(r, 422)
        finally:
            for sub_id in made:
                c.delete(f"/v1/webhooks/{sub_id}")
