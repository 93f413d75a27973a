"""The task service over real HTTP, as a client uses it: ``loopline serve`` (the local
stack, the real authorizer and API function, status events through the template's rule)."""

from __future__ import annotations

import concurrent.futures
import time
import uuid

from tests.e2e.conftest import Service
from tests.support.waiting import task_events


def _events(service: Service, task_id: str) -> list[dict]:
    with service.client() as c:
        return task_events(c, task_id)


def test_a_registered_workflow_runs_to_its_result_with_every_event_and_step(
    service: Service, brief: str
) -> None:
    with service.client() as c:
        got = c.get(f"/v1/workflows/{brief}")
        assert got.status_code == 200
        workflow = got.json()
        assert workflow["name"] == "brief" and workflow["version"] == "1.0.0"
        assert workflow["inputs_schema"]["required"] == ["topic"]
        assert workflow["graph"].startswith(("flowchart", "graph"))

        r = c.post("/v1/tasks", json={"workflow": brief, "inputs": {"topic": "tides"}})
        assert r.status_code == 202, r.text
        task = r.json()
        assert r.headers["Location"] == f"/v1/tasks/{task['id']}"
        assert task["status"] in ("RUNNING", "SUCCEEDED")

        view = service.wait_done(c, task["id"])
        assert view["status"] == "SUCCEEDED", (view["error"], view["cause"], view["steps"])
        assert view["output"] == {"title": "Brief: tides", "outline": "1. Tides 2. The moon"}
        assert view["inputs"] == {"topic": "tides", "tone": "plain"}
        assert view["steps"] == {
            "outline": {"status": "SUCCEEDED", "starts": 1},
            "title": {"status": "SUCCEEDED", "starts": 1},
            "size": {"status": "SUCCEEDED", "starts": 1},
            "plain_note": {"status": "SUCCEEDED", "starts": 1},
        }
        assert view["usage"]["input_tokens"] > 0
        assert view["finished_at"] >= view["started_at"] >= view["created_at"]

        step = c.get(f"/v1/tasks/{task['id']}/steps/title")
        assert step.status_code == 200, step.text
        runs = step.json()["runs"]
        assert [(run["attempt"], run["status"], run["output"]) for run in runs] == [
            (0, "SUCCEEDED", "Brief: tides")
        ]
        assert c.get(f"/v1/tasks/{task['id']}/steps/nope").status_code == 404

    events = _events(service, task["id"])
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    types = [e["type"] for e in events]
    assert types[0] == "task.started" and types[-1] == "task.succeeded"
    assert types.count("task.started") == 1 and types.count("task.succeeded") == 1
    for step_id in ("outline", "title", "size", "plain_note"):
        started = [e for e in events if e["type"] == "step.started" and e.get("step") == step_id]
        done = [e for e in events if e["type"] == "step.succeeded" and e.get("step") == step_id]
        assert len(started) == 1 and len(done) == 1, (step_id, types)
        assert started[0]["seq"] < done[0]["seq"]


def test_invalid_inputs_are_422_listing_every_violation_and_start_nothing(
    service: Service, brief: str
) -> None:
    with service.client() as c:
        before = c.get("/v1/tasks", params={"workflow": brief, "limit": 100}).json()["items"]
        r = c.post(
            "/v1/tasks",
            json={"workflow": brief, "inputs": {"topic": "x", "tone": "loud", "colour": 1}},
        )
        assert r.status_code == 422, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        problem = r.json()
        assert problem["status"] == 422
        fields = sorted(e["field"] for e in problem["errors"])
        assert fields == ["inputs.colour", "inputs.tone", "inputs.topic"]
        for error in problem["errors"]:
            assert error["rule"] and error["message"]
        after = c.get("/v1/tasks", params={"workflow": brief, "limit": 100}).json()["items"]
        assert [t["id"] for t in after] == [t["id"] for t in before]

        missing = c.post("/v1/tasks", json={"workflow": "no-such-flow", "inputs": {}})
        assert missing.status_code == 404
        assert missing.headers["content-type"].startswith("application/problem+json")


def test_an_idempotency_key_returns_the_same_task_and_refuses_another_body(
    service: Service, brief: str
) -> None:
    key = uuid.uuid4().hex
    body = {"workflow": brief, "inputs": {"topic": "idempotent tides"}}
    with service.client() as c:
        first = c.post("/v1/tasks", json=body, headers={"Idempotency-Key": key})
        assert first.status_code == 202, first.text
        again = c.post("/v1/tasks", json=body, headers={"Idempotency-Key": key})
        assert again.status_code == 200, again.text
        assert again.json()["id"] == first.json()["id"]
        other = c.post(
            "/v1/tasks",
            json={**body, "inputs": {"topic": "other tides"}},
            headers={"Idempotency-Key": key},
        )
        assert other.status_code == 409, other.text
        assert other.headers["content-type"].startswith("application/problem+json")
        service.wait_done(c, first.json()["id"])


def test_twenty_concurrent_requests_with_one_key_start_one_task(
    service: Service, brief: str
) -> None:
    key = uuid.uuid4().hex
    body = {"workflow": brief, "inputs": {"topic": "concurrent tides"}}

    def submit(_: int) -> tuple[int, str | None, str | None]:
        with service.client() as c:
            r = c.post("/v1/tasks", json=body, headers={"Idempotency-Key": key})
            data = r.json()
            return r.status_code, data.get("id"), r.headers.get("Retry-After")

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(submit, range(20)))
    created = [a for a in answers if a[0] == 202]
    assert len(created) == 1, answers
    task_id = created[0][1]
    for status, got, retry_after in answers:
        assert status in (200, 202, 409), answers
        if status == 200:
            assert got == task_id
        if status == 409:
            assert retry_after is not None
    with service.client() as c:
        listed = c.get("/v1/tasks", params={"workflow": brief, "limit": 100}).json()["items"]
        same = [t for t in listed if t["inputs"].get("topic") == "concurrent tides"]
        assert [t["id"] for t in same] == [task_id]
        service.wait_done(c, task_id)


def test_cancel_stops_a_task_and_a_second_cancel_is_a_conflict(service: Service) -> None:
    slow = (
        "name: slow\nversion: 1.0.0\nsteps:\n"
        "  - id: hold\n    pause: Hold until someone resumes it\n    timeout: 5m\n"
        "  - id: after\n    tool: render\n    args: {template: late}\n"
    )
    with service.client() as c:
        r = c.put("/v1/workflows/slow", content=slow, headers={"Content-Type": "text/yaml"})
        assert r.status_code in (200, 201), r.text
        task = c.post("/v1/tasks", json={"workflow": "slow", "inputs": {}}).json()
        for _ in range(100):  # the pause step starts: the task waits for a person
            if c.get(f"/v1/tasks/{task['id']}").json()["status"] == "WAITING":
                break
            time.sleep(0.1)
        assert c.get(f"/v1/tasks/{task['id']}").json()["status"] == "WAITING"
        cancelled = c.post(f"/v1/tasks/{task['id']}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "CANCELLED"
        view = service.wait_done(c, task["id"])
        assert view["status"] == "CANCELLED"
        assert c.post(f"/v1/tasks/{task['id']}/cancel").status_code == 409
    types = [e["type"] for e in _events(service, task["id"])]
    assert types.count("task.cancelled") == 1 and types[-1] == "task.cancelled"


def test_lists_are_pages_newest_first_with_filters_and_checked_limits(
    service: Service, brief: str
) -> None:
    with service.client("globex") as c:
        ids = []
        for n in range(3):
            r = c.post("/v1/tasks", json={"workflow": brief, "inputs": {"topic": f"page {n}"}})
            assert r.status_code == 202, r.text
            ids.append(r.json()["id"])
        first = c.get("/v1/tasks", params={"workflow": brief, "limit": 2}).json()
        assert len(first["items"]) == 2 and first["next_cursor"]
        rest = c.get(
            "/v1/tasks", params={"workflow": brief, "limit": 2, "cursor": first["next_cursor"]}
        ).json()
        seen = [t["id"] for t in first["items"] + rest["items"]]
        assert seen[:3] == list(reversed(ids))
        for bad in ({"limit": 0}, {"limit": 101}, {"cursor": "not-a-cursor"}):
            r = c.get("/v1/tasks", params=bad)
            assert r.status_code == 422, (bad, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
        for task_id in ids:
            service.wait_done(c, task_id)
        done = c.get("/v1/tasks", params={"status": "SUCCEEDED", "limit": 100}).json()["items"]
        assert set(ids) <= {t["id"] for t in done}
