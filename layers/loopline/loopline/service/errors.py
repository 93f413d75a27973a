"""The task service's errors: what went wrong, in the words a client reads.

Domain functions raise these; the API maps each, in one place, to an
``application/problem+json`` answer (RFC 9457) with the same ``status``, ``title``,
``detail`` and ``errors``, and the ``headers`` it names (``Retry-After``). Other callers
(the CLI, the approval pages) read the same fields. A message never holds a Python class
name, a repr or a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

_NO_VALUE: Any = object()


@dataclass(frozen=True)
class FieldError:
    """One problem of a request: where (``field``: ``inputs.topic``, ``limit``,
    ``steps[2].id``), which rule it breaks (``required``, ``type``, ``pattern``…), a
    readable ``message``, and the offending ``value`` when there is one to show."""

    field: str
    rule: str
    message: str
    value: Any = _NO_VALUE
    #: Where a workflow file's problem is (1-based; 0 when unknown).
    line: int = 0
    column: int = 0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"field": self.field, "rule": self.rule, "message": self.message}
        if self.value is not _NO_VALUE:
            out["value"] = self.value
        if self.line:
            out["line"], out["column"] = self.line, self.column
        return out


@dataclass
class ServiceError(Exception):
    """A request the service refuses. Subclasses fix ``status`` and ``title``."""

    detail: str
    errors: list[FieldError] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    status = 500
    title = "Internal Server Error"

    def __post_init__(self) -> None:
        super().__init__(self.detail)

    def __str__(self) -> str:
        return self.detail

    def problem(self) -> dict[str, Any]:
        """The problem+json document of this error."""
        return {
            "type": "about:blank",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "errors": [e.to_dict() for e in self.errors],
        }


class NotFound(ServiceError):
    """No such thing for this tenant (another tenant's thing is exactly as absent)."""

    status = 404
    title = "Not Found"


class Conflict(ServiceError):
    """The request contradicts the thing's state (ended task, reused idempotency key)."""

    status = 409
    title = "Conflict"


class Invalid(ServiceError):
    """The request is well-formed HTTP but breaks rules: every problem is in ``errors``."""

    status = 422
    title = "Unprocessable Content"


class UnsupportedMediaType(ServiceError):
    """The body is in a format the route does not take."""

    status = 415
    title = "Unsupported Media Type"


class Unauthorized(ServiceError):
    """No caller: the request did not come through the authorizer."""

    status = 401
    title = "Unauthorized"

    def __post_init__(self) -> None:
        super().__post_init__()
        self.headers.setdefault("WWW-Authenticate", "Bearer")


class Forbidden(ServiceError):
    """The caller is known but may not do this."""

    status = 403
    title = "Forbidden"


class Gone(ServiceError):
    """The thing existed and will never be usable again (an expired link)."""

    status = 410
    title = "Gone"


class Unavailable(ServiceError):
    """A service the request needs failed (Step Functions refused to start a task)."""

    status = 503
    title = "Service Unavailable"


def bad_cursor(cursor: str | None, *, filters: bool = True) -> Invalid:
    """422 for a ``cursor`` a list did not hand out (or handed out for other filters)."""
    how = "pass the next_cursor of the previous page" + (
        ", with the same filters" if filters else ""
    )
    return Invalid(
        "the cursor is not one this list handed out",
        [FieldError("cursor", "cursor", how, cursor)],
    )


__all__ = [
    "Conflict",
    "FieldError",
    "Forbidden",
    "Gone",
    "Invalid",
    "NotFound",
    "ServiceError",
    "Unauthorized",
    "Unavailable",
    "UnsupportedMediaType",
    "bad_cursor",
]
