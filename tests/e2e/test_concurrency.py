"""100 tasks submitted at once through ``loopline serve`` all reach their end state in the
table, each with every event present, in order, none duplicated."""

from __future__ import annotations

import concurrent.futures
import time

from tests.e2e.conftest import TERMINAL, Service

FLOW = """\
name: fanout
version: 1.0.0
inputs:
  n: {type: integer, required: true}
steps:
  - id: first
    tool: render
    args: {template: "task {{ inputs.n }}"}
  - id: both
    parallel:
      - id: left
        tool: render
        args: {template: "left {{ inputs.n }}"}
      - id: right
        tool: render
        args: {template: "right {{ inputs.n }}"}
  - id: last
    tool: render
    args: {template: "{{ steps.first.output }} done"}
"""


def test_a_hundred_concurrent_tasks_end_with_every_event_in_order(service: Service) -> None:
    with service.client() as c:
        r = c.put("/v1/workflows/fanout", content=FLOW, headers={"Content-Type": "text/yaml"})
        assert r.status_code in (200, 201), r.text

    def submit(n: int) -> str:
        with service.client() as c:
            r = c.post("/v1/tasks", json={"workflow": "fanout", "inputs": {"n": n}})
            assert r.status_code == 202, r.text
            return str(r.json()["id"])

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        ids = list(pool.map(submit, range(100)))
    assert len(set(ids)) == 100

    deadline = time.monotonic() + 240
    views: dict[str, dict] = {}
    with service.client() as c:
        while len(views) < 100 and time.monotonic() < deadline:
            for task_id in ids:
                if task_id not in views:
                    view = c.get(f"/v1/tasks/{task_id}").json()
                    if view["status"] in TERMINAL:
                        views[task_id] = view
            time.sleep(0.5)
        assert len(views) == 100, f"{100 - len(views)} tasks still running"
        expected_steps = {"first", "both", "left", "right", "last"}
        for n, task_id in enumerate(ids):
            view = views[task_id]
            assert view["status"] == "SUCCEEDED", view
            assert view["output"] == f"task {n} done"
            assert set(view["steps"]) == expected_steps
            events = c.get(f"/v1/tasks/{task_id}/events", params={"limit": 100}).json()["items"]
            assert [e["seq"] for e in events] == list(range(1, len(events) + 1)), task_id
            kinds = [(e["type"], e.get("step")) for e in events]
            assert len(kinds) == len(set(kinds)), kinds  # nothing twice
            assert kinds[0] == ("task.started", None) and kinds[-1][0] == "task.succeeded"
            for step in expected_steps:
                assert ("step.started", step) in kinds and ("step.succeeded", step) in kinds, (
                    step,
                    kinds,
                )
