"""Task inputs: check a submission against the workflow's input specs and fill in defaults.

Each input spec becomes a JSON Schema (``input_schema``) checked with ``jsonschema``, its
``pattern`` matched by RE2 (``loopline.patterns``: linear time, whatever the pattern); the
violations are turned into one readable line each, ``inputs.<field>: <rule> (got <value>)``,
and all of them are reported together (``InputsInvalid``).
"""

from __future__ import annotations

import copy
import difflib
import json
import math
from typing import TYPE_CHECKING, Any

from loopline.dsl.models import InputSpec, Workflow
from loopline.dsl.problems import InputsInvalid, InputViolation

if TYPE_CHECKING:
    import jsonschema

#: A ``file`` input is an S3 URI: ``s3://<bucket>/<key>``.
S3_URI = r"^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]/.+$"

_TYPES: dict[str, dict[str, Any]] = {
    "string": {"type": "string"},
    "number": {"type": "number"},
    "integer": {"type": "integer"},
    "boolean": {"type": "boolean"},
    "json": {},
    "file": {"type": "string", "pattern": S3_URI},
}
_TYPE_WORDS = {
    "string": "text",
    "number": "a number",
    "integer": "an integer",
    "boolean": "true or false",
}


def input_schema(spec: InputSpec) -> dict[str, Any]:
    """The JSON Schema of one input's value."""
    if spec.type == "enum":
        return {"enum": list(spec.values or [])}
    schema = dict(_TYPES[spec.type])
    if spec.type == "string":
        if spec.pattern is not None:
            schema["pattern"] = spec.pattern
        if spec.min_length is not None:
            schema["minLength"] = spec.min_length
        if spec.max_length is not None:
            schema["maxLength"] = spec.max_length
    elif spec.type == "json":
        # The length of a JSON value is that of a list, a string or an object.
        for low, high in (("minItems", "maxItems"), ("minLength", "maxLength")):
            if spec.min_length is not None:
                schema[low] = spec.min_length
            if spec.max_length is not None:
                schema[high] = spec.max_length
        if spec.min_length is not None:
            schema["minProperties"] = spec.min_length
        if spec.max_length is not None:
            schema["maxProperties"] = spec.max_length
    if spec.description:
        schema["description"] = spec.description
    return schema


def workflow_schema(workflow: Workflow) -> dict[str, Any]:
    """The JSON Schema of a whole submission (an object of the declared inputs)."""
    inputs = workflow.inputs or {}
    return {
        "type": "object",
        "properties": {name: input_schema(spec) for name, spec in inputs.items()},
        "required": [name for name, spec in inputs.items() if spec.required],
        "additionalProperties": workflow.inputs is None,
    }


def show(value: Any, limit: int = 60) -> str:
    """A short JSON rendering of a value for messages."""
    try:
        text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    except (TypeError, ValueError, RecursionError):
        text = "a value nested too deeply to show" if isinstance(value, (dict, list)) else "?"
    return text if len(text) <= limit else text[: limit - 3] + "..."


#: The message of each length rule; ``{bound}`` is the limit.
_BOUNDS = {
    "minLength": "must be at least {bound} characters long",
    "maxLength": "must be at most {bound} characters long",
    "minItems": "must have at least {bound} items",
    "maxItems": "must have at most {bound} items",
    "minProperties": "must have at least {bound} entries",
    "maxProperties": "must have at most {bound} entries",
}


def _rule(spec: InputSpec, err: jsonschema.ValidationError) -> str:
    kind, bound = err.validator, err.validator_value
    if kind == "type":
        return f"must be {_TYPE_WORDS.get(str(bound), str(bound))}"
    if kind == "enum":
        return "must be one of " + ", ".join(show(v) for v in spec.values or [])
    if kind == "pattern":
        if spec.type == "file":
            return "must be an S3 URI like s3://bucket/key"
        return f"must match the pattern {bound}"
    if kind in _BOUNDS:
        return _BOUNDS[kind].format(bound=bound)
    return str(err.message)


def check_value(spec: InputSpec, value: Any) -> list[str]:
    """Every rule of ``spec`` that ``value`` breaks, as ``<rule> (got <value>)``."""
    return [f"{text} (got {show(value)})" for _, text in violations(spec, value)]


def violations(spec: InputSpec, value: Any) -> list[tuple[str, str]]:
    """Every rule of ``spec`` that ``value`` breaks: ``(rule, message)``, where ``rule``
    is the JSON Schema keyword (``type``, ``enum``, ``pattern``, ``minLength``…),
    ``maxDepth`` or ``finite``."""
    depth, finite = _shape(value)
    if depth > MAX_DEPTH:  # before jsonschema, whose messages hold the value's repr
        return [("maxDepth", f"must not be nested more than {MAX_DEPTH} levels deep")]
    if finite and _plainly_valid(spec, value):
        return []
    schema = input_schema(spec)
    import jsonschema  # imported on use: only a value that may break a rule needs it

    from loopline.patterns import schema_validator

    validator = schema_validator(schema, default=jsonschema.Draft202012Validator)
    rules: list[tuple[str, str]] = []
    if not finite:
        rules.append(("finite", "must not be NaN or infinite (JSON has no such numbers)"))
    for err in validator.iter_errors(value):
        rule = (str(err.validator), _rule(spec, err))
        if rule[1] not in [text for _, text in rules]:
            rules.append(rule)
    return rules


def _plainly_valid(spec: InputSpec, value: Any) -> bool:
    """Whether ``value`` obviously keeps every rule of ``spec`` (the common case: a
    default of the declared type), so that ``jsonschema``, a noticeable part of a short
    command's time, is not loaded. ``False`` when in doubt: ``jsonschema`` then judges."""
    kind = spec.type
    if kind == "json":
        return spec.min_length is None and spec.max_length is None
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if not isinstance(value, str):
        return False
    if kind == "enum":  # a string equals only a string: no 1 == 1.0 or 1 == true to judge
        return value in (spec.values or [])
    if kind == "file":
        return _search(S3_URI, value)
    if kind != "string":
        return False
    return (
        (spec.min_length is None or len(value) >= spec.min_length)
        and (spec.max_length is None or len(value) <= spec.max_length)
        and (spec.pattern is None or _search(spec.pattern, value))
    )


def _search(pattern: str, text: str) -> bool:
    from loopline.patterns import search  # RE2, imported when a pattern is matched

    return search(pattern, text)


#: Deepest nesting of lists and objects an input value may have (as in a workflow file).
MAX_DEPTH = 100


def _shape(value: Any) -> tuple[int, bool]:
    """The nesting depth of ``value`` and whether every number in it is finite."""
    stack = [(value, 0)]
    deepest, finite = 0, True
    while stack:
        v, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > MAX_DEPTH:
            break
        if isinstance(v, float) and not math.isfinite(v):
            finite = False
        elif isinstance(v, dict):
            stack.extend((x, depth + 1) for x in v.values())
        elif isinstance(v, list):
            stack.extend((x, depth + 1) for x in v)
    return deepest, finite


def resolve_inputs(workflow: Workflow, given: dict[str, Any] | None) -> dict[str, Any]:
    """The inputs a task starts with: ``given`` checked against the declared specs, with
    defaults applied and every declared input present (``None`` when optional and unset).

    A workflow that declares no ``inputs`` takes any object unchanged. Raise
    ``InputsInvalid`` listing every violation.
    """
    if given is None:
        given = {}
    if not isinstance(given, dict):
        message = "must be a JSON object"
        raise InputsInvalid(
            [f"inputs: {message} (got {show(given)})"],
            [InputViolation("inputs", "type", message, given)],
        )
    if workflow.inputs is None:
        return given
    found: list[InputViolation] = []
    out: dict[str, Any] = {}
    for name, spec in workflow.inputs.items():
        value = given.get(name)
        if value is None:
            if spec.required:
                found.append(
                    InputViolation(f"inputs.{name}", "required", "is required", None, name in given)
                )
                continue
            out[name] = copy.deepcopy(spec.default)
            continue
        found.extend(
            InputViolation(f"inputs.{name}", rule, text, value)
            for rule, text in violations(spec, value)
        )
        out[name] = value
    declared = list(workflow.inputs)
    for name in given:
        if name not in workflow.inputs:
            close = difflib.get_close_matches(str(name), declared, n=1, cutoff=0.6)
            if close:
                text = f'unknown input, did you mean "{close[0]}"?'
            elif declared:
                text = f"unknown input; declared: {', '.join(declared)}"
            else:
                text = "unknown input; this workflow takes no inputs"
            found.append(InputViolation(f"inputs.{name}", "unknown", text, given[name]))
    if found:
        raise InputsInvalid([_line(v) for v in found], found)
    return out


def _line(v: InputViolation) -> str:
    """``inputs.<field>: <rule> (got <value>)``, as the CLI prints a violation."""
    if v.rule == "required":
        return f"{v.field}: is required (got {'null' if v.has_value else 'nothing'})"
    return f"{v.field}: {v.message} (got {show(v.value)})"
