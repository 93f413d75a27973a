"""Lambda function of the outbox queue (SQS, partial batch responses): each message goes
to ``loopline.service.humans.deliver``; a failed one is reported and retried after its
delay (``loopline.notify.outbox.consume``)."""

from typing import Any

from loopline.observability import logger, metrics


def _deliver(message: dict[str, Any]) -> None:
    from loopline.service import humans

    humans.deliver(message)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def _handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from loopline.notify.outbox import consume  # the outbox and its senders, on the first call

    return consume(event, context, _deliver)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        return _handle(event, context)
    finally:
        # As in the status events function: nothing flushes metrics locally.
        metrics.clear_metrics()
