"""Golden tests of ``loopline graph``: ``graph/<case>.yaml`` draws as ``<case>.mmd``
(Mermaid) and ``<case>.dot`` (Graphviz), and every diagram, of the examples and the golden
cases too, declares each node once and draws edges between declared nodes only."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from loopline.compiler import graph
from loopline.dsl import load_workflow

from tests.conftest import GOLDEN_COMPILE, ROOT

GRAPH_DIR = Path(__file__).parent / "graph"
CASES = sorted(GRAPH_DIR.glob("*.yaml"))
EVERY_WORKFLOW = [
    *sorted((ROOT / "workflows").glob("*.yaml")),
    *sorted(GOLDEN_COMPILE.glob("*.yaml")),
    *CASES,
]


def test_given_the_graph_directory_then_it_holds_nested_cases() -> None:
    assert {p.stem for p in CASES} >= {"nested_loops", "groups_with_errors", "forks_and_arms"}


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
@pytest.mark.parametrize(("fmt", "suffix"), [("mermaid", ".mmd"), ("dot", ".dot")])
def test_given_a_golden_workflow_when_drawn_then_the_diagram_is_as_expected(
    case: Path, fmt: str, suffix: str
) -> None:
    wf = load_workflow(case)

    text = graph.mermaid(wf) if fmt == "mermaid" else graph.dot(wf)

    assert text == case.with_suffix(suffix).read_text(encoding="utf-8")


def _mermaid_declared_and_used(text: str) -> tuple[list[str], set[str], list[str]]:
    """(node ids declared, in order; subgraph ids; edge endpoints)."""
    nodes, clusters, ends = [], set(), []
    for line in text.splitlines()[1:]:
        line = line.strip()
        if line.startswith("subgraph "):
            clusters.add(line.split()[1].split("[")[0])
        elif line == "end":
            continue
        elif m := re.fullmatch(r"(\S+) -\.?->(?:\|\"[^\"]*\"\|)? (\S+)", line):
            ends += [m.group(1), m.group(2)]
        else:
            nodes.append(re.match(r"[A-Za-z0-9_]+", line).group(0))  # type: ignore[union-attr]
    return nodes, clusters, ends


def _dot_declared_and_used(text: str) -> tuple[list[str], set[str], list[str]]:
    nodes, clusters, ends = [], set(), []
    for line in text.splitlines():
        line = line.strip()
        if m := re.match(r'subgraph "cluster_([^"]+)"', line):
            clusters.add(m.group(1))
        elif m := re.match(r'"([^"]+)" -> "([^"]+)"', line):
            ends += [m.group(1), m.group(2)]
        elif m := re.match(r'"([^"]+)" \[label=', line):
            nodes.append(m.group(1))
    return nodes, clusters, ends


@pytest.mark.parametrize("path", EVERY_WORKFLOW, ids=lambda p: f"{p.parent.name}/{p.stem}")
@pytest.mark.parametrize("fmt", ["mermaid", "dot"])
def test_given_any_workflow_when_drawn_then_each_node_is_declared_once_and_edges_join_nodes(
    path: Path, fmt: str
) -> None:
    wf = load_workflow(path)

    text = graph.mermaid(wf) if fmt == "mermaid" else graph.dot(wf)

    parse = _mermaid_declared_and_used if fmt == "mermaid" else _dot_declared_and_used
    nodes, clusters, ends = parse(text)
    assert len(nodes) == len(set(nodes)), "a node is declared twice"
    assert not set(nodes) & clusters
    assert set(ends) <= set(nodes), f"edges from or to undeclared nodes: {set(ends) - set(nodes)}"
    for step in wf.all_steps():  # every step is drawn (a plain group as its steps)
        assert step.id in nodes or step.kind == "group"


def test_given_a_group_with_on_error_when_drawn_then_its_error_edge_leaves_its_own_node() -> None:
    wf = load_workflow(GRAPH_DIR / "groups_with_errors.yaml")

    text = graph.mermaid(wf)

    assert '  publish["publish: group"]' in text
    assert '  publish -.->|"on error"| undo' in text  # a goto to a plain group: its first step
    assert '  review -.->|"reject: rollback"| _if_audit' in text


def test_given_nested_for_each_loops_when_drawn_then_each_body_nests_in_its_loop_body() -> None:
    wf = load_workflow(GRAPH_DIR / "nested_loops.yaml")

    lines = graph.mermaid(wf).splitlines()

    opened = [line for line in lines if "subgraph" in line]
    assert [line.index("subgraph") for line in opened] == [2, 4, 6, 6]
    assert sum(1 for line in lines if line.strip().startswith('read["')) == 1
