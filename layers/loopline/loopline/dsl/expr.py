"""Expressions of the workflow language.

An expression is parsed once into a small immutable tree (``Expr``). The same tree is used
by the static checks (which references does it make?), by the compiler (can it become a
native Choice rule?) and by the step runtime (evaluate it against the values a Lambda
received). The grammar and its parser are at the end of this module.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

PathPart = str | int

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
        return f"{_paren(self.left, 4)} {self.op} {_paren(self.right, 4)}"


@dataclass(frozen=True)
class And:
    items: tuple[Expr, ...]

    def source(self) -> str:
        return " and ".join(_paren(i, 2) for i in self.items)


@dataclass(frozen=True)
class Or:
    items: tuple[Expr, ...]

    def source(self) -> str:
        return " or ".join(_paren(i, 1) for i in self.items)


@dataclass(frozen=True)
class Not:
    item: Expr

    def source(self) -> str:
        return f"not {_paren(self.item, 2)}"


@dataclass(frozen=True)
class Call:
    name: str
    arg: Path

    def source(self) -> str:
        return f"{self.name}({self.arg.source()})"


Expr = Literal | Path | Compare | And | Or | Not | Call


def _level(e: Expr) -> int:
    """How tightly ``e`` binds: or 1, and 2, not 3, a comparison 4, anything else 5."""
    if isinstance(e, Or):
        return 1
    if isinstance(e, And):
        return 2
    if isinstance(e, Not):
        return 3
    return 4 if isinstance(e, Compare) else 5


def _paren(e: Expr, level: int) -> str:
    """The source of ``e`` as an operand of an operator of ``level``: in parentheses when
    it binds no tighter, so that the source parses back to the same tree (the helper
    Lambda evaluates the source the compiler wrote) with no more nesting than needed."""
    return f"({e.source()})" if _level(e) <= level else e.source()


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


# --------------------------------------------------------------------------- parsing
#
# The grammar (docs/language.md) is eight rules; a recursive-descent parser over a regex
# tokenizer reads it about ten times faster than a generated LALR parser (0.02 ms instead
# of 0.2 ms an expression, which matters for workflows of thousands of steps) and says
# exactly what it expected where.
#
#   or      := and (("or" | "||") and)*
#   and     := not (("and" | "&&") not)*
#   not     := ("not" | "!") not | compare
#   compare := atom (("==" | "!=" | "<" | "<=" | ">" | ">=") atom)?
#   atom    := NUMBER | STRING | "true" | "false" | "null" | "(" or ")"
#            | NAME "(" or ")" | path
#   path    := NAME ("." NAME | "[" INT "]")*

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<number>-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)
    | (?P<string>'(?:\\.|[^'\\])*'|"(?:\\.|[^"\\])*")
    | (?P<op>==|!=|<=|>=|&&|\|\||[<>!().\[\]])
    | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<bad>\S)
    )""",
    re.X,
)
_KEYWORDS = {"and", "or", "not", "true", "false", "null"}

#: Deepest nesting of parentheses, ``not`` and function calls in one expression. The
#: tree, the checks, the Choice rules and their JSON all follow the nesting, so it is
#: bounded where it is written (real conditions nest two or three levels).
MAX_NESTING = 16
#: Integer literals fit in 64 bits (JSON tools and the compiled definition need it).
_MIN_INT, _MAX_INT = -(2**63), 2**64 - 1


class _Tok(NamedTuple):
    kind: str  # number, string, op, name, keyword, end
    text: str
    column: int


def _tokens(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    for m in _TOKEN.finditer(text):
        kind = m.lastgroup
        assert kind is not None
        value = m.group(kind)
        col = m.start(kind) + 1
        if kind == "bad":
            if value in "'\"":
                raise ExpressionError("a string is not closed", col)
            if value == "=":
                raise ExpressionError("unexpected '=' (compare with ==)", col)
            raise ExpressionError(f"unexpected character {value!r}", col)
        if kind == "name" and value in _KEYWORDS:
            kind = "keyword"
        out.append(_Tok(kind, value, col))
    out.append(_Tok("end", "", len(text) + 1))
    return out


def _number(tok: _Tok) -> int | float:
    if any(c in tok.text for c in ".eE"):
        f = float(tok.text)
        if math.isinf(f):
            raise ExpressionError(f"the number {_clip(tok.text)} is too large", tok.column)
        return f
    digits = tok.text.lstrip("-")
    n = int(tok.text) if len(digits) <= 20 else None
    if n is None or not _MIN_INT <= n <= _MAX_INT:
        raise ExpressionError(
            f"the integer {_clip(tok.text)} is too large (at most 64 bits)", tok.column
        )
    return n


def _clip(text: str, limit: int = 30) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0
        self.depth = 0

    def enter(self, tok: _Tok) -> None:
        """One more level of nesting (``(``, ``not``, a call) opened at ``tok``."""
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise ExpressionError(
                f"nested more than {MAX_NESTING} levels deep "
                "(parentheses, 'not' and function calls)",
                tok.column,
            )

    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def at(self, *texts: str) -> bool:
        return self.tok.kind in ("op", "keyword") and self.tok.text in texts

    def fail(self, expected: str) -> ExpressionError:
        if self.tok.kind == "end":
            return ExpressionError(
                f"the expression ends too early: expected {expected}", self.tok.column
            )
        return ExpressionError(
            f"unexpected {self.tok.text!r}, expected {expected}", self.tok.column
        )

    def expect(self, text: str) -> None:
        if not self.at(text):
            raise self.fail(repr(text))
        self.take()

    def parse(self) -> Expr:
        e = self.or_()
        if self.tok.kind != "end":
            raise self.fail("an operator (==, and, or, ...) or the end")
        return e

    def or_(self) -> Expr:
        items = [self.and_()]
        while self.at("or", "||"):
            self.take()
            items.append(self.and_())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_(self) -> Expr:
        items = [self.not_()]
        while self.at("and", "&&"):
            self.take()
            items.append(self.not_())
        return items[0] if len(items) == 1 else And(tuple(items))

    def not_(self) -> Expr:
        if self.at("not", "!"):
            self.enter(self.take())
            item = self.not_()
            self.depth -= 1
            return Not(item)
        left = self.atom()
        if self.tok.kind == "op" and self.tok.text in COMPARISONS:
            op = self.take().text
            return Compare(op, left, self.atom())
        return left

    def atom(self) -> Expr:
        tok = self.tok
        if tok.kind == "number":
            self.take()
            return Literal(_number(tok))
        if tok.kind == "string":
            self.take()
            return Literal(_unquote(tok.text))
        if tok.kind == "keyword" and tok.text in ("true", "false", "null"):
            self.take()
            return Literal({"true": True, "false": False, "null": None}[tok.text])
        if self.at("("):
            self.enter(self.take())
            e = self.or_()
            self.expect(")")
            self.depth -= 1
            return e
        if tok.kind == "name":
            self.take()
            if self.at("("):
                return self.call(tok)
            return self.path(tok.text)
        raise self.fail("a value: a path, a number, a string, true, false, null or (")

    def call(self, name: _Tok) -> Expr:
        if name.text not in FUNCTIONS:
            raise ExpressionError(
                f"unknown function {name.text}(): expected one of {', '.join(FUNCTIONS)}",
                name.column,
            )
        self.enter(self.take())
        arg = self.or_()
        self.expect(")")
        self.depth -= 1
        if not isinstance(arg, Path):
            raise ExpressionError(
                f"{name.text}() takes a path, like {name.text}(steps.x.output)", name.column
            )
        return Call(name.text, arg)

    def path(self, root: str) -> Path:
        parts: list[PathPart] = []
        while self.at(".", "["):
            if self.take().text == ".":
                if self.tok.kind not in ("name", "keyword"):
                    raise self.fail("a name after '.'")
                parts.append(self.take().text)
            else:
                if self.tok.kind != "number" or not self.tok.text.isdigit():
                    raise self.fail("an index like [0]")
                parts.append(int(self.take().text))
                self.expect("]")
        return Path(root, tuple(parts))


def _unquote(raw: str) -> str:
    body = raw[1:-1]
    out: list[str] = []
    i = 0
    while i < len(body):
        if body[i] == "\\" and i + 1 < len(body):
            out.append({"n": "\n", "t": "\t"}.get(body[i + 1], body[i + 1]))
            i += 2
        else:
            out.append(body[i])
            i += 1
    return "".join(out)


@lru_cache(maxsize=4096)
def parse_expression(text: str) -> Expr:
    """Parse ``text``; raise ``ExpressionError`` with a readable message and column."""
    if not text.strip():
        raise ExpressionError("empty expression")
    return _Parser(text).parse()
