"""Lambda function of the webhook queue (SQS, partial batch responses): each message is
one attempt at one delivery, signed, sent, logged and, when it fails, retried after its
delay (``loopline.service.webhooks.consume``)."""

from typing import Any

from loopline.observability import logger, metrics


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def _handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from loopline.service import webhooks

    return webhooks.consume(event, context)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        return _handle(event, context)
    finally:
        # As in the status events function: nothing flushes metrics locally.
        metrics.clear_metrics()
