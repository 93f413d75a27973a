"""The compiled examples in statemachines/ are what the compiler makes today, and the
compiler is deterministic."""

from __future__ import annotations

from pathlib import Path

import pytest
from loopline.compiler import compile_workflow
from loopline.dsl import load_workflow

from tests.conftest import GOLDEN_COMPILE, STATEMACHINES, example_workflows


def golden_cases() -> list[tuple[Path, Path]]:
    cases = [(wf, STATEMACHINES / f"{wf.stem}.asl.json") for wf in example_workflows()]
    cases += [(wf, wf.with_suffix(".asl.json")) for wf in sorted(GOLDEN_COMPILE.glob("*.yaml"))]
    return cases


@pytest.mark.parametrize(("source", "compiled"), golden_cases(), ids=lambda p: p.name)
def test_checked_in_compiled_file_is_current(source: Path, compiled: Path) -> None:
    # Given a workflow and its checked-in compiled state machine
    assert compiled.exists(), f"{compiled} is missing: run `make compile` (or `make golden`)"
    # When it is compiled now
    text = compile_workflow(load_workflow(source)).text
    # Then the checked-in file is byte-identical (else it is stale)
    assert text == compiled.read_text(encoding="utf-8"), (
        f"{compiled.name} is stale: run `make compile` / `make golden` and review the diff"
    )


@pytest.mark.parametrize("source", example_workflows(), ids=lambda p: p.name)
def test_same_file_compiles_to_identical_bytes(source: Path) -> None:
    first = compile_workflow(load_workflow(source)).text
    second = compile_workflow(load_workflow(source)).text
    assert first == second


def test_every_step_kind_is_used_by_the_examples() -> None:
    from loopline.dsl.models import STEP_KINDS

    kinds: set[str] = set()
    loops: set[str] = set()
    for path in example_workflows():
        for step in load_workflow(path).all_steps():
            kinds.add(step.kind)
            if step.kind == "loop":
                loops.add("for_each" if step.loop.for_each is not None else "while")
    assert set(STEP_KINDS) <= kinds
    assert loops == {"for_each", "while"}
    assert len(example_workflows()) >= 6
