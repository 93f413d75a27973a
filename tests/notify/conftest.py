"""Human task views as the domain renders them, and settings forgotten around each test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from loopline import aws
from loopline.notify import slack
from loopline.settings import settings

HUMAN_TASK = "hum_01jd8v3k2m4n5p6q7r8s9t0v1w"


def human_view(**changes: Any) -> dict[str, Any]:
    """An open approval of ``ticket-triage``'s ``review`` step."""
    view: dict[str, Any] = {
        "id": HUMAN_TASK,
        "task": "tsk_01jd8v3k2m4n5p6q7r8s9t0v1x",
        "workflow": "ticket-triage",
        "step": "review",
        "kind": "approval",
        "status": "open",
        "instruction": "Check the reply before it goes out.",
        "context": {"customer": "Ann", "reply": "We refunded your order.", "score": 0.93},
        "form_schema": None,
        "rollback_to": ["draft"],
        "assignee": {"role": "support"},
        "escalated": False,
        "created_at": "2026-11-23T10:15:00.000Z",
        "expires_at": "2026-11-24T10:15:00.000Z",
        "decision": None,
    }
    view.update(changes)
    return view


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    settings.cache_clear()
    slack.reset()
    aws.reset()
    yield
    settings.cache_clear()
    slack.reset()
    aws.reset()
