"""Lambda function for Step Functions execution status events (EventBridge): a
placeholder that logs each event until they are recorded in the tasks table."""

from typing import Any

from loopline.observability import logger, metrics, tracer


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> None:
    detail = event.get("detail") or {}
    logger.info(
        "execution status changed",
        extra={
            "status": detail.get("status"),
            "execution": detail.get("executionArn"),
            "state_machine": detail.get("stateMachineArn"),
        },
    )
