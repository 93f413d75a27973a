"""What every Loopline Lambda function does: run the action its payload names, log and
measure it, and turn a ``StepError`` into the Lambda error Step Functions routes on.

AWS Lambda reports a Python exception's class name as the error type, and Step Functions'
Retry and Catch match that name. So a ``StepError("Loopline.Transient", ...)`` is re-raised
as an exception whose class is named ``Loopline.Transient``, with the readable message as
its text: the state machine sees ``Error: Loopline.Transient`` and a plain cause. The
cause is redacted (``StepError``); so is the ``step failed`` log line (the logger's
formatter, ``loopline.observability``).

Importing this module (every step function's cold start) loads Powertools' Logger and
Metrics and nothing of the runtime: the action a call names, the settings and the AWS
clients are imported on the first call that needs them (docs/internals.md, "Cold start
and tracing").
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from loopline.observability import logger, metrics
from loopline.runtime.errors import StepError

Handler = Callable[[Any, Any], Any]


@cache
def error_class(name: str) -> type[Exception]:
    """An exception class whose ``__name__`` is the error name (dots included)."""
    return type(name, (Exception,), {"__module__": "loopline.errors"})


def _task_id(event: dict[str, Any]) -> str:
    """The task (execution) id: the last part of the execution ARN."""
    return str(event.get("execution") or "").rsplit(":", 1)[-1]


def handle(event: Any, context: Any = None) -> Any:
    """Run one action; raise the Loopline error by name on failure."""
    from loopline.runtime.actions import dispatch
    from loopline.runtime.llm import lambda_context
    from loopline.runtime.payload import expanded
    from loopline.service import tracking

    event = expanded(event)
    payload = event if isinstance(event, dict) else {}
    action = str(payload.get("action") or "unknown")
    logger.append_keys(task_id=_task_id(payload), step_id=payload.get("step"), action=action)
    metrics.add_dimension(name="action", value=action)
    started = time.perf_counter()
    # The task's step run and events (docs/internals.md, "Status tracking"): recording
    # never fails the step.
    run = tracking.step_started(payload)
    try:
        with lambda_context(context):  # the remaining time, for Retry-After waits
            result = dispatch(event)
    except StepError as exc:
        tracking.step_finished(run, error=exc.name, cause=exc.message)
        metrics.add_metric(name="StepErrors", unit=MetricUnit.Count, value=1)
        # An unexpected exception stays chained to the StepError made of it: its
        # traceback is for the operator's log (redacted by the logger), not the cause.
        detail = exc.__cause__ if isinstance(exc.__cause__, Exception) else None
        logger.warning(
            "step failed", extra={"error": exc.name, "cause": exc.message}, exc_info=detail
        )
        raise error_class(exc.name)(exc.message) from None
    finally:
        elapsed = (time.perf_counter() - started) * 1000
        metrics.add_metric(name="StepLatency", unit=MetricUnit.Milliseconds, value=elapsed)
    tracking.step_finished(run, result=result)
    usage = result.get("usage") if isinstance(result, dict) else None
    if isinstance(usage, dict):
        for key, metric in (("input_tokens", "InputTokens"), ("output_tokens", "OutputTokens")):
            if isinstance(usage.get(key), int):
                metrics.add_metric(name=metric, unit=MetricUnit.Count, value=usage[key])
    logger.info("step done", extra={"ms": round((time.perf_counter() - started) * 1000)})
    return result


def lambda_handler() -> Handler:
    """The decorated handler every function module exposes as ``handler``."""

    @logger.inject_lambda_context(clear_state=True)
    @metrics.log_metrics
    def decorated(event: Any, context: Any) -> Any:
        return handle(event, context)

    def handler(event: Any, context: Any) -> Any:
        try:
            return decorated(event, context)
        finally:
            # log_metrics has flushed them in AWS; with metrics disabled (the local stack)
            # nothing flushes, so clear them here rather than let them pile up.
            metrics.clear_metrics()

    return handler
