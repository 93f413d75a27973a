"""Loading a workflow file: YAML or JSON to plain data with a line for every value, then
pydantic validation whose errors become located, readable problems."""

from __future__ import annotations

import json
import re
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError

from loopline.dsl import models
from loopline.dsl.problems import Loc, Problem, WorkflowInvalid, did_you_mean, format_loc


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


def _model_at(root: Any, loc: Loc) -> type[BaseModel] | None:
    """The model class that validated the object at ``loc`` (which holds tags for unions)."""
    current: Any = root
    for part in loc:
        current = _unwrap(current)
        while typing.get_origin(current) is typing.Union:  # ``X | None``: X
            members = [a for a in typing.get_args(current) if a is not type(None)]
            if len(members) != 1:
                break
            current = _unwrap(members[0])
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


_TAGS = frozenset({*models.STEP_KINDS, models.NO_KIND, models.MANY_KINDS})
#: Tags of other unions, removed wherever they stand.
_OTHER_TAGS = frozenset({models.ON_ERROR_CONTINUE, models.ON_ERROR_GOTO})


def _strip_tags(loc: Loc, after: Loc = ()) -> Loc:
    """Remove the union tags pydantic puts in locations (``steps.0.llm.temperature``);
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


_STEP_ADAPTER: TypeAdapter[Any] | None = None


def _step_adapter() -> TypeAdapter[Any]:
    global _STEP_ADAPTER
    if _STEP_ADAPTER is None:
        _STEP_ADAPTER = TypeAdapter(models.Step)
    return _STEP_ADAPTER


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
                step = _step_adapter().validate_python(
                    {k: v for k, v in data.items() if k not in fields}
                )
            except ValidationError:
                pass
            else:
                self.gaps.removed.update((*loc, f) for f in fields)
                return step
        sid = raw.get("id") if isinstance(raw, dict) else None
        names: tuple[str, ...] = ()
        loop = raw.get("loop") if isinstance(raw, dict) else None
        if isinstance(loop, dict) and loop.get("for_each") is not None:
            name = loop.get("as", "item")
            names = (name, "index") if isinstance(name, str) else ("index",)
        return models.InvalidStep.model_construct(
            id=sid if isinstance(sid, str) and _ID.match(sid) else None,
            bodies=bodies,
            loop_names=names,
        )

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


def _invalid_fields(exc: ValidationError) -> set[str] | None:
    """The keys of a step that hold its errors, when each may be left out (not its id,
    not its kind); ``None`` when one may not."""
    out: set[str] = set()
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        if loc and loc[0] in _TAGS:
            loc = loc[1:]
        if not loc or not isinstance(loc[0], str) or loc[0] in ("id", *models.STEP_KINDS):
            return None
        out.add(loc[0])
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
    if validated.problems:
        raise WorkflowInvalid(validated.problems, filename)
    return validated.workflow, doc


def parse_document(text: str, filename: str = "<workflow>") -> Document:
    """Parse ``text`` into the mapping a workflow file is; raise ``WorkflowInvalid``."""
    doc = parse_text(text, filename)
    if not isinstance(doc.data, dict):
        raise WorkflowInvalid(
            [Problem(1, 1, "(file)", "a workflow file is a mapping with name and steps")], filename
        )
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
    p = FsPath(path)
    try:
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WorkflowInvalid([Problem(0, 0, "(file)", "no such file")], str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise WorkflowInvalid([Problem(0, 0, "(file)", f"cannot read: {exc}")], str(path)) from None
