"""Webhook deliveries, one attempt at a time, in this process: a moto table and queues,
and a real HTTP receiver on 127.0.0.1 (``tests.support.webhook_receiver``).

What the over-HTTP tests (tests/e2e/test_webhooks_http.py) cannot reach quickly: delays
past SQS's 12 hours, a message near SQS's retention, redirects, large and slow answers, a
subscription deleted while its delivery waits, a fan-out handled twice, and what a
failed delivery owes when its function stops half-way.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import boto3
import pytest
from loopline import ids, store
from loopline.notify import webhook
from loopline.service import webhooks
from loopline.service.errors import Conflict, NotFound
from loopline.service.keys import Caller
from loopline.settings import settings
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.support.webhook_receiver import WebhookReceiver
from tests.tasktable import tasks_table

__all__ = ["tasks_table"]

pytestmark = pytest.mark.moto

ACME = Caller(tenant="acme", user="ops", roles=("admin",), key_id="k1")
GLOBEX = Caller(tenant="globex", user="ops", roles=("admin",), key_id="k2")


@pytest.fixture
def queues(tasks_table: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    sqs = boto3.client("sqs", region_name="us-east-1")
    urls = {name: sqs.create_queue(QueueName=f"wh-{name}")["QueueUrl"] for name in ("main", "dlq")}
    monkeypatch.setenv("LOOPLINE_WEBHOOK_QUEUE_URL", urls["main"])
    monkeypatch.setenv("LOOPLINE_WEBHOOK_DLQ_URL", urls["dlq"])
    monkeypatch.setenv("LOOPLINE_WEBHOOK_ALLOW_HOSTS", "127.0.0.1")
    monkeypatch.setenv("LOOPLINE_WEBHOOK_RETRY_DELAYS", "1,50000")
    settings.cache_clear()
    yield urls
    settings.cache_clear()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(path="") as r:
        yield r


def _messages(url: str) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs", region_name="us-east-1")
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)
    return [json.loads(m["Body"]) for m in got.get("Messages", [])]


def _task(webhook_url: str | None) -> str:
    task_id = ids.new_id("task")
    store.create_task(
        "acme",
        {
            "id": task_id,
            "workflow": "w",
            "version": "1",
            "status": "RUNNING",
            "run": 1,
            "inputs": {},
            "labels": {},
            "webhook": webhook_url,
            "created_at": ids.now(),
        },
    )
    return task_id


def _event(task_id: str, kind: str = "task.succeeded") -> dict[str, Any]:
    seq = store.append_event(task_id, store.NewEvent(kind, None, {}))
    assert seq
    return {**store.list_events(task_id, after=seq - 1)[0], "task_id": task_id}


def _delivery(receiver: WebhookReceiver, path: str = "/hook") -> str:
    task_id = _task(receiver.url + path)
    (delivery_id,) = webhooks._record_event(_event(task_id))
    return delivery_id


def _types(task_id: str) -> list[str]:
    return [e["type"] for e in store.list_events(task_id)]


# --------------------------------------------------------------------------- signing


def test_signatures_verify_with_each_secret_of_a_rotation() -> None:
    old, new = webhooks.new_secret(), webhooks.new_secret()
    body = webhooks.body_of("task.succeeded", ids.now(), {"id": "tsk_1"})
    headers = webhook.signature_headers("dlv_1", body, [new, old])
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        assert Webhook(secret).verify(body, headers)["type"] == "task.succeeded"
    with pytest.raises(WebhookVerificationError):
        Webhook(webhooks.new_secret()).verify(body, headers)


def test_a_rotated_out_secret_signs_for_24_hours_only(tasks_table: str) -> None:
    first = webhooks.signing_secret(ACME)["secret"]
    rotated = webhooks.rotate_signing_secret(ACME)
    assert rotated["previous"] == first and rotated["secret"] != first
    record = store.get_signing_secret("acme")
    now = ids.now()
    assert webhooks._signing(record, now) == [rotated["secret"], first]
    later = ids.format_time(ids.parse_time(now) + timedelta(hours=24, seconds=1))
    assert webhooks._signing(record, later) == [rotated["secret"]]
    assert webhooks.signing_secret(GLOBEX)["secret"] not in (first, rotated["secret"])


# --------------------------------------------------------------------------- the fan-out


def test_a_fan_out_handled_twice_records_each_delivery_once(
    queues: dict[str, str], receiver: WebhookReceiver
) -> None:
    sub = webhooks.create_subscription(ACME, receiver.url + "/sub", ["task.*"])
    task_id = _task(receiver.url + "/task")
    event = _event(task_id)
    first = webhooks._record_event(event)
    assert len(first) == 2
    assert webhooks._record_event(event) == first  # not tried yet: queued again
    listed = webhooks.list_deliveries(ACME, task=task_id)["items"]
    assert sorted(d["id"] for d in listed) == sorted(first)
    assert {d["target"].get("subscription") for d in listed} == {sub["id"], None}
    webhooks.attempt(first[0])
    assert first[0] not in webhooks._record_event(event)  # tried: not queued again


def test_step_and_webhook_events_are_not_sent(queues: dict[str, str]) -> None:
    task_id = _task("https://hooks.example.com/x")
    assert webhooks._record_event(_event(task_id, "step.started")) == []
    assert webhooks._record_event(_event(task_id, "webhook.failed")) == []


# --------------------------------------------------------------------------- attempts


def test_a_redirect_is_a_failed_attempt_and_is_not_followed(
    queues: dict[str, str], receiver: WebhookReceiver
) -> None:
    receiver.redirect(receiver.url + "/elsewhere")
    delivery_id = _delivery(receiver)
    with pytest.raises(webhooks._Later):
        webhooks.attempt(delivery_id)
    record = store.get_delivery(delivery_id)
    assert record is not None
    (attempt,) = record["attempts"]
    assert attempt["status_code"] == 302
    assert "redirects are not followed" in attempt["error"]
    assert [r.path for r in receiver.requests] == ["/hook"]


def test_a_large_answer_is_read_only_in_part_and_the_2xx_counts(
    queues: dict[str, str], receiver: WebhookReceiver
) -> None:
    receiver.large(5 * 1024 * 1024)
    delivery_id = _delivery(receiver)
    webhooks.attempt(delivery_id)
    record = store.get_delivery(delivery_id)
    assert record is not None and record["status"] == "delivered"
    assert receiver.bytes_sent < 5 * 1024 * 1024


def test_a_slow_receiver_times_out(receiver: WebhookReceiver) -> None:
    receiver.slow(2.0)
    body = webhooks.body_of("task.succeeded", ids.now(), {})
    started = time.monotonic()
    outcome = webhook.post(receiver.url + "/hook", body, {}, allow_hosts=["127.0.0.1"], timeout=0.5)
    assert time.monotonic() - started < 1.5
    assert outcome.status_code is None and "no answer within 0.5 s" in str(outcome.error)


def test_a_wait_longer_than_sqs_allows_is_taken_in_turns(
    queues: dict[str, str], receiver: WebhookReceiver
) -> None:
    receiver.status(503)
    delivery_id = _delivery(receiver)
    with pytest.raises(webhooks._Later):
        webhooks.attempt(delivery_id)  # attempt 1 fails: next in about 1 s (jitter)
    time.sleep(1.2)
    with pytest.raises(webhooks._Later) as later:
        webhooks.attempt(delivery_id)  # attempt 2 fails: next in 50,000 s
    assert 45000 <= later.value.seconds <= 55000
    # The message comes back after 12 hours (SQS's most): not due, so no attempt.
    with pytest.raises(webhooks._Later) as again:
        webhooks.attempt(delivery_id)
    assert again.value.seconds > 40000
    record = store.get_delivery(delivery_id)
    assert record is not None and record["attempt_count"] == 2
    assert len(receiver.requests) == 2


def test_a_message_near_sqs_retention_is_sent_anew(
    queues: dict[str, str], receiver: WebhookReceiver
) -> None:
    delivery_id = _delivery(receiver)
    later = ids.format_time(ids.parse_time(ids.now()) + timedelta(days=3))
    store.update_delivery(delivery_id, {"next_attempt_at": later})
    eleven_days_ago = time.time() - 11 * 86400
    webhooks.attempt(delivery_id, sent_at=eleven_days_ago)  # returns: this message is done
    assert {"delivery": delivery_id} in _messages(queues["main"])
    assert receiver.requests == []


def test_the_last_failure_dead_letters_once_and_adds_webhook_failed_once(
    queues: dict[str, str], receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOOPLINE_WEBHOOK_RETRY_DELAYS", "1")
    settings.cache_clear()
    receiver.status(500)
    delivery_id = _delivery(receiver)
    task_id = str(store.get_delivery(delivery_id)["task"])  # type: ignore[index]
    with pytest.raises(webhooks._Later):
        webhooks.attempt(delivery_id)
    time.sleep(1.2)
    webhooks.attempt(delivery_id)  # the last: failed
    record = store.get_delivery(delivery_id)
    assert record is not None and record["status"] == "failed"
    assert record["dead_lettered"] and record["failure_recorded"]
    webhooks.attempt(delivery_id)  # a duplicate message: nothing more
    assert _messages(queues["dlq"]) == [{"delivery": delivery_id}]
    assert _types(task_id).count("webhook.failed") == 1
    assert len(receiver.requests) == 2


def test_a_failure_half_recorded_is_finished_by_the_next_message(
    queues: dict[str, str], receiver: WebhookReceiver
) -> None:
    delivery_id = _delivery(receiver)
    store.update_delivery(delivery_id, {"status": "failed", "attempt_count": 8})
    webhooks.attempt(delivery_id)
    assert _messages(queues["dlq"]) == [{"delivery": delivery_id}]
    record = store.get_delivery(delivery_id)
    assert record is not None
    assert "webhook.failed" in _types(str(record["task"]))
    assert receiver.requests == []


def test_a_deleted_subscription_ends_its_deliveries(
    queues: dict[str, str], receiver: WebhookReceiver
) -> None:
    sub = webhooks.create_subscription(ACME, receiver.url + "/sub", ["task.succeeded"])
    task_id = _task(None)
    (delivery_id,) = webhooks._record_event(_event(task_id))
    webhooks.delete_subscription(ACME, sub["id"])
    webhooks.attempt(delivery_id)
    record = store.get_delivery(delivery_id)
    assert record is not None and record["status"] == "failed"
    assert record["attempts"][-1]["error"] == "the webhook was deleted"
    assert receiver.requests == []
    with pytest.raises(NotFound):
        webhooks.delete_subscription(ACME, sub["id"])


def test_a_retry_sends_once_more_with_the_same_id(
    queues: dict[str, str], receiver: WebhookReceiver
) -> None:
    delivery_id = _delivery(receiver)
    with pytest.raises(Conflict):
        webhooks.retry(ACME, delivery_id)  # pending
    webhooks.attempt(delivery_id)
    view = webhooks.retry(ACME, delivery_id)
    assert view["status"] == "pending"
    with pytest.raises(NotFound):
        webhooks.retry(GLOBEX, delivery_id)
    receiver.status(500)
    webhooks.attempt(delivery_id)  # a manual attempt that fails: failed, no schedule
    record = store.get_delivery(delivery_id)
    assert record is not None and record["status"] == "failed"
    assert record["attempt_count"] == 2 and not record.get("dead_lettered")
    ids_seen = {r.headers["webhook-id"] for r in receiver.requests}
    assert ids_seen == {delivery_id}


def test_another_tenant_sees_no_delivery_and_no_subscription(
    queues: dict[str, str], receiver: WebhookReceiver
) -> None:
    delivery_id = _delivery(receiver)
    sub = webhooks.create_subscription(ACME, receiver.url + "/sub", ["*"])
    for call in (
        lambda: webhooks.get_delivery(GLOBEX, delivery_id),
        lambda: webhooks.get_subscription(GLOBEX, sub["id"]),
        lambda: webhooks.rotate_subscription_secret(GLOBEX, sub["id"]),
        lambda: webhooks.delete_subscription(GLOBEX, sub["id"]),
    ):
        with pytest.raises(NotFound):
            call()
    assert webhooks.list_deliveries(GLOBEX)["items"] == []
    assert webhooks.list_subscriptions(GLOBEX)["items"] == []


def test_a_tenant_has_at_most_20_subscriptions(queues: dict[str, str]) -> None:
    for i in range(webhooks.MAX_SUBSCRIPTIONS):
        webhooks.create_subscription(ACME, f"https://hooks{i}.example.com/x", ["*"])
    with pytest.raises(webhooks.Invalid) as refused:
        webhooks.create_subscription(ACME, "https://one-more.example.com/x", ["*"])
    assert refused.value.errors[0].rule == "limit"
    page = webhooks.list_subscriptions(ACME, limit=15)
    rest = webhooks.list_subscriptions(ACME, limit=15, cursor=page["next_cursor"])
    assert len(page["items"]) == 15 and len(rest["items"]) == 5 and rest["next_cursor"] is None


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.2/x",
        "https://10.0.0.1/x",
        "https://169.254.169.254/latest",
        "https://[::ffff:127.0.0.1]/x",
        "https://0x7f000001/x",
        "https://user:pw@hooks.example.com/x",
    ],
)
def test_refused_urls_are_refused_again_at_the_attempt(
    queues: dict[str, str], url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert webhooks.url_problem(url)
    task_id = _task(url)  # as if the rules changed after it was accepted
    (delivery_id,) = webhooks._record_event(_event(task_id))
    with pytest.raises(webhooks._Later):
        webhooks.attempt(delivery_id)
    record = store.get_delivery(delivery_id)
    assert record is not None
    assert record["attempts"][0]["status_code"] is None
    assert record["attempts"][0]["error"].startswith("refused: the URL")
