"""Stream consumers for the DynamoDB event source tests: each invocation is one JSON line in
$FIXTURE_STREAM_FILE (the function and its records). An item's ``fail`` attribute says how
its record fails: ``report:N`` is answered as a batch item failure the first N times the
record is handed over, ``raise:N`` makes the invocation raise the first N times."""

import json
import os
from collections import Counter
from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord


def _handed_over(event: dict[str, Any]) -> Counter[str]:
    """How many times each record of ``event`` was handed over, this time included."""
    path = os.environ["FIXTURE_STREAM_FILE"]
    seen: Counter[str] = Counter()
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                seen.update(r["eventID"] for r in json.loads(line)["records"])
    seen.update(r["eventID"] for r in event["Records"])
    return seen


def _log(function: str, event: dict[str, Any]) -> Counter[str]:
    seen = _handed_over(event)
    with open(os.environ["FIXTURE_STREAM_FILE"], "a", encoding="utf-8") as f:
        f.write(json.dumps({"function": function, "records": event["Records"]}) + "\n")
    return seen


def _fails(record: dict[str, Any], seen: Counter[str], kind: str) -> bool:
    how = ((record["dynamodb"].get("NewImage") or {}).get("fail") or {}).get("S", "")
    if not how.startswith(kind + ":"):
        return False
    return seen[record["eventID"]] <= int(how.split(":")[1])


def _consume(function: str, event: dict[str, Any]) -> dict[str, Any]:
    seen = _log(function, event)
    failures = []
    for record in event["Records"]:
        if _fails(record, seen, "raise"):
            raise RuntimeError("the batch failed")
        if _fails(record, seen, "report"):
            failures.append({"itemIdentifier": record["dynamodb"]["SequenceNumber"]})
    return {"batchItemFailures": failures}


def ordered(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return _consume("ordered", event)


def filtered(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return _consume("filtered", event)


def whole(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return _consume("whole", event)


def bisect(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return _consume("bisect", event)


def partial(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Powertools' batch processor: a record whose handler raises is a batch item failure."""
    seen = _log("partial", event)

    def handle(record: DynamoDBRecord) -> None:
        if _fails(record.raw_event, seen, "report"):
            raise ValueError(f"record {record.dynamodb.sequence_number} failed")  # type: ignore[union-attr]

    return process_partial_response(
        event=event,
        record_handler=handle,
        processor=BatchProcessor(event_type=EventType.DynamoDBStreams),
        context=context,
    )
