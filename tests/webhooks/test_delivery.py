"""Deliveries that fail, through the served stack in this process: a receiver down for
good gets five attempts, then the delivery is failed, dead-lettered and announced with
``webhook.failed``, and a manual retry delivers it once the receiver is back; an address
the guard refuses at delivery time is logged as such and never reached.
"""

from __future__ import annotations

import json
import os
from typing import Any

import boto3
import pytest
from loopline import store
from loopline.settings import settings

from tests.support.webhook_receiver import WebhookReceiver
from tests.webhooks.stack import Stack

pytestmark = pytest.mark.moto


def _dead_letters() -> list[dict[str, Any]]:
    """The bodies of the messages in the webhook dead-letter queue (read, left there)."""
    sqs = boto3.client("sqs", region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
    url = os.environ["LOOPLINE_WEBHOOK_DLQ_URL"]
    bodies = []
    for _ in range(20):
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)
        messages = got.get("Messages") or []
        bodies += [json.loads(m["Body"]) for m in messages]
        if len(messages) < 10:
            break
    return bodies


def _of(deliveries: list[dict[str, Any]], event_type: str) -> dict[str, Any] | None:
    return next((d for d in deliveries if d["event"]["type"] == event_type), None)


def test_a_receiver_down_for_good_fails_after_five_attempts_then_a_retry_delivers(
    stack: Stack,
) -> None:
    with WebhookReceiver() as receiver:
        receiver.down()
        task_id = stack.run(webhook=receiver.url)
        pending = stack.until(
            lambda: _of(stack.deliveries(task_id), "task.succeeded"), what="delivery recorded"
        )
        if pending["status"] == "pending":
            # A pending delivery is already on its way: retrying it is a conflict.
            r = stack.client.post(f"/v1/webhook-deliveries/{pending['id']}/retry")
            assert r.status_code == 409, r.text
        failed = stack.until(
            lambda: (
                (d := _of(stack.deliveries(task_id), "task.succeeded"))
                and d["status"] == "failed"
                and d
            ),
            timeout=30,
            what="delivery failed",
        )
        attempts = failed["attempts"]
        assert len(attempts) == 5
        assert all(a["status_code"] is None and a["error"] for a in attempts), attempts
        assert failed["failed_at"] and failed["delivered_at"] is None
        assert failed["next_attempt_at"] is None

        # Every failed delivery of the task is dead-lettered and announced once.
        dead = {d["id"] for d in stack.deliveries(task_id) if d["status"] == "failed"}
        assert failed["id"] in dead
        stack.until(
            lambda: dead <= {str(m.get("delivery")) for m in _dead_letters()},
            10,
            "dead letters",
        )
        announced = [e for e in stack.events(task_id) if e["type"] == "webhook.failed"]
        assert len(announced) == len(dead)
        assert any(failed["id"] in json.dumps(e["data"]) for e in announced), announced

        # Back up: a manual retry is one attempt through the queue, and it delivers.
        receiver.up()
        r = stack.client.post(f"/v1/webhook-deliveries/{failed['id']}/retry")
        assert r.status_code == 202, r.text
        assert r.json()["status"] == "pending"
        [hit] = receiver.wait_for(lambda r: r.received("task.succeeded", task=task_id), 15)
        assert hit.webhook_id == failed["id"]
        done = stack.until(
            lambda: (
                (d := stack.client.get(f"/v1/webhook-deliveries/{failed['id']}").json())["status"]
                == "delivered"
                and d
            ),
            10,
            "retried delivery delivered",
        )
        assert [a["status_code"] for a in done["attempts"]] == [None] * 5 + [200]
        events = stack.until(
            lambda: (
                (e := stack.events(task_id))
                and any(x["type"] == "webhook.delivered" for x in e)
                and e
            ),
            10,
            "webhook.delivered",
        )
        # No second webhook.failed.
        assert len([e for e in events if e["type"] == "webhook.failed"]) == len(dead)


def test_a_failed_manual_retry_leaves_the_delivery_failed_without_another_announcement(
    stack: Stack,
) -> None:
    with WebhookReceiver() as receiver:
        receiver.status(500)
        task_id = stack.run(webhook=receiver.url)
        failed = stack.until(
            lambda: (
                (d := _of(stack.deliveries(task_id), "task.succeeded"))
                and d["status"] == "failed"
                and d
            ),
            timeout=30,
            what="delivery failed",
        )
        assert [a["status_code"] for a in failed["attempts"]] == [500] * 5
        # Every delivery of the task (task.started too) failed and was announced.
        stack.until(
            lambda: all(d["status"] == "failed" for d in stack.deliveries(task_id)),
            10,
            "all deliveries failed",
        )
        announced = stack.until(
            lambda: (
                len([e for e in stack.events(task_id) if e["type"] == "webhook.failed"])
                == len(stack.deliveries(task_id))
                and len(stack.deliveries(task_id))
            ),
            10,
            "webhook.failed of each",
        )
        r = stack.client.post(f"/v1/webhook-deliveries/{failed['id']}/retry")
        assert r.status_code == 202, r.text
        again = stack.until(
            lambda: (
                (d := stack.client.get(f"/v1/webhook-deliveries/{failed['id']}").json())
                and len(d["attempts"]) == 6
                and d["status"] == "failed"
                and d
            ),
            10,
            "the manual attempt logged",
        )
        assert again["next_attempt_at"] is None
        stack.service.drain(5)
        assert len([e for e in stack.events(task_id) if e["type"] == "webhook.failed"]) == announced
        assert len(receiver.received("task.succeeded", task=task_id)) == 6


def test_an_address_the_guard_refuses_at_delivery_is_logged_and_never_reached(
    stack: Stack,
) -> None:
    task_id = stack.run()
    with WebhookReceiver() as receiver:
        # Allowed when registered (127.0.0.1 is an allowed host)...
        sub = stack.subscribe(receiver.url, ["task.succeeded"])
        allowed = os.environ["LOOPLINE_WEBHOOK_ALLOW_HOSTS"]
        try:
            # ... no longer when delivered.
            os.environ["LOOPLINE_WEBHOOK_ALLOW_HOSTS"] = "hooks.example.internal"
            settings.cache_clear()
            seq = store.append_event(task_id, store.NewEvent("task.succeeded", data={}))
            assert seq

            def refused() -> dict[str, Any] | None:
                for d in stack.deliveries(task_id):
                    if d["event"]["seq"] == seq and d["target"].get("subscription") == sub["id"]:
                        return d if d["status"] == "failed" else None
                return None

            delivery = stack.until(refused, 30, "refused delivery failed")
            assert len(delivery["attempts"]) == 5
            for attempt in delivery["attempts"]:
                assert attempt["status_code"] is None
                # Why: plain http, or a loopback address, to a host no longer allowed.
                assert "https://" in attempt["error"] or "loopback" in attempt["error"], attempt
            assert receiver.received() == []
        finally:
            os.environ["LOOPLINE_WEBHOOK_ALLOW_HOSTS"] = allowed
            settings.cache_clear()
            stack.client.delete(f"/v1/webhooks/{sub['id']}")
