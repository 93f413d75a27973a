"""Golden tests of the problems reported for invalid workflow files.

Each ``invalid/<case>.yaml`` (or ``.json``) has a sibling ``<case>.expected`` holding the
exact lines ``WorkflowInvalid.render()`` prints for it, the file's basename as filename.
The expected files are written and reviewed by hand: the messages are user-facing.
A ``<case>.context`` (YAML: ``tools``, ``functions``, ``template``) gives the case a
``CheckContext``: what the checks know of where the workflow runs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from loopline.dsl import CheckContext, WorkflowInvalid, load_workflow, load_workflow_text

CASES_DIR = Path(__file__).parent / "invalid"
CASES = sorted(p for p in CASES_DIR.iterdir() if p.suffix in (".yaml", ".json"))


def context_of(case: Path) -> CheckContext | None:
    side = case.with_suffix(".context")
    if not side.exists():
        return None
    data = yaml.safe_load(side.read_text(encoding="utf-8"))
    return CheckContext(data.get("tools"), data.get("functions"), data.get("template", ""))


def test_given_the_golden_directory_then_it_holds_at_least_thirty_cases() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
def test_given_an_invalid_workflow_when_loaded_then_every_problem_is_reported_as_expected(
    case: Path,
) -> None:
    expected = case.with_suffix(".expected").read_text(encoding="utf-8").rstrip("\n")

    with pytest.raises(WorkflowInvalid) as caught:
        load_workflow_text(case.read_text(encoding="utf-8"), case.name, context_of(case))

    assert caught.value.render() == expected


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
def test_given_an_invalid_workflow_file_when_loaded_by_path_then_problems_name_the_path(
    case: Path,
) -> None:
    with pytest.raises(WorkflowInvalid) as caught:
        load_workflow(case, context_of(case))

    assert caught.value.problems
    assert all(line.startswith(f"{case}:") for line in caught.value.render().splitlines())


def test_given_every_expected_or_context_file_then_it_has_a_workflow_file() -> None:
    orphans = [
        p.name
        for p in [*CASES_DIR.glob("*.expected"), *CASES_DIR.glob("*.context")]
        if not any(p.with_suffix(ext).exists() for ext in (".yaml", ".json"))
    ]
    assert orphans == []
