"""Templates: text with ``{{ expr }}`` holes.

A string that is exactly one ``{{ expr }}`` yields the value itself (object, list, number);
any other string yields text. Templates are parsed when the workflow is loaded, so a bad
expression inside one is reported with the workflow path of the string that holds it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from loopline.dsl.expr import Expr, ExpressionError, Path, parse_expression, paths

_HOLE = re.compile(r"\{\{(.*?)\}\}", re.S)
#: Longest hole an error message quotes whole (a longer one is cut, ending in ``...``).
_SHOWN = 60


@dataclass(frozen=True)
class Template:
    source: str
    parts: tuple[str | Expr, ...]

    @property
    def single(self) -> Expr | None:
        """The expression when the template is exactly one ``{{ expr }}``."""
        if len(self.parts) == 1 and not isinstance(self.parts[0], str):
            return self.parts[0]
        return None

    @property
    def is_literal(self) -> bool:
        return all(isinstance(p, str) for p in self.parts)

    def expressions(self) -> Iterator[Expr]:
        for p in self.parts:
            if not isinstance(p, str):
                yield p

    def paths(self) -> Iterator[Path]:
        for e in self.expressions():
            yield from paths(e)


@lru_cache(maxsize=4096)
def parse_template(text: str) -> Template:
    """Parse ``text``; raise ``ExpressionError`` naming the bad hole. A template is
    immutable: the checks and the compiler reading the same string share one parse."""
    parts: list[str | Expr] = []
    pos = 0
    for m in _HOLE.finditer(text):
        if m.start() > pos:
            parts.append(text[pos : m.start()])
        inner = m.group(1)
        try:
            parts.append(parse_expression(inner.strip()))
        except ExpressionError as exc:
            shown = inner if len(inner) <= _SHOWN else inner[: _SHOWN - 3] + "..."
            raise ExpressionError(f"in {{{{{shown}}}}}: {exc.message}") from None
        pos = m.end()
    rest = text[pos:]
    if "{{" in rest:
        raise ExpressionError("'{{' is not closed by '}}'")
    if rest:
        parts.append(rest)
    return Template(text, tuple(parts))


def template_tree_paths(value: Any) -> Iterator[Path]:
    """Paths read by every template string inside a JSON-like value."""
    for t in template_tree(value):
        yield from t.paths()


def template_tree(value: Any) -> Iterator[Template]:
    """Every template inside a JSON-like value (strings in dicts and lists, at any depth)."""
    if isinstance(value, str):
        yield parse_template(value)
    elif isinstance(value, dict):
        for v in value.values():
            yield from template_tree(v)
    elif isinstance(value, list):
        for v in value:
            yield from template_tree(v)


def check_template_tree(value: Any, where: str = "") -> None:
    """Raise ``ExpressionError`` for the first bad template inside ``value``."""
    if isinstance(value, str):
        try:
            parse_template(value)
        except ExpressionError as exc:
            raise ExpressionError(f"{where}: {exc.message}" if where else exc.message) from None
    elif isinstance(value, dict):
        for k, v in value.items():
            check_template_tree(v, f"{where}.{k}" if where else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            check_template_tree(v, f"{where}[{i}]")
