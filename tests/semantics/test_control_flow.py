"""Branches, if, assert, loops, parallel, fail and succeed, executed in moto."""

from __future__ import annotations

import pytest

from tests.semantics.conftest import Runner

BRANCH = """
name: branching
inputs:
  n: {type: number, required: true}
steps:
  - id: pick
    branch:
      if: inputs.n > 10
      then:
        - {id: big, tool: render, args: {template: "big {{ inputs.n }}"}}
      else:
        - {id: small, tool: render, args: {template: "small"}}
"""


@pytest.mark.parametrize(("n", "arm", "output"), [(11, "big", "big 11"), (3, "small", "small")])
def test_branch_runs_the_matching_arm_only(run: Runner, n: int, arm: str, output: str) -> None:
    result = run(BRANCH, inputs={"n": n})
    assert result.status == "SUCCEEDED"
    assert result.output == output
    other = "small" if arm == "big" else "big"
    assert result.steps[arm]["status"] == "succeeded"
    assert other not in result.steps or result.steps[other]["starts"] == 0


CASES = """
name: cases
inputs:
  level: {type: string, required: true}
steps:
  - id: route
    branch:
      cases:
        - if: inputs.level == 'high'
          then: [{id: page, tool: render, args: {template: paged}}]
        - if: inputs.level == 'mid'
          then: [{id: ticket, tool: render, args: {template: ticketed}}]
      else:
        - {id: ignore, tool: render, args: {template: ignored}}
"""


@pytest.mark.parametrize(
    ("level", "output"), [("high", "paged"), ("mid", "ticketed"), ("low", "ignored")]
)
def test_branch_cases_pick_the_first_match_or_else(run: Runner, level: str, output: str) -> None:
    result = run(CASES, inputs={"level": level})
    assert (result.status, result.output) == ("SUCCEEDED", output)


def test_step_with_false_if_is_skipped_with_null_output(run: Runner) -> None:
    result = run(
        """
name: skipping
inputs:
  go: {type: boolean, default: false}
steps:
  - {id: maybe, if: inputs.go, tool: render, args: {template: ran}}
  - {id: after, tool: render, args: {template: "maybe={{ steps.maybe.output }}"}}
"""
    )
    assert result.status == "SUCCEEDED"
    assert result.steps["maybe"]["status"] == "skipped"
    assert result.output == "maybe=null"


def test_missing_value_makes_a_comparison_false_not_an_error(run: Runner) -> None:
    result = run(
        """
name: missing
steps:
  - {id: text, tool: render, args: {template: plain}}
  - id: check
    if: steps.text.output.score > 3 or steps.text.output.score == 'x'
    tool: render
    args: {template: never}
  - {id: last, tool: render, args: {template: done}}
"""
    )
    assert result.status == "SUCCEEDED"
    assert result.steps["check"]["status"] == "skipped"


def test_assert_fails_the_task_with_its_message(run: Runner) -> None:
    result = run(
        """
name: asserting
inputs:
  n: {type: integer, default: 1}
steps:
  - id: positive
    assert: inputs.n > 5
    message: n must be above five
"""
    )
    assert result.status == "FAILED"
    assert result.error == "Loopline.AssertionFailed"
    assert result.cause == "n must be above five"


def test_for_each_runs_every_item_with_index_and_concurrency(run: Runner) -> None:
    result = run(
        """
name: each
inputs:
  words: {type: json, required: true}
steps:
  - id: shout
    loop:
      for_each: inputs.words
      as: word
      max_concurrency: 2
      steps:
        - {id: upper, tool: render, args: {template: "{{ index }}:{{ word }}"}}
""",
        inputs={"words": ["a", "b", "c", "d"]},
    )
    assert result.status == "SUCCEEDED"
    assert result.output == ["0:a", "1:b", "2:c", "3:d"]
    assert result.steps["upper"]["starts"] == 4


WHILE = """
name: refine
steps:
  - id: improve
    loop:
      while: not exists(steps.critic.output) or steps.critic.output.done == false
      max_iterations: 3
      steps:
        - id: critic
          llm: "Is it done?"
          output_schema: {type: object, properties: {done: {type: boolean}}}
"""


def test_while_stops_when_its_condition_turns_false(run: Runner) -> None:
    result = run(WHILE, script=[{"step": "critic", "answers": [{"done": False}, {"done": True}]}])
    assert result.status == "SUCCEEDED"
    assert result.output == {"done": True}
    assert result.steps["critic"]["starts"] == 2


def test_while_hitting_its_cap_fails_with_max_iterations(run: Runner) -> None:
    result = run(WHILE, script=[{"step": "critic", "answer": {"done": False}}])
    assert result.status == "FAILED"
    assert result.error == "Loopline.MaxIterations"
    assert result.steps["critic"]["starts"] == 3


def test_parallel_collects_entry_outputs_and_nested_records(run: Runner) -> None:
    result = run(
        """
name: fork
steps:
  - id: both
    parallel:
      - {id: left, tool: render, args: {template: L}}
      - id: right
        group:
          - {id: r1, tool: render, args: {template: R1}}
          - {id: r2, tool: render, args: {template: "{{ steps.r1.output }}+R2"}}
  - {id: joined, tool: render, args: {template: "{{ steps.both.output.left }}/{{ steps.r2.output }}"}}
"""
    )
    assert result.status == "SUCCEEDED"
    assert result.output == "L/R1+R2"


def test_parallel_fails_as_a_whole_when_one_entry_fails(run: Runner) -> None:
    result = run(
        """
name: fork-fail
steps:
  - id: both
    parallel:
      - {id: fine, tool: render, args: {template: ok}}
      - {id: broken, fail: "entry broke", error: Loopline.Failed}
  - {id: never, tool: render, args: {template: unreachable}}
"""
    )
    assert result.status == "FAILED"
    assert result.error == "Loopline.Failed"
    assert "never" not in result.steps or result.steps["never"]["starts"] == 0


def test_fail_step_ends_the_task_with_its_error(run: Runner) -> None:
    result = run(
        """
name: failing
steps:
  - {id: stop, fail: "nothing to do", error: Custom.Stop}
"""
    )
    assert (result.status, result.error, result.cause) == ("FAILED", "Custom.Stop", "nothing to do")


def test_succeed_step_ends_the_task_early_with_its_output(run: Runner) -> None:
    result = run(
        """
name: succeeding
inputs:
  who: {type: string, default: you}
steps:
  - id: early
    succeed: {greeting: "hello {{ inputs.who }}", who: "{{ inputs.who }}"}
  - {id: never, fail: unreachable}
"""
    )
    assert result.status == "SUCCEEDED"
    assert result.output == {"greeting": "hello you", "who": "you"}


def test_len_of_a_loop_output_is_computed_natively(run: Runner) -> None:
    result = run(
        """
name: lengths
inputs:
  xs: {type: json, default: [1, 2, 3]}
steps:
  - id: each
    loop:
      for_each: inputs.xs
      steps: [{id: one, tool: render, args: {template: "{{ item }}"}}]
  - id: many
    if: len(steps.each.output) >= 3 and len(inputs.xs) == 3
    tool: render
    args: {template: many}
"""
    )
    assert result.status == "SUCCEEDED"
    assert result.output == "many"
