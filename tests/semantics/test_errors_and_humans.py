"""Retries, on_error, votes and human steps, executed in moto."""

from __future__ import annotations

import pytest

from tests.semantics.conftest import Runner


def test_transient_error_is_retried_then_succeeds(run: Runner) -> None:
    result = run(
        """
name: flaky
steps:
  - id: ask
    llm: hello
    retry: {max_attempts: 3, interval: 1, backoff: 1}
""",
        script=[{"step": "ask", "answers": [{"error": "Loopline.Transient"}, "fine"]}],
    )
    assert result.status == "SUCCEEDED"
    assert result.output == "fine"
    assert result.steps["ask"]["starts"] == 2


def test_error_not_listed_in_retry_on_is_not_retried(run: Runner) -> None:
    result = run(
        """
name: not-retried
steps:
  - id: ask
    llm: hello
    retry: {max_attempts: 3, interval: 1, on: [Loopline.Transient]}
""",
        script=[{"step": "ask", "answers": [{"error": "Loopline.LLMError"}, "fine"]}],
    )
    assert (result.status, result.error) == ("FAILED", "Loopline.LLMError")
    assert result.steps["ask"]["starts"] == 1


def test_on_error_continue_records_the_error_as_output(run: Runner) -> None:
    result = run(
        """
name: tolerant
steps:
  - id: ask
    llm: hello
    retry: {max_attempts: 1}
    on_error: continue
  - {id: after, tool: render, args: {template: "{{ steps.ask.output.error }}"}}
""",
        script=[{"step": "ask", "answer": {"error": "Loopline.LLMError"}}],
    )
    assert result.status == "SUCCEEDED"
    assert result.output == "Loopline.LLMError"


def test_on_error_goto_jumps_to_its_target(run: Runner) -> None:
    result = run(
        """
name: jumping
steps:
  - id: ask
    llm: hello
    retry: {max_attempts: 1}
    on_error: {goto: recover}
  - {id: skipped_over, tool: render, args: {template: no}}
  - {id: recover, tool: render, args: {template: recovered}}
""",
        script=[{"step": "ask", "answer": {"error": "Loopline.LLMError"}}],
    )
    assert (result.status, result.output) == ("SUCCEEDED", "recovered")
    assert result.steps.get("skipped_over", {}).get("starts", 0) == 0


VOTE = """
name: voting
inputs:
  claims: {type: json, required: true}
steps:
  - id: judge
    vote:
      input: inputs.claims
      voters: 3
      threshold: 2
      rules: Refute false claims.
"""


def test_vote_drops_items_refuted_by_threshold_voters(run: Runner) -> None:
    result = run(
        VOTE,
        inputs={"claims": ["sky is blue", "moon is cheese"]},
        script=[
            {"step": "judge", "when": "cheese", "answer": {"refuted": True, "reason": "no"}},
            {"step": "judge", "answer": {"refuted": False, "reason": "yes"}},
        ],
    )
    assert result.status == "SUCCEEDED"
    out = result.output
    assert out["survived"] == ["sky is blue"]
    assert out["dropped"] == ["moon is cheese"]
    assert (out["total"], out["kept"]) == (2, 1)
    assert len(out["verdicts"]) == 2 and all(len(v) == 3 for v in out["verdicts"])


def test_vote_keeps_an_item_when_voters_answer_nonsense(run: Runner) -> None:
    result = run(
        VOTE,
        inputs={"claims": ["unclear"]},
        script=[{"step": "judge", "answer": "I cannot decide ¯\\_(ツ)_/¯"}],
    )
    assert result.status == "SUCCEEDED"
    assert result.output["survived"] == ["unclear"]
    assert result.output["kept"] == 1


APPROVAL = """
name: approving
steps:
  - {id: draft, llm: "write"}
  - {id: polish, tool: render, args: {template: "polished {{ steps.draft.output }}"}}
  - id: review
    approval:
      instruction: "Publish {{ steps.polish.output }}?"
      timeout: 1h
      rollback_to: [draft]
  - {id: publish, tool: render, args: {template: "published {{ steps.polish.output }}"}}
"""
DRAFTS = [{"step": "draft", "answers": ["v1", "v2"]}]


def test_approval_approved_continues(run: Runner) -> None:
    result = run(APPROVAL, script=DRAFTS, decisions=["review=approve"])
    assert (result.status, result.output) == ("SUCCEEDED", "published polished v1")


def test_approval_rejected_fails_with_rejected(run: Runner) -> None:
    result = run(APPROVAL, script=DRAFTS, decisions=["review=reject"])
    assert (result.status, result.error) == ("FAILED", "Loopline.Rejected")


def test_reject_with_rollback_reruns_target_and_following_steps(run: Runner) -> None:
    result = run(APPROVAL, script=DRAFTS, decisions=["review=reject:draft", "review=approve"])
    assert result.status == "SUCCEEDED"
    assert result.output == "published polished v2"
    assert result.steps["draft"]["starts"] == 2
    assert result.steps["polish"]["starts"] == 2
    assert result.steps["review"]["starts"] == 2


def test_run_without_decision_stops_waiting(run: Runner) -> None:
    result = run(APPROVAL, script=DRAFTS)
    assert result.status == "WAITING"


HUMAN_TIMEOUT = """
name: timeouts
steps:
  - id: gate
    approval:
      timeout: 1
      on_timeout: {policy}
      {extra}
  - {{id: after, tool: render, args: {{template: "after {{{{ steps.gate.output.approved }}}}"}}}}
"""


def _timeout_wf(policy: str, extra: str = "") -> str:
    return HUMAN_TIMEOUT.format(policy=policy, extra=extra)


def test_human_timeout_fail(run: Runner) -> None:
    result = run(_timeout_wf("fail"))
    assert (result.status, result.error) == ("FAILED", "Loopline.Timeout")


def test_human_timeout_approve(run: Runner) -> None:
    result = run(_timeout_wf("approve"))
    assert (result.status, result.output) == ("SUCCEEDED", "after true")


def test_human_timeout_reject(run: Runner) -> None:
    result = run(_timeout_wf("reject"))
    assert (result.status, result.error) == ("FAILED", "Loopline.Rejected")


def test_human_timeout_escalate_asks_the_escalation_assignee(run: Runner) -> None:
    result = run(
        _timeout_wf("escalate", "escalate_to: {role: boss}"),
        decisions=["gate=approve"],
    )
    # The first wait is answered by the decision; no timeout happens.
    assert result.status == "SUCCEEDED"


def test_human_timeout_escalate_then_times_out_again(run: Runner) -> None:
    result = run(_timeout_wf("escalate", "escalate_to: {role: boss}"))
    assert (result.status, result.error) == ("FAILED", "Loopline.Timeout")
    assert result.steps["gate"]["starts"] >= 1


@pytest.mark.parametrize("decision", ['form={"score": 4}'])
def test_human_task_output_is_the_submitted_form(run: Runner, decision: str) -> None:
    result = run(
        """
name: form
steps:
  - id: form
    human_task:
      instruction: Rate it
      form_schema: {type: object, required: [score], properties: {score: {type: integer}}}
      timeout: 1h
  - {id: pause_here, pause: "continue?", timeout: 1h}
""",
        decisions=[decision, "pause_here={}"],
    )
    assert result.status == "SUCCEEDED"
