"""The one exception a step action raises to fail its step, and how any other exception
becomes one.

A step's cause is read by the workflow's author, not by a Python programmer: it never
carries an exception class name, a repr or a credential. ``unexpected(exc, what)`` turns
an exception nobody planned for into a ``StepError`` whose name comes from ``classify``
(is it worth retrying?) and whose message comes from ``readable`` (what happened, in
words). The technical detail stays out of the cause: the original exception is chained to
the ``StepError`` (``raise unexpected(exc, ...) from exc``) and ``lambda_entry`` logs its
traceback with the ``step failed`` warning; ``unexpected`` also logs it at debug level.
Log lines are redacted by the logger (``loopline.observability``).
"""

from __future__ import annotations

import builtins
import functools
import json
import logging
import re
import sys
from typing import Any

from loopline.redact import redact

log = logging.getLogger("loopline.runtime")

TRANSIENT = "Loopline.Transient"
FAILED = "Loopline.Failed"
#: The longest message ``readable`` returns (a cause stays readable, and under the 32 KB
#: Step Functions allows).
MAX_MESSAGE = 2000


class StepError(Exception):
    """A step failed with error ``name`` (``Loopline.*`` or a custom name) and ``message``.

    The Lambda function's error type becomes ``name``, so Step Functions' ``Error`` is the
    name and ``Retry``/``Catch`` route on it; its ``Cause`` is
    ``{"errorType": name, "errorMessage": message}``. The message is redacted
    (``loopline.redact``) when the error is made, so no credential reaches a cause.
    """

    def __init__(self, name: str, message: str) -> None:
        message = redact(message)
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message

    def to_payload(self) -> dict[str, Any]:
        """The body of a Lambda function error."""
        return {"errorType": self.name, "errorMessage": self.message}


# --------------------------------------------------------------------------- classify

#: AWS error codes that say "try again later".
TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "InternalServerException",
        "RequestTimeout",
        "RequestTimeoutException",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ProvisionedThroughputExceededException",
        "ModelTimeoutException",
        "ModelNotReadyException",
    }
)


def _module(name: str) -> Any:
    """A library module if it is loaded (an exception of it cannot exist otherwise)."""
    return sys.modules.get(name)


def is_transient(exc: BaseException) -> bool:
    """True when ``exc`` is worth retrying: a timeout, a connection that failed or broke,
    throttling or a server-side (5xx) error. A mistake in what was asked (a bad URL,
    header, bucket name or parameter, a 4xx) is not."""
    if isinstance(exc, StepError):
        return exc.name == TRANSIENT
    if isinstance(exc, (TimeoutError, ConnectionError)):
        return True
    httpx = _module("httpx")
    if httpx is not None and isinstance(exc, httpx.HTTPError):
        return isinstance(
            exc, (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
        )
    botocore = _module("botocore.exceptions")
    if botocore is not None:
        if isinstance(exc, botocore.ClientError):
            err = exc.response.get("Error", {}) if isinstance(exc.response, dict) else {}
            meta = (
                exc.response.get("ResponseMetadata", {}) if isinstance(exc.response, dict) else {}
            )
            status = meta.get("HTTPStatusCode")
            return str(err.get("Code") or "") in TRANSIENT_CODES or (
                isinstance(status, int) and (status >= 500 or status == 429)
            )
        if isinstance(exc, (botocore.ConnectionError, botocore.HTTPClientError)):
            return True
    return False


def classify(exc: BaseException, failed: str = FAILED) -> str:
    """The error name of ``exc``: its own for a ``StepError``, ``Loopline.Transient`` when
    it is worth retrying (``is_transient``), else ``failed`` (the caller's: ``Loopline.
    Failed``, ``Loopline.HTTPError``, ``Loopline.LLMError``)."""
    if isinstance(exc, StepError):
        return exc.name
    return TRANSIENT if is_transient(exc) else failed


# --------------------------------------------------------------------------- readable

_BUILTIN_NAMES = frozenset(
    name
    for name, value in vars(builtins).items()
    if isinstance(value, type) and issubclass(value, BaseException)
)
_AWS_ERROR = re.compile(
    r"An error occurred \((?P<code>[^)]*)\)(?: when calling the (?P<op>\w+) operation)?"
    r"(?: \(reached max retries: \d+\))?: ?(?P<message>.*)",
    re.S,
)
_OBJECT_REPR = re.compile(r"<(?:[\w.]+ )?(?:object|instance)?[^<>]* at 0x[0-9a-fA-F]+>")
_CLASS_REPR = re.compile(r"<class '(?:[\w]+\.)*(?P<name>\w+)'>")
_BYTES_REPR = re.compile(r"\bb(?P<q>['\"])(?P<text>.*?)(?P=q)")
_ERRNO = re.compile(r"\[Errno -?\d+\]\s*")
_PY_OBJECT = re.compile(
    r"(?:'(?P<type>NoneType|dict|list|tuple|str|int|float|bool|bytes)' object)"
    r"|(?:object of type '(?P<type2>NoneType|dict|list|tuple|str|int|float|bool|bytes)')"
)
_PY_TYPE_WORDS = {
    "NoneType": "a null",
    "dict": "an object",
    "list": "a list",
    "tuple": "a list",
    "str": "a text",
    "int": "a number",
    "float": "a number",
    "bool": "a boolean",
    "bytes": "a byte string",
}
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
#: What to say when an exception says nothing itself.
_SILENT = {
    "MemoryError": "out of memory",
    "RecursionError": "recursion too deep",
    "TimeoutError": "timed out",
    "NotImplementedError": "not implemented",
    "AssertionError": "an internal check failed",
    "StopIteration": "ran out of values",
    "ZeroDivisionError": "division by zero",
}


def code_words(code: str) -> str:
    """An AWS error code in words: ``NoSuchKey`` → ``no such key``,
    ``ResourceNotFoundException`` → ``resource not found``."""
    core = re.sub(r"(Exception|Error|Fault)$", "", code) or code
    return _CAMEL.sub(" ", core).lower()


def json_type(value: Any) -> str:
    """What ``value`` is, in JSON words with an article (``an object``, ``a list``,
    ``a text``, ``a number``, ``a boolean``, ``null``), for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a text"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return "a value that is not JSON"


def quote(text: str, limit: int = 200) -> str:
    """``text`` (cut at ``limit`` characters) in double quotes, for messages."""
    cut = text if len(text) <= limit else text[:limit] + "…"
    return json.dumps(cut, ensure_ascii=False)


@functools.cache
def _class_prefix(names: frozenset[str]) -> re.Pattern[str]:
    """``ValueError: ``, ``botocore.exceptions.NoRegionError: ``, ``KeyError('x')``."""
    alternatives = "|".join(sorted(map(re.escape, names), key=len, reverse=True))
    return re.compile(rf"\b(?:\w+\.)*(?:{alternatives})(?::\s*|\((?P<arg>[^()]*)\))")


def _class_names(exc: BaseException | None) -> frozenset[str]:
    """The builtin exception names, and those of ``exc``'s classes (capitalised ones: a
    lower-case name such as ``error`` is also a word)."""
    if exc is None:
        return _BUILTIN_NAMES
    own = {c.__name__ for c in type(exc).__mro__ if c.__name__[:1].isupper()}
    return _BUILTIN_NAMES | frozenset(own)


def _own_words(exc: BaseException) -> str | None:
    """What ``exc`` means, for the exceptions whose text is not a sentence."""
    if isinstance(exc, KeyError) and exc.args:
        key = exc.args[0]
        return f"missing key {quote(key) if isinstance(key, str) else key}"
    if isinstance(exc, json.JSONDecodeError):
        return f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
    if isinstance(exc, OSError) and exc.strerror:
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror[0].lower()}{exc.strerror[1:]}{where}"
    jsonschema = _module("jsonschema.exceptions")
    if jsonschema is not None and isinstance(
        exc, (jsonschema.ValidationError, jsonschema.SchemaError)
    ):
        return str(exc.message)
    botocore = _module("botocore.exceptions")
    if botocore is not None and isinstance(exc, botocore.ClientError):
        err = exc.response.get("Error", {}) if isinstance(exc.response, dict) else {}
        code = str(err.get("Code") or "")
        message = str(err.get("Message") or "")
        if code:
            return f"{code_words(code)}: {message}" if message else code_words(code)
    httpx = _module("httpx")
    if httpx is not None and isinstance(exc, httpx.TimeoutException):
        return "timed out"
    return None


def clean(text: str, exc: BaseException | None = None) -> str:
    """``text`` without Python class names, reprs and errno prefixes, on one line."""
    m = _AWS_ERROR.search(text)
    if m:
        message = m.group("message").strip()
        words = code_words(m.group("code"))
        text = text[: m.start()] + (f"{words}: {message}" if message else words)
    text = _ERRNO.sub("", text)
    text = _PY_OBJECT.sub(
        lambda o: f"{_PY_TYPE_WORDS[o.group('type') or o.group('type2')]} value", text
    )
    text = _OBJECT_REPR.sub("an object", text)
    text = _CLASS_REPR.sub(lambda c: c.group("name"), text)
    text = _BYTES_REPR.sub(lambda b: f'"{b.group("text")}"', text)
    # "ValueError: x", "KeyError('x')" and the like, wherever a library put them.
    text = _class_prefix(_class_names(exc)).sub(lambda c: c.group("arg") or "", text)
    text = " ".join(text.split())
    if len(text) > MAX_MESSAGE:
        text = text[:MAX_MESSAGE] + "…"
    return text


def readable(exc: BaseException) -> str:
    """What ``exc`` says, in words: no class name, no repr, no credential."""
    if isinstance(exc, StepError):
        return exc.message
    if "." in type(exc).__name__:
        # A Loopline error raised by name (``lambda_entry.error_class``): already a cause.
        return redact(str(exc))
    text = clean(_own_words(exc) or str(exc), exc)
    if not text:
        text = _SILENT.get(type(exc).__name__, "no details were given")
    return redact(text)


def unexpected(exc: BaseException, what: str, failed: str = FAILED) -> StepError:
    """The ``StepError`` for an exception nobody planned for: ``what`` (``"step s: tool x
    failed"``) and ``readable(exc)``, named by ``classify(exc, failed)``. Raise it ``from
    exc``: the original stays chained for the log (``lambda_entry`` logs it)."""
    if isinstance(exc, StepError):
        return exc
    log.debug("%s", what, exc_info=exc)
    return StepError(classify(exc, failed), f"{what}: {readable(exc)}")
