"""An error caught by ``on_error`` is recorded as the step's output in one shape,
``{"error": NAME, "cause": TEXT}``, whatever raised it: a Lambda function (whose cause
Step Functions gives as JSON), a Fail state, a timeout. Executed in moto."""

from __future__ import annotations

import time
from typing import Any

import pytest
from loopline.compiler import compile_workflow
from loopline.dsl import load_workflow_text
from loopline.local.run import run_workflow

from tests.semantics.conftest import Runner

SHOW = '  - {id: show, tool: render, args: {template: "{{ steps.%s.output }}"}}\n'


def test_lambda_error_is_recorded_with_its_message_as_text(run: Runner) -> None:
    result = run(
        "name: rec\nsteps:\n"
        "  - {id: ask, llm: hello, retry: {max_attempts: 1}, on_error: continue}\n" + SHOW % "ask",
        script=[{"step": "ask", "answer": {"error": "Loopline.LLMError", "message": "no, sorry"}}],
    )
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    assert result.output == {"error": "Loopline.LLMError", "cause": "no, sorry"}


def test_custom_function_exception_is_recorded_with_its_message(run: Runner) -> None:
    def broken(event: Any, context: Any) -> Any:
        raise ValueError("the value is wrong")

    result = run(
        "name: rec\nstep_types:\n  broken: {function: BrokenFunction}\nsteps:\n"
        "  - {id: call, task: broken, retry: {max_attempts: 1}, on_error: continue}\n"
        + SHOW
        % "call",
        functions={"BrokenFunction": broken},
    )
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    # A Python class name is no error name a workflow can see: it is Loopline.Failed.
    assert result.output["error"] == "Loopline.Failed"
    assert result.output["cause"].endswith("BrokenFunction failed: the value is wrong")
    assert "ValueError" not in result.output["cause"]


def test_action_timeout_is_recorded_with_a_readable_cause(run: Runner) -> None:
    def slow(event: Any, context: Any) -> Any:
        time.sleep(2.5)
        return "late"

    result = run(
        "name: rec\nstep_types:\n  slow: {function: SlowFunction}\nsteps:\n"
        "  - {id: call, task: slow, timeout: 1, retry: {max_attempts: 1}, on_error: continue}\n"
        + SHOW
        % "call",
        functions={"SlowFunction": slow},
    )
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    assert result.output == {
        "error": "Loopline.Timeout",
        "cause": "step call ran longer than its timeout of 1 s",
    }


def test_state_error_caught_on_a_wrapped_step_is_recorded_as_text(run: Runner) -> None:
    result = run(
        """
name: rec
steps:
  - id: checks
    group:
      - {id: check, assert: "1 == 2", message: one is not two}
    on_error: continue
"""
        + SHOW % "checks"
    )
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    assert result.output == {"error": "Loopline.AssertionFailed", "cause": "one is not two"}


def test_lambda_error_from_inside_a_wrapped_step_is_recorded_as_text(run: Runner) -> None:
    result = run(
        """
name: rec
steps:
  - id: work
    group:
      - {id: ask, llm: hello, retry: {max_attempts: 1}}
    on_error: continue
"""
        + SHOW % "work",
        script=[{"step": "ask", "answer": {"error": "Loopline.LLMError", "message": "refused"}}],
    )
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    assert result.output == {"error": "Loopline.LLMError", "cause": "refused"}


@pytest.mark.parametrize(
    "message",
    [
        '{"errorType": "X", "errorMessage": unquoted}',  # looks like a function error's JSON
        '{"errorType": "X"}',  # JSON without errorMessage
        "{not json at all}",
    ],
)
def test_a_text_cause_that_looks_like_json_is_recorded_as_written(
    run: Runner, message: str
) -> None:
    wf = (
        "name: rec\nsteps:\n  - id: work\n    group:\n"
        f"      - {{id: stop, fail: {message!r}}}\n"
        "    on_error: continue\n" + SHOW % "work"
    )
    result = run(wf)
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    assert result.output == {"error": "Loopline.Failed", "cause": message}


def test_an_error_without_a_cause_gets_one_that_names_it() -> None:
    wf = load_workflow_text(
        "name: rec\nsteps:\n  - id: work\n    group:\n"
        "      - {id: stop, fail: gone, error: Custom.Stop}\n"
        "    on_error: continue\n" + SHOW % "work",
        "t.yaml",
    )
    definition = compile_workflow(wf).definition
    # A Fail state with no cause (as a SendTaskFailure may have none).
    inner = definition["States"]["work.try"]["Branches"][0]["States"]["stop"]
    del inner["Cause"]
    result = run_workflow(definition, wf, {})
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    assert result.output == {
        "error": "Custom.Stop",
        "cause": "step work failed with Custom.Stop (no cause given)",
    }
