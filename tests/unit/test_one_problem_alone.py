"""An invalid step hides nothing and adds nothing: given any valid workflow, one structural
problem put into any one step is reported, alone. The whole-workflow checks still run on
the rest (invalid steps keep their ids and the steps inside them) and say nothing that
only follows from that problem: no false reference, scope or guard problem."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from loopline.dsl import WorkflowInvalid, load_workflow_text
from loopline.dsl.loader import parse_text
from loopline.dsl.models import STEP_KINDS

from tests.conftest import GOLDEN_COMPILE, ROOT

SOURCES = [
    *sorted((ROOT / "workflows").glob("*.yaml")),
    *sorted(GOLDEN_COMPILE.glob("*.yaml")),
    *sorted((ROOT / "tests" / "golden" / "graph").glob("*.yaml")),
]


def raw_steps(data: Any) -> Iterator[dict[str, Any]]:
    """Every step mapping of raw workflow data, depth first."""
    if isinstance(data, dict):
        for key, value in data.items():
            if key in ("steps", "group", "parallel", "then", "else") and isinstance(value, list):
                for item in value:
                    if isinstance(item, dict) and "id" in item:
                        yield item
            yield from raw_steps(value)
    elif isinstance(data, list):
        for item in data:
            yield from raw_steps(item)


def spoil(step: dict[str, Any], how: str) -> None:
    kind = next(k for k in STEP_KINDS if k in step)
    if how == "unknown key":
        step["colour"] = "blue"
    elif how == "bad if":
        step["if"] = "a =="
    elif how == "bad timeout":
        step["timeout"] = "1 week"
    elif how == "bad on_error":
        step["on_error"] = "stop"
    elif how == "bad kind field":  # an optional field of the kind's mapping, left out
        if kind == "loop":
            field, value = (
                ("max_concurrency", -1) if "for_each" in step[kind] else ("max_iterations", 0)
            )
        else:
            field, value = KIND_FIELDS[kind]
        step[kind][field] = value
    elif how == "bad kind rule":  # the kind's mapping breaks a rule: the step is invalid
        spec = step[kind]
        if kind == "loop" and "for_each" in spec:
            spec["while"] = "true"
        elif kind == "loop":
            del spec["max_iterations"]
        elif kind == "branch":
            spec.update({"if": "true"} if "cases" in spec else {"cases": []})
        elif kind in ("approval", "human_task"):
            spec.pop("escalate_to", None)
            spec["on_timeout"] = "escalate"
        elif kind == "http":
            del spec["url"]
        else:
            spec["voters"] = 1
    elif isinstance(step[kind], dict):  # "bad kind": an unknown key in the kind's mapping
        step[kind]["colour"] = "blue"
    elif isinstance(step[kind], list):
        step[kind].append(1)
    else:
        step[kind] = [1]


#: For each kind whose mapping has optional fields, one of them and a value it refuses.
KIND_FIELDS: dict[str, tuple[str, Any]] = {
    "http": ("method", "PUSH"),
    "loop": ("max_concurrency", -1),  # a while loop's: max_iterations 0
    "vote": ("threshold", 0),
    "approval": ("on_timeout", "never"),
    "human_task": ("on_timeout", "never"),
}
#: The kinds whose mapping "bad kind rule" spoils.
RULE_KINDS = frozenset({*KIND_FIELDS, "branch"})


HOWS = (
    "unknown key",
    "bad if",
    "bad timeout",
    "bad on_error",
    "bad kind",
    "bad kind field",
    "bad kind rule",
)


def cases() -> Iterator[Any]:
    for path in SOURCES:
        data = parse_text(path.read_text(encoding="utf-8"), path.name).data
        for i, step in enumerate(raw_steps(data)):
            for how in HOWS:
                if how == "bad kind" and step.get("succeed") is not None:
                    continue  # any value is a valid succeed
                if how == "bad kind field" and not KIND_FIELDS.keys() & step.keys():
                    continue
                if how == "bad kind rule" and not RULE_KINDS & step.keys():
                    continue
                yield pytest.param(data, i, how, id=f"{path.stem}-{step['id']}-{how}")


@pytest.mark.parametrize(("data", "index", "how"), list(cases()))
def test_given_one_problem_in_one_step_then_it_is_reported_alone(
    data: dict[str, Any], index: int, how: str
) -> None:
    spoilt = copy.deepcopy(data)
    spoil(list(raw_steps(spoilt))[index], how)

    with pytest.raises(WorkflowInvalid) as caught:
        load_workflow_text(yaml.safe_dump(spoilt, sort_keys=False), "wf.yaml")

    assert len(caught.value.problems) == 1, caught.value.render()


def test_given_the_sources_then_they_are_valid() -> None:
    for path in SOURCES:
        load_workflow_text(path.read_text(encoding="utf-8"), path.name)


def test_given_the_cases_then_there_are_many() -> None:
    assert len(list(cases())) > 300


def test_given_a_spoilt_file_then_its_one_problem_is_where_it_was_put(tmp_path: Path) -> None:
    data = parse_text((ROOT / "workflows" / "triage.yaml").read_text(), "triage.yaml").data
    spoilt = copy.deepcopy(data)
    spoil(next(raw_steps(spoilt)), "unknown key")

    with pytest.raises(WorkflowInvalid) as caught:
        load_workflow_text(yaml.safe_dump(spoilt, sort_keys=False), "wf.yaml")

    (problem,) = caught.value.problems
    assert (problem.path, problem.message) == ("steps[0].colour", 'unknown key "colour"')
