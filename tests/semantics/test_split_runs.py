"""A split workflow runs as the one machine would: moto runs the parent, which runs each
child with ``startExecution.sync:2`` (the local stack's fidelity supplies what moto lacks
of it). Each case runs the same workflow split and whole, and compares."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from loopline.compiler import compile_workflow
from loopline.dsl import load_workflow, load_workflow_text, resolve_inputs
from loopline.local.run import RunResult, parse_decision, run_workflow

from tests.conftest import ROOT

pytestmark = pytest.mark.moto

HANDOFF = ROOT / "tests" / "golden" / "split" / "handoff.yaml"
#: Small enough that the handoff workflow is three machines.
LIMIT = 5500
SCRIPT = [
    {"step": "draft", "answer": "tides rise twice a day"},
    {"step": "polish", "answer": "Tides rise twice daily."},
    {"step": "publish", "answer": "published"},
]


def run(
    tmp_path: Path,
    source: str | Path,
    *,
    limit: int | None,
    inputs: dict[str, Any] | None = None,
    decisions: Sequence[str] = (),
    script: list[dict[str, Any]] = SCRIPT,
) -> tuple[RunResult, int]:
    """Run the workflow compiled for ``limit`` bytes per machine (None: whole)."""
    if isinstance(source, Path):
        wf = load_workflow(source)
    else:
        wf = load_workflow_text(source, "test.yaml")
    compiled = compile_workflow(wf, limit=limit or 10**9)
    script_path = tmp_path / "script.yaml"
    script_path.write_text(yaml.safe_dump({"responses": script}))
    result = run_workflow(
        compiled.definition,
        wf,
        resolve_inputs(wf, inputs or {}),
        llm_script=str(script_path),
        decisions=[parse_decision(d) for d in decisions],
        children=compiled.children,
    )
    return result, 1 + len(compiled.children)


def same(split: RunResult, whole: RunResult) -> None:
    assert (split.status, split.output, split.error, split.cause) == (
        whole.status,
        whole.output,
        whole.error,
        whole.cause,
    )
    assert split.steps == whole.steps


def test_steps_after_a_cut_read_the_steps_before_it_and_a_person_approves_in_a_child(
    tmp_path: Path,
) -> None:
    # Given the handoff workflow split in three machines (its approval in a child)
    split, parts = run(tmp_path, HANDOFF, limit=LIMIT, decisions=["gate=approve"])
    whole, _ = run(tmp_path, HANDOFF, limit=None, decisions=["gate=approve"])

    # Then it succeeds with what each step read across the cuts, as the whole one does
    assert parts == 3
    assert split.status == "SUCCEEDED", (split.error, split.cause)
    assert split.output == {
        "draft": "tides rise twice a day",
        "published": "published",
        "approved": True,
    }
    same(split, whole)
    assert split.steps["gate"] == {"status": "succeeded", "starts": 1}
    assert split.steps["boom"]["status"] == "skipped"


def test_a_failure_in_a_child_fails_the_run_with_the_steps_error_and_cause(
    tmp_path: Path,
) -> None:
    split, _ = run(
        tmp_path, HANDOFF, limit=LIMIT, inputs={"fail": True}, decisions=["gate=approve"]
    )
    whole, _ = run(tmp_path, HANDOFF, limit=None, inputs={"fail": True}, decisions=["gate=approve"])

    assert split.status == "FAILED"
    assert split.error == "Loopline.Failed"
    assert split.cause == (
        "failed after draft=tides rise twice a day polished=Tides rise twice daily."
    )
    same(split, whole)
    assert split.steps["boom"]["status"] == "failed"
    assert "publish" not in split.steps


def test_a_rejection_in_a_child_fails_the_run_as_it_does_whole(tmp_path: Path) -> None:
    split, _ = run(tmp_path, HANDOFF, limit=LIMIT, decisions=["gate=reject # not yet"])
    whole, _ = run(tmp_path, HANDOFF, limit=None, decisions=["gate=reject # not yet"])

    assert split.status == "FAILED" and split.error == "Loopline.Rejected"
    same(split, whole)


def test_a_succeed_step_in_a_child_ends_the_run_with_its_output(tmp_path: Path) -> None:
    split, _ = run(
        tmp_path, HANDOFF, limit=LIMIT, inputs={"stop": True}, decisions=["gate=approve"]
    )
    whole, _ = run(tmp_path, HANDOFF, limit=None, inputs={"stop": True}, decisions=["gate=approve"])

    assert split.status == "SUCCEEDED"
    assert split.output == {"stopped": "Tides rise twice daily."}
    same(split, whole)
    assert "summary" not in split.steps


def test_a_run_split_into_children_stops_at_a_wait_in_a_child(tmp_path: Path) -> None:
    # No decision for the approval: the run stops there, waiting, as it does whole
    split, _ = run(tmp_path, HANDOFF, limit=LIMIT)

    assert split.status == "WAITING"
    assert [w.step for w in split.waiting] == ["gate"]
    assert split.steps["gate"]["status"] == "waiting"


LOOPS = """\
name: loops
version: 1.0.0
inputs:
  items: {type: json, default: [a, b, c]}
steps:
  - id: seed
    tool: render
    args: {template: "seed"}
  - id: each
    loop:
      for_each: inputs.items
      steps:
        - id: shout
          tool: render
          args: {template: "{{ item }} after {{ steps.seed.output }}"}
  - id: again
    loop:
      while: not exists(steps.critic.output) or steps.critic.output.done == false
      max_iterations: 3
      steps:
        - id: critic
          llm: "Is {{ steps.each.output }} done?"
          output_schema: {type: object, required: [done], properties: {done: {type: boolean}}}
  - id: last
    tool: render
    args: {template: "{{ steps.each.output }} {{ steps.again.output }}"}
"""
CRITIC = [{"step": "critic", "answers": [{"done": False}, {"done": True}]}]


def test_loops_run_inside_children_as_they_do_whole(tmp_path: Path) -> None:
    whole, _ = run(tmp_path, LOOPS, limit=None, script=CRITIC)
    assert whole.status == "SUCCEEDED", (whole.error, whole.cause)
    split, parts = run(tmp_path, LOOPS, limit=5000, script=CRITIC)
    assert parts > 2
    same(split, whole)
    assert split.steps["critic"]["starts"] == 2
