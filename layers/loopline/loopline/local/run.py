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
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path as FsPath
from typing import Any

from loopline import jsontext, store
from loopline.dsl import models
from loopline.history import (
    EXECUTION_ENDS,
    Progress,
    SplitHistory,
    Tracker,
    decode_cause,
    details,
    joined,
)
from loopline.local.executor import LocalExecutor
from loopline.local.template import LocalStack
from loopline.runtime import largevalues
from loopline.runtime.actions import Env, schema_problem
from loopline.runtime.errors import StepError
from loopline.runtime.model import Model
from loopline.runtime.providers import provider_for
from loopline.runtime.providers.bedrock import BedrockModel
from loopline.runtime.scripted import ScriptedModel
from loopline.service import humans
from loopline.service.errors import ServiceError
from loopline.settings import settings

log = logging.getLogger("loopline.local")

# --------------------------------------------------------------------------- decisions


class DecisionError(ValueError):
    """A ``--decision`` that cannot be used (bad syntax, unknown step, wrong value)."""


@dataclass(frozen=True)
class Decision:
    """An answer to the next wait of human step ``step``.

    ``value`` is ``"approve"``, ``"reject"``, ``"reject:<step>"`` or a JSON object;
    ``comment`` is the reviewer's comment (``approve # looks good``), if any.
    """

    step: str
    value: str | dict[str, Any]
    comment: str | None = None


def parse_answer(text: str) -> tuple[str | dict[str, Any], str | None]:
    """``approve``, ``reject`` or ``reject:<step>``, each optionally followed by
    ``# <comment>``, or a JSON object: ``(value, comment)``; raise ``DecisionError``."""
    text = text.strip()
    if text.startswith("{"):
        try:
            data = jsontext.loads(text, "the JSON object")
        except jsontext.JsonTextError as exc:
            raise DecisionError(str(exc)) from None
        if not isinstance(data, dict):  # pragma: no cover - "{" always starts an object
            raise DecisionError("expected a JSON object")
        return data, None
    text, sep, note = text.partition("#")
    text, comment = text.strip(), (note.strip() or None) if sep else None
    if text in ("approve", "reject"):
        return text, comment
    if text.startswith("reject:"):
        target = text[len("reject:") :].strip()
        if not target:
            raise DecisionError("reject: needs the step to roll back to, like reject:draft")
        return f"reject:{target}", comment
    raise DecisionError(
        f"unknown decision {text!r}: expected approve, reject, reject:<step> (each may be "
        "followed by # and a comment) or a JSON object"
    )


def parse_value(text: str) -> str | dict[str, Any]:
    """The value of an answer (see ``parse_answer``), without its comment."""
    return parse_answer(text)[0]


def parse_decision(text: str) -> Decision:
    """Parse ``STEP=VALUE`` (``review=approve``, ``review=reject # too vague``,
    ``fix={"note": "x"}``)."""
    shown = repr(text if len(text) <= 80 else text[:60] + "..." + text[-10:])
    step, sep, value = text.partition("=")
    step = step.strip()
    if not sep or not step:
        raise DecisionError(f"--decision {shown}: expected STEP=VALUE, like review=approve")
    if not value.strip():
        raise DecisionError(f"--decision {shown}: the value is empty")
    try:
        answer, comment = parse_answer(value)
    except DecisionError as exc:
        raise DecisionError(f"--decision {shown}: {exc}") from None
    return Decision(step, answer, comment)


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


# --------------------------------------------------------------------------- waits


@dataclass
class HumanWait:
    """A human task of the run, as the person answering it sees it (``loopline.service.
    humans`` keeps the record; ``token`` stays in this process, for following the run)."""

    human_task: str
    token: str
    tenant: str
    workflow: str
    step: str
    kind: str  # approval | human_task | pause
    instruction: str | None = None
    assignee: dict[str, Any] | None = None
    context: dict[str, Any] = field(default_factory=dict)
    form_schema: dict[str, Any] | None = None
    rollback_to: list[str] = field(default_factory=list)
    timeout: int | None = None
    escalated: bool = False
    created_at: str = ""
    expires_at: str = ""
    #: Set by whoever asks a person when their previous answer was refused.
    problem: str | None = None

    @classmethod
    def of(cls, record: dict[str, Any]) -> HumanWait:
        shown = humans.view(record)
        return cls(
            human_task=str(record["id"]),
            token=str(record.get("task_token") or ""),
            tenant=str(record.get("tenant") or humans.RUN_TENANT),
            workflow=str(record.get("workflow") or ""),
            step=str(record.get("step") or ""),
            kind=str(record.get("kind") or "approval"),
            instruction=record.get("instruction"),
            assignee=shown["assignee"],
            context=dict(record.get("context") or {}),
            form_schema=record.get("form_schema"),
            rollback_to=list(record.get("rollback_to") or []),
            timeout=record.get("timeout"),
            escalated=bool(record.get("escalated")),
            created_at=str(record.get("created_at") or ""),
            expires_at=str(record.get("due_at") or ""),
        )

    def to_dict(self) -> dict[str, Any]:
        """What ``--json`` shows of a wait (never its token)."""
        out = {k: v for k, v in self.__dict__.items() if k not in ("token", "tenant")}
        return out


def open_waits(execution: str) -> list[HumanWait]:
    """The open human tasks of the run's execution, oldest first."""
    return [
        HumanWait.of(r)
        for r in store.list_task_human_tasks(execution)
        if r.get("status") == humans.OPEN
    ]


# --------------------------------------------------------------------------- results


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
    #: Decisions no wait used (their step never waited, or waited fewer times).
    unused_decisions: list[Decision] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """What ``loopline run --json`` prints."""
        return {
            "status": self.status,
            "output": self.output,
            "error": self.error,
            "cause": self.cause,
            "steps": self.steps,
        }


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
        "aborted": "xx",
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
        hint += "; add a comment after #, like: reject # needs sources"
    elif wait.kind == "human_task":
        hint = "form data as a JSON object, or reject (# comment)"
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


def load_model(llm_script: Any) -> Model | None:
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


def answer_wait(wait: HumanWait, value: str | dict[str, Any], comment: str | None = None) -> str:
    """Decide ``wait`` with ``value`` (and the person's ``comment``) through the same
    domain function as the API, links and Slack; returns a short description."""
    said = f": {comment}" if comment else ""
    rollback = None
    data: Any
    if wait.kind == "pause":
        action, data, what = "complete", None, "resumed"
    elif value == "approve" and wait.kind == "approval":
        action, data, what = "approve", None, f"approved{said}"
    elif value == "approve":  # a human_task without a form
        action, data, what = "complete", {}, "submitted"
    elif value == "reject":
        action, data, what = "reject", None, f"rejected{said}"
    elif isinstance(value, str) and value.startswith("reject:"):
        rollback = value.split(":", 1)[1]
        action, data, what = "reject", None, f"rejected, rolling back to {rollback}{said}"
    else:
        action, data, what = "complete", value, "submitted"
    actor = humans.Actor(wait.tenant, _user(), admin=True)
    try:
        humans.decide(
            wait.human_task,
            action,
            actor=actor,
            via="cli",
            comment=comment,
            rollback_to=rollback,
            data=data,
        )
    except ServiceError as exc:
        problems = "; ".join(f"{e.field}: {e.message}" for e in exc.errors)
        raise DecisionError(
            f"{wait.step}: {exc.detail}" + (f" ({problems})" if problems else "")
        ) from None
    return what


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
    children: Sequence[Any] = (),
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
    name, with their environment), state machines and EventBridge rules (the execution's
    status events reach the rules' functions before this returns); without it, the six
    Loopline functions of ``functions/``.
    ``children`` are the child state machines of a split workflow
    (``CompileResult.children``; ``definition`` is then the parent): each is created as
    ``<name>--part-N`` before the parent, and the run reports their steps as its own.
    Raise ``DecisionError`` when a decision cannot answer its step, before anything runs.
    """
    model = load_model(llm_script)
    if workflow is not None:
        check_decisions(workflow, decisions)
    queues: dict[str, list[Decision]] = {}
    for d in decisions:
        queues.setdefault(d.step, []).append(d)
    defn = json.loads(definition) if isinstance(definition, str) else definition
    tracker = Tracker(
        joined([defn, *(part.definition for part in children)]), workflow, on_progress
    )
    env = Env(model=model)
    name = workflow.name if workflow is not None else "loopline-local"

    stack = LocalStack.load(template) if template is not None else None
    with LocalExecutor(env=env, loopline_functions=stack is None) as ex, _provisioned(stack, ex):
        for fname, fn in (functions or {}).items():
            # A custom step type names its function by template logical id: ${<Id>Arn}.
            ex.register_function(fname, fn, placeholder=f"{fname}Arn")
        # Named as the stack names its state machines, so the template's rules (the
        # status events one) take this execution's events as they would in AWS.
        sm_name = f"{stack.stack_name}-{name}" if stack is not None else name
        # A split workflow's children first, named after the parent, which finds them so.
        for part in children:
            ex.create_state_machine(sm_name + part.suffix, part.definition)
        sm = ex.create_state_machine(sm_name, defn)
        run_name = uuid.uuid4().hex
        # Large input values go to the bucket and travel by reference, like large outputs.
        sent = largevalues.offload_inputs(
            inputs, workflow=name, execution=run_name, bucket=env.bucket
        )
        arn = ex.start_execution(sm, sent, name=run_name)
        # The events of the execution not read yet, with its child executions' in place
        # when split.
        history: Callable[[], list[dict[str, Any]]] = (
            SplitHistory(ex.history_after, arn)
            if children
            else (lambda: ex.history_after(arn, tracker.last_id))
        )
        #: Tokens of waits left to time out (not asked about again).
        left: set[str] = set()
        follow = _Follow(ex, arn, tracker, history)
        while True:
            desc = follow()
            if desc is not None:
                tracker.feed(history())  # added meanwhile
                ex.drain()  # the status events reached the rules' functions
                return _result(desc, tracker, arn, env.bucket, queues)
            # Only while the history shows a wait on a task token (no table reads else).
            live = set(tracker.tokens) - tracker.dead_tokens - left
            pending = [w for w in open_waits(run_name) if w.token not in left] if live else []
            if pending:
                # Report what happened before the wait (its history may lag the record).
                tracker.feed(history())
            for wait in pending:
                if not tracker.is_live(wait.token):
                    left.add(wait.token)  # timed out: its on_timeout applies
                    continue
                tracker.announce_wait(wait.step, wait.token)
                if not queues.get(wait.step) and _expires_soon(wait, expire_within):
                    left.add(wait.token)  # nobody could answer in time: let it time out
                    continue
                answer = _decide(wait, queues, ask, max_asks)
                if answer is None:
                    ex.drain()
                    return _waiting(ex, arn, tracker, open_waits(run_name), queues, history)
                what = answer_wait(wait, *answer)
                if on_progress is not None:
                    on_progress(Progress(wait.step, "answered", what))
            time.sleep(poll)


#: Seconds between status checks of an execution whose history shows no end yet.
STATUS_EVERY = 1.0


class _Follow:
    """One poll of the run's execution: feed the tracker the events since the last it saw
    (``new_events``: ``LocalExecutor.history_after``, or a split workflow's joined
    history), and answer the execution's description once it has
    ended, else None. The status is asked once the history shows the end, and otherwise
    every ``STATUS_EVERY`` seconds only (an end the history would not show), not on
    every poll."""

    def __init__(
        self,
        ex: LocalExecutor,
        arn: str,
        tracker: Tracker,
        new_events: Callable[[], list[dict[str, Any]]],
    ) -> None:
        self.ex, self.arn, self.tracker, self.new_events = ex, arn, tracker, new_events
        self.ended = False
        self.checked = time.monotonic()

    def __call__(self) -> dict[str, Any] | None:
        new = self.new_events()
        self.tracker.feed(new)
        self.ended = self.ended or any(ev["type"] in EXECUTION_ENDS for ev in new)
        now = time.monotonic()
        if not self.ended and now - self.checked < STATUS_EVERY:
            return None
        self.checked = now
        desc = self.ex.describe(self.arn)
        return desc if desc["status"] != "RUNNING" else None


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
    queues: dict[str, list[Decision]],
    ask: Ask | None,
    max_asks: int,
) -> tuple[str | dict[str, Any], str | None] | None:
    """``(value, comment)`` answering ``wait``, or None when nobody answers."""
    queue = queues.get(wait.step)
    if queue:
        decision = queue.pop(0)
        problem = check_value(decision.value, wait.kind, wait.rollback_to, wait.form_schema)
        if problem:
            raise DecisionError(f"--decision {wait.step}: {problem}")
        return decision.value, decision.comment
    if ask is None:
        return None
    for _ in range(max_asks):
        answer = ask(wait)
        if answer is None:
            return None
        try:
            value, comment = parse_answer(answer) if isinstance(answer, str) else (answer, None)
        except DecisionError as exc:
            wait.problem = str(exc)
            continue
        problem = check_value(value, wait.kind, wait.rollback_to, wait.form_schema)
        if problem is None:
            wait.problem = None
            return value, comment
        wait.problem = problem
    raise DecisionError(f"{wait.step}: no usable answer after {max_asks} tries ({wait.problem})")


def _waiting(
    ex: LocalExecutor,
    arn: str,
    tracker: Tracker,
    waits: list[HumanWait],
    queues: dict[str, list[Decision]],
    history: Callable[[], list[dict[str, Any]]],
) -> RunResult:
    """The result of a run that stops at ``waits`` (the execution stays blocked on them)."""
    tracker.feed(history())
    for wait in waits:
        tracker.mark_waiting(wait.step)
    result = _result(ex.describe(arn), tracker, arn, ex.env.bucket, queues)
    result.status = "WAITING"
    result.waiting = waits
    return result


def _result(
    desc: dict[str, Any],
    tracker: Tracker,
    arn: str,
    bucket: str | None = None,
    queues: dict[str, list[Decision]] | None = None,
) -> RunResult:
    status = str(desc["status"])
    output = None
    if desc.get("output") is not None:
        try:
            output = json.loads(desc["output"])
        except (ValueError, RecursionError):
            output = desc["output"]
        try:  # large values in the output are references to moto S3: show the values
            output = largevalues.resolve(output, bucket)
        except StepError:
            log.debug("could not resolve the large values of the output", exc_info=True)
    error = desc.get("error")
    cause = desc.get("cause")
    if status in ("FAILED", "TIMED_OUT", "ABORTED") and not error:
        for ev in reversed(list(tracker.events.values())):
            if ev["type"] in EXECUTION_ENDS:
                det = details(ev)
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
        unused_decisions=[d for q in (queues or {}).values() for d in q],
    )


__all__ = [
    "Decision",
    "DecisionError",
    "HumanWait",
    "Progress",
    "RunResult",
    "Tracker",
    "answer_wait",
    "check_decisions",
    "decode_cause",
    "open_waits",
    "parse_answer",
    "parse_decision",
    "print_progress",
    "run_workflow",
    "terminal_ask",
]
