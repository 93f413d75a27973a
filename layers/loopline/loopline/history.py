"""What happened to each step of an execution, told from its Step Functions history.

``Tracker`` reads history events as they arrive and keeps, per step, a status and a
count of starts, and reports each change as a ``Progress`` event the moment the event
that causes it is read. It relies only on general rules of the compiled state machine
(docs/internals.md, "State names" and "Runtime and local stack"), never on a list of
helper roles:

- The step of a state is ``name.split(".")[0]``; states starting with ``_`` belong to
  no step. Steps nest as in the workflow (a group's, branch's, loop's or parallel's
  steps are its children).
- Each path of execution is a *thread*: the execution itself, each branch of a
  Parallel state, each iteration of a Map state. A thread runs inside the steps of the
  state that holds it (a ``<id>.try`` wrapper, a ``parallel`` or a ``for_each``).
- Entering a state of step X in a thread means X and its ancestors run there: the runs
  that are not X's ancestors end (succeeded), the missing ones start. ``<id>.if`` (and
  ``<id>.if.<more>``) decides about a step without starting it; ``<id>.skip`` skips it. Entering an
  *entry* state of X (one that a state outside X goes to, or where a thread starts)
  while X runs starts X again (a ``goto`` or a rollback to it).
- A failure (a task's error, a Fail state, a failed branch or iteration) belongs to the
  thread; a task scheduled again in the same state is a retry, a Map or Parallel
  started again is a retry of its step. When the thread enters another state instead,
  a ``Catch`` fired: every run that ends there failed, and so does the failing step
  when the catch leads to one of its own states (its error is recorded on the way
  out). The one exception: a human wait that times out hands over to its own
  ``on_timeout`` states, which decide (a ``Fail`` there fails the step; an approval
  approved on timeout succeeds).
- A ``Fail`` state's error and cause are its ``Error``/``Cause``, or what its
  ``ErrorPath``/``CausePath`` reads from the state's input. A state of step X that
  records ``{error, cause}`` as X's output (``ResultPath`` ``$.steps.X.output``) records
  an error of X, raised or not (a ``for_each`` over a value that is not a list, caught
  by ``on_error``): X's run ends failed with it.
- A failed branch or iteration fails its Map or Parallel (and so the step that holds
  it); the branches still running are stopped (``aborted``). A thread ends at a state
  with ``End`` (a branch) or with its iteration; the execution's end ends every run
  left.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from loopline.dsl import models

#: A task's own failure (its state may retry or catch it).
_TASK_FAILURES = {
    "TaskFailed",
    "TaskTimedOut",
    "TaskStartFailed",
    "TaskSubmitFailed",
    "LambdaFunctionFailed",
    "LambdaFunctionTimedOut",
    "LambdaFunctionStartFailed",
    "LambdaFunctionScheduleFailed",
}
_TASK_ENDS = {"TaskSucceeded", "LambdaFunctionSucceeded", *_TASK_FAILURES}
#: Events of a Map or Parallel state as a whole (not of its branches or iterations).
_CONTAINER_EVENTS = {
    f"{kind}State{what}"
    for kind in ("Map", "Parallel")
    for what in ("Started", "Succeeded", "Failed", "Aborted", "Exited")
}
EXECUTION_ENDS = {
    "ExecutionSucceeded",
    "ExecutionFailed",
    "ExecutionTimedOut",
    "ExecutionAborted",
}
#: How a step's runs add up to its status: the first present wins.
_PRECEDENCE = ("waiting", "running", "failed", "aborted", "succeeded", "skipped")


@dataclass
class Progress:
    """One thing that happened to a step: started, succeeded, failed, skipped, retrying,
    waiting, answered or aborted. ``detail`` is the error, the attempt or the decision."""

    step: str
    event: str
    detail: str | None = None
    #: The error and readable cause of a failure (``failed``, and ``retrying`` after one).
    error: str | None = None
    cause: str | None = None


def details(event: dict[str, Any]) -> dict[str, Any]:
    """The ``...EventDetails`` of a history event ({} when it has none)."""
    for key, value in event.items():
        if key.endswith("EventDetails") and isinstance(value, dict):
            return value
    return {}


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


def iter_scopes(
    definition: dict[str, Any], owner: str | None = None
) -> Iterator[tuple[dict[str, Any], str | None]]:
    """Every ``{StartAt, States}`` of a definition with the state that holds it (None for
    the top level), nested Map and Parallel states included."""
    yield definition, owner
    for name, state in (definition.get("States") or {}).items():
        for key in ("ItemProcessor", "Iterator"):
            if isinstance(state.get(key), dict):
                yield from iter_scopes(state[key], name)
        for branch in state.get("Branches") or []:
            if isinstance(branch, dict):
                yield from iter_scopes(branch, name)


def iter_states(definition: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every state of a definition, nested Map and Parallel states included."""
    for scope, _ in iter_scopes(definition):
        yield from (scope.get("States") or {}).items()


def _targets(state: dict[str, Any]) -> Iterator[str]:
    for key in ("Next", "Default"):
        if isinstance(state.get(key), str):
            yield state[key]
    for rule in state.get("Choices") or []:
        if isinstance(rule, dict) and isinstance(rule.get("Next"), str):
            yield rule["Next"]
    for catch in state.get("Catch") or []:
        if isinstance(catch, dict) and isinstance(catch.get("Next"), str):
            yield catch["Next"]


def _records_error(state: dict[str, Any], step: str) -> bool:
    """Does ``state`` record ``{error, cause}`` as the output of ``step``?"""
    if state.get("Type") != "Pass" or state.get("ResultPath") != f"$.steps.{step}.output":
        return False
    written = state.get("Parameters", state.get("Result"))
    if not isinstance(written, dict):
        return False
    return {k.removesuffix(".$") for k in written} == {"error", "cause"}


def _loads(text: Any) -> Any:
    """The JSON value of ``text`` (None when it is not JSON text)."""
    if not isinstance(text, str):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _path_value(data: Any, parts: Iterable[str | int]) -> Any:
    """``data`` at ``parts`` (None when it has no value there)."""
    for part in parts:
        in_list = isinstance(part, int) and isinstance(data, list) and 0 <= part < len(data)
        if not (in_list or (isinstance(data, dict) and part in data)):
            return None
        data = data[part]
    return data


def _fail_error(state: dict[str, Any], state_input: Any) -> tuple[str, str | None]:
    """The error and readable cause of a ``Fail`` state: its ``Error`` and ``Cause``, or
    what its ``ErrorPath`` and ``CausePath`` read from ``state_input`` (JSON text)."""
    error, cause = state.get("Error"), state.get("Cause")
    error_path, cause_path = state.get("ErrorPath"), state.get("CausePath")
    if isinstance(error_path, str) or isinstance(cause_path, str):
        data = _loads(state_input)
        if error is None and isinstance(error_path, str):
            error = _intrinsic(error_path, data)
        if cause is None and isinstance(cause_path, str):
            cause = _intrinsic(cause_path, data)
    return (
        error if isinstance(error, str) and error else "States.Fail",
        decode_cause(cause) if isinstance(cause, str) else None,
    )


#: A reference path's parts: ``.name``, ``[0]``, ``['name']``.
_PATH_PART = re.compile(r"\.([^.\[\]'\s,()]+)|\[(\d+)\]|\['((?:[^'\\]|\\.)*)'\]")


def _intrinsic(text: str, data: Any) -> Any:
    """The value of a reference path (``$.a.b[0]``) or of the intrinsic functions a
    ``Fail`` state's paths use (``States.Format``, ``States.JsonToString``) over ``data``;
    None for anything else."""
    try:
        value, end = _Intrinsic(text, data).value(0)
    except (ValueError, IndexError, StopIteration):
        return None
    return value if end == len(text.rstrip()) else None


class _Intrinsic:
    """A small reader of intrinsic function calls (see ``_intrinsic``)."""

    def __init__(self, text: str, data: Any) -> None:
        self.text, self.data = text, data

    def _skip(self, i: int) -> int:
        while i < len(self.text) and self.text[i].isspace():
            i += 1
        return i

    def value(self, i: int) -> tuple[Any, int]:
        i = self._skip(i)
        if self.text.startswith("$", i):
            return self._path(i)
        if self.text.startswith("'", i):
            raw, i = self._string(i)
            return _unescape(raw), i
        if self.text.startswith("States.", i):
            return self._call(i)
        raise ValueError(f"unsupported at column {i + 1}")

    def _path(self, i: int) -> tuple[Any, int]:
        if self.text.startswith("$$", i):
            raise ValueError("the context object is not in the state's input")
        i += 1
        parts: list[str | int] = []
        while (m := _PATH_PART.match(self.text, i)) is not None:
            name, index, quoted = m.groups()
            parts.append(int(index) if index is not None else _unescape(quoted or name or ""))
            i = m.end()
        return _path_value(self.data, parts), i

    def _string(self, i: int) -> tuple[str, int]:
        """A quoted literal as written (escapes kept) and where it ends."""
        j = i + 1
        while self.text[j] != "'":
            j += 2 if self.text[j] == "\\" else 1
        return self.text[i + 1 : j], j + 1

    def _call(self, i: int) -> tuple[Any, int]:
        open_at = self.text.index("(", i)
        name = self.text[i:open_at].strip()
        i = open_at + 1
        args: list[Any] = []
        raw: list[str | None] = []  # a literal argument as written (States.Format's template)
        i = self._skip(i)
        while not self.text.startswith(")", i):
            at = self._skip(i)
            if self.text.startswith("'", at):
                literal, i = self._string(at)
                args.append(_unescape(literal))
                raw.append(literal)
            else:
                value, i = self.value(at)
                args.append(value)
                raw.append(None)
            i = self._skip(i)
            if self.text.startswith(",", i):
                i += 1
        i += 1
        if name == "States.JsonToString" and len(args) == 1:
            return json.dumps(args[0], ensure_ascii=False, separators=(",", ":")), i
        if name == "States.Format" and args and raw[0] is not None:
            return _format(raw[0], args[1:]), i
        raise ValueError(f"unsupported function {name}")


def _unescape(raw: str) -> str:
    return re.sub(r"\\(.)", r"\1", raw)


def _format(template: str, args: list[Any]) -> str:
    """``States.Format``: each unescaped ``{}`` of ``template`` (as written) takes the next
    argument (text as it is, any other value as JSON)."""
    out: list[str] = []
    rest = iter(args)
    i = 0
    while i < len(template):
        if template[i] == "\\" and i + 1 < len(template):
            out.append(template[i + 1])
            i += 2
        elif template.startswith("{}", i):
            value = next(rest)
            out.append(value if isinstance(value, str) else json.dumps(value))
            i += 2
        else:
            out.append(template[i])
            i += 1
    return "".join(out)


class Shape:
    """What the tracker knows before the execution: states, steps and how they nest."""

    def __init__(self, definition: dict[str, Any], workflow: models.Workflow | None) -> None:
        self.states: dict[str, dict[str, Any]] = dict(iter_states(definition))
        self.parent: dict[str, str | None] = {}
        if workflow is not None:

            def walk(steps: list[Any], parent: str | None) -> None:
                for s in steps:
                    self.parent[s.id] = parent
                    for seq in models.children(s):
                        walk(seq, s.id)

            walk(workflow.steps, None)
        else:  # only the definition: a state nested in another's branches is its child
            for scope, owner in iter_scopes(definition):
                outer = self._name_step(owner) if owner else None
                for name in scope.get("States") or {}:
                    step = self._name_step(name)
                    if step is not None and step != outer:
                        self.parent.setdefault(step, outer)
        self._chains: dict[str, tuple[str, ...]] = {}
        #: States that record an error as their step's output → that step.
        self.records: dict[str, str] = {}
        for name, state in self.states.items():
            step = self.step_of(name)
            if step is not None and _records_error(state, step):
                self.records[name] = step
        self.entries: set[str] = set()
        for scope, _ in iter_scopes(definition):
            states = scope.get("States") or {}
            if isinstance(scope.get("StartAt"), str):
                self.entries.add(scope["StartAt"])
            for name, state in states.items():
                source = self.step_of(name)
                for target in _targets(state):
                    step = self.step_of(target)
                    if step is not None and (source is None or step not in self.chain(source)):
                        self.entries.add(target)

    @staticmethod
    def _name_step(name: str) -> str | None:
        return None if not name or name.startswith("_") else name.split(".")[0]

    def step_of(self, name: str | None) -> str | None:
        """The step a state belongs to (None for ``_`` states and unknown steps)."""
        step = self._name_step(name or "")
        return step if step in self.parent else None

    def chain(self, step: str) -> tuple[str, ...]:
        """``step`` and its ancestors, outermost first."""
        if step not in self._chains:
            parent = self.parent.get(step)
            self._chains[step] = (*(self.chain(parent) if parent else ()), step)
        return self._chains[step]

    def is_wait(self, name: str | None) -> bool:
        state = self.states.get(name or "") or {}
        return state.get("Type") == "Task" and "waitForTaskToken" in str(state.get("Resource"))


@dataclass(eq=False)
class _Failure:
    error: str
    cause: str | None
    state: str | None  # the state where it happened
    event: int = 0

    def text(self) -> str:
        return f"{self.error}: {self.cause}" if self.cause else self.error


@dataclass(eq=False)
class _Run:
    """One run of a step in one thread, from its start to its end."""

    step: str
    thread: _Thread
    status: str = "running"  # running | waiting | succeeded | failed | aborted | skipped
    #: An error caught inside the step: the run ends failed with it.
    failure: _Failure | None = None


@dataclass(eq=False)
class _Container:
    """A Map or Parallel state entered in a thread; its branches/iterations are threads."""

    state: str
    kind: str  # Map | Parallel
    thread: _Thread
    attempt: int = 0
    finished: bool = False
    children: list[_Thread] = field(default_factory=list)


@dataclass(eq=False)
class _Thread:
    """A path of execution: the execution, one Parallel branch, one Map iteration."""

    holder: _Container | None
    base: tuple[str, ...] = ()  # steps that run around this thread (their runs are outside)
    group: Any = None  # runs of a step in threads of one group add up (Map iterations)
    stack: list[_Run] = field(default_factory=list)
    state: str | None = None
    scheduled: int = 0
    token: str | None = None
    failure: _Failure | None = None
    container: _Container | None = None
    ended: bool = False

    @property
    def parent(self) -> _Thread | None:
        return self.holder.thread if self.holder is not None else None


_NO_GROUP = object()


class Tracker:
    """Follows an execution's history: step statuses, start counts, progress events."""

    def __init__(
        self,
        definition: dict[str, Any],
        workflow: models.Workflow | None = None,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> None:
        self.shape = Shape(definition, workflow)
        self.on_progress = on_progress
        self.events: dict[int, dict[str, Any]] = {}
        self.last_id = 0
        #: step → {"status", "starts"}, what ``loopline run --json`` shows.
        self.steps: dict[str, dict[str, Any]] = {}
        self.tokens: dict[str, int] = {}  # task token → TaskScheduled event id
        self.dead_tokens: set[str] = set()
        self.announced: set[str] = set()  # tokens of waits reported as waiting
        self.root = _Thread(None)
        self._threads: list[_Thread] = [self.root]
        self._thread_of: dict[int, _Thread] = {}
        self._runs: dict[str, tuple[Any, dict[_Thread, _Run]]] = {}

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
        det = details(ev)
        thread = self._thread_for(ev, etype, det)
        self._thread_of[eid] = thread
        if etype in EXECUTION_ENDS:
            self._execution_end(etype, det)
            return
        if etype in _TASK_ENDS and thread.token:
            self.dead_tokens.add(thread.token)
        if thread.ended:
            return  # a branch already stopped (its Parallel or Map failed)
        if etype.endswith("StateEntered"):
            self._entered(thread, str(det.get("name", "")), eid)
            if etype == "FailStateEntered":
                state = self.shape.states.get(thread.state or "") or {}
                error, cause = _fail_error(state, det.get("input"))
                thread.failure = _Failure(error, cause, thread.state, eid)
            elif etype == "SucceedStateEntered" and thread is not self.root:
                self._end_thread(thread, "succeeded")
        elif etype in _CONTAINER_EVENTS:
            self._container_event(thread, etype, eid)
        elif etype.endswith("StateExited"):
            name = str(det.get("name", ""))
            if name in self.shape.records:
                self._recorded(thread, self.shape.records[name], name, det.get("output"), eid)
            # Leaving a last state ends its branch, unless the state failed: its Catch
            # may lead on (to an on_timeout state, say), or the branch fails.
            ends = (self.shape.states.get(name) or {}).get("End")
            if thread is not self.root and ends and thread.failure is None:
                self._end_thread(thread, "succeeded")
        elif etype == "MapIterationSucceeded":
            self._end_thread(thread, "succeeded")
        elif etype == "MapIterationFailed":
            self._end_thread(thread, "failed")
        elif etype == "MapIterationAborted":
            self._end_thread(thread, "aborted")
        elif etype in ("TaskScheduled", "LambdaFunctionScheduled"):
            self._scheduled(thread, det)
        elif etype == "TaskSubmitted":
            step = self.shape.step_of(thread.state)
            if step is not None and thread.token not in self.dead_tokens:
                self._announce(thread, step, thread.token)
        elif etype in _TASK_ENDS:
            self._task_end(thread, etype, det, eid)

    def _thread_for(self, ev: dict[str, Any], etype: str, det: dict[str, Any]) -> _Thread:
        prev = int(ev.get("previousEventId") or 0)
        here = self._thread_of.get(prev, self.root)
        if etype in _CONTAINER_EVENTS:
            # The thread whose Map/Parallel this is: where the event chain comes from, or
            # the thread holding the branch it comes from.
            kind = "Map" if etype.startswith("Map") else "Parallel"
            name = det.get("name") if etype.endswith("Exited") else None
            t: _Thread | None = here
            while t is not None:
                c = t.container
                if (
                    c is not None
                    and c.kind == kind
                    and (c.state == name or not (name or c.finished))
                ):
                    return t
                t = t.parent
            return here
        if etype == "MapIterationStarted":
            t = here
            while t is not None and not (
                t.container and t.container.kind == "Map" and not t.container.finished
            ):
                t = t.parent
            if t is not None and t.container is not None:
                return self._new_thread(t.container)
            return here
        prev_ev = self.events.get(prev)
        starts_branch = prev_ev is not None and prev_ev.get("type") == "ParallelStateStarted"
        if starts_branch and here.container is not None:
            return self._new_thread(here.container)
        return here

    def _new_thread(self, container: _Container) -> _Thread:
        step = self.shape.step_of(container.state)
        outer = container.thread.base
        base = self.shape.chain(step) if step else outer
        thread = _Thread(container, base=base, group=(container, container.attempt))
        container.children.append(thread)
        self._threads.append(thread)
        return thread

    # ------------------------------------------------------------------ states

    def _entered(self, thread: _Thread, name: str, eid: int) -> None:
        thread.state, thread.scheduled, thread.token = name, 0, None
        stype = (self.shape.states.get(name) or {}).get("Type")
        thread.container = _Container(name, stype, thread) if stype in ("Map", "Parallel") else None
        failure, thread.failure = thread.failure, None
        step = self.shape.step_of(name)
        failing = self.shape.step_of(failure.state) if failure is not None else None
        if (
            failure is not None
            and failure.error == "States.Timeout"
            and self.shape.is_wait(failure.state)
            and step is not None
            and step == failing
        ):
            failure = None  # a wait that timed out goes to its step's on_timeout states
        role = name.split(".")[1] if step is not None and "." in name else ""
        target: tuple[str, ...] = ()
        if step is not None:
            target = tuple(s for s in self.shape.chain(step) if s not in thread.base)
            if role in ("if", "skip") and target and target[-1] == step:
                target = target[:-1]
            elif name in self.shape.entries:
                # Starting the step again (goto, rollback) ends its current run.
                for i, run in enumerate(thread.stack):
                    if run.step == step:
                        self._close_from(thread, i, failure)
                        break
        keep = 0
        while (
            keep < len(thread.stack)
            and keep < len(target)
            and (thread.stack[keep].step == target[keep])
        ):
            keep += 1
        self._close_from(thread, keep, failure)
        for s in target[keep:]:
            self._open(thread, s)
        if failure is not None and failing is not None:
            # Caught by a state of the failing step itself: it goes on, but it failed.
            caught = self._find_run(thread, failing)
            if caught is not None:
                caught.failure = failure
        if role == "skip" and step is not None:
            self._skip(thread, step)

    def _recorded(self, thread: _Thread, step: str, name: str, output: Any, eid: int) -> None:
        """State ``name`` recorded an error as ``step``'s output: its run fails with it
        (when no caught failure already says so)."""
        run = self._find_run(thread, step)
        if run is None or run.failure is not None:
            return
        record = _path_value(_loads(output), ("steps", step, "output"))
        if not isinstance(record, dict):
            state = self.shape.states.get(name) or {}
            record = state.get("Result") or state.get("Parameters") or {}
        error, cause = record.get("error"), record.get("cause")
        run.failure = _Failure(
            str(error) if isinstance(error, str) else "Loopline.Failed",
            cause if isinstance(cause, str) else None,
            name,
            eid,
        )

    def _close_from(self, thread: _Thread, index: int, failure: _Failure | None) -> None:
        """End the runs of ``thread`` from ``index`` on, innermost first."""
        while len(thread.stack) > index:
            run = thread.stack.pop()
            f = failure or run.failure
            if f is not None:
                self._close(run, "failed", f.text(), f)
            else:
                self._close(run, "succeeded")

    def _end_thread(self, thread: _Thread, outcome: str) -> None:
        if thread.ended:
            return
        thread.ended = True
        while thread.stack:
            run = thread.stack.pop()
            f = (thread.failure if outcome == "failed" else None) or run.failure
            if outcome == "aborted" and f is None:
                self._close(run, "aborted", "stopped")
            elif f is not None:
                self._close(run, "failed", f.text(), f)
            else:
                self._close(run, "succeeded")

    def _find_run(self, thread: _Thread | None, step: str) -> _Run | None:
        """The open run of ``step`` in ``thread`` or around it."""
        while thread is not None:
            for run in reversed(thread.stack):
                if run.step == step:
                    return run
            thread = thread.parent
        return None

    # ------------------------------------------------------------------ tasks

    def _scheduled(self, thread: _Thread, det: dict[str, Any]) -> None:
        thread.scheduled += 1
        if "waitForTaskToken" in str(det.get("resource", "")):
            try:
                params = json.loads(det.get("parameters") or "{}")
                token = (params.get("Payload") or {}).get("token")
            except (ValueError, AttributeError):
                token = None
            if isinstance(token, str):
                thread.token = token
                self.tokens[token] = self.last_id
        failure, thread.failure = thread.failure, None
        if thread.scheduled > 1:
            step = self.shape.step_of(thread.state)
            run = thread.stack[-1] if thread.stack else None
            if run is not None and run.step == step:
                self._retry(run, thread.scheduled, failure)

    def _task_end(self, thread: _Thread, etype: str, det: dict[str, Any], eid: int) -> None:
        run = self._find_run(thread, self.shape.step_of(thread.state) or "")
        if run is not None and run.status == "waiting":
            run.status = "running"
            self._refresh(run.step)
        if etype in _TASK_FAILURES:
            error = det.get("error") or ("States.Timeout" if "TimedOut" in etype else etype)
            thread.failure = _Failure(str(error), decode_cause(det.get("cause")), thread.state, eid)
        else:
            thread.failure = None

    def _retry(self, run: _Run, attempt: int, failure: _Failure | None) -> None:
        self.steps[run.step]["starts"] += 1
        run.status = "running"
        self._refresh(run.step)
        after = f" after {failure.text()}" if failure is not None else ""
        self._emit(run.step, "retrying", f"attempt {attempt}{after}", failure)

    # ------------------------------------------------------------------ Map and Parallel

    def _container_event(self, thread: _Thread, etype: str, eid: int) -> None:
        c = thread.container
        if c is None:
            return
        what = etype.split("State", 1)[1]
        if what == "Started":
            c.attempt += 1
            if c.attempt > 1:  # the state's Retry runs it again
                failure = self._branch_failure(c)
                self._stop_branches(c)
                step = self.shape.step_of(c.state)
                run = thread.stack[-1] if thread.stack else None
                if run is not None and run.step == step:
                    self._retry(run, c.attempt, failure)
        elif what in ("Succeeded", "Failed", "Aborted"):
            c.finished = True
            failure = self._branch_failure(c) if what == "Failed" else None
            self._stop_branches(c, "succeeded" if what == "Succeeded" else "aborted")
            if what == "Failed":
                f = failure or _Failure("States.BranchFailed", None, None)
                thread.failure = _Failure(f.error, f.cause, c.state, eid)

    def _branch_failure(self, c: _Container) -> _Failure | None:
        failures = [t.failure for t in c.children if t.failure is not None]
        return max(failures, key=lambda f: f.event) if failures else None

    def _stop_branches(self, c: _Container, others: str = "aborted") -> None:
        for child in c.children:
            if not child.ended:
                self._end_thread(child, "failed" if child.failure is not None else others)

    # ------------------------------------------------------------------ the end

    def _execution_end(self, etype: str, det: dict[str, Any]) -> None:
        if etype == "ExecutionFailed" and self.root.failure is None:
            error = str(det.get("error") or "States.Runtime")
            self.root.failure = _Failure(error, decode_cause(det.get("cause")), None)
        elif etype == "ExecutionTimedOut":
            self.root.failure = _Failure("States.Timeout", "the execution timed out", None)
        outcome = {"ExecutionSucceeded": "succeeded", "ExecutionAborted": "aborted"}.get(
            etype, "failed"
        )
        left = "succeeded" if outcome == "succeeded" else "aborted"
        for thread in reversed(self._threads):  # innermost first
            if thread is not self.root:
                self._end_thread(thread, "failed" if thread.failure is not None else left)
        self._end_thread(self.root, outcome)

    # ------------------------------------------------------------------ records

    def _open(self, thread: _Thread, step: str) -> None:
        run = _Run(step, thread)
        thread.stack.append(run)
        self.steps.setdefault(step, {"status": "running", "starts": 0})["starts"] += 1
        self._add(run)
        self._emit(step, "started")

    def _skip(self, thread: _Thread, step: str) -> None:
        self.steps.setdefault(step, {"status": "skipped", "starts": 0})
        self._add(_Run(step, thread, status="skipped"))
        self._emit(step, "skipped")

    def _add(self, run: _Run) -> None:
        group, runs = self._runs.get(run.step, (_NO_GROUP, {}))
        if group != run.thread.group:
            runs = {}
        runs[run.thread] = run  # a later run in the same thread replaces the earlier one
        self._runs[run.step] = (run.thread.group, runs)
        self._refresh(run.step)

    def _refresh(self, step: str) -> None:
        _, runs = self._runs.get(step, (None, {}))
        statuses = {r.status for r in runs.values()}
        for status in _PRECEDENCE:
            if status in statuses:
                self.steps[step]["status"] = status
                return

    def _close(
        self, run: _Run, status: str, detail: str | None = None, failure: _Failure | None = None
    ) -> None:
        run.status = status
        self._refresh(run.step)
        self._emit(run.step, status, detail, failure)

    def _emit(
        self, step: str, event: str, detail: str | None = None, failure: _Failure | None = None
    ) -> None:
        if self.on_progress is not None:
            error, cause = (failure.error, failure.cause) if failure is not None else (None, None)
            self.on_progress(Progress(step, event, detail, error, cause))

    # ------------------------------------------------------------------ waits

    def _announce(self, thread: _Thread | None, step: str, token: str | None) -> None:
        if token is not None and token in self.announced:
            return
        if token is not None:
            self.announced.add(token)
        run = self._find_run(thread, step) if thread is not None else self._any_run(step)
        if run is not None:
            run.status = "waiting"
            self._refresh(step)
        else:
            self.steps.setdefault(step, {"status": "waiting", "starts": 0})["status"] = "waiting"
        self._emit(step, "waiting")

    def _any_run(self, step: str) -> _Run | None:
        _, runs = self._runs.get(step, (None, {}))
        open_runs = [r for r in runs.values() if r in r.thread.stack]
        return open_runs[-1] if open_runs else None

    def announce_wait(self, step: str, token: str | None) -> None:
        """Step ``step`` waits for a person (reported once per token).

        The wait shows in the inbox as soon as the function ran, and in the history once
        the task is submitted; whichever comes first announces it."""
        thread = None
        if token is not None and token in self.tokens:
            thread = self._thread_of.get(self.tokens[token])
        self._announce(thread, step, token)

    def mark_waiting(self, step: str) -> None:
        """Step ``step`` is left waiting (the run stops there)."""
        run = self._any_run(step)
        if run is not None:
            run.status = "waiting"
            self._refresh(step)
        else:
            self.steps.setdefault(step, {"status": "waiting", "starts": 0})["status"] = "waiting"

    def is_live(self, token: str) -> bool:
        """False once the task that received ``token`` has ended (answered, timed out)."""
        return token not in self.dead_tokens


# --------------------------------------------------------------------------- split machines

#: The states a split adds (``loopline.compiler.split``): its calls of the children, their
#: failure and early-end handling, a child's way in and out. No step's.
SPLIT_STATES = "_part"


def _child_started(ev: dict[str, Any]) -> str | None:
    """The child execution a ``startExecution.sync`` task started (its TaskSubmitted)."""
    if ev.get("type") != "TaskSubmitted":
        return None
    det = details(ev)
    if det.get("resourceType") != "states" or not str(det.get("resource", "")).startswith(
        "startExecution.sync"
    ):
        return None
    try:
        arn = json.loads(det.get("output") or "{}").get("ExecutionArn")
    except (ValueError, AttributeError):
        return None
    return arn if isinstance(arn, str) else None


def joined(definitions: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """A split workflow's parent and children as one definition, for ``Tracker`` (every
    state of each, the parent's first): not a machine to run."""
    parts = list(definitions)
    states: dict[str, Any] = {}
    for definition in parts:
        for name, state in (definition.get("States") or {}).items():
            states.setdefault(name, state)
    return {**parts[0], "States": states}


@dataclass(eq=False)
class _Reading:
    arn: str
    seen: int = 0
    #: This execution's event id → the id it has in the joined history.
    ids: dict[int, int] = field(default_factory=dict)
    ended: bool = False
    #: In the parent, past its first split state: only its end is kept.
    calling: bool = False


class SplitHistory:
    """One history for an execution of a split workflow, as if one machine had run it.

    ``read(arn, after)`` returns an execution's history events after event ``after`` (or
    all of them: those already read are passed over), oldest first. Each call returns
    the events not returned before: the execution's own until its first split state, then
    the events of each child execution in turn (read from the ``TaskSubmitted`` that
    started it), then the execution's end. The split's own states (``_part…``) and the
    children's starts and ends are left out, so ``Tracker`` sees the workflow's states and
    a failure in a child is the failure of its step. Events are numbered anew, in order;
    ``previousEventId`` points to the event it followed in the joined history. A
    definition that was not split reads as it is."""

    def __init__(self, read: Callable[[str, int], Iterable[dict[str, Any]]], arn: str) -> None:
        self._read = read
        self._stack = [_Reading(arn)]
        self._next = 0
        #: Every child execution read so far, in order.
        self.children: list[str] = []

    def __call__(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            r = self._stack[-1]
            child = self._take(r, out)
            if child is not None:
                self.children.append(child)
                # The child's events follow what came last in the parent.
                start = self._next
                self._stack.append(_Reading(child, ids={0: start, 1: start}))
                continue
            if len(self._stack) == 1:
                return out
            if not r.ended:
                parent = self._stack[-2]
                if not any(int(e["id"]) > parent.seen for e in self._read(parent.arn, parent.seen)):
                    return out  # the child still runs
                self._take(r, out)  # the parent moved on (stopped): the child's last events
            self._stack.pop()

    def _take(self, r: _Reading, out: list[dict[str, Any]]) -> str | None:
        """Append ``r``'s new events; the child execution to read next, if one started."""
        nested = r is not self._stack[0]
        for ev in sorted(self._read(r.arn, r.seen), key=lambda e: int(e["id"])):
            eid = int(ev["id"])
            if eid <= r.seen:
                continue
            r.seen = eid
            prev = r.ids.get(int(ev.get("previousEventId") or 0), self._next)
            etype = str(ev.get("type"))
            name = str(details(ev).get("name", ""))
            if etype.endswith("StateEntered") and name.startswith(SPLIT_STATES) and not nested:
                r.calling = True
            started = _child_started(ev) if r.calling else None
            skip = (
                (nested and etype in EXECUTION_ENDS | {"ExecutionStarted"})
                or (r.calling and etype not in EXECUTION_ENDS)
                or name.startswith(SPLIT_STATES)
            )
            if nested and etype in EXECUTION_ENDS:
                r.ended = True
            if skip:
                r.ids[eid] = prev
            else:
                self._next += 1
                r.ids[eid] = self._next
                out.append({**ev, "id": self._next, "previousEventId": prev})
            if started is not None:
                return started
        return None


__all__ = [
    "EXECUTION_ENDS",
    "Progress",
    "Shape",
    "SplitHistory",
    "Tracker",
    "decode_cause",
    "details",
    "iter_states",
    "joined",
]
