"""The ``loopline`` command as a user runs it: exit codes, output shapes, and no traceback
for any input, however broken."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, WORKFLOWS

CLI = [sys.executable, "-m", "loopline.cli"]


def loopline(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, input=stdin, cwd=ROOT, timeout=120
    )


def test_validate_accepts_an_example() -> None:
    proc = loopline("validate", "workflows/triage.yaml")
    assert proc.returncode == 0
    assert "valid" in proc.stdout


def test_compile_writes_the_checked_in_asl(tmp_path: Path) -> None:
    out = tmp_path / "triage.asl.json"
    proc = loopline("compile", "workflows/triage.yaml", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert out.read_text() == (ROOT / "statemachines" / "triage.asl.json").read_text()
    assert "STANDARD state machine" in proc.stderr


def test_compile_to_stdout_is_json() -> None:
    proc = loopline("compile", "-q", "workflows/batch_review.yaml")
    assert json.loads(proc.stdout)["StartAt"] == "_init"


def test_invalid_file_lists_every_problem_and_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: bad\nsteps:\n  - id: a\n    llm: hi\n    temprature: 1\n  - id: a\n    tool: now\n"
    )
    proc = loopline("validate", str(bad))
    assert proc.returncode == 2
    assert 'unknown key "temprature" (did you mean "temperature"?)' in proc.stderr
    assert 'duplicate id "a"' in proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_file_is_a_clear_error() -> None:
    proc = loopline("compile", "no/such/file.yaml")
    assert proc.returncode == 2
    assert "no such file" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("fmt", ["mermaid", "dot"])
def test_graph_draws_every_step(fmt: str) -> None:
    proc = loopline("graph", "workflows/research_brief.yaml", "--format", fmt)
    assert proc.returncode == 0
    for step in ("outline", "background", "risk_rank", "fact_check", "review"):
        assert step in proc.stdout
    assert proc.stdout.startswith("flowchart TD" if fmt == "mermaid" else "digraph")


def test_run_json_shape_and_exit_0() -> None:
    proc = loopline(
        "run",
        "workflows/triage.yaml",
        "--input",
        '{"ticket": "I was charged twice this month"}',
        "--llm-script",
        "workflows/scripts/triage.yaml",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert set(out) == {"status", "output", "error", "cause", "steps"}
    assert out["status"] == "SUCCEEDED"
    assert out["steps"]["classify"] == {"status": "succeeded", "starts": 1}
    assert "classify" in proc.stderr  # progress goes to stderr


def test_run_waiting_for_a_person_exits_3() -> None:
    proc = loopline(
        "run",
        "workflows/research_brief.yaml",
        "--input",
        '{"topic": "tides"}',
        "--llm-script",
        "workflows/scripts/research_brief.yaml",
        "--json",
    )
    assert proc.returncode == 3, proc.stderr
    assert json.loads(proc.stdout)["status"] == "WAITING"


def test_run_failed_exits_1() -> None:
    proc = loopline(
        "run",
        "workflows/research_brief.yaml",
        "--input",
        '{"topic": "tides"}',
        "--llm-script",
        "workflows/scripts/research_brief.yaml",
        "--decision",
        "review=reject",
    )
    assert proc.returncode == 1
    assert "Loopline.Rejected" in proc.stderr


def test_run_with_bad_inputs_exits_2_before_running() -> None:
    proc = loopline("run", "workflows/triage.yaml", "--input", '{"channel": "fax"}')
    assert proc.returncode == 2
    assert "inputs.ticket" in proc.stderr and "inputs.channel" in proc.stderr
    assert "started" not in proc.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["--input", "{not json"],
        ["--input", "[1]"],
        ["--decision", "nobody=approve"],
        ["--decision", "review"],
        ["--llm-script", "no/such/script.yaml"],
    ],
)
def test_run_with_bad_arguments_is_a_clear_error(args: list[str]) -> None:
    proc = loopline(
        "run",
        "workflows/research_brief.yaml",
        *(["--input", '{"topic": "x"}'] if args[0] != "--input" else []),
        *args,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr


def _mutations(text: str, rng: random.Random) -> list[str]:
    lines = text.splitlines()
    out = []
    for _ in range(40):
        ls = list(lines)
        op = rng.choice(["delete", "dup", "swap", "garble", "indent", "truncate"])
        i = rng.randrange(len(ls))
        if op == "delete":
            del ls[i]
        elif op == "dup":
            ls.insert(i, ls[i])
        elif op == "swap":
            j = rng.randrange(len(ls))
            ls[i], ls[j] = ls[j], ls[i]
        elif op == "garble":
            chars = list(ls[i])
            for _ in range(3):
                if chars:
                    chars[rng.randrange(len(chars))] = rng.choice("{}[]:-'\"#&*!|>%@` x9")
            ls[i] = "".join(chars)
        elif op == "indent":
            ls[i] = " " * rng.randrange(1, 5) + ls[i]
        else:
            ls = ls[:i]
        out.append("\n".join(ls) + "\n")
    return out


def test_broken_files_never_produce_a_traceback(tmp_path: Path) -> None:
    # Given many mutations of every example (lines deleted, swapped, garbled, re-indented)
    rng = random.Random(20261121)
    files = []
    for src in sorted(WORKFLOWS.glob("*.yaml")):
        for k, text in enumerate(_mutations(src.read_text(), rng)):
            f = tmp_path / f"{src.stem}_{k}.yaml"
            f.write_text(text)
            files.append(f)
    # When each is validated in one process
    code = (
        "import sys\n"
        "from loopline.dsl import WorkflowInvalid, load_workflow\n"
        "from loopline.compiler import compile_workflow\n"
        "bad = 0\n"
        "for f in sys.argv[1:]:\n"
        "    try:\n"
        "        compile_workflow(load_workflow(f))\n"
        "    except WorkflowInvalid as exc:\n"
        "        assert exc.problems, f\n"
        "        bad += 1\n"
        "print(bad)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, *map(str, files)], capture_output=True, text=True, timeout=300
    )
    # Then every one either compiles or is reported as problems: nothing else escapes
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert int(proc.stdout) > len(files) // 2
