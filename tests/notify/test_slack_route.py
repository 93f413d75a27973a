"""``POST /v1/slack/actions`` through the API function's resolver: what each request is
answered and which domain calls it makes. The domain (``claim_slack_request``,
``slack_decide``) is replaced by recorders here: these are the route's mapping tests; the
domain's own tests cover deciding."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import pytest
from loopline.api.app import handle, openapi_document
from loopline.local.executor import LocalContext
from loopline.notify import slack
from loopline.service import humans
from loopline.service.errors import Conflict, Gone

from tests.api.conftest import proxy_event
from tests.notify.conftest import HUMAN_TASK

SECRET = "e7a1d3c5b9f20486a1d3c5b9f2048600"
PATH = "/v1/slack/actions"


@dataclass
class Domain:
    claimed: list[tuple[str, str]] = field(default_factory=list)
    decided: list[tuple[Any, ...]] = field(default_factory=list)
    refuse: Exception | None = None

    def claim(self, signature: str, timestamp: str) -> bool:
        seen = (signature, timestamp) in self.claimed
        self.claimed.append((signature, timestamp))
        return not seen

    def decide(
        self, human_task: str, action: str, *, slack_user: str, team: str | None = None
    ) -> dict[str, Any]:
        if self.refuse is not None:
            raise self.refuse
        self.decided.append((human_task, action, slack_user, team))
        return {"id": human_task}


@pytest.fixture
def domain(monkeypatch: pytest.MonkeyPatch) -> Domain:
    monkeypatch.setenv("LOOPLINE_SLACK_SIGNING_SECRET", SECRET)
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    d = Domain()
    monkeypatch.setattr(humans, "claim_slack_request", d.claim)
    monkeypatch.setattr(humans, "slack_decide", d.decide)
    return d


def _click(action: str = "approve") -> str:
    payload = {
        "type": "block_actions",
        "user": {"id": "U024BE7LH", "team_id": "T9TK3CUKW"},
        "team": {"id": "T9TK3CUKW"},
        "channel": {"id": "C0123456789"},
        "container": {"type": "message", "message_ts": "1700000000.000001"},
        "actions": [{"action_id": f"loopline_{action}", "value": f"{HUMAN_TASK}:{action}"}],
    }
    return urlencode({"payload": json.dumps(payload)})


def _post(body: str, headers: dict[str, str]) -> tuple[int, dict[str, str], str]:
    event = proxy_event("POST", PATH, body=body, headers=headers)
    out = handle(event, LocalContext("api", "arn:aws:lambda:us-east-1:1:function:api"))
    headers_out = dict(out.get("headers") or {})
    for name, values in (out.get("multiValueHeaders") or {}).items():
        headers_out[name] = ", ".join(values)
    return out["statusCode"], headers_out, out.get("body") or ""


def _signed(body: str, *, at: float | None = None, secret: str = SECRET) -> dict[str, str]:
    timestamp = str(int(time.time() if at is None else at))
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": slack.sign(body, timestamp, secret),
    }


def test_a_signed_click_decides_as_the_slack_user_and_answers_200_empty(domain: Domain) -> None:
    body = _click()
    headers = _signed(body)

    status, _, text = _post(body, headers)

    assert (status, text) == (200, "")
    assert domain.decided == [(HUMAN_TASK, "approve", "U024BE7LH", "T9TK3CUKW")]
    assert domain.claimed == [(headers["X-Slack-Signature"], headers["X-Slack-Request-Timestamp"])]


@pytest.mark.parametrize(
    "tamper",
    [
        lambda body, h: (body, {**h, "X-Slack-Signature": "v0=" + "1" * 64}),
        lambda body, h: (body.replace("approve", "reject"), h),
        lambda body, h: (body, _signed(body, secret="not-the-secret")),
        lambda body, h: (body, _signed(body, at=time.time() - 6 * 60)),
        lambda body, h: (body, {"Content-Type": h["Content-Type"]}),
    ],
    ids=["wrong-signature", "changed-body", "other-secret", "stale-timestamp", "unsigned"],
)
def test_a_request_slack_did_not_sign_now_is_401_and_changes_nothing(
    domain: Domain, tamper: Any
) -> None:
    body = _click()
    body, headers = tamper(body, _signed(body))

    status, headers_out, text = _post(body, headers)

    assert status == 401
    assert headers_out["Content-Type"] == "application/problem+json"
    problem = json.loads(text)
    assert problem["status"] == 401 and "signed by Slack" in problem["detail"]
    assert domain.decided == [] and domain.claimed == []


def test_a_replayed_request_is_401_and_decides_nothing_more(domain: Domain) -> None:
    body = _click()
    headers = _signed(body)
    assert _post(body, headers)[0] == 200

    status, _, text = _post(body, headers)

    assert status == 401
    assert json.loads(text)["detail"] == "this request was already received"
    assert len(domain.decided) == 1


def test_a_refused_decision_is_shown_to_the_one_who_clicked(domain: Domain) -> None:
    domain.refuse = Conflict("already approved by ann@example.com at 2026-11-23T10:15:00Z")
    body = _click("reject")

    status, headers, text = _post(body, _signed(body))

    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert json.loads(text) == {
        "response_type": "ephemeral",
        "replace_original": False,
        "text": "already approved by ann@example.com at 2026-11-23T10:15:00Z",
    }
    domain.refuse = Gone("this human task expired")
    body = _click()
    assert json.loads(_post(body, _signed(body))[2])["text"] == "this human task expired"


def test_a_signed_body_that_is_no_loopline_click_is_answered_in_slack(domain: Domain) -> None:
    body = urlencode({"payload": json.dumps({"type": "view_submission"})})

    status, _, text = _post(body, _signed(body))

    assert status == 200
    assert "only button clicks" in json.loads(text)["text"]
    assert domain.decided == []


def test_the_signature_is_checked_on_the_raw_body_even_base64_encoded(domain: Domain) -> None:
    import base64

    body = _click()
    event = proxy_event(
        "POST", PATH, body=base64.b64encode(body.encode()).decode(), headers=_signed(body)
    )
    event["isBase64Encoded"] = True

    out = handle(event, LocalContext("api", "arn:aws:lambda:us-east-1:1:function:api"))

    assert out["statusCode"] == 200
    assert domain.decided == [(HUMAN_TASK, "approve", "U024BE7LH", "T9TK3CUKW")]


def test_the_route_needs_no_api_key_and_is_not_in_the_openapi_document(domain: Domain) -> None:
    body = _click()
    # No authorizer context at all (Auth: NONE): the signature is the authentication.
    assert _post(body, _signed(body))[0] == 200
    assert PATH not in openapi_document()["paths"]
