"""User patterns are matched by RE2: linear time whatever the pattern, for inputs,
``output_schema`` (model answers) and ``form_schema`` (form data); a pattern RE2 refuses
is a problem of the workflow file."""

from __future__ import annotations

import time

import pytest
from loopline.dsl import WorkflowInvalid, load_workflow_text
from loopline.local.run import check_value
from loopline.patterns import PatternError, check_pattern, schema_validator
from loopline.runtime.errors import StepError
from loopline.runtime.llm import parse_output, schema_problem

EVIL = "^(a+)+$"
SLOW_FOR_BACKTRACKING = "a" * 30 + "!"


def test_given_nested_quantifiers_in_an_output_schema_then_an_answer_is_checked_at_once() -> None:
    schema = {"type": "object", "properties": {"word": {"type": "string", "pattern": EVIL}}}
    start = time.perf_counter()

    with pytest.raises(StepError) as caught:
        parse_output(f'{{"word": "{SLOW_FOR_BACKTRACKING}"}}', schema, "classify")

    assert time.perf_counter() - start < 1
    assert caught.value.name == "Loopline.InvalidOutput"
    assert "does not match '^(a+)+$'" in caught.value.message


def test_given_nested_quantifiers_in_a_form_schema_then_form_data_is_checked_at_once() -> None:
    schema = {
        "type": "object",
        "properties": {"code": {"type": "string", "pattern": EVIL}},
        "patternProperties": {EVIL: {"type": "integer"}},
        "additionalProperties": False,
    }
    start = time.perf_counter()

    problem = check_value(
        {"code": SLOW_FOR_BACKTRACKING, SLOW_FOR_BACKTRACKING: 1}, "human_task", [], schema
    )

    assert time.perf_counter() - start < 1
    assert problem is not None and problem.startswith("the form data does not match form_schema")


def test_given_nested_quantifiers_in_a_form_schema_then_a_submitted_form_is_checked_at_once() -> (
    None
):
    from loopline.service import forms

    schema = {
        "type": "object",
        "properties": {"code": {"type": "string", "pattern": EVIL}},
        "patternProperties": {EVIL: {"type": "integer"}},
    }
    start = time.perf_counter()

    data, problems = forms.convert(schema, {"field.code": SLOW_FOR_BACKTRACKING})
    late = forms.violations(schema, {SLOW_FOR_BACKTRACKING: "x", "aaa": "x"})

    assert time.perf_counter() - start < 1
    assert data == {"code": SLOW_FOR_BACKTRACKING}
    assert [(p.field, p.message) for p in problems] == [
        ("data.code", "must match the pattern ^(a+)+$")
    ]
    assert [(p.field, p.message) for p in late] == [("data.aaa", "must be an integer")]


def test_given_pattern_properties_then_matching_keys_are_checked_and_are_not_additional() -> None:
    schema = {
        "type": "object",
        "properties": {"id": {"type": "string"}},
        "patternProperties": {"^x_": {"type": "integer"}},
        "additionalProperties": False,
    }
    validator = schema_validator(schema)

    assert list(validator.iter_errors({"id": "a", "x_1": 1, "x_2": 2})) == []
    assert [e.message for e in validator.iter_errors({"x_1": "no"})] == [
        "'no' is not of type 'integer'"
    ]
    assert [e.message for e in validator.iter_errors({"y": 1})] == [
        "Additional properties are not allowed ('y' was unexpected)"
    ]
    problem = schema_problem({"y": 1}, schema)
    assert problem is not None
    assert problem.endswith(
        "Additional properties are not allowed ('y' was unexpected) (rule additionalProperties)"
    )


@pytest.mark.parametrize(
    "pattern", [r"(a)\1", "(?=a)", "(?!a)", "(?<=a)b", r"a\Z", "a{1001}", "(", "a" * 5 + "\ud800"]
)
def test_given_a_pattern_re2_refuses_when_checked_then_the_reason_is_given(pattern: str) -> None:
    with pytest.raises(PatternError) as caught:
        check_pattern(pattern)

    assert str(caught.value)
    assert "re2" not in str(caught.value).lower().replace("re2 expressions", "")


def test_given_backreferences_or_lookaround_then_the_message_says_re2_has_none() -> None:
    for pattern in (r"(a)\1", "(?=a)"):
        with pytest.raises(PatternError, match="no backreferences or lookaround"):
            check_pattern(pattern)


WORKFLOW = """
name: wf
steps:
  - id: a
    llm: hi
    output_schema:
      type: object
      properties:
        x: {type: string, pattern: "PATTERN"}
"""


def test_given_an_output_schema_pattern_re2_refuses_then_the_workflow_is_invalid() -> None:
    with pytest.raises(WorkflowInvalid) as caught:
        load_workflow_text(WORKFLOW.replace("PATTERN", "(?<=a)b"), "wf.yaml")

    assert caught.value.render() == (
        "wf.yaml:7:7: steps[0].output_schema: not a valid JSON Schema: the pattern "
        "'(?<=a)b' does not compile: invalid perl operator: (?<= (patterns are RE2 "
        "expressions: no backreferences or lookaround) (at properties/x/pattern)"
    )


def test_given_unevaluated_and_pattern_properties_together_then_the_workflow_is_invalid() -> None:
    text = WORKFLOW.replace('x: {type: string, pattern: "PATTERN"}', "x: {}").replace(
        "      properties:",
        "      unevaluatedProperties: false\n      patternProperties: {'^y': {}}\n      properties:",
    )

    with pytest.raises(WorkflowInvalid, match="unevaluatedProperties cannot be combined"):
        load_workflow_text(text, "wf.yaml")


def test_given_a_schema_without_patterns_then_the_checks_are_those_of_jsonschema() -> None:
    validator = schema_validator({"type": "object", "required": ["a"], "maxProperties": 1})

    assert validator.is_valid({"a": 1})
    assert not validator.is_valid({})
    assert not validator.is_valid({"a": 1, "b": 2})
