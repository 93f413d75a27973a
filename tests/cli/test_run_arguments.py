"""``loopline run``'s arguments: hostile ``--input`` and ``--decision`` JSON is a clear input
error (exit 2, nothing run), ``--json`` is always JSON, a reviewer's comment reaches the
result, and a decision no wait used is a warning."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from loopline import jsontext
from loopline.local.run import DecisionError, parse_answer, parse_decision

from tests.cli.test_cli import loopline

BRIEF = ["workflows/research_brief.yaml", "--llm-script", "workflows/scripts/research_brief.yaml"]
NUMBERS = """name: numbers
inputs:
  n: {type: number, required: true}
  data: {type: json}
steps:
  - id: echo
    tool: json_query
    args: {data: "{{ inputs.data }}", query: "@"}
"""


@pytest.fixture
def numbers(tmp_path: Path) -> str:
    path = tmp_path / "numbers.yaml"
    path.write_text(NUMBERS)
    return str(path)


def _hostile_files(tmp_path: Path) -> dict[str, str]:
    deep = tmp_path / "deep.json"
    deep.write_text('{"n": 1, "data": ' + "[" * 100_000 + "]" * 100_000 + "}")
    digits = tmp_path / "digits.json"
    digits.write_text('{"n": ' + "9" * 5000 + "}")
    latin1 = tmp_path / "latin1.json"
    latin1.write_bytes(b'{"n": 1, "data": "caf\xe9"}')
    return {"deep": f"@{deep}", "digits": f"@{digits}", "latin1": f"@{latin1}"}


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("deep", "nested deeper than 100 levels"),
        ("digits", "an integer of 5000 digits (at most 100)"),
        ("latin1", "latin1.json: not UTF-8 text (byte 0xe9 at offset 21)"),
        ('{"n": NaN}', "--input: NaN is not a JSON number"),
        ('{"n": 1, "data": {"x": Infinity}}', "--input: Infinity is not a JSON number"),
        ('{"n": -Infinity}', "--input: -Infinity is not a JSON number"),
        ('{"n": 1e400}', "--input: the number 1e400 is too large"),
        ('{"n": 1, "data": "\\udc00"}', "--input: a string holds an unpaired surrogate"),
        ('{"n": 1', "--input: not valid JSON: Expecting ',' delimiter"),
    ],
)
def test_hostile_input_is_a_clear_error_and_nothing_runs(
    given: str, message: str, numbers: str, tmp_path: Path
) -> None:
    given = _hostile_files(tmp_path).get(given, given)
    proc = loopline("run", numbers, "--input", given, "--json")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.startswith("error: --input"), proc.stderr[-2000:]
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr and "started" not in proc.stderr
    assert proc.stdout == ""


@pytest.mark.parametrize(
    "decision",
    [
        'fix={"a": NaN}',
        'fix={"a": ' + "1" * 5000 + "}",
        'fix={"a": ' + "[" * 5000 + "]" * 5000 + "}",
    ],
)
def test_hostile_decision_json_is_a_clear_error(decision: str) -> None:
    proc = loopline("run", *BRIEF, "--input", '{"topic": "x"}', "--decision", decision)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: --decision 'fix=")
    assert "Traceback" not in proc.stderr and "started" not in proc.stderr


def test_json_output_is_strict_json_even_for_non_finite_numbers() -> None:
    text = jsontext.dumps({"a": float("nan"), "b": [float("inf"), 1.5]})
    assert json.loads(text, parse_constant=lambda c: pytest.fail(c)) == {
        "a": None,
        "b": [None, 1.5],
    }


def test_a_number_input_runs_and_prints_strict_json(numbers: str) -> None:
    proc = loopline("run", numbers, "--input", '{"n": 1.5, "data": {"x": [1, 2.5]}}', "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["output"] == {"x": [1, 2.5]}


# --------------------------------------------------------------------------- comments


@pytest.mark.parametrize(
    ("text", "value", "comment"),
    [
        ("approve", "approve", None),
        ("approve # looks right", "approve", "looks right"),
        ("reject #too vague", "reject", "too vague"),
        ("reject:draft # needs sources", "reject:draft", "needs sources"),
        ("reject #", "reject", None),
        ('{"note": "a # b"}', {"note": "a # b"}, None),
    ],
)
def test_an_answer_may_carry_a_comment_after_a_hash(
    text: str, value: Any, comment: str | None
) -> None:
    assert parse_answer(text) == (value, comment)


def test_a_comment_alone_is_not_an_answer() -> None:
    with pytest.raises(DecisionError, match="unknown decision ''"):
        parse_decision("review=# just a comment")


def test_a_rejection_carries_the_reviewer_and_the_comment_as_its_cause() -> None:
    proc = loopline(
        "run",
        *BRIEF,
        "--input",
        '{"topic": "tides"}',
        "--decision",
        "review=reject # needs sources",
        "--json",
    )
    assert proc.returncode == 1, proc.stderr
    out = json.loads(proc.stdout)
    assert out["error"] == "Loopline.Rejected"
    assert out["cause"].startswith("rejected by ")
    assert out["cause"].endswith(" at step review: needs sources")
    assert out["steps"]["review"] == {"status": "failed", "starts": 1}


def test_a_rejection_without_comment_still_says_who_rejected_where() -> None:
    proc = loopline("run", *BRIEF, "--input", '{"topic": "tides"}', "--decision", "review=reject")
    assert proc.returncode == 1
    assert "Loopline.Rejected: rejected by " in proc.stderr
    assert " at step review" in proc.stderr


def test_an_approval_comment_is_in_the_approval_output(tmp_path: Path) -> None:
    workflow = tmp_path / "approve.yaml"
    workflow.write_text(
        "name: approve\nsteps:\n  - id: review\n    approval:\n      instruction: ok?\n"
        "      timeout: 60\n"
    )
    proc = loopline("run", str(workflow), "--decision", "review=approve # ship it", "--json")
    assert proc.returncode == 0, proc.stderr
    output = json.loads(proc.stdout)["output"]
    assert (output["approved"], output["comment"]) == (True, "ship it")
    assert "review answered: approved: ship it" in proc.stderr


# --------------------------------------------------------------------------- unused decisions


def test_a_decision_no_wait_used_is_a_warning() -> None:
    proc = loopline(
        "run",
        *BRIEF,
        "--input",
        '{"topic": "tides"}',
        "--decision",
        "review=approve",
        "--decision",
        "review=reject # second thoughts",
    )
    assert proc.returncode == 0, proc.stderr
    assert (
        "warning: --decision review=reject # second thoughts was not used: "
        "review did not wait for it"
    ) in proc.stderr


def test_every_decision_used_gives_no_warning() -> None:
    proc = loopline("run", *BRIEF, "--input", '{"topic": "tides"}', "--decision", "review=approve")
    assert proc.returncode == 0, proc.stderr
    assert "warning" not in proc.stderr
