"""The local stack: hand-written JSONPath ASL following docs/internals.md, run in moto with
Loopline's functions dispatched in-process."""

from __future__ import annotations

import time
from typing import Any

import boto3
import pytest
from loopline.dsl.loader import load_text
from loopline.local.executor import LocalExecutor, LocalStackError
from loopline.local.run import (
    Decision,
    DecisionError,
    Progress,
    check_decisions,
    parse_decision,
    run_workflow,
)
from loopline.runtime.actions import Env
from loopline.runtime.errors import StepError
from loopline.runtime.scripted import ScriptedModel

pytestmark = pytest.mark.moto


def action_task(
    step: str,
    action: str,
    function: str,
    config: dict[str, Any],
    *,
    values: dict[str, Any] | None = None,
    token: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    """A Task state invoking a Loopline function with the contract's payload."""
    payload: dict[str, Any] = {
        "action": action,
        "workflow": "t",
        "step": step,
        "execution.$": "$$.Execution.Id",
        "attempt.$": "$$.State.RetryCount",
        "config": config,
        "values": values or {"inputs.$": "$.inputs"},
    }
    if token:
        payload["token.$"] = "$$.Task.Token"
    state: dict[str, Any] = {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke" + (".waitForTaskToken" if token else ""),
        "Parameters": {"FunctionName": "${" + function + "}", "Payload": payload},
        "ResultPath": f"$.steps.{step}",
    }
    if not token:
        state["ResultSelector"] = {"output.$": "$.Payload.output"}
    state.update(extra)
    return state


def machine(start: str, states: dict[str, Any], output: str | None = None) -> dict[str, Any]:
    """``_init`` builds the state document from the inputs; ``_output`` picks the result."""
    init = {
        "Type": "Pass",
        "Parameters": {"inputs.$": "$", "steps": {}, "vars": {}, "ctl": {}},
        "Next": start,
    }
    out: dict[str, Any] = {"Type": "Pass", "End": True}
    if output:
        out["OutputPath"] = output
    return {"StartAt": "_init", "States": {"_init": init, **states, "_output": out}}


def script(*rules: dict[str, Any]) -> dict[str, Any]:
    return {"responses": list(rules)}


# --------------------------------------------------------------------------- llm


def test_a_task_calls_the_llm_function_which_answers_from_the_script() -> None:
    defn = machine(
        "draft",
        {
            "draft": action_task(
                "draft",
                "llm",
                "LlmFunctionArn",
                {"prompt": "Write about {{ inputs.topic }}"},
                ResultSelector={"output.$": "$.Payload.output", "usage.$": "$.Payload.usage"},
                Next="_output",
            )
        },
        output="$.steps.draft",
    )
    progress: list[Progress] = []
    result = run_workflow(
        defn,
        None,
        {"topic": "tides"},
        llm_script=script({"step": "draft", "when": "tides", "answer": "Tides rise twice a day."}),
        on_progress=progress.append,
    )
    assert result.status == "SUCCEEDED"
    assert result.output["output"] == "Tides rise twice a day."
    assert result.output["usage"]["output_tokens"] > 0
    assert result.steps == {"draft": {"status": "succeeded", "starts": 1}}
    assert [(p.step, p.event) for p in progress] == [("draft", "started"), ("draft", "succeeded")]


def test_a_failing_step_reports_the_error_name_and_the_message_as_cause() -> None:
    defn = machine(
        "draft",
        {"draft": action_task("draft", "llm", "LlmFunctionArn", {"prompt": "p"}, Next="_output")},
    )
    result = run_workflow(defn, None, {}, llm_script=script({"step": "other", "answer": "x"}))
    assert result.status == "FAILED"
    assert result.error == "Loopline.LLMError"
    assert result.cause is not None and "no answer for step draft" in result.cause
    assert result.steps["draft"] == {"status": "failed", "starts": 1}


def test_retry_on_transient_runs_the_step_again_and_counts_every_start() -> None:
    retry = [{"ErrorEquals": ["Loopline.Transient"], "IntervalSeconds": 1, "MaxAttempts": 3}]
    defn = machine(
        "flaky",
        {
            "flaky": action_task(
                "flaky", "llm", "LlmFunctionArn", {"prompt": "p"}, Retry=retry, Next="_output"
            )
        },
        output="$.steps.flaky.output",
    )
    progress: list[Progress] = []
    result = run_workflow(
        defn,
        None,
        {},
        llm_script=script({"step": "flaky", "answers": [{"error": "Loopline.Transient"}, "ok"]}),
        on_progress=progress.append,
    )
    assert result.status == "SUCCEEDED"
    assert result.output == "ok"
    assert result.steps["flaky"] == {"status": "succeeded", "starts": 2}
    retrying = [p for p in progress if p.event == "retrying"]
    assert len(retrying) == 1 and "Loopline.Transient" in (retrying[0].detail or "")


def test_a_task_state_timeout_ends_as_states_timeout() -> None:
    def slow(event: Any, context: Any) -> Any:
        time.sleep(2.5)
        return {"output": "late"}

    defn = machine(
        "slow",
        {
            "slow": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": "slow-fn", "Payload": {}},
                "TimeoutSeconds": 1,
                "Next": "_output",
            }
        },
    )
    result = run_workflow(defn, None, {}, functions={"slow-fn": slow})
    assert result.status == "FAILED"
    assert result.error == "States.Timeout"
    assert result.steps["slow"]["status"] == "failed"


# --------------------------------------------------------------------------- task functions


def test_a_task_step_invokes_a_registered_custom_function() -> None:
    def adder(event: dict[str, Any], context: Any) -> Any:
        assert context.function_name == "adder"
        return {"sum": sum(event["args"]["xs"]), "step": event["step"]}

    defn = machine(
        "add",
        {
            "add": action_task(
                "add",
                "task",
                "TaskFunctionArn",
                {"type": "adder", "function": "adder", "args": {"xs": "{{ inputs.xs }}"}},
                Next="_output",
            )
        },
        output="$.steps.add.output",
    )
    result = run_workflow(defn, None, {"xs": [1, 2, 3]}, functions={"adder": adder})
    assert (result.status, result.output) == ("SUCCEEDED", {"sum": 6, "step": "add"})


def test_an_unhandled_exception_in_a_function_is_named_after_its_class() -> None:
    def broken(event: Any, context: Any) -> Any:
        raise ValueError("bad thing")

    with LocalExecutor() as ex:
        ex.register_function("broken", broken)
        with pytest.raises(StepError) as err:
            ex.invoke("arn:aws:lambda:us-east-1:123456789012:function:broken", {})
        assert (err.value.name, err.value.message) == ("ValueError", "bad thing")


# --------------------------------------------------------------------------- human waits


def approval_machine() -> dict[str, Any]:
    """draft → review (approval, rollback_to draft) → _output."""
    return machine(
        "draft",
        {
            "draft": action_task("draft", "llm", "LlmFunctionArn", {"prompt": "p"}, Next="review"),
            "review": action_task(
                "review",
                "human",
                "HumanFunctionArn",
                {
                    "kind": "approval",
                    "instruction": "Check {{ steps.draft.output }}",
                    "rollback_to": ["draft"],
                    "timeout": 60,
                },
                values={"steps": {"draft.$": "$.steps.draft"}},
                token=True,
                Catch=[
                    {
                        "ErrorEquals": ["Loopline.Rollback.draft"],
                        "ResultPath": None,
                        "Next": "draft",
                    }
                ],
                Next="_output",
            ),
        },
        output="$.steps",
    )


DRAFTS = script({"step": "draft", "answers": ["first draft", "second draft"]})


def test_an_approval_answered_approve_succeeds_with_the_decision_as_output() -> None:
    result = run_workflow(
        approval_machine(), None, {}, llm_script=DRAFTS, decisions=[Decision("review", "approve")]
    )
    assert result.status == "SUCCEEDED"
    review = result.output["review"]["output"]
    assert review["approved"] is True and review["by"] and review["at"].endswith("Z")
    assert result.steps["review"] == {"status": "succeeded", "starts": 1}


def test_an_approval_answered_reject_fails_with_loopline_rejected() -> None:
    result = run_workflow(
        approval_machine(), None, {}, llm_script=DRAFTS, decisions=[Decision("review", "reject")]
    )
    assert (result.status, result.error) == ("FAILED", "Loopline.Rejected")
    assert result.steps["review"]["status"] == "failed"


def test_a_reject_with_rollback_runs_the_target_again_then_waits_again() -> None:
    asked: list[str] = []

    def ask(wait: Any) -> str:
        asked.append(wait.instruction)
        return "approve"

    result = run_workflow(
        approval_machine(),
        None,
        {},
        llm_script=DRAFTS,
        decisions=[parse_decision("review=reject:draft")],
        ask=ask,
    )
    assert result.status == "SUCCEEDED"
    assert result.output["draft"]["output"] == "second draft"
    assert asked == ["Check second draft"]
    assert result.steps == {
        "draft": {"status": "succeeded", "starts": 2},
        "review": {"status": "succeeded", "starts": 2},
    }


def test_a_rollback_to_a_step_outside_rollback_to_is_refused() -> None:
    with pytest.raises(DecisionError, match="cannot roll back to 'other'"):
        run_workflow(
            approval_machine(),
            None,
            {},
            llm_script=DRAFTS,
            decisions=[Decision("review", "reject:other")],
        )


def test_a_wait_with_no_decision_left_stops_the_run_as_waiting() -> None:
    result = run_workflow(approval_machine(), None, {}, llm_script=DRAFTS)
    assert result.status == "WAITING"
    assert result.steps["review"] == {"status": "waiting", "starts": 1}
    assert [w.step for w in result.waiting] == ["review"]
    assert result.waiting[0].instruction == "Check first draft"


def test_a_human_task_is_answered_with_form_data_checked_against_form_schema() -> None:
    schema = {"type": "object", "required": ["note"], "properties": {"note": {"type": "string"}}}
    defn = machine(
        "fix",
        {
            "fix": action_task(
                "fix",
                "human",
                "HumanFunctionArn",
                {"kind": "human_task", "instruction": "Fix it", "form_schema": schema},
                token=True,
                Next="_output",
            )
        },
        output="$.steps.fix.output",
    )
    answers = iter(['{"nope": 1}', '{"note": "done"}'])
    problems: list[str | None] = []

    def ask(wait: Any) -> str:
        problems.append(wait.problem)
        return next(answers)

    result = run_workflow(defn, None, {}, ask=ask)
    assert (result.status, result.output) == ("SUCCEEDED", {"note": "done"})
    assert problems[0] is None and "'note' is a required property" in (problems[1] or "")


# --------------------------------------------------------------------------- map


def test_a_map_with_max_concurrency_runs_every_item() -> None:
    inner = action_task(
        "summarize",
        "llm",
        "LlmFunctionArn",
        {"prompt": "Summarize {{ item }}"},
        values={"vars": {"item.$": "$.vars.item"}},
        ResultSelector={"output.$": "$.Payload.output"},
        ResultPath="$.result",
        OutputPath="$.result.output",
        End=True,
    )
    defn = machine(
        "each",
        {
            "each": {
                "Type": "Map",
                "ItemsPath": "$.inputs.items",
                "MaxConcurrency": 2,
                "ItemSelector": {
                    "vars": {"item.$": "$$.Map.Item.Value", "index.$": "$$.Map.Item.Index"}
                },
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "INLINE"},
                    "StartAt": "summarize",
                    "States": {"summarize": inner},
                },
                "ResultSelector": {"output.$": "$"},
                "ResultPath": "$.steps.each",
                "Next": "_output",
            }
        },
        output="$.steps.each.output",
    )
    rules = [{"step": "summarize", "when": w, "answer": w.upper()} for w in ("ab", "cd", "ef")]
    result = run_workflow(defn, None, {"items": ["ab", "cd", "ef"]}, llm_script=script(*rules))
    assert (result.status, result.output) == ("SUCCEEDED", ["AB", "CD", "EF"])
    assert result.steps["summarize"] == {"status": "succeeded", "starts": 3}
    assert result.steps["each"] == {"status": "succeeded", "starts": 1}


# --------------------------------------------------------------------------- executor basics


def test_an_unknown_placeholder_is_a_clear_error() -> None:
    defn = machine(
        "x", {"x": action_task("x", "eval", "NopeFunctionArn", {"expr": "1"}, Next="_output")}
    )
    with LocalExecutor() as ex, pytest.raises(LocalStackError, match=r"\$\{NopeFunctionArn\}"):
        ex.create_state_machine("t", defn)


def test_direct_executor_use_and_no_state_leaks_between_executors() -> None:
    env = Env(model=ScriptedModel.from_data(script({"answer": "hi"})))
    defn = machine(
        "e",
        {
            "e": action_task(
                "e", "eval", "HelperFunctionArn", {"expr": "inputs.n > 1"}, Next="_output"
            )
        },
        output="$.steps.e.output",
    )
    with LocalExecutor(env=env) as ex:
        arn = ex.start_execution(ex.create_state_machine("t", defn), {"n": 2})
        assert ex.wait(arn)["output"] == "true"
        assert any(e["type"] == "ExecutionSucceeded" for e in ex.history(arn))
    with LocalExecutor():
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        assert sfn.list_state_machines()["stateMachines"] == []


def test_check_decisions_knows_the_workflow_human_steps() -> None:
    wf, _ = load_text(
        """
name: t
steps:
  - id: draft
    llm: "write"
  - id: review
    approval: {timeout: 1h, rollback_to: [draft]}
  - id: form
    human_task: {timeout: 1h, form_schema: {type: object, required: [n]}}
"""
    )
    check_decisions(wf, [Decision("review", "reject:draft"), Decision("form", {"n": 1})])
    with pytest.raises(DecisionError) as err:
        check_decisions(
            wf,
            [
                Decision("nope", "approve"),
                Decision("draft", "approve"),
                Decision("review", "reject:form"),
                Decision("form", {}),
            ],
        )
    lines = str(err.value).splitlines()
    assert len(lines) == 4
    assert "no step 'nope'" in lines[0] and "not a human step" in lines[1]
    assert "rollback targets are draft" in lines[2] and "required property" in lines[3]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("review", "expected STEP=VALUE"),
        ("=approve", "expected STEP=VALUE"),
        ("review=", "the value is empty"),
        ("review=maybe", "unknown decision 'maybe'"),
        ("review=reject:", "needs the step to roll back to"),
        ("form={bad", "the JSON object: not valid JSON: Expecting property name"),
    ],
)
def test_parse_decision_errors_are_clear(text: str, message: str) -> None:
    with pytest.raises(DecisionError, match=message):
        parse_decision(text)


def test_parse_decision_values() -> None:
    assert parse_decision("review=approve") == Decision("review", "approve")
    assert parse_decision("review=reject:draft") == Decision("review", "reject:draft")
    assert parse_decision('form={"a": [1]}') == Decision("form", {"a": [1]})


def test_creating_a_state_machine_again_updates_it_and_a_bad_definition_is_reported() -> None:
    first = {"StartAt": "a", "States": {"a": {"Type": "Pass", "End": True}}}
    second = {"StartAt": "b", "States": {"b": {"Type": "Pass", "Result": 1, "End": True}}}
    with LocalExecutor() as ex:
        arn = ex.create_state_machine("t", first)
        assert ex.create_state_machine("t", second) == arn
        assert ex.wait(ex.start_execution(arn, {}))["output"] == "1"
        with pytest.raises(LocalStackError, match="invalid state machine definition"):
            ex.create_state_machine("bad", {"StartAt": "x", "States": {}})
