"""Expressions → Choice rules.

A condition that only compares paths and literals becomes a native Choice rule: every
comparison is guarded by ``IsPresent`` (and a type test), so a path that holds no value
makes the comparison false instead of failing the execution. ``len()`` of a value the
compiler knows to be a list is computed with ``States.ArrayLength`` in a Pass state just
before the Choice. Anything else raises ``NotNative`` and the caller asks the helper
Lambda to evaluate the expression.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from loopline.dsl.expr import And, Call, Compare, Expr, Literal, Not, Or, Path

Rule = dict[str, Any]

_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
_SUFFIX = {
    "==": "Equals",
    "<": "LessThan",
    "<=": "LessThanEquals",
    ">": "GreaterThan",
    ">=": "GreaterThanEquals",
}

ALWAYS: Rule = {"Variable": "$", "IsPresent": True}
NEVER: Rule = {"Not": ALWAYS}


class NotNative(Exception):
    """The expression cannot be said as a Choice rule."""


def _present(v: str) -> Rule:
    return {"Variable": v, "IsPresent": True}


def _and(*rules: Rule) -> Rule:
    flat: list[Rule] = []
    for r in rules:
        flat.extend(r["And"] if set(r) == {"And"} else [r])
    return flat[0] if len(flat) == 1 else {"And": flat}


class ChoiceCompiler:
    """Compiles one condition. ``jsonpath`` maps an expression path to a JSONPath;
    ``len_path`` returns the JSONPath where ``len(path)`` will have been computed, or raises
    ``NotNative``. ``lengths`` collects the (path, target) pairs to compute first."""

    def __init__(self, jsonpath: Callable[[Path], str], len_path: Callable[[Path], str]) -> None:
        self.jsonpath = jsonpath
        self.len_path = len_path

    def rule(self, e: Expr) -> Rule:
        if isinstance(e, Literal):
            return ALWAYS if _truthy(e.value) else NEVER
        if isinstance(e, Path):
            return self.truthy(self.jsonpath(e))
        if isinstance(e, Not):
            return {"Not": self.rule(e.item)}
        if isinstance(e, And):
            return {"And": [self.rule(i) for i in e.items]}
        if isinstance(e, Or):
            return {"Or": [self.rule(i) for i in e.items]}
        if isinstance(e, Call):
            if e.name == "exists":
                if e.arg.step_id and len(e.arg.parts) == 1:
                    # A step "exists" once it ran or was skipped: its record has output.
                    return _present(self.jsonpath(e.arg) + ".output")
                v = self.jsonpath(e.arg)
                return _and(_present(v), {"Variable": v, "IsNull": False})
            return self.truthy(self.len_path(e.arg))
        if isinstance(e, Compare):
            return self._compare(e)
        raise NotNative(type(e).__name__)  # pragma: no cover

    def _operand(self, e: Expr) -> str | Literal:
        if isinstance(e, Literal):
            return e
        if isinstance(e, Path):
            return self.jsonpath(e)
        if isinstance(e, Call) and e.name == "len":
            return self.len_path(e.arg)
        raise NotNative("operand")

    def _compare(self, e: Compare) -> Rule:
        left, right, op = self._operand(e.left), self._operand(e.right), e.op
        if isinstance(left, Literal) and isinstance(right, Literal):
            return ALWAYS if _literal_compare(op, left.value, right.value) else NEVER
        if isinstance(left, Literal):
            left, right, op = right, left, _FLIP[op]
        assert isinstance(left, str)
        if isinstance(right, Literal):
            return self._path_literal(left, op, right.value)
        return self._path_path(left, op, right)

    def _path_literal(self, v: str, op: str, value: Any) -> Rule:
        if op == "!=":
            return _and(_present(v), {"Not": self._path_literal_eq(v, value)})
        if op == "==":
            return _and(_present(v), self._path_literal_eq(v, value))
        if isinstance(value, bool) or value is None:
            return NEVER
        if isinstance(value, str):
            return _and(
                _present(v),
                {"Variable": v, "IsString": True},
                {"Variable": v, f"String{_SUFFIX[op]}": value},
            )
        return _and(
            _present(v),
            {"Variable": v, "IsNumeric": True},
            {"Variable": v, f"Numeric{_SUFFIX[op]}": value},
        )

    def _path_literal_eq(self, v: str, value: Any) -> Rule:
        if value is None:
            return {"Variable": v, "IsNull": True}
        if isinstance(value, bool):
            return _and({"Variable": v, "IsBoolean": True}, {"Variable": v, "BooleanEquals": value})
        if isinstance(value, str):
            return _and({"Variable": v, "IsString": True}, {"Variable": v, "StringEquals": value})
        if isinstance(value, (int, float)):
            return _and({"Variable": v, "IsNumeric": True}, {"Variable": v, "NumericEquals": value})
        raise NotNative("literal")

    def _path_path(self, a: str, op: str, b: str) -> Rule:
        both = _and(_present(a), _present(b))
        if op in ("==", "!="):
            eq = {
                "Or": [
                    _typed(a, b, "IsString", {"Variable": a, "StringEqualsPath": b}),
                    _typed(a, b, "IsNumeric", {"Variable": a, "NumericEqualsPath": b}),
                    _typed(a, b, "IsBoolean", {"Variable": a, "BooleanEqualsPath": b}),
                    _typed(a, b, "IsNull", None),
                ]
            }
            return _and(both, eq if op == "==" else {"Not": eq})
        suffix = _SUFFIX[op] + "Path"
        return _and(
            both,
            {
                "Or": [
                    _typed(a, b, "IsString", {"Variable": a, f"String{suffix}": b}),
                    _typed(a, b, "IsNumeric", {"Variable": a, f"Numeric{suffix}": b}),
                ]
            },
        )

    @staticmethod
    def truthy(v: str) -> Rule:
        """True when the value at ``v`` is truthy (see docs/internals.md)."""
        return _and(
            _present(v),
            {"Variable": v, "IsNull": False},
            {
                "Not": _and(
                    {"Variable": v, "IsBoolean": True}, {"Variable": v, "BooleanEquals": False}
                )
            },
            {"Not": _and({"Variable": v, "IsNumeric": True}, {"Variable": v, "NumericEquals": 0})},
            {"Not": _and({"Variable": v, "IsString": True}, {"Variable": v, "StringEquals": ""})},
        )


def _typed(a: str, b: str, test: str, compare: Rule | None) -> Rule:
    rules: list[Rule] = [{"Variable": a, test: True}, {"Variable": b, test: True}]
    if compare is not None:
        rules.append(compare)
    return {"And": rules}


def _truthy(value: Any) -> bool:
    return value not in (None, False, 0, "") or isinstance(value, (list, dict))


def _literal_compare(op: str, a: Any, b: Any) -> bool:
    if op == "==":
        return bool(a == b and type(a) is type(b)) or (_num(a) and _num(b) and a == b)
    if op == "!=":
        return not _literal_compare("==", a, b)
    if not ((_num(a) and _num(b)) or (isinstance(a, str) and isinstance(b, str))):
        return False
    return bool({"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op])


def _num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)
