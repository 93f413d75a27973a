"""JSON that a person gives (``--input``, ``--decision``, an answer at the prompt): read
strictly, refused with a message naming where it came from, never a traceback.

Refused: text that is not JSON, ``NaN``/``Infinity`` (and numbers too large for a double,
which would become infinite), integers of more than ``MAX_DIGITS`` digits, nesting deeper
than ``MAX_DEPTH``, strings that are not valid Unicode (lone surrogates) and files that are
not UTF-8.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

#: Nesting deeper than this is refused (Step Functions' own bound on a state's JSON is
#: far lower than what would exhaust a parser).
MAX_DEPTH = 100
#: Integers with more digits than this are refused.
MAX_DIGITS = 100


class JsonTextError(ValueError):
    """JSON text that cannot be used; the message names where it came from."""


class _Refused(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _constant(name: str) -> Any:
    raise _Refused(f"{name} is not a JSON number")


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise _Refused(f"an integer of {len(text.lstrip('-'))} digits (at most {MAX_DIGITS})")
    return int(text)


def _number(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"the number {text[:40]} is too large")
    return value


def _check(value: Any) -> str | None:
    """Why a parsed value cannot be used (too deep, not Unicode), or None."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, dict):
            if depth > MAX_DEPTH:
                return f"nested deeper than {MAX_DEPTH} levels"
            for k, x in v.items():
                stack.append((k, depth))
                stack.append((x, depth + 1))
        elif isinstance(v, list):
            if depth > MAX_DEPTH:
                return f"nested deeper than {MAX_DEPTH} levels"
            stack.extend((x, depth + 1) for x in v)
        elif isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                return "a string holds an unpaired surrogate (\\ud800-\\udfff), not valid Unicode"
    return None


def loads(text: str, what: str) -> Any:
    """The JSON value of ``text``; raise ``JsonTextError`` ("<what>: why")."""
    try:
        value = json.loads(text, parse_constant=_constant, parse_int=_integer, parse_float=_number)
    except _Refused as exc:
        raise JsonTextError(f"{what}: {exc.message}") from None
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}" if exc.lineno > 1 else f"column {exc.colno}"
        raise JsonTextError(f"{what}: not valid JSON: {exc.msg} ({where})") from None
    except RecursionError:
        raise JsonTextError(f"{what}: nested deeper than {MAX_DEPTH} levels") from None
    problem = _check(value)
    if problem:
        raise JsonTextError(f"{what}: {problem}")
    return value


def read_argument(text: str, what: str) -> Any:
    """``text`` as JSON, or the JSON in file ``F`` when ``text`` is ``@F``."""
    if text.startswith("@"):
        path = text[1:]
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise JsonTextError(f"{what}: cannot read {path}: {exc.strerror}") from None
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise JsonTextError(
                f"{what} {path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
                f"{exc.start})"
            ) from None
        what = f"{what} {path}"
    return loads(text, what)


def finite(value: Any) -> Any:
    """``value`` with every NaN or infinite number replaced by null (as JSON.stringify
    does), so that it prints as JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def dumps(value: Any, **kw: Any) -> str:
    """Strict JSON text of ``value`` (never ``NaN``; non-finite numbers become null)."""
    return json.dumps(finite(value), allow_nan=False, **kw)


__all__ = ["MAX_DEPTH", "MAX_DIGITS", "JsonTextError", "dumps", "finite", "loads", "read_argument"]
