"""``validate``, ``compile`` and ``run`` refuse, located, what Step Functions or the runtime
would refuse later: unknown tool names, ``step_types`` functions the nearest template does
not have, definitions over 1 MB."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import loopline as loopline_package
import pytest

from tests.conftest import ROOT

CLI = [sys.executable, "-m", "loopline.cli"]

TEMPLATE = """\
Resources:
  WordCountFunction:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: word_count/, Handler: app.handler}
  ToolFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: tool/
      Handler: app.handler
      Environment:
        Variables: {LOOPLINE_TOOL_MODULES: %s}
  Bucket:
    Type: AWS::S3::Bucket
"""

WORKFLOW = """\
name: notes
step_types:
  count: {function: %s}
steps:
  - id: fetch
    tool: %s
    args: {url: "https://example.com"}
  - id: n
    task: count
    args: {text: "{{ steps.fetch.output }}"}
"""


def loopline(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "LOOPLINE_TOOL_MODULES"}
    # The package under test, and the project root so that tests.unit.user_tools can be
    # a tool module.
    package = Path(loopline_package.__file__).parents[1]
    environ["PYTHONPATH"] = os.pathsep.join([str(package), str(ROOT)])
    environ.update(env or {})
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, cwd=cwd, env=environ, timeout=120
    )


def project(tmp_path: Path, function: str, tool: str, template_modules: str = '""') -> Path:
    (tmp_path / "template.yaml").write_text(TEMPLATE % template_modules)
    wf = tmp_path / "wf.yaml"
    wf.write_text(WORKFLOW % (function, tool))
    return wf


@pytest.mark.parametrize("command", ["validate", "compile", "run"])
def test_given_a_misspelt_template_function_then_every_command_refuses_it_located(
    tmp_path: Path, command: str
) -> None:
    project(tmp_path, "WordCountFunctoin", "http_get")

    proc = loopline(tmp_path, command, "wf.yaml")

    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        'wf.yaml:3:21: step_types.count.function: "WordCountFunctoin" is neither an ARN nor '
        'a function of template.yaml (did you mean "WordCountFunction"?)',
        "1 problem found",
    ]


def test_given_a_misspelt_tool_then_validate_refuses_it_located(tmp_path: Path) -> None:
    project(tmp_path, "WordCountFunction", "htp_get")

    proc = loopline(tmp_path, "validate", "wf.yaml")

    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        'wf.yaml:6:11: steps[0].tool: unknown tool "htp_get" (did you mean "http_get"?)',
        "1 problem found",
    ]


def test_given_the_template_names_its_functions_then_the_workflow_is_valid(
    tmp_path: Path,
) -> None:
    project(tmp_path, "WordCountFunction", "http_get")

    proc = loopline(tmp_path, "validate", "wf.yaml")

    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""


def test_given_no_template_then_functions_are_not_judged(tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(WORKFLOW % ("AnyFunction", "http_get"))

    proc = loopline(tmp_path, "validate", "wf.yaml")

    assert proc.returncode == 0, proc.stderr


def test_given_no_template_then_run_refuses_a_function_the_built_in_stack_lacks_located(
    tmp_path: Path,
) -> None:
    # run knows its stack: without a template, the built-in one (Loopline's own functions)
    (tmp_path / "wf.yaml").write_text(WORKFLOW % ("WordCountFunctoin", "http_get"))

    proc = loopline(tmp_path, "run", "wf.yaml")

    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        'wf.yaml:3:21: step_types.count.function: "WordCountFunctoin" is neither an ARN nor '
        "a function of the local stack (no template.yaml found); its functions are "
        "HelperFunction, HttpFunction, HumanFunction, LlmFunction, TaskFunction, ToolFunction",
        "1 problem found",
    ]


def test_given_a_tool_module_in_the_shell_then_its_tools_are_known(tmp_path: Path) -> None:
    project(tmp_path, "WordCountFunction", "word_count")

    proc = loopline(
        tmp_path, "validate", "wf.yaml", env={"LOOPLINE_TOOL_MODULES": "tests.unit.user_tools"}
    )

    assert proc.returncode == 0, proc.stderr


def test_given_a_tool_module_in_the_template_then_its_tools_are_known(tmp_path: Path) -> None:
    # As ``loopline run`` sets the template's variables, so do the checks.
    project(tmp_path, "WordCountFunction", "word_count", "tests.unit.user_tools")

    proc = loopline(tmp_path, "validate", "wf.yaml")

    assert proc.returncode == 0, proc.stderr


def test_given_a_tool_module_that_cannot_be_imported_then_it_is_a_warning_and_tools_are_not_judged(
    tmp_path: Path,
) -> None:
    project(tmp_path, "WordCountFunction", "anything_at_all")

    proc = loopline(tmp_path, "validate", "wf.yaml", env={"LOOPLINE_TOOL_MODULES": "no_such_mod"})

    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == [
        'warning: wf.yaml: the tool module "no_such_mod" (LOOPLINE_TOOL_MODULES) cannot be '
        "imported (No module named 'no_such_mod'); tool names are not checked"
    ]


def test_given_a_tool_module_that_cannot_be_imported_and_a_problem_then_validate_prints_the_warning_and_counts_the_problem(
    tmp_path: Path,
) -> None:
    project(tmp_path, "WordCountFunctoin", "anything_at_all")

    proc = loopline(tmp_path, "validate", "wf.yaml", env={"LOOPLINE_TOOL_MODULES": "no_such_mod"})

    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        'warning: wf.yaml: the tool module "no_such_mod" (LOOPLINE_TOOL_MODULES) cannot be '
        "imported (No module named 'no_such_mod'); tool names are not checked",
        'wf.yaml:3:21: step_types.count.function: "WordCountFunctoin" is neither an ARN nor '
        'a function of template.yaml (did you mean "WordCountFunction"?)',
        "1 problem found",
    ]


@pytest.mark.parametrize("command", ["validate", "compile", "run"])
def test_given_a_definition_over_one_megabyte_that_cannot_be_split_then_every_command_refuses_it_located(
    tmp_path: Path, command: str
) -> None:
    # Over 1 MiB, and its last step may go back to its first: no place to split it
    prompt = "x" * 4000
    steps = "".join(f"  - id: s{i}\n    llm: *p\n" for i in range(1, 300))
    (tmp_path / "big.yaml").write_text(
        f"name: big\nsteps:\n  - id: s0\n    llm: &p {prompt}\n{steps}    on_error: {{goto: s0}}\n"
    )

    proc = loopline(tmp_path, command, "big.yaml")

    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    # Located at the step from which no place to split it is left
    assert lines[0].startswith("big.yaml:3:5: steps[0]: the definition is 1,")
    assert "over Step Functions' limit of 1,024 KB (1 MiB)" in lines[0]
    assert "cannot be split into state machines that small: from step s0 on" in lines[0]
    assert lines[1:] == ["1 problem found"]
