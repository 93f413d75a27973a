"""Problems found in a workflow file, each located by a workflow path and, where the
loader knows it, a line and column."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

Loc = tuple[str | int, ...]


def format_loc(loc: Loc) -> str:
    """``('steps', 2, 'parallel', 0, 'id')`` → ``steps[2].parallel[0].id``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(file)"


def did_you_mean(word: str, choices: Iterable[str], cutoff: float = 0.6) -> str:
    """`` (did you mean "x"?)`` for the choice closest to ``word``, or nothing."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=cutoff)
    return f' (did you mean "{close[0]}"?)' if close else ""


#: Characters that end a line (``str.splitlines``): shown escaped, so that a key or a value
#: holding one cannot split a problem over several lines.
_LINE_BREAKS = {c: repr(c)[1:-1] for c in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"}
_ESCAPE_BREAKS = str.maketrans(_LINE_BREAKS)


@dataclass(frozen=True, order=True)
class Problem:
    line: int
    column: int
    path: str
    message: str

    def render(self, filename: str | None = None) -> str:
        where = ""
        if filename:
            where = f"{filename}:{self.line}:{self.column}: " if self.line else f"{filename}: "
        elif self.line:
            where = f"{self.line}:{self.column}: "
        return f"{where}{self.path}: {self.message}".translate(_ESCAPE_BREAKS)


class WorkflowInvalid(Exception):
    """The workflow file has problems; ``problems`` lists every one, in file order."""

    def __init__(self, problems: Sequence[Problem], filename: str | None = None) -> None:
        self.problems = sorted(problems)
        self.filename = filename
        super().__init__(self.render())

    def render(self) -> str:
        return "\n".join(p.render(self.filename) for p in self.problems)


@dataclass(frozen=True)
class InputViolation:
    """One violation of an input spec, for callers that report it field by field (the
    task API): ``field`` (``inputs.topic``), the ``rule`` broken (``required``,
    ``unknown``, ``type``, ``enum``, ``pattern``, ``minLength``…), the readable
    ``message`` (without the field), and the ``value`` given (absent: ``has_value``
    False)."""

    field: str
    rule: str
    message: str
    value: Any = None
    has_value: bool = True


class InputsInvalid(Exception):
    """A task submission does not satisfy the workflow's input specs.

    ``problems`` lists every violation as ``inputs.<field>: <rule> (got <value>)``;
    ``violations`` holds the same, one ``InputViolation`` each, in the same order.
    """

    def __init__(self, problems: Sequence[str], violations: Sequence[InputViolation] = ()) -> None:
        self.problems = list(problems)
        self.violations = list(violations)
        super().__init__("\n".join(self.problems))
