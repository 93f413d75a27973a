"""Lambda function of the tasks table's stream (DynamoDB event source, partial batch
responses): each new ``task.*`` or ``human.*`` event becomes one recorded delivery per
webhook target, queued for the webhook function (``loopline.service.webhooks.fan_out``)."""

from typing import Any

from loopline.observability import logger, metrics


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def _handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from loopline.service import webhooks

    return webhooks.fan_out(event, context)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        return _handle(event, context)
    finally:
        # As in the status events function: nothing flushes metrics locally.
        metrics.clear_metrics()
