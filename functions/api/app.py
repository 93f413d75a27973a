"""Lambda function of the Loopline task API (API Gateway REST API, proxy integration):
the routes are ``loopline.api.app``."""

from typing import Any

from loopline.api.app import handle
from loopline.observability import logger, metrics, tracer


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle(event, context)
