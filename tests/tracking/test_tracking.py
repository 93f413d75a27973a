"""Status tracking on the local stack: tasks run for real in moto through template.yaml's
functions, with the status events delivered to the real status events function. The task's
status, steps and events come out of the step functions and the execution history alone,
and its steps are exactly what ``loopline run --json`` reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from loopline import store
from loopline.compiler import compile_workflow
from loopline.dsl import load_workflow_text
from loopline.observability import metrics
from loopline.service import tracking

from tests.conftest import WORKFLOWS
from tests.examples.cases import SAMPLES, health_server
from tests.tracking.driver import (
    check_log,
    drive,
    local_stack,
    run_json,
    run_task,
    start_task,
)

pytestmark = pytest.mark.moto

RETRY = """
name: retries
steps:
  - id: flaky
    llm: "first"
    retry: {max_attempts: 3, interval: 1, on: [Loopline.Transient]}
  - id: checked
    group:
      - id: inner
        tool: now
      - id: sure
        assert: "steps.inner.output == 'never'"
    retry: {max_attempts: 2, interval: 1, on: [Loopline.AssertionFailed]}
    on_error: continue
  - id: nothing
    if: "false"
    tool: now
  - id: after
    tool: now
"""
RETRY_SCRIPT = """
responses:
  - step: flaky
    answers: [{error: Loopline.Transient, message: busy}, fine]
"""
LOOPS = """
name: loops
inputs:
  items: {type: json, default: [1, 2, 3]}
steps:
  - id: each
    loop:
      for_each: inputs.items
      steps:
        - id: stamp
          tool: now
        - id: pick
          branch:
            if: "item == 2"
            then:
              - id: two
                tool: now
  - id: spin
    loop:
      while: "not exists(steps.tick.output)"
      max_iterations: 2
      steps:
        - id: tick
          tool: now
  - id: both
    parallel:
      - id: left
        tool: now
      - id: right
        tool: now
  - id: end
    fail: "the end"
"""


def _script(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "script.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _example(name: str) -> tuple[str, Path | None]:
    script = WORKFLOWS / "scripts" / f"{name}.yaml"
    return (WORKFLOWS / f"{name}.yaml").read_text(), (script if script.exists() else None)


def _same_steps_as_run_json(
    source: str,
    inputs: dict[str, Any],
    decisions: list[str],
    script: Path | None,
    *,
    register: bool = True,
) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    task, events, runs = run_task(source, inputs, decisions, llm_script=script, register=register)
    expected = run_json(source, inputs, decisions, llm_script=script)
    assert task["status"] == ("CANCELLED" if expected.status == "ABORTED" else expected.status)
    assert task["steps"] == {
        step: {"status": tracking.step_status(v["status"]), "starts": v["starts"]}
        for step, v in expected.steps.items()
    }
    assert task["error"] == expected.error
    assert task["cause"] == expected.cause
    assert task["transitions"] == expected.transitions  # tracking adds no state
    check_log(events)
    return task, events, runs


@pytest.mark.parametrize("name", sorted(set(SAMPLES) - {"release_gate"}))
def test_example_task_steps_equal_run_json(name: str) -> None:
    source, script = _example(name)
    inputs, decisions = SAMPLES[name]
    task, events, runs = _same_steps_as_run_json(source, inputs, decisions, script)
    assert task["status"] == "SUCCEEDED"
    assert events[-1]["type"] == "task.succeeded"
    # Every step in the steps has its events: a start (or a skip) and an end.
    for step, summary in task["steps"].items():
        types = [e["type"] for e in events if e["step"] == step]
        assert types.count("step.started") == summary["starts"], (step, types)
        if summary["status"] == "SKIPPED":
            assert "step.skipped" in types, step
    # No run is left open once the task has ended.
    assert all(r["status"] in ("SUCCEEDED", "FAILED", "CANCELLED") for r in runs)


@pytest.mark.parametrize("name", ["research_brief", "triage"])
def test_a_stack_workflows_task_nests_its_steps_from_the_packaged_catalog(name: str) -> None:
    # Not registered for the tenant: the status events function finds the source in the
    # catalog the layer ships (a group has no state of its own to nest by).
    source, script = _example(name)
    inputs, decisions = SAMPLES[name]
    task, _, _ = _same_steps_as_run_json(source, inputs, decisions, script, register=False)
    assert task["status"] == "SUCCEEDED"


def test_release_gate_with_a_custom_step_type_equals_run_json() -> None:
    source, script = _example("release_gate")
    inputs, decisions = SAMPLES["release_gate"]
    with health_server() as url:
        inputs = {**inputs, "health_url": url}
        task, _, _ = _same_steps_as_run_json(source, inputs, decisions, script)
    assert task["status"] == "SUCCEEDED"


def test_retries_and_caught_control_step_failures_equal_run_json(tmp_path: Path) -> None:
    script = _script(tmp_path, RETRY_SCRIPT)
    task, events, runs = _same_steps_as_run_json(RETRY, {}, [], script)
    assert task["steps"]["flaky"] == {"status": "SUCCEEDED", "starts": 2}
    assert task["steps"]["checked"] == {"status": "FAILED", "starts": 2}
    assert task["steps"]["nothing"] == {"status": "SKIPPED", "starts": 0}
    flaky = [(e["type"], e["data"]) for e in events if e["step"] == "flaky"]
    assert flaky == [
        ("step.started", {"attempt": 0}),
        (
            "step.failed",
            {"attempt": 0, "error": "Loopline.Transient", "cause": flaky[1][1]["cause"]},
        ),
        ("step.retried", {"attempt": 1}),
        ("step.started", {"attempt": 1}),
        ("step.succeeded", {"attempt": 1}),
    ]
    assert [(r["attempt"], r["status"]) for r in runs if r["step"] == "flaky"] == [
        (0, "FAILED"),
        (1, "SUCCEEDED"),
    ]
    checked = [(e["type"], e["data"].get("attempt")) for e in events if e["step"] == "checked"]
    assert checked == [
        ("step.started", 0),
        ("step.failed", 0),
        ("step.retried", 1),
        ("step.started", 1),
        ("step.failed", 1),
    ]
    assert [e["type"] for e in events if e["step"] == "nothing"] == ["step.skipped"]


def test_loops_parallel_and_a_failing_task_equal_run_json() -> None:
    task, events, _ = _same_steps_as_run_json(LOOPS, {}, [], None)
    assert task["status"] == "FAILED"
    assert task["error"] == "Loopline.Failed" and task["cause"] == "the end"
    assert task["steps"]["stamp"] == {"status": "SUCCEEDED", "starts": 3}
    assert task["steps"]["end"] == {"status": "FAILED", "starts": 1}
    assert events[-1]["type"] == "task.failed"
    assert events[-1]["data"] == {
        "status": "FAILED",
        "error": task["error"],
        "cause": task["cause"],
    }


RECORDED = """
name: recorded
inputs:
  items: {type: json, default: 3}
steps:
  - id: each
    loop:
      for_each: inputs.items
      steps:
        - id: stamp
          tool: now
    on_error: continue
  - id: check
    assert: "inputs.items > 5"
    message: "{{ inputs.items }} is not over 5"
"""


def test_control_step_failures_carry_their_readable_cause_as_in_run_json() -> None:
    # A for_each over a number (its error recorded by on_error without being raised) and
    # an assert whose message is a template (its Fail state's cause read from its input).
    task, events, _ = _same_steps_as_run_json(RECORDED, {}, [], None)
    assert task["steps"] == {
        "each": {"status": "FAILED", "starts": 1},
        "check": {"status": "FAILED", "starts": 1},
    }
    failed = {e["step"]: e["data"] for e in events if e["type"] == "step.failed"}
    assert failed == {
        "each": {
            "attempt": 0,
            "error": "Loopline.Failed",
            "cause": "step each: for_each needs a list, got 3",
        },
        "check": {"attempt": 0, "error": "Loopline.AssertionFailed", "cause": "3 is not over 5"},
    }


def test_a_human_step_leaves_the_task_waiting() -> None:
    source, script = _example("incident_response")
    with local_stack(script) as stack:
        task_id, arn = start_task(stack, source, SAMPLES["incident_response"][0])
        assert drive(stack, arn) == "WAITING"
        task = store.get_task_record(task_id)
        assert task is not None and task["status"] == "WAITING"
        assert task["steps"] is None  # the view derives them from the runs meanwhile
        waiting = [r for r in store.list_step_runs(task_id) if r["status"] == "WAITING"]
        assert [r["step"] for r in waiting] == ["on_call"]
        events = store.list_events(task_id)
        on_call = [e["type"] for e in events if e["step"] == "on_call"]
        assert on_call == ["step.started", "human.waiting"]
        # Answered, the task runs to its end and the wait's run is closed from the history.
        assert drive(stack, arn, SAMPLES["incident_response"][1]) == "SUCCEEDED"
        stack.deliver(stack.status_event(arn))
        task = store.get_task_record(task_id)
        assert task is not None and task["status"] == "SUCCEEDED"
        on_call = [r for r in store.list_step_runs(task_id) if r["step"] == "on_call"]
        assert [r["status"] for r in on_call] == ["SUCCEEDED"]
        check_log(store.list_events(task_id, limit=1000))


def test_usage_totals_add_up_every_model_call() -> None:
    source, script = _example("research_brief")
    inputs, decisions = SAMPLES["research_brief"]
    task, _, _ = run_task(source, inputs, decisions, llm_script=script)
    assert task["model_usage"][0] > 0  # the voters' calls count too
    assert (task["input_tokens"], task["output_tokens"]) == task["model_usage"]


def test_repeated_and_out_of_order_status_events_change_nothing_twice() -> None:
    source, script = _example("triage")
    inputs, _ = SAMPLES["triage"]
    with local_stack(script) as stack:
        task_id, arn = start_task(stack, source, inputs)
        assert drive(stack, arn) == "SUCCEEDED"
        end = stack.status_event(arn)
        stack.deliver(end)  # the end first,
        stack.deliver(stack.status_event(arn, "RUNNING"))  # then the start,
        stack.deliver(end)  # the end again
        stack.deliver({**end, "id": "another delivery"})
        events = store.list_events(task_id, limit=1000)
        check_log(events)
        once = json.dumps(events)
        stack.deliver(end)
        assert json.dumps(store.list_events(task_id, limit=1000)) == once
        task = store.get_task_record(task_id)
        assert task is not None and task["status"] == "SUCCEEDED"


def test_an_end_after_a_cancel_only_sets_the_steps() -> None:
    source, script = _example("incident_response")
    with local_stack(script) as stack:
        task_id, arn = start_task(stack, source, SAMPLES["incident_response"][0])
        assert drive(stack, arn) == "WAITING"
        store.update_task(
            task_id,
            set={"status": "CANCELLED", "finished_at": "2026-01-01T00:00:00.000Z"},
            expect_status=tracking.NON_TERMINAL,
            event=store.NewEvent("task.cancelled", None, {"status": "CANCELLED"}),
        )
        before = store.list_events(task_id, limit=1000)
        assert drive(stack, arn, SAMPLES["incident_response"][1]) == "SUCCEEDED"
        stack.deliver(stack.status_event(arn))
        task = store.get_task_record(task_id)
        assert task is not None and task["status"] == "CANCELLED"
        assert task["steps"]["on_call"] == {"status": "SUCCEEDED", "starts": 1}
        assert store.list_events(task_id, limit=1000) == before


def test_an_execution_that_is_no_task_records_nothing() -> None:
    source, script = _example("triage")
    wf = load_workflow_text(source)
    with local_stack(script) as stack:
        sm = stack.ex.create_state_machine("not-a-task", compile_workflow(wf).definition)
        arn = stack.ex.start_execution(sm, SAMPLES["triage"][0], name="tsk_0000")
        assert drive(stack, arn) == "SUCCEEDED"
        stack.deliver(stack.status_event(arn, "RUNNING"))
        stack.deliver(stack.status_event(arn))
        # LOOPLINE_TABLE is set (template.yaml): the functions looked for a task, found none
        # and wrote nothing; nor did the status events function.
        items = boto3.client("dynamodb").scan(TableName=store.table_name())["Items"]
        assert items == []


def test_recording_problems_never_fail_a_step(monkeypatch: pytest.MonkeyPatch) -> None:
    # The shell's value wins over the template's: a table that does not exist.
    monkeypatch.setenv("LOOPLINE_TABLE", "no-such-table")
    source, script = _example("triage")
    # A payload that looks like a task's: recording is attempted and fails.
    calls: list[str] = []
    real = tracking._problem
    monkeypatch.setattr(tracking, "_problem", lambda what: (calls.append(what), real(what)))
    result = run_json(source, SAMPLES["triage"][0], llm_script=script)
    assert result.status == "SUCCEEDED"
    assert calls  # logged and counted


def test_without_a_table_nothing_is_looked_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOOPLINE_TABLE", raising=False)
    from loopline.settings import settings

    settings.cache_clear()
    payload = {"action": "llm", "step": "a", "execution": "arn:x:tsk_1", "attempt": 0}
    assert tracking.step_started(payload) is None
    tracking.on_status_change({"detail": {"executionArn": "arn:x:tsk_1", "status": "SUCCEEDED"}})


def test_tracking_adds_no_state_to_any_definition() -> None:
    # The compiled examples are the committed ones (tests/examples checks they are up to
    # date) and no state of any of them writes to the table: only Lambda invocations of
    # Loopline's actions, whatever the functions record.
    for path in sorted(WORKFLOWS.glob("*.yaml")):
        definition = compile_workflow(load_workflow_text(path.read_text())).definition
        text = json.dumps(definition)
        assert "dynamodb" not in text and "events:putEvents" not in text
        committed = json.loads(
            (WORKFLOWS.parent / "statemachines" / f"{path.stem}.asl.json").read_text()
        )
        assert definition == committed


def test_a_task_takes_as_many_transitions_as_a_run_without_a_table() -> None:
    source, script = _example("triage")
    inputs, _ = SAMPLES["triage"]
    task, _, _ = run_task(source, inputs, llm_script=script)
    wf = load_workflow_text(source)
    from loopline.dsl import resolve_inputs
    from loopline.local.run import run_workflow

    # No template: Loopline's functions alone, no LOOPLINE_TABLE.
    plain = run_workflow(
        compile_workflow(wf).definition, wf, resolve_inputs(wf, inputs), llm_script=str(script)
    )
    assert plain.status == "SUCCEEDED"
    assert task["transitions"] == plain.transitions


def test_a_failed_task_counts_once_in_the_tasks_failed_metric(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    counted: list[tuple[str, float]] = []
    original = tracking.metrics.add_metric

    def add_metric(*, name: str, unit: Any, value: float) -> None:
        counted.append((name, value))
        original(name=name, unit=unit, value=value)

    monkeypatch.setattr(tracking.metrics, "add_metric", add_metric)
    with local_stack() as stack:
        _, arn = start_task(stack, LOOPS, {})
        assert drive(stack, arn) == "FAILED"
        end = stack.status_event(arn)
        stack.deliver(end)
        stack.deliver(end)  # EventBridge may deliver an event twice
    assert [c for c in counted if c[0] == "TasksFailed"] == [("TasksFailed", 1)]
    # The metric has no dimension but the service's: the stack's alarm watches exactly that.
    assert "action" not in tracking.metrics.dimension_set


def _tasks_failed(out: str) -> list[tuple[list[list[str]], dict[str, Any], list[float]]]:
    """Each TasksFailed of the EMF documents printed: (dimension sets, the document's
    dimension values, the metric's values)."""
    found = []
    for line in out.splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if not isinstance(doc, dict) or "_aws" not in doc or "TasksFailed" not in doc:
            continue
        (directive,) = doc["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "Loopline"
        dims = {d: doc[d] for dimset in directive["Dimensions"] for d in dimset}
        values = doc["TasksFailed"]
        found.append(
            (directive["Dimensions"], dims, values if isinstance(values, list) else [values])
        )
    return found


@pytest.mark.parametrize("status", ["FAILED", "TIMED_OUT"])
def test_a_failed_or_timed_out_task_counts_once_in_tasks_failed(
    status: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Metrics printed (EMF on stdout, as in Lambda), none left from earlier tests
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    metrics.clear_metrics()
    source, script = _example("incident_response")
    with local_stack(script) as stack:
        if status == "FAILED":
            task_id, arn = start_task(stack, LOOPS, {})
            assert drive(stack, arn) == "FAILED"
            end = stack.status_event(arn)
        else:
            # The stack's workflows set no execution timeout: an execution stopped while
            # it waits, told as AWS tells one that timed out.
            task_id, arn = start_task(stack, source, SAMPLES["incident_response"][0])
            assert drive(stack, arn) == "WAITING"
            stack.ex.sfn.stop_execution(executionArn=arn)
            end = stack.status_event(arn, "TIMED_OUT")
        capsys.readouterr()
        # When its end is delivered, again, and once more by another delivery
        stack.deliver(end)
        stack.deliver(end)
        stack.deliver({**end, "id": "another delivery"})
        task = store.get_task_record(task_id)
        assert task is not None and task["status"] == status
    # Then TasksFailed counted it once, with the one dimension the alarm watches
    found = _tasks_failed(capsys.readouterr().out)
    assert [(dims, values) for _, dims, values in found] == [({"service": "loopline"}, [1.0])]
    assert found[0][0] == [["service"]]


def test_a_task_that_succeeded_or_was_cancelled_first_counts_no_failure(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    metrics.clear_metrics()
    source, script = _example("triage")
    with local_stack(script) as stack:
        ok, ok_arn = start_task(stack, source, SAMPLES["triage"][0])
        assert drive(stack, ok_arn) == "SUCCEEDED"
        # A failing task whose cancel got there first: its end is no write of the status
        cancelled, arn = start_task(stack, LOOPS, {})
        store.update_task(
            cancelled,
            set={"status": "CANCELLED", "finished_at": "2026-01-01T00:00:00.000Z"},
            expect_status=tracking.NON_TERMINAL,
            event=store.NewEvent("task.cancelled", None, {"status": "CANCELLED"}),
        )
        assert drive(stack, arn) == "FAILED"
        capsys.readouterr()
        stack.deliver(stack.status_event(ok_arn))
        stack.deliver(stack.status_event(arn))
        done = store.get_task_record(ok)
        assert done is not None and done["status"] == "SUCCEEDED"
        task = store.get_task_record(cancelled)
        assert task is not None and task["status"] == "CANCELLED" and task["steps"]
    assert _tasks_failed(capsys.readouterr().out) == []
