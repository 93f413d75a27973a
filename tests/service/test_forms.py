"""Form text → the data a ``human_task`` receives (``loopline.service.forms``): fields by the
types ``form_schema`` declares, conversion, and every problem located ``data.<path>``."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from loopline.service import forms

SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["notes", "count"],
    "properties": {
        "notes": {"type": "string", "title": "Release notes", "minLength": 3},
        "count": {"type": "integer", "minimum": 1, "maximum": 10},
        "ratio": {"type": "number"},
        "urgent": {"type": "boolean", "description": "Tick when it cannot wait"},
        "tone": {"enum": ["warm", "dry"]},
        "address": {
            "type": "object",
            "required": ["city"],
            "properties": {"city": {"type": "string"}},
        },
        "tags": {"type": "array", "items": {"type": "string"}},
    },
}
PROPERTY = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8)
QUICK = settings(max_examples=300, derandomize=True, database=None, deadline=None)


def widgets(schema: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {f.key: (f.widget, f.input_type) for f in forms.fields(schema)}


# --------------------------------------------------------------------------- fields


def test_each_declared_type_gets_its_widget() -> None:
    assert widgets(SCHEMA) == {
        "field.notes": ("textarea", "text"),
        "field.count": ("number", "number"),
        "field.ratio": ("number", "number"),
        "field.urgent": ("checkbox", "text"),
        "field.tone": ("select", "text"),
        "field.address": ("json", "text"),
        "field.tags": ("json", "text"),
    }


def test_short_and_one_line_strings_are_inputs_long_ones_textareas() -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 80},
            "mail": {"type": "string", "format": "email"},
            "site": {"type": "string", "format": "uri"},
            "day": {"type": "string", "format": "date"},
            "essay": {"type": "string", "maxLength": 5000},
            "free": {"type": "string"},
            "maybe": {"type": ["string", "null"], "maxLength": 10},
        },
    }
    assert widgets(schema) == {
        "field.name": ("text", "text"),
        "field.mail": ("text", "email"),
        "field.site": ("text", "url"),
        "field.day": ("text", "date"),
        "field.essay": ("textarea", "text"),
        "field.free": ("textarea", "text"),
        "field.maybe": ("text", "text"),
    }


def test_required_title_and_description_come_from_the_schema() -> None:
    by_key = {f.key: f for f in forms.fields(SCHEMA)}
    assert by_key["field.notes"].required and by_key["field.count"].required
    assert not by_key["field.ratio"].required
    assert by_key["field.notes"].label == "Release notes"
    assert by_key["field.count"].label == "count"
    assert by_key["field.urgent"].help == "Tick when it cannot wait"
    assert by_key["field.notes"].path == "data.notes"


def test_number_fields_carry_bounds_and_step() -> None:
    by_key = {f.key: f for f in forms.fields(SCHEMA)}
    assert dict(by_key["field.count"].attrs) == {"min": "1", "max": "10", "step": "1"}
    assert dict(by_key["field.ratio"].attrs) == {"step": "any"}


def test_choices_from_enum_and_titled_consts_are_selects() -> None:
    schema = {
        "type": "object",
        "properties": {
            "level": {"oneOf": [{"const": 1, "title": "Low"}, {"const": 2, "title": "High"}]},
            "mixed": {"enum": ["a", 2, None, True]},
        },
    }
    by_key = {f.key: f for f in forms.fields(schema)}
    assert by_key["field.level"].options == (("1", "Low"), ("2", "High"))
    assert by_key["field.mixed"].options == (
        ("a", "a"),
        ("2", "2"),
        ("null", "null"),
        ("true", "true"),
    )


def test_a_schema_that_is_not_an_object_of_properties_is_one_json_field() -> None:
    (field,) = forms.fields({"type": "array", "items": {"type": "integer"}})
    assert (field.key, field.path, field.widget) == ("data", "data", "json")
    assert forms.convert({"type": "array"}, {"data": ["[1, 2]"]}) == ([1, 2], [])


# --------------------------------------------------------------------------- converting


def convert(schema: dict[str, Any], **typed: str) -> tuple[Any, list[tuple[str, str]]]:
    data, problems = forms.convert(schema, {f"field.{k}": [v] for k, v in typed.items()})
    return data, [(p.field, p.message) for p in problems]


def test_text_is_converted_by_the_declared_types() -> None:
    data, problems = convert(
        SCHEMA,
        notes="Fixes\r\nand more",
        count="3",
        ratio="2.5",
        urgent="true",
        tone="dry",
        address='{"city": "Lyon"}',
        tags='["a", "b"]',
    )
    assert problems == []
    assert data == {
        "notes": "Fixes\nand more",
        "count": 3,
        "ratio": 2.5,
        "urgent": True,
        "tone": "dry",
        "address": {"city": "Lyon"},
        "tags": ["a", "b"],
    }


def test_empty_fields_are_absent_and_an_unticked_checkbox_is_false() -> None:
    data, problems = convert(SCHEMA, notes="abc", count="1", ratio=" ", tone="", tags="\r\n")
    assert problems == []
    assert data == {"notes": "abc", "count": 1, "urgent": False}


def test_integer_field_takes_the_forms_a_browser_sends() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    for text, value in [("3", 3), (" -4 ", -4), ("+5", 5), ("3.0", 3), ("1e3", 1000)]:
        assert convert(schema, n=text) == ({"n": value}, []), text


def test_a_choice_converts_back_to_its_json_value() -> None:
    schema = {"type": "object", "properties": {"mixed": {"enum": ["a", 2, None, True]}}}
    assert convert(schema, mixed="2") == ({"mixed": 2}, [])
    assert convert(schema, mixed="null") == ({"mixed": None}, [])
    assert convert(schema, mixed="true") == ({"mixed": True}, [])


def test_every_problem_is_listed_located_and_in_words() -> None:
    _, problems = convert(
        SCHEMA,
        notes="ab",
        count="three",
        ratio="1e400",
        urgent="maybe",
        tone="loud",
        address='{"town": 1}',
        tags="[1,",
    )
    assert problems == [
        ("data.notes", "must be at least 3 characters long"),
        ("data.count", "must be an integer"),
        ("data.ratio", "is too large"),
        ("data.urgent", "must be true or false"),
        ("data.tone", "must be one of warm, dry"),
        ("data.address.city", "is required"),
        ("data.tags", "is not valid JSON: Expecting value (line 1, column 4)"),
    ]


def test_missing_required_fields_are_located_at_the_field() -> None:
    assert convert(SCHEMA) == (
        {"urgent": False},
        [("data.notes", "is required"), ("data.count", "is required")],
    )


def test_a_field_that_does_not_convert_is_not_also_reported_missing() -> None:
    _, problems = convert(SCHEMA, notes="abc", count="x")
    assert problems == [("data.count", "must be an integer")]


def test_schema_violations_name_bounds_without_python_reprs() -> None:
    _, problems = convert(SCHEMA, notes="abc", count="11", address='{"city": 3}', tags='["a", 2]')
    assert problems == [
        ("data.count", "must be at most 10"),
        ("data.address.city", "must be text"),
        ("data.tags[1]", "must be text"),
    ]


def test_json_fields_refuse_nan_and_infinite_numbers() -> None:
    schema = {"type": "object", "properties": {"x": {"type": "object"}}}
    for text in ('{"a": NaN}', '{"a": 1e999}', '{"a": -Infinity}'):
        _, problems = convert(schema, x=text)
        assert [p[0] for p in problems] == ["data.x"], text
        assert problems[0][1].startswith("is not valid JSON"), problems


def test_problems_carry_the_value_typed_when_there_is_one() -> None:
    _, problems = forms.convert(SCHEMA, {"field.notes": ["abc"], "field.count": ["x"]})
    assert [p.to_dict() for p in problems] == [
        {"field": "data.count", "rule": "type", "message": "must be an integer", "value": "x"}
    ]


def test_no_schema_no_data() -> None:
    assert forms.convert(None, {"field.x": ["1"]}) == (None, [])


# --------------------------------------------------------------------------- properties

INTEGER = {"type": "object", "properties": {"n": {"type": "integer"}}}
NUMBER = {"type": "object", "properties": {"n": {"type": "number"}}}
JSON_FIELD = {"type": "object", "properties": {"n": {"type": "array"}}}


@QUICK
@given(
    st.one_of(
        st.text(),
        st.integers().map(str),
        st.floats().map(str),
        st.from_regex(r"\A[+-]?[0-9]{1,1500}(\.[0-9]*)?([eE][+-]?[0-9]{1,6})?\Z"),
    )
)
def test_any_text_in_an_integer_field_is_an_int_that_round_trips_or_a_located_problem(
    text: str,
) -> None:
    data, problems = forms.convert(INTEGER, {"field.n": [text]})
    if problems:
        assert [p.field for p in problems] == ["data.n"]
        assert problems[0].message.startswith(("must be", "is too large"))
    elif not text.strip():
        assert data == {}
    else:
        value = data["n"]
        assert type(value) is int
        assert forms.convert(INTEGER, {"field.n": [str(value)]}) == ({"n": value}, [])


@QUICK
@given(st.one_of(st.text(), st.floats().map(str), st.integers().map(str)))
def test_any_text_in_a_number_field_is_a_finite_number_or_a_located_problem(text: str) -> None:
    data, problems = forms.convert(NUMBER, {"field.n": [text]})
    if problems:
        assert [p.field for p in problems] == ["data.n"]
    elif text.strip():
        value = data["n"]
        assert isinstance(value, (int, float)) and not isinstance(value, bool)
        assert value == value and abs(value) != float("inf")
        assert json.loads(json.dumps(value)) == value


@QUICK
@given(st.text())
def test_any_text_in_a_json_field_is_a_value_or_a_located_problem(text: str) -> None:
    data, problems = forms.convert(JSON_FIELD, {"field.n": [text]})
    for problem in problems:
        assert problem.field.startswith("data.n")
        assert problem.message.startswith(("is not valid JSON", "must be", "is nested"))
    if not problems and text.strip():
        assert json.loads(json.dumps(data["n"])) == data["n"]


@QUICK
@given(st.dictionaries(PROPERTY, st.text(max_size=20), max_size=6), st.booleans())
def test_any_submission_converts_without_raising(typed: dict[str, str], prefixed: bool) -> None:
    submitted = {(f"field.{k}" if prefixed else k): [v] for k, v in typed.items()}
    data, problems = forms.convert(SCHEMA, submitted)
    assert isinstance(data, dict)
    for problem in problems:
        assert problem.field.startswith("data.")
        assert problem.message and "'" not in problem.message.replace("'s", "")
