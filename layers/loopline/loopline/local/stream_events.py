"""DynamoDB stream event sources of the local stack's functions (what Lambda's stream
pollers do in AWS).

In AWS, a ``DynamoDB`` event of a function is an event source mapping: Lambda reads the
table's stream shard by shard, in order, and invokes the function with batches of
records, moving its checkpoint past a batch only when the function handled it. moto keeps
the stream (``moto.dynamodb`` ``StreamShard``, read here through the
``dynamodbstreams`` API: ``DescribeStream``, ``GetShardIterator``, ``GetRecords``) but
runs no function of the local stack (they are Python callables dispatched in-process),
so each mapping gets a poller thread here that does what Lambda does:

- reads the stream from its ``StartingPosition`` (``TRIM_HORIZON``: the oldest record
  kept; ``LATEST``: what is written after the stack is provisioned), up to ``BatchSize``
  records at a time, waiting up to ``MaximumBatchingWindowInSeconds`` for a batch to fill;
- keeps the records that match one of the mapping's ``FilterCriteria`` patterns
  (EventBridge pattern syntax over the record as the function would get it:
  ``eventName``, ``dynamodb.NewImage.<attribute>.S``…, matched by moto's own EventBridge
  matcher), and checkpoints past the others without invoking anything;
- invokes the function with Lambda's DynamoDB stream event (``Records: [{eventID,
  eventName, eventVersion: "1.1", eventSource: "aws:dynamodb", awsRegion, dynamodb:
  {ApproximateCreationDateTime, Keys, NewImage, OldImage, SequenceNumber, SizeBytes,
  StreamViewType}, eventSourceARN}]``), in stream order;
- when it returns, checkpoints past the batch, except, with ``FunctionResponseTypes:
  [ReportBatchItemFailures]``, before the lowest sequence number its
  ``batchItemFailures`` name: the records from there on are retried, the earlier ones
  are not sent again (an answer naming no record of the batch fails the whole batch, as
  in AWS);
- when it raises, retries the whole batch, or with ``BisectBatchOnFunctionError`` its two
  halves one after the other (a split is not counted as a retry, as in AWS);
- after ``MaximumRetryAttempts`` retries of a batch (``-1``: no limit), or for records
  older than ``MaximumRecordAgeInSeconds``, sends Lambda's invocation record
  (``{requestContext, responseContext, version, timestamp, DDBStreamBatchInfo: {shardId,
  startSequenceNumber, endSequenceNumber, approximateArrivalOfFirstRecord,
  approximateArrivalOfLastRecord, batchSize, streamArn}}``) to the mapping's
  ``DestinationConfig.OnFailure`` queue or topic, and moves past the batch.

Retries wait ``RETRY_DELAYS`` (a fraction of a second, growing to one second; Lambda
backs off longer). One poller per mapping, one batch at a time, the table's one shard
(Lambda reads several shards at once, and up to ``ParallelizationFactor`` batches per
shard). A poller wakes as soon as its table is written (moto's ``StreamShard.add`` is
patched to tell it) and otherwise looks again every ``POLL_INTERVAL`` seconds.

The stream is read under the lock that serialises moto's DynamoDB operations
(``loopline.local.fidelity``): a cancelled transaction puts back the items it wrote and
removes the records it had added, so a shard is only read while no write is half done.
moto's shard keeps every record forever; the records every poller of a table has passed are
trimmed from it (its starting sequence number moves up with them, so moto numbers new
records on), as DynamoDB trims records after 24 hours: a long ``loopline serve`` does not
grow without bound (a reader of its own holding a shard iterator on records trimmed since
gets an error from moto, as ``TrimmedDataAccessException`` in AWS). The shard iterators a
poller asked for are forgotten once read (moto keeps every one, AWS lets them expire
after 15 minutes). An ``UpdateItem`` that creates its item adds one record, as in AWS
(moto adds two: the bare keys it puts first, then the item). ``drain`` waits until no
batch is being handled and every poller has passed the end of its stream.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from loopline.local.event_sources import EventSources, Invoke
from loopline.local.sqs_events import failed_ids

log = logging.getLogger("loopline.local")

#: Seconds between looks at a stream with nothing new (a write wakes the poller at once).
POLL_INTERVAL = 0.1
#: Seconds before each retry of a failed batch, the last one repeated.
RETRY_DELAYS = (0.05, 0.1, 0.2, 0.5, 1.0)
#: DynamoDB Streams' largest ``GetRecords`` answer.
GET_RECORDS_MAX = 1000
#: The event version Lambda gives the records of a DynamoDB stream event.
EVENT_VERSION = "1.1"


@dataclass(frozen=True)
class StreamMapping:
    """One function's ``DynamoDB`` event: its table's stream and how batches are handed
    over, retried and given up."""

    function: str
    function_arn: str
    stream_arn: str
    starting_position: str = "TRIM_HORIZON"
    batch_size: int = 100
    batching_window: float = 0.0
    report_item_failures: bool = False
    bisect_on_error: bool = False
    #: Retries of a failing batch before it is given up; -1: no limit.
    max_retries: int = -1
    #: Age in seconds past which a record is given up instead of handed over; -1: none.
    max_record_age: int = -1
    #: Where a batch given up is recorded: an SQS queue URL or an SNS topic ARN.
    on_failure: str | None = None
    #: The ``FilterCriteria`` patterns (JSON text); a record is kept when one matches.
    filters: tuple[str, ...] = ()

    @property
    def table_name(self) -> str:
        """``arn:aws:dynamodb:<region>:<account>:table/<name>/stream/<label>`` → name."""
        return self.stream_arn.split(":", 5)[-1].split("/")[1]


def compile_filters(patterns: tuple[str, ...] | list[str]) -> list[Any]:
    """moto's EventBridge matchers of ``patterns``; ``ValueError(index, reason)`` for the
    first one that is not a valid pattern."""
    from moto.events.exceptions import InvalidEventPatternException
    from moto.events.models import EventPattern

    out = []
    for i, pattern in enumerate(patterns):
        try:
            if not isinstance(json.loads(pattern), dict):
                raise ValueError(i, "a pattern is a JSON object")
            out.append(EventPattern.load(pattern))
        except json.JSONDecodeError as exc:
            raise ValueError(i, f"not JSON: {exc}") from None
        except InvalidEventPatternException as exc:
            raise ValueError(i, exc.message.rsplit("Reason: ", 1)[-1]) from None
    return out


def matches(filters: list[Any], record: dict[str, Any]) -> bool:
    """Whether ``record`` passes the mapping's filters (no filter: every record)."""
    return not filters or any(f.matches_event(record) for f in filters)


def _attribute_json(value: Any) -> Any:
    """An ``AttributeValue`` as the event's JSON has it (binary values base64-encoded)."""
    if isinstance(value, dict):
        return {k: _attribute_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_attribute_json(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    return value


def _epoch_seconds(value: Any) -> int:
    if isinstance(value, datetime):
        return int(value.timestamp())
    return int(float(value))


def record(raw: dict[str, Any], stream_arn: str, region: str) -> dict[str, Any]:
    """Lambda's DynamoDB stream event record of a ``GetRecords`` record."""
    stream = raw.get("dynamodb") or {}
    dynamodb: dict[str, Any] = {
        "ApproximateCreationDateTime": _epoch_seconds(
            stream.get("ApproximateCreationDateTime") or time.time()
        ),
        "Keys": _attribute_json(stream.get("Keys") or {}),
    }
    for image in ("NewImage", "OldImage"):
        if image in stream:
            dynamodb[image] = _attribute_json(stream[image])
    dynamodb.update(
        SequenceNumber=str(stream["SequenceNumber"]),
        SizeBytes=int(stream.get("SizeBytes") or 0),
        StreamViewType=stream.get("StreamViewType"),
    )
    out: dict[str, Any] = {
        "eventID": raw.get("eventID") or uuid.uuid4().hex,
        "eventName": raw.get("eventName"),
        "eventVersion": EVENT_VERSION,
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": dynamodb,
        "eventSourceARN": stream_arn,
    }
    if raw.get("userIdentity"):
        out["userIdentity"] = raw["userIdentity"]
    return out


def _seq(rec: dict[str, Any]) -> int:
    return int(rec["dynamodb"]["SequenceNumber"])


def _arrival(rec: dict[str, Any]) -> str:
    moment = datetime.fromtimestamp(rec["dynamodb"]["ApproximateCreationDateTime"], UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class _Batch:
    """Records handed over together: ``first``..``last`` is the stretch of the stream they
    stand for (records filtered out within it included)."""

    records: list[dict[str, Any]]
    first: int
    last: int
    #: Failed invocations of this batch so far (its retries; a split does not count).
    failures: int = 0
    #: Invocations so far (``approximateInvokeCount``).
    invocations: int = 0


@dataclass
class _Poller:
    mapping: StreamMapping
    filters: list[Any]
    shard_id: str
    position: int
    wake: threading.Event = field(default_factory=threading.Event)
    #: Batches to hand over before reading on (a failed batch, or the halves of one).
    pending: deque[_Batch] = field(default_factory=deque)
    #: (sequence number, failures): the failures of the batch that starts there, when it
    #: is read again after a partial batch response.
    carry: tuple[int, int] | None = None
    #: When a batch that is not full is handed over anyway (the batching window).
    window_ends: float | None = None


def failure_record(
    mapping: StreamMapping,
    shard_id: str,
    batch: list[dict[str, Any]],
    *,
    condition: str,
    invocations: int,
    function_error: str | None,
) -> dict[str, Any]:
    """What Lambda sends to a stream mapping's ``OnFailure`` destination for records it
    gives up: where they are in the stream, not the records themselves."""
    return {
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "functionArn": mapping.function_arn,
            "condition": condition,
            "approximateInvokeCount": invocations,
        },
        "responseContext": {
            "statusCode": 200,
            "executedVersion": "$LATEST",
            "functionError": function_error,
        },
        "version": "1.0",
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "DDBStreamBatchInfo": {
            "shardId": shard_id,
            "startSequenceNumber": batch[0]["dynamodb"]["SequenceNumber"],
            "endSequenceNumber": batch[-1]["dynamodb"]["SequenceNumber"],
            "approximateArrivalOfFirstRecord": _arrival(batch[0]),
            "approximateArrivalOfLastRecord": _arrival(batch[-1]),
            "batchSize": len(batch),
            "streamArn": mapping.stream_arn,
        },
    }


class StreamEventSources(EventSources):
    """The pollers of every mapping; ``start()`` patches moto, ``stop()`` ends them.

    ``lock`` is the lock moto's DynamoDB operations run under (``Fidelity.dynamodb_lock``).
    """

    def __init__(self, invoke: Invoke, region: str, lock: Any = None) -> None:
        super().__init__(invoke, region)
        self._lock = lock if lock is not None else threading.RLock()
        self.mappings: list[StreamMapping] = []
        self._pollers: list[_Poller] = []

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Tell the pollers when a record is added to a table's stream, give an
        ``UpdateItem`` that creates its item one record (moto adds two: the bare keys it
        puts first, then the item)."""
        from moto.dynamodb.models import DynamoDBBackend
        from moto.dynamodb.models.table import StreamShard, Table

        saved = [
            (StreamShard, "add", StreamShard.__dict__["add"]),
            (Table, "put_item", Table.__dict__["put_item"]),
            (DynamoDBBackend, "update_item", DynamoDBBackend.__dict__["update_item"]),
        ]
        original_add, original_put, original_update = (f for _, _, f in saved)
        sources = self
        state = threading.local()

        @functools.wraps(original_add)
        def add(shard: Any, old: Any, new: Any) -> None:
            if getattr(state, "quiet", False):
                return
            original_add(shard, old, new)
            sources._tell(shard.table.name)

        @functools.wraps(original_put)
        def put_item(table: Any, *args: Any, **kwargs: Any) -> Any:
            # Within update_item, only to create the item the update then writes.
            state.quiet = getattr(state, "updating", 0) > 0
            try:
                return original_put(table, *args, **kwargs)
            finally:
                state.quiet = False

        @functools.wraps(original_update)
        def update_item(backend: Any, *args: Any, **kwargs: Any) -> Any:
            state.updating = getattr(state, "updating", 0) + 1
            try:
                return original_update(backend, *args, **kwargs)
            finally:
                state.updating -= 1

        StreamShard.add = add  # type: ignore[method-assign,assignment]
        Table.put_item = put_item  # type: ignore[method-assign,assignment]
        DynamoDBBackend.update_item = update_item  # type: ignore[method-assign,assignment]

        def undo() -> None:
            for owner, name, original in saved:
                setattr(owner, name, original)

        self._undo = undo

    def add(self, mapping: StreamMapping) -> None:
        """Start reading ``mapping``'s stream for its function (from its starting
        position as of now)."""
        filters = compile_filters(mapping.filters)
        streams = self._client()
        description = streams.describe_stream(StreamArn=mapping.stream_arn)["StreamDescription"]
        shard = description["Shards"][0]
        if mapping.starting_position == "LATEST":
            position = self._end(mapping)
        else:
            position = int(shard["SequenceNumberRange"]["StartingSequenceNumber"])
        poller = _Poller(mapping, filters, shard["ShardId"], position)
        self.mappings.append(mapping)
        self._pollers.append(poller)
        self._spawn(
            mapping.table_name,
            poller.wake,
            f"loopline-stream-{mapping.function}",
            self._poll,
            poller,
            streams,
        )

    def _pending(self) -> bool:
        """A poller has not passed the end of its stream (retries included)."""
        return any(self._behind(p) for p in self._pollers)

    def _behind(self, poller: _Poller) -> bool:
        return bool(poller.pending) or poller.position < self._end(poller.mapping)

    # ------------------------------------------------------------------ moto's stream

    def _client(self) -> Any:
        import boto3
        from botocore.config import Config

        # botocore sends calls naming a stream to <account>.streams-ddb.<region>, which
        # moto does not serve; its regional endpoint is the one moto knows.
        return boto3.client(
            "dynamodbstreams",
            region_name=self.region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(account_id_endpoint_mode="disabled"),
        )

    def _shard(self, mapping: StreamMapping) -> Any:
        """moto's shard of the mapping's table now (a cancelled transaction replaces it);
        None when the table is gone (the mock stopped)."""
        from moto.dynamodb.models import dynamodb_backends

        from loopline.local.executor import ACCOUNT_ID

        try:
            table = dynamodb_backends[ACCOUNT_ID][self.region].get_table(mapping.table_name)
        except Exception:
            return None
        return table.stream_shard

    def _end(self, mapping: StreamMapping) -> int:
        """The sequence number the next record of the mapping's stream will get."""
        with self._lock:
            shard = self._shard(mapping)
            if shard is None:
                return 0
            return int(shard.starting_sequence_number) + len(shard.items)

    def _read(self, streams: Any, poller: _Poller, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` records from the poller's position, through the
        ``dynamodbstreams`` API, with no write half done."""
        from moto.dynamodbstreams.models import dynamodbstreams_backends

        from loopline.local.executor import ACCOUNT_ID

        out: list[dict[str, Any]] = []
        while len(out) < limit:
            asked = min(GET_RECORDS_MAX, limit - len(out))
            with self._lock:
                if poller.position + len(out) >= self._end(poller.mapping):
                    break
                iterator = streams.get_shard_iterator(
                    StreamArn=poller.mapping.stream_arn,
                    ShardId=poller.shard_id,
                    ShardIteratorType="AT_SEQUENCE_NUMBER",
                    SequenceNumber=str(poller.position + len(out)),
                )["ShardIterator"]
                answer = streams.get_records(ShardIterator=iterator, Limit=asked)
                kept = dynamodbstreams_backends[ACCOUNT_ID][self.region].shard_iterators
                kept.pop(iterator, None)
                kept.pop(answer.get("NextShardIterator"), None)
            got = answer.get("Records") or []
            out += got
            if len(got) < asked:
                break
        return out

    def _trim(self, mapping: StreamMapping) -> None:
        """Drop the records every poller of the mapping's table has passed."""
        table = mapping.table_name
        with self._lock:
            passed = min(p.position for p in self._pollers if p.mapping.table_name == table)
            shard = self._shard(mapping)
            if shard is None:
                return
            count = min(passed - int(shard.starting_sequence_number), len(shard.items))
            if count > 0:
                del shard.items[:count]
                shard.starting_sequence_number += count

    # ------------------------------------------------------------------ polling

    def _poll(self, poller: _Poller, streams: Any) -> None:
        while not self._stopping.is_set():
            poller.wake.clear()
            wait: tuple[str, float] = ("idle", POLL_INTERVAL)
            with self._working():
                try:
                    wait = self._step(streams, poller)
                except Exception:
                    if not self._stopping.is_set():
                        log.exception("the stream poller of %s failed", poller.mapping.function)
            how, seconds = wait
            if how == "retry":
                self._stopping.wait(seconds)  # a write does not hurry a retry
            elif how in ("idle", "window"):
                poller.wake.wait(seconds)

    def _step(self, streams: Any, poller: _Poller) -> tuple[str, float]:
        """Hand one batch over (or skip records no filter keeps); what to wait for next:
        ``("now", 0)``, ``("idle", s)``, ``("window", s)`` or ``("retry", s)``."""
        mapping = poller.mapping
        if poller.pending:
            batch = poller.pending[0]
        else:
            raw = self._read(streams, poller, mapping.batch_size)
            if not raw:
                return ("idle", POLL_INTERVAL)
            if mapping.batching_window > 0 and len(raw) < mapping.batch_size:
                now = time.monotonic()
                if poller.window_ends is None:
                    poller.window_ends = now + mapping.batching_window
                if now < poller.window_ends:
                    return ("window", min(poller.window_ends - now, POLL_INTERVAL))
            poller.window_ends = None
            records = [record(r, mapping.stream_arn, self.region) for r in raw]
            first, last = _seq(records[0]), _seq(records[-1])
            kept = [r for r in records if matches(poller.filters, r)]
            if not kept:
                self._advance(poller, last + 1)
                return ("now", 0.0)
            failures = poller.carry[1] if poller.carry and poller.carry[0] == first else 0
            poller.carry = None
            batch = _Batch(kept, first, last, failures, invocations=failures)
            poller.pending.append(batch)
        if mapping.max_record_age >= 0:
            self._give_up_old_records(poller, batch)
            if not batch.records:
                poller.pending.popleft()
                self._advance(poller, batch.last + 1)
                return ("now", 0.0)
        return self._hand_over(poller, batch)

    def _hand_over(self, poller: _Poller, batch: _Batch) -> tuple[str, float]:
        mapping = poller.mapping
        batch.invocations += 1
        sequence_numbers = {r["dynamodb"]["SequenceNumber"] for r in batch.records}
        error: str | None = None
        try:
            answer = self._invoke(mapping.function, {"Records": batch.records})
            failed = failed_ids(answer, sequence_numbers) if mapping.report_item_failures else set()
            if failed is None:
                log.warning(
                    "%s answered a partial batch response naming no record of the batch: "
                    "the whole batch is retried",
                    mapping.function,
                )
        except Exception as exc:
            log.debug("%s failed on a batch of %d: %s", mapping.function, len(batch.records), exc)
            failed, error = None, "Unhandled"
        if failed is not None and not failed:  # handled
            poller.pending.popleft()
            self._advance(poller, batch.last + 1)
            return ("now", 0.0)
        if failed is not None:  # a partial batch response: retried from the lowest
            lowest = min(int(s) for s in failed)
            rest = [r for r in batch.records if _seq(r) >= lowest]
            failures = batch.failures + 1 if lowest == _seq(batch.records[0]) else 1
            poller.pending.popleft()
            if self._exhausted(mapping, failures):
                self._give_up(poller, rest, "RetryAttemptsExhausted", batch.invocations, None)
                self._advance(poller, batch.last + 1)
                return ("now", 0.0)
            if mapping.bisect_on_error:  # the batch is split there: only the rest again
                retry = _Batch(rest, lowest, batch.last, failures, batch.invocations)
                poller.pending.appendleft(retry)
            else:  # read again from there (newer records may join the batch)
                poller.carry = (lowest, failures)
            self._advance(poller, lowest)
            return ("retry", _delay(failures))
        if mapping.bisect_on_error and len(batch.records) > 1:
            half = len(batch.records) // 2
            second_first = _seq(batch.records[half])
            poller.pending.popleft()
            poller.pending.extendleft(
                [
                    _Batch(
                        batch.records[half:],
                        second_first,
                        batch.last,
                        batch.failures,
                        batch.invocations,
                    ),
                    _Batch(
                        batch.records[:half],
                        batch.first,
                        second_first - 1,
                        batch.failures,
                        batch.invocations,
                    ),
                ]
            )
            return ("now", 0.0)
        batch.failures += 1
        if self._exhausted(mapping, batch.failures):
            poller.pending.popleft()
            self._give_up(poller, batch.records, "RetryAttemptsExhausted", batch.invocations, error)
            self._advance(poller, batch.last + 1)
            return ("now", 0.0)
        return ("retry", _delay(batch.failures))

    @staticmethod
    def _exhausted(mapping: StreamMapping, failures: int) -> bool:
        return mapping.max_retries >= 0 and failures > mapping.max_retries

    def _give_up_old_records(self, poller: _Poller, batch: _Batch) -> None:
        """Records older than ``MaximumRecordAgeInSeconds`` are not handed over."""
        oldest = time.time() - poller.mapping.max_record_age
        old = [r for r in batch.records if r["dynamodb"]["ApproximateCreationDateTime"] < oldest]
        if old:
            self._give_up(poller, old, "RecordAgeExceeded", batch.invocations, None)
            batch.records = batch.records[len(old) :]

    def _give_up(
        self,
        poller: _Poller,
        records: list[dict[str, Any]],
        condition: str,
        invocations: int,
        function_error: str | None,
    ) -> None:
        """Record the records given up at the mapping's ``OnFailure`` destination."""
        mapping = poller.mapping
        info = failure_record(
            mapping,
            poller.shard_id,
            records,
            condition=condition,
            invocations=invocations,
            function_error=function_error,
        )
        log.warning(
            "%s: records %s to %s of %s given up (%s)",
            mapping.function,
            info["DDBStreamBatchInfo"]["startSequenceNumber"],
            info["DDBStreamBatchInfo"]["endSequenceNumber"],
            mapping.stream_arn,
            condition,
        )
        if mapping.on_failure is None:
            return
        import boto3

        body = json.dumps(info)
        try:
            if mapping.on_failure.startswith("arn:"):
                boto3.client("sns", region_name=self.region).publish(
                    TopicArn=mapping.on_failure, Message=body
                )
            else:
                boto3.client("sqs", region_name=self.region).send_message(
                    QueueUrl=mapping.on_failure, MessageBody=body
                )
        except Exception:  # pragma: no cover - the mock is gone
            log.exception("could not record the records %s gave up", mapping.function)

    def _advance(self, poller: _Poller, position: int) -> None:
        """Checkpoint: the poller has handled everything before ``position``."""
        poller.position = max(poller.position, position)
        self._trim(poller.mapping)


def _delay(failures: int) -> float:
    return RETRY_DELAYS[min(failures, len(RETRY_DELAYS)) - 1]
