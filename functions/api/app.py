"""Lambda function for the Loopline task API: a placeholder that answers 501 until the
routes land (registering workflows, starting tasks, answering human waits)."""

import json
from typing import Any

from loopline.observability import logger, metrics, tracer


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {
        "statusCode": 501,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps({"message": "not implemented yet"}),
    }
