"""Step-level diagrams of a workflow (Mermaid or Graphviz dot).

A node's id is its step's id; the nodes a step adds (its ``if``, a parallel's join, an
assert's failure) and the clusters (loop bodies, groups with retry or on_error) are
named ``_<what>_<id>``, which no step id can be, since an id starts with a letter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from loopline.dsl import models as m


@dataclass
class _Cluster:
    """A subgraph: a loop body, or the steps of a group that runs as a unit of its own."""

    cid: str
    label: str
    parent: str | None


@dataclass
class _Graph:
    """Nodes (each declared once, in its innermost cluster), edges between declared nodes,
    and clusters nested as the steps are."""

    nodes: list[tuple[str, str, str, str | None]] = field(default_factory=list)
    edges: list[tuple[str, str, str, bool]] = field(default_factory=list)  # src, dst, label, dashed
    clusters: list[_Cluster] = field(default_factory=list)
    cluster: str | None = None  # where new nodes go

    def node(self, nid: str, label: str, shape: str = "box") -> str:
        self.nodes.append((nid, label, shape, self.cluster))
        return nid

    def edge(self, src: str, dst: str, label: str = "", dashed: bool = False) -> None:
        self.edges.append((src, dst, label, dashed))


def _label(s: Any) -> str:
    kind = s.kind
    if kind == "llm":
        return f"{s.id}: llm"
    if kind in ("tool", "task"):
        return f"{s.id}: {kind} {getattr(s, kind)}"
    if kind == "http":
        return f"{s.id}: {s.http.method} {s.http.url.source}"
    if kind == "vote":
        return f"{s.id}: vote x{s.vote.voters}"
    return f"{s.id}: {kind}"


def _has_node(s: Any) -> bool:
    """Every step is a node but a group, which is its steps; a group that runs as a unit
    of its own (it has retry or on_error) is a node too, where its errors leave from."""
    return not isinstance(s, m.GroupStep) or m.own_scope(s)


def _entry(s: Any) -> str:
    """The node where step ``s`` starts (what a goto or a rollback goes to)."""
    if s.if_ is not None:
        return f"_if_{s.id}"
    if not _has_node(s):
        return _entry(s.group[0])
    return str(s.id)


class _Builder:
    def __init__(self, wf: m.Workflow) -> None:
        self.g = _Graph()
        self.entries = {s.id: _entry(s) for s in wf.all_steps()}

    def seq(self, steps: list[Any], preds: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """Add ``steps`` after ``preds`` (node, edge label); return the new open ends."""
        for s in steps:
            preds = self.step(s, preds)
        return preds

    def _link(self, preds: list[tuple[str, str]], dst: str) -> None:
        for src, label in preds:
            self.g.edge(src, dst, label)

    def _body(self, s: Any, label: str, steps: list[Any], preds: list[tuple[str, str]]) -> Any:
        """``steps`` inside a cluster of their own, nested in the current one."""
        g = self.g
        outer = g.cluster
        g.clusters.append(_Cluster(f"_body_{s.id}", label, outer))
        g.cluster = f"_body_{s.id}"
        try:
            return self.seq(steps, preds)
        finally:
            g.cluster = outer

    def step(self, s: Any, preds: list[tuple[str, str]]) -> list[tuple[str, str]]:
        g = self.g
        if s.if_ is not None:
            guard = g.node(f"_if_{s.id}", f"if {s.if_.source()}", "diamond")
            self._link(preds, guard)
            preds = [(guard, "yes")]
            skipped: list[tuple[str, str]] = [(guard, "no")]
        else:
            skipped = []
        ends = self._core(s, preds)
        if isinstance(s.on_error, m.Goto):
            g.edge(s.id, self.entries[s.on_error.goto], "on error", dashed=True)
        elif s.on_error == "continue":
            ends = [*ends, (s.id, "on error")]
        return ends + skipped

    def _core(self, s: Any, preds: list[tuple[str, str]]) -> list[tuple[str, str]]:
        g = self.g
        kind = s.kind
        if kind == "group":
            if not _has_node(s):
                return self.seq(s.group, preds)
            node = g.node(s.id, f"{s.id}: group", "box")
            self._link(preds, node)
            return list(self._body(s, s.id, s.group, [(node, "")]))
        if kind == "branch":
            node = g.node(s.id, f"{s.id}: branch", "diamond")
            self._link(preds, node)
            ends: list[tuple[str, str]] = []
            for cond, arm in s.branch.arms():
                label = cond.source() if cond is not None else "else"
                if arm:
                    ends += self.seq(arm, [(node, label)])
                else:
                    ends.append((node, label))
            return ends
        if kind == "parallel":
            fork = g.node(s.id, f"{s.id}: parallel", "fork")
            join = g.node(f"_join_{s.id}", "join", "fork")
            self._link(preds, fork)
            for entry in s.parallel:
                self._link(self.step(entry, [(fork, "")]), join)
            return [(join, "")]
        if kind == "loop":
            loop = s.loop
            label = (
                f"for each {loop.as_} in {loop.for_each.source()}"
                if loop.for_each is not None
                else f"while {loop.while_.source()}"
            )
            node = g.node(s.id, f"{s.id}: {label}", "loop")
            self._link(preds, node)
            for src, lab in self._body(s, f"{s.id} body", loop.steps, [(node, "")]):
                g.edge(src, node, lab or "next", dashed=True)
            return [(node, "done")]
        node = g.node(
            s.id,
            _label(s),
            {"fail": "stop", "succeed": "stop"}.get(
                kind, "human" if kind in m.HUMAN_KINDS else "box"
            ),
        )
        self._link(preds, node)
        if kind == "approval":
            for t in s.approval.rollback_to:
                g.edge(node, self.entries[t], "reject: rollback", dashed=True)
        if kind == "assert":
            fail = g.node(f"_failed_{s.id}", "AssertionFailed", "stop")
            g.edge(node, fail, "false")
            return [(node, "true")]
        if kind in ("fail", "succeed"):
            return []
        return [(node, "")]


def build(wf: m.Workflow) -> _Graph:
    b = _Builder(wf)
    start = b.g.node("__start", "start", "stop")
    ends = b.seq(wf.steps, [(start, "")])
    end = b.g.node("__end", "end", "stop")
    b._link(ends, end)
    return b.g


def _declarations(
    g: _Graph,
    node: Callable[[str, str, str], str],
    open_: Callable[[_Cluster], str],
    close: str,
) -> list[str]:
    """Node declarations, each cluster's nodes then its clusters, nested and indented
    two spaces a level."""
    out: list[str] = []

    def emit(cluster: str | None, depth: int) -> None:
        pad = "  " * depth
        for nid, label, shape, where in g.nodes:
            if where == cluster:
                out.append(pad + node(nid, label, shape))
        for c in g.clusters:
            if c.parent == cluster:
                out.append(pad + open_(c))
                emit(c.cid, depth + 1)
                out.append(pad + close)

    emit(None, 1)
    return out


def _q(text: str) -> str:
    return text.replace('"', "#quot;")


def mermaid(wf: m.Workflow) -> str:
    g = build(wf)
    shapes = {
        "box": '["{}"]',
        "diamond": '{{"{}"}}',
        "fork": '[["{}"]]',
        "loop": '[/"{}"/]',
        "human": '[("{}")]',
        "stop": '(["{}"])',
    }
    out = ["flowchart TD"]
    out += _declarations(
        g,
        lambda nid, label, shape: f"{nid}{shapes[shape].format(_q(label))}",
        lambda c: f'subgraph {c.cid}["{_q(c.label)}"]',
        "end",
    )
    for src, dst, label, dashed in g.edges:
        arrow = "-.->" if dashed else "-->"
        out.append(f'  {src} {arrow}|"{_q(label)}"| {dst}' if label else f"  {src} {arrow} {dst}")
    return "\n".join(out) + "\n"


def dot(wf: m.Workflow) -> str:
    g = build(wf)
    shapes = {
        "box": "box",
        "diamond": "diamond",
        "fork": "box3d",
        "loop": "parallelogram",
        "human": "house",
        "stop": "oval",
    }

    def esc(t: str) -> str:
        return t.replace("\\", "\\\\").replace('"', '\\"')

    out = [f'digraph "{esc(wf.name)}" {{', "  rankdir=TB;", "  node [fontname=Helvetica];"]
    out += _declarations(
        g,
        lambda nid, label, shape: f'"{nid}" [label="{esc(label)}", shape={shapes[shape]}];',
        lambda c: f'subgraph "cluster_{c.cid}" {{ label="{esc(c.label)}";',
        "}",
    )
    for src, dst, label, dashed in g.edges:
        attrs = []
        if label:
            attrs.append(f'label="{esc(label)}"')
        if dashed:
            attrs.append("style=dashed")
        suffix = f" [{', '.join(attrs)}]" if attrs else ""
        out.append(f'  "{src}" -> "{dst}"{suffix};')
    out.append("}")
    return "\n".join(out) + "\n"
