"""What ``loopline run`` says happened to each step: the ``steps`` of its result (``--json``)
and the progress lines, for every control kind, failing with and without ``on_error``,
run for real in moto."""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from loopline.compiler import compile_workflow
from loopline.dsl import load_workflow_text, resolve_inputs
from loopline.local.run import Progress, RunResult, parse_decision, run_workflow

pytestmark = pytest.mark.moto

HEADER = """
name: status
inputs:
  items: {type: json, default: [1, 2]}
step_types:
  slow: {function: slow}
steps:
"""
#: The step after the one under test (reached when on_error continues).
AFTER = """
  - id: z
    tool: now
"""


def slow(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """A custom step type: sleeps ``args.sleep`` seconds, then fails when ``args.fail``."""
    args = event["args"]
    time.sleep(float(args.get("sleep") or 0))
    if args.get("fail"):
        raise RuntimeError(str(args["fail"]))
    return {"output": args.get("value")}


@dataclass
class Case:
    steps: str  # YAML of the step under test (indented as a list item of `steps:`)
    status: str  # the run's status
    expect: dict[str, tuple[str, int]]  # step → (status, starts)
    #: Progress as "step event", in order. Lines of steps that run side by side are
    #: checked as a multiset; ``order`` then lists the ones whose order is certain.
    progress: list[str]
    order: list[str] | None = None
    script: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None  # the run's error
    details: dict[str, str] = field(default_factory=dict)  # "step event" → text in detail
    decisions: list[str] = field(default_factory=list)


def on_error(yaml_text: str) -> str:
    """The step under test with ``on_error: continue``, followed by step z."""
    first, rest = yaml_text.split("\n", 1)
    return f"{first}\n    on_error: continue\n{rest}{AFTER}"


GROUP = """  - id: g
    group:
      - id: a
        tool: now
      - id: b
        fail: boom
"""
BRANCH = """  - id: br
    branch:
      if: "len(inputs.items) == 2"
      then:
        - id: t1
          fail: no good
      else:
        - id: e1
          tool: now
"""
PARALLEL = """  - id: p
    parallel:
      - id: x
        tool: now
      - id: y
        group:
          - id: y1
            task: slow
            args: {sleep: 1}
          - id: y2
            fail: boom
"""
WHILE = """  - id: w
    loop:
      while: "true"
      max_iterations: 2
      steps:
        - id: body
          tool: now
"""
FOR_EACH = """  - id: l
    loop:
      for_each: inputs.items
      steps:
        - id: check
          assert: "item == 1"
          message: not item 1
"""
ASSERT = """  - id: c
    assert: "len(inputs.items) == 3"
    message: two items
"""
NOT_A_LIST = """  - id: l
    loop:
      for_each: inputs.items[0]
      steps:
        - id: each
          tool: now
"""
VOTE = """  - id: v
    vote:
      input: inputs.items
      voters: 2
      rules: Refute anything.
"""
VOTER_ERROR = [{"step": "v", "answer": {"error": "Loopline.LLMError"}}]


def approval(on_timeout: str, timeout: int = 2) -> str:
    extra = "\n      escalate_to: {role: lead}" if on_timeout == "escalate" else ""
    return f"""  - id: review
    approval:
      instruction: Check it
      timeout: {timeout}
      on_timeout: {on_timeout}{extra}
"""


def seq(*lines: str) -> list[str]:
    return list(lines)


CAUGHT = seq("z started", "z succeeded")

CASES: dict[str, Case] = {
    "group": Case(
        GROUP,
        "FAILED",
        {"g": ("failed", 1), "a": ("succeeded", 1), "b": ("failed", 1)},
        seq("g started", "a started", "a succeeded", "b started", "b failed", "g failed"),
        error="Loopline.Failed",
        details={"g failed": "boom", "b failed": "boom"},
    ),
    "group on_error": Case(
        on_error(GROUP),
        "SUCCEEDED",
        {"g": ("failed", 1), "a": ("succeeded", 1), "b": ("failed", 1), "z": ("succeeded", 1)},
        seq("g started", "a started", "a succeeded", "b started", "b failed", "g failed", *CAUGHT),
        details={"g failed": "boom"},
    ),
    "branch": Case(
        BRANCH,
        "FAILED",
        {"br": ("failed", 1), "t1": ("failed", 1)},
        seq("br started", "t1 started", "t1 failed", "br failed"),
        error="Loopline.Failed",
    ),
    "branch on_error": Case(
        on_error(BRANCH),
        "SUCCEEDED",
        {"br": ("failed", 1), "t1": ("failed", 1), "z": ("succeeded", 1)},
        seq("br started", "t1 started", "t1 failed", "br failed", *CAUGHT),
    ),
    "parallel": Case(
        PARALLEL,
        "FAILED",
        {
            "p": ("failed", 1),
            "x": ("succeeded", 1),
            "y": ("failed", 1),
            "y1": ("succeeded", 1),
            "y2": ("failed", 1),
        },
        seq(
            "p started",
            "x started",
            "x succeeded",
            "y started",
            "y1 started",
            "y1 succeeded",
            "y2 started",
            "y2 failed",
            "y failed",
            "p failed",
        ),
        order=seq("p started", "x succeeded", "y1 succeeded", "y2 failed", "y failed", "p failed"),
        error="Loopline.Failed",
    ),
    "parallel on_error": Case(
        on_error(PARALLEL),
        "SUCCEEDED",
        {
            "p": ("failed", 1),
            "x": ("succeeded", 1),
            "y": ("failed", 1),
            "y1": ("succeeded", 1),
            "y2": ("failed", 1),
            "z": ("succeeded", 1),
        },
        seq(
            "p started",
            "x started",
            "x succeeded",
            "y started",
            "y1 started",
            "y1 succeeded",
            "y2 started",
            "y2 failed",
            "y failed",
            "p failed",
            *CAUGHT,
        ),
        order=seq("p started", "y2 failed", "y failed", "p failed", *CAUGHT),
    ),
    "parallel stops the other branches": Case(
        """  - id: p
    parallel:
      - id: x
        task: slow
        args: {sleep: 4}
      - id: y
        task: slow
        retry: {max_attempts: 1}
        args: {sleep: 1, fail: boom}
""",
        "FAILED",
        {"p": ("failed", 1), "x": ("aborted", 1), "y": ("failed", 1)},
        seq("p started", "x started", "y started", "y failed", "x aborted", "p failed"),
        order=seq("p started", "y failed", "p failed"),
        error="Loopline.Failed",
    ),
    "while": Case(
        WHILE,
        "FAILED",
        {"w": ("failed", 1), "body": ("succeeded", 2)},
        seq(
            "w started",
            "body started",
            "body succeeded",
            "body started",
            "body succeeded",
            "w failed",
        ),
        error="Loopline.MaxIterations",
        details={"w failed": "Loopline.MaxIterations"},
    ),
    "while on_error": Case(
        on_error(WHILE),
        "SUCCEEDED",
        {"w": ("failed", 1), "body": ("succeeded", 2), "z": ("succeeded", 1)},
        seq(
            "w started",
            "body started",
            "body succeeded",
            "body started",
            "body succeeded",
            "w failed",
            *CAUGHT,
        ),
    ),
    "for_each": Case(
        FOR_EACH,
        "FAILED",
        {"l": ("failed", 1), "check": ("failed", 2)},
        seq(
            "l started",
            "check started",
            "check succeeded",
            "check started",
            "check failed",
            "l failed",
        ),
        error="Loopline.AssertionFailed",
        details={"check failed": "not item 1", "l failed": "not item 1"},
    ),
    "for_each on_error": Case(
        on_error(FOR_EACH),
        "SUCCEEDED",
        {"l": ("failed", 1), "check": ("failed", 2), "z": ("succeeded", 1)},
        seq(
            "l started",
            "check started",
            "check succeeded",
            "check started",
            "check failed",
            "l failed",
            *CAUGHT,
        ),
    ),
    "assert": Case(
        ASSERT,
        "FAILED",
        {"c": ("failed", 1)},
        seq("c started", "c failed"),
        error="Loopline.AssertionFailed",
        details={"c failed": "two items"},
    ),
    "assert on_error": Case(
        on_error(ASSERT),
        "SUCCEEDED",
        {"c": ("failed", 1), "z": ("succeeded", 1)},
        seq("c started", "c failed", *CAUGHT),
        details={"c failed": "Loopline.AssertionFailed: two items"},
    ),
    "assert that holds": Case(
        ASSERT.replace("== 3", "== 2"),
        "SUCCEEDED",
        {"c": ("succeeded", 1)},
        seq("c started", "c succeeded"),
    ),
    "for_each over a value that is not a list": Case(
        NOT_A_LIST,
        "FAILED",
        {"l": ("failed", 1)},
        seq("l started", "l failed"),
        error="Loopline.Failed",
        details={"l failed": "step l: for_each needs a list, got 1"},
    ),
    "for_each over a value that is not a list, on_error": Case(
        on_error(NOT_A_LIST),
        "SUCCEEDED",
        {"l": ("failed", 1), "z": ("succeeded", 1)},
        seq("l started", "l failed", *CAUGHT),
        details={"l failed": "step l: for_each needs a list, got 1"},
    ),
    "vote over a value that is not a list, on_error": Case(
        on_error(VOTE.replace("inputs.items", "inputs.items[1]")),
        "SUCCEEDED",
        {"v": ("failed", 1), "z": ("succeeded", 1)},
        seq("v started", "v failed", *CAUGHT),
        details={"v failed": "step v: vote input needs a list, got 2"},
    ),
    "assert with a templated message": Case(
        ASSERT.replace("two items", '"{{ len(inputs.items) }} items, not 3"'),
        "FAILED",
        {"c": ("failed", 1)},
        seq("c started", "c failed"),
        error="Loopline.AssertionFailed",
        details={"c failed": "Loopline.AssertionFailed: 2 items, not 3"},
    ),
    "fail with a templated message in a group, on_error": Case(
        on_error(GROUP.replace("fail: boom", 'fail: "boom after {{ inputs.items }}"')),
        "SUCCEEDED",
        {"g": ("failed", 1), "a": ("succeeded", 1), "b": ("failed", 1), "z": ("succeeded", 1)},
        seq("g started", "a started", "a succeeded", "b started", "b failed", "g failed", *CAUGHT),
        details={"b failed": "Loopline.Failed: boom after [1, 2]", "g failed": "boom after [1, 2]"},
    ),
    "vote": Case(
        VOTE,
        "SUCCEEDED",
        {"v": ("succeeded", 1)},
        seq("v started", "v succeeded"),
        script=[{"step": "v", "answer": "UPHELD"}],
    ),
    "vote failing": Case(
        VOTE,
        "FAILED",
        {"v": ("failed", 1)},
        seq("v started", "v failed"),
        script=VOTER_ERROR,
        error="Loopline.LLMError",
    ),
    "vote on_error": Case(
        on_error(VOTE),
        "SUCCEEDED",
        {"v": ("failed", 1), "z": ("succeeded", 1)},
        seq("v started", "v failed", *CAUGHT),
        script=VOTER_ERROR,
    ),
    "skipped": Case(
        """  - id: s
    if: "len(inputs.items) == 5"
    tool: now
""",
        "SUCCEEDED",
        {"s": ("skipped", 0)},
        seq("s skipped"),
    ),
    "approval on_timeout fail": Case(
        approval("fail"),
        "FAILED",
        {"review": ("failed", 1)},
        seq("review started", "review waiting", "review failed"),
        error="Loopline.Timeout",
    ),
    "approval rejected, on_error": Case(
        on_error(approval("fail")),
        "SUCCEEDED",
        {"review": ("failed", 1), "z": ("succeeded", 1)},
        seq("review started", "review waiting", "review answered", "review failed", *CAUGHT),
        decisions=["review=reject"],
        details={"review failed": "Loopline.Rejected"},
    ),
    "approval on_timeout approve": Case(
        approval("approve"),
        "SUCCEEDED",
        {"review": ("succeeded", 1)},
        seq("review started", "review waiting", "review succeeded"),
    ),
    "approval on_timeout reject": Case(
        approval("reject"),
        "FAILED",
        {"review": ("failed", 1)},
        seq("review started", "review waiting", "review failed"),
        error="Loopline.Rejected",
        details={"review failed": "rejected automatically"},
    ),
    "approval on_timeout escalate": Case(
        approval("escalate"),
        "FAILED",
        {"review": ("failed", 1)},
        seq("review started", "review waiting", "review waiting", "review failed"),
        error="Loopline.Timeout",
        details={"review failed": "after escalation"},
    ),
}


@dataclass
class Observed:
    result: RunResult
    progress: list[tuple[float, Progress]]

    @property
    def lines(self) -> list[str]:
        return [f"{p.step} {p.event}" for _, p in self.progress]

    def at(self, line: str) -> float:
        return next(t for t, p in self.progress if f"{p.step} {p.event}" == line)

    def detail(self, line: str) -> str:
        return next(p.detail or "" for _, p in self.progress if f"{p.step} {p.event}" == line)


def run(
    text: str, tmp_path: Path, script: list[dict[str, Any]] | None = None, **kw: Any
) -> Observed:
    wf = load_workflow_text(HEADER + text, "status.yaml")
    script_path = None
    if script:
        script_path = tmp_path / "script.yaml"
        script_path.write_text(yaml.safe_dump({"responses": script}))
    progress: list[tuple[float, Progress]] = []
    result = run_workflow(
        compile_workflow(wf).definition,
        wf,
        resolve_inputs(wf, {}),
        llm_script=str(script_path) if script_path else None,
        functions={"slow": slow},
        on_progress=lambda p: progress.append((time.monotonic(), p)),
        **kw,
    )
    return Observed(result, progress)


@pytest.mark.parametrize("name", list(CASES))
def test_every_step_status_and_progress_says_what_happened(name: str, tmp_path: Path) -> None:
    case = CASES[name]
    seen = run(
        case.steps,
        tmp_path,
        case.script,
        decisions=[parse_decision(d) for d in case.decisions],
    )
    result = seen.result
    assert (result.status, result.error) == (case.status, case.error), result.cause
    assert result.steps == {
        step: {"status": status, "starts": starts} for step, (status, starts) in case.expect.items()
    }
    if case.order is None:
        assert seen.lines == case.progress
    else:
        assert Counter(seen.lines) == Counter(case.progress)
        assert [line for line in seen.lines if line in case.order] == case.order
    for line, text in case.details.items():
        assert text in seen.detail(line), (line, seen.detail(line))
    json.dumps(result.to_json(), allow_nan=False)  # what --json prints


def test_a_retried_control_step_counts_every_start(tmp_path: Path) -> None:
    seen = run(
        """  - id: g
    retry: {max_attempts: 2, interval: 1, on: [Loopline.Transient]}
    group:
      - id: a
        retry: {max_attempts: 1}
        llm: hi
""",
        tmp_path,
        [{"step": "a", "answers": [{"error": "Loopline.Transient"}, "ok"]}],
    )
    assert seen.result.status == "SUCCEEDED"
    assert seen.result.steps == {
        "g": {"status": "succeeded", "starts": 2},
        "a": {"status": "succeeded", "starts": 2},
    }
    assert seen.lines == [
        "g started",
        "a started",
        "a failed",
        "g retrying",
        "a started",
        "a succeeded",
        "g succeeded",
    ]
    assert "attempt 2 after Loopline.Transient" in seen.detail("g retrying")


def test_a_rollback_fails_the_approval_then_runs_both_steps_again(tmp_path: Path) -> None:
    seen = run(
        """  - id: draft
    tool: now
  - id: review
    approval:
      instruction: Check it
      timeout: 60
      rollback_to: [draft]
""",
        tmp_path,
        decisions=[parse_decision("review=reject:draft"), parse_decision("review=approve")],
    )
    assert seen.result.status == "SUCCEEDED"
    assert seen.result.steps == {
        "draft": {"status": "succeeded", "starts": 2},
        "review": {"status": "succeeded", "starts": 2},
    }
    assert seen.lines == [
        "draft started",
        "draft succeeded",
        "review started",
        "review waiting",
        "review answered",
        "review failed",
        "draft started",
        "draft succeeded",
        "review started",
        "review waiting",
        "review answered",
        "review succeeded",
    ]
    assert "rolling back to draft" in seen.detail("review failed")


def test_progress_is_reported_when_it_happens_not_at_the_end(tmp_path: Path) -> None:
    # Given a caught failure inside a group, then a step that takes a second
    seen = run(
        on_error(GROUP).replace(AFTER, "")
        + """  - id: later
    task: slow
    args: {sleep: 1}
""",
        tmp_path,
    )
    assert seen.result.status == "SUCCEEDED"
    # Then the failure of b and g is told before the slow step even ends
    done = seen.at("later succeeded")
    for line in ("b failed", "g failed", "later started"):
        assert seen.at(line) < done - 0.5, line
    assert seen.lines.index("g failed") < seen.lines.index("later started")


# --------------------------------------------------------------------------- general rules
# The tracker relies on general rules, not on an enumeration of helper states: a caught
# error goes through the step's own helper states (``<id>.error``...), a step with
# on_error may run inside a one-branch Parallel (``<id>.try``).


def _run_definition(text: str, **kw: Any) -> tuple[Observed, dict[str, Any]]:
    wf = load_workflow_text(HEADER + text, "status.yaml")
    definition = compile_workflow(wf).definition
    progress: list[tuple[float, Progress]] = []
    result = run_workflow(
        definition,
        wf,
        resolve_inputs(wf, {}),
        functions={"slow": slow},
        on_progress=lambda p: progress.append((time.monotonic(), p)),
        **kw,
    )
    return Observed(result, progress), definition["States"]


def test_a_catch_through_a_helper_state_of_the_step_still_fails_it() -> None:
    seen, states = _run_definition(
        """  - id: a
    task: slow
    retry: {max_attempts: 1}
    args: {fail: broken}
    on_error: continue
"""
        + AFTER
    )
    # Given a catch that records the error through helper states of the step
    assert states["a"]["Catch"][-1]["Next"] == "a.error"
    # Then the step is failed, once, and the run goes on
    assert seen.result.status == "SUCCEEDED"
    assert seen.result.steps == {
        "a": {"status": "failed", "starts": 1},
        "z": {"status": "succeeded", "starts": 1},
    }
    assert seen.lines == ["a started", "a failed", *CAUGHT]
    assert seen.detail("a failed").endswith("broken")


@pytest.mark.parametrize(
    ("on_timeout", "status", "error"),
    [
        ("approve", "succeeded", None),
        ("reject", "failed", "Loopline.Rejected"),
        ("fail", "failed", "Loopline.Timeout"),
    ],
)
def test_a_human_wait_inside_a_try_wrapper_is_told_like_any_other(
    on_timeout: str, status: str, error: str | None
) -> None:
    seen, states = _run_definition(on_error(approval(on_timeout)))
    assert "review.try" in states  # the wait runs inside the wrapper
    assert seen.result.status == "SUCCEEDED", seen.result.cause
    assert seen.result.steps == {
        "review": {"status": status, "starts": 1},
        "z": {"status": "succeeded", "starts": 1},
    }
    assert seen.lines == ["review started", "review waiting", f"review {status}", *CAUGHT]
    if error:
        assert error in seen.detail("review failed")


def test_an_answer_at_the_prompt_may_carry_a_comment(tmp_path: Path) -> None:
    seen = run(
        approval("fail", timeout=60),
        tmp_path,
        ask=lambda wait: "reject # the figures are wrong",
    )
    assert (seen.result.status, seen.result.error) == ("FAILED", "Loopline.Rejected")
    assert seen.result.cause is not None
    assert seen.result.cause.endswith("at step review: the figures are wrong")
    assert seen.detail("review answered") == "rejected: the figures are wrong"
