"""How many states an execution enters (moto's ``StateEntered`` events, what Step Functions
bills): each construct at its floor (bench/transitions.py says why each floor is what it
is), with the same outputs and records as ever."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from loopline.local.run import run_workflow

from tests.semantics.conftest import Runner

pytestmark = pytest.mark.moto


@pytest.fixture
def run(tmp_path: Path) -> Runner:
    return Runner(tmp_path)


CRITIC = [{"step": "critic", "answers": [{"done": False}, {"done": False}, {"done": True}]}]

#: name → (workflow, inputs, script, transitions, output)
CASES: dict[str, tuple[str, dict[str, Any], list[dict[str, Any]] | None, int, Any]] = {
    # _init merges the inputs over their defaults; the step's state picks the output.
    "one state besides the steps": (
        """
name: one
inputs:
  topic: {type: string, default: tides}
  depth: {type: integer, default: 2}
  note: {type: string}
steps:
  - {id: say, tool: render, args: {template: "{{ inputs.topic }} {{ inputs.depth }} {{ inputs.note }}"}}
""",
        {"depth": 3},
        None,
        2,
        "tides 3 null",
    ),
    # The guard, the Map and per item the body (here a Choice and the step or its skip):
    # the body's last states give the iteration's output.
    "for_each: the body per item": (
        """
name: each
inputs:
  xs: {type: json, required: true}
steps:
  - id: loop
    loop:
      for_each: inputs.xs
      steps:
        - {id: body, if: "item != 2", tool: render, args: {template: "<{{ item }}>"}}
""",
        {"xs": [1, 2, 3]},
        None,
        1 + 2 + 2 * 3,
        ["<1>", None, "<3>"],
    ),
    # The Parallel, one state per entry, the Pass recording the parallel's output, and the
    # step after it (which reads records from every branch).
    "parallel: one state per entry": (
        """
name: fork
steps:
  - id: par
    parallel:
      - {id: e0, tool: render, args: {template: A}}
      - {id: e1, tool: render, args: {template: B}}
      - {id: e2, tool: render, args: {template: C}}
  - {id: after, tool: render, args: {template: "{{ steps.par.output }} {{ steps.e1.output }}{{ steps.e2.output }}"}}
""",
        {},
        None,
        1 + 2 + 3 + 1,
        '{"e0": "A", "e1": "B", "e2": "C"} BC',
    ),
    # The counter, per iteration the test (condition and cap together), the body and the
    # count, then the last test and the record.
    "while: three states per iteration": (
        """
name: loop
steps:
  - id: refine
    loop:
      while: not exists(steps.critic.output) or steps.critic.output.done == false
      max_iterations: 5
      steps:
        - id: critic
          llm: Critique.
          output_schema: {type: object, properties: {done: {type: boolean}}}
""",
        {},
        CRITIC,
        1 + 1 + 3 * 3 + 2,
        {"done": True},
    ),
    # The wrapper, the group's steps and its record: the wrapper's output is the branch's.
    "a wrapped group": (
        """
name: wrapped
steps:
  - id: g
    retry: {max_attempts: 2, on: [Loopline.Failed]}
    group:
      - {id: a, tool: render, args: {template: A}}
      - {id: b, tool: render, args: {template: "{{ steps.a.output }}B"}}
  - {id: after, tool: render, args: {template: "{{ steps.g.output }}/{{ steps.a.output }}"}}
""",
        {},
        None,
        1 + 4 + 1,
        "AB/A",
    ),
    # A succeed step's output state ends the run itself.
    "succeed": (
        """
name: done
steps:
  - {id: a, tool: render, args: {template: A}}
  - {id: stop, succeed: {result: "{{ steps.a.output }}"}}
""",
        {},
        None,
        1 + 1 + 1,
        {"result": "A"},
    ),
    # An output built from the last Task's result is built by that Task.
    "output built by the last step": (
        """
name: out
steps:
  - {id: a, tool: render, args: {template: A}}
output:
  value: "{{ steps.a.output }}"
  fixed: yes
""",
        {},
        None,
        1 + 1,
        {"value": "A", "fixed": "yes"},
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_construct_enters_only_the_states_it_needs(run: Runner, name: str) -> None:
    workflow, inputs, script, transitions, output = CASES[name]
    result = run(workflow, inputs=inputs, script=script)
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    assert result.output == output
    assert result.transitions == transitions


def test_parallel_entries_that_skip_or_catch_keep_their_records(run: Runner) -> None:
    """A later branch whose entry is skipped, or records a caught error, hands back the
    same records as one whose entry ran (the first branch carries the whole document)."""
    result = run(
        """
name: fork
inputs:
  go: {type: boolean, default: false}
steps:
  - id: par
    parallel:
      - {id: e0, tool: render, args: {template: A}}
      - {id: e1, if: inputs.go, tool: render, args: {template: B}}
      - id: e2
        on_error: continue
        http: {url: "ftp://example.invalid/"}
      - id: e3
        group:
          - {id: g1, tool: render, args: {template: G}}
  - id: after
    tool: render
    args:
      template: "{{ steps.par.output.e1 }}|{{ steps.e2.output.error }}|{{ steps.g1.output }}|{{ steps.e3.output }}"
"""
    )
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    assert result.output == "null|Loopline.Failed|G|G"
    assert result.steps["e1"]["status"] == "skipped"
    assert result.steps["e2"]["status"] == "failed"


def test_a_parallel_in_a_loop_replaces_its_records_each_time(run: Runner) -> None:
    """Records merged back from a branch replace the earlier run's, never merge with it."""
    result = run(
        """
name: again
inputs:
  xs: {type: json, default: [[1, 2], [3]]}
steps:
  - id: outer
    loop:
      for_each: inputs.xs
      steps:
        - id: par
          parallel:
            - {id: left, tool: render, args: {template: "{{ item }}"}}
            - {id: right, tool: render, args: {template: "{{ len(item) }}"}}
        - {id: both, tool: render, args: {template: "{{ steps.left.output }}/{{ steps.right.output }}"}}
"""
    )
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    assert result.output == ["[1, 2]/2", "[3]/1"]


def test_a_path_after_an_index_reads_one_value_locally_as_in_aws() -> None:
    """``$[0].x`` names one node: Step Functions reads its value (moto alone gives a
    one-element list); the compiled Parallel states read their branches so."""
    branch = {
        "StartAt": "b",
        "States": {"b": {"Type": "Pass", "Result": {"x": {"y": 1}}, "End": True}},
    }
    definition = {
        "StartAt": "p",
        "States": {
            "p": {
                "Type": "Parallel",
                "Branches": [branch],
                "ResultSelector": {
                    "x.$": "$[0].x",
                    "n.$": "States.JsonMerge($[0].x, $[0].x, false)",
                },
                "End": True,
            }
        },
    }
    result = run_workflow(definition, None, {})
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    assert result.output == {"x": {"y": 1}, "n": {"y": 1}}
