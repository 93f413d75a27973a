"""Evaluating expressions and rendering templates at run time.

The semantics are the ones of docs/internals.md ("Expression semantics"), the same the
compiler gives native Choice rules:

- a path that holds no value is ``MISSING``; any comparison that reads it is false;
- ``==``/``!=`` compare JSON values (``1 == 1.0``, ``1 != true``);
- ``< <= > >=`` compare two numbers or two strings and are false for any other pair;
- truthiness: ``null``, ``false``, ``0``, ``""`` and ``MISSING`` are false;
- ``exists(p)`` holds for a non-null value; ``exists(steps.x)`` once step ``x`` has a
  record with ``output`` (it ran or was skipped);
- ``len(p)`` is the length of a list, string or object, ``MISSING`` for anything else.

A template that needs a value its expression does not have fails the step with a
``StepError`` naming the path, never renders an empty string.
"""

from __future__ import annotations

import json
from typing import Any, Final

from loopline.dsl.expr import (
    And,
    Call,
    Compare,
    Expr,
    ExpressionError,
    Literal,
    Not,
    Or,
    Path,
    parse_expression,
)
from loopline.dsl.template import Template, parse_template
from loopline.runtime.errors import StepError, json_type


class _Missing:
    """The value of a path that holds nothing (distinct from ``null``)."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Final = _Missing()

Context = dict[str, Any]


def context_from_payload(payload: dict[str, Any]) -> Context:
    """The expression context of a Lambda payload: ``{"inputs", "steps", **vars}``."""
    values = payload.get("values") or {}
    ctx: Context = {
        "inputs": values.get("inputs") or {},
        "steps": values.get("steps") or {},
    }
    ctx.update(values.get("vars") or {})
    return ctx


# --------------------------------------------------------------------------- paths


def lookup(path: Path, ctx: Context) -> Any:
    """The value ``path`` holds in ``ctx``, or ``MISSING``."""
    if path.root not in ctx:
        return MISSING
    value = ctx[path.root]
    for part in path.parts:
        if isinstance(part, int):
            if isinstance(value, list) and 0 <= part < len(value):
                value = value[part]
            else:
                return MISSING
        elif isinstance(value, dict) and part in value:
            value = value[part]
        else:
            return MISSING
    return value


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def json_equal(a: Any, b: Any) -> bool:
    """Equality of JSON values: numbers by value, booleans only equal booleans."""
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if type(a) is not type(b):
        return False
    return bool(a == b)


def truthy(value: Any) -> bool:
    """Workflow truthiness: null, false, 0, "" and a missing value are false."""
    if value is MISSING or value is None or value is False:
        return False
    if _is_number(value):
        return bool(value != 0)
    if isinstance(value, str):
        return value != ""
    return True


def _compare(op: str, left: Any, right: Any) -> bool:
    if left is MISSING or right is MISSING:
        return False
    if op == "==":
        return json_equal(left, right)
    if op == "!=":
        return not json_equal(left, right)
    if _is_number(left) and _is_number(right):
        pass
    elif not (isinstance(left, str) and isinstance(right, str)):
        return False
    if op == "<":
        return bool(left < right)
    if op == "<=":
        return bool(left <= right)
    if op == ">":
        return bool(left > right)
    if op == ">=":
        return bool(left >= right)
    raise ValueError(f"unknown comparison {op!r}")  # pragma: no cover - grammar guards it


def _exists(path: Path, ctx: Context) -> bool:
    value = lookup(path, ctx)
    if path.root == "steps" and len(path.parts) == 1:
        # ``exists(steps.x)``: the step ran or was skipped, i.e. its record has ``output``.
        return isinstance(value, dict) and "output" in value
    return value is not MISSING and value is not None


def evaluate(expr: Expr | str, ctx: Context) -> Any:
    """The value of ``expr`` in ``ctx``; ``MISSING`` when a bare path or ``len`` has none.

    Comparisons, ``and``, ``or``, ``not`` and ``exists`` always give a boolean.
    """
    if isinstance(expr, str):
        expr = parse_expression(expr)
    if isinstance(expr, Literal):
        return expr.value
    if isinstance(expr, Path):
        return lookup(expr, ctx)
    if isinstance(expr, Compare):
        return _compare(expr.op, evaluate(expr.left, ctx), evaluate(expr.right, ctx))
    if isinstance(expr, And):
        return all(truthy(evaluate(i, ctx)) for i in expr.items)
    if isinstance(expr, Or):
        return any(truthy(evaluate(i, ctx)) for i in expr.items)
    if isinstance(expr, Not):
        return not truthy(evaluate(expr.item, ctx))
    if isinstance(expr, Call):
        if expr.name == "exists":
            return _exists(expr.arg, ctx)
        if expr.name == "len":
            value = lookup(expr.arg, ctx)
            if isinstance(value, (list, str, dict)):
                return len(value)
            return MISSING
    raise ValueError(f"cannot evaluate {expr!r}")  # pragma: no cover - closed AST


def evaluate_value(expr: Expr | str, ctx: Context) -> Any:
    """Like ``evaluate`` but a missing value is ``None`` (for JSON output)."""
    value = evaluate(expr, ctx)
    return None if value is MISSING else value


# --------------------------------------------------------------------------- templates


def _why_missing(expr: Expr, ctx: Context) -> str:
    """A sentence on why ``expr`` (a path or ``len(path)``) has no value."""
    path = expr.arg if isinstance(expr, Call) else expr
    if not isinstance(path, Path):  # pragma: no cover - only paths and len() can be missing
        return f"{expr.source()} has no value"
    if isinstance(expr, Call):
        value = lookup(path, ctx)
        if value is not MISSING:
            return (
                f"{expr.source()} has no value: {path.source()} is {json_type(value)}, "
                "not a list, text or object"
            )
    reason = ""
    step = path.step_id
    if step is not None:
        record = lookup(Path("steps", (step,)), ctx)
        if isinstance(record, dict) and record.get("skipped"):
            reason = f" (step {step} was skipped)"
        elif not (isinstance(record, dict) and "output" in record):
            reason = f" (step {step} has not run)"
    return f"references {path.source()}, which has no value{reason}"


def render_template(template: Template | str, ctx: Context) -> Any:
    """Render a template: the value itself for exactly one ``{{ expr }}``, else text.

    In text, strings are inserted as they are and other values JSON-encoded.
    Raise ``StepError("Loopline.Failed", ...)`` when an expression has no value.
    """
    if isinstance(template, str):
        if "{{" not in template:
            return template
        try:
            template = parse_template(template)
        except ExpressionError as exc:
            raise StepError("Loopline.Failed", f"invalid template {template!r}: {exc}") from None
    single = template.single
    if single is not None:
        value = evaluate(single, ctx)
        if value is MISSING:
            raise StepError(
                "Loopline.Failed",
                f"template {template.source!r} {_why_missing(single, ctx)}",
            )
        return value
    out: list[str] = []
    for part in template.parts:
        if isinstance(part, str):
            out.append(part)
            continue
        value = evaluate(part, ctx)
        if value is MISSING:
            raise StepError(
                "Loopline.Failed",
                f"template {template.source!r} {_why_missing(part, ctx)}",
            )
        out.append(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))
    return "".join(out)


def render_text(template: Template | str | None, ctx: Context) -> str | None:
    """Render a template that must give text (prompts, URLs); non-text is JSON-encoded."""
    if template is None:
        return None
    value = render_template(template, ctx)
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def render_tree(value: Any, ctx: Context) -> Any:
    """Render every string of a JSON value as a template (keys stay as they are)."""
    if isinstance(value, (str, Template)):
        return render_template(value, ctx)
    if isinstance(value, dict):
        return {k: render_tree(v, ctx) for k, v in value.items()}
    if isinstance(value, list):
        return [render_tree(v, ctx) for v in value]
    return value
