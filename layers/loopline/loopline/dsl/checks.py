"""Checks that need the whole workflow: unique ids, references, jump targets and the rules
that tie a step to where it stands (``succeed`` inside a loop, ``timeout`` on a group...),
and, given a ``CheckContext``, the names that only the place it runs knows (tools, the
template's functions).

``check_workflow`` returns every problem, each located with the positions the loader
recorded. It also runs on what validated of an invalid file: its ``Gaps`` say what is
missing (an ``InvalidStep`` stands for each invalid step), and no problem that only follows
from a gap is reported.

How references are judged
-------------------------
Every step sits in a chain of sequences from the top level down: the top-level ``steps``,
a ``group``, one entry of a ``parallel``, a loop body, one arm of a ``branch``. A reference
from a place P (a step's field, or the top-level ``output``) to step T compares the two
chains at the first sequence where they part:

- the same sequence: T is earlier (fine, with the conditions below) or later (an error,
  except inside a ``while`` body where an earlier iteration may have run it: then an
  ``exists`` guard is required; a step reading its own output likewise);
- two entries of the same ``parallel``: they run concurrently, an error;
- two arms of the same ``branch``: never both run, an error;
- T encloses P: it has not finished, an error;
- P encloses T: only a ``while`` condition may read its body's steps.

Going down from the earlier sibling to T, a ``for_each`` body is opaque (use the loop's
output), while a branch arm or a ``while`` body may not have run, so such a reference needs
an ``exists(steps.<id>)`` guard: in the expression's top-level conjunction, in the
``not exists(...) or ...`` form, or in the ``if`` of the referencing step, of a step that
encloses it, or of the branch arm it is in. ``group`` and ``parallel`` are transparent.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from loopline.dsl import models
from loopline.dsl.expr import Call, Expr, Not, Or, Path, guarded_steps, walk
from loopline.dsl.inputs import check_value
from loopline.dsl.loader import Document, Gaps
from loopline.dsl.problems import Loc, Problem, did_you_mean, format_loc
from loopline.dsl.template import Template, parse_template

RESERVED_LOOP_NAMES = ("inputs", "steps", "index")
#: In a site's guards: every step counts as guarded (an invalid ``if`` was left out, and
#: which steps it checks is unknown).
ANY_STEP = "*"


class CheckContext:
    """What the checks cannot know from the file itself: where the workflow runs.

    ``tools`` are the tool names the runtime's registry knows; ``functions`` the logical
    ids of the Lambda functions of the template the workflow is deployed with (a
    ``step_types`` function is an ARN or one of them, ``${<Id>Arn}`` in the definition);
    ``template`` names that template in messages. A part left ``None`` is not judged.
    A subclass may work a part out only when a workflow needs it (``tool_names``,
    ``function_names``).
    """

    def __init__(
        self,
        tools: Collection[str] | None = None,
        functions: Collection[str] | None = None,
        template: str = "template.yaml",
    ) -> None:
        self.tools = tools
        self.functions = functions
        self.template = template

    def tool_names(self, wanted: Collection[str]) -> Collection[str] | None:
        """The tool names known, enough to judge ``wanted``; ``None``: unknown."""
        return self.tools

    def function_names(self) -> Collection[str] | None:
        """The template's function logical ids; ``None``: unknown."""
        return self.functions


@dataclass(frozen=True)
class Seq:
    """One sequence of steps: ``owner`` is the id of the step holding it (``None`` for the
    top level), ``kind`` one of top/group/parallel/for_each/while/arm, or ``invalid`` for
    a sequence inside an invalid step (how it runs is unknown), ``slot`` the arm or
    parallel entry number (0 otherwise)."""

    owner: str | None
    kind: str
    slot: int = 0


Chain = tuple[tuple[Seq, int], ...]


@dataclass
class Site:
    """Where a step stands."""

    step: Any
    loc: Loc
    chain: Chain
    loop_vars: dict[str, str]  # loop variable name -> id of its for_each loop
    guards: frozenset[str]  # step ids guarded by enclosing ifs and arm conditions


@dataclass
class _Ctx:
    wf: models.Workflow
    doc: Document
    context: CheckContext
    gaps: Gaps | None
    sites: list[Site] = field(default_factory=list)
    by_id: dict[str, Site] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    seen: set[tuple[str, str]] = field(default_factory=set)

    def add(self, loc: Loc, message: str, *, key: bool = False) -> None:
        removed = self.gaps.removed if self.gaps is not None else set()
        if removed and any(loc[:i] in removed for i in range(1, len(loc) + 1)):
            return  # at an invalid field left out of its step: already reported
        path = format_loc(loc)
        if (path, message) in self.seen:
            return
        self.seen.add((path, message))
        line, col = self.doc.key_position(loc) if key else self.doc.position(loc)
        self.problems.append(Problem(line, col, path, message))


def check_workflow(
    wf: models.Workflow,
    doc: Document,
    context: CheckContext | None = None,
    gaps: Gaps | None = None,
) -> list[Problem]:
    """Every problem the whole-workflow checks find, in file order. ``gaps``: what an
    invalid file's validation could not build (see ``loader.validate_document``)."""
    ctx = _Ctx(wf, doc, context or CheckContext(), gaps)
    _collect(ctx, _numbered(wf.steps, ("steps",)), (), Seq(None, "top"), {}, frozenset())
    _check_ids(ctx)
    for site in ctx.sites:
        if isinstance(site.step, models.InvalidStep):
            # Its own problems are reported; what of it validates is checked like a
            # valid step (a field that did not validate is a gap).
            if site.step.partial is None:
                continue
            site = replace(site, step=site.step.partial)
        _check_step(ctx, site)
        _check_references(ctx, site)
    _check_output(ctx)
    _check_top_level(ctx)
    _check_tools(ctx)
    _check_functions(ctx)
    return sorted(ctx.problems)


def step_locations(wf: models.Workflow) -> dict[str, Loc]:
    """The location of each step of ``wf`` (``steps[1].branch.then[0]``), by id."""
    ctx = _Ctx(wf, Document(None), CheckContext(), None)
    _collect(ctx, _numbered(wf.steps, ("steps",)), (), Seq(None, "top"), {}, frozenset())
    return {site.step.id: site.loc for site in ctx.sites}


# --------------------------------------------------------------------------- the step tree


def _guards(e: Expr | None) -> set[str]:
    """Step ids whose existence ``e`` checks before reading them."""
    if e is None:
        return set()
    out = set(guarded_steps(e))
    if isinstance(e, Or):
        # ``not exists(steps.a) or steps.a.output.ok``: the right side runs only when a exists.
        for item in e.items:
            if (
                isinstance(item, Not)
                and isinstance(item.item, Call)
                and item.item.name == "exists"
                and item.item.arg.step_id
            ):
                out.add(item.item.arg.step_id)
    return out


def _collect(
    ctx: _Ctx,
    items: list[tuple[Loc, Any]],
    chain: Chain,
    seq: Seq,
    loop_vars: dict[str, str],
    guards: frozenset[str],
) -> None:
    """Record a ``Site`` for each step of one sequence (``items``: location, step) and below."""
    for i, (sloc, step) in enumerate(items):
        schain = (*chain, (seq, i))
        ctx.sites.append(Site(step, sloc, schain, loop_vars, guards))
        inner = guards | _step_guards(ctx, step, sloc)
        sid = step.id
        if isinstance(step, models.GroupStep):
            body = _numbered(step.group, (*sloc, "group"))
            _collect(ctx, body, schain, Seq(sid, "group"), loop_vars, inner)
        elif isinstance(step, models.ParallelStep):
            for j, entry in enumerate(step.parallel):
                entry_items = [((*sloc, "parallel", j), entry)]
                _collect(ctx, entry_items, schain, Seq(sid, "parallel", j), loop_vars, inner)
        elif isinstance(step, models.LoopStep):
            spec = step.loop
            body = _numbered(spec.steps, (*sloc, "loop", "steps"))
            if spec.for_each is not None:
                body_vars = {**loop_vars, spec.as_: sid, "index": sid}
                _collect(ctx, body, schain, Seq(sid, "for_each"), body_vars, inner)
            else:
                _collect(ctx, body, schain, Seq(sid, "while"), loop_vars, inner)
        elif isinstance(step, models.BranchStep):
            spec_b = step.branch
            for k, (cond, arm) in enumerate(spec_b.arms()):
                if cond is None:
                    arm_loc: Loc = (*sloc, "branch", "else")
                elif spec_b.cases is not None:
                    arm_loc = (*sloc, "branch", "cases", k, "then")
                else:
                    arm_loc = (*sloc, "branch", "then")
                arm_guards = inner | _guards(cond)
                body = _numbered(arm, arm_loc)
                _collect(ctx, body, schain, Seq(sid, "arm", k), loop_vars, arm_guards)
        elif isinstance(step, models.InvalidStep):
            body_vars = {**loop_vars, **{name: sid for name in step.loop_names}}
            for k, items in enumerate(step.bodies):
                _collect(ctx, items, schain, Seq(sid, "invalid", k), body_vars, inner)


def _step_guards(ctx: _Ctx, step: Any, loc: Loc) -> set[str]:
    """The step ids the ``if`` of ``step`` (at ``loc``) guards."""
    if ctx.gaps is not None and (*loc, "if") in ctx.gaps.removed:
        return {ANY_STEP}
    return _guards(step.if_)


def _numbered(steps: list[Any], loc: Loc) -> list[tuple[Loc, Any]]:
    return [((*loc, i), s) for i, s in enumerate(steps)]


# --------------------------------------------------------------------------- ids


def _check_ids(ctx: _Ctx) -> None:
    for site in ctx.sites:
        sid = site.step.id
        if sid is None:  # an invalid step whose id is invalid too
            continue
        if sid in ctx.by_id:
            ctx.add((*site.loc, "id"), f'duplicate id "{sid}"')
        else:
            ctx.by_id[sid] = site


def _a(kind: str) -> str:
    """The article for a step kind, as it is read aloud ("an llm", "an http", "a tool")."""
    return "an" if kind in ("llm", "http", "assert", "approval") else "a"


def _lost(ctx: _Ctx, target_id: str) -> bool:
    """Whether step ``target_id`` is missing only because the file has a problem already
    reported (an invalid id, an unusable step list)."""
    gaps = ctx.gaps
    return gaps is not None and (gaps.steps or target_id in gaps.ids)


def _unknown_step(ctx: _Ctx, target_id: str) -> str | None:
    """The problem of naming step ``target_id`` when no step has that id."""
    if _lost(ctx, target_id):
        return None
    return f'no step has id "{target_id}"{did_you_mean(target_id, ctx.by_id)}'


def _invalid_in(chain: Chain) -> bool:
    return any(seq.kind == "invalid" for seq, _ in chain)


# --------------------------------------------------------------------------- per-step rules


def _scope(ctx: _Ctx, chain: Chain) -> tuple[str | None, str, int]:
    """The state machine scope a step compiles into: the top level, a parallel entry, the
    body of a for_each loop, or a group, branch or while loop that runs as a unit of its
    own (``models.own_scope``: it has retry or on_error). Other groups, branch arms and
    while bodies open no new one."""
    for seq, _ in reversed(chain):
        if seq.kind in ("parallel", "for_each"):
            return (seq.owner, seq.kind, seq.slot)
        if seq.kind in ("group", "arm", "while") and seq.owner is not None:
            owner = ctx.by_id.get(seq.owner)
            if owner is not None and models.own_scope(owner.step):
                return (seq.owner, "unit", 0)
    return (None, "top", 0)


def _describe_scope(ctx: _Ctx, scope: tuple[str | None, str, int]) -> str:
    owner, kind, slot = scope
    if kind == "parallel":
        return f'entry {slot} of parallel "{owner}"'
    if kind == "for_each":
        return f'the body of for_each loop "{owner}"'
    if kind == "unit" and owner is not None:
        step = ctx.by_id[owner].step
        what = "while loop" if isinstance(step, models.LoopStep) else step.kind
        has = " and ".join(n for n in ("retry", "on_error") if getattr(step, n) is not None)
        return f'{what} "{owner}" (a unit of its own: it has {has})'
    return "the top level"


def _check_step(ctx: _Ctx, site: Site) -> None:
    step, loc = site.step, site.loc
    kind = step.kind
    set_fields = step.model_fields_set

    # timeout
    if kind == "pause":
        if step.timeout is None:
            ctx.add((*loc, "timeout"), "a pause needs a timeout: how long to wait (e.g. 48h)")
    elif kind in ("approval", "human_task"):
        # Without one of its own (an invalid step's), "move it inside" was said already.
        if "timeout" in set_fields and getattr(step, kind).timeout is not None:
            ctx.add(
                (*loc, "timeout"),
                f"put the timeout of {_a(kind)} {kind} step inside it ({kind}.timeout), "
                "not on the step",
                key=True,
            )
    elif kind not in models.ACTION_KINDS and "timeout" in set_fields:
        ctx.add(
            (*loc, "timeout"),
            f"timeout applies to action and human steps, not to {_a(kind)} {kind} step",
            key=True,
        )

    # fail / succeed end the task: nothing to retry, nothing to catch
    if kind in ("fail", "succeed"):
        for name in ("retry", "on_error"):
            if name in set_fields:
                ctx.add((*loc, name), f"{_a(kind)} {kind} step takes no {name}", key=True)

    if kind == "succeed":
        for seq, _ in site.chain:
            if seq.kind == "parallel":
                ctx.add(
                    (*loc, "succeed"),
                    f'succeed ends the whole task, so it cannot be inside parallel "{seq.owner}" '
                    "(the other entries are still running)",
                    key=True,
                )
                break
            if seq.kind in ("for_each", "while"):
                how = "let it finish" if seq.kind == "for_each" else "end it with its condition"
                ctx.add(
                    (*loc, "succeed"),
                    f"succeed ends the whole task, so it cannot be inside {seq.kind} loop "
                    f'"{seq.owner}"; {how} and succeed after it',
                    key=True,
                )
                break

    if kind == "task" and step.task is not None:  # None: invalid (``InvalidStep.partial``)
        types = ctx.wf.step_types
        broken = ctx.gaps.step_types if ctx.gaps is not None else set()
        if step.task not in types and broken is not None and step.task not in broken:
            if types:
                msg = f'unknown step type "{step.task}"{did_you_mean(step.task, types)}'
                if not did_you_mean(step.task, types):
                    msg += f"; step_types declares {', '.join(sorted(types))}"
            else:
                msg = f'unknown step type "{step.task}": declare it under step_types'
            ctx.add((*loc, "task"), msg)

    if isinstance(step, models.LoopStep) and step.loop.for_each is not None:
        name = step.loop.as_
        if name in RESERVED_LOOP_NAMES:
            ctx.add(
                (*loc, "loop", "as"),
                f'"{name}" is reserved; choose another name for the loop variable',
            )

    if isinstance(step.on_error, models.Goto):
        _check_goto(ctx, site, step.on_error.goto)

    if isinstance(step, models.ApprovalStep):
        _check_rollback(ctx, site, step.approval.rollback_to)


def _check_goto(ctx: _Ctx, site: Site, target: str) -> None:
    loc = (*site.loc, "on_error", "goto")
    dest = ctx.by_id.get(target)
    if dest is None:
        message = _unknown_step(ctx, target)
        if message:
            ctx.add(loc, message)
        return
    if dest.loc == site.loc:
        ctx.add(loc, "a step cannot go to itself on error; use retry to run it again")
        return
    if _invalid_in(site.chain) or _invalid_in(dest.chain):
        return  # where an invalid step's steps run is unknown
    here, there = _scope(ctx, site.chain), _scope(ctx, dest.chain)
    if here != there:
        ctx.add(
            loc,
            f'cannot go to "{target}": it is in {_describe_scope(ctx, there)} and this step '
            f"is in {_describe_scope(ctx, here)}; goto stays inside the top level, one "
            "parallel entry, one loop body, or one group, branch or while loop that has "
            "retry or on_error",
        )


def _check_rollback(ctx: _Ctx, site: Site, targets: list[str]) -> None:
    for i, target in enumerate(targets):
        loc = (*site.loc, "approval", "rollback_to", i)
        dest = ctx.by_id.get(target)
        if dest is None:
            message = _unknown_step(ctx, target)
            if message:
                ctx.add(loc, message)
            continue
        my_seq, my_index = site.chain[-1]
        its_seq, its_index = dest.chain[-1]
        if dest.loc == site.loc:
            ctx.add(loc, "an approval cannot roll back to itself; name an earlier step")
        elif its_seq != my_seq:
            ctx.add(
                loc,
                f'rollback target "{target}" is not in the same sequence as this approval; '
                "name an earlier step of the list that holds the approval",
            )
        elif its_index > my_index:
            ctx.add(
                loc,
                f'rollback target "{target}" runs after this approval; '
                "name a step that runs before it",
            )


# --------------------------------------------------------------------------- references


def _template_tree(value: Any, loc: Loc) -> Iterator[tuple[Loc, Template]]:
    if isinstance(value, str):
        yield loc, parse_template(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _template_tree(v, (*loc, str(k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _template_tree(v, (*loc, i))


@dataclass(frozen=True)
class _Use:
    """One expression to check: where it is and how it is evaluated."""

    loc: Loc
    expr: Expr
    own_body: bool = False  # a while condition: may read its own body's steps


def _uses(step: Any, loc: Loc) -> Iterator[_Use]:
    """Every expression (template holes included) of ``step``'s own fields."""

    def tmpl(t: Template | None, where: Loc) -> Iterator[_Use]:
        if t is not None:
            for e in t.expressions():
                yield _Use(where, e)

    def tree(value: Any, where: Loc) -> Iterator[_Use]:
        for sub, t in _template_tree(value, where):
            yield from tmpl(t, sub)

    if step.if_ is not None:
        yield _Use((*loc, "if"), step.if_)
    if isinstance(step, models.LlmStep):
        yield from tmpl(step.llm, (*loc, "llm"))
        yield from tmpl(step.system, (*loc, "system"))
    elif isinstance(step, (models.ToolStep, models.TaskStep)):
        yield from tree(step.args, (*loc, "args"))
    elif isinstance(step, models.HttpStep):
        h, hloc = step.http, (*loc, "http")
        yield from tmpl(h.url, (*hloc, "url"))
        for k, t in h.headers.items():
            yield from tmpl(t, (*hloc, "headers", k))
        for k, t in h.query.items():
            yield from tmpl(t, (*hloc, "query", k))
        yield from tree(h.body, (*hloc, "body"))
    elif isinstance(step, models.BranchStep):
        b = step.branch
        if b.if_ is not None:
            yield _Use((*loc, "branch", "if"), b.if_)
        for i, case in enumerate(b.cases or []):
            yield _Use((*loc, "branch", "cases", i, "if"), case.if_)
    elif isinstance(step, models.LoopStep):
        if step.loop.for_each is not None:
            yield _Use((*loc, "loop", "for_each"), step.loop.for_each)
        if step.loop.while_ is not None:
            yield _Use((*loc, "loop", "while"), step.loop.while_, own_body=True)
    elif isinstance(step, models.VoteStep):
        if step.vote.input is not None:  # None: invalid (``InvalidStep.partial``)
            yield _Use((*loc, "vote", "input"), step.vote.input)
    elif isinstance(step, models.AssertStep):
        if step.assert_ is not None:
            yield _Use((*loc, "assert"), step.assert_)
        yield from tmpl(step.message, (*loc, "message"))
    elif isinstance(step, models.FailStep):
        yield from tmpl(step.fail, (*loc, "fail"))
    elif isinstance(step, models.SucceedStep):
        yield from tree(step.succeed, (*loc, "succeed"))
    elif isinstance(step, (models.ApprovalStep, models.HumanTaskStep)):
        spec = step.approval if isinstance(step, models.ApprovalStep) else step.human_task
        hloc = (*loc, step.kind)
        yield from tmpl(spec.instruction, (*hloc, "instruction"))
        for k, t in spec.context.items():
            yield from tmpl(t, (*hloc, "context", k))
    elif isinstance(step, models.PauseStep):
        yield from tmpl(step.pause, (*loc, "pause"))


def _paths_with_exists(e: Expr) -> Iterator[tuple[Path, bool]]:
    """Every path of ``e``, and whether it is the argument of ``exists()``."""
    exists_args = {id(n.arg) for n in walk(e) if isinstance(n, Call) and n.name == "exists"}
    for node in walk(e):
        if isinstance(node, Path):
            yield node, id(node) in exists_args


def _check_references(ctx: _Ctx, site: Site) -> None:
    step_guards = site.guards | _step_guards(ctx, site.step, site.loc)
    for use in _uses(site.step, site.loc):
        guards = step_guards | _guards(use.expr)
        for p, in_exists in _paths_with_exists(use.expr):
            msg = _check_path(ctx, site, use, p, guards, in_exists)
            if msg:
                ctx.add(use.loc, msg)


def _check_output(ctx: _Ctx) -> None:
    if not ctx.wf.output:
        return
    end = Site(None, ("output",), ((Seq(None, "top"), len(ctx.wf.steps)),), {}, frozenset())
    for name, value in ctx.wf.output.items():
        for sub, t in _template_tree(value, ("output", name)):
            for e in t.expressions():
                use = _Use(sub, e)
                for p, in_exists in _paths_with_exists(e):
                    msg = _check_path(ctx, end, use, p, frozenset(_guards(e)), in_exists)
                    if msg:
                        ctx.add(sub, msg)


def _check_path(
    ctx: _Ctx, site: Site, use: _Use, p: Path, guards: frozenset[str], in_exists: bool
) -> str | None:
    src = p.source()
    if p.root == "inputs":
        return _check_input_path(ctx, p)
    if p.root == "steps":
        if not p.parts or not isinstance(p.parts[0], str):
            return f"{src}: name a step, as in steps.<id>.output"
        target_id = p.parts[0]
        target = ctx.by_id.get(target_id)
        if target is None:
            message = _unknown_step(ctx, target_id)
            return f"{src}: {message}" if message else None
        if len(p.parts) > 1 and p.parts[1] not in ("output", "usage"):
            return f"{src}: after steps.{target_id} comes .output or .usage, not .{p.parts[1]}"
        if (
            len(p.parts) > 1
            and p.parts[1] == "usage"
            and target.step.kind not in ("llm", models.INVALID)  # an invalid step's is unknown
        ):
            kind = target.step.kind
            return f'{src}: only llm steps record usage; "{target_id}" is {_a(kind)} {kind} step'
        return _visibility(site, use, target, src, guards, in_exists)
    if p.root in site.loop_vars or models.ANY_NAME in site.loop_vars:
        return None  # a loop variable (any name when an invalid loop's is not one)
    in_scope = sorted(site.loop_vars, key=lambda name: (name == "index", name))
    if in_scope:
        names = ", ".join(["inputs", "steps", *in_scope])
        return f'{src}: unknown name "{p.root}"{did_you_mean(p.root, in_scope)}; a path starts with {names}'
    extra = ""
    if p.root in ("item", "index"):
        extra = f"; {p.root} exists only inside a for_each loop"
    return f'{src}: unknown name "{p.root}"; a path starts with inputs or steps{extra}'


def _check_input_path(ctx: _Ctx, p: Path) -> str | None:
    declared = ctx.wf.inputs
    if declared is None or not p.parts:
        return None
    name = p.parts[0]
    if not isinstance(name, str):
        return f"{p.source()}: name an input, as in inputs.<name>"
    if name in declared or (ctx.gaps is not None and name in ctx.gaps.inputs):
        return None
    if not declared:
        return f'{p.source()}: unknown input "{name}"; this workflow declares no inputs'
    hint = did_you_mean(name, declared) or f"; declared inputs: {', '.join(declared)}"
    return f'{p.source()}: unknown input "{name}"{hint}'


def _visibility(
    site: Site, use: _Use, target: Site, src: str, guards: frozenset[str], in_exists: bool
) -> str | None:
    """Why ``target`` cannot have run before ``use`` at ``site`` (``None`` when it can)."""
    tid = target.step.id
    here, there = site.chain, target.chain
    d = 0
    while d < len(here) and d < len(there) and here[d] == there[d]:
        d += 1
    if _invalid_in(here[d:]) or _invalid_in(there[d:]):
        return None  # how an invalid step runs the steps inside it is unknown
    guard_hint = f"guard it with exists(steps.{tid})"
    guarded = in_exists or tid in guards or ANY_STEP in guards

    if d == len(here) and d == len(there):  # the step itself
        in_while = _in_while_body(here, d - 1)
        if in_while is None or (in_while and guarded):
            return None
        if in_while:
            return (
                f"{src}: a step reads its own output only from an earlier iteration of its "
                f"while loop; {guard_hint}"
            )
        return f"{src}: a step cannot read its own output"
    if d == len(here):  # the target is inside this step
        if not use.own_body:
            return f'{src}: "{tid}" is inside this step and has not run when this is evaluated'
        for seq, _ in there[d + 1 :]:
            if seq.kind == "for_each":
                return _for_each_message(src, tid, seq)
        return None
    if d == len(there):  # the target encloses this step
        return f'{src}: "{tid}" has not finished here: this step is inside it'

    (seq_h, i_h), (seq_t, i_t) = here[d], there[d]
    if seq_h != seq_t:
        if seq_h.kind == "parallel":
            return (
                f'{src}: "{tid}" runs at the same time as this step (entries of parallel '
                f'"{seq_h.owner}" run concurrently); read it after the parallel step'
            )
        return f'{src}: "{tid}" is in another arm of branch "{seq_h.owner}" and never runs with this one'
    if i_t > i_h:
        in_while = _in_while_body(here, d)
        if in_while is None or (in_while and guarded):
            return None
        if in_while:
            return (
                f'{src}: "{tid}" runs after this step; it has a value only from an earlier '
                f"iteration of the while loop: {guard_hint}"
            )
        return f'{src}: "{tid}" runs after this step, so it has no value here'

    # an earlier step, or a step inside one: look at what lies between
    for seq, _ in there[d + 1 :]:
        if seq.kind == "for_each":
            return _for_each_message(src, tid, seq)
    if guarded:
        return None
    for seq, _ in there[d + 1 :]:
        if seq.kind == "arm":
            return (
                f'{src}: "{tid}" is inside a branch arm of "{seq.owner}" and may not have run; '
                f"{guard_hint}"
            )
        if seq.kind == "while":
            return (
                f'{src}: "{tid}" is in the body of while loop "{seq.owner}", which may run '
                f"zero times; {guard_hint}"
            )
    return None


def _for_each_message(src: str, tid: str, seq: Seq) -> str:
    return (
        f'{src}: "{tid}" is inside for_each loop "{seq.owner}" and has no single value '
        f"outside it; use steps.{seq.owner}.output (the list of each iteration's last output)"
    )


def _in_while_body(chain: Chain, depth: int) -> bool | None:
    """Whether the sequence at ``chain[depth]`` is inside a while body (no for_each between);
    ``None`` when an invalid step stands between and it cannot be told."""
    for seq, _ in reversed(chain[: depth + 1]):
        if seq.kind == "while":
            return True
        if seq.kind == "for_each":
            return False
        if seq.kind == "invalid":
            return None
    return False


# --------------------------------------------------------------------------- top level


def _check_top_level(ctx: _Ctx) -> None:
    wf = ctx.wf
    for name, spec in (wf.inputs or {}).items():
        if "default" in spec.model_fields_set and spec.default is not None:
            for rule in check_value(spec, spec.default):
                ctx.add(("inputs", name, "default"), f"default {rule}")


# --------------------------------------------------------------------------- the environment


def _check_tools(ctx: _Ctx) -> None:
    """Tool names (``tool:`` steps, ``llm`` steps' ``tools``) the registry does not know."""
    uses: list[tuple[Loc, str]] = []
    for site in ctx.sites:
        step = site.step
        if isinstance(step, models.InvalidStep):
            step = step.partial  # what validated of it
        if isinstance(step, models.ToolStep) and step.tool is not None:
            uses.append(((*site.loc, "tool"), step.tool))
        elif isinstance(step, models.LlmStep):
            uses.extend(((*site.loc, "tools", i), name) for i, name in enumerate(step.tools or []))
    if not uses:
        return
    known = ctx.context.tool_names({name for _, name in uses})
    if known is None:
        return
    for loc, name in uses:
        if name not in known:
            hint = (
                did_you_mean(name, sorted(known)) or f"; the tools are {', '.join(sorted(known))}"
            )
            ctx.add(loc, f'unknown tool "{name}"{hint}')


def _check_functions(ctx: _Ctx) -> None:
    """``step_types`` functions that are neither an ARN nor a function of the template."""
    named = [
        (name, st.function)
        for name, st in ctx.wf.step_types.items()
        if not st.function.startswith("arn:")
    ]
    if not named:
        return
    known = ctx.context.function_names()
    if known is None:
        return
    template = ctx.context.template
    for name, function in named:
        if function not in known:
            # Logical ids share their "Function" ending: only a near miss is a hint.
            hint = did_you_mean(function, sorted(known), cutoff=0.8) or (
                f"; its functions are {', '.join(sorted(known))}"
                if known
                else f"; {template} has no functions"
            )
            ctx.add(
                ("step_types", name, "function"),
                f'"{function}" is neither an ARN nor a function of {template}{hint}',
            )
