"""Every problem of a file that parses is reported in one run: fixing the problems a run
reports never reveals another that was there all along (issue: checks ran in stages)."""

from __future__ import annotations

from pathlib import Path

import pytest
from loopline.dsl import WorkflowInvalid, load_workflow_text

INVALID = Path(__file__).parents[1] / "golden" / "invalid"

#: A golden invalid case and the edits that fix some of its problems (each edit fixes one
#: reported problem and touches nothing else).
CASES = {
    "kind_fields_checked_around": [
        ("method: PUSH", "method: POST"),
        ("timeout: 1 week", "timeout: 1m"),
        ("max_concurrency: -1", "max_concurrency: 2"),
        ("      timout: 1h\n", ""),
        ("voters: 20", "voters: 5"),
        ("      colour: blue\n", ""),
    ],
    "kind_rules_checked_around": [
        (
            "      steps:\n        - id: judge",
            "      max_iterations: 3\n      steps:\n        - id: judge",
        ),
        ("on_timeout: escalate", "on_timeout: escalate\n      escalate_to: {role: lead}"),
        ("      if: steps.review.output.approvd\n      then: [{id: ship, tool: now}]\n", ""),
        ("http: {headers:", "http: {url: https://example.com, headers:"),
        ("voters: 1", "voters: 3"),
        ("id: count-words", "id: count_words"),
    ],
    "all_at_once": [
        ("    temprature: 0.2\n", ""),
        ("interval: 1w", "interval: 1m"),
    ],
    "inputs_all_at_once": [
        ("  severity: {type: enum}\n", "  severity: {type: enum, values: [low]}\n"),
        ('pattern: "[0-9]+", ', ""),
        ("min_length: 5", "min_length: 1"),
        ("type: strng", "type: string"),
        ("bad-name:", "bad_name:"),
    ],
    "pause_with_others": [
        ("method: PUSH", "method: POST"),
        ("llm: 42", "llm: Write a note."),
        ("max_turns: many", "max_turns: 3"),
    ],
}


def problem_paths(text: str) -> list[str]:
    try:
        load_workflow_text(text, "wf.yaml")
    except WorkflowInvalid as exc:
        return [p.path for p in exc.problems]
    return []


@pytest.mark.parametrize(("case", "fixes"), CASES.items(), ids=list(CASES))
def test_given_reported_problems_fixed_then_no_new_problem_appears(
    case: str, fixes: list[tuple[str, str]]
) -> None:
    text = (INVALID / f"{case}.yaml").read_text(encoding="utf-8")
    before = problem_paths(text)
    for old, new in fixes:
        assert text.count(old) == 1, old
        text = text.replace(old, new)

    after = problem_paths(text)

    assert set(after) <= set(before), "fixing reported problems revealed others"
    assert len(after) == len(before) - len(fixes)
