"""What reaches each Lambda: exactly the values its templates and expressions read.

A Lambda payload's ``values`` (docs/internals.md, "Lambda payloads") is a sparse copy of
the state document, built by Step Functions from the ``Parameters`` the compiler writes.
A JSONPath in ``Parameters`` that selects nothing fails the execution (``States.Runtime``,
which no Catch sees), so each path a step reads is passed as the longest prefix of it
that **always** holds a value where the step runs:

- ``inputs.<name>`` of a declared input (``null`` when not given); the whole ``inputs``
  when the workflow declares none. A loop variable ``vars.<name>``.
- ``steps.<id>``, the record, always (``{}`` until the step runs).
- ``steps.<id>.output`` once ``<id>`` has finished on every way to the step (``Reach``):
  it ran, was skipped (``null``) or had its error recorded by ``on_error``. A path below
  ``output`` of a step with an ``if`` stops at the record, whose ``skipped`` says why the
  value is missing (the runtime's message names it). ``steps.<id>.usage`` of an ``llm``
  step that always runs to its end.
- Below ``output``, the keys the step's kind always gives when it finished by itself
  (no ``if``, no ``on_error``): ``vote`` (``survived, dropped, total, kept, verdicts``),
  ``http`` (``status, headers, body``), ``approval`` (``approved, by, comment, at``), an
  ``llm`` step's ``output_schema`` of ``type: object`` (its ``required`` keys: the answer
  is validated), a ``parallel`` step (its entries' ids, and below them what the entry
  gives) and a ``group`` (what its last step gives). One key deep per action output: a
  large output keeps its keys but its values may be references to S3
  (``loopline.runtime.largevalues``), which the runtime resolves.

The runtime rebuilds the context from this sparse copy as it did from whole records, so
what a template or expression reads, and the message when a value is missing, are the
same as before.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

from loopline.dsl import models as m
from loopline.dsl.expr import Path

#: The keys an output always has, by the kind of step that gives it.
VOTE_KEYS = frozenset({"survived", "dropped", "total", "kept", "verdicts"})
HTTP_KEYS = frozenset({"status", "headers", "body"})
APPROVAL_KEYS = frozenset({"approved", "by", "comment", "at"})

#: A node of the step graph: (what, step id); what is "start", "end", "check" (a while
#: loop's condition), "join" (a parallel's entries all ended) or "seq" (the end of a
#: sequence: ("seq", (owner id, n)); the top level is ("seq", None)).
Node = tuple[str, Any]
#: An edge of the graph and the steps that finish along it (a bit per step).
Edge = tuple[Node, Node, int]
#: A key of ``values`` as a path: ("inputs", name), ("steps", id, "output", key)...
Key = tuple[str, ...]


class Reach:
    """Which steps have certainly finished (their record has ``output``) where each
    Lambda of a workflow runs: a must-analysis over the step graph (sequences, ``if``
    skips, branch arms, loops, parallel entries, ``on_error`` continue/goto, rollbacks)."""

    def __init__(self, wf: m.Workflow) -> None:
        self.wf = wf
        self.steps = {s.id: s for s in wf.all_steps()}
        self.bit = {sid: 1 << i for i, sid in enumerate(self.steps)}
        self.edges: list[Edge] = []
        self.joins: dict[Node, list[Node]] = {}
        self._sequence(wf.steps, ("seq", None))
        self.done = self._solve(("start", wf.steps[0].id))

    # ------------------------------------------------------------------ the graph

    def _edge(self, src: Node, dst: Node, gen: str | None = None) -> None:
        self.edges.append((src, dst, self.bit[gen] if gen is not None else 0))

    def _sequence(self, steps: list[Any], end: Node) -> None:
        for i, s in enumerate(steps):
            self._step(s)
            self._edge(("end", s.id), ("start", steps[i + 1].id) if i + 1 < len(steps) else end)

    def _step(self, s: Any) -> None:
        start, end = ("start", s.id), ("end", s.id)
        if s.if_ is not None:  # skipped: {"output": null, "skipped": true}
            self._edge(start, end, s.id)
        if s.on_error is not None:  # the error is recorded as the output
            target = end if s.on_error == "continue" else ("start", s.on_error.goto)
            self._edge(start, target, s.id)
        if isinstance(s, m.ApprovalStep):
            for t in s.approval.rollback_to:  # a rejection that goes back; no record
                self._edge(start, ("start", t))
        if isinstance(s, m.GroupStep):
            self._edge(start, ("start", s.group[0].id))
            self._sequence(s.group, ("seq", (s.id, 0)))
            self._edge(("seq", (s.id, 0)), end, s.id)
        elif isinstance(s, m.BranchStep):
            for i, (_, arm) in enumerate(s.branch.arms()):
                if not arm:
                    self._edge(start, end, s.id)
                    continue
                self._edge(start, ("start", arm[0].id))
                self._sequence(arm, ("seq", (s.id, i)))
                self._edge(("seq", (s.id, i)), end, s.id)
        elif isinstance(s, m.ParallelStep):
            join: Node = ("join", s.id)
            self.joins[join] = [("end", e.id) for e in s.parallel]
            for e in s.parallel:
                self._edge(start, ("start", e.id))
                self._step(e)
            self._edge(join, end, s.id)
        elif isinstance(s, m.LoopStep) and s.loop.for_each is not None:
            # Each iteration starts from the state before the loop; the body's records
            # stay in the iterations (the loop's own output is the list).
            body = s.loop.steps
            self._edge(start, ("start", body[0].id))
            self._sequence(body, ("seq", (s.id, 0)))
            self._edge(start, end, s.id)
        elif isinstance(s, m.LoopStep):
            check: Node = ("check", s.id)
            body = s.loop.steps
            self._edge(start, check)
            self._edge(check, ("start", body[0].id))
            self._sequence(body, ("seq", (s.id, 0)))
            self._edge(("seq", (s.id, 0)), check)
            self._edge(check, end, s.id)
        elif not isinstance(s, (m.FailStep, m.SucceedStep)):
            self._edge(start, end, s.id)  # an action, vote, assert or human step

    def _solve(self, entry: Node) -> dict[Node, int]:
        """The finished steps (bits) at each node reached from ``entry``: the
        intersection over the ways in (the union over a parallel's entries)."""
        succ: dict[Node, list[tuple[Node, int]]] = {}
        for src, dst, gen in self.edges:
            succ.setdefault(src, []).append((dst, gen))
        join_of = {end: join for join, ends in self.joins.items() for end in ends}
        done: dict[Node, int] = {entry: 0}
        work = deque([entry])

        def reach(node: Node, value: int) -> None:
            old = done.get(node)
            new = value if old is None else old & value
            if new != old:
                done[node] = new
                work.append(node)

        while work:
            node = work.popleft()
            value = done[node]
            for dst, gen in succ.get(node, ()):
                reach(dst, value | gen)
            join = join_of.get(node)
            if join is not None and all(e in done for e in self.joins[join]):
                union = 0
                for e in self.joins[join]:
                    union |= done[e]
                if done.get(join) != union:  # the entries only lose steps: so does the join
                    done[join] = union
                    work.append(join)
        return done

    # ------------------------------------------------------------------ questions

    def finished(self, site: str | None) -> int:
        """The steps finished where step ``site`` runs a Lambda (a ``while`` loop: where
        its condition is tested), or at the workflow's output (``None``)."""
        if site is None:
            node: Node = ("seq", None)
        elif isinstance(self.steps.get(site), m.LoopStep) and self.steps[site].loop.while_:
            node = ("check", site)
        else:
            node = ("start", site)
        return self.done.get(node, 0)

    def key(self, p: Path, finished: int) -> Key | None:
        """Where in ``values`` the value of ``p`` travels: the longest prefix of its path
        that always holds a value (``None`` for a path that names no value)."""
        if p.root == "inputs":
            name = p.parts[0] if p.parts else None
            if self.wf.inputs is None or not isinstance(name, str):
                return ("inputs",)
            return ("inputs", name)
        if p.root != "steps":
            return ("vars", p.root)
        sid = p.step_id
        if sid is None:
            return None
        record: Key = ("steps", sid)
        step = self.steps.get(sid)
        rest = p.parts[1:]
        if step is None or not rest or not finished & self.bit[sid]:
            return record
        if rest[0] == "usage":
            own = step.if_ is None and step.on_error is None
            return (*record, "usage") if own and isinstance(step, m.LlmStep) else record
        if rest[0] != "output":
            return record
        if len(rest) == 1:
            return (*record, "output")
        if step.if_ is not None:
            return record
        if step.on_error is not None:
            return (*record, "output")
        below = rest[1:]
        return (*record, "output", *(str(k) for k in below[: self._keys(step, below)]))

    def _keys(self, step: Any, parts: tuple[Any, ...]) -> int:
        """How many of ``parts`` (below ``output``) the output of ``step`` always holds
        when the step finished by itself."""
        if not parts or not isinstance(parts[0], str):
            return 0
        k = parts[0]
        if isinstance(step, m.VoteStep):
            return int(k in VOTE_KEYS)
        if isinstance(step, m.HttpStep):
            return int(k in HTTP_KEYS)
        if isinstance(step, m.ApprovalStep):
            return int(k in APPROVAL_KEYS)
        if isinstance(step, m.LlmStep):
            schema = step.output_schema
            required = schema.get("required") if isinstance(schema, dict) else None
            ok = schema is not None and schema.get("type") == "object"
            return int(ok and isinstance(required, list) and k in required)
        if isinstance(step, m.ParallelStep):
            entry = next((e for e in step.parallel if e.id == k), None)
            return 0 if entry is None else 1 + self._inner(entry, parts[1:])
        if isinstance(step, m.GroupStep):
            return self._inner(step.group[-1], parts)
        return 0

    def _inner(self, step: Any, parts: tuple[Any, ...]) -> int:
        """``_keys`` of a step whose output a finished group or parallel copied."""
        if step.if_ is not None or step.on_error is not None:
            return 0
        return self._keys(step, parts)

    def parameters(self, refs: Iterable[Path], site: str | None) -> dict[str, Any]:
        """The ``values`` of a Lambda's ``Parameters`` for the paths it reads at ``site``:
        nested objects whose leaves are JSONPaths (keys ending in ``.$``)."""
        finished = self.finished(site)
        keys = {k for p in refs if (k := self.key(p, finished)) is not None}
        leaves: list[Key] = []
        for k in sorted(keys, key=lambda k: (len(k), k)):
            if not any(k[: len(leaf)] == leaf for leaf in leaves):
                leaves.append(k)
        out: dict[str, Any] = {}
        for leaf in sorted(leaves):
            node = out
            for part in leaf[:-1]:
                node = node.setdefault(part, {})
            node[f"{leaf[-1]}.$"] = "$." + ".".join(leaf)
        return out


__all__ = ["Reach"]
