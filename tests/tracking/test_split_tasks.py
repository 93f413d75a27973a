"""A task of a workflow split into a parent and children (``loopline.compiler.split``),
through the task service in this process (``LocalService``): registered, run, decided and
tracked as any other task; its steps are those of every part."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from loopline.local.serve import LocalService
from loopline.runtime.scripted import ScriptedModel

from tests.e2e.conftest import ROOT
from tests.support.waiting import until

pytestmark = pytest.mark.moto

HANDOFF = ROOT / "tests" / "golden" / "split" / "handoff.yaml"


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[httpx.Client]:
    from loopline.compiler import compile as compile_module

    # Step Functions' limit as small as the golden split case's: three state machines.
    monkeypatch.setattr(compile_module, "DEFINITION_LIMIT", 5500)
    model = ScriptedModel.from_data(
        {
            "responses": [
                {"step": "draft", "answer": "tides"},
                {"step": "polish", "answer": "Tides."},
                {"step": "publish", "answer": "out"},
            ]
        }
    )
    service = LocalService(ROOT / "template.yaml", port=0, outbox=tmp_path / "outbox", model=model)
    service.start()
    try:
        with httpx.Client(
            base_url=service.url,
            headers={"Authorization": f"Bearer {service.keys[0].key}"},
            timeout=60,
        ) as c:
            yield c
    finally:
        service.stop()


def _done(client: httpx.Client, task_id: str) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        view = client.get(f"/v1/tasks/{task_id}").json()
        return view if view["status"] not in ("RUNNING", "WAITING", "QUEUED") else None

    return dict(until(ended, 60))


def _start(client: httpx.Client, inputs: dict[str, Any]) -> str:
    r = client.put(
        "/v1/workflows/handoff",
        content=HANDOFF.read_text(),
        headers={"Content-Type": "text/yaml"},
    )
    assert r.status_code in (200, 201), r.text
    r = client.post("/v1/tasks", json={"workflow": "handoff", "inputs": inputs})
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def test_a_split_workflows_task_waits_in_a_child_and_ends_with_every_parts_steps(
    client: httpx.Client,
) -> None:
    task_id = _start(client, {})
    # The approval waits in a child execution, and shows on the task
    waiting = until(lambda: client.get(f"/v1/tasks/{task_id}").json().get("waiting"))
    assert [w["step"] for w in waiting] == ["gate"]
    r = client.post(f"/v1/human-tasks/{waiting[0]['human_task']}/approve", json={})
    assert r.status_code == 200, r.text

    view = _done(client, task_id)

    assert view["status"] == "SUCCEEDED", (view["error"], view["cause"])
    assert view["output"] == {"draft": "tides", "published": "out", "approved": True}
    steps = {k: v["status"] for k, v in view["steps"].items()}
    assert steps == {
        "draft": "SUCCEEDED",
        "quote": "SUCCEEDED",
        "polish": "SUCCEEDED",
        "gate": "SUCCEEDED",
        "early": "SKIPPED",
        "summary": "SUCCEEDED",
        "boom": "SKIPPED",
        "publish": "SUCCEEDED",
    }
    events = [e["type"] for e in client.get(f"/v1/tasks/{task_id}/events").json()["items"]]
    assert events[0] == "task.started" and events[-1] == "task.succeeded"
    assert events.count("task.succeeded") == 1


def test_a_failure_in_a_child_fails_the_task_with_the_steps_error(client: httpx.Client) -> None:
    task_id = _start(client, {"fail": True})
    waiting = until(lambda: client.get(f"/v1/tasks/{task_id}").json().get("waiting"))
    client.post(f"/v1/human-tasks/{waiting[0]['human_task']}/approve", json={})

    view = _done(client, task_id)

    assert view["status"] == "FAILED"
    assert view["error"] == "Loopline.Failed"
    assert view["cause"] == "failed after draft=tides polished=Tides."
    assert view["steps"]["boom"]["status"] == "FAILED"
    assert "publish" not in view["steps"]
