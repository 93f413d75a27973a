"""The compiler: a validated ``Workflow`` → an ASL definition (JSONPath query language).

The shape of what is emitted (the state document, state names, Lambda payloads) is the
contract written in ``docs/internals.md``. The compiler works sequence by sequence, last
step first, so every step knows the state that follows it; each step returns the name of
its first state. Every ASL scope (the top level, each Parallel branch, each Map
processor) is a ``Scope``; when it is finished, the Pass states marked foldable (an
output picked or built, a branch's or an iteration's end) are folded into the states that
lead to them (``Scope.fold``: one transition fewer each time), then a graph pass checks
that every transition names a state of its own scope and drops states nothing can reach
(after ``fail``, say).
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import orjson

from loopline.compiler.choice import ChoiceCompiler, NotNative, Rule
from loopline.compiler.payloads import Reach
from loopline.dsl import models as m
from loopline.dsl.expr import Expr, Path, paths
from loopline.dsl.problems import Loc, Problem, WorkflowInvalid, format_loc
from loopline.dsl.template import Template, template_tree
from loopline.runtime.payload import escape_keys, has_path_key

FUNCTIONS = {
    "llm": "${LlmFunctionArn}",
    "vote_voter": "${LlmFunctionArn}",
    "tool": "${ToolFunctionArn}",
    "http": "${HttpFunctionArn}",
    "task": "${TaskFunctionArn}",
    "human": "${HumanFunctionArn}",
    "eval": "${HelperFunctionArn}",
    "render": "${HelperFunctionArn}",
    "vote_aggregate": "${HelperFunctionArn}",
}
LAMBDA_SERVICE_ERRORS = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
]
#: Built without validation (``model_construct``) so importing the compiler builds no schema.
DEFAULT_RETRY = m.RetrySpec.model_construct(
    max_attempts=3, interval=2, backoff=2.0, jitter="full", max_delay=None, on=None
)
#: A retrier's fields when it leaves them out (the Amazon States Language's defaults).
RETRY_DEFAULTS: dict[str, Any] = {
    "IntervalSeconds": 1,
    "MaxAttempts": 3,
    "BackoffRate": 2.0,
    "JitterStrategy": "NONE",
}
#: An ``llm`` step's ``max_turns`` when it sets none: the function's own default, so the
#: compiler leaves it out of the payload.
LLM_MAX_TURNS = 10
STATE_NAME_LIMIT = 80
#: Step Functions' largest state machine definition, in bytes.
DEFINITION_LIMIT = 1_048_576
VOTE_ITEM_CONCURRENCY = 4
#: Step Functions' ``Cause`` of a Lambda function error is JSON: ``{"errorType",
#: "errorMessage", ...}`` (``{"errorMessage", "errorType", "requestId", "stackTrace"}`` in
#: AWS). A cause that matches this pattern is read as such an object (docs/internals.md).
FUNCTION_ERROR_CAUSE = '{"error*}'


class CompileError(WorkflowInvalid):
    """A workflow the checks accepted but ASL cannot express; the message says why.

    It concerns step ``step`` (or, without one, the workflow path ``path``);
    ``compile_workflow`` raises it located in the workflow's file like every other
    problem (``file:line:col: path: message``).
    """

    def __init__(
        self, message: str, step: str | None = None, path: Loc = (), wf: m.Workflow | None = None
    ) -> None:
        self.message, self.step, self.path = message, step, path
        if wf is None:
            super().__init__([Problem(0, 0, step or format_loc(path), message)])
            return
        from loopline.dsl.api import locate

        problem, filename = locate(wf, message, step, path)
        super().__init__([problem], filename)


def _step_of(state: str) -> str | None:
    """The step a state belongs to (``None`` for the workflow's own ``_init``...)."""
    return None if state.startswith("_") else state.split(".")[0]


@dataclass
class Report:
    """What the compiler tells about a compiled workflow."""

    name: str
    type: str
    states: int
    lambda_tasks: int
    native_conditions: int
    lambda_conditions: int
    human_steps: int
    express_ok: bool
    seconds: float
    warnings: list[str] = field(default_factory=list)
    #: State machines it is deployed as: 1, or a parent and its children.
    parts: int = 1

    def lines(self) -> list[str]:
        out = [
            f"{self.name}: {self.type} state machine, {self.states} states, "
            f"{self.lambda_tasks} Lambda tasks, {self.human_steps} human steps",
            f"conditions: {self.native_conditions} native Choice rules, "
            f"{self.lambda_conditions} evaluated by the helper Lambda",
        ]
        if self.type == "STANDARD" and self.express_ok:
            out.append(
                "EXPRESS would also do: no step waits for a person; choose it only if a run "
                "always ends within 5 minutes"
            )
        elif self.human_steps:
            out.append("STANDARD is required: human steps wait on task tokens")
        if self.parts > 1:
            out.append(
                f"split into {self.parts} state machines (over Step Functions' 1 MB): the "
                f"parent runs {self.parts - 1} children, <name>--part-2 to "
                f"<name>--part-{self.parts}"
            )
        out.extend(f"warning: {w}" for w in self.warnings)
        return out


@dataclass
class CompileResult:
    #: The state machine named after the workflow (the parent when it is split).
    definition: dict[str, Any]
    report: Report
    #: The file ``loopline compile`` writes: the definition indented for review
    #: (``dumps``), unless that passes Step Functions' limit: then compact, as deployed.
    text: str
    #: The text that is deployed (registered, run locally): compact (``compact``).
    deployed: str
    #: The child state machines of a split workflow (``loopline.compiler.split.Part``),
    #: in the order the parent runs them; none when one state machine holds it all.
    children: list[Any] = field(default_factory=list)


def dumps(definition: dict[str, Any]) -> str:
    """The canonical readable text of a definition: byte-identical for the same workflow."""
    return orjson.dumps(definition, option=orjson.OPT_INDENT_2).decode() + "\n"


def compact(definition: dict[str, Any]) -> str:
    """The text that is deployed: no whitespace (the size limit counts every byte)."""
    return orjson.dumps(definition).decode()


# --------------------------------------------------------------------------- scopes


class Scope:
    """The ``States`` of one ASL scope, with the loop variables visible in it."""

    def __init__(self, loop_vars: tuple[str, ...] = ()) -> None:
        self.states: dict[str, dict[str, Any]] = {}
        self.loop_vars = loop_vars
        #: Pass states to fold into the states that lead to them (``fold``), in order.
        self.foldable: list[str] = []

    def add(self, name: str, state: dict[str, Any]) -> str:
        if name in self.states:
            raise CompileError(f"internal: state {name!r} emitted twice", _step_of(name))
        if len(name) > STATE_NAME_LIMIT:
            raise CompileError(
                f"state name {name!r} is longer than {STATE_NAME_LIMIT} characters",
                _step_of(name),
            )
        self.states[name] = state
        return name

    def finish(self, start: str, warnings: list[str], entries: dict[str, str]) -> dict[str, Any]:
        """The scope's ``StartAt`` and ``States``, reachable states only. ``entries`` (each
        step's first state, by step id) tells which steps never run: those whose first
        state nothing leads to (a step's other states may be unreachable while it runs,
        like the record after a group whose last step is ``fail``)."""
        self._fold_all(start)
        # Breadth first from the start, so states are listed in the order they run.
        if start not in self.states:
            raise CompileError(
                f"the scope starts at {start!r}, which is not in it", _step_of(start)
            )
        order: list[str] = []
        seen = {start}
        queue = [start]
        while queue:
            name = queue.pop(0)
            order.append(name)
            for t in targets(self.states[name]):
                if t not in self.states:
                    raise CompileError(
                        f"a transition names {t!r}, which is not in the same scope",
                        _step_of(name),
                    )
                if t not in seen:
                    seen.add(t)
                    queue.append(t)
        if len(order) < len(self.states):
            steps = sorted(
                sid for sid, entry in entries.items() if entry in self.states and entry not in seen
            )
            if steps:
                warnings.append(f"never runs (nothing leads to it): {', '.join(steps)}")
        return {"StartAt": start, "States": {n: self.states[n] for n in order}}

    def fold(self, name: str) -> str:
        """Mark the Pass (or Succeed) state ``name`` to be folded, when the scope is
        finished, into each state that goes to it by ``Next`` (``_fold``); it is dropped
        when nothing leads to it any more. Returns ``name``."""
        self.foldable.append(name)
        return name

    def _fold_all(self, start: str) -> None:
        if not self.foldable:
            return
        preds: dict[str, list[str]] = {}
        for n, st in self.states.items():
            nxt = st.get("Next")
            if isinstance(nxt, str):
                preds.setdefault(nxt, []).append(n)
        for name in self.foldable:
            folded = self.states[name]
            for pred in preds.get(name, []):
                state = self.states[pred]
                if state.get("Next") != name:
                    continue
                merged = _fold(state, folded)
                if merged is not None:
                    self.states[pred] = merged
                    if isinstance(merged.get("Next"), str):
                        preds.setdefault(merged["Next"], []).append(pred)
            if name != start and not any(
                name in targets(st) for n, st in self.states.items() if n != name
            ):
                del self.states[name]


#: A JSONPath that names one node: ``$`` followed by ``.name`` and ``[n]`` parts.
_SIMPLE_PATH = re.compile(r"\$(?:\.[A-Za-z_][A-Za-z0-9_]*|\[[0-9]+\])*")
#: What a state that folds into the one before it may hold.
_PURE_PASS = {"Type", "OutputPath", "Next", "End"}
_TEMPLATE_PASS = {"Type", "Parameters", "ResultPath", "OutputPath", "Next", "End"}


def _compose(outer: str | None, inner: str | None) -> str | None:
    """One OutputPath doing what ``outer`` then ``inner`` do (None: none needed), or
    ``"?"`` when the two cannot be written as one path."""
    if inner is None or inner == "$":
        return outer
    if outer is None or outer == "$":
        return inner
    if _SIMPLE_PATH.fullmatch(outer) and _SIMPLE_PATH.fullmatch(inner):
        return outer + inner[1:]
    return "?"


def _fold(state: dict[str, Any], folded: dict[str, Any]) -> dict[str, Any] | None:
    """``state`` doing, when it succeeds, what it does and then what ``folded`` (the state
    its ``Next`` names) does, or None when one state cannot say it.

    - ``folded`` picks a path (``OutputPath``) or passes its input on (a bare Pass, a
      Succeed): ``state`` picks that path of its own output (paths compose).
    - ``folded`` builds its output with ``Parameters`` from the record ``state`` writes
      (``ResultPath: $.steps.<id>``) and, when ``state`` is a Pass, from the rest of the
      document: ``state`` builds that output itself, from what it would have written
      (its ``ResultSelector``, ``Parameters`` or ``Result``); the record is not written,
      since nothing but ``folded`` would read it before its output replaces the document
      (``folded`` has no ``ResultPath``, or ``$``).
    """
    kind = folded.get("Type")
    if (kind == "Pass" and set(folded) <= _PURE_PASS) or (
        kind == "Succeed" and set(folded) == {"Type"}
    ):
        path = _compose(state.get("OutputPath"), folded.get("OutputPath"))
        if path == "?":
            return None
        out = {k: v for k, v in state.items() if k not in ("OutputPath", "Next", "End")}
        if path is not None:
            out["OutputPath"] = path
        return _then(out, folded.get("Next"))
    if kind != "Pass" or not set(folded) <= _TEMPLATE_PASS or "Parameters" not in folded:
        return None
    if folded.get("ResultPath", "$") != "$" or "OutputPath" in state:
        return None
    written = state.get("ResultPath")
    if not isinstance(written, str) or written == "$" or not _SIMPLE_PATH.fullmatch(written):
        return None
    stype = state.get("Type")
    if stype in ("Task", "Map", "Parallel") and isinstance(state.get("ResultSelector"), dict):
        template, field, reads_document = state["ResultSelector"], "ResultSelector", False
    elif stype == "Task" and "ResultSelector" not in state and _direct_lambda(state):
        # The function's result is the record (``{"output"}``, ``llm`` adds ``usage``).
        template = {"output.$": "$.output"}
        if state["Parameters"].get("action") == "llm":
            template["usage.$"] = "$.usage"
        field, reads_document = "ResultSelector", False
    elif stype == "Pass" and isinstance(state.get("Parameters"), dict):
        template, field, reads_document = state["Parameters"], "Parameters", True
    elif stype == "Pass" and "Result" in state and not has_path_key(state["Result"]):
        template, field, reads_document = state["Result"], "Parameters", True
    else:
        return None
    built = _substitute(folded["Parameters"], written, template, reads_document)
    if built is _NO_FOLD:
        return None
    replaced = ("ResultPath", "Next", "End", field, "Result" if field == "Parameters" else field)
    out = {k: v for k, v in state.items() if k not in replaced}
    out[field] = built
    if "OutputPath" in folded:
        out["OutputPath"] = folded["OutputPath"]
    return _then(out, folded.get("Next"))


def _direct_lambda(state: dict[str, Any]) -> bool:
    """A Task invoking a Loopline function by its ARN (``Compiler.lambda_task``)."""
    resource = state.get("Resource")
    return (
        isinstance(resource, str)
        and not resource.startswith("arn:aws:states:")
        and isinstance(state.get("Parameters"), dict)
        and "action" in state["Parameters"]
    )


def _substitute(params: Any, written: str, template: Any, reads_document: bool) -> Any:
    """``params`` (a ``Parameters`` template read on a document where ``written`` holds
    what ``template`` makes) as a template that makes the same without that write, or
    ``_NO_FOLD``."""
    if isinstance(params, list):
        items = [_substitute(v, written, template, reads_document) for v in params]
        return _NO_FOLD if any(v is _NO_FOLD for v in items) else items
    if not isinstance(params, dict):
        return params
    out: dict[str, Any] = {}
    for key, value in params.items():
        if not key.endswith(".$"):
            sub = _substitute(value, written, template, reads_document)
            if sub is _NO_FOLD:
                return _NO_FOLD
            out[key] = sub
            continue
        if not isinstance(value, str) or not _SIMPLE_PATH.fullmatch(value):
            return _NO_FOLD  # an intrinsic function or a context path: not followed
        if value == written:
            out[key[:-2]] = template
        elif value.startswith(written + "."):
            rest = value[len(written) + 1 :]
            if not isinstance(template, dict) or "." in rest or "[" in rest:
                return _NO_FOLD
            if isinstance(template.get(f"{rest}.$"), str):
                out[key] = template[f"{rest}.$"]
            elif rest in template:
                out[key[:-2]] = template[rest]
            else:
                return _NO_FOLD
        elif (
            reads_document
            and not written.startswith(value + ".")
            and not written.startswith(value + "[")
        ):
            out[key] = value  # the rest of the document, which the write leaves alone
        else:
            return _NO_FOLD
    return out


_NO_FOLD = object()


def targets(state: dict[str, Any]) -> Iterator[str]:
    """The states a compiled state goes to: ``Next``, each Choice rule's, ``Default``,
    each catcher's, in that order (repeats included)."""
    if "Next" in state:
        yield state["Next"]
    for c in state.get("Choices", []):
        yield c["Next"]
    if "Default" in state:
        yield state["Default"]
    for c in state.get("Catch", []):
        yield c["Next"]


def _then(state: dict[str, Any], nxt: str | None) -> dict[str, Any]:
    if nxt is None:
        state["End"] = True
    else:
        state["Next"] = nxt
    return state


# --------------------------------------------------------------------------- compiler


class Compiler:
    def __init__(self, wf: m.Workflow) -> None:
        self.wf = wf
        self.warnings: list[str] = []
        self.native_conditions = 0
        self.lambda_conditions = 0
        self.lambda_tasks = 0
        self.declared_inputs = wf.inputs is not None
        self.steps_by_id = {s.id: s for s in wf.all_steps()}
        self.entries: dict[str, str] = {
            sid: self._entry_name(s) for sid, s in self.steps_by_id.items()
        }

    # ------------------------------------------------------------------ entry names

    def _entry_name(self, s: Any) -> str:
        """The first state of step ``s`` (known before it is compiled, for goto/rollback)."""
        if s.if_ is not None:
            return f"{s.id}.if"
        if self._wrapped(s):
            return f"{s.id}.try"
        if isinstance(s, m.GroupStep):
            return self._entry_name(s.group[0])
        if isinstance(s, m.VoteStep) or (isinstance(s, m.LoopStep) and s.loop.for_each is not None):
            return f"{s.id}.guard" if isinstance(self._items_expr(s), Path) else f"{s.id}.items"
        return s.id

    @staticmethod
    def _wrapped(s: Any) -> bool:
        """Steps whose errors Retry/Catch cannot reach natively run inside a one-branch
        Parallel (``models.own_scope``, the rule the checks apply to ``goto`` too)."""
        return m.own_scope(s)

    @staticmethod
    def _items_expr(s: Any) -> Expr:
        """What a for_each loop or a vote goes over."""
        items = s.loop.for_each if isinstance(s, m.LoopStep) else s.vote.input
        assert items is not None
        return items

    # ------------------------------------------------------------------ paths and values

    def jsonpath(self, p: Path) -> str:
        base = f"$.{p.root}" if p.root in ("inputs", "steps") else f"$.vars.{p.root}"
        for part in p.parts:
            base += f"[{part}]" if isinstance(part, int) else f".{part}"
        return base

    @cached_property
    def reach(self) -> Reach:
        return Reach(self.wf)

    def values(self, refs: Iterable[Path], site: str | None) -> dict[str, Any]:
        """The sparse state copy a Lambda needs for the paths it reads where step ``site``
        runs (``None``: the workflow's output): only the values read (payloads.py)."""
        return self.reach.parameters(refs, site)

    def lambda_task(
        self,
        action: str,
        step_id: str,
        config: dict[str, Any],
        refs: Iterable[Path],
        *,
        extra: dict[str, Any] | None = None,
        function: str | None = None,
        token: bool = False,
        at_end: bool = False,
        named: bool = False,
    ) -> dict[str, Any]:
        """A Task invoking a Loopline function for step ``step_id`` (``at_end``: for the
        workflow's output) with the payload of docs/internals.md. ``named``: the state is
        named ``step_id``, so the function reads the step and the attempt from the state
        (``$$.State``: its ``Name`` and ``RetryCount``), written once."""
        self.lambda_tasks += 1
        who: dict[str, Any] = (
            {"state.$": "$$.State"}
            if named
            else {"step": step_id, "attempt.$": "$$.State.RetryCount"}
        )
        payload: dict[str, Any] = {
            "action": action,
            "workflow": self.wf.name,
            **who,
            "execution.$": "$$.Execution.Id",
            # The workflow's own data: no key of it may be read as a path (payload.py).
            # Unset fields (None) are left out: the actions read config with .get().
            "config": escape_keys({k: v for k, v in config.items() if v is not None}),
            "values": self.values(refs, None if at_end else step_id),
        }
        if token:
            payload["token.$"] = "$$.Task.Token"
        payload.update(extra or {})
        fn = function or FUNCTIONS[action]
        if token:
            return {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                "Parameters": {"FunctionName": fn, "Payload": payload},
            }
        # The function's ARN as the Resource: the payload is the state's Parameters and
        # the result is what the function returns, with no wrapper to take apart (the
        # definition is limited in size).
        return {"Type": "Task", "Resource": fn, "Parameters": payload}

    def store_output(self, task: dict[str, Any], field: str, at: str, nxt: str) -> dict[str, Any]:
        """A Loopline task that keeps its action's output as ``{field: output}`` at ``at``,
        retried on transient errors like every action, then goes to ``nxt``."""
        task.update(
            {
                "ResultSelector": {f"{field}.$": "$.output"},
                "ResultPath": at,
                "Retry": self.retry_block(DEFAULT_RETRY, action=True),
                "Next": nxt,
            }
        )
        return task

    # ------------------------------------------------------------------ conditions

    def condition(
        self,
        name: str,
        expr: Expr,
        then: str,
        otherwise: str,
        scope: Scope,
        key: str,
        *,
        cap: tuple[Rule, str] | None = None,
    ) -> str:
        """Emit states that go to ``then`` when ``expr`` holds, else to ``otherwise``.
        With ``cap`` (a rule and a target), the same Choice goes to the target when the
        expression holds and the rule too (a ``while`` loop's cap).
        Returns the first state's name (``name``)."""
        lengths: list[tuple[Path, str]] = []

        def len_path(p: Path) -> str:
            if not self._known_list(p):
                raise NotNative("len of a value that may not be a list")
            target = f"$.ctl.{key}.len{len(lengths)}"
            lengths.append((p, target))
            return target

        try:
            rule = ChoiceCompiler(self.jsonpath, len_path).rule(expr)
        except NotNative:
            self.lambda_conditions += 1
            test = f"{name}.test"
            task = self.lambda_task(
                "eval", name.split(".")[0], {"expr": expr.source()}, paths(expr)
            )
            scope.add(name, self.store_output(task, "value", f"$.ctl.{key}", test))
            scope.add(
                test,
                self._decide(ChoiceCompiler.truthy(f"$.ctl.{key}.value"), then, otherwise, cap),
            )
            return name
        self.native_conditions += 1
        if not lengths:
            scope.add(name, self._decide(rule, then, otherwise, cap))
            return name
        # len(): a Pass computes each length (guarded: a missing list leaves no value).
        choice_name = f"{name}.test"
        nxt = choice_name
        for i in reversed(range(len(lengths))):
            p, _ = lengths[i]
            v = self.jsonpath(p)
            count, none = f"{name}.len{i}", f"{name}.nolen{i}"
            scope.add(
                count,
                {
                    "Type": "Pass",
                    "Parameters": {f"len{i}.$": f"States.ArrayLength({v})"},
                    "ResultPath": f"$.ctl.{key}_{i}",
                    "Next": nxt,
                },
            )
            scope.add(
                none, {"Type": "Pass", "Result": {}, "ResultPath": f"$.ctl.{key}_{i}", "Next": nxt}
            )
            guard = f"{name}.has{i}" if i else name
            scope.add(
                guard,
                self._choice(
                    {"And": [{"Variable": v, "IsPresent": True}, {"Variable": v, "IsNull": False}]},
                    count,
                    none,
                ),
            )
            nxt = guard
        # Rewrite targets: lengths were registered as $.ctl.key.lenI; store per index.
        text = json.dumps(rule)
        for i in range(len(lengths)):
            text = text.replace(f'"$.ctl.{key}.len{i}"', f'"$.ctl.{key}_{i}.len{i}"')
        scope.add(choice_name, self._decide(json.loads(text), then, otherwise, cap))
        return name

    @staticmethod
    def _choice(rule: Rule, then: str, otherwise: str) -> dict[str, Any]:
        return {"Type": "Choice", "Choices": [{**rule, "Next": then}], "Default": otherwise}

    @classmethod
    def _decide(
        cls, rule: Rule, then: str, otherwise: str, cap: tuple[Rule, str] | None
    ) -> dict[str, Any]:
        """The Choice of ``condition``: ``rule`` decides; with ``cap``, its rule is tested
        once ``rule`` holds (the negation goes first, so ``rule`` is written once)."""
        if cap is None:
            return cls._choice(rule, then, otherwise)
        limit, target = cap
        negated = rule["Not"] if set(rule) == {"Not"} else {"Not": rule}
        return {
            "Type": "Choice",
            "Choices": [{**negated, "Next": otherwise}, {**limit, "Next": target}],
            "Default": then,
        }

    def _known_list(self, p: Path) -> bool:
        """Is the value at ``p`` a list whenever it exists (so ArrayLength is safe)?"""
        sid = p.step_id
        if sid is None or len(p.parts) < 2 or p.parts[1] != "output":
            return False
        step = self.steps_by_id.get(sid)
        rest = p.parts[2:]
        if isinstance(step, m.LoopStep) and step.loop.for_each is not None:
            return not rest
        if isinstance(step, m.VoteStep):
            return rest in (("survived",), ("dropped",), ("verdicts",))
        if isinstance(step, m.LlmStep) and step.output_schema is not None:
            schema: Any = step.output_schema
            for part in rest:
                if not isinstance(part, str) or not isinstance(schema, dict):
                    return False
                schema = (schema.get("properties") or {}).get(part)
            return isinstance(schema, dict) and schema.get("type") == "array"
        return False

    # ------------------------------------------------------------------ retry / catch

    @staticmethod
    def _error_names(names: Iterable[str]) -> list[str]:
        out: list[str] = []
        for n in names:
            out.append(n)
            if n == "Loopline.Timeout":
                out.append("States.Timeout")
        if "States.ALL" in out:
            return ["States.ALL"]
        return list(dict.fromkeys(out))

    def retry_block(self, spec: m.RetrySpec | None, *, action: bool) -> list[dict[str, Any]]:
        if spec is None:
            if not action:
                return []
            spec = DEFAULT_RETRY
        if spec.max_attempts <= 1:
            return []
        on = list(spec.on) if spec.on else list(m.TRANSIENT_ERRORS)
        if action and not spec.on:
            on += LAMBDA_SERVICE_ERRORS
        retrier: dict[str, Any] = {"ErrorEquals": self._error_names(on)}
        fields = {
            "IntervalSeconds": spec.interval,
            "MaxAttempts": spec.max_attempts - 1,
            "BackoffRate": spec.backoff,
            "MaxDelaySeconds": spec.max_delay,
            "JitterStrategy": "FULL" if spec.jitter == "full" else "NONE",
        }
        # What equals ASL's default is left out (a definition is limited in size).
        retrier.update(
            (k, v) for k, v in fields.items() if v is not None and RETRY_DEFAULTS.get(k) != v
        )
        return [retrier]

    def step_retry(self, s: Any) -> list[dict[str, Any]]:
        action = s.kind in m.ACTION_KINDS
        spec = s.retry or (self.wf.defaults.retry if action else None)
        return self.retry_block(spec, action=action)

    def error_target(self, s: Any, after: str) -> str | None:
        if s.on_error is None:
            return None
        if s.on_error == "continue":
            return after
        return self.entries[s.on_error.goto]

    def add_catch(
        self, state: dict[str, Any], s: Any, after: str, scope: Scope, *, timeout: int | None
    ) -> None:
        """Catchers for ``timeout`` (as Loopline.Timeout) and ``on_error``, in that order."""
        catch: list[dict[str, Any]] = list(state.get("Catch", []))
        target = self.error_target(s, after)
        if timeout is not None:
            cause = f"step {s.id} ran longer than its timeout of {timeout} s"
            name = f"{s.id}.timeout"
            if target is None:
                scope.add(name, {"Type": "Fail", "Error": "Loopline.Timeout", "Cause": cause})
            else:
                scope.add(
                    name,
                    {
                        "Type": "Pass",
                        "Result": {"error": "Loopline.Timeout", "cause": cause},
                        "ResultPath": f"$.steps.{s.id}.output",
                        "Next": target,
                    },
                )
            catch.append(
                {
                    "ErrorEquals": ["States.Timeout"],
                    "ResultPath": f"$.ctl.{s.id}_error",
                    "Next": name,
                }
            )
        if target is not None:
            catch.append(
                {
                    "ErrorEquals": ["States.ALL"],
                    "ResultPath": f"$.ctl.{s.id}_error",
                    "Next": self.caught(s.id, target, scope),
                }
            )
        if catch:
            state["Catch"] = catch

    def caught(self, step_id: str, target: str, scope: Scope) -> str:
        """States that turn the error a Catch put at ``$.ctl.<id>_error`` (``{Error,
        Cause}``) into the step's output ``{"error": NAME, "cause": TEXT}``, then go to
        ``target``. A Lambda function error's cause is JSON: its ``errorMessage`` is the
        text. They run only on the error path. Returns the first state's name."""
        err = f"$.ctl.{step_id}_error"
        cause = f"{err}.Cause"
        output = f"$.steps.{step_id}.output"
        text: Rule = {
            "And": [{"Variable": cause, "IsPresent": True}, {"Variable": cause, "IsString": True}]
        }

        def record(name: str, cause_value: str) -> str:
            return scope.add(
                name,
                {
                    "Type": "Pass",
                    "Parameters": {"error.$": f"{err}.Error", "cause.$": cause_value},
                    "ResultPath": output,
                    "Next": target,
                },
            )

        function = record(f"{step_id}.fnerror", f"{cause}.errorMessage")
        parse = scope.add(
            f"{step_id}.parse",
            {
                "Type": "Pass",
                "Parameters": {
                    "Error.$": f"{err}.Error",
                    "Cause.$": f"States.StringToJson({cause})",
                },
                "ResultPath": err,
                "Next": function,
            },
        )
        plain = record(f"{step_id}.caught", cause)
        none = record(
            f"{step_id}.nocause",
            f"States.Format('step {step_id} failed with {{}} (no cause given)', {err}.Error)",
        )
        return scope.add(
            f"{step_id}.error",
            {
                "Type": "Choice",
                "Choices": [
                    {
                        "And": [
                            *text["And"],
                            {"Variable": cause, "StringMatches": FUNCTION_ERROR_CAUSE},
                        ],
                        "Next": parse,
                    },
                    {
                        "And": [*text["And"], {"Not": {"Variable": cause, "StringEquals": ""}}],
                        "Next": plain,
                    },
                ],
                "Default": none,
            },
        )

    # ------------------------------------------------------------------ sequences

    def sequence(self, steps: list[Any], after: str, scope: Scope) -> str:
        nxt = after
        for s in reversed(steps):
            nxt = self.step(s, nxt, scope)
        return nxt

    def step(self, s: Any, after: str, scope: Scope) -> str:
        if s.if_ is not None:
            core = self._core_or_wrapped(s, after, scope)
            skip = scope.add(
                f"{s.id}.skip",
                {
                    "Type": "Pass",
                    "Result": {"output": None, "skipped": True},
                    "ResultPath": f"$.steps.{s.id}",
                    "Next": after,
                },
            )
            return self.condition(f"{s.id}.if", s.if_, core, skip, scope, f"{s.id}_if")
        return self._core_or_wrapped(s, after, scope)

    def _core_or_wrapped(self, s: Any, after: str, scope: Scope) -> str:
        if not self._wrapped(s):
            return self.core(s, after, scope)
        inner = Scope(scope.loop_vars)
        state: dict[str, Any] = {"Type": "Parallel"}
        ids = self.exported_ids([s])
        if ids == [s.id]:
            # Only the step's own record comes back: the branch ends with the step, and the
            # Parallel picks the record out (no export or merge state on the way).
            start = self.core(s, None, inner)
            state["Branches"] = [inner.finish(start, self.warnings, self.entries)]
            state["ResultSelector"] = {"output.$": f"$[0].steps.{s.id}.output"}
            state["ResultPath"] = f"$.steps.{s.id}"
            state["Next"] = after
        else:
            # The branch ends with the state document, its records written: the
            # Parallel's output is that document (its last state ends the branch).
            export = inner.fold(inner.add(f"{s.id}.export", {"Type": "Pass", "End": True}))
            start = self.core(s, export, inner)
            state["Branches"] = [inner.finish(start, self.warnings, self.entries)]
            state["ResultPath"] = "$"
            state["OutputPath"] = "$[0]"
            state["Next"] = after
        retry = self.step_retry(s)
        rollback = self.rollback_catchers(s)
        if rollback and any("States.ALL" in r["ErrorEquals"] for r in retry):
            # A rollback is a decision, never an error to ask again about.
            names = [n for c in rollback for n in c["ErrorEquals"]]
            retry.insert(0, {"ErrorEquals": names, "MaxAttempts": 0})
        if retry:
            state["Retry"] = retry
        if rollback:
            state["Catch"] = rollback
        self.add_catch(state, s, after, scope, timeout=None)
        return scope.add(f"{s.id}.try", state)

    def rollback_catchers(self, s: Any) -> list[dict[str, Any]]:
        """An approval rejected with a rollback goes back to the target's first state."""
        if not isinstance(s, m.ApprovalStep):
            return []
        return [
            {
                "ErrorEquals": [f"Loopline.Rollback.{t}"],
                "ResultPath": f"$.ctl.{s.id}_decision",
                "Next": self.entries[t],
            }
            for t in s.approval.rollback_to
        ]

    def exported_ids(self, steps: list[Any]) -> list[str]:
        """Ids whose records a Parallel branch hands back: all but loop-body steps."""
        out: list[str] = []
        for s in steps:
            out.append(s.id)
            if isinstance(s, m.LoopStep) and s.loop.for_each is not None:
                continue
            for seq in m.children(s):
                out.extend(self.exported_ids(seq))
        return out

    def record(
        self, name: str, step_id: str, output_path: str | None, after: str | None, scope: Scope
    ) -> str:
        """A Pass that sets ``steps.<id>.output`` from ``output_path`` (None → null)."""
        state: dict[str, Any] = {"Type": "Pass"}
        if output_path is None:
            state["Result"] = {"output": None}
        else:
            state["Parameters"] = {"output.$": output_path}
        state["ResultPath"] = f"$.steps.{step_id}"
        return scope.add(name, _then(state, after))

    # ------------------------------------------------------------------ step kinds

    def core(self, s: Any, after: str | None, scope: Scope) -> str:
        """The states of step ``s`` going to ``after``; ``after`` is None only for a step
        alone in its wrapper's branch (``_core_or_wrapped``): it ends the branch, and the
        wrapper holds its Retry and Catch."""
        method = getattr(self, f"_{s.kind}")
        return str(method(s, after, scope))

    def _action(
        self,
        s: Any,
        action: str,
        config: dict[str, Any],
        refs: Iterable[Path],
        after: str,
        scope: Scope,
        *,
        function: str | None = None,
    ) -> str:
        state = self.lambda_task(action, s.id, config, refs, function=function, named=True)
        # The function returns the record itself (``{"output"}``, ``llm`` adds ``usage``).
        state["ResultPath"] = f"$.steps.{s.id}"
        timeout = s.timeout if s.timeout is not None else self.wf.defaults.timeout
        if timeout is not None:
            state["TimeoutSeconds"] = timeout
        retry = self.step_retry(s)
        if retry:
            state["Retry"] = retry
        self.add_catch(state, s, after, scope, timeout=timeout)
        state["Next"] = after
        return scope.add(s.id, state)

    def _llm(self, s: m.LlmStep, after: str, scope: Scope) -> str:
        config = {
            "prompt": s.llm.source,
            "system": s.system.source if s.system else None,
            "model": s.model or self.wf.defaults.model,
            "temperature": s.temperature,
            "max_tokens": s.max_tokens,
            "output_schema": s.output_schema,
            "tools": s.tools,
            # The function's default (``runtime.llm.DEFAULT_MAX_TURNS``) is left out.
            "max_turns": None if s.max_turns == LLM_MAX_TURNS else s.max_turns,
        }
        refs = [*s.llm.paths(), *(s.system.paths() if s.system else [])]
        return self._action(s, "llm", config, refs, after, scope)

    def _tool(self, s: m.ToolStep, after: str, scope: Scope) -> str:
        return self._action(
            s, "tool", {"tool": s.tool, "args": s.args}, _tree_paths(s.args), after, scope
        )

    def _http(self, s: m.HttpStep, after: str, scope: Scope) -> str:
        h = s.http
        config = {
            "method": h.method,
            "url": h.url.source,
            "headers": {k: v.source for k, v in h.headers.items()},
            "query": {k: v.source for k, v in h.query.items()},
            "body": h.body,
            "expect_status": h.expect_status,
            "timeout": h.timeout,
            "allow_hosts": h.allow_hosts,
        }
        refs = [
            *h.url.paths(),
            *_templates_paths(h.headers.values()),
            *_templates_paths(h.query.values()),
            *_tree_paths(h.body),
        ]
        return self._action(s, "http", config, refs, after, scope)

    def _task(self, s: m.TaskStep, after: str, scope: Scope) -> str:
        st = self.wf.step_types[s.task]
        fn = st.function if st.function.startswith("arn:") else f"${{{st.function}Arn}}"
        config = {"type": s.task, "function": fn, "args": s.args}
        return self._action(s, "task", config, _tree_paths(s.args), after, scope)

    def _group(self, s: m.GroupStep, after: str, scope: Scope) -> str:
        done = self.record(f"{s.id}.done", s.id, f"$.steps.{s.group[-1].id}.output", after, scope)
        return self.sequence(s.group, done, scope)

    def _branch(self, s: m.BranchStep, after: str | None, scope: Scope) -> str:
        arms = s.branch.arms()
        entries: list[str] = []
        for i, (_, arm) in enumerate(arms):
            label = "else" if i == len(arms) - 1 else f"arm{i}"
            if arm:
                done = self.record(
                    f"{s.id}.{label}", s.id, f"$.steps.{arm[-1].id}.output", after, scope
                )
                entries.append(self.sequence(arm, done, scope))
            else:
                entries.append(self.record(f"{s.id}.{label}", s.id, None, after, scope))
        conds = [c for c, _ in arms[:-1]]
        assert all(c is not None for c in conds)
        # All-native cases share one Choice; otherwise each case is tested in turn.
        try:
            rules = [ChoiceCompiler(self.jsonpath, _no_len).rule(c) for c in conds if c is not None]
        except NotNative:
            nxt = entries[-1]
            for i in reversed(range(len(conds))):
                name = s.id if i == 0 else f"{s.id}.case{i}"
                cond = conds[i]
                assert cond is not None
                nxt = self.condition(name, cond, entries[i], nxt, scope, f"{s.id}_case{i}")
            return nxt
        self.native_conditions += len(rules)
        return scope.add(
            s.id,
            {
                "Type": "Choice",
                "Choices": [{**r, "Next": entries[i]} for i, r in enumerate(rules)],
                "Default": entries[-1],
            },
        )

    def _loop(self, s: m.LoopStep, after: str, scope: Scope) -> str:
        if s.loop.for_each is not None:
            return self._for_each(s, after, scope)
        return self._while(s, after, scope)

    def _items(self, s: Any, expr: Expr, scope: Scope) -> tuple[str, str]:
        """Where the items of a for_each/vote come from: (ItemsPath, the step's first
        state: the guard, or the helper Lambda that computes the items first)."""
        if isinstance(expr, Path):
            return self.jsonpath(expr), f"{s.id}.guard"
        name = f"{s.id}.items"
        task = self.lambda_task("eval", s.id, {"expr": expr.source()}, paths(expr))
        scope.add(name, self.store_output(task, "items", f"$.ctl.{s.id}", f"{s.id}.guard"))
        return f"$.ctl.{s.id}.items", name

    def _guard(self, s: Any, items: str, empty: Any, after: str, scope: Scope) -> None:
        """The Choice ``<id>.guard`` before the Map over ``items``: no value (a skipped
        step's null output) makes the output ``empty``; text, a number, a boolean or an
        object is an error of the step (``<id>.notlist``). A non-empty list goes straight
        to the Map; an empty list or an object (which Choice rules cannot tell apart) is
        told apart by its JSON text (``<id>.shape``, ``<id>.isempty``)."""
        what = "for_each" if isinstance(s, m.LoopStep) else "vote input"
        target = self.error_target(s, after)
        cause = (
            f"States.Format('step {s.id}: {what} needs a list, got {{}}', "
            f"States.JsonToString({items}))"
        )
        if target is None:
            notlist = scope.add(
                f"{s.id}.notlist",
                {"Type": "Fail", "Error": "Loopline.Failed", "CausePath": cause},
            )
        else:
            notlist = scope.add(
                f"{s.id}.notlist",
                {
                    "Type": "Pass",
                    "Parameters": {"error": "Loopline.Failed", "cause.$": cause},
                    "ResultPath": f"$.steps.{s.id}.output",
                    "Next": target,
                },
            )
        none = scope.add(
            f"{s.id}.empty",
            {
                "Type": "Pass",
                "Result": {"output": empty},
                "ResultPath": f"$.steps.{s.id}",
                "Next": after,
            },
        )
        shape = f"$.ctl.{s.id}_shape"
        isempty = scope.add(
            f"{s.id}.isempty",
            self._choice({"Variable": f"{shape}.json", "StringEquals": "[]"}, s.id, notlist),
        )
        scope.add(
            f"{s.id}.shape",
            {
                "Type": "Pass",
                "Parameters": {"json.$": f"States.JsonToString({items})"},
                "ResultPath": shape,
                "Next": isempty,
            },
        )
        scope.add(
            f"{s.id}.guard",
            {
                "Type": "Choice",
                "Choices": [
                    {"Not": {"Variable": items, "IsPresent": True}, "Next": none},
                    {"Variable": items, "IsNull": True, "Next": none},
                    {
                        "Or": [
                            {"Variable": items, "IsString": True},
                            {"Variable": items, "IsNumeric": True},
                            {"Variable": items, "IsBoolean": True},
                        ],
                        "Next": notlist,
                    },
                    {"Variable": f"{items}[0]", "IsPresent": True, "Next": s.id},
                ],
                "Default": f"{s.id}.shape",
            },
        )

    def _for_each(self, s: m.LoopStep, after: str, scope: Scope) -> str:
        loop = s.loop
        assert loop.for_each is not None
        items, first = self._items(s, loop.for_each, scope)
        inner_vars = tuple(dict.fromkeys([*scope.loop_vars, loop.as_, "index"]))
        inner = Scope(inner_vars)
        # The iteration's output: picked by the body's last state (``Scope.fold``).
        result = inner.fold(
            inner.add(
                f"{s.id}.result",
                {"Type": "Pass", "OutputPath": f"$.steps.{loop.steps[-1].id}.output", "End": True},
            )
        )
        start = self.sequence(loop.steps, result, inner)
        vars_sel: dict[str, Any] = {
            f"{v}.$": f"$.vars.{v}" for v in scope.loop_vars if v not in (loop.as_, "index")
        }
        vars_sel[f"{loop.as_}.$"] = "$$.Map.Item.Value"
        vars_sel["index.$"] = "$$.Map.Item.Index"
        processor = inner.finish(start, self.warnings, self.entries)
        state: dict[str, Any] = {
            "Type": "Map",
            "ItemsPath": items,
            "MaxConcurrency": loop.max_concurrency,
            "ItemSelector": {
                "inputs.$": "$.inputs",
                "steps.$": "$.steps",
                "vars": vars_sel,
                "ctl": {},
            },
            "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, **processor},
            "ResultSelector": {"output.$": "$"},
            "ResultPath": f"$.steps.{s.id}",
        }
        retry = self.step_retry(s)
        if retry:
            state["Retry"] = retry
        self.add_catch(state, s, after, scope, timeout=None)
        state["Next"] = after
        scope.add(s.id, state)
        self._guard(s, items, [], after, scope)
        return first

    def _while(self, s: m.LoopStep, after: str, scope: Scope) -> str:
        """``<id>`` starts the counter; ``<id>.check`` tests the condition and, when it
        holds, the cap (``max_iterations`` reached: ``<id>.max`` fails) in one Choice;
        the body runs; ``<id>.next`` counts the iteration and keeps the body's last
        output; ``<id>.done`` records it once the condition no longer holds."""
        loop = s.loop
        assert loop.while_ is not None and loop.max_iterations is not None
        ctl = f"$.ctl.{s.id}"
        check, nxt, done, limit = (f"{s.id}.{r}" for r in ("check", "next", "done", "max"))
        scope.add(
            done,
            {
                "Type": "Pass",
                "Parameters": {"output.$": f"{ctl}.last"},
                "ResultPath": f"$.steps.{s.id}",
                "Next": after,
            },
        )
        scope.add(
            nxt,
            {
                "Type": "Pass",
                "Parameters": {
                    "n.$": f"States.MathAdd({ctl}.n, 1)",
                    "last.$": f"$.steps.{loop.steps[-1].id}.output",
                },
                "ResultPath": ctl,
                "Next": check,
            },
        )
        body = self.sequence(loop.steps, nxt, scope)
        scope.add(
            limit,
            {
                "Type": "Fail",
                "Error": "Loopline.MaxIterations",
                "Cause": f"loop {s.id} reached max_iterations ({loop.max_iterations}) while its condition still held",
            },
        )
        reached: Rule = {"Variable": f"{ctl}.n", "NumericGreaterThanEquals": loop.max_iterations}
        self.condition(check, loop.while_, body, done, scope, f"{s.id}_check", cap=(reached, limit))
        return scope.add(
            s.id,
            {"Type": "Pass", "Result": {"n": 0, "last": None}, "ResultPath": ctl, "Next": check},
        )

    def _parallel(self, s: m.ParallelStep, after: str, scope: Scope) -> str:
        """The Parallel merges the entries' records back itself (``ResultSelector``): the
        first branch ends with its whole state document, every other one with its
        records (``{<id>: record}``, built by the entry's last state where it can be:
        ``Scope.fold``). ``<id>.done`` records the step's output: a Parallel cannot,
        since ``States.JsonMerge`` merges shallowly and no intrinsic builds an object."""
        branches = []
        for i, entry in enumerate(s.parallel):
            inner = Scope(scope.loop_vars)
            export: dict[str, Any] = {"Type": "Pass", "End": True}
            if i:
                ids = self.exported_ids([entry])
                export["Parameters"] = {f"{x}.$": f"$.steps.{x}" for x in ids}
            name = inner.fold(inner.add(f"{entry.id}.export", export))
            start = self.step(entry, name, inner)
            branches.append(inner.finish(start, self.warnings, self.entries))
        done = scope.add(
            f"{s.id}.done",
            {
                "Type": "Pass",
                "Parameters": {
                    "output": {f"{e.id}.$": f"$.steps.{e.id}.output" for e in s.parallel}
                },
                "ResultPath": f"$.steps.{s.id}",
                "Next": after,
            },
        )
        merged = "$[0].steps"
        for i in range(1, len(branches)):
            merged = f"States.JsonMerge({merged}, $[{i}], false)"
        state: dict[str, Any] = {
            "Type": "Parallel",
            "Branches": branches,
            "ResultSelector": {
                "inputs.$": "$[0].inputs",
                "steps.$": merged,
                "vars.$": "$[0].vars",
                "ctl.$": "$[0].ctl",
            },
            "ResultPath": "$",
        }
        retry = self.step_retry(s)
        if retry:
            state["Retry"] = retry
        self.add_catch(state, s, after, scope, timeout=None)
        state["Next"] = done
        return scope.add(s.id, state)

    def _vote(self, s: m.VoteStep, after: str, scope: Scope) -> str:
        v = s.vote
        items, first = self._items(s, v.input, scope)
        tally = f"{s.id}.tally"
        judge = self.lambda_task(
            "vote_voter",
            s.id,
            {
                "rules": v.rules,
                "model": v.model or self.wf.defaults.model,
                "voters": v.voters,
            },
            [Path("item")],
        )
        judge["Parameters"]["config"]["voter.$"] = "$.voter"
        judge.update(
            {
                "Retry": self.retry_block(DEFAULT_RETRY, action=True),
                "OutputPath": "$.output",
                "End": True,
            }
        )
        # Each item's state is {vars: {item}, verdicts: [0, 1, ...]}: the voters' numbers,
        # which their verdicts replace, so the aggregate gets only what it counts.
        voters_map = {
            "Type": "Map",
            "ItemsPath": "$.verdicts",
            "MaxConcurrency": v.voters,
            "ItemSelector": {"vars": {"item.$": "$.vars.item"}, "voter.$": "$$.Map.Item.Value"},
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "INLINE"},
                "StartAt": f"{s.id}.judge",
                "States": {f"{s.id}.judge": judge},
            },
            "ResultPath": "$.verdicts",
            "End": True,
        }
        state: dict[str, Any] = {
            "Type": "Map",
            "ItemsPath": items,
            "MaxConcurrency": VOTE_ITEM_CONCURRENCY,
            "ItemSelector": {
                "vars": {"item.$": "$$.Map.Item.Value"},
                "verdicts": list(range(v.voters)),
            },
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "INLINE"},
                "StartAt": f"{s.id}.voters",
                "States": {f"{s.id}.voters": voters_map},
            },
            "ResultSelector": {"output.$": "$"},
            "ResultPath": f"$.steps.{s.id}",
            "Next": tally,
        }
        retry = self.step_retry(s)
        if retry:
            state["Retry"] = retry
        self.add_catch(state, s, after, scope, timeout=None)
        agg = self.lambda_task(
            "vote_aggregate",
            s.id,
            {"threshold": v.effective_threshold, "voters": v.voters},
            [],
            extra={"results.$": f"$.steps.{s.id}.output"},
        )
        scope.add(tally, self.store_output(agg, "output", f"$.steps.{s.id}", after))
        scope.add(s.id, state)
        nothing = {"survived": [], "dropped": [], "total": 0, "kept": 0, "verdicts": []}
        self._guard(s, items, nothing, after, scope)
        return first

    def _assert(self, s: m.AssertStep, after: str | None, scope: Scope) -> str:
        ok = self.record(f"{s.id}.ok", s.id, None, after, scope)
        scope.states[ok]["Result"] = {"output": True}
        message = s.message or f"assertion failed: {s.assert_.source()}"
        failed = self.fail_states(
            s.id, f"{s.id}.failed", "Loopline.AssertionFailed", message, f"{s.id}.message", scope
        )
        return self.condition(s.id, s.assert_, ok, failed, scope, f"{s.id}_assert")

    def _fail(self, s: m.FailStep, after: str | None, scope: Scope) -> str:
        return self.fail_states(s.id, s.id, s.error, s.fail, s.id, scope)

    def fail_states(
        self,
        step_id: str,
        name: str,
        error: str,
        message: Template | str,
        render: str,
        scope: Scope,
    ) -> str:
        """A Fail state ``name`` with ``error`` and ``message``; returns the first state.

        A message with ``{{ }}`` is rendered first by the helper Lambda (state ``render``,
        the Fail is then ``<id>.failed``), like any template; when it cannot be rendered
        (a value it reads is missing), ``<id>.unrendered`` fails with the same error and
        the message as written. A cause is plain text unless it could be read as a
        function error's JSON (``FUNCTION_ERROR_CAUSE``): then it is such JSON itself,
        ``{"errorMessage": TEXT}``, so whatever catches it reads TEXT."""
        if isinstance(message, str) or message.is_literal:
            text = message if isinstance(message, str) else message.source
            return scope.add(name, {"Type": "Fail", "Error": error, "Cause": _cause_text(text)})
        failed = name if name != render else f"{step_id}.failed"
        at = f"$.ctl.{step_id}_message"
        first, last = message.parts[0], message.parts[-1]
        plain = (isinstance(first, str) and not first.startswith("{")) or (
            isinstance(last, str) and not last.endswith("}")
        )
        scope.add(
            failed,
            {
                "Type": "Fail",
                "Error": error,
                "CausePath": f"{at}.errorMessage" if plain else f"States.JsonToString({at})",
            },
        )
        unrendered = scope.add(
            f"{step_id}.unrendered",
            {"Type": "Fail", "Error": error, "Cause": _cause_text(message.source)},
        )
        # A message that is exactly one {{ expr }} renders as text all the same.
        source = message.source + ("{{ '' }}" if message.single is not None else "")
        task = self.lambda_task("render", step_id, {"template": source}, message.paths())
        task = self.store_output(task, "errorMessage", at, failed)
        task["Catch"] = [{"ErrorEquals": ["States.ALL"], "ResultPath": at, "Next": unrendered}]
        return scope.add(render, task)

    def _succeed(self, s: m.SucceedStep, after: str, scope: Scope) -> str:
        end = scope.fold(scope.add(f"{s.id}.end", {"Type": "Succeed"}))
        return self.output_state(s.id, s.succeed, end, scope)

    def _human(self, s: Any, kind: str, spec: Any, after: str | None, scope: Scope) -> str:
        """A wait on a task token. A timeout without an answer is decided by ``on_timeout``:
        ``approve`` records an approval; ``fail`` and ``reject`` are errors of the step
        (``Loopline.Timeout``, ``Loopline.Rejected``), raised by a Fail state; ``escalate``
        asks ``escalate_to`` with the same timeout, and a second timeout is
        ``Loopline.Timeout``. A step with ``retry`` or ``on_error`` runs inside its wrapper
        (``after`` is None), which retries and catches those errors and a rejection alike."""
        refs: list[Path] = []
        if getattr(spec, "instruction", None) is not None:
            refs.extend(spec.instruction.paths())
        for t in getattr(spec, "context", {}).values():
            refs.extend(t.paths())
        timeout = spec.timeout
        config: dict[str, Any] = {
            "kind": kind,
            "instruction": spec.instruction.source if spec.instruction is not None else None,
            "assignee": spec.assignee.model_dump(exclude_none=True) if spec.assignee else None,
            "notify": [n.model_dump(exclude_none=True) for n in spec.notify],
            "context": {k: t.source for k, t in spec.context.items()},
            "form_schema": getattr(spec, "form_schema", None),
            "rollback_to": list(getattr(spec, "rollback_to", [])),
            "timeout": timeout,
            "escalated": False,
        }
        # Unwrapped, the wait routes rollbacks itself (wrapped, the wrapper does).
        rollback = self.rollback_catchers(s) if after is not None else []

        def wait(cfg: dict[str, Any], on_timeout: str) -> dict[str, Any]:
            state = self.lambda_task("human", s.id, cfg, refs, token=True)
            state.update(
                {
                    "TimeoutSeconds": timeout,
                    "ResultSelector": {"output.$": "$.output"},
                    "ResultPath": f"$.steps.{s.id}",
                    "Retry": self.retry_block(
                        m.RetrySpec.model_construct(
                            max_attempts=3,
                            interval=2,
                            backoff=2.0,
                            jitter="full",
                            max_delay=None,
                            on=LAMBDA_SERVICE_ERRORS,
                        ),
                        action=False,
                    ),
                    "Catch": [
                        *rollback,
                        {
                            "ErrorEquals": ["States.Timeout"],
                            "ResultPath": f"$.ctl.{s.id}_decision",
                            "Next": on_timeout,
                        },
                    ],
                }
            )
            return _then(state, after)

        policy = spec.on_timeout
        expired = f"{s.id}.timeout"
        late = f"no decision on {s.id} within {timeout} s"
        if policy == "approve":
            approved = {
                "approved": True,
                "by": None,
                "comment": f"approved automatically: {late}",
                "at": None,
                "timed_out": True,
            }
            scope.add(
                expired,
                _then(
                    {
                        "Type": "Pass",
                        "Result": {"output": approved},
                        "ResultPath": f"$.steps.{s.id}",
                    },
                    after,
                ),
            )
        elif policy == "reject":
            scope.add(
                expired,
                {
                    "Type": "Fail",
                    "Error": "Loopline.Rejected",
                    "Cause": f"rejected automatically: {late}",
                },
            )
        elif policy == "escalate":
            assert spec.escalate_to is not None
            scope.add(
                expired,
                {
                    "Type": "Fail",
                    "Error": "Loopline.Timeout",
                    "Cause": f"{late}, nor from {_who(spec.escalate_to)} after escalation",
                },
            )
            cfg = {
                **config,
                "assignee": spec.escalate_to.model_dump(exclude_none=True, exclude_defaults=True),
                "escalated": True,
            }
            scope.add(f"{s.id}.escalate", wait(cfg, expired))
            return scope.add(s.id, wait(config, f"{s.id}.escalate"))
        else:
            scope.add(expired, {"Type": "Fail", "Error": "Loopline.Timeout", "Cause": late})
        return scope.add(s.id, wait(config, expired))

    def _approval(self, s: m.ApprovalStep, after: str | None, scope: Scope) -> str:
        return self._human(s, "approval", s.approval, after, scope)

    def _human_task(self, s: m.HumanTaskStep, after: str | None, scope: Scope) -> str:
        return self._human(s, "human_task", s.human_task, after, scope)

    def _pause(self, s: m.PauseStep, after: str | None, scope: Scope) -> str:
        assert s.timeout is not None
        spec = m.HumanSpec.model_construct(
            instruction=s.pause,
            timeout=s.timeout,
            assignee=None,
            notify=[],
            context={},
            on_timeout="fail",
            escalate_to=None,
        )
        return self._human(s, "pause", spec, after, scope)

    # ------------------------------------------------------------------ outputs

    def output_state(self, name: str, value: Any, nxt: str | None, scope: Scope) -> str:
        """A state whose output is ``value`` (a JSON value whose strings are templates):
        a Pass with ``Result`` when it has no template at all; a Pass with ``Parameters``
        when every template is a literal or a path that always holds a value and no key
        of it ends in ``.$`` (Step Functions would read such a key as a path); else the
        helper Lambda renders it."""
        state: dict[str, Any]
        if all(t.is_literal for t in template_tree(value)):
            state = {"Type": "Pass", "Result": value}
            return scope.add(name, _then(state, nxt))
        native = _NOT_NATIVE if has_path_key(value) else self._native_value(value)
        if native is not _NOT_NATIVE:
            if isinstance(native, str):
                state = {"Type": "Pass", "OutputPath": native}
            else:
                state = {"Type": "Pass", "Parameters": native}
            return scope.add(name, _then(state, nxt))
        task = self.lambda_task(
            "render",
            name.split(".")[0].lstrip("_") or "output",
            {"template": value},
            _tree_paths(value),
            at_end=name.startswith("_"),
        )
        if name.startswith("_"):
            del task["Parameters"]["step"]
        task.update(
            {
                "OutputPath": "$.output",
                "Retry": self.retry_block(DEFAULT_RETRY, action=True),
            }
        )
        return scope.add(name, _then(task, nxt))

    def _safe_path(self, p: Path) -> str | None:
        """The JSONPath of ``p`` if it always holds a value where outputs are rendered."""
        if p.root == "inputs" and self.declared_inputs and len(p.parts) == 1:
            return self.jsonpath(p)
        if p.root == "steps" and p.step_id and (len(p.parts) == 1 or p.parts[1:] == ("output",)):
            return self.jsonpath(p)
        return None

    def _native_value(self, value: Any) -> Any:
        """A Pass-state rendering of ``value``: "$..." for a single path, a Parameters
        dict, a literal, or _NOT_NATIVE."""
        if isinstance(value, str):
            t: Template = next(template_tree(value))
            if t.is_literal:
                return value
            e = t.single
            if isinstance(e, Path):
                return self._safe_path(e) or _NOT_NATIVE
            return _NOT_NATIVE
        if isinstance(value, dict):
            out: dict[str, Any] = {}
            for k, v in value.items():
                nv = self._native_value(v)
                if nv is _NOT_NATIVE:
                    return _NOT_NATIVE
                if isinstance(v, str) and isinstance(nv, str) and nv.startswith("$") and nv != v:
                    out[f"{k}.$"] = nv
                elif isinstance(v, (dict, list)) and not isinstance(nv, dict) and nv != v:
                    return _NOT_NATIVE
                else:
                    out[k] = nv
            return out
        if isinstance(value, list):
            return (
                value
                if not any(True for _ in template_tree(value) if not _.is_literal)
                else _NOT_NATIVE
            )
        return value

    # ------------------------------------------------------------------ the whole machine

    def compile(self) -> dict[str, Any]:
        wf = self.wf
        scope = Scope()
        # The output: picked or built by the last state where it can (``Scope.fold``).
        if wf.output is not None:
            out = self.output_state("_output", wf.output, None, scope)
        else:
            out = scope.add(
                "_output",
                {"Type": "Pass", "OutputPath": f"$.steps.{wf.steps[-1].id}.output", "End": True},
            )
        if scope.states[out]["Type"] == "Pass":
            scope.fold(out)
        first = self.sequence(wf.steps, out, scope)
        # ``_init`` builds the state document from the execution input, merged over the
        # declared defaults (by ``_start`` first, when they are too large to inline).
        inputs: str | None = "$"
        defaults: dict[str, Any] = {}
        if wf.inputs is not None:
            defaults = {k: v.default for k, v in wf.inputs.items()}
            inputs = _merged_inputs(defaults)
        init: dict[str, Any] = {
            "Type": "Pass",
            "Parameters": {
                "inputs.$": inputs or "States.JsonMerge($.defaults, $.given, false)",
                "steps": {s.id: {} for s in wf.all_steps()},
                "vars": {},
                "ctl": {},
            },
            "Next": first,
        }
        scope.add("_init", init)
        start = "_init"
        if inputs is None:
            start = "_start"
            if not has_path_key(defaults):
                scope.add(
                    start,
                    {
                        "Type": "Pass",
                        "Parameters": {"defaults": defaults, "given.$": "$"},
                        "Next": "_init",
                    },
                )
            else:
                # A default holds a key ending in ".$": Parameters would read it as a path,
                # so the defaults go in as a Result, which is taken as it is.
                scope.add(
                    start,
                    {"Type": "Pass", "Parameters": {"given.$": "$"}, "Next": "_defaults"},
                )
                scope.add(
                    "_defaults",
                    {
                        "Type": "Pass",
                        "Result": defaults,
                        "ResultPath": "$.defaults",
                        "Next": "_init",
                    },
                )
        body = scope.finish(start, self.warnings, self.entries)
        comment = f"Loopline workflow {wf.name} {wf.version}"
        if wf.description:
            comment += f": {wf.description.strip().splitlines()[0]}"
        return {"Comment": comment, **body}


_NOT_NATIVE = object()
#: The longest argument ``States.Base64Decode`` takes.
BASE64_LIMIT = 10_000


def _merged_inputs(defaults: dict[str, Any]) -> str | None:
    """The intrinsic that merges the execution input over ``defaults`` in one state, or
    None when the defaults are too large for it (``_start`` then puts them beside the
    input first). An intrinsic takes no object, and a brace in its string literals must
    be escaped for Step Functions (which moto does not read): the defaults travel as the
    base64 of their JSON text (ASCII, so any decoder reads it)."""
    try:
        text = json.dumps(defaults, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    except ValueError:
        return None
    encoded = base64.b64encode(text.encode()).decode()
    if len(encoded) > BASE64_LIMIT:
        return None
    return f"States.JsonMerge(States.StringToJson(States.Base64Decode('{encoded}')), $, false)"


def _cause_text(text: str) -> str:
    """A static Fail cause: the text, unless a Catch would read it as a function error's
    JSON cause (``FUNCTION_ERROR_CAUSE``) that it is not; then ``{"errorMessage": text}``."""
    if not (text.startswith('{"error') and text.endswith("}")):
        return text
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("errorMessage"), str):
        return text
    return json.dumps({"errorMessage": text}, ensure_ascii=False)


def _who(assignee: m.Assignee) -> str:
    """``role lead``, ``user ana`` or ``role lead (user ana)``: whom a wait asked."""
    if assignee.role and assignee.user:
        return f"role {assignee.role} (user {assignee.user})"
    if assignee.role:
        return f"role {assignee.role}"
    if assignee.user:
        return f"user {assignee.user}"
    return "the escalation assignee"


def _no_len(p: Path) -> str:
    raise NotNative("len in a branch case")


def _tree_paths(value: Any) -> list[Path]:
    return [p for t in template_tree(value) for p in t.paths()]


def _templates_paths(ts: Iterable[Template]) -> list[Path]:
    return [p for t in ts for p in t.paths()]


def count_states(definition: dict[str, Any]) -> int:
    n = 0
    for state in definition.get("States", {}).values():
        n += 1
        for b in state.get("Branches", []):
            n += count_states(b)
        if "ItemProcessor" in state:
            n += count_states(state["ItemProcessor"])
    return n


def compile_workflow(wf: m.Workflow, *, limit: int | None = None) -> CompileResult:
    """Compile a checked workflow. Raise ``CompileError``, located, for what ASL cannot
    say. A definition larger than Step Functions accepts (``limit`` bytes, by default
    ``DEFINITION_LIMIT``) is split into a parent and child state machines
    (``loopline.compiler.split``); one that cannot be is a ``CompileError`` too."""
    limit = DEFINITION_LIMIT if limit is None else limit
    t0 = time.perf_counter()
    c = Compiler(wf)
    try:
        definition = c.compile()
    except CompileError as exc:
        raise CompileError(exc.message, exc.step, exc.path, wf) from None
    human = sum(1 for s in wf.all_steps() if s.kind in m.HUMAN_KINDS)
    deployed = compact(definition)
    children: list[Any] = []
    states = count_states(definition)
    if len(deployed.encode()) > limit // 2:  # placeholders grow once deployed: measure them
        from loopline.compiler import split

        whole = split.deployed_size(deployed)
        if whole > limit:
            try:
                early = [s.id for s in wf.all_steps() if s.kind == "succeed"]
                definition, children = split.split(
                    definition, limit=limit, early_ends=early, whole=whole
                )
            except split.SplitError as exc:
                over = (
                    f"Step Functions' limit of {limit // 1024:,} KB (1 MiB)"
                    if limit == DEFINITION_LIMIT
                    else f"the limit of {limit / 1024:,.1f} KB"
                )
                raise CompileError(
                    f"the definition is {whole / 1024:,.0f} KB once "
                    f"deployed, over {over}, and it cannot be split into state machines "
                    f"that small: {exc.message}",
                    _step_of(exc.state) if exc.state else None,
                    () if exc.state and _step_of(exc.state) else ("steps",),
                    wf,
                ) from None
            deployed = compact(definition)
    report = Report(
        name=wf.name,
        type="STANDARD",
        states=states,
        lambda_tasks=c.lambda_tasks,
        native_conditions=c.native_conditions,
        lambda_conditions=c.lambda_conditions,
        human_steps=human,
        express_ok=human == 0,
        seconds=time.perf_counter() - t0,
        warnings=c.warnings,
        parts=1 + len(children),
    )
    text = dumps(definition)
    if len(text.encode()) > DEFINITION_LIMIT:
        text = deployed + "\n"
    return CompileResult(definition, report, text, deployed, children)


__all__ = [
    "CompileError",
    "CompileResult",
    "Report",
    "compact",
    "compile_workflow",
    "count_states",
    "dumps",
    "targets",
]
