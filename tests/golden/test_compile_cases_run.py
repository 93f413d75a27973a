"""The golden compiler cases are not only well-formed: each runs to its expected outcome
in moto (the examples are run by tests/examples)."""

from __future__ import annotations

from typing import Any

import pytest
from loopline.compiler import compile_workflow
from loopline.dsl import load_workflow, resolve_inputs
from loopline.local.run import parse_decision, run_workflow

from tests.conftest import GOLDEN_COMPILE

CASES: dict[str, tuple[dict[str, Any], list[str], str, Any]] = {
    # name: (inputs, decisions, status, check on the output)
    "wrapped_controls": ({}, [], "SUCCEEDED", None),
    "conditions": ({"items": [1, 2, 3]}, [], "SUCCEEDED", None),
    # Each Lambda is sent only what it reads: u1 and risky fail (an invalid query), risky's
    # goto passes over bypassed, maybe is skipped, and the report still reads every value.
    "payloads": (
        {},
        ["ok=approve"],
        "SUCCEEDED",
        {
            "report": {
                "left": "L tides",
                "right": 1,
                "maybe": None,
                "maybe_at": False,
                "unit": "Loopline.Failed",
                "u2_ran": False,
                "risky": "Loopline.Failed",
                "bypassed": False,
                "depth": 2,
                "tags": 2,
                "again": "x",
            },
            "approved": True,
        },
    ),
    "human_timeouts": (
        {},
        [
            "fail_on_timeout=approve",
            "approve_on_timeout=approve",
            "reject_on_timeout=approve",
            'escalate_on_timeout={"ok": true}',
            "wait={}",
        ],
        "SUCCEEDED",
        {},
    ),
    # No decisions: review times out twice (retried) and is caught; gate times out and
    # goes to each; every item passes the assert; stop is skipped.
    "error_paths": (
        {},
        [],
        "SUCCEEDED",
        {
            "ctx.$": "$$.Execution",
            "review": {
                "error": "Loopline.Rejected",
                "cause": "rejected automatically: no decision on review within 1 s",
            },
            "cfg": {"ctx.$": "$$.Execution"},
        },
    ),
}


def test_every_golden_case_has_an_expected_run() -> None:
    assert sorted(CASES) == sorted(p.stem for p in GOLDEN_COMPILE.glob("*.yaml"))


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_case_runs_to_its_expected_outcome(name: str) -> None:
    inputs, decisions, status, output = CASES[name]
    wf = load_workflow(GOLDEN_COMPILE / f"{name}.yaml")
    result = run_workflow(
        compile_workflow(wf).definition,
        wf,
        resolve_inputs(wf, inputs),
        decisions=[parse_decision(d) for d in decisions],
    )
    assert result.status == status, (result.error, result.cause)
    if output is not None:
        assert result.output == output


@pytest.mark.parametrize(
    ("items", "ran"),
    [([1, 2, 3], {"intrinsic_len", "lambda_len"}), ([1], set())],
)
def test_conditions_decide_natively_and_by_the_helper_alike(
    items: list[int], ran: set[str]
) -> None:
    wf = load_workflow(GOLDEN_COMPILE / "conditions.yaml")
    result = run_workflow(compile_workflow(wf).definition, wf, resolve_inputs(wf, {"items": items}))
    assert result.status == "SUCCEEDED"
    statuses = {k: v["status"] for k, v in result.steps.items()}
    # n=1 >= 1 and s='a' != 'b' → literals runs; its output (a time) is not a number, so
    # the numeric comparison in `paths` is false; `truthy`: flag is false → not flag holds.
    assert statuses["literals"] == "succeeded"
    assert statuses["paths"] == "skipped"
    assert statuses["truthy"] == "succeeded"
    for step in ("intrinsic_len", "lambda_len"):
        assert statuses[step] == ("succeeded" if step in ran else "skipped")
