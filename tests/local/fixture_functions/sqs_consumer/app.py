"""SQS consumers for the event source tests: each invocation is one JSON line in
$FIXTURE_SQS_FILE (the function and its records). A body ``{"fail": "report"}`` is
answered as a batch item failure, ``{"fail": "raise"}`` makes the invocation raise,
``{"fail": "stranger"}`` answers a failure naming a message not in the batch."""

import json
import os
from typing import Any


def _consume(function: str, event: dict[str, Any]) -> dict[str, Any]:
    with open(os.environ["FIXTURE_SQS_FILE"], "a", encoding="utf-8") as f:
        f.write(json.dumps({"function": function, "records": event["Records"]}) + "\n")
    failures = []
    for record in event["Records"]:
        how = json.loads(record["body"]).get("fail")
        if how == "raise":
            raise RuntimeError("the batch failed")
        if how == "report":
            failures.append({"itemIdentifier": record["messageId"]})
        if how == "stranger":
            failures.append({"itemIdentifier": "not-in-this-batch"})
    return {"batchItemFailures": failures}


def partial(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return _consume("partial", event)


def whole(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return _consume("whole", event)
