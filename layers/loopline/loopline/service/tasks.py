"""Tasks: submitting one (inputs checked before anything starts), reading, listing,
following its events, cancelling.

Idempotency is the store's ``claim_idempotency``, not Powertools' ``@idempotent_function``:
the contract scopes a key to the tenant, answers a replay with the task as it is *now*
(not the first answer, cached), and keeps the record in the service's one table under
the store's key formats, which only ``loopline.store`` reads and writes; Powertools'
persistence layer writes the table itself, with its own key layout, and caches the first
response. The claim is one conditional write: of concurrent requests with one key,
one goes on, and each other gets the task (``200``) or ``409`` with ``Retry-After`` while
the first is in flight. A request that starts nothing (invalid inputs, a failed start)
releases its claim.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from functools import lru_cache
from typing import Any

from loopline import ids, store
from loopline.service import humans, views, workflows
from loopline.service.errors import (
    Conflict,
    FieldError,
    Invalid,
    NotFound,
    ServiceError,
    Unavailable,
    bad_cursor,
)
from loopline.service.keys import Caller
from loopline.settings import settings

log = logging.getLogger("loopline.service")

#: Statuses a task leaves (cancel stops them).
ACTIVE = frozenset({"QUEUED", "RUNNING", "WAITING", "PAUSED"})
STATUSES = (
    "QUEUED",
    "RUNNING",
    "WAITING",
    "PAUSED",
    "SUCCEEDED",
    "FAILED",
    "CANCELLED",
    "TIMED_OUT",
)
#: The longest an events request holds (seconds), and how often it looks meanwhile.
MAX_WAIT = 20
POLL_SECONDS = 0.25
#: Every how many polls a held events request looks whether the task ended.
STATUS_EVERY = 4
#: How long a client waits before asking again about a request still in flight.
RETRY_AFTER_SECONDS = 1
MAX_IDEMPOTENCY_KEY = 255


# --------------------------------------------------------------------------- submitting


def _body_hash(
    workflow: str, inputs: Any, webhook: str | None, labels: dict[str, str] | None
) -> str:
    body = {"workflow": workflow, "inputs": inputs, "webhook": webhook, "labels": labels or {}}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def submit_task(
    caller: Caller,
    workflow: str,
    inputs: Any,
    *,
    webhook: str | None = None,
    labels: dict[str, str] | None = None,
    idempotency_key: str | None = None,
) -> tuple[dict[str, Any], bool]:
    """Start a task of ``workflow``; returns its view and whether this request started it
    (False: an earlier request with the same ``idempotency_key`` and body did).

    Raise ``NotFound`` (unknown workflow), ``Invalid`` (every input violation and a
    refused webhook, nothing started), ``Conflict`` (the key was used with another body,
    or its first request is still in flight: ``Retry-After``), ``Unavailable`` (Step
    Functions did not start the execution; the task is ``FAILED``).
    """
    key = idempotency_key
    if key is not None and not 0 < len(key) <= MAX_IDEMPOTENCY_KEY:
        raise Invalid(
            "the Idempotency-Key header is empty or too long",
            [
                FieldError(
                    "Idempotency-Key",
                    "maxLength" if key else "minLength",
                    f"must be 1 to {MAX_IDEMPOTENCY_KEY} characters",
                )
            ],
        )
    body_hash = _body_hash(workflow, inputs, webhook, labels)
    if key is not None:
        earlier = store.claim_idempotency(caller.tenant, key, body_hash, now=ids.now())
        if earlier is not None:
            return _replay(caller, earlier, body_hash), False
    try:
        view = _start(caller, workflow, inputs, webhook, labels or {})
    except BaseException:
        if key is not None:
            store.release_idempotency(caller.tenant, key)
        raise
    if key is not None:
        store.complete_idempotency(caller.tenant, key, view["id"])
    return view, True


def _replay(caller: Caller, earlier: dict[str, Any], body_hash: str) -> dict[str, Any]:
    if earlier.get("body_hash") != body_hash:
        raise Conflict(
            "this Idempotency-Key was used with a different request body",
            [
                FieldError(
                    "Idempotency-Key",
                    "reused",
                    "a key stands for one request: use a new key for a different body",
                )
            ],
        )
    task_id = earlier.get("task_id")
    task = store.get_task(caller.tenant, str(task_id)) if task_id else None
    if task is None:
        raise Conflict(
            "a request with this Idempotency-Key is still in progress; try again shortly",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    return task_view(task)


@lru_cache(maxsize=64)
def _load(name: str, version: str, source: str) -> Any:
    from loopline.dsl import load_workflow_text

    return load_workflow_text(source, f"{name}.yaml")


_load_lock = threading.Lock()


def _model(wf: workflows.Workflow) -> Any:
    with _load_lock:  # the loader is not made for threads sharing one parse
        return _load(wf.name, wf.version, str(wf.record["source"]))


def step_parents(model: Any) -> dict[str, str]:
    """Each nested step's enclosing step (``{"inner": "group"}``): what a running task's
    ``steps`` adds to the step runs recorded so far (``views.derived_steps``)."""
    from loopline.dsl import models

    parents: dict[str, str] = {}

    def walk(steps: list[Any], parent: str | None) -> None:
        for s in steps:
            if parent is not None:
                parents[s.id] = parent
            for seq in models.children(s):
                walk(seq, s.id)

    walk(model.steps, None)
    return parents


def _input_errors(model: Any, inputs: Any) -> tuple[dict[str, Any], list[FieldError]]:
    from loopline.dsl import InputsInvalid, resolve_inputs
    from loopline.runtime.largevalues import REF_KEY

    errors: list[FieldError] = []
    resolved: dict[str, Any] = {}
    try:
        resolved = resolve_inputs(model, inputs)
    except InputsInvalid as exc:
        for v in exc.violations:
            if v.has_value:
                errors.append(FieldError(v.field, v.rule, v.message, v.value))
            else:
                errors.append(FieldError(v.field, v.rule, v.message))
    if isinstance(inputs, dict):
        for name, value in inputs.items():
            if views.has_ref(value):
                errors.append(
                    FieldError(
                        f"inputs.{name}",
                        "reserved",
                        f"must not hold an object with {REF_KEY}: it marks the service's "
                        "own references to stored values",
                    )
                )
    return resolved, errors


def webhook_problem(url: str) -> str | None:
    """Why a task's ``webhook`` URL is refused, or None (``loopline.service.webhooks``)."""
    from loopline.service import webhooks

    return webhooks.url_problem(url)


def _start(
    caller: Caller, name: str, inputs: Any, webhook: str | None, labels: dict[str, str]
) -> dict[str, Any]:
    from loopline.runtime import largevalues

    wf = workflows.find(caller.tenant, name)
    if wf is None:
        raise NotFound(
            f"there is no workflow named {name}",
            [FieldError("workflow", "exists", "no such workflow", name)],
        )
    model = _model(wf)
    resolved, errors = _input_errors(model, inputs)
    if webhook is not None:
        problem = webhook_problem(webhook)
        if problem:
            errors.append(FieldError("webhook", "url", problem, webhook))
    if errors:
        raise Invalid(
            f"the task was not started: {len(errors)} problem{'s' if len(errors) != 1 else ''}",
            errors,
        )
    task_id = ids.new_id("task")
    sent = largevalues.offload_inputs(
        resolved,
        workflow=wf.name,
        execution=task_id,
        bucket=settings().bucket,
        tenant=caller.tenant,
    )
    sm_arn = wf.state_machine_arn
    now = ids.now()
    store.create_task(
        caller.tenant,
        {
            "id": task_id,
            "workflow": wf.name,
            "version": wf.version,
            "status": "RUNNING",
            "run": 1,
            "inputs": sent,
            "labels": labels,
            "webhook": webhook,
            "output": None,
            "error": None,
            "cause": None,
            "created_at": now,
            "started_at": None,
            "finished_at": None,
            "steps": None,
            "execution_arn": sm_arn.replace(":stateMachine:", ":execution:", 1) + f":{task_id}",
            "state_machine_arn": sm_arn,
            "parents": step_parents(model),
        },
    )
    _execute(task_id, sm_arn, sent)
    task = store.get_task(caller.tenant, task_id)
    assert task is not None
    return task_view(task)


def _execute(task_id: str, sm_arn: str, sent: dict[str, Any]) -> None:
    """Start the execution (named after the task) and record ``task.started``."""
    from botocore.exceptions import BotoCoreError, ClientError

    from loopline import aws

    try:
        aws.client("stepfunctions").start_execution(
            stateMachineArn=sm_arn, name=task_id, input=json.dumps(sent, ensure_ascii=False)
        )
    except (BotoCoreError, ClientError) as exc:
        log.exception("could not start the execution of task %s", task_id)
        reason = (
            exc.response.get("Error", {}).get("Message") if isinstance(exc, ClientError) else None
        ) or "Step Functions could not be reached"
        cause = f"the execution did not start: {reason}"
        store.update_task(
            task_id,
            set={
                "status": "FAILED",
                "error": "Loopline.StartFailed",
                "cause": cause,
                "finished_at": ids.now(),
            },
            expect_status=ACTIVE,
            event=store.NewEvent(
                "task.failed",
                data={"status": "FAILED", "error": "Loopline.StartFailed", "cause": cause},
            ),
        )
        raise Unavailable(f"the task {task_id} could not start: {reason}") from None
    store.update_task(
        task_id,
        set={"started_at": ids.now()},
        require_unset="started_at",
        event=store.NewEvent("task.started", data={}),
    )


# --------------------------------------------------------------------------- reading


def task_view(task: dict[str, Any]) -> dict[str, Any]:
    runs = store.list_step_runs(task["id"]) if task.get("steps") is None else None
    return views.task_view(task, runs)


def _task(caller: Caller, task_id: str) -> dict[str, Any]:
    task = store.get_task(caller.tenant, task_id)
    if task is None:
        raise NotFound(f"there is no task {task_id}")
    return task


def get_task(caller: Caller, task_id: str) -> dict[str, Any]:
    view = task_view(_task(caller, task_id))
    if view["status"] == "WAITING":
        view["waiting"] = humans.waiting_of(task_id)
    return view


def list_tasks(
    caller: Caller,
    *,
    status: str | None = None,
    workflow: str | None = None,
    limit: int = 20,
    cursor: str | None = None,
) -> dict[str, Any]:
    """A page of the tenant's tasks, newest first: ``{items, next_cursor}``. Items show
    ``steps`` as recorded (``{}`` while a task runs) and large values as references."""
    try:
        items, next_cursor = store.list_tasks(
            caller.tenant, status=status, workflow=workflow, limit=limit, cursor=cursor
        )
    except store.InvalidCursor:
        raise bad_cursor(cursor) from None
    return {
        "items": [
            {**views.task_view(t, [], resolve=False), "steps": t.get("steps") or {}} for t in items
        ],
        "next_cursor": next_cursor,
    }


def get_step(caller: Caller, task_id: str, step: str) -> dict[str, Any]:
    """``{task, step, status, starts, runs}`` of one step of the task (runs newest last).
    A step of the workflow that has not started has no runs; any other name is 404."""
    task = _task(caller, task_id)
    runs = store.list_step_runs(task_id, step)
    summary = (task.get("steps") or {}).get(step)
    if not runs and summary is None:
        wf = workflows.find(caller.tenant, str(task["workflow"]))
        known = {s["id"] for s in wf.record.get("steps", [])} if wf is not None else set()
        if step not in known:
            raise NotFound(f"the task {task_id} has no step {step}")
    return views.step_view(task, step, runs, summary)


def list_events(
    caller: Caller, task_id: str, *, after: int = 0, wait: float = 0, limit: int = 100
) -> dict[str, Any]:
    """The task's events with ``seq > after``, in order: ``{items, next_cursor}``
    (``next_cursor`` is the ``after`` of the next page when this one is full, else None).
    With ``wait`` (seconds, at most 20), an empty answer is held until an event comes or
    the time is up; an ended task is answered at once."""
    task = _task(caller, task_id)
    deadline = time.monotonic() + min(max(wait, 0), MAX_WAIT)
    polls = 0
    while True:
        events = store.list_events(task_id, after=after, limit=limit)
        if events or task["status"] not in ACTIVE or time.monotonic() >= deadline:
            break
        time.sleep(min(POLL_SECONDS, max(deadline - time.monotonic(), 0)))
        polls += 1
        if polls % STATUS_EVERY == 0:  # an ended task has no more events to wait for
            task = store.get_task(caller.tenant, task_id) or task
    items = [views.event_view(e) for e in events]
    return {
        "items": items,
        "next_cursor": str(items[-1]["seq"]) if len(items) >= limit else None,
    }


# --------------------------------------------------------------------------- cancelling


def cancel_task(caller: Caller, task_id: str) -> dict[str, Any]:
    """Stop the task's execution and mark it ``CANCELLED`` (``task.cancelled``); 409 when
    it has ended."""
    task = _task(caller, task_id)
    if task["status"] not in ACTIVE:
        raise _ended(task)
    _stop(task, caller)
    now = ids.now()
    seq = store.update_task(
        task_id,
        set={"status": "CANCELLED", "finished_at": now},
        expect_status=ACTIVE,
        event=store.NewEvent("task.cancelled", data={"status": "CANCELLED"}),
    )
    task = _task(caller, task_id)
    if seq is None and task["status"] != "CANCELLED":
        raise _ended(task)
    humans.close_for_task(task_id)  # its links now answer 410
    return task_view(task)


def _ended(task: dict[str, Any]) -> ServiceError:
    return Conflict(
        f"the task {task['id']} has already ended ({task['status']})",
        [
            FieldError(
                "status",
                "active",
                "only a task that has not ended can be cancelled",
                task["status"],
            )
        ],
    )


def _stop(task: dict[str, Any], caller: Caller) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    from loopline import aws

    arn = task.get("execution_arn")
    if not arn:
        return
    who = caller.user or caller.key_id
    try:
        aws.client("stepfunctions").stop_execution(
            executionArn=arn, error="Loopline.Cancelled", cause=f"cancelled by {who}"
        )
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        if code != "ExecutionDoesNotExist":
            log.exception("could not stop %s", arn)
            raise Unavailable(f"the task {task['id']} could not be stopped") from None
    except BotoCoreError:
        log.exception("could not stop %s", arn)
        raise Unavailable(f"the task {task['id']} could not be stopped") from None
