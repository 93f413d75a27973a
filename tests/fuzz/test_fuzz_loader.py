"""Fuzz: mutated workflow files through the loader, the checks, the compiler and the CLI.

Only ``WorkflowInvalid`` may come out of loading, only ``CompileError`` out of compiling,
every problem is located in the file, and ``loopline validate`` exits 0 or 2.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
from pathlib import Path

from hypothesis import event, given
from loopline.cli import main
from loopline.compiler import compile_workflow
from loopline.compiler.compile import CompileError
from loopline.dsl import WorkflowInvalid, load_workflow_text

from tests.fuzz.strategies import workflow_files

_DIR = Path(tempfile.mkdtemp(prefix="loopline-fuzz-"))


def assert_readable(text: str, filename: str) -> None:
    for line in text.splitlines():
        assert line.startswith(f"{filename}:"), line
        assert "Traceback" not in line and " object at 0x" not in line, line


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(argv))
        except SystemExit as exc:
            code = exc.code
        else:  # pragma: no cover - main always exits
            code = None
    assert isinstance(code, int), code
    return code, out.getvalue(), err.getvalue()


@given(workflow_files())
def test_given_a_mutated_workflow_file_then_it_loads_compiles_or_gives_located_problems(
    case: tuple[str, str],
) -> None:
    filename, text = case
    try:
        wf = load_workflow_text(text, filename)
    except WorkflowInvalid as exc:
        event("invalid file")
        assert exc.problems
        assert_readable(exc.render(), filename)
        return
    try:
        result = compile_workflow(wf)
    except CompileError as exc:
        event("compile error")
        assert str(exc)
        return
    event("compiled")
    assert json.loads(result.text)["States"]


@given(workflow_files())
def test_given_a_mutated_workflow_file_then_loopline_validate_exits_0_or_2(
    case: tuple[str, str],
) -> None:
    filename, text = case
    path = _DIR / filename
    path.write_bytes(text.encode("utf-8", "surrogatepass"))

    code, _, err = run_cli("validate", str(path))

    assert code in (0, 2), err
    event(f"exit {code}")
    if code == 2 and not err.startswith("error: "):
        problems = err.splitlines()[:-1]  # the last line counts them
        assert problems
        assert_readable("\n".join(problems), str(path))
