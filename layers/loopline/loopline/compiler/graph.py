"""Step-level diagrams of a workflow (Mermaid or Graphviz dot)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from loopline.dsl import models as m


@dataclass
class _Graph:
    nodes: list[tuple[str, str, str]] = field(default_factory=list)  # id, label, shape
    edges: list[tuple[str, str, str, bool]] = field(default_factory=list)  # src, dst, label, dashed
    clusters: list[tuple[str, str, list[str]]] = field(default_factory=list)

    def node(self, nid: str, label: str, shape: str = "box") -> str:
        self.nodes.append((nid, label, shape))
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


class _Builder:
    def __init__(self) -> None:
        self.g = _Graph()

    def seq(self, steps: list[Any], preds: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """Add ``steps`` after ``preds`` (node, edge label); return the new open ends."""
        for s in steps:
            preds = self.step(s, preds)
        return preds

    def _link(self, preds: list[tuple[str, str]], dst: str) -> None:
        for src, label in preds:
            self.g.edge(src, dst, label)

    def step(self, s: Any, preds: list[tuple[str, str]]) -> list[tuple[str, str]]:
        g = self.g
        if s.if_ is not None:
            guard = g.node(f"{s.id}__if", f"if {s.if_.source()}", "diamond")
            self._link(preds, guard)
            preds = [(guard, "yes")]
            skipped: list[tuple[str, str]] = [(guard, "no")]
        else:
            skipped = []
        ends = self._core(s, preds)
        if isinstance(s.on_error, m.Goto):
            g.edge(s.id, s.on_error.goto, "on error", dashed=True)
        elif s.on_error == "continue":
            ends = [*ends, (s.id, "on error")]
        return ends + skipped

    def _core(self, s: Any, preds: list[tuple[str, str]]) -> list[tuple[str, str]]:
        g = self.g
        kind = s.kind
        if kind == "group":
            return self.seq(s.group, preds)
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
            join = g.node(f"{s.id}__join", "join", "fork")
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
            before = len(g.nodes)
            ends = self.seq(loop.steps, [(node, "")])
            for src, lab in ends:
                g.edge(src, node, lab or "next", dashed=True)
            g.clusters.append((f"{s.id}__body", f"{s.id} body", [n[0] for n in g.nodes[before:]]))
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
                g.edge(node, t, "reject: rollback", dashed=True)
        if kind == "assert":
            fail = g.node(f"{s.id}__failed", "AssertionFailed", "stop")
            g.edge(node, fail, "false")
            return [(node, "true")]
        if kind in ("fail", "succeed"):
            return []
        return [(node, "")]


def build(wf: m.Workflow) -> _Graph:
    b = _Builder()
    start = b.g.node("__start", "start", "stop")
    ends = b.seq(wf.steps, [(start, "")])
    end = b.g.node("__end", "end", "stop")
    b._link(ends, end)
    return b.g


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
    clustered = {n for _, _, ns in g.clusters for n in ns}
    for nid, label, shape in g.nodes:
        if nid not in clustered:
            out.append(f"  {nid}{shapes[shape].format(_q(label))}")
    for cid, label, ns in g.clusters:
        out.append(f'  subgraph {cid}["{_q(label)}"]')
        for nid, nlabel, shape in g.nodes:
            if nid in ns:
                out.append(f"    {nid}{shapes[shape].format(_q(nlabel))}")
        out.append("  end")
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
    clustered = {n for _, _, ns in g.clusters for n in ns}
    for nid, label, shape in g.nodes:
        if nid not in clustered:
            out.append(f'  "{nid}" [label="{esc(label)}", shape={shapes[shape]}];')
    for cid, label, ns in g.clusters:
        out.append(f'  subgraph "cluster_{cid}" {{ label="{esc(label)}";')
        for nid, nlabel, shape in g.nodes:
            if nid in ns:
                out.append(f'    "{nid}" [label="{esc(nlabel)}", shape={shapes[shape]}];')
        out.append("  }")
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
