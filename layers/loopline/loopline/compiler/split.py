"""A definition too large for one state machine → a parent and child state machines.

Step Functions accepts a definition of at most 1 MiB (``DEFINITION_LIMIT``), measured on
what is deployed: the compact text (``compact``) with every ``${Placeholder}`` replaced by
an ARN. ``split`` carves the top-level states of a larger definition into consecutive
*parts*. The parent makes the state document (``_init``) and then runs each part as a
child state machine, one after the other, with
``arn:aws:states:::states:startExecution.sync:2``:

- **Where it cuts.** Only between steps (before a step's first state, all of whose ways
  in come from other steps or from ``_init``), before a state ``e`` on the way to the
  definition's end that every path to the rest goes through and that nothing after it
  leaves: every state reachable from ``e`` is dominated by ``e`` (a ``goto`` or rollback
  back over the cut, or a jump over it, forbids it). Each part then has one way in (its
  first state) and one way out (the next part's first state), and the state document is
  whole there. Children are filled in order up to the limit; a stretch that no cut
  divides and that is over the limit alone cannot be split (``SplitError``).
- **Names.** A workflow's state machine ``N`` has children ``N--part-2``, ``N--part-3``…
  (``suffix``). The parent names each child from its own ARN
  (``States.Format('{}--part-2', $$.StateMachine.Id)``), so it holds no ARN to fill in
  and deploys wherever its children are deployed beside it under those names.
- **State.** A child gets the state document with only the records of the steps it and
  the parts after it read that earlier parts wrote (found in their paths,
  ``$.steps.<id>``): ``{"state": …}``; its first states (``_part.enter``,
  ``_part.state``) add ``{}`` for its own steps and the steps it reads that have not run,
  as ``_init`` made them. It returns the state document it ends with and the parent
  carries on with that (``OutputPath: $.Output``), so references to earlier steps work
  across the cut while the state stays small (a call's result holds the child's input
  and output: both must fit in 256 KB). The last child's output is the workflow's output.
- **The execution.** Lambda payloads name the execution (``$$.Execution.Id``): the task
  a step belongs to, its human tasks, its large values. In a child that is the parent's
  id, passed as ``AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID`` (which also links the two
  executions in the console) and read from ``$$.Execution.Input``.
- **Failures.** A child that fails fails its task with ``States.TaskFailed``, its cause
  the child's description as JSON; the parent reads it (``_part.caught``) and fails with
  the child's own error and cause (``_part.failed``), as the unsplit machine would. Any
  other error of the task fails the parent as it is. A Fail state cannot raise a name of
  Step Functions' own: a ``States.…`` error (a runtime error, a data limit) fails the
  parent with ``Loopline.Failed``, the cause ``States.…: <cause>``.
- **Early ends.** A ``succeed`` step (a ``Succeed`` state, or a state with ``End``) in a
  child that is not the last ends that child with ``{"_succeeded": OUTPUT}``; the parent
  then succeeds with ``OUTPUT`` (``_part.succeeded``) instead of running the next part.

State names of the top level are kept in every part; the states the split adds start
with ``_part`` (no step's). ``loopline.history.SplitHistory`` reads a parent's execution
with its children's as one history, and ``loopline.history.joined`` the parts as one
definition.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from loopline.compiler.compile import DEFINITION_LIMIT, compact, dumps, targets

#: The integration a parent runs its children with.
START_CHILD = "arn:aws:states:::states:startExecution.sync:2"
#: The input field that carries the parent's execution id (Step Functions links the
#: executions in the console by it).
PARENT_EXECUTION = "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID"
#: A Lambda function ARN with a name of the most characters (64) takes this many bytes;
#: every ``${Placeholder}`` counts as one in ``deployed_size``.
ARN_BYTES = 120
#: Where a child reads its parent's execution id.
_CHILD_EXECUTION = f"$$.Execution.Input.{PARENT_EXECUTION}"
#: How a child marks an early end: its output is ``{SUCCEEDED: OUTPUT}``.
SUCCEEDED = "_succeeded"
_PLACEHOLDER = re.compile(r"\$\{[A-Za-z0-9_.:-]+\}")
_PLACEHOLDER_BYTES = re.compile(_PLACEHOLDER.pattern.encode())
#: A step's record read or written by a path (``$.steps.<id>``), in compact JSON.
_STEP_PATH_BYTES = re.compile(rb"\$\.steps\.([A-Za-z0-9_-]+)")
_EXECUTION = re.compile(r"\$\$\.Execution\.(\w+)")
#: State types that may end a machine with ``End`` (the others need a state to go to).
_MAY_END = {"Task", "Pass", "Map", "Parallel", "Wait"}


class SplitError(Exception):
    """The definition cannot be split into machines under the limit; says why."""

    def __init__(self, message: str, state: str | None = None) -> None:
        super().__init__(message)
        self.message, self.state = message, state


@dataclass
class Part:
    """One child state machine: deployed as ``<parent's name><suffix>``."""

    suffix: str
    definition: dict[str, Any]
    #: Its canonical text for review (``dumps``).
    text: str

    @property
    def deployed(self) -> str:
        """The text that is deployed (``compact``)."""
        return compact(self.definition)


def suffix(n: int) -> str:
    """The name suffix of part ``n`` (2, 3…): ``--part-n``."""
    return f"--part-{n}"


def part_file(path: str, part_suffix: str) -> str:
    """Where a child is written beside its parent's file: ``out.asl.json`` →
    ``out--part-2.asl.json`` (``out.json`` → ``out--part-2.json``)."""
    for ending in (".asl.json", ".json"):
        if path.endswith(ending):
            return path[: -len(ending)] + part_suffix + ending
    return path + part_suffix


def deployed_size(text: str) -> int:
    """The bytes of ``text`` once deployed: UTF-8, each ``${Placeholder}`` an ARN."""
    size = len(text.encode())
    if "${" not in text:
        return size
    for m in _PLACEHOLDER.finditer(text):
        size += ARN_BYTES - len(m.group(0))
    return size


def size_of(definition: dict[str, Any]) -> int:
    """``deployed_size`` of a definition as deployed (``compact``)."""
    return deployed_size(compact(definition))


# --------------------------------------------------------------------------- the graph


def _step(name: str) -> str:
    """The step id in a state's name (docs/internals.md, "State names")."""
    return name.split(".")[0]


#: The fields of a state that name other states besides ``Next``.
_BRANCHING = frozenset({"Choices", "Default", "Catch"})


def _successors(state: dict[str, Any]) -> list[str]:
    """The states ``state`` goes to, each once, in ``targets`` order."""
    return list(dict.fromkeys(targets(state)))


class _Graph:
    """The top-level states as a graph: dominators and where it may be cut."""

    def __init__(self, definition: dict[str, Any], early_ends: Collection[str] = ()) -> None:
        self.states: dict[str, dict[str, Any]] = definition["States"]
        #: States that end the workflow early (``succeed`` steps), not its way to the end.
        self.early_ends = frozenset(early_ends)
        self.start: str = definition["StartAt"]
        self.succ = {
            n: [s["Next"]] if "Next" in s and not _BRANCHING.intersection(s) else _successors(s)
            for n, s in self.states.items()
        }
        self.order = self._reverse_postorder()
        self.preds: dict[str, list[str]] = {n: [] for n in self.order}
        for n in self.order:
            for t in self.succ[n]:
                self.preds[t].append(n)
        self.idom = self._dominators()
        self.children: dict[str, list[str]] = {n: [] for n in self.order}
        for n in self.order:
            if n != self.start:
                self.children[self.idom[n]].append(n)
        self.tin: dict[str, int] = {}
        self.tout: dict[str, int] = {}
        self._number()
        self.cuttable = self._cuttable()

    def _reverse_postorder(self) -> list[str]:
        post: list[str] = []
        seen = {self.start}
        stack: list[tuple[str, Iterator[str]]] = [(self.start, iter(self.succ[self.start]))]
        while stack:
            node, it = stack[-1]
            for nxt in it:
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, iter(self.succ[nxt])))
                    break
            else:
                stack.pop()
                post.append(node)
        return post[::-1]

    def _dominators(self) -> dict[str, str]:
        """Immediate dominators (Cooper, Harvey and Kennedy's iteration over the
        reverse postorder)."""
        rank = {n: i for i, n in enumerate(self.order)}
        preds = self.preds
        idom: dict[str, str] = {self.start: self.start}

        def intersect(a: str, b: str) -> str:
            while a != b:
                while rank[a] > rank[b]:
                    a = idom[a]
                while rank[b] > rank[a]:
                    b = idom[b]
            return a

        changed = True
        while changed:
            changed = False
            for n in self.order[1:]:
                new = ""
                for p in preds[n]:
                    if p in idom:
                        new = intersect(p, new) if new else p
                if idom.get(n) != new:
                    idom[n] = new
                    changed = True
        return idom

    def _number(self) -> None:
        clock = 0
        stack: list[tuple[str, Iterator[str]]] = [(self.start, iter(self.children[self.start]))]
        self.tin[self.start] = clock
        while stack:
            node, it = stack[-1]
            child = next(it, None)
            if child is None:
                stack.pop()
                clock += 1
                self.tout[node] = clock
            else:
                clock += 1
                self.tin[child] = clock
                stack.append((child, iter(self.children[child])))

    def dominates(self, a: str, b: str) -> bool:
        return self.tin[a] <= self.tin[b] and self.tout[b] <= self.tout[a]

    def _cuttable(self) -> set[str]:
        """States a part may start at: nothing they lead to is entered any other way.

        An edge ``u → v`` rules out every dominator of ``u`` (``u`` included) that does
        not dominate ``v``: cut there, and the edge would leave the part for a state
        before it, or jump past the next cut."""
        bad: set[str] = set()
        tin, tout, idom = self.tin, self.tout, self.idom
        for u in self.order:
            for v in self.succ[u]:
                w = u
                while not (tin[w] <= tin[v] and tout[v] <= tout[w]):  # w dominates v
                    bad.add(w)
                    w = idom[w]
        preds = self.preds
        # Between steps only: before the first state of a step (or a state of no step,
        # the output), all of whose ways in come from states of other steps or from the
        # state that makes the state document. There the document is whole (no step's
        # scratch is pending).
        document = _document(self.states)
        maker = document[0] if document else None

        def between(p: str, n: str) -> bool:
            return p == maker or (not p.startswith("_") and _step(p) != _step(n))

        cuttable = {
            n
            for n in self.order
            if n not in bad
            and n != self.start
            and preds[n]
            and all(between(p, n) for p in preds[n])
        }
        # Only on the way to the end (``End``): a cut on a side way (before a Fail, say)
        # would make a part of what runs only when things go wrong.
        ends = [n for n in self.order if self.states[n].get("End") and n not in self.early_ends]
        if ends:
            last = ends[0]
            for n in ends[1:]:
                while not self.dominates(last, n):
                    last = self.idom[last]
            cuttable = {n for n in cuttable if self.dominates(n, last)}
        return cuttable

    def subtree(self, root: str) -> list[str]:
        """``root`` and the states it dominates, in reverse postorder."""
        lo, hi = self.tin[root], self.tout[root]
        return [n for n in self.order if lo <= self.tin[n] and self.tout[n] <= hi]


# --------------------------------------------------------------------------- cutting


@dataclass(slots=True)
class _Measured:
    """One top-level state as the split sees it, from one serialisation of it."""

    #: The state as a child runs it (``_parent_execution``).
    in_child: dict[str, Any]
    #: What it adds to a child's deployed size: ``"name":STATE,``.
    size: int
    #: The steps it (and the states inside it) belongs to.
    steps: set[str]
    #: The steps whose records it reads (``$.steps.<id>``).
    reads: set[str]


#: How a Lambda task of the compiler names its execution (``compile.lambda_task``).
_TASK_EXECUTION = b'"execution.$":"$$.Execution.Id"'
_TASK_EXECUTION_GROWS = len(_CHILD_EXECUTION) - len("$$.Execution.Id")


def _measure(name: str, state: dict[str, Any]) -> _Measured:
    raw = orjson.dumps(state)
    child, size = state, len(raw)
    if b"$$.Execution." in raw:
        params = state.get("Parameters")
        if (
            raw.count(b"$$.Execution.") == 1
            and _TASK_EXECUTION in raw
            and isinstance(params, dict)
            and params.get("execution.$") == "$$.Execution.Id"
        ):
            # A Lambda task's one reference (most states that read it): no reparse.
            child = {**state, "Parameters": {**params, "execution.$": _CHILD_EXECUTION}}
            size += _TASK_EXECUTION_GROWS
        else:
            child, raw = _parent_execution(name, state, raw.decode())
            size = len(raw)
    if b"${" in raw:
        size += sum(ARN_BYTES - len(p) for p in _PLACEHOLDER_BYTES.findall(raw))
    reads = {m.decode() for m in _STEP_PATH_BYTES.findall(raw)} if b"$.steps." in raw else set()
    if state.get("Type") in ("Map", "Parallel"):
        steps = {_step(n) for n in (name, *_nested_names(state)) if not n.startswith("_")}
    else:
        steps = set() if name.startswith("_") else {_step(name)}
    size += len(orjson.dumps(name)) + 2  # "name": before, "," after
    return _Measured(child, size, steps, reads)


def _cuts(graph: _Graph, sizes: dict[str, int], room: int) -> list[str]:
    """The first states of parts 2, 3…: the parent keeps what comes before the first place
    a part may start (making the state document, and the steps no cut can divide from
    it); each child is as large as it may be (``room`` bytes of states)."""
    below: dict[str, int] = {}
    for n in reversed(graph.order):  # children before their dominator
        below[n] = sizes[n] + sum(below[c] for c in graph.children[n])
    rank = {n: i for i, n in enumerate(graph.order)}
    candidates = sorted(graph.cuttable, key=lambda n: (below[n], rank[n]))
    if not candidates:
        raise SplitError(
            "there is no place to split it: a goto, a rollback or a loop crosses every "
            "place between its steps",
            graph.start,
        )
    top = candidates[-1]  # the earliest: every other place is after it
    cuts = [top]
    while below[top] > room:
        need = below[top] - room
        inside = [
            c for c in candidates if c != top and graph.dominates(top, c) and below[c] >= need
        ]
        if not inside:
            where = f"step {_step(top)}" if not top.startswith("_") else f"state {top}"
            raise SplitError(
                f"from {where} on there is no place to end a part of at most "
                f"{room / 1024:,.0f} KB: a goto, a rollback or a loop crosses every place, "
                "or a single step is larger than that",
                top,
            )
        top = inside[0]
        cuts.append(top)
    return cuts


def _redirect(state: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    """``state`` with every transition to ``old`` going to ``new``."""
    out = dict(state)
    if out.get("Next") == old:
        out["Next"] = new
    if out.get("Default") == old:
        out["Default"] = new
    if "Choices" in out:
        out["Choices"] = [{**r, "Next": new} if r.get("Next") == old else r for r in out["Choices"]]
    if "Catch" in out:
        out["Catch"] = [{**c, "Next": new} if c.get("Next") == old else c for c in out["Catch"]]
    return out


def _string_start(text: str, at: int) -> int:
    """Where the JSON string around ``text[at]`` starts (its opening quote)."""
    q = text.rfind('"', 0, at)
    while q > 0:
        slashes = 0
        while text[q - 1 - slashes] == "\\":
            slashes += 1
        if slashes % 2 == 0:
            return q
        q = text.rfind('"', 0, q)
    return q


def _parent_execution(name: str, state: dict[str, Any], text: str) -> tuple[dict[str, Any], bytes]:
    """``state`` (``text``: its compact JSON) reading the parent's execution id (from the
    child's input) where it read its own: in the values of ``.$`` keys (paths and
    intrinsic functions), and its compact JSON. The same object when it reads none."""
    at = text.find("$$.Execution.")
    if at < 0:
        return state, text.encode()
    parts: list[str] = []
    done = 0
    while at >= 0:
        start = _string_start(text, at)
        # Compact JSON: a path is the value of a key ending in ".$": `"key.$":"…`.
        if text[start - 4 : start] == '.$":':
            m = _EXECUTION.match(text, at)
            field = m.group(1) if m else ""
            if field != "Id":
                raise SplitError(
                    f"internal: state {name!r} reads $$.Execution.{field}, which a child "
                    "execution does not share with its parent",
                    name,
                )
            parts += [text[done:at], _CHILD_EXECUTION]
            done = at + len("$$.Execution.Id")
        at = text.find("$$.Execution.", at + 1)
    if not parts:
        return state, text.encode()
    raw = ("".join(parts) + text[done:]).encode()
    out: dict[str, Any] = orjson.loads(raw)
    return out, raw


def _child(
    states_of: dict[str, dict[str, Any]],
    names: list[str],
    entry: str,
    exit_: str | None,
    comment: str,
    extra: dict[str, Any],
    fresh: _Fresh | None = None,
    succ: dict[str, list[str]] | None = None,
) -> tuple[dict[str, Any], bool]:
    """The definition of one child: ``names`` (its states, ``entry`` first), leaving to
    ``exit_`` (the next part's first state; None for the last part); ``fresh`` adds the
    records of its steps, as they are before they run, to the state it gets; ``succ``
    (``_Graph.succ``) where each state goes. Returns it and whether it may end early (a
    ``succeed`` before the last part)."""
    states: dict[str, dict[str, Any]] = {}
    if fresh is None or not fresh.records:
        states["_part.enter"] = {"Type": "Pass", "InputPath": "$.state", "Next": entry}
    else:
        states["_part.enter"] = {
            "Type": "Pass",
            "Result": fresh.records,
            "ResultPath": "$.fresh",
            "Next": "_part.state",
        }
        states["_part.state"] = {
            "Type": "Pass",
            "Parameters": {
                f"{k}.$": "States.JsonMerge($.fresh, $.state.steps, false)"
                if k == "steps"
                else f"$.state.{k}"
                for k in fresh.keys
            },
            "Next": entry,
        }
    early = False
    needs_exit = False
    for name in names:
        state = states_of[name]
        if exit_ is not None:
            if state.get("Type") == "Succeed":
                early = True
                state = {
                    "Type": "Pass",
                    **{k: state[k] for k in ("InputPath", "OutputPath") if k in state},
                    "Next": "_part.ended",
                }
            elif state.get("End"):
                early = True
                state = {k: v for k, v in state.items() if k != "End"}
                state["Next"] = "_part.ended"
            if exit_ in (succ[name] if succ is not None else set(targets(state))):
                if state.get("Next") == exit_ and state["Type"] in _MAY_END:
                    state = {k: v for k, v in state.items() if k != "Next"}
                    state["End"] = True
                if exit_ in set(targets(state)):
                    needs_exit = True
                    state = _redirect(state, exit_, "_part.exit")
        states[name] = state
    if needs_exit:
        states["_part.exit"] = {"Type": "Pass", "End": True}
    if early:
        states["_part.ended"] = {
            "Type": "Pass",
            "Parameters": {f"{SUCCEEDED}.$": "$"},
            "End": True,
        }
    return {"Comment": comment, **extra, "StartAt": "_part.enter", "States": states}, early


def _present(path: str) -> dict[str, Any]:
    return {"Variable": path, "IsPresent": True}


def _reserved(path: str) -> dict[str, Any]:
    return {"Variable": path, "StringMatches": "States.*"}


def _caught_states() -> dict[str, dict[str, Any]]:
    """The parent's states that fail it as its child failed: with the child's own error
    and cause. A Fail state cannot raise a name of Step Functions' own (``States.…``):
    such an error (a child's or the call's) fails it with ``Loopline.Failed`` and the
    cause ``<error>: <cause>``."""
    both = "States.Format('{}: {}', $.Error, $.Cause)"
    child_both = "States.Format('{}: {}', $.child.execution.Error, $.child.execution.Cause)"
    return {
        "_part.caught": {
            "Type": "Choice",
            "Choices": [
                {
                    "And": [
                        {"Variable": "$.Error", "StringEquals": "States.TaskFailed"},
                        _present("$.Cause"),
                        {"Variable": "$.Cause", "StringMatches": "{*}"},
                    ],
                    "Next": "_part.child",
                },
                {"And": [_reserved("$.Error"), _present("$.Cause")], "Next": "_part.reserved"},
                {**_reserved("$.Error"), "Next": "_part.reserved.nocause"},
                {**_present("$.Cause"), "Next": "_part.rethrow"},
            ],
            "Default": "_part.rethrow.nocause",
        },
        "_part.child": {
            "Type": "Pass",
            "Parameters": {"execution.$": "States.StringToJson($.Cause)"},
            "ResultPath": "$.child",
            "Next": "_part.failed",
        },
        "_part.failed": {
            "Type": "Choice",
            "Choices": [
                {
                    "And": [
                        _present("$.child.execution.Error"),
                        _reserved("$.child.execution.Error"),
                        _present("$.child.execution.Cause"),
                    ],
                    "Next": "_part.failed.reserved",
                },
                {
                    "And": [
                        _present("$.child.execution.Error"),
                        _reserved("$.child.execution.Error"),
                    ],
                    "Next": "_part.failed.reserved.nocause",
                },
                {
                    "And": [
                        _present("$.child.execution.Error"),
                        _present("$.child.execution.Cause"),
                    ],
                    "Next": "_part.failed.cause",
                },
                {**_present("$.child.execution.Error"), "Next": "_part.failed.nocause"},
            ],
            "Default": "_part.failed.ended",
        },
        "_part.failed.cause": {
            "Type": "Fail",
            "ErrorPath": "$.child.execution.Error",
            "CausePath": "$.child.execution.Cause",
        },
        "_part.failed.nocause": {"Type": "Fail", "ErrorPath": "$.child.execution.Error"},
        "_part.failed.reserved": {
            "Type": "Fail",
            "Error": "Loopline.Failed",
            "CausePath": child_both,
        },
        "_part.failed.reserved.nocause": {
            "Type": "Fail",
            "Error": "Loopline.Failed",
            "CausePath": "$.child.execution.Error",
        },
        "_part.failed.ended": {
            "Type": "Fail",
            "Error": "Loopline.Failed",
            "CausePath": "States.Format('part of the workflow ended {}', $.child.execution.Status)",
        },
        "_part.reserved": {"Type": "Fail", "Error": "Loopline.Failed", "CausePath": both},
        "_part.reserved.nocause": {
            "Type": "Fail",
            "Error": "Loopline.Failed",
            "CausePath": "$.Error",
        },
        "_part.rethrow": {"Type": "Fail", "ErrorPath": "$.Error", "CausePath": "$.Cause"},
        "_part.rethrow.nocause": {"Type": "Fail", "ErrorPath": "$.Error"},
    }


def _call(n: int, nxt: str | None, state_input: dict[str, Any] | None) -> dict[str, Any]:
    """The parent's task that runs child ``n`` with ``state_input`` (None: the whole
    state) and goes on to ``nxt``."""
    state: dict[str, Any] = {
        "Type": "Task",
        "Resource": START_CHILD,
        "Parameters": {
            "StateMachineArn.$": f"States.Format('{{}}{suffix(n)}', $$.StateMachine.Id)",
            "Input": {
                **({"state.$": "$"} if state_input is None else {"state": state_input}),
                f"{PARENT_EXECUTION}.$": "$$.Execution.Id",
            },
        },
        "OutputPath": "$.Output",
        "Retry": [
            {
                "ErrorEquals": ["StepFunctions.ExecutionLimitExceeded"],
                "IntervalSeconds": 1,
                "MaxAttempts": 5,
                "BackoffRate": 2,
            }
        ],
        "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "_part.caught"}],
    }
    if nxt is None:
        state["End"] = True
    else:
        state["Next"] = nxt
    return state


def _document(states: dict[str, dict[str, Any]]) -> tuple[str, list[str], list[str]] | None:
    """The state that makes the state document (whose ``Parameters`` hold a record for
    every step: ``_init``), the document's keys and every step id; None when none does."""
    for name, state in states.items():
        params = state.get("Parameters")
        if state.get("Type") == "Pass" and isinstance(params, dict):
            steps = params.get("steps")
            if isinstance(steps, dict):
                keys = [k.removesuffix(".$") for k in params]
                return name, keys, list(steps)
    return None


def _nested_names(state: dict[str, Any]) -> Iterator[str]:
    for key in ("ItemProcessor", "Iterator"):
        if isinstance(state.get(key), dict):
            for name, inner in state[key].get("States", {}).items():
                yield name
                yield from _nested_names(inner)
    for branch in state.get("Branches", ()):
        for name, inner in branch.get("States", {}).items():
            yield name
            yield from _nested_names(inner)


@dataclass
class _Fresh:
    """The records a child adds to the state it gets: its own steps' and those it reads
    that have not run, ``{}`` as at the start (``keys``: the state document's keys)."""

    keys: list[str]
    records: dict[str, Any]


def _inputs(
    graph: _Graph, measured: dict[str, _Measured], segments: list[list[str]]
) -> list[tuple[dict[str, Any] | None, _Fresh | None]]:
    """What the parent gives each child (``segments[1:]``) and what the child adds: the
    state document with only the records that child and the ones after it read. A record
    an earlier part wrote is passed on while a later part reads it; the records of steps
    that have not run are made by the child. So the state (and the result of a call,
    which holds the child's input and output) stays small however many steps came
    before."""
    document = _document(graph.states)
    if document is None:
        return [(None, None)] * (len(segments) - 1)
    _, keys, ids = document
    known = set(ids)
    owned: list[set[str]] = []
    reads: list[set[str]] = []
    taken: set[str] = set()
    for names in segments:
        mine: set[str] = set()
        read: set[str] = set()
        for name in names:
            mine |= measured[name].steps
            read |= measured[name].reads
        mine &= known
        owned.append(mine - taken)
        taken |= mine
        reads.append(read & known)
    out: list[tuple[dict[str, Any] | None, _Fresh | None]] = []
    for m in range(1, len(segments)):
        before = set().union(*owned[:m])
        later = set().union(*reads[m:])
        passed = {f"{sid}.$": f"$.steps.{sid}" for sid in ids if sid in before and sid in later}
        fresh: dict[str, Any] = {
            sid: {} for sid in ids if sid in owned[m] or (sid in reads[m] and sid not in before)
        }
        given = {f"{k}.$": f"$.{k}" for k in keys if k != "steps"}
        out.append(({**given, "steps": passed}, _Fresh(keys, fresh)))
    return out


def _build(
    definition: dict[str, Any],
    graph: _Graph,
    measured: dict[str, _Measured],
    cuts: list[str],
) -> tuple[dict[str, Any], list[Part]]:
    comment = str(definition.get("Comment", ""))
    extra = {
        k: v
        for k, v in definition.items()
        if k not in ("Comment", "StartAt", "States", "TimeoutSeconds")
    }
    segments: list[list[str]] = []
    taken: set[str] = set()
    for top in [graph.start, *cuts][::-1]:
        inside = set(graph.subtree(top)) - taken
        taken |= inside
        # In the order of the definition (the order states run in).
        segments.append([n for n in graph.states if n in inside])
    segments.reverse()
    total = len(segments)
    inputs = _inputs(graph, measured, segments)
    in_child = {name: m.in_child for name, m in measured.items()}
    children: list[Part] = []
    early_ends: list[bool] = []
    for i, names in enumerate(segments[1:], start=1):
        exit_ = cuts[i] if i < len(cuts) else None
        child, early = _child(
            in_child,
            names,
            cuts[i - 1],
            exit_,
            f"{comment} (part {i + 1} of {total})".strip(),
            extra,
            inputs[i - 1][1],
            graph.succ,
        )
        text = dumps(child)
        if len(text.encode()) > DEFINITION_LIMIT:  # as the parent's file: compact then
            text = compact(child) + "\n"
        children.append(Part(suffix(i + 1), child, text))
        early_ends.append(early)
    # The parent: the first part, then each child in turn.
    states: dict[str, dict[str, Any]] = {}
    first_call = "_part-2"
    for name in segments[0]:
        states[name] = _redirect(graph.states[name], cuts[0], first_call)
    for i, early in enumerate(early_ends):
        n = i + 2
        nxt = f"_part-{n + 1}" if n < total else None
        if early:
            states[f"_part-{n}"] = _call(n, f"_part-{n}.ended", inputs[i][0])
            # Only a child before the last may end early: ``nxt`` is a call.
            states[f"_part-{n}.ended"] = {
                "Type": "Choice",
                "Choices": [
                    {"Variable": f"$.{SUCCEEDED}", "IsPresent": True, "Next": "_part.succeeded"}
                ],
                "Default": str(nxt),
            }
        else:
            states[f"_part-{n}"] = _call(n, nxt, inputs[i][0])
    if any(early_ends):
        states["_part.succeeded"] = {"Type": "Succeed", "OutputPath": f"$.{SUCCEEDED}"}
    states.update(_caught_states())
    parent = {k: v for k, v in definition.items() if k not in ("StartAt", "States")}
    parent["StartAt"] = definition["StartAt"]
    parent["States"] = states
    return parent, children


def split(
    definition: dict[str, Any],
    *,
    limit: int = DEFINITION_LIMIT,
    size: Callable[[dict[str, Any]], int] = size_of,
    early_ends: Collection[str] = (),
    whole: int | None = None,
) -> tuple[dict[str, Any], list[Part]]:
    """``definition`` as a parent and its children, each at most ``limit`` bytes
    (``size``). ``early_ends`` names the states of ``succeed`` steps: a state with
    ``End`` that ends the workflow before its way to the end does; ``whole`` is the
    definition's size when the caller measured it. A definition within the limit is
    returned as it is, with no children. Raise ``SplitError`` when no cut makes the parts
    small enough."""
    if whole is None:
        whole = size(definition)
    if whole <= limit:
        return definition, []
    graph = _Graph(definition, early_ends)
    # The states as a child runs them (the larger: sizes are measured on them).
    measured = {name: _measure(name, state) for name, state in graph.states.items()}
    sizes = {name: m.size for name, m in measured.items()}
    # A child adds a record for each of its steps to the state it gets (``_Fresh``):
    # counted with the first state of the step, so parts are cut to fit with them.
    document = _document(graph.states)
    if document is not None:
        ids = set(document[2])
        for name in graph.states:
            for sid in measured[name].steps & ids:
                sizes[name] += len(orjson.dumps(sid)) + 4  # "sid":{},
                ids.discard(sid)
    # Room for the states of a child: the limit less what the split adds to it (its way
    # in and out), corrected by what the parts measure once built.
    comment = str(definition.get("Comment", ""))
    skeleton, _ = _child(
        {}, [], "x", "y", f"{comment} (part 99 of 99)", {}, _Fresh(["steps"], {"x": {}})
    )
    skeleton["States"]["_part.exit"] = {"Type": "Pass", "End": True}
    skeleton["States"]["_part.ended"] = {"Type": "Pass", "End": True}
    room = limit - size(skeleton)
    for _ in range(8):
        if room <= 0:
            break
        cuts = _cuts(graph, sizes, room)
        parent, children = _build(definition, graph, measured, cuts)
        over_parent = size(parent) - limit
        if over_parent > 0:
            raise SplitError(
                f"its parent state machine would be {size(parent) / 1024:,.0f} KB: what comes "
                "before the first place to split it and the calls of its parts are too large"
            )
        over = max(size(c.definition) for c in children) - limit
        if over <= 0:
            return parent, children
        room -= over + limit // 100
    raise SplitError(f"no split keeps every part under {limit:,} bytes")


__all__ = [
    "PARENT_EXECUTION",
    "START_CHILD",
    "Part",
    "SplitError",
    "deployed_size",
    "part_file",
    "size_of",
    "split",
    "suffix",
]
