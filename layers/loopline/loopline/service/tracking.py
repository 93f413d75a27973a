"""Status tracking: how a task's status, step runs and events get into the table, with no
state added to any state machine (docs/internals.md, "Status tracking").

Two writers, both outside the state machine:

- **The step functions** (``loopline.runtime.lambda_entry.handle``) record the steps whose
  own state invokes them (``STEP_ACTIONS``): ``step_started`` before the action (a step run
  ``RUNNING``, ``step.retried`` when the attempt is a retry, ``step.started``) and
  ``step_finished`` after it (the run ``SUCCEEDED``/``FAILED`` with ``step.succeeded`` /
  ``step.failed``; a human step's run stays ``WAITING`` and the task becomes ``WAITING``).
  Model tokens are added to the task's usage. Helper actions (``eval``, ``render``,
  ``vote_aggregate``, ``vote_voter``) belong to a control step and record no run.
- **The status events function** (``on_status_change``) follows EventBridge's
  "Step Functions Execution Status Change" events: ``RUNNING`` writes ``task.started``;
  an end reads the execution's history, runs ``loopline.history.Tracker`` (the code of
  ``loopline run --json``), appends the ``step.*`` events of the steps no function
  recorded (control steps, skips) and closes the runs left open (human waits), then ends
  the task with its status, output, error, cause and ``steps`` in one conditional write
  with the terminal ``task.*`` event.

Executions that are not tasks (``loopline run``) have no task item: nothing is recorded.
A step function never fails because of recording: problems are logged and counted
(metric ``TrackingErrors``). The store is imported only when ``LOOPLINE_TABLE`` is set.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit

from loopline import aws, ids
from loopline.observability import logger, metrics

if TYPE_CHECKING:
    from types import ModuleType

    from loopline.dsl.models import Workflow
    from loopline.history import Progress

#: Actions whose state is the step itself: each invocation is one run of the step.
STEP_ACTIONS = frozenset({"llm", "tool", "http", "task", "human"})
#: Helper actions of a control step that still count model tokens.
USAGE_ACTIONS = frozenset({"vote_voter"})
#: Statuses a task can still leave (``loopline.store.TERMINAL`` are the others).
NON_TERMINAL = frozenset({"QUEUED", "RUNNING", "WAITING", "PAUSED"})
#: Execution status → (task status, terminal event type).
ENDS = {
    "SUCCEEDED": ("SUCCEEDED", "task.succeeded"),
    "FAILED": ("FAILED", "task.failed"),
    "TIMED_OUT": ("TIMED_OUT", "task.timed_out"),
    "ABORTED": ("CANCELLED", "task.cancelled"),
}
#: A run the Tracker saw stopped before it finished (its branch or the task was stopped).
STOPPED = ("Loopline.Cancelled", "the step was stopped before it finished")
#: How long a second delivery of an execution's end waits for the first to finish it.
TAKEOVER_AFTER = 10.0


def _store() -> ModuleType | None:
    """``loopline.store``, imported on first use; None when no table is configured."""
    from loopline.settings import settings

    if not settings().table:
        return None
    from loopline import store

    return store


def task_id_of(execution: Any) -> str:
    """The task id of an execution ARN (its name, the last ``:`` part)."""
    return str(execution or "").rsplit(":", 1)[-1]


def _problem(what: str) -> None:
    metrics.add_metric(name="TrackingErrors", unit=MetricUnit.Count, value=1)
    logger.warning(f"could not record {what}", exc_info=True)


def _step_event(store: Any, task_id: str, event: Any) -> int | None:
    """Append ``event`` while the task has not ended (a late writer adds nothing after the
    task's terminal event)."""
    return store.update_task(task_id, expect_status=NON_TERMINAL, event=event)


def _mark_started(store: Any, task_id: str, at: str) -> None:
    """``started_at`` and ``task.started``, once, whoever comes first."""
    store.update_task(
        task_id,
        set={"started_at": at},
        require_unset="started_at",
        expect_status=NON_TERMINAL,
        event=store.NewEvent("task.started", None, {}, at),
    )


# --------------------------------------------------------------------------- step functions


@dataclass
class StepHandle:
    """What ``step_started`` recorded, for ``step_finished``."""

    task_id: str
    step: str
    action: str
    attempt: int
    #: The step run recorded (None: the action only counts usage).
    run_id: str | None = None


def step_started(payload: Any) -> StepHandle | None:
    """Record the start of the step a Lambda payload runs; None when nothing is recorded
    (not a step action, no table, not a task, the task has ended, or recording failed)."""
    try:
        if not isinstance(payload, dict):
            return None
        action = str(payload.get("action") or "")
        if action not in STEP_ACTIONS and action not in USAGE_ACTIONS:
            return None
        store = _store()
        task_id = task_id_of(payload.get("execution"))
        if store is None or not task_id:
            return None
        task = store.get_task_record(task_id)  # the one read (None: not a task)
        if task is None or task.get("status") not in NON_TERMINAL:
            return None
        attempt = payload.get("attempt")
        attempt = attempt if isinstance(attempt, int) and not isinstance(attempt, bool) else 0
        step = str(payload.get("step") or "")
        handle = StepHandle(task_id, step, action, attempt)
        config = payload.get("config")
        escalated = isinstance(config, dict) and bool(config.get("escalated"))
        if action not in STEP_ACTIONS or (action == "human" and escalated):
            # A vote's voters belong to the vote; an escalation waits again in the same run.
            return handle
        if task.get("status") == "WAITING":
            # The run goes on: a human task whose deadline passed has expired.
            _went_on(store, task_id)
        now = ids.now()
        if not task.get("started_at"):
            _mark_started(store, task_id, now)
        run_id = ids.new_id("run")
        store.put_step_run(
            task_id,
            {
                "step": step,
                "run_id": run_id,
                "attempt": attempt,
                "started_at": now,
                "finished_at": None,
                "status": "RUNNING",
                "output": None,
                "error": None,
                "cause": None,
            },
        )
        handle.run_id = run_id
        if attempt > 0:
            _step_event(store, task_id, store.NewEvent("step.retried", step, {"attempt": attempt}))
        _step_event(store, task_id, store.NewEvent("step.started", step, {"attempt": attempt}))
        return handle
    except Exception:
        _problem("the start of a step")
        return None


def step_finished(
    handle: StepHandle | None,
    *,
    result: Any = None,
    error: str | None = None,
    cause: str | None = None,
) -> None:
    """Record how the step of ``handle`` ended: ``result`` (the action's result) or
    ``error`` and ``cause``."""
    if handle is None:
        return
    try:
        store = _store()
        if store is None:
            return
        if handle.run_id is not None:
            _finish_run(store, handle, result, error, cause)
        usage = result.get("usage") if error is None and isinstance(result, dict) else None
        if isinstance(usage, dict):
            tokens = [usage.get("input_tokens"), usage.get("output_tokens")]
            if all(isinstance(t, int) and not isinstance(t, bool) for t in tokens) and any(tokens):
                store.add_usage(handle.task_id, tokens[0], tokens[1])
    except Exception:
        _problem("the end of a step")


def _finish_run(
    store: Any, handle: StepHandle, result: Any, error: str | None, cause: str | None
) -> None:
    task_id, step, attempt = handle.task_id, handle.step, handle.attempt
    assert handle.run_id is not None
    if error is not None:
        fields = {"status": "FAILED", "finished_at": ids.now(), "error": error, "cause": cause}
        store.update_step_run(task_id, step, handle.run_id, fields)
        data = {"attempt": attempt, "error": error, "cause": cause}
        _step_event(store, task_id, store.NewEvent("step.failed", step, data))
    elif handle.action == "human":
        # Waiting for a person (the human task made the task WAITING): the decision, or
        # the execution's end, closes the run — unless a quick decision already did.
        store.update_step_run(
            task_id, step, handle.run_id, {"status": "WAITING"}, expect_status="RUNNING"
        )
    else:
        output = result.get("output") if isinstance(result, dict) else None
        fields = {"status": "SUCCEEDED", "finished_at": ids.now(), "output": output}
        store.update_step_run(task_id, step, handle.run_id, fields)
        _step_event(store, task_id, store.NewEvent("step.succeeded", step, {"attempt": attempt}))


def _went_on(store: Any, task_id: str) -> None:
    """A step started while the task was WAITING: expire the human tasks past their
    deadline (their ``on_timeout`` let the run go on) and, when none is open, the task
    runs again."""
    from loopline.service import humans

    if not humans.expire_overdue(task_id):
        store.update_task(task_id, set={"status": "RUNNING"}, expect_status={"WAITING"})


# --------------------------------------------------------------------------- status events


def _time(ms: Any) -> str | None:
    """An EventBridge epoch-milliseconds time as RFC 3339."""
    if isinstance(ms, (int, float)) and not isinstance(ms, bool):
        return ids.format_time(datetime.fromtimestamp(ms / 1000, UTC))
    return None


def on_status_change(event: Any) -> None:
    """Apply a "Step Functions Execution Status Change" event to its task.

    Events of executions that are not tasks are ignored; repeated and out-of-order events
    change nothing twice (every write is conditional). A failure raises, so the event is
    delivered again (Lambda's retries of asynchronous invocations).
    """
    detail = event.get("detail") if isinstance(event, dict) else None
    if not isinstance(detail, dict):
        return
    arn, status = str(detail.get("executionArn") or ""), str(detail.get("status") or "")
    store = _store()
    task_id = task_id_of(arn)
    if store is None or not task_id or (status != "RUNNING" and status not in ENDS):
        return
    try:
        task = store.get_task_record(task_id)
        if task is None or (task.get("execution_arn") and task["execution_arn"] != arn):
            return  # not a task (or an earlier execution of it)
        if status == "RUNNING":
            if not task.get("started_at"):
                _mark_started(store, task_id, _time(detail.get("startDate")) or ids.now())
            return
        _execution_ended(store, task, arn, status, detail)
    except Exception:
        _problem(f"the {status} status of {arn}")
        raise


def _execution_ended(
    store: Any, task: dict[str, Any], arn: str, status: str, detail: dict[str, Any]
) -> None:
    task_id = str(task["id"])
    if task.get("status") not in NON_TERMINAL and task.get("steps") is not None:
        return  # already done
    end = Ending.read(store, task, arn)
    if task.get("status") not in NON_TERMINAL:
        # Ended first by someone else (a cancel): only the steps are missing.
        store.update_task(task_id, set={"steps": end.steps}, require_unset="steps")
        return
    if not task.get("started_at"):
        _mark_started(store, task_id, _time(detail.get("startDate")) or end.started_at)
    # The claim: of two deliveries of this end, one writes the events.
    claimed = store.update_task(
        task_id, set={"steps": end.steps}, require_unset="steps", expect_status=NON_TERMINAL
    )
    if claimed is None:
        if _ends_soon(store, task_id):
            return
        # Still not ended: the delivery that claimed it failed part-way. Go on from there.
        already = _present(store, task_id, end.events)
    else:
        already = 0
    for i, (event, run_update) in enumerate(end.events):
        if run_update is not None:
            store.update_step_run(task_id, *run_update)
        if i >= already:
            _step_event(store, task_id, event)
    # Its people can no longer decide: open human tasks expire or close (links 410).
    from loopline.service import humans

    humans.close_for_task(task_id)
    task_status, event_type = ENDS[status]
    output, error, cause = end.outcome(detail)
    data: dict[str, Any] = {"status": task_status}
    if error is not None or cause is not None:
        data.update(error=error, cause=cause)
    finished_at = _time(detail.get("stopDate")) or end.finished_at
    done = store.update_task(
        task_id,
        set={
            "status": task_status,
            "output": output,
            "error": error,
            "cause": cause,
            "finished_at": finished_at,
            "steps": end.steps,
        },
        expect_status=NON_TERMINAL,
        event=store.NewEvent(event_type, None, data),
    )
    if done is None:  # ended meanwhile (a cancel): keep the steps
        store.update_task(task_id, set={"steps": end.steps})
    elif task_status in ("FAILED", "TIMED_OUT"):
        # Once per task (only the write that ended it counts): the stack's TasksFailed
        # alarm watches it, whatever state machine the task ran.
        metrics.add_metric(name="TasksFailed", unit=MetricUnit.Count, value=1)


def _ends_soon(store: Any, task_id: str) -> bool:
    """Whether the task reaches a terminal status within ``TAKEOVER_AFTER`` seconds."""
    deadline = time.monotonic() + TAKEOVER_AFTER
    while time.monotonic() < deadline:
        task = store.get_task_record(task_id)
        if task is None or task.get("status") not in NON_TERMINAL:
            return True
        time.sleep(0.25)
    return False


def _present(store: Any, task_id: str, planned: list[tuple[Any, Any]]) -> int:
    """How many of the ``planned`` events are already the last events of the task."""
    wanted = [(e.type, e.step, e.data or {}) for e, _ in planned]
    log: list[tuple[Any, Any, Any]] = []
    after = 0
    while True:
        page = store.list_events(task_id, after=after, limit=100)
        if not page:
            break
        log += [(e["type"], e.get("step"), e.get("data") or {}) for e in page]
        after = int(page[-1]["seq"])
    for k in range(min(len(wanted), len(log)), 0, -1):
        if log[-k:] == wanted[:k]:
            return k
    return 0


def _history(arn: str) -> list[dict[str, Any]]:
    sfn = aws.client("stepfunctions")
    events: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"executionArn": arn, "maxResults": 1000}
    while True:
        page = sfn.get_execution_history(**kwargs)
        events += page["events"]
        if not page.get("nextToken"):
            return events
        kwargs["nextToken"] = page["nextToken"]


def _definition(arn: str) -> dict[str, Any]:
    """The definition the execution ran (not the state machine's latest)."""
    sfn = aws.client("stepfunctions")
    return json.loads(sfn.describe_state_machine_for_execution(executionArn=arn)["definition"])


def _workflow(store: Any, task: dict[str, Any]) -> Workflow | None:
    """The task's workflow (for how its steps nest: a group has no state of its own), from
    the tenant's registered workflows, else the stack's catalog; None when neither has
    this version (the steps then nest as the definition's states do)."""
    name, version = str(task.get("workflow") or ""), task.get("version")
    source = None
    record = store.get_workflow(str(task.get("tenant") or ""), name)
    if record and record.get("version") == version and record.get("source"):
        source = record["source"]
    else:
        from loopline.service import catalog

        entry = catalog.entries().get(name)
        if entry and entry.get("version") == version:
            source = entry.get("source")
    if not source:
        return None
    from loopline.dsl import load_workflow_text

    try:
        return load_workflow_text(str(source), f"{name}.yaml")
    except Exception:
        _problem(f"the nesting of workflow {name}'s steps")
        return None


def function_steps(definition: dict[str, Any]) -> set[str]:
    """Steps whose own state invokes a step action: the step functions record them."""
    from loopline.history import iter_states

    out = set()
    for name, state in iter_states(definition):
        params = state.get("Parameters") or {}
        # ``lambda:invoke`` wraps the payload; a function's ARN as the Resource does not.
        payload = params.get("Payload", params) if isinstance(params, dict) else None
        if (
            state.get("Type") == "Task"
            and isinstance(payload, dict)
            and payload.get("action") in STEP_ACTIONS
            and not name.startswith("_")
        ):
            out.add(name.split(".")[0])
    return out


def step_status(tracked: str) -> str:
    """A ``loopline run --json`` status as a task's: upper case, ``aborted`` → CANCELLED."""
    return "CANCELLED" if tracked == "aborted" else tracked.upper()


@dataclass
class Ending:
    """What an ended execution's history says: the steps, and the events and run updates
    the end adds (each ``(event, (step, run_id, fields) or None)``, in order)."""

    steps: dict[str, dict[str, Any]]
    events: list[tuple[Any, Any]]
    history: list[dict[str, Any]]
    started_at: str
    finished_at: str

    @classmethod
    def read(cls, store: Any, task: dict[str, Any], arn: str) -> Ending:
        from loopline.history import SplitHistory, Tracker, joined

        # A split workflow's children ran in executions of their own: read as one.
        read = SplitHistory(lambda execution, _after: _history(execution), arn)
        history = read()
        definition = joined([_definition(a) for a in (arn, *read.children)])
        progress: list[Progress] = []
        tracker = Tracker(definition, _workflow(store, task), progress.append)
        tracker.feed(history)
        steps = {
            k: {"status": step_status(v["status"]), "starts": v["starts"]}
            for k, v in sorted(tracker.steps.items())
        }
        runs: dict[str, list[dict[str, Any]]] = {}
        for run in store.list_step_runs(str(task["id"])):
            runs.setdefault(str(run["step"]), []).append(run)
        times = [ev["timestamp"] for ev in history if isinstance(ev.get("timestamp"), datetime)]
        started = ids.format_time(times[0]) if times else ids.now()
        finished = ids.format_time(times[-1]) if times else ids.now()
        planner = _Planner(store, function_steps(definition), runs, finished)
        for p in progress:
            planner.add(p)
        return cls(steps, planner.out, history, started, finished)

    def outcome(self, detail: dict[str, Any]) -> tuple[Any, str | None, str | None]:
        """The execution's output, error and readable cause."""
        from loopline.history import EXECUTION_ENDS, decode_cause, details

        end: dict[str, Any] = {}
        for ev in reversed(self.history):
            if ev.get("type") in EXECUTION_ENDS:
                end = details(ev)
                break
        text = end.get("output", detail.get("output"))
        output = None
        if isinstance(text, str):
            try:
                output = json.loads(text)
            except ValueError:
                output = text
        error = end.get("error") or detail.get("error")
        cause = end.get("cause") or detail.get("cause")
        if detail.get("status") == "TIMED_OUT" and not error:
            error = "States.Timeout"
        return output, error or None, decode_cause(cause) or None


@dataclass
class _Slot:
    run: dict[str, Any] | None
    attempt: int
    open: bool = True


@dataclass
class _Planner:
    """Turns the Tracker's progress into the events no step function wrote: every event of
    a control step (and of a skipped step), and the end of each run left open."""

    store: Any
    recorded: set[str]
    runs: dict[str, list[dict[str, Any]]]
    at: str
    out: list[tuple[Any, Any]] = field(default_factory=list)
    slots: dict[str, list[_Slot]] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)

    def event(self, type_: str, step: str, data: dict[str, Any], run: Any = None) -> None:
        self.out.append((self.store.NewEvent(type_, step, data), run))

    def add(self, p: Progress) -> None:
        if p.event == "skipped":
            self.event("step.skipped", p.step, {"attempt": 0})
        elif p.step in self.recorded:
            self._recorded(p)
        elif p.event == "started":
            self.attempts[p.step] = 0
            self.event("step.started", p.step, {"attempt": 0})
        elif p.event == "retrying":
            attempt = self.attempts.get(p.step, 0)
            self.event("step.failed", p.step, _failure(attempt, p.error, p.cause))
            self.attempts[p.step] = attempt + 1
            self.event("step.retried", p.step, {"attempt": attempt + 1})
            self.event("step.started", p.step, {"attempt": attempt + 1})
        elif p.event in ("succeeded", "failed", "aborted"):
            self.event(*_end_event(p.step, p.event, self.attempts.get(p.step, 0), p))

    def _recorded(self, p: Progress) -> None:
        """A step the functions record: close the runs they could not (a human wait ends
        after its function returned; a retry or an end stops a waiting run)."""
        slots = self.slots.setdefault(p.step, [])
        if p.event in ("started", "retrying"):
            if p.event == "retrying":
                self._close(p, "failed")
            runs = self.runs.get(p.step, [])
            run = runs[len(slots)] if len(slots) < len(runs) else None
            slots.append(_Slot(run, int(run.get("attempt") or 0) if run else 0))
        elif p.event in ("succeeded", "failed", "aborted"):
            self._close(p, p.event)

    def _close(self, p: Progress, outcome: str) -> None:
        slot = next((s for s in self.slots.get(p.step, []) if s.open), None)
        if slot is None:
            return
        slot.open = False
        run = slot.run
        if run is None or run.get("status") not in ("RUNNING", "WAITING"):
            return  # its function recorded the end
        type_, step, data = _end_event(p.step, outcome, slot.attempt, p)
        fields: dict[str, Any] = {
            "status": {"succeeded": "SUCCEEDED", "aborted": "CANCELLED"}.get(outcome, "FAILED"),
            "finished_at": self.at,
        }
        if outcome != "succeeded":
            fields.update(error=data["error"], cause=data["cause"])
        self.event(type_, step, data, (p.step, str(run["run_id"]), fields))


def _end_event(
    step: str, outcome: str, attempt: int, p: Progress
) -> tuple[str, str, dict[str, Any]]:
    """The event of a run's end: ``succeeded``, ``failed`` (with ``p``'s error) or
    ``aborted`` (a failure: ``STOPPED``)."""
    if outcome == "succeeded":
        return "step.succeeded", step, {"attempt": attempt}
    if outcome == "aborted":
        return "step.failed", step, _failure(attempt, *STOPPED)
    return "step.failed", step, _failure(attempt, p.error, p.cause)


def _failure(attempt: int, error: str | None, cause: str | None) -> dict[str, Any]:
    return {"attempt": attempt, "error": error, "cause": cause}
