"""A ``human_task``'s form: the fields its ``form_schema`` declares, and what a person typed
in them turned into the JSON value the step receives.

An HTML form sends text only, so each field is converted by the type its schema declares
before the whole value is checked against ``form_schema``:

- ``string`` → the text as typed (``\\r\\n`` read as ``\\n``); an ``<input>``, or a
  ``<textarea>`` when the schema allows long text (no ``maxLength`` or one over 200, and
  no one-line ``format``);
- ``integer`` / ``number`` → ``<input type=number>``; ``"3"`` → ``3``, ``"2.5"`` → ``2.5``
  (an integer field takes ``"3.0"`` and ``"1e3"`` too, as a browser may send them);
- ``boolean`` → a checkbox: ticked is ``true``, left empty ``false``;
- ``enum`` (or ``oneOf``/``anyOf`` of ``const`` values, whose ``title`` names them) → a
  ``<select>``;
- anything else (objects, arrays, several types, no type) → a ``<textarea>`` holding JSON.

A field left empty (or blank, for a number or JSON) is absent from the value (a checkbox
excepted), so ``required`` says
whether it may be. The form's fields are the properties of an object schema, named
``field.<property>`` in the form; any other schema is one JSON field named ``data``.

Every problem is located (``data.<property>``, ``data.items[0].name``) and said in words,
never with a Python repr: a text that is not a number, JSON that does not parse, and every
violation of ``form_schema`` (``violations``), all together.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from loopline.dsl.inputs import show
from loopline.patterns import PatternError, schema_validator
from loopline.service.errors import FieldError

if TYPE_CHECKING:
    import jsonschema

#: The form field holding the whole value when the schema is not an object of properties.
WHOLE = "data"
#: The prefix of a property's form field: ``field.<property>``.
PREFIX = "field."
#: A string field longer than this (or unbounded) is a ``<textarea>``.
LONG_TEXT = 200
#: Longest number text converted (Python's ``int`` refuses over 4,300 digits).
MAX_NUMBER_TEXT = 1000
#: ``format``s of one-line strings, and the ``<input type>`` each gets.
_ONE_LINE = {
    "email": "email",
    "idn-email": "email",
    "uri": "url",
    "iri": "url",
    "date": "date",
    "date-time": "text",
    "time": "text",
    "hostname": "text",
    "idn-hostname": "text",
    "ipv4": "text",
    "ipv6": "text",
    "uuid": "text",
    "duration": "text",
    "uri-reference": "text",
}
_INTEGER = re.compile(r"[+-]?[0-9]+")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_TRUE = frozenset({"true", "on", "1", "yes"})
_FALSE = frozenset({"false", "off", "0", "no", ""})


@dataclass(frozen=True)
class Field:
    """One field of the form.

    ``widget`` is ``text``, ``textarea``, ``number``, ``checkbox``, ``select`` or ``json``;
    ``options`` are ``(text sent, text shown)`` of a select; ``attrs`` the HTML attributes
    that help a browser (``min``, ``max``, ``step``, ``minlength``, ``maxlength``), which
    the server checks anyway.
    """

    name: str
    key: str
    path: str
    widget: str
    label: str
    help: str | None
    required: bool
    schema: Mapping[str, Any]
    input_type: str = "text"
    options: tuple[tuple[str, str], ...] = ()
    attrs: tuple[tuple[str, str], ...] = ()


def fields(form_schema: Mapping[str, Any] | None) -> list[Field]:
    """The form's fields, in the order the schema declares them."""
    if not form_schema:
        return []
    properties = form_schema.get("properties")
    if not isinstance(properties, Mapping) or not properties or not _is_object(form_schema):
        return [_field(WHOLE, WHOLE, "data", form_schema, required=True, whole=True)]
    required = form_schema.get("required")
    needed = set(required) if isinstance(required, list) else set()
    return [
        _field(str(name), PREFIX + str(name), _join("data", str(name)), schema, name in needed)
        for name, schema in properties.items()
    ]


def convert(
    form_schema: Mapping[str, Any] | None, submitted: Mapping[str, str | Sequence[str]]
) -> tuple[Any, list[FieldError]]:
    """``(data, problems)``: the form's text fields (``parse_qs``'s lists or single
    strings) converted by the schema's types, and every problem of the result, each
    located ``data.<path>``. ``data`` is None when the form has no schema."""
    if not form_schema:
        return None, []
    form = fields(form_schema)
    problems: list[FieldError] = []
    broken: list[str] = []
    found: dict[str, Any] = {}
    for field in form:
        try:
            present, value = _convert(field, _last(submitted.get(field.key)))
        except _Unconvertible as exc:
            problems.append(
                FieldError(field.path, exc.rule, exc.message)
                if exc.value is None
                else FieldError(field.path, exc.rule, exc.message, exc.value)
            )
            broken.append(field.path)
            continue
        if present:
            found[field.name] = value
    whole = len(form) == 1 and form[0].key == WHOLE
    data: Any = found.get(WHOLE) if whole else found
    if not broken:
        problems.extend(violations(form_schema, data))
    elif not whole:
        problems.extend(
            p
            for p in violations(form_schema, data)
            if not any(_within(p.field, path) for path in broken)
        )
    order = {f.path: i for i, f in enumerate(form)}
    problems.sort(key=lambda p: (_position(p.field, order), p.field))
    return data, problems


def violations(schema: Mapping[str, Any], data: Any, root: str = "data") -> list[FieldError]:
    """Every way ``data`` breaks ``schema``, each located under ``root`` (``required`` at
    the missing property itself) and said in words."""
    import jsonschema

    validator = schema_validator(dict(schema), default=jsonschema.Draft202012Validator)
    out: list[FieldError] = []
    try:
        errors = list(validator.iter_errors(data))
    except PatternError as exc:  # a schema the workflow checks should have refused
        return [FieldError(root, "pattern", f"cannot be checked: {exc}")]
    except RecursionError:
        return [FieldError(root, "maxDepth", "is nested too deeply to check")]
    for err in errors:
        where = root
        for part in err.absolute_path:
            where = _join(where, part)
        rule = str(err.validator)
        needed = err.validator_value
        if rule == "required" and isinstance(err.instance, dict) and isinstance(needed, list):
            for name in needed:
                if isinstance(name, str) and name not in err.instance:
                    problem = FieldError(_join(where, name), "required", "is required")
                    if problem not in out:
                        out.append(problem)
            continue
        value = err.instance
        shown = isinstance(value, (int, float, bool)) or (
            isinstance(value, str) and len(value) <= 200
        )
        problem = (
            FieldError(where, rule, _message(err), value)
            if shown
            else FieldError(where, rule, _message(err))
        )
        if problem not in out:
            out.append(problem)
    return out


# --------------------------------------------------------------------------- fields


def _is_object(schema: Mapping[str, Any]) -> bool:
    kind = schema.get("type")
    return kind is None or kind == "object" or (isinstance(kind, list) and "object" in kind)


def _join(path: str, part: Any) -> str:
    return f"{path}[{part}]" if isinstance(part, int) else f"{path}.{part}"


def _field(
    name: str, key: str, path: str, schema: Any, required: bool, whole: bool = False
) -> Field:
    if not isinstance(schema, Mapping):
        schema = {}
    title = schema.get("title")
    description = schema.get("description")
    label = str(title) if isinstance(title, str) and title.strip() else name
    common: dict[str, Any] = {
        "name": name,
        "key": key,
        "path": path,
        "label": "Your answer" if whole and label == WHOLE else label,
        "help": str(description) if isinstance(description, str) and description else None,
        "required": required,
        "schema": schema,
    }
    options = _options(schema)
    if options is not None:
        return Field(widget="select", options=options, **common)
    kind = _type(schema)
    if kind == "boolean":
        return Field(widget="checkbox", **common)
    if kind in ("integer", "number"):
        return Field(
            widget="number", input_type="number", attrs=_number_attrs(schema, kind), **common
        )
    if kind == "string":
        attrs: list[tuple[str, str]] = []
        for keyword, attr in (("minLength", "minlength"), ("maxLength", "maxlength")):
            bound = schema.get(keyword)
            if isinstance(bound, int) and not isinstance(bound, bool) and bound >= 0:
                attrs.append((attr, str(bound)))
        fmt = schema.get("format")
        longest = schema.get("maxLength")
        short = (isinstance(longest, int) and longest <= LONG_TEXT) or fmt in _ONE_LINE
        if short:
            kind_of_input = _ONE_LINE.get(str(fmt), "text")
            return Field(widget="text", input_type=kind_of_input, attrs=tuple(attrs), **common)
        return Field(widget="textarea", attrs=tuple(attrs), **common)
    return Field(widget="json", **common)


def _type(schema: Mapping[str, Any]) -> str | None:
    """The one JSON type a field holds (``null`` aside), or None for several or unknown."""
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        kind = kinds[0] if len(kinds) == 1 else None
    if isinstance(kind, str):
        return kind
    if kind is None and "type" not in schema:
        if any(k in schema for k in ("minLength", "maxLength", "pattern", "format")):
            return "string"
        if any(k in schema for k in ("minimum", "maximum", "multipleOf")):
            return "number"
    return None


def _options(schema: Mapping[str, Any]) -> tuple[tuple[str, str], ...] | None:
    """A select's ``(text sent, text shown)``: from ``enum``, ``const``, or ``oneOf`` /
    ``anyOf`` of ``const`` values; None when the field is not a choice."""
    values: list[tuple[Any, str | None]] = []
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        values = [(v, None) for v in schema["enum"]]
    elif "const" in schema:
        values = [(schema["const"], None)]
    else:
        for keyword in ("oneOf", "anyOf"):
            choices = schema.get(keyword)
            if (
                isinstance(choices, list)
                and choices
                and all(isinstance(c, Mapping) and "const" in c for c in choices)
            ):
                values = [
                    (c["const"], c["title"] if isinstance(c.get("title"), str) else None)
                    for c in choices
                ]
                break
    if not values:
        return None
    out: list[tuple[str, str]] = []
    for value, title in values:
        text = option_text(value)
        if all(text != sent for sent, _ in out):
            out.append((text, title or text))
    return tuple(out)


def option_text(value: Any) -> str:
    """What a select sends for ``value``: a string as it is, anything else as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _number_attrs(schema: Mapping[str, Any], kind: str) -> tuple[tuple[str, str], ...]:
    attrs: list[tuple[str, str]] = []
    for keyword, attr in (("minimum", "min"), ("maximum", "max")):
        bound = schema.get(keyword)
        if isinstance(bound, (int, float)) and not isinstance(bound, bool):
            attrs.append((attr, _number_text(bound)))
    step = schema.get("multipleOf")
    if isinstance(step, (int, float)) and not isinstance(step, bool) and step > 0:
        attrs.append(("step", _number_text(step)))
    else:
        attrs.append(("step", "1" if kind == "integer" else "any"))
    return tuple(attrs)


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(value)


# --------------------------------------------------------------------------- converting


class _Unconvertible(Exception):
    def __init__(self, rule: str, message: str, value: Any) -> None:
        super().__init__(message)
        self.rule, self.message, self.value = rule, message, value


def is_ticked(text: str | None) -> bool:
    """Whether a checkbox's text means ``true``."""
    return (text or "").strip().lower() in _TRUE


def _last(value: str | Sequence[str] | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return str(value[-1]) if value else None


def _convert(field: Field, raw: str | None) -> tuple[bool, Any]:
    """``(present, value)`` of one field's text; raise ``_Unconvertible``."""
    if field.widget == "checkbox":
        text = (raw or "").strip().lower()
        if text in _TRUE:
            return True, True
        if text in _FALSE:
            return True, False
        raise _Unconvertible("type", "must be true or false", _shown(raw))
    if raw is None or raw == "" or (field.widget in ("number", "json") and not raw.strip()):
        return False, None
    if field.widget == "select":
        for sent, _ in field.options:
            if raw == sent:
                return True, _option_value(field.schema, sent)
        choices = ", ".join(shown for _, shown in field.options)
        raise _Unconvertible("enum", f"must be one of {choices}", _shown(raw))
    if field.widget in ("text", "textarea"):
        return True, raw.replace("\r\n", "\n").replace("\r", "\n")
    if field.widget == "number":
        return True, _number(raw, integer=_type(field.schema) == "integer")
    return True, _json(raw)


def _option_value(schema: Mapping[str, Any], sent: str) -> Any:
    candidates: list[Any] = []
    if isinstance(schema.get("enum"), list):
        candidates = list(schema["enum"])
    elif "const" in schema:
        candidates = [schema["const"]]
    else:
        for keyword in ("oneOf", "anyOf"):
            if isinstance(schema.get(keyword), list):
                candidates = [c["const"] for c in schema[keyword]]
                break
    for value in candidates:
        if option_text(value) == sent:
            return value
    return sent  # not reached: ``sent`` is one of the options


def _shown(raw: str | None) -> str:
    text = raw or ""
    return text if len(text) <= 200 else text[:197] + "..."


def _number(raw: str, *, integer: bool) -> int | float:
    """The number a field's text holds; raise ``_Unconvertible``."""
    text = raw.strip()
    what = "an integer" if integer else "a number"
    if len(text) > MAX_NUMBER_TEXT:
        raise _Unconvertible(
            "type", f"must be {what} of at most {MAX_NUMBER_TEXT} characters", _shown(raw)
        )
    if _INTEGER.fullmatch(text):
        return int(text)
    if not _NUMBER.fullmatch(text):
        raise _Unconvertible("type", f"must be {what}", _shown(raw))
    try:
        exact = Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
        raise _Unconvertible("type", f"must be {what}", _shown(raw)) from None
    if integer:
        if exact != exact.to_integral_value():
            raise _Unconvertible("type", "must be an integer (a whole number)", _shown(raw))
        if exact.adjusted() > MAX_NUMBER_TEXT:
            raise _Unconvertible("type", "is too large", _shown(raw))
        return int(exact)
    value = float(exact)
    if not math.isfinite(value):
        raise _Unconvertible("type", "is too large", _shown(raw))
    return value


def _json(raw: str) -> Any:
    """The JSON value a field's text holds; raise ``_Unconvertible``."""

    def constant(name: str) -> Any:
        raise ValueError(f"{name} is not a JSON number")

    def finite(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(f"{text} is too large")
        return value

    try:
        return json.loads(raw, parse_constant=constant, parse_float=finite)
    except json.JSONDecodeError as exc:
        where = f" (line {exc.lineno}, column {exc.colno})"
        raise _Unconvertible("json", f"is not valid JSON: {exc.msg}{where}", None) from None
    except RecursionError:
        raise _Unconvertible("json", "is nested too deeply", None) from None
    except ValueError as exc:  # NaN, an infinite number, an integer of too many digits
        raise _Unconvertible("json", f"is not valid JSON: {exc}", None) from None


# --------------------------------------------------------------------------- problems

_TYPE_WORDS = {
    "string": "text",
    "number": "a number",
    "integer": "an integer",
    "boolean": "true or false",
    "object": "a JSON object",
    "array": "a JSON array",
    "null": "null",
}
_BOUNDS = {
    "minLength": "must be at least {bound} characters long",
    "maxLength": "must be at most {bound} characters long",
    "minItems": "must have at least {bound} items",
    "maxItems": "must have at most {bound} items",
    "minProperties": "must have at least {bound} entries",
    "maxProperties": "must have at most {bound} entries",
    "minimum": "must be at least {bound}",
    "maximum": "must be at most {bound}",
    "exclusiveMinimum": "must be greater than {bound}",
    "exclusiveMaximum": "must be less than {bound}",
    "multipleOf": "must be a multiple of {bound}",
    "pattern": "must match the pattern {bound}",
}


def _message(err: jsonschema.ValidationError) -> str:
    """A violation in words (jsonschema's own messages show Python reprs)."""
    rule, bound = str(err.validator), err.validator_value
    if rule == "type":
        kinds = bound if isinstance(bound, list) else [bound]
        return "must be " + " or ".join(_TYPE_WORDS.get(str(k), str(k)) for k in kinds)
    if rule == "enum" and isinstance(bound, list):
        return "must be one of " + ", ".join(show(v) for v in bound)
    if rule == "const":
        return f"must be {show(bound)}"
    if rule in _BOUNDS:
        return _BOUNDS[rule].format(bound=bound if rule == "pattern" else show(bound))
    if rule == "additionalProperties" and isinstance(err.instance, dict):
        known = err.schema.get("properties", {}) if isinstance(err.schema, dict) else {}
        extra = sorted(str(k) for k in err.instance if k not in known)
        return "has entries the form does not take: " + ", ".join(extra)
    if rule == "uniqueItems":
        return "must not hold the same item twice"
    if rule in ("oneOf", "anyOf") and isinstance(bound, list):
        consts = [c["const"] for c in bound if isinstance(c, dict) and "const" in c]
        if len(consts) == len(bound):
            return "must be one of " + ", ".join(show(v) for v in consts)
        return "must match one of the shapes the form allows"
    if rule == "dependentRequired":
        return "misses entries that others require"
    if rule == "contains":
        return "must hold an item of the kind the form asks for"
    return f"breaks the form's rule {rule}"


def _within(path: str, parent: str) -> bool:
    return path == parent or path.startswith((parent + ".", parent + "["))


def _position(path: str, order: Mapping[str, int]) -> int:
    for parent, index in order.items():
        if _within(path, parent):
            return index
    return len(order)


def field_of(path: str, form: Iterable[Field]) -> Field | None:
    """The form field a problem at ``path`` (``data.address.city``) belongs to."""
    best: Field | None = None
    for field in form:
        if _within(path, field.path) and (best is None or len(field.path) > len(best.path)):
            best = field
    return best
