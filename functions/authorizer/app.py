"""Lambda function of the API's TOKEN authorizer: checks the ``Bearer`` key against the
tasks table (``loopline.api.authorizer``)."""

from typing import Any

from loopline.observability import logger, metrics


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from loopline.api.authorizer import authorize  # the key store, on the first call

    return authorize(event)
