"""Webhooks: subscriptions, signing secrets, and deliveries that are recorded before they
are tried and never dropped (docs/internals.md, "Webhooks").

The outbox is the table. Every task event is an item; the table's stream hands each new
``task.*`` and ``human.*`` event to ``fan_out`` (the fan-out function), which records one
**delivery** per target — the task's ``webhook`` and each of the tenant's subscriptions
that lists the type — with the exact body every attempt will send, then puts
``{"delivery": id}`` on the webhook queue. A delivery's id is derived from its event and
target, so a stream batch handled twice records nothing twice. A human step's
``notify: [{webhook}]`` records its delivery directly (``notify``), with the link.

``consume`` (the webhook function) makes one attempt per message: signed per Standard
Webhooks with the target's secrets, posted through ``loopline.notify.webhook``, and
logged on the delivery. A 2xx is ``delivered`` (and ``webhook.delivered`` is an event of
the task); anything else is tried again after ``LOOPLINE_WEBHOOK_RETRY_DELAYS[n]`` with
jitter, the message hidden that long (12 hours at most per receive: a longer wait is
taken in turns, and a message close to SQS's retention is sent anew). After the last
attempt the delivery is ``failed``, its message is put on the dead-letter queue and
``webhook.failed`` is an event of the task. ``retry`` (the API) sends a delivered or
failed one again, once.

Secrets (``whsec_<base64>``) live in the table (encrypted at rest) and are shown by the
API to their tenant only; they never reach a log, an event or a queue message.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import math
import random
import secrets as random_secrets
import time
from datetime import timedelta
from typing import Any

from loopline import ids, store
from loopline.service.errors import Conflict, FieldError, Invalid, NotFound, bad_cursor
from loopline.service.keys import Caller
from loopline.settings import SQS_MAX_VISIBILITY, settings

log = logging.getLogger("loopline.webhooks")

#: The event types a webhook can receive (a task's webhook receives them all).
EVENT_TYPES = (
    "task.started", "task.paused", "task.resumed", "task.rerun", "task.succeeded",
    "task.failed", "task.cancelled", "task.timed_out",
    "human.waiting", "human.decided", "human.escalated", "human.expired",
)  # fmt: skip
#: What a subscription may list besides the types themselves.
WILDCARDS = ("*", "task.*", "human.*")
#: Subscriptions a tenant may have.
MAX_SUBSCRIPTIONS = 20
#: How long a rotated-out secret still signs, beside the new one.
ROTATION_GRACE = timedelta(hours=24)
MAX_URL = 2048
#: Each retry delay is multiplied by a factor drawn from this range.
JITTER = (0.9, 1.1)
#: A message older than this is sent anew rather than hidden again (SQS keeps a message
#: 14 days at most).
RESEND_AFTER_SECONDS = 10 * 86400
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


# --------------------------------------------------------------------------- helpers


def url_problem(url: str) -> str | None:
    """Why ``url`` may not receive webhooks (at registration, at submission), or None."""
    from loopline.notify.webhook import url_problem as problem

    if len(url) > MAX_URL:
        return f"must be at most {MAX_URL} characters"
    return problem(url, settings().webhook_allow_host_list)


def new_secret() -> str:
    """A new signing secret: ``whsec_`` and 24 random bytes in base64."""
    return "whsec_" + base64.b64encode(random_secrets.token_bytes(24)).decode("ascii")


def _later(delta: timedelta) -> str:
    return ids.format_time(ids.parse_time(ids.now()) + delta)


def _signing(record: dict[str, Any] | None, now: str) -> list[str]:
    """The secrets that sign now: the current one, and the previous one in its grace."""
    if not record or not record.get("secret"):
        return []
    out = [str(record["secret"])]
    if record.get("previous") and str(record.get("previous_until") or "") > now:
        out.append(str(record["previous"]))
    return out


def _secret_view(record: dict[str, Any]) -> dict[str, Any]:
    """``{secret, previous, rotated_at}``: ``previous`` only while it still signs."""
    now = ids.now()
    previous = record.get("previous") if str(record.get("previous_until") or "") > now else None
    return {
        "secret": record["secret"],
        "previous": previous,
        "previous_expires_at": record.get("previous_until") if previous else None,
        "rotated_at": record.get("rotated_at"),
    }


def _rotation(current: dict[str, Any]) -> dict[str, Any]:
    now = ids.now()
    return {
        "secret": new_secret(),
        "previous": current["secret"],
        "previous_until": _later(ROTATION_GRACE),
        "rotated_at": now,
    }


# --------------------------------------------------------------------------- subscriptions


def _subscription_view(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": record["id"],
        "url": record["url"],
        "events": list(record.get("events") or []),
        "created_at": record.get("created_at"),
        "links": {"self": f"/v1/webhooks/{record['id']}"},
    }


def _events_problems(events: list[str]) -> list[FieldError]:
    problems: list[FieldError] = []
    if not events:
        problems.append(
            FieldError("events", "min_items", 'list at least one event type (or "*")', [])
        )
    for i, kind in enumerate(events):
        if kind not in EVENT_TYPES and kind not in WILDCARDS:
            problems.append(
                FieldError(
                    f"events[{i}]",
                    "enum",
                    "must be one of " + ", ".join((*EVENT_TYPES, *WILDCARDS)),
                    kind,
                )
            )
    return problems


def create_subscription(caller: Caller, url: str, events: list[str]) -> dict[str, Any]:
    """Subscribe ``url`` to the tenant's events of ``events``; the view with its secret
    (shown here only)."""
    problems = _events_problems(events)
    problem = url_problem(url)
    if problem:
        problems.insert(0, FieldError("url", "url", problem, url))
    if problems:
        count = len(problems)
        raise Invalid(f"the webhook has {count} problem{'s' if count != 1 else ''}", problems)
    record = {
        "id": ids.new_id("webhook"),
        "tenant": caller.tenant,
        "url": url,
        "events": list(dict.fromkeys(events)),
        "secret": new_secret(),
        "created_at": ids.now(),
    }
    if not store.put_subscription(caller.tenant, record, max_count=MAX_SUBSCRIPTIONS):
        raise Invalid(
            f"a tenant has at most {MAX_SUBSCRIPTIONS} webhooks",
            [
                FieldError(
                    "url",
                    "limit",
                    f"remove one of the {MAX_SUBSCRIPTIONS} webhooks first (DELETE /v1/webhooks/{{id}})",
                )
            ],
        )
    return {**_subscription_view(record), "secret": record["secret"]}


def list_subscriptions(
    caller: Caller, *, limit: int = 20, cursor: str | None = None
) -> dict[str, Any]:
    """A page of the tenant's subscriptions, oldest first."""
    records = sorted(store.list_subscriptions(caller.tenant), key=lambda r: str(r["id"]))
    after = ""
    if cursor is not None:
        try:
            after = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        except (ValueError, UnicodeDecodeError):
            raise bad_cursor(cursor) from None
        if not after.startswith(ids.PREFIXES["webhook"] + "_"):
            raise bad_cursor(cursor)
    rest = [r for r in records if str(r["id"]) > after]
    page = rest[:limit]
    next_cursor = None
    if len(rest) > limit:
        next_cursor = base64.urlsafe_b64encode(str(page[-1]["id"]).encode()).decode().rstrip("=")
    return {"items": [_subscription_view(r) for r in page], "next_cursor": next_cursor}


def _subscription(caller: Caller, subscription_id: str) -> dict[str, Any]:
    record = store.get_subscription(caller.tenant, subscription_id)
    if record is None:
        raise NotFound(f"there is no webhook {subscription_id}")
    return record


def get_subscription(caller: Caller, subscription_id: str) -> dict[str, Any]:
    return _subscription_view(_subscription(caller, subscription_id))


def delete_subscription(caller: Caller, subscription_id: str) -> None:
    """Remove a subscription; its pending deliveries end ``failed`` at their next attempt."""
    if not store.delete_subscription(caller.tenant, subscription_id):
        raise NotFound(f"there is no webhook {subscription_id}")


def rotate_subscription_secret(caller: Caller, subscription_id: str) -> dict[str, Any]:
    """A new secret for one subscription; the old one still signs for 24 hours."""
    for _ in range(5):
        record = _subscription(caller, subscription_id)
        fields = _rotation(record)
        if store.rotate_subscription_secret(
            caller.tenant, subscription_id, str(record["secret"]), fields
        ):
            return _secret_view({**record, **fields})
    raise Conflict("the secret was rotated by another request meanwhile; read it again")


# --------------------------------------------------------------------------- signing secret


def _tenant_secret(tenant: str) -> dict[str, Any]:
    """The tenant's signing secret record, created on first use."""
    record = store.get_signing_secret(tenant)
    if record is None:
        fields = {"secret": new_secret(), "created_at": ids.now()}
        store.create_signing_secret(tenant, fields)  # one of two concurrent creators wins
        record = store.get_signing_secret(tenant)
    assert record is not None
    return record


def signing_secret(caller: Caller) -> dict[str, Any]:
    """``{secret, previous, previous_expires_at, rotated_at}`` of the tenant's signing
    secret (per-task webhooks and human steps' ``notify: [{webhook}]``)."""
    return _secret_view(_tenant_secret(caller.tenant))


def rotate_signing_secret(caller: Caller) -> dict[str, Any]:
    """A new signing secret; the old one still signs, beside it, for 24 hours."""
    for _ in range(5):
        record = _tenant_secret(caller.tenant)
        fields = _rotation(record)
        if store.rotate_signing_secret(caller.tenant, str(record["secret"]), fields):
            return _secret_view({**record, **fields})
    raise Conflict("the secret was rotated by another request meanwhile; read it again")


# --------------------------------------------------------------------------- fan-out


def _matches(events: list[str], kind: str) -> bool:
    group = kind.split(".", 1)[0] + ".*"
    return any(e in ("*", group, kind) for e in events)


def _task_view(task: dict[str, Any]) -> dict[str, Any]:
    """The task view a webhook carries: as ``GET /v1/tasks/{id}`` shows it, large values
    as their references (a link would expire before the last retry)."""
    from loopline.service import humans, views

    runs = [] if task.get("steps") is not None else store.list_step_runs(str(task["id"]))
    view = views.task_view(task, runs, resolve=False)
    if task.get("status") == "WAITING":
        view["waiting"] = humans.waiting_of(str(task["id"]))
    return view


def _human_view(human_task_id: Any) -> dict[str, Any] | None:
    from loopline.service import humans

    record = store.get_human_task(str(human_task_id)) if human_task_id else None
    return humans.view(record) if record is not None else None


def body_of(kind: str, at: str, data: dict[str, Any]) -> str:
    """The exact text every attempt of a delivery sends."""
    return json.dumps(
        {"type": kind, "timestamp": at, "data": data},
        ensure_ascii=False,
        separators=(",", ":"),
        allow_nan=False,
    )


def _data_of(event: dict[str, Any], task: dict[str, Any]) -> dict[str, Any]:
    view = _task_view(task)
    if str(event["type"]).startswith("human."):
        ref = (event.get("data") or {}).get("human_task")
        return {"task": view, "human_task": _human_view(ref)}
    return view


def _record_event(event: dict[str, Any]) -> list[str]:
    """Record the deliveries of one event; the ids to queue (those recorded now, and
    those a previous try recorded but may not have queued)."""
    kind = str(event.get("type") or "")
    task_id = str(event.get("task_id") or "")
    if kind not in EVENT_TYPES or not task_id:
        return []
    task = store.get_task_record(task_id)
    if task is None:
        return []
    tenant = str(task["tenant"])
    targets: list[tuple[str, str, dict[str, Any]]] = []
    if task.get("webhook"):
        targets.append(("task", str(task["webhook"]), {"kind": "task"}))
    for sub in store.list_subscriptions(tenant):
        if _matches(list(sub.get("events") or []), kind):
            targets.append(
                (
                    f"sub:{sub['id']}",
                    str(sub["url"]),
                    {"kind": "subscription", "subscription": sub["id"]},
                )
            )
    if not targets:
        return []
    at = str(event.get("at") or ids.now())
    body = body_of(kind, at, _data_of(event, task))
    queued: list[str] = []
    for key, url, target in targets:
        delivery_id = ids.derived_id("delivery", at, f"{task_id}:{event['seq']}:{key}")
        created = store.put_delivery(
            {
                "id": delivery_id,
                "tenant": tenant,
                "task": task_id,
                "event": {"type": kind, "seq": event["seq"], "at": at},
                "url": url,
                "target": target,
                "body": body,
                "status": PENDING,
                "attempts": [],
                "attempt_count": 0,
                "created_at": ids.now(),
                "next_attempt_at": ids.now(),
            }
        )
        if not created:
            existing = store.get_delivery(delivery_id)
            if not existing or existing.get("status") != PENDING or existing.get("attempt_count"):
                continue  # queued before: it has been tried
        queued.append(delivery_id)
    return queued


def _queue(delivery_ids: list[str]) -> None:
    """Put one message per delivery on the webhook queue; raise when SQS took not all."""
    if not delivery_ids:
        return
    from loopline.notify import outbox

    queue = settings().webhook_queue_url
    if not queue:
        raise RuntimeError("LOOPLINE_WEBHOOK_QUEUE_URL is not set: no webhook queue")
    outbox.send([{"delivery": d} for d in delivery_ids], queue=queue)


def fan_out(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The fan-out function: each stream record of a new event → its deliveries, recorded
    and queued. A record that fails is reported (``batchItemFailures``) and retried by the
    stream from there."""
    from aws_lambda_powertools.utilities.batch import (
        BatchProcessor,
        EventType,
        process_partial_response,
    )
    from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import (
        DynamoDBRecord,
    )

    def handle(record: DynamoDBRecord) -> None:
        image = (record.raw_event.get("dynamodb") or {}).get("NewImage") or {}
        parsed = store.event_of_item(image)
        if parsed is None:
            return
        _queue(_record_event(parsed))

    if not event.get("Records"):
        return {"batchItemFailures": []}
    processor = BatchProcessor(
        event_type=EventType.DynamoDBStreams, raise_on_entire_batch_failure=False
    )
    return dict(
        process_partial_response(
            event=event, record_handler=handle, processor=processor, context=context
        )
    )


def notify(human: dict[str, Any], url: str, link: str, kind: str, at: str) -> str | None:
    """Record and queue the delivery of a human step's ``notify: [{webhook}]``: the
    ``human.waiting`` (or ``human.escalated``) event with the recipient's ``link``,
    signed with the tenant's secret; ``timestamp`` is the event's ``at``. Returns the
    delivery id (None for an execution that is not a task: nothing is sent)."""
    task_id = str(human.get("task") or "")
    task = store.get_task_record(task_id) if task_id else None
    if task is None:
        return None
    from loopline.service import humans

    now = ids.now()
    data = {"task": _task_view(task), "human_task": humans.view(human), "link": link}
    delivery_id = ids.new_id("delivery")
    store.put_delivery(
        {
            "id": delivery_id,
            "tenant": str(task["tenant"]),
            "task": task_id,
            "event": {"type": kind, "seq": None, "at": at},
            "url": url,
            "target": {"kind": "notify", "human_task": human["id"]},
            "body": body_of(kind, at, data),
            "status": PENDING,
            "attempts": [],
            "attempt_count": 0,
            "created_at": now,
            "next_attempt_at": now,
        }
    )
    _queue([delivery_id])
    return delivery_id


# --------------------------------------------------------------------------- attempts


class _Later(Exception):
    """The message is to come back in ``seconds`` (a failed attempt, or a wait)."""

    def __init__(self, seconds: float, why: str) -> None:
        super().__init__(why)
        self.seconds = seconds


def retry_delay(attempt: int, delays: tuple[float, ...] | None = None) -> float:
    """Seconds before the attempt after the ``attempt``-th failed one, with jitter."""
    chosen = delays if delays is not None else settings().webhook_retry_delays
    return chosen[attempt - 1] * random.uniform(*JITTER)


def _secrets_of(delivery: dict[str, Any], now: str) -> list[str] | None:
    """The secrets that sign ``delivery`` now; None when its subscription is gone."""
    target = delivery.get("target") or {}
    if target.get("kind") == "subscription":
        sub = store.get_subscription(str(delivery["tenant"]), str(target.get("subscription")))
        return _signing(sub, now) if sub is not None else None
    return _signing(_tenant_secret(str(delivery["tenant"])), now)


def _webhook_event(delivery: dict[str, Any], kind: str, attempts: int) -> None:
    """``webhook.delivered`` / ``webhook.failed`` on the delivery's task."""
    if not delivery.get("task"):
        return
    target = delivery.get("target") or {}
    data = {
        "delivery": delivery["id"],
        "event": delivery.get("event"),
        "target": target.get("kind"),
        "attempts": attempts,
    }
    if target.get("subscription"):
        data["webhook"] = target["subscription"]
    store.append_event(str(delivery["task"]), store.NewEvent(kind, None, data))


def _finish_failure(delivery: dict[str, Any]) -> None:
    """What a delivery that failed its last attempt still owes: its message on the
    dead-letter queue, then ``webhook.failed``; each once, remembered on the record."""
    if not delivery.get("dead_lettered"):
        from loopline import aws

        dlq = settings().webhook_dlq_url
        if dlq:
            aws.client("sqs").send_message(
                QueueUrl=dlq, MessageBody=json.dumps({"delivery": delivery["id"]})
            )
        else:
            log.error(
                "delivery %s failed every attempt and no dead-letter queue is set", delivery["id"]
            )
        store.update_delivery(str(delivery["id"]), {"dead_lettered": True})
    if not delivery.get("failure_recorded"):
        _webhook_event(delivery, "webhook.failed", int(delivery.get("attempt_count") or 0))
        store.update_delivery(str(delivery["id"]), {"failure_recorded": True})


def attempt(delivery_id: str, *, sent_at: float | None = None) -> None:
    """One attempt at a delivery (a message of the webhook queue). Returns when the
    message is done with; raises ``_Later`` when it must come back."""
    from loopline.notify import webhook

    delivery = store.get_delivery(delivery_id)
    if delivery is None:
        log.warning("no delivery %s: message dropped", delivery_id)
        return
    status = delivery.get("status")
    if status == FAILED and not delivery.get("manual"):
        if not (delivery.get("dead_lettered") and delivery.get("failure_recorded")):
            _finish_failure(delivery)
        return
    if status != PENDING:
        return  # delivered, or a duplicate message
    now = ids.now()
    wait = (
        ids.parse_time(str(delivery.get("next_attempt_at") or now)) - ids.parse_time(now)
    ).total_seconds()
    if wait > 0.5:
        if sent_at is not None and time.time() - sent_at > RESEND_AFTER_SECONDS:
            _queue([delivery_id])  # a fresh message outlives SQS's retention
            return
        raise _Later(wait, "not due yet")
    count = int(delivery.get("attempt_count") or 0)
    keys = _secrets_of(delivery, now)
    if keys is None:
        outcome = webhook.Attempt(now, None, 0, "the webhook was deleted")
    else:
        headers = webhook.signature_headers(delivery_id, str(delivery["body"]), keys)
        outcome = webhook.post(
            str(delivery["url"]),
            str(delivery["body"]),
            headers,
            allow_hosts=settings().webhook_allow_host_list,
        )
    attempts = [*list(delivery.get("attempts") or []), outcome.to_record()][-100:]
    done = count + 1
    manual = bool(delivery.get("manual"))
    if outcome.delivered:
        if store.update_delivery(
            delivery_id,
            {
                "status": DELIVERED,
                "attempts": attempts,
                "attempt_count": done,
                "delivered_at": outcome.at,
                "next_attempt_at": None,
                "manual": None,
            },
            expect_status={PENDING},
            expect_attempts=count,
        ):
            _webhook_event(delivery, "webhook.delivered", done)
        return
    last = manual or keys is None or done >= len(settings().webhook_retry_delays) + 1
    if last:
        if not store.update_delivery(
            delivery_id,
            {
                "status": FAILED,
                "attempts": attempts,
                "attempt_count": done,
                "failed_at": outcome.at,
                "next_attempt_at": None,
                "manual": None,
            },
            expect_status={PENDING},
            expect_attempts=count,
        ):
            return  # another message recorded this attempt
        log.warning(
            "webhook delivery %s failed its last attempt (%d): %s",
            delivery_id,
            done,
            outcome.error,
        )
        if not manual:
            _finish_failure({**delivery, "attempt_count": done})
        return
    delay = retry_delay(done)
    if not store.update_delivery(
        delivery_id,
        {
            "attempts": attempts,
            "attempt_count": done,
            "next_attempt_at": ids.format_time(
                ids.parse_time(outcome.at) + timedelta(seconds=delay)
            ),
        },
        expect_status={PENDING},
        expect_attempts=count,
    ):
        return
    log.info("webhook delivery %s attempt %d failed: %s", delivery_id, done, outcome.error)
    raise _Later(delay, outcome.error or "failed")


def _hide(record: Any, seconds: float) -> None:
    """Keep a message hidden for ``seconds`` (12 hours at most: SQS's limit per receive)."""
    from loopline import aws

    delay = max(1, min(SQS_MAX_VISIBILITY, math.ceil(seconds)))
    try:
        aws.client("sqs").change_message_visibility(
            QueueUrl=_queue_url_of(record),
            ReceiptHandle=record["receiptHandle"],
            VisibilityTimeout=delay,
        )
    except Exception as exc:  # the queue's own visibility timeout applies instead
        log.warning("could not delay webhook message %s: %s", record.get("messageId"), exc)


def _queue_url_of(record: dict[str, Any]) -> str:
    """The queue URL of an SQS record (its ARN's account and name), or the setting."""
    configured = settings().webhook_queue_url
    arn = str(record.get("eventSourceARN") or "")
    if configured and arn.endswith(":" + configured.rstrip("/").rsplit("/", 1)[-1]):
        return configured
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

    return SQSRecord(record).queue_url


def consume(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The webhook function: the batch's messages attempted at once (each in a thread of
    its own, so a slow receiver delays no other), the partial batch response listing
    those to come back, each hidden until its next attempt first."""
    from aws_lambda_powertools.utilities.batch import (
        AsyncBatchProcessor,
        EventType,
        async_process_partial_response,
    )
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

    def handle_sync(record: SQSRecord) -> None:
        raw = record.raw_event
        try:
            message = json.loads(record.body)
            delivery_id = str(message["delivery"])
        except (ValueError, KeyError, TypeError):
            log.error('webhook message %s is not {"delivery": id}: dropped', record.message_id)
            return
        sent = raw.get("attributes", {}).get("SentTimestamp")
        try:
            attempt(delivery_id, sent_at=int(sent) / 1000 if sent else None)
        except _Later as later:
            _hide(raw, later.seconds)
            raise
        except Exception:
            log.exception("webhook delivery %s could not be attempted", delivery_id)
            _hide(raw, retry_delay(1))
            raise

    async def handle(record: SQSRecord) -> None:
        await asyncio.to_thread(handle_sync, record)

    if not event.get("Records"):
        return {"batchItemFailures": []}
    processor = AsyncBatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return dict(
        async_process_partial_response(
            event=event, record_handler=handle, processor=processor, context=context
        )
    )


# --------------------------------------------------------------------------- the delivery log


def delivery_view(record: dict[str, Any]) -> dict[str, Any]:
    """A delivery as the API shows it (no body, no secret)."""
    target = dict(record.get("target") or {})
    return {
        "id": record["id"],
        "task": record.get("task"),
        "event": record.get("event"),
        "url": record.get("url"),
        "target": target,
        "status": record.get("status"),
        "attempts": list(record.get("attempts") or []),
        "next_attempt_at": record.get("next_attempt_at")
        if record.get("status") == PENDING
        else None,
        "created_at": record.get("created_at"),
        "delivered_at": record.get("delivered_at"),
        "failed_at": record.get("failed_at"),
        "links": {
            "self": f"/v1/webhook-deliveries/{record['id']}",
            "retry": f"/v1/webhook-deliveries/{record['id']}/retry",
        },
    }


def _delivery(caller: Caller, delivery_id: str) -> dict[str, Any]:
    record = store.get_delivery(delivery_id) if delivery_id.startswith("dlv_") else None
    if record is None or record.get("tenant") != caller.tenant:
        raise NotFound(f"there is no webhook delivery {delivery_id}")
    return record


def get_delivery(caller: Caller, delivery_id: str) -> dict[str, Any]:
    return delivery_view(_delivery(caller, delivery_id))


def list_deliveries(
    caller: Caller,
    *,
    task: str | None = None,
    status: str | None = None,
    limit: int = 20,
    cursor: str | None = None,
) -> dict[str, Any]:
    """A page of the tenant's deliveries (of one task), newest first."""
    if task is not None and store.get_task(caller.tenant, task) is None:
        raise NotFound(f"there is no task {task}")
    try:
        items, next_cursor = store.list_deliveries(
            caller.tenant, task=task, status=status, limit=limit, cursor=cursor
        )
    except store.InvalidCursor:
        raise bad_cursor(cursor) from None
    return {"items": [delivery_view(r) for r in items], "next_cursor": next_cursor}


def retry(caller: Caller, delivery_id: str) -> dict[str, Any]:
    """Send a delivered or failed delivery again, now (one attempt, through the queue)."""
    record = _delivery(caller, delivery_id)
    if record.get("status") == PENDING:
        raise Conflict(
            f"webhook delivery {delivery_id} is pending: its next attempt is at "
            f"{record.get('next_attempt_at')}"
        )
    now = ids.now()
    fields = {"status": PENDING, "manual": True, "next_attempt_at": now}
    if not store.update_delivery(
        delivery_id,
        fields,
        expect_status={DELIVERED, FAILED},
        expect_attempts=record.get("attempt_count") or 0,
    ):
        raise Conflict(f"webhook delivery {delivery_id} changed meanwhile; read it again")
    _queue([delivery_id])
    return delivery_view({**record, **fields})
