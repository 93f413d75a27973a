"""``loopline run``: run a compiled workflow on the local stack and report what happened.

``run_workflow`` deploys the definition in a ``LocalExecutor``, starts one execution with
the resolved inputs (the execution input *is* the inputs object), follows the execution
history to report each step's progress, and answers human waits from the decisions it
was given (or by asking). Step ids are recovered from state names (docs/internals.md,
"State names"): the state that is a step is named ``<id>``, its helpers ``<id>.<role>``.
"""

from __future__ import annotations

import getpass
import json
import logging
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path as FsPath
from typing import Any

from loopline.dsl import models
from loopline.local.executor import LocalExecutor
from loopline.local.template import LocalStack
from loopline.runtime import largevalues
from loopline.runtime.actions import Env, HumanWait, schema_problem
from loopline.runtime.errors import StepError
from loopline.runtime.model import Model
from loopline.runtime.providers import provider_for
from loopline.runtime.providers.bedrock import BedrockModel
from loopline.runtime.scripted import ScriptedModel
from loopline.settings import settings

log = logging.getLogger("loopline.local")

# --------------------------------------------------------------------------- decisions


class DecisionError(ValueError):
    """A ``--decision`` that cannot be used (bad syntax, unknown step, wrong value)."""


@dataclass(frozen=True)
class Decision:
    """An answer to the next wait of human step ``step``.

    ``value`` is ``"approve"``, ``"reject"``, ``"reject:<step>"`` or a JSON object.
    """

    step: str
    value: str | dict[str, Any]


def parse_value(text: str) -> str | dict[str, Any]:
    """``approve``, ``reject``, ``reject:<step>`` or a JSON object; raise ``DecisionError``."""
    text = text.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DecisionError(
                f"not a valid JSON object: {exc.msg} (column {exc.colno})"
            ) from None
        if not isinstance(data, dict):  # pragma: no cover - "{" always starts an object
            raise DecisionError("expected a JSON object")
        return data
    if text in ("approve", "reject"):
        return text
    if text.startswith("reject:"):
        target = text[len("reject:") :].strip()
        if not target:
            raise DecisionError("reject: needs the step to roll back to, like reject:draft")
        return f"reject:{target}"
    raise DecisionError(
        f"unknown decision {text!r}: expected approve, reject, reject:<step> or a JSON object"
    )


def parse_decision(text: str) -> Decision:
    """Parse ``STEP=VALUE`` (``review=approve``, ``fix={"note": "x"}``)."""
    step, sep, value = text.partition("=")
    step = step.strip()
    if not sep or not step:
        raise DecisionError(f"--decision {text!r}: expected STEP=VALUE, like review=approve")
    if not value.strip():
        raise DecisionError(f"--decision {text!r}: the value is empty")
    try:
        return Decision(step, parse_value(value))
    except DecisionError as exc:
        raise DecisionError(f"--decision {text!r}: {exc}") from None


def _human_spec(step: Any) -> tuple[str, list[str], dict[str, Any] | None] | None:
    """``(kind, rollback_to, form_schema)`` of a human step; None for other steps."""
    if isinstance(step, models.ApprovalStep):
        return "approval", list(step.approval.rollback_to), None
    if isinstance(step, models.HumanTaskStep):
        return "human_task", [], step.human_task.form_schema
    if isinstance(step, models.PauseStep):
        return "pause", [], None
    return None


def check_value(
    value: str | dict[str, Any],
    kind: str,
    rollback_to: Sequence[str],
    form_schema: dict[str, Any] | None,
) -> str | None:
    """Why ``value`` cannot answer a wait of this kind, or None when it can."""
    if kind == "pause":
        return None
    if kind == "approval":
        if isinstance(value, dict):
            return "an approval is answered with approve, reject or reject:<step>, not form data"
        if value.startswith("reject:"):
            target = value.split(":", 1)[1]
            if target not in rollback_to:
                allowed = ", ".join(rollback_to) if rollback_to else "none (no rollback_to)"
                return f"cannot roll back to {target!r}: the rollback targets are {allowed}"
        return None
    # human_task
    if value == "reject":
        return None
    if isinstance(value, str):
        if value == "approve" and not form_schema:
            return None
        return f"a human_task is answered with its form data as a JSON object (or reject), not {value!r}"
    if form_schema:
        problem = schema_problem(value, form_schema)
        if problem:
            return f"the form data does not match form_schema: {problem}"
    return None


def check_decisions(workflow: models.Workflow, decisions: Iterable[Decision]) -> None:
    """Raise ``DecisionError`` listing every decision that cannot answer its step."""
    steps = {s.id: s for s in workflow.all_steps()}
    problems = []
    for d in decisions:
        step = steps.get(d.step)
        if step is None:
            problems.append(f"--decision {d.step}: the workflow has no step {d.step!r}")
            continue
        spec = _human_spec(step)
        if spec is None:
            problems.append(
                f"--decision {d.step}: step {d.step} is a {step.kind} step, not a human step "
                "(approval, human_task or pause)"
            )
            continue
        problem = check_value(d.value, *spec)
        if problem:
            problems.append(f"--decision {d.step}: {problem}")
    if problems:
        raise DecisionError("\n".join(problems))


# --------------------------------------------------------------------------- results


@dataclass
class Progress:
    """One thing that happened to a step: started, succeeded, failed, skipped, retrying,
    waiting or answered. ``detail`` is the error, the attempt or the decision."""

    step: str
    event: str
    detail: str | None = None


@dataclass
class RunResult:
    status: str  # SUCCEEDED | FAILED | TIMED_OUT | ABORTED | WAITING
    output: Any = None
    error: str | None = None
    cause: str | None = None
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    execution_arn: str = ""
    #: The waits nobody answered (status WAITING).
    waiting: list[HumanWait] = field(default_factory=list)
    #: State transitions the execution took (every state entered), as Step Functions bills.
    transitions: int = 0

    def to_json(self) -> dict[str, Any]:
        """What ``loopline run --json`` prints."""
        return {
            "status": self.status,
            "output": self.output,
            "error": self.error,
            "cause": self.cause,
            "steps": self.steps,
        }


def decode_cause(cause: str | None) -> str | None:
    """A Lambda error's cause is ``{"errorType", "errorMessage"}``: keep the message."""
    if not cause:
        return cause
    try:
        data = json.loads(cause)
    except ValueError:
        return cause
    if isinstance(data, dict) and "errorMessage" in data:
        return str(data["errorMessage"])
    return cause


# --------------------------------------------------------------------------- history


_FAILURES = {
    "TaskFailed",
    "TaskTimedOut",
    "TaskStartFailed",
    "TaskSubmitFailed",
    "LambdaFunctionFailed",
    "LambdaFunctionTimedOut",
    "LambdaFunctionStartFailed",
    "LambdaFunctionScheduleFailed",
    "MapStateFailed",
    "ParallelStateFailed",
    "MapStateAborted",
    "ParallelStateAborted",
}
_TASK_ENDS = {"TaskSucceeded", *_FAILURES}
_EXECUTION_ENDS = {
    "ExecutionSucceeded",
    "ExecutionFailed",
    "ExecutionTimedOut",
    "ExecutionAborted",
}


def iter_states(definition: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every state of a definition, nested Map and Parallel states included."""
    for name, state in (definition.get("States") or {}).items():
        yield name, state
        for key in ("ItemProcessor", "Iterator"):
            if isinstance(state.get(key), dict):
                yield from iter_states(state[key])
        for branch in state.get("Branches") or []:
            yield from iter_states(branch)


def _details(event: dict[str, Any]) -> dict[str, Any]:
    for key, value in event.items():
        if key.endswith("EventDetails") and isinstance(value, dict):
            return value
    return {}


@dataclass
class _Entry:
    """One entering of a step's own state (or of ``<id>.done``)."""

    step: str
    name: str
    scheduled: int = 0
    failed: str | None = None


class Tracker:
    """Follows an execution's history: step statuses, start counts, progress events."""

    def __init__(
        self,
        definition: dict[str, Any],
        step_ids: Iterable[str] | None = None,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> None:
        self.types: dict[str, str] = {}
        for name, state in iter_states(definition):
            self.types[name] = str(state.get("Type"))
        if step_ids is None:
            step_ids = {n.split(".")[0] for n in self.types if not n.startswith("_")}
        self.step_ids = set(step_ids)
        self.on_progress = on_progress
        self.events: dict[int, dict[str, Any]] = {}
        self.last_id = 0
        self.steps: dict[str, dict[str, Any]] = {}
        self.entries: dict[int, _Entry] = {}  # StateEntered event id → entry
        self.tokens: dict[str, int] = {}  # task token → TaskScheduled event id
        self.dead_tokens: set[str] = set()
        self._owner: dict[int, int | None] = {}
        self._scheduled_token: dict[int, str] = {}
        self.errors: dict[str, str] = {}  # step → its latest failure
        self.announced: set[str] = set()  # tokens of waits reported as waiting

    # ------------------------------------------------------------------ helpers

    def _mode(self, step: str) -> str | None:
        if step in self.types:
            return "task" if self.types[step] == "Task" else "entered"
        if f"{step}.done" in self.types:
            return "done"
        return None

    def _emit(self, step: str, event: str, detail: str | None = None) -> None:
        if self.on_progress is not None:
            self.on_progress(Progress(step, event, detail))

    def _record(self, step: str) -> dict[str, Any]:
        return self.steps.setdefault(step, {"status": "running", "starts": 0})

    def owner(self, event_id: int) -> int | None:
        """The id of the StateEntered event of the state ``event_id`` belongs to."""
        if event_id in self._owner:
            return self._owner[event_id]
        chain = []
        current: int | None = event_id
        found: int | None = None
        while current:
            if current in self._owner:
                found = self._owner[current]
                break
            ev = self.events.get(current)
            if ev is None:
                break
            chain.append(current)
            if str(ev["type"]).endswith("StateEntered"):
                found = current
                break
            current = ev.get("previousEventId")
        for c in chain:
            self._owner[c] = found
        return found

    def _walk_back(self, event_id: int, types: set[str]) -> int | None:
        current: int | None = self.events[event_id].get("previousEventId")
        while current:
            ev = self.events.get(current)
            if ev is None:
                return None
            if ev["type"] in types:
                return current
            current = ev.get("previousEventId")
        return None

    def _state_name(self, entered_id: int | None) -> str | None:
        if entered_id is None:
            return None
        return _details(self.events[entered_id]).get("name")

    # ------------------------------------------------------------------ feeding

    def feed(self, events: Iterable[dict[str, Any]]) -> None:
        """Process the events not seen yet (the history so far, in any length)."""
        for ev in sorted(events, key=lambda e: int(e["id"])):
            eid = int(ev["id"])
            if eid <= self.last_id:
                continue
            self.events[eid] = ev
            self.last_id = eid
            self._handle(eid, ev)

    def _handle(self, eid: int, ev: dict[str, Any]) -> None:
        etype = str(ev["type"])
        det = _details(ev)
        if etype.endswith("StateEntered"):
            self._entered(eid, str(det.get("name", "")))
        elif etype.endswith("StateExited"):
            self._exited(eid, str(det.get("name", "")))
        elif etype == "TaskScheduled":
            self._scheduled(eid, det)
        elif etype == "TaskSubmitted":
            entry = self.entries.get(self.owner(eid) or -1)
            sched = self._walk_back(eid, {"TaskScheduled"})
            token = self._scheduled_token.get(sched or -1)
            if entry is not None and entry.name == entry.step and token not in self.dead_tokens:
                self.announce_wait(entry.step, token)
        elif etype in _FAILURES:
            self._failed(eid, etype, det)
        elif etype in _EXECUTION_ENDS:
            self._execution_end(etype)
        if etype in _TASK_ENDS:
            sched = self._walk_back(eid, {"TaskScheduled"})
            token = self._scheduled_token.get(sched or -1)
            if token:
                self.dead_tokens.add(token)

    def _entered(self, eid: int, name: str) -> None:
        if not name or name.startswith("_"):
            return
        step, _, role = name.partition(".")
        if step not in self.step_ids:
            return
        mode = self._mode(step)
        if name == step:
            self.entries[eid] = _Entry(step, name)
            rec = self._record(step)
            rec["status"] = "running"
            if mode == "entered":
                rec["starts"] += 1
            self._emit(step, "started")
        elif role == "skip":
            rec = self._record(step)
            rec["status"] = "skipped"
            self._emit(step, "skipped")
        elif role == "done":
            self.entries[eid] = _Entry(step, name)
            rec = self._record(step)
            if mode == "done":
                rec["starts"] += 1

    def _exited(self, eid: int, name: str) -> None:
        step = name.split(".")[0]
        if step not in self.step_ids or name.startswith("_"):
            return
        entry = self.entries.get(self.owner(eid) or -1)
        has_done = f"{step}.done" in self.types
        rec = self._record(step)
        if entry is not None and entry.failed is not None:
            rec["status"] = "failed"
            self._emit(step, "failed", entry.failed)
        elif name == f"{step}.done" or (name == step and not has_done):
            rec["status"] = "succeeded"
            self._emit(step, "succeeded")

    def _scheduled(self, eid: int, det: dict[str, Any]) -> None:
        if "waitForTaskToken" in str(det.get("resource", "")):
            try:
                params = json.loads(det.get("parameters") or "{}")
                token = (params.get("Payload") or {}).get("token")
            except (ValueError, AttributeError):
                token = None
            if isinstance(token, str):
                self.tokens[token] = eid
                self._scheduled_token[eid] = token
        owner = self.owner(eid)
        entry = self.entries.get(owner or -1)
        if entry is None or entry.name != entry.step:
            return
        rec = self._record(entry.step)
        if self._mode(entry.step) == "task":
            rec["starts"] += 1
        entry.scheduled += 1
        if entry.scheduled > 1:
            rec["status"] = "running"
            self._emit(entry.step, "retrying", f"attempt {entry.scheduled} after {entry.failed}")
        entry.failed = None

    def _failed(self, eid: int, etype: str, det: dict[str, Any]) -> None:
        error = det.get("error") or ("States.Timeout" if "TimedOut" in etype else etype)
        cause = decode_cause(det.get("cause"))
        text = f"{error}: {cause}" if cause else str(error)
        owner = self.owner(eid)
        if etype.startswith(("Map", "Parallel")):
            prefix = (
                etype[: -len("StateFailed")]
                if etype.endswith("Failed")
                else etype[: -len("StateAborted")]
            )
            owner = self._walk_back(eid, {f"{prefix}StateEntered"})
        entry = self.entries.get(owner or -1)
        if entry is None:
            return
        entry.failed = text
        self.errors[entry.step] = text

    def _execution_end(self, etype: str) -> None:
        ok = etype == "ExecutionSucceeded"
        for step, rec in self.steps.items():
            if rec["status"] in ("running", "waiting"):
                rec["status"] = "succeeded" if ok else "failed"
                self._emit(step, rec["status"], None if ok else self.errors.get(step))

    def announce_wait(self, step: str, token: str | None) -> None:
        """Step ``step`` waits for a person (reported once per token).

        The wait shows in the inbox as soon as the function ran, and in the history once
        the task is submitted; whichever comes first announces it."""
        if token is not None and token in self.announced:
            return
        if token is not None:
            self.announced.add(token)
        self._record(step)["status"] = "waiting"
        self._emit(step, "waiting")

    def is_live(self, token: str) -> bool:
        """False once the task that received ``token`` has ended (answered, timed out)."""
        return token not in self.dead_tokens


# --------------------------------------------------------------------------- asking a person


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # pragma: no cover - no user name in some containers
        return "local"


def print_progress(p: Progress) -> None:
    """The CLI's progress lines on stderr."""
    marks = {
        "started": "..",
        "succeeded": "ok",
        "failed": "!!",
        "skipped": "--",
        "retrying": "<>",
        "waiting": "??",
        "answered": "=>",
    }
    line = f"  {marks.get(p.event, '  ')} {p.step} {p.event}"
    if p.detail:
        line += f": {p.detail}"
    print(line, file=sys.stderr, flush=True)


def terminal_ask(wait: HumanWait) -> str | dict[str, Any] | None:
    """Ask on the terminal how to answer ``wait``; None (empty line, EOF) stops the run."""
    out = sys.stderr
    print(f"\n{wait.step} is waiting for a person ({wait.kind}).", file=out)
    if wait.instruction:
        print(f"  {wait.instruction}", file=out)
    for key, value in wait.context.items():
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        print(f"  {key}: {shown}", file=out)
    if wait.problem:
        print(f"  (not accepted: {wait.problem})", file=out)
    if wait.kind == "approval":
        hint = "approve, reject" + "".join(f", reject:{t}" for t in wait.rollback_to)
    elif wait.kind == "human_task":
        hint = "form data as a JSON object, or reject"
        if wait.form_schema:
            hint += f"; schema: {json.dumps(wait.form_schema)}"
    else:
        hint = "anything to resume"
    print(f"  answer ({hint}; empty to stop): ", end="", file=out, flush=True)
    try:
        line = input()
    except EOFError:
        return None
    return line.strip() or None


# --------------------------------------------------------------------------- running


Ask = Callable[[HumanWait], "str | dict[str, Any] | None"]


def _load_model(llm_script: Any) -> Model | None:
    """The scripted model of ``llm_script``; without one, the provider the settings name."""
    if llm_script is None:
        model = provider_for(settings())
        if isinstance(model, BedrockModel):
            model.connect()  # its credentials are the caller's, not the local stack's fakes
        return model
    if isinstance(llm_script, ScriptedModel):
        return llm_script
    if isinstance(llm_script, (str, FsPath)):
        return ScriptedModel.from_file(llm_script)
    return ScriptedModel.from_data(llm_script)


def _answer(ex: LocalExecutor, wait: HumanWait, value: str | dict[str, Any]) -> str:
    """Send ``value`` for ``wait``; returns a short description of the answer."""
    if wait.kind == "pause":
        ex.send_task_success(wait.token, {"output": value if isinstance(value, dict) else {}})
        return "resumed"
    if value == "approve" and wait.kind == "approval":
        ex.send_task_success(
            wait.token,
            {"output": {"approved": True, "by": _user(), "comment": None, "at": _now_iso()}},
        )
        return "approved"
    if value == "approve":  # a human_task without a form
        ex.send_task_success(wait.token, {"output": {}})
        return "submitted"
    if value == "reject":
        ex.send_task_failure(
            wait.token, "Loopline.Rejected", f"rejected by {_user()} at step {wait.step}"
        )
        return "rejected"
    if isinstance(value, str) and value.startswith("reject:"):
        target = value.split(":", 1)[1]
        ex.send_task_failure(
            wait.token,
            f"Loopline.Rollback.{target}",
            f"rejected by {_user()} at step {wait.step}, rolling back to {target}",
        )
        return f"rejected, rolling back to {target}"
    ex.send_task_success(wait.token, {"output": value})
    return "submitted"


def run_workflow(
    definition: dict[str, Any] | str,
    workflow: models.Workflow | None,
    inputs: dict[str, Any],
    *,
    llm_script: Any = None,
    decisions: Sequence[Decision] = (),
    ask: Ask | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    poll: float = 0.05,
    functions: dict[str, Callable[[Any, Any], Any]] | None = None,
    max_asks: int = 3,
    expire_within: float = 5.0,
    template: str | FsPath | None = None,
) -> RunResult:
    """Run ``definition`` on the local stack with ``inputs`` and report the outcome.

    ``llm_script`` is a scripted-model file (path), its parsed data, or a ``ScriptedModel``;
    without it, model calls go to the provider the ``LOOPLINE_LLM_*`` settings name.
    Each decision answers the next wait of its step, in order; a wait with no decision left
    goes to ``ask`` (when given) or ends the run with status ``WAITING``. ``functions``
    registers extra local functions (custom step types) by name. A wait with no decision
    left whose ``timeout`` is at most ``expire_within`` seconds is neither asked about nor
    stopped at: it is left to time out, so its ``on_timeout`` applies.
    With ``template`` (a SAM ``template.yaml``), the local stack is what it declares: its
    tables, bucket, queues, topics, functions (the handlers its ``CodeUri``/``Handler``
    name, with their environment) and state machines; without it, the six Loopline
    functions of ``functions/``.
    Raise ``DecisionError`` when a decision cannot answer its step, before anything runs.
    """
    model = _load_model(llm_script)
    if workflow is not None:
        check_decisions(workflow, decisions)
    queues: dict[str, list[str | dict[str, Any]]] = {}
    for d in decisions:
        queues.setdefault(d.step, []).append(d.value)
    defn = json.loads(definition) if isinstance(definition, str) else definition
    step_ids = [s.id for s in workflow.all_steps()] if workflow is not None else None
    tracker = Tracker(defn, step_ids, on_progress)
    env = Env(model=model)
    name = workflow.name if workflow is not None else "loopline-local"

    stack = LocalStack.load(template) if template is not None else None
    with LocalExecutor(env=env, loopline_functions=stack is None) as ex, _provisioned(stack, ex):
        for fname, fn in (functions or {}).items():
            # A custom step type names its function by template logical id: ${<Id>Arn}.
            ex.register_function(fname, fn, placeholder=f"{fname}Arn")
        sm = ex.create_state_machine(name, defn)
        arn = ex.start_execution(sm, inputs)
        while True:
            tracker.feed(ex.history(arn))
            desc = ex.describe(arn)
            if desc["status"] != "RUNNING":
                tracker.feed(ex.history(arn))
                return _result(desc, tracker, arn, env.bucket)
            pending = env.inbox.pending()
            if pending:
                # Report what happened before the wait (its history may lag the inbox).
                tracker.feed(ex.history(arn))
            for wait in pending:
                if not tracker.is_live(wait.token):
                    env.inbox.take(wait.token)
                    continue
                tracker.announce_wait(wait.step, wait.token)
                if not queues.get(wait.step) and _expires_soon(wait, expire_within):
                    continue  # nobody could answer in time: let its on_timeout apply
                value = _decide(wait, queues, ask, max_asks)
                if value is None:
                    return _waiting(ex, arn, tracker, env.inbox.pending())
                env.inbox.take(wait.token)
                what = _answer(ex, wait, value)
                if on_progress is not None:
                    on_progress(Progress(wait.step, "answered", what))
            env.inbox.wait_for_new(poll)


@contextmanager
def _provisioned(stack: LocalStack | None, ex: LocalExecutor) -> Iterator[None]:
    if stack is None:
        yield
        return
    try:
        stack.provision(ex)
        yield
    finally:
        stack.restore_environment()


def _expires_soon(wait: HumanWait, within: float) -> bool:
    timeout = wait.timeout
    return isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and timeout <= within


def _decide(
    wait: HumanWait,
    queues: dict[str, list[str | dict[str, Any]]],
    ask: Ask | None,
    max_asks: int,
) -> str | dict[str, Any] | None:
    queue = queues.get(wait.step)
    if queue:
        value = queue.pop(0)
        problem = check_value(value, wait.kind, wait.rollback_to, wait.form_schema)
        if problem:
            raise DecisionError(f"--decision {wait.step}: {problem}")
        return value
    if ask is None:
        return None
    for _ in range(max_asks):
        answer = ask(wait)
        if answer is None:
            return None
        try:
            value = parse_value(answer) if isinstance(answer, str) else answer
        except DecisionError as exc:
            wait.problem = str(exc)
            continue
        problem = check_value(value, wait.kind, wait.rollback_to, wait.form_schema)
        if problem is None:
            wait.problem = None
            return value
        wait.problem = problem
    raise DecisionError(f"{wait.step}: no usable answer after {max_asks} tries ({wait.problem})")


def _waiting(ex: LocalExecutor, arn: str, tracker: Tracker, waits: list[HumanWait]) -> RunResult:
    """The result of a run that stops at ``waits`` (the execution stays blocked on them)."""
    tracker.feed(ex.history(arn))
    for wait in waits:
        tracker.steps.setdefault(wait.step, {"status": "waiting", "starts": 0})
        tracker.steps[wait.step]["status"] = "waiting"
    result = _result(ex.describe(arn), tracker, arn, ex.env.bucket)
    result.status = "WAITING"
    result.waiting = waits
    return result


def _result(
    desc: dict[str, Any], tracker: Tracker, arn: str, bucket: str | None = None
) -> RunResult:
    status = str(desc["status"])
    output = None
    if desc.get("output") is not None:
        try:
            output = json.loads(desc["output"])
        except ValueError:
            output = desc["output"]
        try:  # large values in the output are references to moto S3: show the values
            output = largevalues.resolve(output, bucket)
        except StepError:
            log.debug("could not resolve the large values of the output", exc_info=True)
    error = desc.get("error")
    cause = desc.get("cause")
    if status in ("FAILED", "TIMED_OUT", "ABORTED") and not error:
        for ev in reversed(list(tracker.events.values())):
            if ev["type"] in _EXECUTION_ENDS:
                det = _details(ev)
                error, cause = det.get("error"), det.get("cause")
                break
        if status == "TIMED_OUT" and not error:
            error = "States.Timeout"
    return RunResult(
        status=status,
        output=output,
        error=error,
        cause=decode_cause(cause),
        steps={k: dict(v) for k, v in sorted(tracker.steps.items())},
        execution_arn=arn,
        transitions=sum(1 for ev in tracker.events.values() if ev["type"].endswith("StateEntered")),
    )


__all__ = [
    "Decision",
    "DecisionError",
    "Progress",
    "RunResult",
    "Tracker",
    "check_decisions",
    "decode_cause",
    "parse_decision",
    "print_progress",
    "run_workflow",
    "terminal_ask",
]
