"""Lambda function for Step Functions execution status events (EventBridge): each one
moves its task (``loopline.service.tracking.on_status_change``)."""

from typing import Any

from loopline.observability import logger, metrics


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def _handle(event: dict[str, Any], context: Any) -> None:
    from loopline.service.tracking import on_status_change  # on the first event

    on_status_change(event)


def handler(event: dict[str, Any], context: Any) -> None:
    try:
        _handle(event, context)
    finally:
        # log_metrics has flushed them in AWS; with metrics disabled (the local stack)
        # nothing flushes, and Powertools would print them once 100 piled up.
        metrics.clear_metrics()
