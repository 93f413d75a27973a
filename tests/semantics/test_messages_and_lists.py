"""A for_each or vote over something that is not a list fails with a Loopline error that
names the step and what it got; ``fail`` and ``assert`` messages render their
``{{ }}`` like every template. Executed in moto."""

from __future__ import annotations

from typing import Any

import pytest

from tests.semantics.conftest import Runner

LOOP = """
name: loop
inputs:
  items: {type: json}
steps:
  - id: each
    loop:
      for_each: inputs.items
      steps:
        - {id: echo, tool: render, args: {template: "{{ item }}"}}
"""


@pytest.mark.parametrize(
    ("items", "got"),
    [
        ("a, b", '"a, b"'),
        (3, "3"),
        (True, "true"),
        ({"a": 1}, '{"a":1}'),
    ],
)
def test_for_each_over_a_value_that_is_not_a_list_fails_naming_the_step(
    run: Runner, items: Any, got: str
) -> None:
    result = run(LOOP, inputs={"items": items})
    assert (result.status, result.error) == ("FAILED", "Loopline.Failed")
    assert result.cause == f"step each: for_each needs a list, got {got}"


@pytest.mark.parametrize(("items", "output"), [([], []), (None, []), ([1, 2], [1, 2])])
def test_for_each_over_a_list_or_nothing_still_runs(run: Runner, items: Any, output: Any) -> None:
    result = run(LOOP, inputs={"items": items})
    assert (result.status, result.output) == ("SUCCEEDED", output), (result.error, result.cause)


def test_a_for_each_that_is_not_a_list_is_caught_by_on_error(run: Runner) -> None:
    wf = (
        LOOP
        + "    on_error: continue\n"
        + '  - {id: show, tool: render, args: {template: "{{ steps.each.output }}"}}\n'
    )
    result = run(wf, inputs={"items": "text"})
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    assert result.output == {
        "error": "Loopline.Failed",
        "cause": 'step each: for_each needs a list, got "text"',
    }


def test_vote_over_a_value_that_is_not_a_list_fails_naming_the_step(run: Runner) -> None:
    result = run(
        """
name: voting
inputs:
  claims: {type: json}
steps:
  - id: judge
    vote: {input: inputs.claims, voters: 2, rules: Refute.}
""",
        inputs={"claims": "the sky is blue"},
    )
    assert (result.status, result.error) == ("FAILED", "Loopline.Failed")
    assert result.cause == 'step judge: vote input needs a list, got "the sky is blue"'


def test_fail_message_renders_its_templates(run: Runner) -> None:
    result = run(
        """
name: failing
inputs:
  topic: {type: string, default: tides}
steps:
  - {id: stop, fail: "nothing found on {{ inputs.topic }}", error: Custom.NotFound}
"""
    )
    assert (result.status, result.error) == ("FAILED", "Custom.NotFound")
    assert result.cause == "nothing found on tides"


def test_assert_message_renders_its_templates(run: Runner) -> None:
    result = run(
        """
name: asserting
inputs:
  n: {type: number, default: 3}
steps:
  - {id: check, assert: "inputs.n > 5", message: "n is {{ inputs.n }}, not over 5"}
"""
    )
    assert (result.status, result.error) == ("FAILED", "Loopline.AssertionFailed")
    assert result.cause == "n is 3, not over 5"


def test_a_message_that_is_one_value_renders_as_its_json(run: Runner) -> None:
    result = run(
        """
name: failing
inputs:
  detail: {type: json, default: {code: 7}}
steps:
  - {id: stop, fail: "{{ inputs.detail }}"}
""",
    )
    assert (result.status, result.error) == ("FAILED", "Loopline.Failed")
    assert result.cause == '{"code": 7}'


def test_a_message_that_cannot_be_rendered_keeps_the_steps_error(run: Runner) -> None:
    result = run(
        """
name: failing
inputs:
  detail: {type: json}
steps:
  - {id: stop, fail: "bad: {{ inputs.detail.reason }}", error: Custom.Bad}
""",
    )
    assert (result.status, result.error) == ("FAILED", "Custom.Bad")
    assert result.cause == "bad: {{ inputs.detail.reason }}"


@pytest.mark.parametrize(
    "value", ['{"errorType": "X", "errorMessage": broken', '{"errorMessage": "inner"}']
)
def test_a_rendered_message_is_caught_as_the_text_it_rendered(run: Runner, value: str) -> None:
    result = run(
        """
name: failing
inputs:
  text: {type: string}
steps:
  - id: work
    group:
      - {id: stop, fail: "{{ inputs.text }}"}
    on_error: continue
  - {id: show, tool: render, args: {template: "{{ steps.work.output }}"}}
""",
        inputs={"text": value},
    )
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    assert result.output == {"error": "Loopline.Failed", "cause": value}
