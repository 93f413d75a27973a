"""The outbox: messages to deliver later, on the SQS queue ``LOOPLINE_OUTBOX_QUEUE``.

The domain records what it decided first, then ``send``s the messages that tell people
(or Step Functions) about it; the outbox function receives them in batches and hands each
to the domain's ``deliver`` (``consume``). A message that fails stays on the queue: it
is reported as a batch item failure and hidden for the retry delay of its attempt
(``LOOPLINE_OUTBOX_RETRY_DELAYS``, with jitter), then tried again, until the queue's
redrive policy moves it to the dead-letter queue. Message bodies are JSON objects
(docs/internals.md, "Notifications"); they may carry a link's token, so they are never
logged.
"""

from __future__ import annotations

import json
import logging
import math
import random
from collections.abc import Callable, Sequence
from typing import Any

from loopline.notify import NotifyError
from loopline.settings import SQS_MAX_VISIBILITY, settings

log = logging.getLogger("loopline.notify")

#: Entries per SendMessageBatch call (SQS's limit).
BATCH = 10
#: Each retry delay is multiplied by a factor drawn from this range.
JITTER = (0.9, 1.1)


class OutboxError(NotifyError):
    """Some messages were not put on the queue; ``failed`` holds their positions in the
    list given to ``send``."""

    def __init__(self, message: str, failed: list[int]) -> None:
        super().__init__(message)
        self.failed = failed


def send(messages: Sequence[dict[str, Any]], *, queue: str | None = None) -> None:
    """Put ``messages`` (JSON objects) on the outbox queue (or ``queue``), ten per
    ``SendMessageBatch``. Raise ``OutboxError`` naming every message SQS did not take (the
    others are sent)."""
    if not messages:
        return
    from botocore.exceptions import BotoCoreError, ClientError

    from loopline import aws

    queue = queue or settings().outbox_queue
    if not queue:
        raise OutboxError(
            "LOOPLINE_OUTBOX_QUEUE is not set: no outbox queue", list(range(len(messages)))
        )
    client = aws.client("sqs")
    failed: list[int] = []
    reasons: list[str] = []
    for start in range(0, len(messages), BATCH):
        chunk = messages[start : start + BATCH]
        entries = [
            {
                "Id": str(start + i),
                "MessageBody": json.dumps(m, ensure_ascii=False, separators=(",", ":")),
            }
            for i, m in enumerate(chunk)
        ]
        try:
            answer = client.send_message_batch(QueueUrl=queue, Entries=entries)
        except (ClientError, BotoCoreError) as exc:
            failed += range(start, start + len(chunk))
            reasons.append(_reason(exc))
            continue
        for entry in answer.get("Failed") or []:
            failed.append(int(entry["Id"]))
            reasons.append(str(entry.get("Message") or entry.get("Code") or "refused"))
    if failed:
        count = len(failed)
        why = "; ".join(dict.fromkeys(reasons))
        raise OutboxError(
            f"{count} of {len(messages)} outbox message{'s' if len(messages) != 1 else ''} "
            f"{'were' if count != 1 else 'was'} not queued: {why}",
            sorted(failed),
        )


def _reason(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error") or {}
        return str(error.get("Message") or error.get("Code") or exc)
    return str(exc)


# --------------------------------------------------------------------------- consuming


def retry_delay(
    receive_count: int,
    delays: Sequence[float] | None = None,
    *,
    rng: random.Random | None = None,
) -> int:
    """Seconds to hide a message that failed on its ``receive_count``-th delivery: the
    ``receive_count``-th delay (the last one once they run out), with jitter, in whole
    seconds (what SQS takes), at least 1 and at most SQS's 12 hours."""
    chosen = tuple(delays) if delays is not None else settings().outbox_retry_delays
    base = chosen[min(max(receive_count, 1), len(chosen)) - 1]
    factor = (rng or random).uniform(*JITTER)
    return max(1, min(SQS_MAX_VISIBILITY, math.ceil(base * factor)))


def _postpone(record: Any, receive_count: int, at_least: float | None = None) -> None:
    """Hide a failed record for its retry delay (``ChangeMessageVisibility``), or as long
    as the service asked (``Retry-After``) when that is longer."""
    from loopline import aws

    delay = retry_delay(receive_count)
    if at_least:
        delay = max(delay, min(SQS_MAX_VISIBILITY, math.ceil(at_least)))
    try:
        aws.client("sqs").change_message_visibility(
            QueueUrl=record.queue_url, ReceiptHandle=record.receipt_handle, VisibilityTimeout=delay
        )
    except Exception as exc:  # the queue's own visibility timeout applies instead
        log.warning("could not delay the retry of outbox message %s: %s", record.message_id, exc)


def _describe(message: Any) -> dict[str, Any]:
    """What a log line may say about a message (never its link)."""
    if not isinstance(message, dict):
        return {}
    return {k: message[k] for k in ("kind", "human_task", "notification") if k in message}


def consume(
    event: dict[str, Any], context: Any, deliver: Callable[[dict[str, Any]], None]
) -> dict[str, Any]:
    """Deliver each record of an SQS event with ``deliver(message)``; the partial batch
    response (``batchItemFailures``) lists the records that failed, each hidden for its
    retry delay first. A body that is not a JSON object fails too (and ends in the
    dead-letter queue)."""
    from aws_lambda_powertools.utilities.batch import (
        BatchProcessor,
        EventType,
        process_partial_response,
    )
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

    def handle(record: SQSRecord) -> None:
        message: Any = None
        try:
            message = json.loads(record.body)
            if not isinstance(message, dict):
                raise ValueError("an outbox message must be a JSON object")
            deliver(message)
        except Exception as exc:
            count = int(record.attributes.approximate_receive_count or 1)
            _postpone(record, count, getattr(exc, "retry_after", None))
            log.warning(
                "outbox message %s failed on attempt %d: %s",
                record.message_id,
                count,
                exc,
                extra={"outbox": _describe(message), "permanent": getattr(exc, "permanent", False)},
            )
            raise

    if not event.get("Records"):
        return {"batchItemFailures": []}  # Powertools refuses an empty batch
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return dict(
        process_partial_response(
            event=event, record_handler=handle, processor=processor, context=context
        )
    )
