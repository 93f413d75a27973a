"""Expression evaluation and template rendering at run time (docs/internals.md)."""

from __future__ import annotations

from typing import Any

import pytest
from loopline.runtime.errors import StepError
from loopline.runtime.evaluate import (
    MISSING,
    context_from_payload,
    evaluate,
    render_template,
    render_tree,
    truthy,
)

CTX: dict[str, Any] = {
    "inputs": {"topic": "tides", "count": 3, "flag": False, "empty": "", "none": None},
    "steps": {
        "draft": {"output": {"score": 7, "tags": ["a", "b"], "title": "T", "ok": True}},
        "skipped": {"output": None, "skipped": True},
        "later": {},
    },
    "item": {"name": "x"},
    "index": 0,
}


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("inputs.topic == 'tides'", True),
        ("inputs.count == 3.0", True),
        ("inputs.count > 2 and inputs.count <= 3", True),
        ("inputs.topic < 'zebra'", True),
        ("steps.draft.output.ok == true", True),
        ("steps.draft.output.score == 7", True),
        ("steps.draft.output.tags == steps.draft.output.tags", True),
        ("inputs.none == null", True),
        ("index == 0", True),
        ("item.name == 'x'", True),
    ],
)
def test_comparisons_on_present_values(expr: str, expected: bool) -> None:
    assert evaluate(expr, CTX) is expected


@pytest.mark.parametrize(
    "expr",
    [
        "inputs.nope == 1",
        "inputs.nope != 1",
        "inputs.nope == null",
        "steps.skipped.output.x != 'y'",
        "steps.later.output > 0",
        "steps.draft.output.tags[5] == 'a'",
    ],
)
def test_a_comparison_reading_a_missing_value_is_false(expr: str) -> None:
    assert evaluate(expr, CTX) is False


@pytest.mark.parametrize(
    "expr",
    [
        "inputs.count < 'x'",
        "inputs.topic > 1",
        "inputs.flag < true",
        "steps.draft.output.tags > steps.draft.output.tags",
        "inputs.count == true",
        "1 == true",
    ],
)
def test_ordering_and_equality_across_types_is_false(expr: str) -> None:
    assert evaluate(expr, CTX) is False


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("inputs.flag", False),
        ("inputs.empty", ""),
        ("not inputs.flag", True),
        ("not inputs.empty", True),
        ("not inputs.none", True),
        ("not inputs.missing", True),
        ("not steps.draft.output.tags", False),
        ("inputs.count and inputs.topic", True),
        ("inputs.flag or inputs.topic", True),
        ("! (inputs.flag || inputs.empty)", True),
    ],
)
def test_truthiness(expr: str, expected: Any) -> None:
    assert evaluate(expr, CTX) == expected


def test_truthy_of_empty_containers_is_true() -> None:
    assert truthy([]) and truthy({})
    assert not any(truthy(v) for v in (None, False, 0, 0.0, "", MISSING))


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("exists(steps.draft)", True),
        ("exists(steps.skipped)", True),
        ("exists(steps.later)", False),
        ("exists(steps.nope)", False),
        ("exists(steps.skipped.output)", False),
        ("exists(inputs.none)", False),
        ("exists(inputs.flag)", True),
        ("not exists(steps.later) or steps.later.output.done == false", True),
    ],
)
def test_exists(expr: str, expected: bool) -> None:
    assert evaluate(expr, CTX) is expected


def test_len_of_lists_strings_and_objects() -> None:
    assert evaluate("len(steps.draft.output.tags)", CTX) == 2
    assert evaluate("len(inputs.topic)", CTX) == 5
    assert evaluate("len(steps.draft.output)", CTX) == 4
    assert evaluate("len(inputs.count)", CTX) is MISSING
    assert evaluate("len(inputs.nope) == 0", CTX) is False
    assert evaluate("len(steps.draft.output.tags) >= 2", CTX) is True


def test_a_single_expression_template_yields_the_value_itself() -> None:
    assert render_template("{{ steps.draft.output.tags }}", CTX) == ["a", "b"]
    assert render_template("{{ inputs.count }}", CTX) == 3
    assert render_template(" {{ inputs.count }}", CTX) == " 3"


def test_text_templates_insert_strings_raw_and_json_encode_the_rest() -> None:
    out = render_template(
        "{{ inputs.topic }}: {{ steps.draft.output.tags }} {{ inputs.flag }} {{ inputs.none }}", CTX
    )
    assert out == 'tides: ["a", "b"] false null'


def test_a_template_reading_a_missing_value_fails_the_step_naming_the_path() -> None:
    with pytest.raises(StepError) as err:
        render_template("Title: {{ steps.draft.output.subtitle }}", CTX)
    assert err.value.name == "Loopline.Failed"
    assert "steps.draft.output.subtitle, which has no value" in err.value.message


def test_the_missing_value_message_says_a_step_was_skipped_or_has_not_run() -> None:
    with pytest.raises(StepError, match=r"step skipped was skipped"):
        render_template("{{ steps.skipped.output.x }}", CTX)
    with pytest.raises(StepError, match=r"step later has not run"):
        render_template("{{ steps.later.output }}", CTX)


def test_a_template_comparison_on_a_missing_value_is_false_not_an_error() -> None:
    assert render_template("{{ steps.later.output == 1 }}", CTX) is False


def test_render_tree_renders_every_string_and_keeps_keys() -> None:
    tree = {"{{ x }}": ["{{ inputs.count }}", {"t": "about {{ inputs.topic }}"}], "n": 1}
    assert render_tree(tree, CTX) == {"{{ x }}": [3, {"t": "about tides"}], "n": 1}


def test_context_from_payload_puts_vars_at_the_top() -> None:
    payload = {"values": {"inputs": {"a": 1}, "steps": {"s": {"output": 2}}, "vars": {"item": 5}}}
    ctx = context_from_payload(payload)
    assert ctx == {"inputs": {"a": 1}, "steps": {"s": {"output": 2}}, "item": 5}
    assert evaluate("item == 5 and steps.s.output == 2", ctx) is True
    assert context_from_payload({}) == {"inputs": {}, "steps": {}}


@pytest.mark.parametrize(
    ("path", "kind"),
    [("inputs.count", "a number"), ("inputs.flag", "a boolean"), ("inputs.none", "null")],
)
def test_len_of_a_value_without_length_says_what_it_is_in_json_words(path: str, kind: str) -> None:
    with pytest.raises(StepError) as err:
        render_template(f"{{{{ len({path}) }}}}", CTX)
    assert f"{path} is {kind}, not a list, text or object" in err.value.message
    for python_name in ("int", "bool", "NoneType"):
        assert f" {python_name}," not in err.value.message
