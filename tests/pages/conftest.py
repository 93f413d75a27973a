"""Fixtures of the approval page tests.

``links`` stands in for the domain's two link functions (``humans.link_page`` and
``humans.decide_by_link``) with an in-memory fake that raises the domain's errors as the
contract says, so the pages' mapping of each can be checked on its own; the real domain
is exercised end to end by the service tests. ``api`` is the task API's resolver
(``loopline.api.app.build()``) that includes the link routes, answering proxy events.
"""

from __future__ import annotations

import copy
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import pytest
from loopline.service import forms, humans
from loopline.service.errors import Conflict, FieldError, Gone, Invalid, ServiceError

from tests.support.proxy_server import proxy_event

RECIPIENT = "ada@example.com"
ACTIONS = {
    "approval": ("approve", "reject"),
    "human_task": ("complete", "reject"),
    "pause": ("complete",),
}


def human_view(kind: str = "approval", **fields: Any) -> dict[str, Any]:
    """A human task view as the domain shows it."""
    view: dict[str, Any] = {
        "id": "hum_01JTEST",
        "task": "tsk_01JTEST",
        "workflow": "release",
        "step": "gate",
        "kind": kind,
        "status": "open",
        "instruction": "Ship version 2.1?",
        "context": {"version": "2.1"},
        "form_schema": None,
        "rollback_to": [],
        "assignee": {"role": "ops"},
        "escalated": False,
        "created_at": "2026-11-23T10:00:00Z",
        "expires_at": "2026-11-24T10:00:00Z",
        "decision": None,
    }
    view.update(fields)
    return view


def link_view(human: dict[str, Any]) -> humans.LinkView:
    task = {"id": human["task"], "workflow": human["workflow"], "status": "RUNNING"}
    return humans.LinkView(human=human, recipient=RECIPIENT, task=task)


@dataclass
class FakeLinks:
    """Links by token, decided once; ``refuse`` makes the next calls raise that error."""

    views: dict[str, dict[str, Any]] = field(default_factory=dict)
    gone: set[str] = field(default_factory=set)
    decided: list[dict[str, Any]] = field(default_factory=list)
    pages: list[str] = field(default_factory=list)
    refuse: ServiceError | Exception | None = None

    def add(self, human: dict[str, Any]) -> str:
        token = secrets.token_urlsafe(32)
        self.views[token] = human
        return token

    def link_page(self, token: str) -> humans.LinkView:
        self.pages.append(token)
        if self.refuse is not None:
            raise self.refuse
        if token in self.gone or token not in self.views:
            raise Gone("this link is not valid (or no longer is)")
        human = self.views[token]
        decision = human.get("decision")
        if decision:
            error = Conflict(f"human task {human['id']} was already decided")
            error.decision = decision  # type: ignore[attr-defined]
            raise error
        return link_view(copy.deepcopy(human))

    def decide_by_link(
        self,
        token: str,
        action: str,
        *,
        comment: str | None = None,
        rollback_to: str | None = None,
        data: Any = None,
    ) -> dict[str, Any]:
        human = self.link_page(token).human
        kind = human["kind"]
        if action not in ACTIONS[kind]:
            raise Invalid(
                f"a {kind} step is not answered with {action}",
                [
                    FieldError(
                        "action", "enum", f"must be one of {', '.join(ACTIONS[kind])}", action
                    )
                ],
            )
        if rollback_to is not None and rollback_to not in human["rollback_to"]:
            raise Invalid(
                "rollback_to is not a target",
                [
                    FieldError(
                        "rollback_to",
                        "enum",
                        "must be one of the step's rollback targets",
                        rollback_to,
                    )
                ],
            )
        if action == "complete" and human.get("form_schema"):
            problems = forms.violations(human["form_schema"], data if data is not None else {})
            if problems:
                raise Invalid("the form data has problems", problems)
        decision = {
            "action": action,
            "by": RECIPIENT,
            "at": "2026-11-23T10:15:00Z",
            "comment": comment,
            "via": "link",
            "rollback_to": rollback_to,
            "data": data,
            "delivery": "pending",
        }
        self.views[token]["decision"] = decision
        self.views[token]["status"] = "decided"
        self.decided.append({"token": token, **decision})
        return {**human, "status": "decided", "decision": decision}


@pytest.fixture
def links(monkeypatch: pytest.MonkeyPatch) -> FakeLinks:
    fake = FakeLinks()
    monkeypatch.setattr(humans, "link_page", fake.link_page)
    monkeypatch.setattr(humans, "decide_by_link", fake.decide_by_link)
    return fake


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


class Api:
    """The task API's resolver, called with proxy events."""

    def __init__(self) -> None:
        from loopline.api.app import build

        self.app = build()

    def __call__(
        self,
        method: str,
        path: str,
        *,
        form: dict[str, str] | list[tuple[str, str]] | None = None,
        json_body: Any = None,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        headers = dict(headers or {})
        data = body or b""
        if form is not None:
            data = urlencode(form).encode()
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        elif json_body is not None:
            data = json.dumps(json_body).encode()
            headers.setdefault("Content-Type", "application/json")
            headers.setdefault("Accept", "application/json")
        event = proxy_event(method, path, list(headers.items()), data)
        out = self.app.resolve(event, None)
        found = dict(out.get("headers") or {})
        for name, values in (out.get("multiValueHeaders") or {}).items():
            found[name] = ", ".join(values)
        return Answer(out["statusCode"], found, out.get("body") or "")


@pytest.fixture
def api() -> Iterator[Api]:
    yield Api()
