"""``arn:aws:states:::states:startExecution.sync:2`` on the local stack, as Step Functions
runs it (``loopline.local.fidelity.nested_executions``): moto's own integration failed
every such task with ``States.Runtime`` (cause ``'StateMachineArn'``)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from loopline.local.executor import LocalExecutor

pytestmark = pytest.mark.moto


def parent() -> dict[str, Any]:
    return {
        "StartAt": "call",
        "States": {
            "call": {
                "Type": "Task",
                "Resource": "arn:aws:states:::states:startExecution.sync:2",
                "Parameters": {
                    "StateMachineArn.$": "States.Format('{}--part-2', $$.StateMachine.Id)",
                    "Input.$": "$",
                },
                "End": True,
            }
        },
    }


def child(*states: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    return {"StartAt": states[0][0], "States": dict(states)}


@pytest.fixture
def ex() -> Iterator[LocalExecutor]:
    with LocalExecutor() as executor:
        yield executor


def run(ex: LocalExecutor, child_definition: dict[str, Any], inp: Any) -> dict[str, Any]:
    """The description of an execution of a parent that runs ``child_definition``."""
    name = f"p{time.monotonic_ns()}"
    ex.create_state_machine(f"{name}--part-2", child_definition)
    arn = ex.start_execution(ex.create_state_machine(name, parent()), inp)
    return ex.wait(arn, timeout=30)


def test_a_parent_waits_for_its_child_and_gets_its_description_with_json_output(
    ex: LocalExecutor,
) -> None:
    echo = child(("a", {"Type": "Pass", "Parameters": {"got.$": "$.x"}, "End": True}))
    desc = run(ex, echo, {"x": 1})

    assert desc["status"] == "SUCCEEDED", desc
    out = json.loads(desc["output"])
    assert out["Status"] == "SUCCEEDED"
    assert out["Input"] == {"x": 1}
    assert out["Output"] == {"got": 1}  # JSON, not text (":2")
    assert out["ExecutionArn"].split(":")[6].endswith("--part-2")
    assert isinstance(out["StartDate"], int) and isinstance(out["StopDate"], int)
    # Named with a UUID when the task gives no Name, as AWS does (moto: "None")
    assert len(out["Name"]) == 36 and out["Name"] != "None"


def test_a_child_whose_output_is_text_gives_that_text(ex: LocalExecutor) -> None:
    text = child(("a", {"Type": "Pass", "Result": "just text", "End": True}))
    desc = run(ex, text, {})

    assert desc["status"] == "SUCCEEDED", desc
    assert json.loads(desc["output"])["Output"] == "just text"


def test_a_failed_child_fails_the_task_with_its_description_as_the_cause(
    ex: LocalExecutor,
) -> None:
    failing = child(("f", {"Type": "Fail", "Error": "My.Error", "Cause": "it broke"}))
    desc = run(ex, failing, {"x": 2})

    assert desc["status"] == "FAILED"
    assert desc["error"] == "States.TaskFailed"
    cause = json.loads(desc["cause"])
    assert (cause["Status"], cause["Error"], cause["Cause"]) == ("FAILED", "My.Error", "it broke")


def test_the_child_can_read_the_parents_execution_id_from_its_input(ex: LocalExecutor) -> None:
    reads = child(
        (
            "a",
            {
                "Type": "Pass",
                "Parameters": {"parent.$": "$$.Execution.Input.parent"},
                "End": True,
            },
        )
    )
    name = f"p{time.monotonic_ns()}"
    ex.create_state_machine(f"{name}--part-2", reads)
    definition = parent()
    definition["States"]["call"]["Parameters"]["Input"] = {"parent.$": "$$.Execution.Id"}
    del definition["States"]["call"]["Parameters"]["Input.$"]
    arn = ex.start_execution(ex.create_state_machine(name, definition), {})
    desc = ex.wait(arn, timeout=30)

    assert json.loads(desc["output"])["Output"] == {"parent": arn}


def test_stopping_the_parent_stops_the_child_it_waits_for(ex: LocalExecutor) -> None:
    waits = child(("w", {"Type": "Wait", "Seconds": 30, "End": True}))
    name = f"p{time.monotonic_ns()}"
    child_arn = ex.create_state_machine(f"{name}--part-2", waits)
    arn = ex.start_execution(ex.create_state_machine(name, parent()), {})
    deadline = time.monotonic() + 10
    while not ex.sfn.list_executions(stateMachineArn=child_arn)["executions"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    ex.sfn.stop_execution(executionArn=arn)
    ex.wait(arn, timeout=10)

    running = ex.sfn.list_executions(stateMachineArn=child_arn)["executions"][0]
    deadline = time.monotonic() + 5
    while ex.status(running["executionArn"]) == "RUNNING":
        assert time.monotonic() < deadline, "the child still runs"
        time.sleep(0.05)
    assert ex.status(running["executionArn"]) == "ABORTED"
