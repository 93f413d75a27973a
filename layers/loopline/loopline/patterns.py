"""Regular expressions written by workflow authors, matched in linear time.

An input's ``pattern`` and the ``pattern``/``patternProperties`` of an ``output_schema`` or a
``form_schema`` are matched with RE2, whose matching time grows linearly with the text
whatever the pattern: ``^(a+)+$`` takes microseconds, where a backtracking engine takes
minutes on 30 characters. RE2 has no backreferences and no lookaround; a pattern that
uses them (or that RE2 refuses for any other reason) is reported when the workflow is
loaded.

The module sits below ``dsl`` and ``runtime`` (both use it) and imports ``jsonschema``
only when a schema is checked or validated.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any

import re2

if TYPE_CHECKING:
    from jsonschema.protocols import Validator

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # errors are reported to the user, not logged
#: Memory RE2 may use for one pattern (its program and its DFA cache).
_OPTIONS.max_mem = 4 << 20

_SURROGATE = re.compile("[\ud800-\udfff]")
_HINT = " (patterns are RE2 expressions: no backreferences or lookaround)"


class PatternError(ValueError):
    """A pattern RE2 cannot compile; the message says why, for a person."""


@lru_cache(maxsize=256)
def compile_pattern(pattern: str) -> Any:
    """The compiled RE2 form of ``pattern``; raise ``PatternError``."""
    try:
        return re2.compile(pattern, _OPTIONS)
    except UnicodeEncodeError:
        raise PatternError("the pattern holds an invalid character (a lone surrogate)") from None
    except re2.error as exc:
        raw = exc.args[0] if exc.args else exc
        detail = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        hint = _HINT if "invalid perl operator" in detail or "invalid escape" in detail else ""
        raise PatternError(detail + hint) from None


def check_pattern(pattern: str) -> str:
    """``pattern`` when RE2 compiles it; raise ``PatternError``."""
    compile_pattern(pattern)
    return pattern


def search(pattern: str, text: str) -> bool:
    """Whether ``pattern`` matches somewhere in ``text`` (JSON Schema's ``pattern``)."""
    compiled = compile_pattern(pattern)
    try:
        return compiled.search(text) is not None
    except UnicodeEncodeError:  # a lone surrogate (JSON allows "\ud800"): match U+FFFD
        return compiled.search(_SURROGATE.sub("\ufffd", text)) is not None


# --------------------------------------------------------------------------- JSON Schema


def _pattern(validator: Any, pattern: Any, instance: Any, schema: Any) -> Iterator[Any]:
    from jsonschema.exceptions import ValidationError

    if not validator.is_type(instance, "string") or not isinstance(pattern, str):
        return
    # A pattern RE2 refuses raises PatternError: the schema is at fault, not the value
    # (workflow checks refuse such schemas before anything runs).
    if not search(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _matches(pattern: str, key: str) -> bool:
    try:
        return search(pattern, key)
    except PatternError:
        return False


def _pattern_properties(
    validator: Any, properties: Any, instance: Any, schema: Any
) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in properties.items():
        for key, value in instance.items():
            if _matches(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(base: Any) -> Any:
    original = base.VALIDATORS["additionalProperties"]

    def additional(validator: Any, extra: Any, instance: Any, schema: Any) -> Iterator[Any]:
        patterns = schema.get("patternProperties") if isinstance(schema, dict) else None
        if patterns and validator.is_type(instance, "object"):
            # The keys a pattern matches are not additional; the rest is jsonschema's.
            instance = {
                k: v for k, v in instance.items() if not any(_matches(p, k) for p in patterns)
            }
            schema = {k: v for k, v in schema.items() if k != "patternProperties"}
        yield from original(validator, extra, instance, schema)

    return additional


@cache
def _validator_class(base: type[Validator]) -> type[Validator]:
    import jsonschema

    keywords = {
        "pattern": _pattern,
        "patternProperties": _pattern_properties,
        "additionalProperties": _additional_properties(base),
    }
    return jsonschema.validators.extend(
        base, {k: v for k, v in keywords.items() if k in base.VALIDATORS}
    )


def schema_validator(schema: dict[str, Any], default: type[Validator] | None = None) -> Validator:
    """A jsonschema validator of ``schema`` (of its ``$schema`` draft, else ``default`` or
    the latest) whose patterns are matched with RE2."""
    import jsonschema

    validator_for = jsonschema.validators.validator_for
    base = validator_for(schema) if default is None else validator_for(schema, default=default)
    return _validator_class(base)(schema)


def check_schema(schema: dict[str, Any]) -> None:
    """Raise ``jsonschema.SchemaError`` when ``schema`` is not a valid JSON Schema or holds
    a pattern RE2 cannot compile (``pattern``, the keys of ``patternProperties``)."""
    import jsonschema

    cls = jsonschema.validators.validator_for(schema)
    checker = copy.copy(cls.FORMAT_CHECKER)
    checker.checkers = dict(checker.checkers)
    checker.checks("regex", raises=PatternError)(_is_pattern)
    try:
        cls.check_schema(schema, format_checker=checker)  # type: ignore[call-arg]
    except jsonschema.SchemaError as exc:
        if exc.validator == "format" and exc.validator_value == "regex":
            exc.message = f"the pattern {exc.instance!r} does not compile: {exc.cause}"
        raise
    where = _unevaluated_with_patterns(schema)
    if where is not None:
        raise jsonschema.SchemaError(
            "unevaluatedProperties cannot be combined with patternProperties "
            "(patterns are matched with RE2)",
            path=where,
        )


def _is_pattern(instance: object) -> bool:
    if isinstance(instance, str):
        check_pattern(instance)
    return True


def _unevaluated_with_patterns(schema: Any) -> list[str | int] | None:
    """Where ``unevaluatedProperties`` is, when ``schema`` also has ``patternProperties``."""
    found: dict[str, list[str | int]] = {}
    stack: list[tuple[Any, list[str | int]]] = [(schema, [])]
    while stack and len(found) < 2:
        value, path = stack.pop()
        if isinstance(value, dict):
            for key in ("unevaluatedProperties", "patternProperties"):
                if key in value and key not in found:
                    found[key] = [*path, key]
            stack.extend((v, [*path, k]) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, [*path, i]) for i, v in enumerate(value))
    if len(found) == 2:
        return found["unevaluatedProperties"]
    return None
