"""Loading a workflow file: YAML or JSON to plain data with a line for every value, then
pydantic validation whose errors become located, readable problems."""

from __future__ import annotations

import difflib
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from loopline.dsl import models
from loopline.dsl.problems import Loc, Problem, WorkflowInvalid, format_loc


@dataclass
class Document:
    """Plain data from a file plus the (line, column) of each value, keyed by location."""

    data: Any
    positions: dict[Loc, tuple[int, int]] = field(default_factory=dict)

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


# libyaml's parser when PyYAML has it (it is about ten times faster), else the pure one.
_Base: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Base):
    """SafeLoader that keeps YAML 1.2-like booleans: only true/false, not yes/no/on/off."""


_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:bool"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.copy().items()
}
_BOOL = __import__("re").compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", _BOOL, list("tTfF"))


#: Deepest nesting of mappings and lists accepted (far more than any workflow needs).
MAX_DEPTH = 100
#: Most values a file may hold once YAML aliases are expanded.
MAX_NODES = 200_000


class _TooComplex(Exception):
    def __init__(self, node: yaml.Node, message: str) -> None:
        super().__init__(message)
        self.node = node
        self.message = message


@dataclass
class _Build:
    doc: Document
    problems: list[Problem]
    loader: _Loader
    active: set[int] = field(default_factory=set)
    count: int = 0


def _build(node: yaml.Node, loc: Loc, b: _Build) -> Any:
    b.count += 1
    if b.count > MAX_NODES:
        raise _TooComplex(node, "the file is too large once its aliases are expanded")
    if len(loc) > MAX_DEPTH:
        raise _TooComplex(node, f"nested more than {MAX_DEPTH} levels deep")
    b.doc.positions[loc] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
        if id(node) in b.active:
            raise _TooComplex(node, "an alias refers to a value that contains it")
        b.active.add(id(node))
        try:
            return _build_collection(node, loc, b)
        finally:
            b.active.discard(id(node))
    return b.loader.construct_object(node, deep=True)


def _build_collection(node: yaml.Node, loc: Loc, b: _Build) -> Any:
    if isinstance(node, yaml.MappingNode):
        b.loader.flatten_mapping(node)
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                key = b.loader.construct_object(key_node, deep=True)
            else:
                key = f"<{key_node.id}>"
            if not isinstance(key, str):
                key = str(key)
            line, col = key_node.start_mark.line + 1, key_node.start_mark.column + 1
            if key in out:
                b.problems.append(
                    Problem(line, col, format_loc((*loc, key)), f'duplicate key "{key}"')
                )
                continue
            b.doc.positions[("__key__", *loc, key)] = (line, col)
            out[key] = _build(value_node, (*loc, key), b)
        return out
    return [_build(n, (*loc, i), b) for i, n in enumerate(node.value)]


def parse_text(text: str, filename: str = "<workflow>") -> Document:
    """Parse YAML or JSON text; raise ``WorkflowInvalid`` on a syntax error."""
    problems: list[Problem] = []
    doc = Document(None)
    loader: _Loader | None = None
    is_json = filename.endswith(".json")
    if is_json:
        # JSON is checked strictly (YAML would accept trailing commas and comments); the
        # YAML parser then only supplies the positions.
        try:
            json.loads(text)
        except json.JSONDecodeError as jexc:
            raise WorkflowInvalid([_json_problem(text, jexc)], filename) from None
        except RecursionError:
            raise WorkflowInvalid(
                [Problem(0, 0, "(file)", f"nested more than {MAX_DEPTH} levels deep")], filename
            ) from None
    try:
        loader = _Loader(text)
        node = loader.get_single_node()
        if node is None:
            raise WorkflowInvalid([Problem(1, 1, "(file)", "the file is empty")], filename)
        doc.data = _build(node, (), _Build(doc, problems, loader))
    except _TooComplex as exc:
        mark = exc.node.start_mark
        raise WorkflowInvalid(
            [Problem(mark.line + 1, mark.column + 1, "(file)", exc.message)], filename
        ) from None
    except RecursionError:
        raise WorkflowInvalid(
            [Problem(0, 0, "(file)", f"nested more than {MAX_DEPTH} levels deep")], filename
        ) from None
    except yaml.MarkedYAMLError as exc:
        if is_json:  # valid JSON the YAML parser refuses: no positions, but no problem
            return Document(json.loads(text))
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
    if problems:
        raise WorkflowInvalid(problems, filename)
    return doc


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


# --------------------------------------------------------------------------- pydantic errors


def _model_at(root: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The model class that validated the object at ``loc`` (which holds tags for unions)."""
    current: Any = root
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
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
                models_ = [m for m in members if issubclass(_unwrap(m), BaseModel)]
                if len(models_) != 1:
                    return None
                current = models_[0]
                return _model_at(_unwrap(current), (part,)) and None
        else:
            return None
    current = _unwrap(current)
    if typing.get_origin(current) is typing.Union:
        members = [_unwrap(a) for a in typing.get_args(current)]
        models_ = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]
        current = models_[0] if len(models_) == 1 else None
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


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


def _keys_of(model: type[BaseModel]) -> list[str]:
    keys = []
    for name, f in model.model_fields.items():
        if f.exclude:
            continue
        keys.append(f.alias or name)
    return keys


def _hint(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


def _strip_tags(loc: Loc) -> Loc:
    """Remove the union tags pydantic puts in locations (``steps.0.llm.temperature``)."""
    out: list[str | int] = []
    tags = set(models.STEP_KINDS) | {models.NO_KIND, models.MANY_KINDS}
    for i, part in enumerate(loc):
        prev = loc[i - 1] if i else None
        if isinstance(part, str) and part in tags and isinstance(prev, int):
            # ``(..., 0, 'llm', 'llm')``: the first 'llm' is the tag, the second the field.
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


def _message(err: dict[str, Any], doc: Document, loc: Loc) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind == "value_error":
        return str(err["msg"]).removeprefix("Value error, ")
    if kind in _FRIENDLY:
        return _FRIENDLY[kind]
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern"))
        return f"{doc.get(loc)!r} {_PATTERNS.get(pattern, f'does not match {pattern}')}"
    if kind == "literal_error":
        return f"{doc.get(loc)!r} is not one of {ctx.get('expected')}"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        op = {
            "greater_than_equal": "at least",
            "less_than_equal": "at most",
            "greater_than": "more than",
            "less_than": "less than",
        }[kind]
        bound = next(iter(ctx.values()), "")
        return f"must be {op} {bound} (got {doc.get(loc)!r})"
    if kind in ("too_short", "too_long"):
        return "must not be empty" if kind == "too_short" else str(err["msg"])
    return str(err["msg"])


def problems_from_validation(
    exc: ValidationError, doc: Document, root: type[BaseModel] = models.Workflow
) -> list[Problem]:
    problems: list[Problem] = []
    seen: set[tuple[str, str]] = set()
    for err in exc.errors(include_url=False):
        raw_loc: Loc = tuple(err["loc"])
        loc = _strip_tags(raw_loc)
        kind = err["type"]
        msg = str(err.get("msg", ""))
        if kind == "extra_forbidden":
            key = str(loc[-1])
            model = _model_at(root, raw_loc[:-1])
            choices = _keys_of(model) if model else []
            if model is not None and issubclass(model, models.StepCommon):
                choices += list(models.STEP_KINDS)
            line, col = doc.key_position(loc)
            message = f'unknown key "{key}"{_hint(key, choices)}'
        elif kind == "value_error" and msg.endswith("NO_KIND"):
            loc = loc[:-1] if loc and loc[-1] == models.NO_KIND else loc
            data = doc.get(loc) or {}
            unknown = [k for k in data if k not in _keys_of(models.StepCommon)]
            line, col = doc.position(loc)
            message = f"a step needs one kind: {', '.join(models.STEP_KINDS)}"
            for k in unknown:
                h = _hint(k, list(models.STEP_KINDS))
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
        else:
            line, col = doc.position(loc)
            message = _message(dict(err), doc, loc)
        seen_key = (format_loc(loc), message)
        if seen_key in seen:
            continue
        seen.add(seen_key)
        problems.append(Problem(line, col, format_loc(loc), message))
    return problems


def load_text(text: str, filename: str = "<workflow>") -> tuple[models.Workflow, Document]:
    """Parse and validate the models (no cross-step checks); raise ``WorkflowInvalid``."""
    doc = parse_text(text, filename)
    if not isinstance(doc.data, dict):
        raise WorkflowInvalid(
            [Problem(1, 1, "(file)", "a workflow file is a mapping with name and steps")], filename
        )
    try:
        wf = models.Workflow.model_validate(doc.data)
    except ValidationError as exc:
        problems = problems_from_validation(exc, doc) + raw_duplicate_ids(doc)
        raise WorkflowInvalid(problems, filename) from None
    return wf, doc


_STEP_LISTS = ("steps", "group", "parallel", "then", "else")


def raw_duplicate_ids(doc: Document) -> list[Problem]:
    """Duplicate step ids found in the raw data, so they are reported together with
    structure problems (the full checks only run once the structure is valid)."""
    seen: set[str] = set()
    out: list[Problem] = []

    def visit(value: Any, loc: Loc, in_steps: bool) -> None:
        if isinstance(value, dict):
            sid = value.get("id")
            if in_steps and isinstance(sid, str):
                if sid in seen:
                    line, col = doc.position((*loc, "id"))
                    out.append(
                        Problem(line, col, format_loc((*loc, "id")), f'duplicate id "{sid}"')
                    )
                seen.add(sid)
            for k, v in value.items():
                visit(v, (*loc, k), k in _STEP_LISTS)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                visit(v, (*loc, i), in_steps)

    visit(doc.data, (), False)
    return out


def read_file(path: str | FsPath) -> str:
    p = FsPath(path)
    try:
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WorkflowInvalid([Problem(0, 0, "(file)", "no such file")], str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise WorkflowInvalid([Problem(0, 0, "(file)", f"cannot read: {exc}")], str(path)) from None
