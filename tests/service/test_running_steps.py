"""A running task's ``steps``: the step runs recorded so far, and the control steps that
hold them (known from the workflow when the task was submitted)."""

from __future__ import annotations

from loopline.dsl import load_workflow_text
from loopline.service.tasks import step_parents
from loopline.service.views import derived_steps

FLOW = """\
name: nested
steps:
  - id: first
    tool: render
    args: {template: a}
  - id: outer
    group:
      - id: fan
        parallel:
          - id: left
            tool: render
            args: {template: l}
          - id: right
            tool: render
            args: {template: r}
"""


def test_each_nested_step_knows_its_enclosing_step() -> None:
    parents = step_parents(load_workflow_text(FLOW))
    assert parents == {"fan": "outer", "left": "fan", "right": "fan"}


def test_a_running_step_shows_the_control_steps_around_it_as_running() -> None:
    parents = step_parents(load_workflow_text(FLOW))
    runs = [
        {"step": "first", "attempt": 0, "status": "SUCCEEDED"},
        {"step": "left", "attempt": 0, "status": "RUNNING"},
        {"step": "left", "attempt": 1, "status": "RUNNING"},
    ]
    assert derived_steps(runs, parents) == {
        "first": {"status": "SUCCEEDED", "starts": 1},
        "left": {"status": "RUNNING", "starts": 1},
        "fan": {"status": "RUNNING", "starts": 1},
        "outer": {"status": "RUNNING", "starts": 1},
    }
