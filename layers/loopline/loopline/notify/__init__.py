"""Telling people about human tasks: the senders (docs/internals.md, "Notifications").

Each module composes one kind of message from a human task's view (pure functions) and
makes the one AWS or HTTP call that sends it: ``email`` (Amazon SES), ``slack`` (Slack's
Web API, and the verification of Slack's signed button clicks), ``outbox`` (the SQS queue
the domain puts messages on for the outbox function to deliver). Nothing here reads or
writes the task store: the domain (``loopline.service.humans``) decides what to send and
records what happened.

A sender that fails raises ``NotifyError``: ``permanent`` when sending the same message
again cannot succeed (an address SES refuses, a Slack channel that does not exist),
``retry_after`` when the service named how long to wait.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any


class NotifyError(Exception):
    """A message could not be sent; the text says why, in the reader's words."""

    def __init__(
        self, message: str, *, permanent: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after


#: What a message asks of its reader, by kind of human step.
ASKS = {"approval": "Approval needed", "human_task": "Input needed", "pause": "Paused"}


def headline(view: dict[str, Any]) -> str:
    """``Approval needed: ticket-triage, step review`` (``Escalated, …`` when it was): the
    email's subject and the Slack message's title."""
    ask = ASKS.get(str(view.get("kind")), "Waiting for you")
    if view.get("escalated"):
        ask = f"Escalated, {ask[0].lower()}{ask[1:]}"
    where = [str(view["workflow"])] if view.get("workflow") else []
    if view.get("step"):
        where.append(f"step {view['step']}")
    return f"{ask}: {', '.join(where)}" if where else ask


def when(value: Any) -> str | None:
    """An RFC 3339 time as people read it (``2026-11-23 10:15 UTC``)."""
    if not value:
        return None
    from loopline.ids import parse_time

    try:
        return parse_time(str(value)).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return str(value)


__all__ = ["ASKS", "NotifyError", "headline", "when"]
