"""The served local stack in this process (``LocalService``, what ``loopline serve``
runs) for the webhook tests and ``make bench``: a client of its API, a quick workflow to
run tasks of, and the delivery log."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from loopline.local.serve import LocalService
from loopline.runtime.scripted import ScriptedModel

from tests.support.waiting import until

ROOT = Path(__file__).resolve().parents[2]
#: A workflow that ends at once, without a model.
QUICK = """\
name: quick
version: 1.0.0
inputs:
  n: {type: integer, default: 0}
steps:
  - id: first
    tool: render
    args: {template: "task {{ inputs.n }}"}
output:
  text: "{{ steps.first.output }}"
"""
TERMINAL = {"SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT"}


@dataclass
class Stack:
    service: LocalService
    client: httpx.Client

    def until[T](self, check: Callable[[], T], timeout: float = 30, what: str = "") -> T:
        return until(check, timeout, what, interval=0.05)

    def run(self, webhook: str | None = None, n: int = 0) -> str:
        """Start a ``quick`` task (with ``webhook``) and wait until it ends; its id."""
        body: dict[str, Any] = {"workflow": "quick", "inputs": {"n": n}}
        if webhook:
            body["webhook"] = webhook
        r = self.client.post("/v1/tasks", json=body)
        assert r.status_code == 202, r.text
        task_id = str(r.json()["id"])
        self.until(
            lambda: self.client.get(f"/v1/tasks/{task_id}").json()["status"] in TERMINAL,
            what=f"task {task_id} ended",
        )
        return task_id

    def deliveries(self, task_id: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"task": task_id, "limit": 100}
            if cursor:
                params["cursor"] = cursor
            page = self.client.get("/v1/webhook-deliveries", params=params)
            assert page.status_code == 200, page.text
            items.extend(page.json()["items"])
            cursor = page.json()["next_cursor"]
            if not cursor:
                return items

    def events(self, task_id: str) -> list[dict[str, Any]]:
        r = self.client.get(f"/v1/tasks/{task_id}/events", params={"limit": 100})
        assert r.status_code == 200, r.text
        return list(r.json()["items"])

    def subscribe(self, url: str, events: list[str]) -> dict[str, Any]:
        r = self.client.post("/v1/webhooks", json={"url": url, "events": events})
        assert r.status_code == 201, r.text
        return dict(r.json())


@contextlib.contextmanager
def served(retry_delays: str = "1,1,1,1") -> Iterator[Stack]:
    """The stack, with ``LOOPLINE_WEBHOOK_RETRY_DELAYS`` and 127.0.0.1 allowed."""
    with pytest.MonkeyPatch.context() as mp:
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            mp.setenv(name, "testing")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        for name in [k for k in os.environ if k.startswith("LOOPLINE_WEBHOOK_")]:
            mp.delenv(name)
        # The shell's value wins over the template's.
        mp.setenv("LOOPLINE_WEBHOOK_RETRY_DELAYS", retry_delays)
        model = ScriptedModel.from_data({"responses": [{"answer": "text"}]})
        service = LocalService(ROOT / "template.yaml", port=0, allow_hosts="127.0.0.1", model=model)
        service.start()
        try:
            key = service.keys[0].key
            with httpx.Client(
                base_url=service.url, headers={"Authorization": f"Bearer {key}"}, timeout=60
            ) as client:
                r = client.put(
                    "/v1/workflows/quick", content=QUICK, headers={"Content-Type": "text/yaml"}
                )
                assert r.status_code in (200, 201), r.text
                yield Stack(service, client)
        finally:
            service.stop()
