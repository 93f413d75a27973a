"""SQS event sources of the local stack's functions (what Lambda's pollers do in AWS).

In AWS, an ``SQS`` event of a function is an event source mapping: Lambda polls the
queue, invokes the function with a batch of records, and deletes what the function
handled. moto keeps the queues but runs no function of the local stack (they are Python
callables dispatched in-process), so each mapping gets a poller thread here that does
what Lambda does:

- receives up to ``BatchSize`` messages (SQS gives at most 10 per call) and invokes the
  function once with them, as Lambda's SQS event (``Records: [{messageId,
  receiptHandle, body, attributes: {ApproximateReceiveCount, SentTimestamp, SenderId,
  ApproximateFirstReceiveTimestamp}, messageAttributes, md5OfBody, eventSource:
  "aws:sqs", eventSourceARN, awsRegion}]``);
- when the function returns, deletes the batch's messages, except, with
  ``FunctionResponseTypes: [ReportBatchItemFailures]``, those its answer lists in
  ``batchItemFailures`` (an answer naming a message not in the batch fails the whole
  batch, as in AWS); when it raises, deletes none;
- leaves what it did not delete to come back after its visibility timeout (the queue's,
  or what the function set with ``ChangeMessageVisibility``), counted by
  ``ApproximateReceiveCount``; moto's redrive policy then moves a message received
  ``maxReceiveCount`` times to the dead-letter queue.

One poller per mapping, one batch at a time (Lambda runs several at once). A poller wakes
as soon as a message is sent to its queue (moto's ``Queue.add_message`` is patched to
tell it) and otherwise looks again every ``POLL_INTERVAL`` seconds, for messages whose
visibility timeout ended (in moto's queue: it calls ``ReceiveMessage`` only when the queue
holds a visible message, so an idle poller costs next to nothing). ``drain`` waits until
no batch is being handled and no queue of a mapping holds a visible message.
"""

from __future__ import annotations

import functools
import logging
import threading
import uuid
from dataclasses import dataclass
from typing import Any

from loopline.local.event_sources import EventSources, Invoke

log = logging.getLogger("loopline.local")

#: Seconds between looks at a queue that had nothing to receive.
POLL_INTERVAL = 0.1
#: SQS's largest batch per ReceiveMessage.
RECEIVE_MAX = 10


@dataclass(frozen=True)
class SqsMapping:
    """One function's ``SQS`` event: its queue and how batches are handed over."""

    function: str
    queue_url: str
    queue_arn: str
    batch_size: int = 10
    report_item_failures: bool = False

    @property
    def queue_name(self) -> str:
        return self.queue_url.rstrip("/").rsplit("/", 1)[-1]


def record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """Lambda's SQS event record of a received message (``ReceiveMessage``'s shape)."""
    system = message.get("Attributes") or {}
    attributes = {
        k: str(system[k])
        for k in (
            "ApproximateReceiveCount",
            "SentTimestamp",
            "SenderId",
            "ApproximateFirstReceiveTimestamp",
            "MessageGroupId",
            "MessageDeduplicationId",
            "SequenceNumber",
            "AWSTraceHeader",
        )
        if k in system
    }
    out: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": attributes,
        "messageAttributes": {
            name: {
                "stringValue": value.get("StringValue"),
                "binaryValue": value.get("BinaryValue"),
                "stringListValues": value.get("StringListValues") or [],
                "binaryListValues": value.get("BinaryListValues") or [],
                "dataType": value.get("DataType"),
            }
            for name, value in (message.get("MessageAttributes") or {}).items()
        },
        "md5OfBody": message.get("MD5OfBody"),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    if message.get("MD5OfMessageAttributes"):
        out["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return out


def failed_ids(answer: Any, batch: set[str]) -> set[str] | None:
    """The message ids a partial batch response reports as failed; None when the answer
    fails the whole batch (an item that is not in it, or no ``itemIdentifier``)."""
    if not isinstance(answer, dict) or not answer.get("batchItemFailures"):
        return set()
    failures = answer["batchItemFailures"]
    if not isinstance(failures, list):
        return None
    out = set()
    for item in failures:
        ident = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not ident or ident not in batch:
            return None
        out.add(str(ident))
    return out


class SqsEventSources(EventSources):
    """The pollers of every mapping; ``start()`` patches moto, ``stop()`` ends them."""

    def __init__(self, invoke: Invoke, region: str) -> None:
        super().__init__(invoke, region)
        self.mappings: list[SqsMapping] = []

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Tell the pollers when moto's queues receive a message, and let moto check a
        received message's retention without building every attribute of its queue."""
        from moto.core.utils import unix_time
        from moto.sqs.models import Queue, SQSBackend

        original = Queue.__dict__["add_message"]
        original_retained = SQSBackend.__dict__["is_message_valid_based_on_retention_period"]
        sources = self

        @functools.wraps(original)
        def add_message(queue: Any, message: Any) -> None:
            original(queue, message)
            sources._tell(queue.name)

        @functools.wraps(original_retained)
        def retained(backend: Any, queue_name: str, message: Any) -> bool:
            # moto reads the retention period from all of the queue's attributes, three
            # times per received message; the counts among them walk every message
            # (a full queue made each receive slower in proportion). Same rule, one field.
            retention = int(backend.get_queue(queue_name).message_retention_period)
            return bool(retention + message.sent_timestamp / 1000 > unix_time())

        Queue.add_message = add_message  # type: ignore[method-assign,assignment]
        SQSBackend.is_message_valid_based_on_retention_period = retained  # type: ignore[method-assign,assignment]

        def undo() -> None:
            Queue.add_message = original  # type: ignore[method-assign]
            SQSBackend.is_message_valid_based_on_retention_period = original_retained  # type: ignore[method-assign]

        self._undo = undo

    def add(self, mapping: SqsMapping) -> None:
        """Start polling ``mapping``'s queue for its function."""
        self.mappings.append(mapping)
        wake = threading.Event()
        self._spawn(
            mapping.queue_name, wake, f"loopline-sqs-{mapping.function}", self._poll, mapping, wake
        )

    def _pending(self) -> bool:
        """A mapped queue holds a visible message."""
        return any(self._visible(m) for m in self.mappings)

    def _visible(self, mapping: SqsMapping) -> int:
        from moto.sqs.models import sqs_backends

        from loopline.local.executor import ACCOUNT_ID

        try:
            queue = sqs_backends[ACCOUNT_ID][self.region].get_queue(mapping.queue_name)
        except Exception:  # the queue is gone (the mock stopped)
            return 0
        return len(queue.messages)

    # ------------------------------------------------------------------ polling

    def _poll(self, mapping: SqsMapping, wake: threading.Event) -> None:
        import boto3

        sqs = boto3.client(
            "sqs",
            region_name=self.region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        while not self._stopping.is_set():
            wake.clear()
            handled = False
            if not self._visible(mapping):  # nothing to receive: no call to make
                wake.wait(POLL_INTERVAL)
                continue
            with self._working():
                try:
                    handled = self._one_batch(sqs, mapping)
                except Exception:
                    if not self._stopping.is_set():
                        log.exception("the SQS poller of %s failed", mapping.function)
            if not handled:
                wake.wait(POLL_INTERVAL)

    def _one_batch(self, sqs: Any, mapping: SqsMapping) -> bool:
        """Receive, invoke and delete one batch; False when there was nothing."""
        messages: list[dict[str, Any]] = []
        while len(messages) < mapping.batch_size:
            answer = sqs.receive_message(
                QueueUrl=mapping.queue_url,
                MaxNumberOfMessages=min(RECEIVE_MAX, mapping.batch_size - len(messages)),
                WaitTimeSeconds=0,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            got = answer.get("Messages") or []
            messages += got
            if len(got) < RECEIVE_MAX:
                break
        if not messages:
            return False
        event = {"Records": [record(m, mapping.queue_arn, self.region) for m in messages]}
        ids = {m["MessageId"] for m in messages}
        try:
            answer = self._invoke(mapping.function, event)
        except Exception as exc:
            log.debug("%s failed on a batch of %d: %s", mapping.function, len(messages), exc)
            return True  # every message comes back after its visibility timeout
        failed = failed_ids(answer, ids) if mapping.report_item_failures else set()
        if failed is None:
            log.warning(
                "%s answered a partial batch response naming no message of the batch: "
                "the whole batch is retried",
                mapping.function,
            )
            return True
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), RECEIVE_MAX):
            entries = [
                {"Id": uuid.uuid4().hex, "ReceiptHandle": m["ReceiptHandle"]}
                for m in done[start : start + RECEIVE_MAX]
            ]
            sqs.delete_message_batch(QueueUrl=mapping.queue_url, Entries=entries)
        return True
