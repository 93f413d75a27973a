"""What the compiler reports beyond the checks: errors located like every other problem,
the definition size limit, and the steps that never run."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from loopline.compiler import compile_workflow
from loopline.compiler.compile import CompileError, Compiler
from loopline.dsl import WorkflowInvalid, load_workflow_text, models
from loopline.dsl import checks as dsl_checks

from tests.conftest import GOLDEN_COMPILE, ROOT


def load(text: str) -> models.Workflow:
    return load_workflow_text(textwrap.dedent(text), "wf.yaml")


def warnings_of(text: str) -> list[str]:
    return compile_workflow(load(text)).report.warnings


# --------------------------------------------------------------------------- located errors

GOTO_OUT_OF_A_UNIT = """
    name: wf
    steps:
      - id: first
        llm: Draft.
      - id: route
        on_error: continue
        branch:
          if: "true"
          then:
            - id: inner
              tool: now
              on_error: {goto: first}
    """


def test_given_a_compile_error_then_it_names_the_file_line_column_and_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a goto the checks would refuse, with the goto check switched off, so that the
    # compiler meets it (the checks and the compiler agree on scopes: see test_checks)
    monkeypatch.setattr(dsl_checks, "_check_goto", lambda ctx, site, target: None)
    wf = load(GOTO_OUT_OF_A_UNIT)

    with pytest.raises(CompileError) as caught:
        compile_workflow(wf)

    assert caught.value.render() == (
        "wf.yaml:11:11: steps[1].branch.then[0]: a transition names 'first', which is not "
        "in the same scope"
    )
    assert isinstance(caught.value, WorkflowInvalid)  # rendered by the CLI like the others


def test_given_the_same_goto_with_the_checks_on_then_it_is_a_located_check_problem() -> None:
    with pytest.raises(WorkflowInvalid) as caught:
        load(GOTO_OUT_OF_A_UNIT)

    assert [p.render("wf.yaml") for p in caught.value.problems] == [
        'wf.yaml:13:28: steps[1].branch.then[0].on_error.goto: cannot go to "first": it is in '
        'the top level and this step is in branch "route" (a unit of its own: it has '
        "on_error); goto stays inside the top level, one parallel entry, one loop body, or "
        "one group, branch or while loop that has retry or on_error"
    ]


def big_workflow(steps: int, prompt_chars: int) -> str:
    prompt = "x" * prompt_chars
    body = "".join(f"  - id: s{i}\n    llm: *prompt\n" for i in range(1, steps))
    return f"name: big\nsteps:\n  - id: s0\n    llm: &prompt {prompt}\n{body}"


def test_given_a_definition_over_one_megabyte_then_it_compiles_into_state_machines_under_it() -> (
    None
):
    wf = load_workflow_text(big_workflow(300, 4000), "big.yaml")

    result = compile_workflow(wf)

    assert result.children
    assert all(
        len(t.encode()) < 1_048_576 for t in [result.text, *(c.text for c in result.children)]
    )


def test_given_a_definition_over_one_megabyte_that_cannot_be_split_then_compiling_is_a_located_error() -> (
    None
):
    # The last step may go back to the first: no place between them to split it
    wf = load_workflow_text(big_workflow(300, 4000) + "    on_error: {goto: s0}\n", "big.yaml")

    with pytest.raises(CompileError) as caught:
        compile_workflow(wf)

    assert re.fullmatch(
        r"big\.yaml:3:5: steps\[0\]: the definition is 1,[0-9]{3} KB once deployed, over Step "
        r"Functions' limit of 1,024 KB \(1 MiB\), and it cannot be split into state machines "
        r"that small: from step s0 on there is no place to end a part of at most 1,02[34] KB: a "
        r"goto, a rollback or a loop crosses every place, or a single step is larger than that",
        caught.value.render(),
    )


def test_given_a_definition_just_under_one_megabyte_then_it_compiles() -> None:
    result = compile_workflow(load_workflow_text(big_workflow(150, 4000), "big.yaml"))

    assert 500_000 < len(result.text.encode()) < 1_048_576
    assert result.report.warnings == []


# --------------------------------------------------------------------------- scopes agree


@pytest.mark.parametrize(
    "path",
    [
        *sorted((ROOT / "workflows").glob("*.yaml")),
        *sorted(GOLDEN_COMPILE.glob("*.yaml")),
        *sorted((ROOT / "tests" / "golden" / "graph").glob("*.yaml")),
    ],
    ids=lambda p: f"{p.parent.name}/{p.stem}",
)
def test_given_any_step_then_the_checks_and_the_compiler_agree_on_its_own_scope(
    path: Path,
) -> None:
    wf = load_workflow_text(path.read_text(encoding="utf-8"), path.name)

    for step in wf.all_steps():
        assert models.own_scope(step) == Compiler._wrapped(step), step.id


# --------------------------------------------------------------------------- never runs


def test_given_a_group_with_on_error_ending_in_fail_then_no_step_is_said_never_to_run() -> None:
    assert (
        warnings_of(
            """
            name: wf
            steps:
              - id: g
                on_error: continue
                group:
                  - id: a
                    tool: now
                  - id: stop
                    fail: boom
              - id: after
                tool: now
            """
        )
        == []
    )


def test_given_a_group_ending_in_fail_then_only_the_steps_after_it_never_run() -> None:
    assert warnings_of(
        """
        name: wf
        steps:
          - id: g
            group:
              - id: a
                tool: now
              - id: stop
                fail: boom
          - id: after
            tool: now
        """
    ) == ["never runs (nothing leads to it): after"]


def test_given_groups_with_retry_and_on_error_then_no_warning() -> None:
    assert (
        warnings_of(
            """
            name: wf
            steps:
              - id: g
                on_error: {goto: recover}
                retry: {max_attempts: 2}
                group:
                  - id: a
                    tool: now
                  - id: b
                    succeed: done
              - id: recover
                tool: now
            """
        )
        == []
    )
