"""``loopline --version``, ``validate`` of several files in text, JSON and SARIF, ``graph -o``,
and output cut short by a closed pipe: the command as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from loopline import __version__

from tests.cli.test_cli import CLI, loopline
from tests.conftest import ROOT

BAD = "name: bad\nsteps:\n  - id: a\n    llm: hi\n    temprature: 1\n  - id: a\n    tool: now\n"
#: Compiles, with a warning (a step nothing leads to).
WARNS = """name: warns
steps:
  - id: a
    on_error: {goto: c}
    tool: now
  - id: stop
    fail: stop here
  - id: b
    tool: now
  - id: c
    tool: now
"""


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "bad.yaml").write_text(BAD)
    (tmp_path / "warns.yaml").write_text(WARNS)
    return {
        "ok": "workflows/triage.yaml",
        "bad": str(tmp_path / "bad.yaml"),
        "warns": str(tmp_path / "warns.yaml"),
        "missing": str(tmp_path / "missing.yaml"),
    }


def test_version_prints_the_package_version() -> None:
    proc = loopline("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"loopline {__version__}"


def test_validate_takes_several_files_and_fails_when_any_is_invalid(
    files: dict[str, str],
) -> None:
    proc = loopline("validate", files["ok"], files["bad"], files["warns"])
    assert proc.returncode == 2
    assert f"{files['ok']}: valid (" in proc.stdout
    assert f"{files['warns']}: valid (" in proc.stdout
    assert f"{files['bad']}:5:5: steps[0].temprature: unknown key" in proc.stderr
    assert "2 problems found" in proc.stderr
    assert f"warning: {files['warns']}: never runs (nothing leads to it): b" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_validate_of_valid_files_exits_0_even_with_warnings(files: dict[str, str]) -> None:
    proc = loopline("validate", files["ok"], files["warns"])
    assert proc.returncode == 0, proc.stderr


def test_validate_json_lists_every_finding_located(files: dict[str, str]) -> None:
    proc = loopline("validate", "--format", "json", files["ok"], files["bad"], files["warns"])
    assert proc.returncode == 2
    findings = json.loads(proc.stdout)
    assert findings[0] == {
        "file": files["bad"],
        "level": "error",
        "rule": "invalid-workflow",
        "line": 5,
        "column": 5,
        "path": "steps[0].temprature",
        "message": 'unknown key "temprature" (did you mean "temperature"?)',
    }
    assert [(f["file"], f["level"]) for f in findings] == [
        (files["bad"], "error"),
        (files["bad"], "error"),
        (files["warns"], "warning"),
    ]
    assert proc.stderr == ""


def test_validate_sarif_is_one_run_with_located_results(files: dict[str, str]) -> None:
    proc = loopline("validate", "--format", "sarif", files["bad"], files["warns"], files["missing"])
    assert proc.returncode == 2
    log = json.loads(proc.stdout)
    assert log["version"] == "2.1.0" and "sarif-2.1.0" in log["$schema"]
    (run,) = log["runs"]
    driver = run["tool"]["driver"]
    assert (driver["name"], driver["version"]) == ("loopline", __version__)
    assert {r["id"] for r in driver["rules"]} == {"invalid-workflow", "compile-warning"}
    first = run["results"][0]
    assert first["ruleId"] == "invalid-workflow" and first["level"] == "error"
    assert first["message"]["text"].startswith('unknown key "temprature"')
    (location,) = first["locations"]
    assert location["physicalLocation"] == {
        "artifactLocation": {"uri": Path(files["bad"]).as_posix()},
        "region": {"startLine": 5, "startColumn": 5},
    }
    assert location["logicalLocations"][0]["fullyQualifiedName"] == "steps[0].temprature"
    by_file = {
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]: r for r in run["results"]
    }
    assert by_file[files["warns"]]["level"] == "warning"
    missing = by_file[files["missing"]]
    assert "no such file" in missing["message"]["text"]
    # A finding of the whole file sits at its start.
    assert missing["locations"][0]["physicalLocation"]["region"] == {
        "startLine": 1,
        "startColumn": 1,
    }
    for result in run["results"]:
        assert {"ruleId", "level", "message", "locations"} <= set(result)


def test_graph_writes_to_a_file_with_o(tmp_path: Path) -> None:
    out = tmp_path / "drawings" / "brief.dot"
    proc = loopline("graph", "workflows/research_brief.yaml", "--format", "dot", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert out.read_text().startswith("digraph")


def test_an_unwritable_output_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    proc = loopline("graph", "workflows/triage.yaml", "-o", str(blocker / "g.mmd"))
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: cannot write") and "Traceback" not in proc.stderr


def _into_closed_pipe(*args: str, stderr_too: bool = False) -> subprocess.CompletedProcess[str]:
    """Run the command with its output going to a pipe nobody reads any more (what
    ``loopline ... | head -1`` leaves once head has its line)."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run(
            [*CLI, *args],
            stdout=write,
            stderr=write if stderr_too else subprocess.PIPE,
            text=True,
            cwd=ROOT,
            timeout=120,
        )
    finally:
        os.close(write)


@pytest.mark.parametrize(
    "args",
    [
        ["compile", "-q", "workflows/triage.yaml"],
        ["graph", "workflows/triage.yaml"],
        ["validate", "--format", "sarif", "workflows/triage.yaml"],
        [
            "run",
            "workflows/triage.yaml",
            "--input",
            '{"ticket": "I was charged twice this month"}',
            "--llm-script",
            "workflows/scripts/triage.yaml",
            "--json",
            "-q",
        ],
    ],
    ids=["compile", "graph", "validate", "run"],
)
def test_output_into_a_closed_pipe_ends_quietly(args: list[str]) -> None:
    proc = _into_closed_pipe(*args)
    assert (proc.returncode, proc.stderr) == (141, "")


def test_progress_into_a_closed_pipe_ends_the_run_quietly() -> None:
    proc = _into_closed_pipe(
        "run",
        "workflows/triage.yaml",
        "--input",
        '{"ticket": "I was charged twice this month"}',
        "--llm-script",
        "workflows/scripts/triage.yaml",
        stderr_too=True,
    )
    assert proc.returncode == 141


def test_piping_into_head_prints_the_first_line_and_no_error(tmp_path: Path) -> None:
    cli = " ".join([sys.executable, "-m", "loopline.cli"])
    proc = subprocess.run(
        f"{cli} compile -q workflows/research_brief.yaml | head -1",
        shell=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "{\n", "")
