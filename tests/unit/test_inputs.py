"""Task inputs: ``resolve_inputs`` checks a submission against the input specs."""

from __future__ import annotations

import math
import textwrap
import time

import pytest
from loopline.dsl import InputsInvalid, Workflow, load_workflow_text, resolve_inputs

SPECS = """
name: wf
inputs:
  topic: {type: string, required: true, min_length: 3, max_length: 20}
  code: {type: string, pattern: "^[A-Z]+-[0-9]+$"}
  count: {type: integer, default: 3}
  ratio: {type: number}
  strict: {type: boolean, default: false}
  level: {type: enum, values: [low, high], default: low}
  extra: {type: json}
  tags: {type: json, max_length: 2}
  report: {type: file}
steps:
  - id: a
    llm: "{{ inputs.topic }}"
"""


@pytest.fixture(scope="module")
def wf() -> Workflow:
    return load_workflow_text(SPECS, "wf.yaml")


def violations(wf: Workflow, given: dict[str, object]) -> list[str]:
    with pytest.raises(InputsInvalid) as caught:
        resolve_inputs(wf, given)
    return caught.value.problems


def test_given_valid_inputs_then_defaults_fill_in_and_every_input_has_a_value(
    wf: Workflow,
) -> None:
    got = resolve_inputs(wf, {"topic": "tides", "ratio": 0.5, "report": "s3://bucket/a/b.pdf"})

    assert got == {
        "topic": "tides",
        "code": None,
        "count": 3,
        "ratio": 0.5,
        "strict": False,
        "level": "low",
        "extra": None,
        "tags": None,
        "report": "s3://bucket/a/b.pdf",
    }


def test_given_a_json_input_then_any_json_value_is_accepted(wf: Workflow) -> None:
    got = resolve_inputs(wf, {"topic": "tides", "extra": {"a": [1, None, "x"]}})

    assert got["extra"] == {"a": [1, None, "x"]}


def test_given_a_missing_required_input_then_it_is_refused(wf: Workflow) -> None:
    assert violations(wf, {}) == ["inputs.topic: is required (got nothing)"]


def test_given_null_for_a_required_input_then_it_is_refused(wf: Workflow) -> None:
    assert violations(wf, {"topic": None}) == ["inputs.topic: is required (got null)"]


def test_given_null_for_an_optional_input_then_its_default_applies(wf: Workflow) -> None:
    assert resolve_inputs(wf, {"topic": "tides", "count": None})["count"] == 3


def test_given_many_violations_then_every_one_is_listed_with_field_rule_and_value(
    wf: Workflow,
) -> None:
    got = violations(
        wf,
        {
            "topic": "ab",
            "code": "abc",
            "count": 2.5,
            "ratio": "high",
            "strict": "yes",
            "level": "mid",
            "tags": [1, 2, 3],
            "report": "/tmp/r.pdf",
            "topik": "x",
        },
    )

    assert got == [
        'inputs.topic: must be at least 3 characters long (got "ab")',
        'inputs.code: must match the pattern ^[A-Z]+-[0-9]+$ (got "abc")',
        "inputs.count: must be an integer (got 2.5)",
        'inputs.ratio: must be a number (got "high")',
        'inputs.strict: must be true or false (got "yes")',
        'inputs.level: must be one of "low", "high" (got "mid")',
        "inputs.tags: must have at most 2 items (got [1, 2, 3])",
        'inputs.report: must be an S3 URI like s3://bucket/key (got "/tmp/r.pdf")',
        'inputs.topik: unknown input, did you mean "topic"? (got "x")',
    ]


def test_given_a_too_long_string_then_the_rule_names_the_limit(wf: Workflow) -> None:
    assert violations(wf, {"topic": "x" * 21}) == [
        f'inputs.topic: must be at most 20 characters long (got "{"x" * 21}")'
    ]


def test_given_a_boolean_for_a_number_then_it_is_refused(wf: Workflow) -> None:
    assert violations(wf, {"topic": "tides", "ratio": True}) == [
        "inputs.ratio: must be a number (got true)"
    ]


def test_given_an_unknown_input_far_from_any_name_then_the_declared_ones_are_listed() -> None:
    wf = load_workflow_text(
        textwrap.dedent(
            """
            name: wf
            inputs:
              topic: {type: string}
            steps:
              - id: a
                llm: hi
            """
        ),
        "wf.yaml",
    )

    assert violations(wf, {"zzz": 1}) == ["inputs.zzz: unknown input; declared: topic (got 1)"]


def test_given_a_workflow_without_inputs_then_the_submission_is_returned_unchanged() -> None:
    wf = load_workflow_text("name: wf\nsteps: [{id: a, llm: hi}]\n", "wf.yaml")
    given = {"anything": [1, 2]}

    assert resolve_inputs(wf, given) is given


def test_given_a_submission_that_is_not_an_object_then_it_is_refused(wf: Workflow) -> None:
    assert violations(wf, ["a"]) == ['inputs: must be a JSON object (got ["a"])']  # type: ignore[arg-type]


def test_given_defaults_when_resolved_twice_then_the_default_values_are_not_shared() -> None:
    wf = load_workflow_text(
        "name: wf\ninputs: {opts: {type: json, default: {a: 1}}}\nsteps: [{id: a, llm: hi}]\n",
        "wf.yaml",
    )

    first = resolve_inputs(wf, {})
    first["opts"]["a"] = 2

    assert resolve_inputs(wf, {})["opts"] == {"a": 1}


# --------------------------------------------------------------------------- hostile values

NESTED_QUANTIFIERS = """
name: wf
inputs:
  word: {type: string, pattern: "^(a+)+$"}
steps:
  - id: a
    llm: "{{ inputs.word }}"
"""


def test_given_a_pattern_with_nested_quantifiers_then_a_long_value_validates_in_linear_time() -> (
    None
):
    wf = load_workflow_text(NESTED_QUANTIFIERS, "wf.yaml")
    value = "a" * 30 + "!"
    start = time.perf_counter()

    got = violations(wf, {"word": value})
    resolve_inputs(wf, {"word": "a" * 100_000})

    assert time.perf_counter() - start < 1
    assert got == [f'inputs.word: must match the pattern ^(a+)+$ (got "{value}")']


def test_given_patterns_then_they_match_with_re2_unicode_classes_and_lone_surrogates() -> None:
    wf = load_workflow_text(NESTED_QUANTIFIERS.replace("^(a+)+$", "^\\\\p{L}+$"), "wf.yaml")

    assert resolve_inputs(wf, {"word": "Grüße"})["word"] == "Grüße"
    assert violations(wf, {"word": "a\ud800"})[0].startswith("inputs.word: must match")


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_given_nan_or_infinity_for_a_number_input_then_it_is_refused(
    wf: Workflow, bad: float
) -> None:
    (problem,) = violations(wf, {"topic": "tides", "ratio": bad})

    assert problem.startswith(
        "inputs.ratio: must not be NaN or infinite (JSON has no such numbers) (got "
    )


def test_given_nan_deep_inside_a_json_input_then_it_is_refused(wf: Workflow) -> None:
    assert violations(wf, {"topic": "tides", "extra": {"a": [1, {"b": math.nan}]}}) == [
        "inputs.extra: must not be NaN or infinite (JSON has no such numbers) "
        '(got {"a": [1, {"b": NaN}]})'
    ]


def test_given_a_json_input_nested_thousands_deep_then_the_problem_is_still_readable(
    wf: Workflow,
) -> None:
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]

    assert violations(wf, {"topic": "tides", "tags": [deep, 1, 2], "code": deep}) == [
        "inputs.code: must not be nested more than 100 levels deep "
        "(got a value nested too deeply to show)",
        "inputs.tags: must not be nested more than 100 levels deep "
        "(got a value nested too deeply to show)",
    ]
