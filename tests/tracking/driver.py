"""Tasks run for real on the local stack made from template.yaml: a task item created
through the store, its execution started with the task id as its name, human waits
answered from decisions, and the AWS-shaped "Step Functions Execution Status Change"
events delivered to the real status events function (``functions/status_events``)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from loopline import aws, ids, store
from loopline.compiler import compile_workflow
from loopline.dsl import load_workflow_text, resolve_inputs
from loopline.local.executor import ACCOUNT_ID, LocalExecutor
from loopline.local.run import RunResult, answer_wait, open_waits, parse_decision, run_workflow
from loopline.local.template import LocalStack
from loopline.runtime.actions import Env
from loopline.runtime.scripted import ScriptedModel

from tests.conftest import ROOT

TEMPLATE = ROOT / "template.yaml"
TENANT = "acme"
TERMINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")


def _ms(moment: Any) -> int | None:
    return int(moment.timestamp() * 1000) if isinstance(moment, datetime) else None


@dataclass
class Stack:
    ex: LocalExecutor
    local: LocalStack

    def status_event(self, arn: str, status: str | None = None) -> dict[str, Any]:
        """The EventBridge event AWS sends for the execution's current (or given) status."""
        d = self.ex.describe(arn)
        status = status or str(d["status"])
        ended = status in TERMINAL
        detail = {
            "executionArn": arn,
            "stateMachineArn": d["stateMachineArn"],
            "name": d["name"],
            "status": status,
            "startDate": _ms(d["startDate"]),
            "stopDate": _ms(d.get("stopDate")) if ended else None,
            "input": d.get("input"),
            "inputDetails": {"included": True},
            "output": d.get("output") if ended else None,
            "outputDetails": {"included": True} if ended else None,
            "error": d.get("error") if ended else None,
            "cause": d.get("cause") if ended else None,
        }
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Step Functions Execution Status Change",
            "source": "aws.states",
            "account": ACCOUNT_ID,
            "time": ids.now(),
            "region": "us-east-1",
            "resources": [arn],
            "detail": detail,
        }

    def deliver(self, event: dict[str, Any]) -> None:
        """Invoke the real status events function with ``event``."""
        self.ex.invoke(self.local.resources["StatusEventsFunction"].name, event)


@contextmanager
def local_stack(llm_script: Path | None = None) -> Iterator[Stack]:
    """The local stack of template.yaml, its tasks table included (``LOOPLINE_TABLE``)."""
    model = ScriptedModel.from_file(llm_script) if llm_script else None
    local = LocalStack.load(TEMPLATE)
    # DynamoDB's conditional writes are atomic under the executor's threads
    # (loopline.local.fidelity).
    with LocalExecutor(env=Env(model=model), loopline_functions=False) as ex:
        try:
            local.provision(ex)
            aws.reset()
            yield Stack(ex, local)
        finally:
            local.restore_environment()
            aws.reset()


@dataclass
class TaskRun:
    task_id: str
    arn: str
    status: str  # the execution's


def start_task(
    stack: Stack, source: str, inputs: dict[str, Any], *, register: bool = True
) -> tuple[str, str]:
    """Register ``source`` for the tenant (unless it is one of the stack's workflows:
    ``register=False``), create its task and start the execution named after it;
    ``(task id, execution ARN)``."""
    wf = load_workflow_text(source)
    definition = compile_workflow(wf).definition
    sm = stack.ex.create_state_machine(f"t-{TENANT}-{wf.name}", definition)
    now = ids.now()
    if register:
        store.put_workflow(
            TENANT,
            {
                "name": wf.name,
                "version": wf.version,
                "description": wf.description,
                "source": source,
                "inputs_schema": {},
                "steps": [],
                "graph": "",
                "state_machine_arn": sm,
                "created_at": now,
                "updated_at": now,
            },
        )
    task_id = ids.new_id("task")
    arn = sm.replace(":stateMachine:", ":execution:") + f":{task_id}"
    resolved = resolve_inputs(wf, inputs)
    store.create_task(
        TENANT,
        {
            "id": task_id,
            "workflow": wf.name,
            "version": wf.version,
            "status": "RUNNING",
            "run": 1,
            "inputs": resolved,
            "labels": {},
            "created_at": now,
            "execution_arn": arn,
            "state_machine_arn": sm,
        },
    )
    assert stack.ex.start_execution(sm, resolved, name=task_id) == arn
    return task_id, arn


def drive(stack: Stack, arn: str, decisions: Sequence[str] = (), *, timeout: float = 30.0) -> str:
    """Answer the execution's waits from ``decisions`` (in order, per step) until it ends
    or waits with no decision left; its status (``WAITING`` for the latter)."""
    queues: dict[str, list[Any]] = {}
    for d in map(parse_decision, decisions):
        queues.setdefault(d.step, []).append(d)
    task_id = arn.rsplit(":", 1)[-1]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = stack.ex.status(arn)
        if status in TERMINAL:
            return status
        for wait in open_waits(task_id):
            queue = queues.get(wait.step)
            if not queue:
                return _waiting(stack, arn)
            decision = queue.pop(0)
            answer_wait(wait, decision.value, decision.comment)
        time.sleep(0.05)
    raise TimeoutError(f"{arn} did not end in {timeout} s")


def _waiting(stack: Stack, arn: str) -> str:
    """``WAITING`` once the human function has recorded the wait."""
    task_id = arn.rsplit(":", 1)[-1]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        task = store.get_task_record(task_id)
        if task is None:
            break
        # The human task made the task WAITING; the function's return marks its run.
        runs = store.list_step_runs(task_id)
        if task["status"] == "WAITING" and any(r["status"] == "WAITING" for r in runs):
            break
        time.sleep(0.02)
    return "WAITING"


def run_task(
    source: str,
    inputs: dict[str, Any],
    decisions: Sequence[str] = (),
    *,
    llm_script: Path | None = None,
    deliver: bool = True,
    register: bool = True,
) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """Run a task to its end with status events delivered: (task, events, step runs)."""
    with local_stack(llm_script) as stack:
        task_id, arn = start_task(stack, source, inputs, register=register)
        if deliver:
            stack.deliver(stack.status_event(arn, "RUNNING"))
        drive(stack, arn, decisions)
        if deliver:
            stack.deliver(stack.status_event(arn))
        task = store.get_task_record(task_id)
        assert task is not None
        history = stack.ex.history(arn)
        task["transitions"] = sum(1 for e in history if e["type"].endswith("StateEntered"))
        task["model_usage"] = model_usage(history)
        return task, store.list_events(task_id, limit=10_000), store.list_step_runs(task_id)


def model_usage(history: list[dict[str, Any]]) -> tuple[int, int]:
    """The tokens the execution's model calls report (``usage`` of each result)."""
    total = [0, 0]
    for ev in history:
        if ev["type"] not in ("TaskSucceeded", "LambdaFunctionSucceeded"):
            continue
        det = ev.get("taskSucceededEventDetails") or ev.get("lambdaFunctionSucceededEventDetails")
        try:
            result = json.loads(det["output"])
            # ``lambda:invoke`` wraps the function's result; a function's ARN as the
            # Resource gives it as it is.
            usage = result.get("Payload", result).get("usage") or {}
        except (KeyError, TypeError, ValueError, AttributeError):
            continue
        total[0] += int(usage.get("input_tokens") or 0)
        total[1] += int(usage.get("output_tokens") or 0)
    return total[0], total[1]


def run_json(
    source: str,
    inputs: dict[str, Any],
    decisions: Sequence[str] = (),
    *,
    llm_script: Path | None = None,
) -> RunResult:
    """What ``loopline run --json`` reports for the same run (on the same local stack)."""
    wf = load_workflow_text(source)
    return run_workflow(
        compile_workflow(wf).definition,
        wf,
        resolve_inputs(wf, inputs),
        llm_script=str(llm_script) if llm_script else None,
        decisions=[parse_decision(d) for d in decisions],
        template=TEMPLATE,
    )


def check_log(events: list[dict[str, Any]]) -> None:
    """Gapless, in order, task.started first and the terminal event last, no duplicate."""
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    types = [e["type"] for e in events]
    assert types[0] == "task.started"
    assert types.count("task.started") == 1
    ends = [
        t
        for t in types
        if t in ("task.succeeded", "task.failed", "task.cancelled", "task.timed_out")
    ]
    assert ends == [types[-1]]
    # Each start of a step has exactly one end once the task has ended: an event written
    # twice would break the count.
    for step in {e["step"] for e in events if e["step"]}:
        mine = [e["type"] for e in events if e["step"] == step]
        ends = mine.count("step.succeeded") + mine.count("step.failed")
        if types[-1] == "task.cancelled" or "WAITING" in types:
            assert ends <= mine.count("step.started"), (step, mine)
        else:
            assert ends == mine.count("step.started"), (step, mine)
        assert mine.count("step.retried") <= mine.count("step.started"), (step, mine)
