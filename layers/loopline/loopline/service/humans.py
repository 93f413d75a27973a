"""People in the loop: human tasks, their links and decisions (docs/internals.md, "Human
tasks").

A human step (``approval``, ``human_task``, ``pause``) that starts records a human task
(``open_human_task``, from the human function) with its Step Functions task token, which
never leaves the server. Decisions come through the API, an approval link or Slack, and
all go through ``_decide``: the decision is recorded with a conditional write before Step
Functions is told, so of concurrent decisions exactly one wins.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from loopline.service.keys import Caller


@dataclass(frozen=True)
class Actor:
    """Who decides: a key's holder, a link's recipient, a Slack user or the local user."""

    tenant: str
    user: str | None
    roles: tuple[str, ...] = ()
    #: May decide whatever the assignee (a link's recipient, a Slack channel, the CLI).
    admin: bool = False

    @classmethod
    def of_caller(cls, caller: Caller) -> Actor:
        return cls(caller.tenant, caller.user, tuple(caller.roles), "admin" in caller.roles)


@dataclass
class LinkView:
    """What an approval link shows: the human task, its recipient and the task."""

    human: dict[str, Any]
    recipient: str
    task: dict[str, Any] = field(default_factory=dict)


def decide(
    human_task_id: str,
    action: str,
    *,
    actor: Actor,
    via: str,
    comment: str | None = None,
    rollback_to: str | None = None,
    data: Any = None,
) -> dict[str, Any]:
    """Decide a human task; the view with ``decision``."""
    raise NotImplementedError


def link_page(token: str) -> LinkView:
    """What the link of ``token`` shows; side-effect free."""
    raise NotImplementedError


def decide_by_link(
    token: str,
    action: str,
    *,
    comment: str | None = None,
    rollback_to: str | None = None,
    data: Any = None,
) -> dict[str, Any]:
    """Decide through an approval link, as its recipient."""
    raise NotImplementedError


def slack_decide(
    human_task_id: str, action: str, *, slack_user: str, team: str | None = None
) -> dict[str, Any]:
    """Decide through a Slack button, as ``slack:<user>``."""
    raise NotImplementedError


def claim_slack_request(signature: str, timestamp: str) -> bool:
    """True the first time a signed Slack request is seen; False for a replay."""
    raise NotImplementedError


def deliver(message: dict[str, Any]) -> None:
    """Send one outbox message (email, Slack post or update, a decision to Step Functions);
    raise when it must be retried."""
    raise NotImplementedError
