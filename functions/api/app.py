"""Lambda function of the Loopline task API (API Gateway REST API, proxy integration):
the routes are ``loopline.api.app``."""

from typing import Any

from loopline.observability import logger, metrics


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    # Imported on the first request: the routes, the compiler and the stores.
    from loopline.api.app import handle

    return handle(event, context)
