"""Expressions of the workflow language.

An expression is parsed once into a small immutable tree (``Expr``). The same tree is used
by the static checks (which references does it make?), by the compiler (can it become a
native Choice rule?) and by the step runtime (evaluate it against the values a Lambda
received). The grammar lives in ``expr.lark``; lark's LALR parser does the parsing and this
module turns its errors into one readable sentence with a column.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, Union

from lark import Lark, Token, Transformer, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput
from lark.exceptions import UnexpectedToken, VisitError

PathPart = Union[str, int]

COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")
FUNCTIONS = ("exists", "len")


class ExpressionError(ValueError):
    """A syntax error in an expression; ``column`` is 1-based."""

    def __init__(self, message: str, column: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.column = column

    def __str__(self) -> str:
        return self.message if self.column is None else f"{self.message} (column {self.column})"


@dataclass(frozen=True)
class Literal:
    value: Any

    def source(self) -> str:
        if isinstance(self.value, str):
            return "'" + self.value.replace("\\", "\\\\").replace("'", "\\'") + "'"
        return json.dumps(self.value)


@dataclass(frozen=True)
class Path:
    """A reference such as ``steps.draft.output.items[0]``; ``root`` is its first name."""

    root: str
    parts: tuple[PathPart, ...] = ()

    def source(self) -> str:
        out = self.root
        for p in self.parts:
            out += f"[{p}]" if isinstance(p, int) else f".{p}"
        return out

    @property
    def step_id(self) -> str | None:
        """The step a ``steps.<id>...`` path refers to."""
        if self.root == "steps" and self.parts and isinstance(self.parts[0], str):
            return self.parts[0]
        return None


@dataclass(frozen=True)
class Compare:
    op: str
    left: Expr
    right: Expr

    def source(self) -> str:
        return f"{_paren(self.left)} {self.op} {_paren(self.right)}"


@dataclass(frozen=True)
class And:
    items: tuple[Expr, ...]

    def source(self) -> str:
        return " and ".join(_paren(i) for i in self.items)


@dataclass(frozen=True)
class Or:
    items: tuple[Expr, ...]

    def source(self) -> str:
        return " or ".join(_paren(i) for i in self.items)


@dataclass(frozen=True)
class Not:
    item: Expr

    def source(self) -> str:
        return f"not {_paren(self.item)}"


@dataclass(frozen=True)
class Call:
    name: str
    arg: Path

    def source(self) -> str:
        return f"{self.name}({self.arg.source()})"


Expr = Union[Literal, Path, Compare, And, Or, Not, Call]


def _paren(e: Expr) -> str:
    return f"({e.source()})" if isinstance(e, (And, Or, Compare)) else e.source()


def walk(e: Expr) -> Iterator[Expr]:
    """Every node of ``e``, depth first."""
    yield e
    if isinstance(e, Compare):
        yield from walk(e.left)
        yield from walk(e.right)
    elif isinstance(e, (And, Or)):
        for i in e.items:
            yield from walk(i)
    elif isinstance(e, Not):
        yield from walk(e.item)
    elif isinstance(e, Call):
        yield e.arg


def paths(e: Expr) -> Iterator[Path]:
    """Every path ``e`` reads."""
    for node in walk(e):
        if isinstance(node, Path):
            yield node


def guarded_steps(e: Expr) -> set[str]:
    """Step ids that ``e`` only reads when ``exists(steps.<id>...)`` held.

    A step id is guarded when the top-level conjunction contains an ``exists`` call on it:
    ``exists(steps.a) and steps.a.output.ok`` guards ``a``.
    """
    items = e.items if isinstance(e, And) else (e,)
    out: set[str] = set()
    for item in items:
        if isinstance(item, Call) and item.name == "exists" and item.arg.step_id:
            out.add(item.arg.step_id)
    return out


class _ToTree(Transformer[Token, Expr]):
    def or_(self, items: list[Expr]) -> Expr:
        return Or(tuple(items))

    def and_(self, items: list[Expr]) -> Expr:
        return And(tuple(items))

    def not_(self, items: list[Expr]) -> Expr:
        return Not(items[0])

    def compare(self, items: list[Any]) -> Expr:
        left, op, right = items
        return Compare(str(op), left, right)

    def call(self, items: list[Any]) -> Expr:
        name, arg = items
        if str(name) not in FUNCTIONS:
            raise ExpressionError(
                f"unknown function {name}(): expected one of {', '.join(FUNCTIONS)}",
                name.column,
            )
        if not isinstance(arg, Path):
            raise ExpressionError(f"{name}() takes a path, like {name}(steps.x.output)")
        return Call(str(name), arg)

    def path(self, items: list[Any]) -> Expr:
        root, *rest = items
        parts: list[PathPart] = []
        for tok in rest:
            parts.append(int(tok) if tok.type == "INT" else str(tok))
        return Path(str(root), tuple(parts))

    def number(self, items: list[Token]) -> Expr:
        text = str(items[0])
        return Literal(float(text) if any(c in text for c in ".eE") else int(text))

    def string(self, items: list[Token]) -> Expr:
        raw = str(items[0])[1:-1]
        out, i = [], 0
        while i < len(raw):
            if raw[i] == "\\" and i + 1 < len(raw):
                nxt = raw[i + 1]
                out.append({"n": "\n", "t": "\t"}.get(nxt, nxt))
                i += 2
            else:
                out.append(raw[i])
                i += 1
        return Literal("".join(out))

    def true(self, _: list[Token]) -> Expr:
        return Literal(True)

    def false(self, _: list[Token]) -> Expr:
        return Literal(False)

    def null(self, _: list[Token]) -> Expr:
        return Literal(None)


_TOKEN_NAMES = {
    "EQ": "==",
    "COMP_OP": "a comparison",
    "LPAR": "(",
    "RPAR": ")",
    "DOT": ".",
    "LSQB": "[",
    "RSQB": "]",
    "NAME": "a name",
    "INT": "an index",
    "NUMBER": "a number",
    "STRING": "a string",
    "_AND": "and",
    "_AND_OP": "&&",
    "_OR": "or",
    "_OR_OP": "||",
    "_NOT": "not",
    "_NOT_OP": "!",
    "TRUE": "true",
    "FALSE": "false",
    "NULL": "null",
    "$END": "the end",
}


@lru_cache(maxsize=1)
def _parser() -> Lark:
    grammar = resources.files("loopline.dsl").joinpath("expr.lark").read_text()
    # cache=True keeps the built LALR tables in the temp directory, keyed by the grammar's
    # hash, so only the first run on a machine pays for building them.
    return Lark(
        grammar, parser="lalr", maybe_placeholders=False, propagate_positions=False, cache=True
    )


def _describe(tok: Token) -> str:
    if tok.type == "$END":
        return "the end of the expression"
    return repr(str(tok))


@lru_cache(maxsize=4096)
def parse_expression(text: str) -> Expr:
    """Parse ``text``; raise ``ExpressionError`` with a readable message."""
    if not text.strip():
        raise ExpressionError("empty expression")
    try:
        tree = _parser().parse(text)
        return _ToTree().transform(tree)
    except VisitError as exc:
        if isinstance(exc.orig_exc, ExpressionError):
            raise exc.orig_exc from None
        raise ExpressionError(str(exc.orig_exc)) from None
    except UnexpectedCharacters as exc:
        raise ExpressionError(f"unexpected character {text[exc.pos_in_stream]!r}", exc.column) from None
    except UnexpectedEOF:
        raise ExpressionError("the expression ends too early", len(text) + 1) from None
    except UnexpectedToken as exc:
        expected = sorted({_TOKEN_NAMES.get(t, t.lower()) for t in exc.expected})
        hint = f", expected {' or '.join(expected[:4])}" if expected else ""
        col = exc.column if isinstance(exc.column, int) and exc.column > 0 else len(text) + 1
        raise ExpressionError(f"unexpected {_describe(exc.token)}{hint}", col) from None
    except UnexpectedInput as exc:  # pragma: no cover - other lark errors
        raise ExpressionError("cannot parse the expression", getattr(exc, "column", None)) from None
