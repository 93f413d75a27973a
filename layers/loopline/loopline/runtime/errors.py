"""The one exception a step action raises to fail its step."""

from __future__ import annotations

from typing import Any


class StepError(Exception):
    """A step failed with error ``name`` (``Loopline.*`` or a custom name) and ``message``.

    The Lambda function's error type becomes ``name``, so Step Functions' ``Error`` is the
    name and ``Retry``/``Catch`` route on it; its ``Cause`` is
    ``{"errorType": name, "errorMessage": message}``.
    """

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message

    def to_payload(self) -> dict[str, Any]:
        """The body of a Lambda function error."""
        return {"errorType": self.name, "errorMessage": self.message}
