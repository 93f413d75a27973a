"""Waiting for the local stack in tests: a condition polled until it holds, and a task's
whole event list read page by page."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx


def until[T](
    check: Callable[[], T], timeout: float = 30, what: str = "", interval: float = 0.1
) -> T:
    """``check()``'s first truthy answer, asked every ``interval`` seconds; AssertionError
    naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what or check}")
        time.sleep(interval)


def task_events(client: httpx.Client, task_id: str) -> list[dict[str, Any]]:
    """Every event of a task so far, in order (``GET /v1/tasks/{id}/events``, all pages)."""
    items: list[dict[str, Any]] = []
    after = 0
    while True:
        page = client.get(f"/v1/tasks/{task_id}/events", params={"after": after, "limit": 100})
        assert page.status_code == 200, page.text
        batch = page.json()["items"]
        if not batch:
            return items
        items.extend(batch)
        after = batch[-1]["seq"]
