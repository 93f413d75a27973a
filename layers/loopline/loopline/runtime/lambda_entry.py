"""What every Loopline Lambda function does: run the action its payload names and turn a
``StepError`` into the Lambda error Step Functions routes on.

AWS Lambda reports a Python exception's class name as the error type, and Step Functions'
Retry and Catch match that name. So a ``StepError("Loopline.Transient", ...)`` is re-raised
as an exception whose class is named ``Loopline.Transient``, with the readable message as
its text: the state machine sees ``Error: Loopline.Transient`` and a plain cause.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from loopline.runtime.actions import dispatch
from loopline.runtime.errors import StepError


@cache
def error_class(name: str) -> type[Exception]:
    """An exception class whose ``__name__`` is the error name (dots included)."""
    return type(name, (Exception,), {"__module__": "loopline.errors"})


def handle(event: Any, context: Any = None) -> Any:
    try:
        return dispatch(event)
    except StepError as exc:
        raise error_class(exc.name)(exc.message) from None
