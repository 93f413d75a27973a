"""Loading a workflow file: YAML or JSON to plain data with a line for every value, then
validation of the models whose errors become located, readable problems."""

from __future__ import annotations

import json
import math
import os
import re
import stat
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any, NoReturn

import yaml
from pydantic_core import SchemaValidator, ValidationError

from loopline.dsl import modeling, models
from loopline.dsl.problems import Loc, Problem, WorkflowInvalid, did_you_mean, format_loc


@dataclass
class Document:
    """Plain data from a file plus the (line, column) of each value, keyed by location."""

    data: Any
    positions: dict[Loc, tuple[int, int]] = field(default_factory=dict)
    #: Problems of single values found while parsing (a duplicate key, a value its tag
    #: does not fit) when the rest of the file could still be read (``keep_going``).
    problems: list[Problem] = field(default_factory=list)
    #: The paths of ``problems`` whose value is unusable (a duplicate key keeps its first
    #: value, which later stages still judge).
    spoilt: set[str] = field(default_factory=set)

    def position(self, loc: Loc) -> tuple[int, int]:
        """The position of ``loc`` or of its nearest located ancestor."""
        while True:
            if loc in self.positions:
                return self.positions[loc]
            if not loc:
                return (0, 0)
            loc = loc[:-1]

    def key_position(self, loc: Loc) -> tuple[int, int]:
        """The position of the key that holds ``loc`` (for unknown-key problems)."""
        return self.positions.get(("__key__", *loc)) or self.position(loc)

    def get(self, loc: Loc) -> Any:
        value = self.data
        for part in loc:
            try:
                value = value[part]
            except (KeyError, IndexError, TypeError):
                return None
        return value


# --------------------------------------------------------------------------- limits

#: Largest workflow file accepted, in bytes. A Step Functions definition is at most 1 MB,
#: so no file this size or larger could be deployed anyway.
MAX_FILE_BYTES = 2 * 1024 * 1024
#: Deepest nesting of mappings and lists accepted (far more than any workflow needs).
MAX_DEPTH = 100
#: Most values a file may hold, counted with its YAML aliases expanded.
MAX_NODES = 500_000
#: Integers must fit in 64 bits (JSON tools and the compiled definition need it).
MIN_INT, MAX_INT = -(2**63), 2**64 - 1


def size_problem(size: int | None, limit: int = MAX_FILE_BYTES) -> Problem:
    """The problem of a file over ``limit`` bytes (``size`` None: not known exactly)."""
    what = f"{size:,} bytes" if size is not None else f"more than {limit:,} bytes"
    return Problem(
        0,
        0,
        "(file)",
        f"the file is too large: {what}; a workflow file may be at most "
        f"{limit:,} bytes ({limit / 2**20:g} MiB)",
    )


# --------------------------------------------------------------------------- YAML

# libyaml's parser when PyYAML has it (it is about ten times faster), else the pure one.
# Only its events are used: the values are built here (``_Builder``), which bounds the
# nesting before anything recurses, counts the values aliases expand to, and decides
# what each tag means.
_Loader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_STD = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = (_STD + t for t in ("str", "int", "float", "bool", "null"))
_SEQ, _MAP, _MERGE = _STD + "seq", _STD + "map", _STD + "merge"
_TAGS_ALLOWED = "!!str, !!int, !!float, !!bool, !!null, !!seq and !!map"
_NULLS = frozenset(("", "~", "null", "Null", "NULL"))
_BOOLS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}

# Plain scalars that are not text: YAML 1.1's integers, floats and nulls as PyYAML reads
# them, YAML 1.2's booleans (only true/false, not yes/no/on/off), the merge key ``<<``.
# Dates stay text (no timestamps), and so does ``=``.
_IMPLICIT: dict[str, list[tuple[str, typing.Pattern[str]]]] = {}
for _first, _resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items():
    for _implicit_tag, _rx in _resolvers:
        if _implicit_tag in (_INT, _FLOAT, _NULL, _MERGE):
            _IMPLICIT.setdefault(_first, []).append((_implicit_tag, _rx))
for _first in "tTfF":
    _IMPLICIT.setdefault(_first, []).append(
        (_BOOL, __import__("re").compile(r"^(?:true|True|TRUE|false|False|FALSE)$"))
    )


def _resolve(text: str) -> str:
    """The tag of a plain scalar without an explicit tag."""
    if not text:
        return _NULL
    for tag, rx in _IMPLICIT.get(text[0], ()):
        if rx.match(text):
            return tag
    return _STR


def _show_tag(tag: str) -> str:
    if tag.startswith(_STD):
        return "!!" + tag[len(_STD) :]
    return tag if tag.startswith("!") else f"!<{tag}>"


def _short(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


class _Stop(Exception):
    """A problem after which the rest of the file cannot be read."""

    def __init__(self, mark: Any, message: str) -> None:
        super().__init__(message)
        self.mark = mark
        self.message = message


class _BadScalar(Exception):
    """A scalar its tag cannot make a value of; the message says why."""


@dataclass
class _Anchor:
    value: Any
    loc: Loc
    #: The entries of ``_Builder.log`` recorded while building the value.
    start: int
    end: int
    #: Values it holds (itself included), what an alias to it adds to the count.
    count: int
    #: The text of an anchored scalar, for an alias used as a key.
    text: str | None


def _int(text: str) -> int:
    """A YAML 1.1 integer (``0x1F``, ``0o17``-style ``017``, ``0b11``, ``1_000``, ``1:30``)."""
    v = text.replace("_", "")
    sign = -1 if v[:1] == "-" else 1
    if v[:1] in ("+", "-"):
        v = v[1:]
    if v[:1] in ("+", "-"):
        raise ValueError(text)
    if len(v) > 70:
        raise OverflowError
    if v == "0":
        n = 0
    elif v.startswith("0b"):
        n = int(v[2:], 2)
    elif v.startswith("0x"):
        n = int(v[2:], 16)
    elif v.startswith("0"):
        n = int(v, 8)
    elif ":" in v:
        n = 0
        for part in v.split(":"):
            n = n * 60 + int(part)
    else:
        n = int(v)
    n *= sign
    if not MIN_INT <= n <= MAX_INT:
        raise OverflowError
    return n


def _float(text: str) -> float:
    """A YAML 1.1 float (``1.5``, ``1_000.5``, ``1:30.5``, ``.inf``, ``.nan``)."""
    v = text.replace("_", "").lower()
    sign = -1.0 if v[:1] == "-" else 1.0
    if v[:1] in ("+", "-"):
        v = v[1:]
    if v[:1] in ("+", "-"):
        raise ValueError(text)
    if v == ".inf":
        return sign * math.inf
    if v == ".nan":
        return math.nan
    if ":" in v:
        f = 0.0
        for part in v.split(":"):
            f = f * 60 + float(part)
    else:
        f = float(v)
    return sign * f


def _scalar_value(tag: str, text: str) -> Any:
    """The value of a scalar with a resolved or explicit tag; raise ``_BadScalar``."""
    if tag == _STR:
        return text
    if tag == _NULL:
        if text in _NULLS:
            return None
        raise _BadScalar(f"the tag !!null takes null, ~ or nothing, not {_short(text)}")
    if tag == _BOOL:
        if text in _BOOLS:
            return _BOOLS[text]
        raise _BadScalar(f"the tag !!bool takes true or false, not {_short(text)}")
    if tag == _INT:
        try:
            return _int(text)
        except OverflowError:
            raise _BadScalar(
                f"the integer {_short(text)} is too large (integers have at most 64 bits)"
            ) from None
        except ValueError:
            raise _BadScalar(f"the tag !!int takes an integer, not {_short(text)}") from None
    if tag == _FLOAT:
        try:
            f = _float(text)
        except (ValueError, OverflowError):
            raise _BadScalar(f"the tag !!float takes a number, not {_short(text)}") from None
        if not math.isfinite(f):
            raise _BadScalar(f"{_short(text)} is not a finite number (JSON has no infinity or NaN)")
        return f
    if tag in _KIND_WORDS:
        raise _BadScalar(f"the tag {_show_tag(tag)} is for {_KIND_WORDS[tag]}, not a single value")
    if tag.startswith(_STD):
        raise _BadScalar(
            f"the tag {_show_tag(tag)} is not supported (a workflow file may use {_TAGS_ALLOWED})"
        )
    raise _BadScalar(f"unknown tag {_show_tag(tag)} (a workflow file may use {_TAGS_ALLOWED})")


_KIND_WORDS = {_SEQ: "a list", _MAP: "a mapping"}


_ScalarEvent, _AliasEvent = yaml.ScalarEvent, yaml.AliasEvent


class _Builder:
    """Builds plain data and positions from the parser's events.

    Every value records its position in ``positions``. While an anchored value or the
    value of a merge key ``<<`` is being built, positions also go to ``log`` (in order),
    so that an alias or a merge can copy them under its own location.
    """

    def __init__(self, loader: Any, doc: Document, problems: list[Problem]) -> None:
        self.next_event = loader.get_event
        self.positions = doc.positions
        self.problems = problems
        self.spoilt = doc.spoilt
        self.log: list[tuple[Loc, tuple[int, int]]] = []
        #: Anchored or merged values being built: while any is, positions are logged.
        self.logging = 0
        self.anchors: dict[str, _Anchor] = {}
        self.opening: set[str] = set()
        self.count = 0
        self.aliased = False

    # ---------------------------------------------------------------- helpers

    def problem(self, mark: Any, loc: Loc, message: str, *, spoils: bool = True) -> None:
        self.problems.append(Problem(mark.line + 1, mark.column + 1, format_loc(loc), message))
        if spoils:
            self.spoilt.add(format_loc(loc))

    def record(self, loc: Loc, pos: tuple[int, int]) -> None:
        self.positions[loc] = pos
        if self.logging:
            self.log.append((loc, pos))

    def add(self, mark: Any, n: int = 1) -> None:
        self.count += n
        if self.count > MAX_NODES:
            self.too_many(mark)

    def too_many(self, mark: Any) -> NoReturn:
        raise _Stop(
            mark,
            f"the file holds more than {MAX_NODES:,} values"
            + (" once its aliases are expanded" if self.aliased else ""),
        )

    # ---------------------------------------------------------------- values

    def value(self, event: Any, loc: Loc) -> Any:
        """The value that starts with ``event`` (already taken from the parser)."""
        kind = type(event)
        anchor = event.anchor
        if kind is _ScalarEvent and anchor is None:  # the most common case, made short
            mark = event.start_mark
            self.count += 1
            if self.count > MAX_NODES:
                self.too_many(mark)
            self.record(loc, (mark.line + 1, mark.column + 1))
            if event.tag is None and event.implicit[0]:
                text = event.value
                if text[:1] not in _IMPLICIT:
                    return text
            return self.scalar(event, loc)
        if kind is _AliasEvent:
            return self.alias(event, loc)
        if anchor is not None:
            self.anchors.pop(anchor, None)
            self.opening.add(anchor)
            self.logging += 1
        start, count = len(self.log), self.count
        mark = event.start_mark
        self.add(mark)
        self.record(loc, (mark.line + 1, mark.column + 1))
        if kind is _ScalarEvent:
            value = self.scalar(event, loc)
        elif kind is yaml.SequenceStartEvent:
            value = self.sequence(event, loc)
        elif kind is yaml.MappingStartEvent:
            value = self.mapping(event, loc)
        else:  # pragma: no cover - the parser's grammar allows nothing else here
            raise _Stop(mark, f"unexpected {kind.__name__}")
        if anchor is not None:
            self.logging -= 1
            self.opening.discard(anchor)
            text = event.value if kind is _ScalarEvent else None
            self.anchors[anchor] = _Anchor(
                value, loc, start, len(self.log), self.count - count, text
            )
        return value

    def scalar(self, event: Any, loc: Loc) -> Any:
        tag = event.tag
        if tag == "!":  # the non-specific tag: text
            return event.value
        if tag is None:
            if not event.implicit[0]:  # quoted or a block: text
                return event.value
            tag = _resolve(event.value)
            if tag == _MERGE:  # ``<<`` as a value is text
                return event.value
        elif tag == _MERGE and event.value == "<<" and event.implicit[0]:
            return event.value
        try:
            return _scalar_value(tag, event.value)
        except _BadScalar as exc:
            self.problem(event.start_mark, loc, str(exc))
            return None

    def collection_tag(self, event: Any, loc: Loc, own: str) -> None:
        tag = event.tag
        if tag is None or tag == "!" or tag == own:
            return
        what = _KIND_WORDS[own]
        if tag in _KIND_WORDS:
            message = f"the tag {_show_tag(tag)} is for {_KIND_WORDS[tag]}, not {what}"
        elif tag in (_STR, _INT, _FLOAT, _BOOL, _NULL):
            message = f"the tag {_show_tag(tag)} is for a single value, not {what}"
        elif tag.startswith(_STD):
            message = (
                f"the tag {_show_tag(tag)} is not supported "
                f"(a workflow file may use {_TAGS_ALLOWED})"
            )
        else:
            message = f"unknown tag {_show_tag(tag)} (a workflow file may use {_TAGS_ALLOWED})"
        self.problem(event.start_mark, loc, message)

    def enter(self, event: Any, loc: Loc) -> None:
        if len(loc) >= MAX_DEPTH:
            raise _Stop(event.start_mark, f"nested more than {MAX_DEPTH} levels deep")

    def sequence(self, event: Any, loc: Loc) -> list[Any]:
        self.enter(event, loc)
        self.collection_tag(event, loc, _SEQ)
        out: list[Any] = []
        while True:
            item = self.next_event()
            if type(item) is yaml.SequenceEndEvent:
                return out
            out.append(self.value(item, (*loc, len(out))))

    def mapping(self, event: Any, loc: Loc) -> dict[str, Any]:
        self.enter(event, loc)
        self.collection_tag(event, loc, _MAP)
        out: dict[str, Any] = {}
        merges: list[tuple[Any, int, int, Any]] = []
        next_event, end = self.next_event, yaml.MappingEndEvent
        while True:
            key_event = next_event()
            kind = type(key_event)
            if kind is end:
                break
            if (
                kind is _ScalarEvent
                and key_event.tag is None
                and key_event.anchor is None
                and key_event.value != "<<"
            ):
                key: str | None = key_event.value
                is_merge = False
            else:
                key, is_merge = self.key(key_event, loc)
            value_event = next_event()
            if is_merge:
                self.logging += 1
                start = len(self.log)
                value = self.value(value_event, (*loc, "<<"))
                merges.append((value, start, len(self.log), value_event.start_mark))
                self.logging -= 1
                continue
            mark = key_event.start_mark
            if key is None or key in out:
                if key is not None:
                    self.problem(mark, (*loc, key), f'duplicate key "{key}"', spoils=False)
                self.value(value_event, (*loc, "<ignored>"))
                continue
            self.record(("__key__", *loc, key), (mark.line + 1, mark.column + 1))
            out[key] = self.value(value_event, (*loc, key))
        if merges:
            return self.merge(out, merges, loc)
        return out

    def key(self, event: Any, loc: Loc) -> tuple[str | None, bool]:
        """The text of a mapping key (None when it has none), and whether it is the merge
        key ``<<``."""
        kind = type(event)
        if kind is yaml.ScalarEvent:
            tag = event.tag
            if tag is None or tag == "!":
                if tag is None and event.implicit[0] and event.value == "<<":
                    return None, True
            elif tag == _MERGE and event.value == "<<":
                return None, True
            else:
                try:
                    _scalar_value(tag, event.value)
                except _BadScalar as exc:
                    self.problem(event.start_mark, (*loc, event.value), str(exc))
            if event.anchor is not None:
                n = len(self.log)
                self.anchors[event.anchor] = _Anchor(event.value, loc, n, n, 1, event.value)
            return str(event.value), False
        if kind is yaml.AliasEvent:
            anchor = self.anchors.get(event.anchor)
            if anchor is not None and anchor.text is not None:
                return anchor.text, False
            if anchor is None:
                self.alias(event, loc)  # the problem of an unknown alias
            self.problem(event.start_mark, loc, "a key must be a single value")
            return None, False
        what = "a list" if kind is yaml.SequenceStartEvent else "a mapping"
        self.problem(event.start_mark, loc, f"a key must be a single value, not {what}")
        self.value(event, (*loc, "<ignored>"))
        return None, False

    def alias(self, event: Any, loc: Loc) -> Any:
        name = event.anchor
        anchor = self.anchors.get(name)
        if anchor is None:
            if name in self.opening:
                raise _Stop(event.start_mark, f"the alias *{name} is inside the value it names")
            raise _Stop(event.start_mark, f"the alias *{name} names no anchor &{name} before it")
        self.aliased = True
        self.add(event.start_mark, anchor.count)
        # The value's positions, moved under ``loc``: a problem inside it points at the
        # text that holds it.
        n = len(anchor.loc)
        for old, pos in self.log[anchor.start : anchor.end]:
            new = ("__key__", *loc, *old[n + 1 :]) if old[0] == "__key__" else (*loc, *old[n:])
            self.record(new, pos)
        return anchor.value

    def merge(
        self, out: dict[str, Any], merges: list[tuple[Any, int, int, Any]], loc: Loc
    ) -> dict[str, Any]:
        """``out`` with the keys of the ``<<`` mappings it does not have: keys written in
        the mapping win over merged ones, and an earlier merged mapping over a later one."""
        merged: dict[str, Any] = {}
        for value, start, end, mark in merges:
            sources = value if isinstance(value, list) else [value]
            chosen: set[tuple[int | None, str]] = set()
            for i, src in enumerate(sources):
                if not isinstance(src, dict):
                    self.problem(
                        mark, (*loc, "<<"), "a merge key << takes a mapping or a list of mappings"
                    )
                    break
                for k, v in src.items():
                    if k not in out and k not in merged:
                        merged[k] = v
                        chosen.add((i if isinstance(value, list) else None, k))
            self.add(mark, len(chosen))
            # Positions of the merged values, from ``<<``'s value to the keys' own place.
            depth = len(loc) + 1
            for old, pos in self.log[start:end]:
                is_key = old[0] == "__key__"
                rest = old[depth + 1 :] if is_key else old[depth:]
                if isinstance(value, list):
                    if len(rest) < 2 or (rest[0], rest[1]) not in chosen:
                        continue
                    rest = rest[1:]
                elif not rest or (None, rest[0]) not in chosen:
                    continue
                new = ("__key__", *loc, *rest) if is_key else (*loc, *rest)
                self.record(new, pos)
        merged.update(out)
        return merged


def _check_json_numbers(data: Any, doc: Document, problems: list[Problem]) -> None:
    """Problems for the numbers of JSON data that JSON tools cannot take."""
    stack: list[tuple[Any, Loc]] = [(data, ())]
    while stack:
        value, loc = stack.pop()
        if isinstance(value, dict):
            stack.extend((v, (*loc, k)) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, (*loc, i)) for i, v in enumerate(value))
        elif isinstance(value, bool):
            continue
        elif isinstance(value, int) and not MIN_INT <= value <= MAX_INT:
            line, col = doc.position(loc)
            problems.append(
                Problem(line, col, format_loc(loc), "the integer is too large (at most 64 bits)")
            )
            doc.spoilt.add(format_loc(loc))
        elif isinstance(value, float) and not math.isfinite(value):
            line, col = doc.position(loc)
            problems.append(
                Problem(line, col, format_loc(loc), "the number is too large to be finite")
            )
            doc.spoilt.add(format_loc(loc))


class _NotJson(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise _NotJson(f"{name} is not a JSON value")


def parse_text(
    text: str,
    filename: str = "<workflow>",
    max_bytes: int | None = MAX_FILE_BYTES,
    *,
    keep_going: bool = False,
) -> Document:
    """Parse YAML or JSON text; raise ``WorkflowInvalid`` on a syntax error.

    Text over ``max_bytes`` (a workflow file's limit unless told otherwise; None: no
    limit) is refused before it is parsed. Problems of single values that leave the rest
    of the file readable (a duplicate key, a value its tag does not fit) raise too,
    unless ``keep_going``: then they are in ``Document.problems`` (the value is null, a
    duplicate key keeps its first value), so that later stages report theirs with them.
    """
    try:
        size = len(text) if text.isascii() else len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        line, col = _offset_position(text, exc.start)
        raise WorkflowInvalid(
            [Problem(line, col, "(file)", f"invalid character {text[exc.start]!r}")], filename
        ) from None
    if max_bytes is not None and size > max_bytes:
        raise WorkflowInvalid([size_problem(size, max_bytes)], filename)
    problems: list[Problem] = []
    doc = Document(None)
    loader: Any = None
    is_json = filename.endswith(".json")
    json_data: Any = None
    if is_json:
        # JSON is checked strictly (YAML would accept trailing commas and comments) and
        # gives the values; the YAML parser then supplies the positions.
        try:
            json_data = json.loads(text, parse_constant=_refuse_constant)
        except json.JSONDecodeError as jexc:
            raise WorkflowInvalid([_json_problem(text, jexc)], filename) from None
        except RecursionError:
            raise WorkflowInvalid(
                [Problem(0, 0, "(file)", f"nested more than {MAX_DEPTH} levels deep")], filename
            ) from None
        except _NotJson as nexc:
            raise WorkflowInvalid(
                [Problem(0, 0, "(file)", f"invalid JSON: {nexc}")], filename
            ) from None
        except ValueError:  # int() refuses thousands of digits
            raise WorkflowInvalid(
                [Problem(0, 0, "(file)", "invalid JSON: a number has thousands of digits")],
                filename,
            ) from None
    try:
        loader = _Loader(text)
        loader.get_event()  # the stream's start
        if isinstance(loader.peek_event(), yaml.StreamEndEvent):
            raise WorkflowInvalid([Problem(1, 1, "(file)", "the file is empty")], filename)
        loader.get_event()  # the document's start
        builder = _Builder(loader, doc, problems)
        doc.data = builder.value(loader.get_event(), ())
        loader.get_event()  # the document's end
        extra = loader.get_event()
        if not isinstance(extra, yaml.StreamEndEvent):
            raise _Stop(extra.start_mark, "the file holds more than one YAML document")
    except _Stop as exc:
        mark = exc.mark
        raise WorkflowInvalid(
            [Problem(mark.line + 1, mark.column + 1, "(file)", exc.message)], filename
        ) from None
    except yaml.MarkedYAMLError as exc:
        if is_json:  # valid JSON the YAML parser refuses: no positions, but no problem
            doc = Document(json_data)
            _check_depth(json_data, filename)
        else:
            mark = exc.problem_mark or exc.context_mark
            line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
            what = exc.problem or exc.context or "invalid syntax"
            if exc.problem and exc.context and exc.context_mark and exc.context_mark != mark:
                cm = exc.context_mark
                what += f" ({exc.context} at line {cm.line + 1}, column {cm.column + 1})"
            raise WorkflowInvalid(
                [Problem(line, col, "(file)", f"invalid YAML: {what}")], filename
            ) from None
    except yaml.reader.ReaderError as exc:
        line, col = _offset_position(text, exc.position)
        raise WorkflowInvalid(
            [Problem(line, col, "(file)", f"invalid character {chr(exc.character)!r}")], filename
        ) from None
    except yaml.YAMLError as exc:
        raise WorkflowInvalid([Problem(0, 0, "(file)", f"invalid YAML: {exc}")], filename) from None
    finally:
        if loader is not None:
            loader.dispose()
    if is_json and not problems:
        doc.data = json_data
        _check_json_numbers(json_data, doc, problems)
    if problems and not keep_going:
        raise WorkflowInvalid(problems, filename)
    doc.problems = problems
    return doc


def _check_depth(data: Any, filename: str) -> None:
    """Refuse data nested deeper than ``MAX_DEPTH`` or larger than ``MAX_NODES``."""
    stack: list[tuple[Any, int]] = [(data, 0)]
    count = 0
    while stack:
        value, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise WorkflowInvalid(
                [Problem(0, 0, "(file)", f"the file holds more than {MAX_NODES:,} values")],
                filename,
            )
        if isinstance(value, (dict, list)):
            if depth >= MAX_DEPTH:
                raise WorkflowInvalid(
                    [Problem(0, 0, "(file)", f"nested more than {MAX_DEPTH} levels deep")],
                    filename,
                )
            items = value.values() if isinstance(value, dict) else value
            stack.extend((v, depth + 1) for v in items)


def _json_problem(text: str, exc: json.JSONDecodeError) -> Problem:
    # A trailing comma: the error points at the comma (Python 3.13) or at the bracket after.
    comma = exc.pos if text[exc.pos : exc.pos + 1] == "," else len(text[: exc.pos].rstrip()) - 1
    after = text[comma + 1 :].lstrip()[:1]
    if text[comma : comma + 1] == "," and after in ("]", "}"):
        line, col = _offset_position(text, comma)
        return Problem(line, col, "(file)", f"invalid JSON: trailing comma before {after!r}")
    return Problem(exc.lineno, exc.colno, "(file)", f"invalid JSON: {exc.msg}")


def _offset_position(text: str, offset: int) -> tuple[int, int]:
    before = text[:offset]
    return before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1


# --------------------------------------------------------------------------- validation errors


def _is_model(tp: Any) -> bool:
    """Whether ``tp`` is a model class (``modeling.Model``, or a pydantic model such as
    a scripted-model file's): a class with ``model_fields``."""
    return isinstance(tp, type) and hasattr(tp, "model_fields")


def _model_at(root: Any, loc: Loc) -> Any:
    """The model class that validated the object at ``loc`` (which holds tags for unions)."""
    current: Any = root
    for part in loc:
        current = _unwrap(current)
        while typing.get_origin(current) is typing.Union:  # ``X | None``: X
            members = [a for a in typing.get_args(current) if a is not type(None)]
            if len(members) != 1:
                break
            current = _unwrap(members[0])
        if _is_model(current):
            fld = next(
                (f for n, f in current.model_fields.items() if part in (n, f.alias)),
                None,
            )
            if fld is None:
                return None
            current = fld.annotation
            continue
        origin = typing.get_origin(current)
        args = typing.get_args(current)
        if origin in (list, tuple) and isinstance(part, int):
            current = args[0]
        elif origin is dict:
            current = args[1]
        elif origin is typing.Union:
            tagged = {_tag(a): a for a in args}
            if part in tagged:
                current = tagged[part]
            else:
                members = [a for a in args if isinstance(_unwrap(a), type)]
                models_ = [m for m in members if _is_model(_unwrap(m))]
                if len(models_) != 1:
                    return None
                current = models_[0]
                return _model_at(_unwrap(current), (part,)) and None
        else:
            return None
    current = _unwrap(current)
    if typing.get_origin(current) is typing.Union:
        members = [_unwrap(a) for a in typing.get_args(current)]
        models_ = [m for m in members if _is_model(m)]
        current = models_[0] if len(models_) == 1 else None
    return current if _is_model(current) else None


def _unwrap(tp: Any) -> Any:
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _tag(tp: Any) -> str | None:
    if typing.get_origin(tp) is typing.Annotated:
        for meta in typing.get_args(tp)[1:]:
            if type(meta).__name__ == "Tag":
                return str(meta.tag)
    return None


def _keys_of(model: Any) -> list[str]:
    keys = []
    for name, f in model.model_fields.items():
        if f.exclude:
            continue
        keys.append(f.alias or name)
    return keys


_TAGS = frozenset({*models.STEP_KINDS, models.NO_KIND, models.MANY_KINDS})
#: Tags of other unions, removed wherever they stand.
_OTHER_TAGS = frozenset({models.ON_ERROR_CONTINUE, models.ON_ERROR_GOTO})


def _strip_tags(loc: Loc, after: Loc = ()) -> Loc:
    """Remove the union tags the validator puts in locations (``steps.0.llm.temperature``);
    ``after``: where ``loc`` starts (a step's location when a step is validated alone)."""
    out: list[str | int] = []
    tags = _TAGS
    for i, part in enumerate(loc):
        prev = loc[i - 1] if i else (after[-1] if after else None)
        if isinstance(part, str) and part in tags and isinstance(prev, int):
            # ``(..., 0, 'llm', 'llm')``: the first 'llm' is the tag, the second the field.
            continue
        if part in _OTHER_TAGS:
            continue
        out.append(part)
    return tuple(out)


_FRIENDLY = {
    "string_type": "expected text",
    "int_type": "expected an integer",
    "int_parsing": "expected an integer",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "dict_type": "expected a mapping",
    "list_type": "expected a list",
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
    "missing": "is required",
}


#: What a pattern of the language means, for "does not match" messages.
_PATTERNS = {
    models.STEP_ID: "is not a valid id: a letter, then letters, digits or _ (at most 40)",
    models.NAME: "is not a valid name: a letter, then letters, digits, _ or - (at most 64)",
    models.SEMVER: "is not a SemVer version such as 1.0.0",
    r"^[A-Za-z][A-Za-z0-9_.]*$": "is not a valid error name such as Loopline.Timeout",
    r"^[A-Za-z_][A-Za-z0-9_]*$": "is not a valid name: a letter or _, then letters, digits or _",
    r"^[A-Za-z][A-Za-z0-9_]*$": "is not a valid name: a letter, then letters, digits or _",
}


_FROM_DOC: Any = object()


def _message(err: dict[str, Any], doc: Document, loc: Loc, value: Any = _FROM_DOC) -> str:
    """The message of ``err`` about the value at ``loc`` (or ``value``, a mapping key)."""
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if value is _FROM_DOC:
        value = doc.get(loc)
    if kind == "value_error":
        return str(err["msg"]).removeprefix("Value error, ")
    if kind in _FRIENDLY:
        return _FRIENDLY[kind]
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern"))
        return f"{value!r} {_PATTERNS.get(pattern, f'does not match {pattern}')}"
    if kind == "literal_error":
        return f"{value!r} is not one of {ctx.get('expected')}"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        op = {
            "greater_than_equal": "at least",
            "less_than_equal": "at most",
            "greater_than": "more than",
            "less_than": "less than",
        }[kind]
        bound = next(iter(ctx.values()), "")
        return f"must be {op} {bound} (got {value!r})"
    if kind in ("too_short", "too_long"):
        return "must not be empty" if kind == "too_short" else str(err["msg"])
    return str(err["msg"])


def problems_from_validation(
    exc: ValidationError, doc: Document, root: Any = models.Workflow, at: Loc = ()
) -> list[Problem]:
    """Readable, located problems of ``exc``, raised validating the value at ``at`` in
    ``doc`` as ``root`` (a model class or a type such as ``models.Step``)."""
    problems: list[Problem] = []
    seen: set[tuple[str, str]] = set()
    for err in exc.errors(include_url=False):
        rel_loc: Loc = tuple(err["loc"])
        loc = (*at, *_strip_tags(rel_loc, at))
        kind = err["type"]
        msg = str(err.get("msg", ""))
        if kind == "extra_forbidden":
            key = str(loc[-1])
            model = _model_at(root, rel_loc[:-1])
            choices = _keys_of(model) if model else []
            if model is not None and issubclass(model, models.StepCommon):
                choices += list(models.STEP_KINDS)
            line, col = doc.key_position(loc)
            message = f'unknown key "{key}"{did_you_mean(key, choices)}'
        elif kind == "value_error" and msg.endswith("NO_KIND"):
            loc = loc[:-1] if loc and loc[-1] == models.NO_KIND else loc
            data = doc.get(loc) or {}
            unknown = [k for k in data if k not in _keys_of(models.StepCommon)]
            line, col = doc.position(loc)
            message = f"a step needs one kind: {', '.join(models.STEP_KINDS)}"
            for k in unknown:
                h = did_you_mean(k, list(models.STEP_KINDS))
                if h:
                    # A misspelt kind: the misspelling is the problem to show.
                    loc = (*loc, k)
                    line, col = doc.key_position(loc)
                    message = f'unknown key "{k}"{h}'
                    break
        elif kind == "value_error" and msg.endswith("MANY_KINDS"):
            loc = loc[:-1] if loc and loc[-1] == models.MANY_KINDS else loc
            data = doc.get(loc) or {}
            kinds = [k for k in models.STEP_KINDS if k in data]
            line, col = doc.position(loc)
            message = f"a step has exactly one kind, this one has {len(kinds)}: {', '.join(kinds)}"
        elif kind == "missing":
            line, col = doc.position(loc[:-1])
            message = "is required"
            step = doc.get(loc[:-2]) if len(loc) >= 2 else None
            if (
                loc[-2:] in (("approval", "timeout"), ("human_task", "timeout"))
                and isinstance(step, dict)
                and "timeout" in step
            ):
                message = f"is required: move the step's timeout inside {loc[-2]}"
        elif loc and loc[-1] == "[key]":  # a mapping's key: shown and located as the key
            loc = loc[:-1]
            line, col = doc.key_position(loc)
            message = _message(dict(err), doc, loc, value=err.get("input"))
        else:
            line, col = doc.position(loc)
            message = _message(dict(err), doc, loc)
        seen_key = (format_loc(loc), message)
        if seen_key in seen:
            continue
        seen.add(seen_key)
        problems.append(Problem(line, col, format_loc(loc), message))
    return problems


# --------------------------------------------------------------------------- validation


@dataclass
class Gaps:
    """What validation could not build from an invalid file, so that the whole-workflow
    checks do not report what only follows from a problem already reported."""

    #: Every step id written in the file (invalid steps and ids included).
    ids: set[str] = field(default_factory=set)
    #: The ``steps`` list itself is missing or unusable: no step reference can be judged.
    steps: bool = False
    #: Input names dropped for an invalid name.
    inputs: set[str] = field(default_factory=set)
    #: ``step_types`` names whose declaration is invalid; ``None``: all of them.
    step_types: set[str] | None = field(default_factory=set)
    #: Invalid fields left out of a step so that the rest of it validates (a step's
    #: location and the field's key): nothing at or under them is reported again.
    removed: set[Loc] = field(default_factory=set)


@dataclass
class Validated:
    """A validated workflow. When the file has structural ``problems``, ``workflow`` is
    the best model the rest of the file gives (each invalid step replaced by an
    ``InvalidStep``, each invalid top-level entry dropped) and ``gaps`` says what is
    missing from it."""

    workflow: models.Workflow
    problems: list[Problem] = field(default_factory=list)
    gaps: Gaps | None = None


def validate_document(doc: Document) -> Validated:
    """Validate the workflow mapping of ``doc``, reporting every structural problem.

    A valid file is validated once. An invalid one is validated again part by part, each
    step on its own after the steps inside it (so one invalid step hides nothing of the
    others, and a step's own rules are judged even when a step inside it is invalid),
    then the top level with what validated.
    """
    try:
        return Validated(models.Workflow.model_validate(doc.data))
    except ValidationError:
        pass
    return _Parts(doc).workflow()


def _step_adapter() -> SchemaValidator:
    """The validator of one step (built once, on first use)."""
    return modeling.validator(models.Step)


#: Where a container step holds its step lists, for each kind: the path inside the step
#: and whether each entry of the list is a sequence of its own (``parallel``).
_BODIES: dict[str, tuple[tuple[Loc, bool], ...]] = {
    "group": ((("group",), False),),
    "parallel": ((("parallel",), True),),
    "loop": ((("loop", "steps"), False),),
}


class _Parts:
    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.problems: list[Problem] = []
        self.seen: set[tuple[int, int, str, str]] = set()
        self.gaps = Gaps(ids=_raw_ids(doc))

    def add(self, problems: list[Problem]) -> None:
        for p in problems:
            key = (p.line, p.column, p.path, p.message)
            if key not in self.seen:
                self.seen.add(key)
                self.problems.append(p)

    # ------------------------------------------------------------------ steps

    def step(self, raw: Any, loc: Loc) -> Any:
        """The model of the step ``raw`` at ``loc``, or an ``InvalidStep``."""
        data = raw
        bodies: list[list[tuple[Loc, Any]]] = []
        if isinstance(raw, dict):
            data = dict(raw)
            for where, one_each in self._body_places(raw):
                items = _get(raw, where)
                if not isinstance(items, list):
                    continue
                built = [self.step(item, (*loc, *where, i)) for i, item in enumerate(items)]
                data = _replaced(data, where, built)
                numbered = [((*loc, *where, i), s) for i, s in enumerate(built)]
                bodies.extend([[n] for n in numbered] if one_each else [numbered])
        try:
            return _step_adapter().validate_python(data)
        except ValidationError as exc:
            self.add(problems_from_validation(exc, self.doc, models.Step, loc))
            fields = _invalid_fields(exc)
        if fields and isinstance(data, dict):
            # Without its invalid optional fields the step may validate: its other fields
            # are then checked like any step's.
            try:
                step = _step_adapter().validate_python(_without_fields(data, fields))
            except ValidationError:
                pass
            else:
                self.gaps.removed.update((*loc, *f) for f in fields)
                return step
        sid = raw.get("id") if isinstance(raw, dict) else None
        names: tuple[str, ...] = ()
        loop = raw.get("loop") if isinstance(raw, dict) else None
        if isinstance(loop, dict) and loop.get("for_each") is not None:
            name = loop.get("as", "item")
            # A variable that is not a name: what the body calls it is unknown.
            names = (name if isinstance(name, str) else models.ANY_NAME, "index")
        return models.InvalidStep.model_construct(
            id=sid if isinstance(sid, str) and _ID.match(sid) else None,
            bodies=bodies,
            loop_names=names,
            partial=self._partial(data, loc),
        )

    def _partial(self, data: Any, loc: Loc) -> Any:
        """The invalid step ``data`` (at ``loc``) as a model of its kind built, unchecked,
        from the fields that validate on their own (the others ``None`` or at their
        defaults; a mapping of the kind's that does not validate, from its own fields that
        do): what the checks read of its expressions and names. ``None`` for a step
        without one kind."""
        if not isinstance(data, dict):
            return None
        model = models.STEP_MODELS.get(str(models.step_kind(data)))
        if model is None:
            return None
        return _fields_that_validate(model, data, loc, self.gaps.removed)

    @staticmethod
    def _body_places(raw: dict[str, Any]) -> list[tuple[Loc, bool]]:
        kind = models.step_kind(raw)
        if kind in _BODIES:
            return list(_BODIES[kind])
        if kind != "branch" or not isinstance(raw["branch"], dict):
            return []
        spec = raw["branch"]
        places: list[tuple[Loc, bool]] = [(("branch", "then"), False)]
        cases = spec.get("cases")
        if isinstance(cases, list):
            places += [
                (("branch", "cases", i, "then"), False)
                for i, case in enumerate(cases)
                if isinstance(case, dict)
            ]
        return [*places, (("branch", "else"), False)]

    # ------------------------------------------------------------------ the top level

    def workflow(self) -> Validated:
        data: dict[str, Any] = dict(self.doc.data)
        raw_steps = data.get("steps")
        if isinstance(raw_steps, list):
            data["steps"] = [self.step(s, ("steps", i)) for i, s in enumerate(raw_steps)]
        for _ in range(4):  # each round drops what failed; a second one is rare
            try:
                wf = models.Workflow.model_validate(data)
                break
            except ValidationError as exc:
                self.add(problems_from_validation(exc, self.doc))
                for err in exc.errors(include_url=False):
                    data = self._without(data, tuple(err["loc"]))
        else:  # pragma: no cover - every round removes what failed
            wf = models.Workflow.model_construct(name="workflow", steps=[])
        self.add(raw_duplicate_ids(self.doc))
        return Validated(wf, self.problems, self.gaps)

    def _without(self, data: dict[str, Any], loc: Loc) -> dict[str, Any]:
        """``data`` with the top-level entry that holds the error at ``loc`` replaced by
        a stand-in or left out."""
        if not loc:
            return data
        top, rest = loc[0], loc[1:]
        data = dict(data)
        if top == "steps":
            self.gaps.steps = True
            data["steps"] = [models.InvalidStep.model_construct(id=None)]
        elif top == "name":
            data["name"] = "workflow"
        elif top in ("inputs", "step_types", "output", "defaults") and rest:
            entries = data.get(top)
            if isinstance(entries, dict):
                entries = dict(entries)
                name = str(rest[0])
                entries.pop(name, None)
                if top == "inputs" and rest[1:] != ("[key]",):
                    # Kept by name, so references to it are not reported too.
                    entries[name] = models.InputSpec.model_construct(type="json")
                elif top == "inputs":
                    self.gaps.inputs.add(name)
                elif top == "step_types" and self.gaps.step_types is not None:
                    self.gaps.step_types.add(name)
                data[top] = entries
        else:
            if top == "step_types":
                self.gaps.step_types = None
            data.pop(str(top), None)
        return data


_ID = re.compile(models.STEP_ID)


def _invalid_fields(exc: ValidationError) -> set[Loc] | None:
    """The fields of a step that hold its errors, when each may be left out: a field of
    the step itself (not its id, not its kind), or an optional field or an unknown key of
    its kind's mapping (``http.method``, ``loop.max_concurrency``, ``approval.timout``),
    each as its location in the step; ``None`` when one may not (a required field, a rule
    that ties fields together, the loop variable its body names)."""
    out: set[Loc] = set()
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        if loc and loc[0] in _TAGS:
            loc = loc[1:]
        if not loc or not isinstance(loc[0], str) or loc[0] == "id":
            return None
        if loc[0] not in models.STEP_KINDS:
            out.add(loc[:1])
            continue
        if len(loc) < 2 or not isinstance(loc[1], str) or loc[:2] in _KEPT_FIELDS:
            return None
        spec = _model_at(models.STEP_MODELS[loc[0]], loc[:1])
        if spec is None:
            return None
        known = next((f for n, f in spec.model_fields.items() if loc[1] in (n, f.alias)), None)
        unknown_key = known is None and err["type"] == "extra_forbidden" and len(loc) == 2
        if not unknown_key and (known is None or known.is_required()):
            return None
        out.add(loc[:2])
    return out


def _fields_that_validate(model: Any, data: dict[str, Any], loc: Loc, removed: set[Loc]) -> Any:
    """``model`` built unchecked from the fields of ``data`` (at ``loc``) that validate on
    their own; a model-typed field that does not (or a required one missing) is built so
    from its own fields, another required field is ``None``, an optional one at its
    default. Each other field that does not validate goes to ``removed`` (its problems are
    reported), but for one that holds steps (they are checked on their own)."""
    values: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if info.exclude:
            continue
        key, value = _field_value(model, name, data)
        if key is not None:
            try:
                values[name] = modeling.validator(info.annotation).validate_python(value)
                continue
            except ValidationError:
                pass
        inner = _model_at(model, (name,))
        if inner is not None and (key is not None or info.is_required()):
            inner_data = value if isinstance(value, dict) else {}
            values[name] = _fields_that_validate(inner, inner_data, (*loc, key or name), removed)
            continue
        if key is not None and not _holds_steps(value):
            removed.add((*loc, key))
        if info.is_required():
            values[name] = None
    return model.model_construct(**values)


def _field_value(model: Any, name: str, data: dict[str, Any]) -> tuple[str | None, Any]:
    """The key ``data`` gives field ``name`` of ``model`` under (its alias or name) and
    its value; ``(None, None)`` when it gives none."""
    info = model.model_fields[name]
    for key in (info.alias, name):
        if key is not None and key in data:
            return key, data[key]
    return None, None


def _holds_steps(value: Any) -> bool:
    """Whether ``value`` holds steps already built (a body of the step)."""
    if isinstance(value, models.StepCommon):
        return True
    if isinstance(value, dict):
        return any(_holds_steps(v) for v in value.values())
    if isinstance(value, list):
        return any(_holds_steps(v) for v in value)
    return False


#: Fields of a kind's mapping never left out: the names its body uses depend on them.
_KEPT_FIELDS = frozenset({("loop", "as")})


def _without_fields(data: dict[str, Any], fields: set[Loc]) -> dict[str, Any]:
    """A copy of the step ``data`` without ``fields`` (each a key of the step or of its
    kind's mapping)."""
    out = {k: v for k, v in data.items() if (k,) not in fields}
    for f in fields:
        kind = str(f[0])
        if len(f) == 2 and isinstance(out.get(kind), dict):
            out[kind] = {k: v for k, v in out[kind].items() if k != f[1]}
    return out


def _get(value: Any, loc: Loc) -> Any:
    for part in loc:
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            return None
    return value


def _replaced(data: Any, loc: Loc, value: Any) -> Any:
    """A copy of ``data`` with ``value`` at ``loc`` (copying only the containers on the way)."""
    if not loc:
        return value
    head, rest = loc[0], loc[1:]
    if isinstance(data, dict):
        return {**data, head: _replaced(data.get(head), rest, value)}
    if isinstance(data, list) and isinstance(head, int):
        out = list(data)
        out[head] = _replaced(data[head], rest, value)
        return out
    return data


def load_text(text: str, filename: str = "<workflow>") -> tuple[models.Workflow, Document]:
    """Parse and validate the models (no cross-step checks); raise ``WorkflowInvalid``."""
    doc = parse_document(text, filename)
    validated = validate_document(doc)
    problems = with_parse_problems(doc, validated.problems)
    if problems:
        raise WorkflowInvalid(problems, filename)
    return validated.workflow, doc


def with_parse_problems(doc: Document, problems: list[Problem]) -> list[Problem]:
    """``doc``'s own parse problems, then those of ``problems`` that are not about a value
    a parse problem already concerns (a null left for a bad tag is no second problem)."""
    if not doc.problems:
        return problems
    spoilt = doc.spoilt

    def about_spoilt(path: str) -> bool:
        return any(path == s or path.startswith((f"{s}.", f"{s}[")) for s in spoilt)

    return [*doc.problems, *(p for p in problems if not about_spoilt(p.path))]


def parse_document(text: str, filename: str = "<workflow>") -> Document:
    """Parse ``text`` into the mapping a workflow file is; raise ``WorkflowInvalid`` when
    it cannot be read (the problems of single values travel in ``Document.problems``)."""
    doc = parse_text(text, filename, keep_going=True)
    if not isinstance(doc.data, dict):
        not_mapping = Problem(1, 1, "(file)", "a workflow file is a mapping with name and steps")
        raise WorkflowInvalid([*doc.problems, not_mapping], filename)
    return doc


_STEP_LISTS = ("steps", "group", "parallel", "then", "else")


def _walk_raw_steps(doc: Document) -> Iterator[tuple[Loc, dict[str, Any]]]:
    """Every mapping in the raw data that stands in a step list, with its location."""

    def visit(value: Any, loc: Loc, in_steps: bool) -> Iterator[tuple[Loc, dict[str, Any]]]:
        if isinstance(value, dict):
            if in_steps:
                yield loc, value
            for k, v in value.items():
                yield from visit(v, (*loc, k), k in _STEP_LISTS)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                yield from visit(v, (*loc, i), in_steps)

    yield from visit(doc.data, (), False)


def _raw_ids(doc: Document) -> set[str]:
    return {s["id"] for _, s in _walk_raw_steps(doc) if isinstance(s.get("id"), str)}


def raw_duplicate_ids(doc: Document) -> list[Problem]:
    """Duplicate step ids found in the raw data, so they are reported even where a step
    did not validate."""
    seen: set[str] = set()
    out: list[Problem] = []
    for loc, step in _walk_raw_steps(doc):
        sid = step.get("id")
        if not isinstance(sid, str):
            continue
        if sid in seen:
            line, col = doc.position((*loc, "id"))
            out.append(Problem(line, col, format_loc((*loc, "id")), f'duplicate id "{sid}"'))
        seen.add(sid)
    return out


def read_file(path: str | FsPath) -> str:
    """The text of a workflow file; a file over ``MAX_FILE_BYTES`` is refused unread."""
    p = FsPath(path)
    try:
        with p.open("rb") as f:
            st = os.fstat(f.fileno())
            if stat.S_ISREG(st.st_mode) and st.st_size > MAX_FILE_BYTES:
                raise WorkflowInvalid([size_problem(st.st_size)], str(path))
            # Read one byte more than allowed: a pipe or a device has no size to ask.
            data = f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise WorkflowInvalid([Problem(0, 0, "(file)", "no such file")], str(path)) from None
    except OSError as exc:
        raise WorkflowInvalid(
            [Problem(0, 0, "(file)", f"cannot read: {exc.strerror or exc}")], str(path)
        ) from None
    if len(data) > MAX_FILE_BYTES:
        raise WorkflowInvalid([size_problem(None)], str(path))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start].decode("utf-8")
        line, col = _offset_position(before, len(before))
        raise WorkflowInvalid(
            [Problem(line, col, "(file)", f"not UTF-8 text: invalid byte 0x{data[exc.start]:02x}")],
            str(path),
        ) from None
