"""A workflow whose definition is over Step Functions' 1 MiB compiles into a parent and
child state machines, each under the limit (``loopline.compiler.split``)."""

from __future__ import annotations

import json
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from loopline.compiler import compile_workflow
from loopline.compiler.compile import DEFINITION_LIMIT, CompileError, CompileResult
from loopline.compiler.split import (
    PARENT_EXECUTION,
    START_CHILD,
    deployed_size,
    part_file,
    split,
)
from loopline.dsl import load_workflow, load_workflow_text

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
from generate import generate

GOLDEN_SPLIT = ROOT / "tests" / "golden" / "split"
#: ``make golden`` compiles the split cases with ``--max-bytes`` this large.
GOLDEN_LIMIT = 5500


@cache
def compiled(n: int) -> CompileResult:
    text = yaml.safe_dump(generate(n), sort_keys=False)
    return compile_workflow(load_workflow_text(text, f"bench-{n}.yaml"))


def machines(result: CompileResult) -> list[dict[str, Any]]:
    return [result.definition, *(c.definition for c in result.children)]


def test_a_5000_step_workflow_compiles_into_machines_each_under_1_mib() -> None:
    # Given the generated 5,000-step workflow (nine times Step Functions' limit today)
    result = compiled(5000)

    # Then it is a parent and children, each under 1 MiB once deployed
    assert len(result.children) >= 2
    sizes = [deployed_size(result.deployed), *(deployed_size(c.deployed) for c in result.children)]
    assert max(sizes) < DEFINITION_LIMIT, sizes
    assert [c.suffix for c in result.children] == [
        f"--part-{n}" for n in range(2, len(result.children) + 2)
    ]
    assert result.report.parts == len(sizes)
    assert any("split into" in line for line in result.report.lines())


def test_every_state_of_the_workflow_is_in_exactly_one_machine() -> None:
    result = compiled(5000)
    names = [n for m in machines(result) for n in m["States"] if not n.startswith("_part")]
    assert len(names) == len(set(names))
    from loopline.compiler.compile import Compiler

    text = yaml.safe_dump(generate(5000), sort_keys=False)
    whole = Compiler(load_workflow_text(text, "bench.yaml")).compile()
    assert set(names) == set(whole["States"])


def test_the_parent_runs_each_child_in_turn_with_the_records_it_needs() -> None:
    result = compiled(5000)
    calls = [
        (name, s)
        for name, s in result.definition["States"].items()
        if s.get("Resource") == START_CHILD
    ]
    assert [name for name, _ in calls] == [f"_part-{n}" for n in range(2, len(calls) + 2)]
    for name, call in calls:
        params = call["Parameters"]
        assert params["StateMachineArn.$"] == (
            f"States.Format('{{}}--{name[1:]}', $$.StateMachine.Id)"
        )
        assert params["Input"][f"{PARENT_EXECUTION}.$"] == "$$.Execution.Id"
        state = params["Input"]["state"]
        assert {k: v for k, v in state.items() if k != "steps"} == {
            "inputs.$": "$.inputs",
            "vars.$": "$.vars",
            "ctl.$": "$.ctl",
        }
        # Each step reads the one before it: a child gets that record from before it
        assert len(state["steps"]) <= 3, state["steps"]
        assert all(v == f"$.steps.{k[:-2]}" for k, v in state["steps"].items())
        assert call["OutputPath"] == "$.Output"
    for child in result.children:
        # and makes its own steps' records as they are before they run
        states = child.definition["States"]
        assert child.definition["StartAt"] == "_part.enter"
        assert all(v == {} for v in states["_part.enter"]["Result"].values())
        assert states["_part.enter"]["ResultPath"] == "$.fresh"
        assert states["_part.state"]["Parameters"]["steps.$"] == (
            "States.JsonMerge($.fresh, $.state.steps, false)"
        )
    # The parent keeps only what makes the state document (no step's state)
    assert all(name.startswith("_") for name in result.definition["States"])


def test_a_child_names_the_parents_execution_in_every_payload() -> None:
    result = compiled(5000)
    for child in result.children:
        assert "$$.Execution.Id" not in child.text
        assert f"$$.Execution.Input.{PARENT_EXECUTION}" in child.text


def test_a_definition_within_the_limit_is_not_split() -> None:
    result = compiled(200)
    assert result.children == []
    assert split(result.definition) == (result.definition, [])


def test_splitting_is_deterministic() -> None:
    wf = load_workflow(GOLDEN_SPLIT / "handoff.yaml")
    first = compile_workflow(wf, limit=GOLDEN_LIMIT)
    second = compile_workflow(wf, limit=GOLDEN_LIMIT)
    assert [first.text, *(c.text for c in first.children)] == [
        second.text,
        *(c.text for c in second.children),
    ]


def golden_split_cases() -> list[Path]:
    return sorted(GOLDEN_SPLIT.glob("*.yaml"))


@pytest.mark.parametrize("source", golden_split_cases(), ids=lambda p: p.name)
def test_checked_in_split_machines_are_current(source: Path) -> None:
    # Given a workflow compiled into parts small enough for --max-bytes GOLDEN_LIMIT
    result = compile_workflow(load_workflow(source), limit=GOLDEN_LIMIT)
    parent = source.with_suffix(".asl.json")
    files = {parent: result.text}
    for child in result.children:
        files[Path(part_file(str(parent), child.suffix))] = child.text
    # Then the checked-in parent and children are byte-identical (else stale: make golden)
    on_disk = {p for p in GOLDEN_SPLIT.glob(f"{source.stem}*.asl.json")}
    assert on_disk == set(files), "the parts changed: run `make golden` and review the diff"
    for path, text in files.items():
        assert text == path.read_text(encoding="utf-8"), f"{path.name} is stale: make golden"


def test_the_golden_case_splits_after_every_kind_of_part() -> None:
    # The golden case has a child with a wait, one that may end early, one that may fail
    result = compile_workflow(load_workflow(GOLDEN_SPLIT / "handoff.yaml"), limit=GOLDEN_LIMIT)
    states = [c.definition["States"] for c in result.children]
    assert any("gate" in s for s in states)
    # The succeed step ends its child with a mark the parent reads (not a Succeed state)
    early = next(s for s in states[:-1] if "early" in s)
    assert early["early"]["Type"] == "Pass" and early["early"]["Next"] == "_part.ended"
    assert early["_part.ended"]["Parameters"] == {"_succeeded.$": "$"}
    assert any("boom.failed" in s for s in states)
    assert result.definition["States"]["_part.succeeded"]["OutputPath"] == "$._succeeded"


def test_a_workflow_no_cut_can_divide_is_a_located_compile_error() -> None:
    # Given a large workflow whose last step may go back to its first
    doc = generate(1500)
    doc["steps"][-1]["on_error"] = {"goto": doc["steps"][0]["id"]}
    wf = load_workflow_text(yaml.safe_dump(doc, sort_keys=False), "loop.yaml")
    assert deployed_size(compile_workflow(wf, limit=10**9).deployed) > DEFINITION_LIMIT
    # When it is compiled for Step Functions
    with pytest.raises(CompileError) as err:
        compile_workflow(wf)
    # Then the error says why it cannot be split, located in the file
    text = str(err.value)
    assert text.startswith("loop.yaml:")
    assert "cannot be split into state machines that small" in text
    assert "a goto, a rollback or a loop crosses every place" in text


def test_placeholders_count_as_the_arns_that_replace_them() -> None:
    text = '{"Resource": "${LlmFunctionArn}"}'
    assert deployed_size(text) == len(text) - len("${LlmFunctionArn}") + 120


def test_children_are_written_beside_the_parent() -> None:
    assert part_file("out/x.asl.json", "--part-2") == "out/x--part-2.asl.json"
    assert part_file("x.json", "--part-3") == "x--part-3.json"
    assert part_file("x", "--part-2") == "x--part-2"


def loopline(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loopline.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def test_compile_writes_the_parent_and_each_child(tmp_path: Path) -> None:
    out = tmp_path / "out" / "handoff.asl.json"
    proc = loopline(
        "compile",
        str(GOLDEN_SPLIT / "handoff.yaml"),
        "--max-bytes",
        str(GOLDEN_LIMIT),
        "-o",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    written = sorted(p.name for p in out.parent.iterdir())
    assert written == sorted(p.name for p in GOLDEN_SPLIT.glob("handoff*.asl.json"))
    assert "split into 3 state machines" in proc.stderr
    for path in out.parent.iterdir():
        assert json.loads(path.read_text())["States"]


def test_compile_of_a_split_workflow_needs_an_output_file() -> None:
    proc = loopline("compile", str(GOLDEN_SPLIT / "handoff.yaml"), "--max-bytes", str(GOLDEN_LIMIT))
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "compiles to 3 state machines" in proc.stderr
    assert "-o FILE" in proc.stderr
    assert "Traceback" not in proc.stderr
