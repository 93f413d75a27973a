"""A human step's timeout is an error of the step like a rejection: ``retry`` asks again
(a new wait) and ``on_error`` catches it. Executed in moto; timeouts are 1 s."""

from __future__ import annotations

from typing import Any

import pytest
from loopline.compiler import compile_workflow
from loopline.dsl import load_workflow_text

from tests.semantics.conftest import Runner

AFTER = "  - {id: after, tool: render, args: {template: done}}\n"


def _gate(kind_block: str, extra: str = "") -> str:
    return f"name: gate\nsteps:\n  - id: gate\n{kind_block}{extra}" + AFTER


def _approval(on_timeout: str, more: str = "") -> str:
    return f"    approval:\n      timeout: 1\n      on_timeout: {on_timeout}\n{more}"


@pytest.mark.parametrize(
    ("on_timeout", "more", "error", "cause"),
    [
        ("fail", "", "Loopline.Timeout", "no decision on gate within 1 s"),
        (
            "reject",
            "",
            "Loopline.Rejected",
            "rejected automatically: no decision on gate within 1 s",
        ),
        (
            "escalate",
            "      escalate_to: {role: lead}\n",
            "Loopline.Timeout",
            "no decision on gate within 1 s, nor from role lead after escalation",
        ),
    ],
)
def test_human_timeout_is_caught_by_on_error_continue(
    run: Runner, on_timeout: str, more: str, error: str, cause: str
) -> None:
    result = run(_gate(_approval(on_timeout, more), "    on_error: continue\n"))
    assert (result.status, result.output) == ("SUCCEEDED", "done"), (result.error, result.cause)
    assert result.steps["after"]["status"] == "succeeded"


@pytest.mark.parametrize(
    ("on_timeout", "more", "error", "cause"),
    [
        ("fail", "", "Loopline.Timeout", "no decision on gate within 1 s"),
        (
            "reject",
            "",
            "Loopline.Rejected",
            "rejected automatically: no decision on gate within 1 s",
        ),
        (
            "escalate",
            "      escalate_to: {role: lead}\n",
            "Loopline.Timeout",
            "no decision on gate within 1 s, nor from role lead after escalation",
        ),
    ],
)
def test_human_timeout_is_recorded_as_the_steps_error(
    run: Runner, on_timeout: str, more: str, error: str, cause: str
) -> None:
    wf = (
        "name: gate\nsteps:\n  - id: gate\n"
        + _approval(on_timeout, more)
        + "    on_error: continue\n"
        + '  - {id: after, tool: render, args: {template: "{{ steps.gate.output }}"}}\n'
    )
    result = run(wf)
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    assert result.output == {"error": error, "cause": cause}


def test_human_timeout_goes_to_the_on_error_goto_target(run: Runner) -> None:
    result = run(
        "name: gate\nsteps:\n  - id: gate\n"
        + _approval("fail")
        + "    on_error: {goto: recover}\n"
        + "  - {id: skipped_over, tool: render, args: {template: no}}\n"
        + '  - {id: recover, tool: render, args: {template: "recovered from {{ steps.gate.output.error }}"}}\n'
    )
    assert (result.status, result.output) == ("SUCCEEDED", "recovered from Loopline.Timeout")
    assert result.steps.get("skipped_over", {}).get("starts", 0) == 0


@pytest.mark.parametrize(
    ("block", "error"),
    [
        ("    human_task:\n      instruction: Fill it in\n      timeout: 1\n", "Loopline.Timeout"),
        ("    pause: Resume me\n    timeout: 1\n", "Loopline.Timeout"),
    ],
)
def test_human_task_and_pause_timeouts_are_caught_by_on_error(
    run: Runner, block: str, error: str
) -> None:
    wf = (
        "name: gate\nsteps:\n  - id: gate\n"
        + block
        + "    on_error: continue\n"
        + '  - {id: after, tool: render, args: {template: "{{ steps.gate.output.error }}"}}\n'
    )
    result = run(wf)
    assert (result.status, result.output) == ("SUCCEEDED", error), (result.error, result.cause)


def test_human_timeout_is_retried_with_a_new_wait(run: Runner) -> None:
    result = run(
        _gate(
            _approval("fail"), "    retry: {max_attempts: 2, interval: 1, on: [Loopline.Timeout]}\n"
        )
    )
    assert (result.status, result.error) == ("FAILED", "Loopline.Timeout")
    assert result.steps["gate"]["starts"] == 2


def test_timeout_rejection_is_retried_by_retry_on_rejected(run: Runner) -> None:
    result = run(
        _gate(
            _approval("reject"),
            "    retry: {max_attempts: 2, interval: 1, on: [Loopline.Rejected]}\n",
        )
    )
    assert (result.status, result.error) == ("FAILED", "Loopline.Rejected")
    assert result.steps["gate"]["starts"] == 2


def test_manual_rejection_is_retried_with_a_new_wait(run: Runner) -> None:
    result = run(
        _gate(
            "    approval: {timeout: 1h}\n",
            "    retry: {max_attempts: 2, interval: 1, on: [Loopline.Rejected]}\n",
        ),
        decisions=["gate=reject", "gate=approve"],
    )
    assert (result.status, result.output) == ("SUCCEEDED", "done"), (result.error, result.cause)
    assert result.steps["gate"]["starts"] == 2


def test_manual_rejection_and_timeout_reach_on_error_the_same_way(run: Runner) -> None:
    wf = (
        "name: gate\nsteps:\n  - id: gate\n"
        + _approval("reject")
        + "    on_error: continue\n"
        + '  - {id: after, tool: render, args: {template: "{{ steps.gate.output.error }}"}}\n'
    )
    by_hand = run(wf.replace("timeout: 1\n", "timeout: 1h\n"), decisions=["gate=reject"])
    by_clock = run(wf)
    assert by_hand.output == by_clock.output == "Loopline.Rejected"


ROLLBACK = """
name: rollback
steps:
  - {id: draft, llm: write}
  - id: review
    approval: {timeout: 1h, rollback_to: [draft]}
    {extra}
  - {id: publish, tool: render, args: {template: "published {{ steps.draft.output }}"}}
"""


@pytest.mark.parametrize(
    "extra",
    [
        "on_error: continue",
        "retry: {max_attempts: 3, interval: 1, on: [States.ALL]}",
    ],
)
def test_rollback_still_goes_back_when_the_approval_has_retry_or_on_error(
    run: Runner, extra: str
) -> None:
    result = run(
        ROLLBACK.replace("{extra}", extra),
        script=[{"step": "draft", "answers": ["v1", "v2"]}],
        decisions=["review=reject:draft", "review=approve"],
    )
    assert (result.status, result.output) == ("SUCCEEDED", "published v2"), result.error
    assert result.steps["draft"]["starts"] == 2


def _states(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, state in definition["States"].items():
        out[name] = state
        for branch in state.get("Branches", []):
            out.update(_states(branch))
    return out


def test_a_human_step_without_retry_or_on_error_adds_no_state_on_its_path() -> None:
    wf = load_workflow_text(_gate(_approval("fail")), "t.yaml")
    states = _states(compile_workflow(wf).definition)
    assert states["gate"]["Next"] == "after"
    assert "gate.try" not in states


def test_a_wrapped_human_step_adds_one_state_on_its_path() -> None:
    wf = load_workflow_text(_gate(_approval("fail"), "    on_error: continue\n"), "t.yaml")
    states = _states(compile_workflow(wf).definition)
    assert states["gate.try"]["Next"] == "after"
    assert states["gate"]["End"] is True
