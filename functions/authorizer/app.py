"""Lambda function of the API's TOKEN authorizer: checks the ``Bearer`` key against the
tasks table (``loopline.api.authorizer``)."""

from typing import Any

from loopline.api.authorizer import authorize
from loopline.observability import logger, metrics, tracer


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return authorize(event)
