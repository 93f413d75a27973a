"""Slack messages of human tasks (Block Kit), sent to a local server speaking Slack's Web
API, and the verification of Slack's signed button clicks."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import boto3
import pytest
from loopline.notify import NotifyError, slack
from moto import mock_aws

from tests.notify.conftest import HUMAN_TASK, human_view
from tests.support.slack_server import SlackServer

TOKEN = "xoxb-1-test-token"
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[SlackServer]:
    with SlackServer(token=TOKEN) as s:
        monkeypatch.setenv("LOOPLINE_SLACK_API_URL", s.url)
        monkeypatch.setenv("LOOPLINE_SLACK_BOT_TOKEN", TOKEN)
        yield s


def _buttons(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for b in blocks if b["type"] == "actions" for e in b["elements"]]


def _all_text(blocks: list[dict[str, Any]]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


# --------------------------------------------------------------------------- messages


def test_an_approval_message_has_the_instruction_context_and_two_buttons() -> None:
    text, blocks = slack.blocks(human_view())

    assert text.startswith("Approval needed: ticket-triage, step review")
    assert blocks[0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "Approval needed: ticket-triage, step review"},
    }
    assert blocks[1]["text"]["text"] == "Check the reply before it goes out."
    fields = [f["text"] for b in blocks if "fields" in b for f in b["fields"]]
    assert fields == ["*customer*\nAnn", "*reply*\nWe refunded your order.", "*score*\n0.93"]
    approve, reject = _buttons(blocks)
    assert (approve["action_id"], approve["value"], approve["style"]) == (
        "loopline_approve",
        f"{HUMAN_TASK}:approve",
        "primary",
    )
    assert (reject["action_id"], reject["value"], reject["style"]) == (
        "loopline_reject",
        f"{HUMAN_TASK}:reject",
        "danger",
    )
    assert "For role support" in _all_text(blocks)


def test_a_pause_has_a_resume_button_and_a_form_step_a_note_instead() -> None:
    _, pause = slack.blocks(human_view(kind="pause"))
    [button] = _buttons(pause)
    assert (button["action_id"], button["value"]) == ("loopline_complete", f"{HUMAN_TASK}:complete")

    _, form = slack.blocks(human_view(kind="human_task", form_schema={"type": "object"}))
    assert _buttons(form) == []
    assert "decide in Loopline" in _all_text(form)


def test_values_cannot_mention_link_or_format_around_the_message() -> None:
    evil = "<!channel> <https://evil.example|click> & <@U123>"
    text, blocks = slack.blocks(human_view(instruction=evil, context={"<b>": evil}))

    shown = _all_text(blocks) + text
    assert "<!channel>" not in shown and "<https://evil" not in shown and "<@U123>" not in shown
    assert "&lt;!channel&gt; &lt;https://evil.example|click&gt; &amp; &lt;@U123&gt;" in shown


def test_many_context_values_stay_within_slacks_limits() -> None:
    context = {f"field{i}": "x" * 3000 for i in range(600)}
    text, blocks = slack.blocks(human_view(context=context, instruction="y" * 5000))

    assert len(blocks) <= 50
    assert blocks[-2]["type"] == "actions"  # the buttons are kept
    assert all(len(f["text"]) <= 2000 for b in blocks for f in b.get("fields", []))
    assert all(len(f.get("fields", [])) <= 10 for f in blocks)
    assert len(blocks[1]["text"]["text"]) <= 3000
    assert len(text) <= 3000


def test_the_outcome_replaces_the_buttons_with_who_decided_what() -> None:
    decision = {
        "action": "approve",
        "by": "slack:U024BE7LH",
        "at": "2026-11-23T11:00:00.000Z",
        "comment": "ship <it>",
        "via": "slack",
    }
    text, blocks = slack.outcome_blocks(human_view(status="decided", decision=decision))

    assert _buttons(blocks) == []
    outcome = blocks[-2]["text"]["text"]
    assert outcome == "*Approved* by <@U024BE7LH> at 2026-11-23 11:00 UTC\n> ship &lt;it&gt;"
    assert (
        text
        == "Approval needed: ticket-triage, step review: Approved by <@U024BE7LH> at 2026-11-23 11:00 UTC"
    )


def test_the_outcome_of_a_link_decision_names_the_recipient_escaped() -> None:
    decision = {"action": "reject", "by": "ann@example.com", "rollback_to": "draft"}
    _, blocks = slack.outcome_blocks(human_view(status="decided", decision=decision))
    assert blocks[-2]["text"]["text"] == "*Rejected* by ann@example.com, back to step draft"

    _, expired = slack.outcome_blocks(human_view(status="expired"))
    assert expired[-2]["text"]["text"] == "*Expired*: nobody decided in time."


# --------------------------------------------------------------------------- Web API


def test_post_sends_the_buttons_with_the_bot_token_and_update_replaces_them(
    server: SlackServer,
) -> None:
    text, blocks = slack.blocks(human_view())

    channel, ts = slack.post("#approvals", text, blocks)

    [request] = server.requests
    assert request.api_method == "chat.postMessage"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.body["channel"] == "#approvals"
    assert request.body["text"] == text
    assert [b["value"] for b in _buttons(request.body["blocks"])] == [
        f"{HUMAN_TASK}:approve",
        f"{HUMAN_TASK}:reject",
    ]
    assert channel.startswith("C") and ts

    decided = human_view(status="decided", decision={"action": "approve", "by": "slack:U1"})
    slack.update(channel, ts, *slack.outcome_blocks(decided))

    update = server.calls("chat.update")[0]
    assert (update.body["channel"], update.body["ts"]) == (channel, ts)
    assert _buttons(server.messages[channel, ts]["blocks"]) == []
    assert "Approved" in server.messages[channel, ts]["text"]


def test_a_wrong_token_is_an_error_to_retry_not_a_crash(
    server: SlackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOOPLINE_SLACK_BOT_TOKEN", "xoxb-wrong")
    with pytest.raises(NotifyError, match=r"chat\.postMessage failed: invalid_auth") as info:
        slack.post("#approvals", "t", [])
    assert not info.value.permanent


def test_an_unknown_channel_is_permanent(server: SlackServer) -> None:
    server.unknown_channels.add("#nowhere")
    with pytest.raises(NotifyError, match="channel_not_found") as info:
        slack.post("#nowhere", "t", [])
    assert info.value.permanent


def test_a_server_error_is_transient_and_a_rate_limit_says_how_long_to_wait(
    server: SlackServer,
) -> None:
    server.fail_next(1)
    with pytest.raises(NotifyError, match=r"failed: internal_error") as failed:
        slack.post("#approvals", "t", [])
    assert not failed.value.permanent and failed.value.retry_after is None

    server.rate_limit_next(1, retry_after=7)
    with pytest.raises(NotifyError, match="ratelimited") as limited:
        slack.post("#approvals", "t", [])
    assert limited.value.retry_after == 7

    assert slack.post("#approvals", "t", [])[1]  # the server recovered


def test_no_token_anywhere_says_where_to_put_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOOPLINE_SLACK_BOT_TOKEN", raising=False)
    monkeypatch.delenv("LOOPLINE_SLACK_SECRET_ARN", raising=False)
    with pytest.raises(NotifyError, match="no Slack bot token: set bot_token"):
        slack.post("#approvals", "t", [])


def test_an_unreachable_api_is_a_transient_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPLINE_SLACK_API_URL", "http://127.0.0.1:9/api")
    monkeypatch.setenv("LOOPLINE_SLACK_BOT_TOKEN", TOKEN)
    with pytest.raises(NotifyError, match="Slack could not be reached") as info:
        slack.post("#approvals", "t", [])
    assert not info.value.permanent


# --------------------------------------------------------------------------- credentials


@pytest.fixture
def slack_secret(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.delenv("LOOPLINE_SLACK_BOT_TOKEN", raising=False)
    monkeypatch.delenv("LOOPLINE_SLACK_SIGNING_SECRET", raising=False)
    with mock_aws():
        arn = boto3.client("secretsmanager").create_secret(
            Name="loopline-slack",
            SecretString=json.dumps({"bot_token": TOKEN, "signing_secret": SECRET}),
        )["ARN"]
        monkeypatch.setenv("LOOPLINE_SLACK_SECRET_ARN", arn)
        yield arn


def test_the_bot_token_comes_from_the_secret_read_once(
    slack_secret: str, server: SlackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LOOPLINE_SLACK_BOT_TOKEN")
    slack.post("#approvals", "t", [])
    assert server.requests[-1].headers["Authorization"] == f"Bearer {TOKEN}"
    assert slack.signing_secret() == SECRET

    # Read once: a change of the secret is not seen by this process ...
    client = boto3.client("secretsmanager")
    client.put_secret_value(
        SecretId=slack_secret, SecretString=json.dumps({"bot_token": "xoxb-new"})
    )
    assert slack.bot_token() == TOKEN
    # ... until Slack refuses the token: then the secret is read again.
    server.token = "xoxb-new"
    with pytest.raises(NotifyError, match="invalid_auth"):
        slack.post("#approvals", "t", [])
    slack.post("#approvals", "t", [])
    assert server.requests[-1].headers["Authorization"] == "Bearer xoxb-new"


def test_the_shell_wins_over_the_secret(slack_secret: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPLINE_SLACK_BOT_TOKEN", "xoxb-shell")
    monkeypatch.setenv("LOOPLINE_SLACK_SIGNING_SECRET", "shell-signing-secret")
    assert slack.bot_token() == "xoxb-shell"
    assert slack.signing_secret() == "shell-signing-secret"


def test_an_empty_placeholder_is_read_again_until_it_is_filled_in(
    slack_secret: str,
) -> None:
    client = boto3.client("secretsmanager")
    client.put_secret_value(
        SecretId=slack_secret, SecretString='{"bot_token": "", "signing_secret": ""}'
    )
    assert slack.bot_token() is None
    assert slack.verify({}, "") is False
    client.put_secret_value(SecretId=slack_secret, SecretString=json.dumps({"bot_token": TOKEN}))
    assert slack.bot_token() == TOKEN


def test_a_secret_that_is_not_json_is_a_readable_error(slack_secret: str) -> None:
    boto3.client("secretsmanager").put_secret_value(SecretId=slack_secret, SecretString="xoxb")
    with pytest.raises(NotifyError, match=r'must be a JSON object \{"bot_token"'):
        slack.bot_token()


# --------------------------------------------------------------------------- requests


def _signed(body: str, *, at: float | None = None, secret: str = SECRET) -> dict[str, str]:
    timestamp = str(int(time.time() if at is None else at))
    return {
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": slack.sign(body, timestamp, secret),
        "Content-Type": "application/x-www-form-urlencoded",
    }


@pytest.fixture
def signing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPLINE_SLACK_SIGNING_SECRET", SECRET)


def _click(value: str = f"{HUMAN_TASK}:approve", action_id: str = "loopline_approve") -> str:
    payload = {
        "type": "block_actions",
        "user": {"id": "U024BE7LH", "username": "ann", "team_id": "T9TK3CUKW"},
        "team": {"id": "T9TK3CUKW", "domain": "example"},
        "channel": {"id": "C0123456789", "name": "approvals"},
        "container": {
            "type": "message",
            "message_ts": "1700000000.000001",
            "channel_id": "C0123456789",
        },
        "message": {"ts": "1700000000.000001"},
        "response_url": "https://hooks.slack.com/actions/T/1/x",
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": "loopline_decision",
                "value": value,
            }
        ],
    }
    return urlencode({"payload": json.dumps(payload)})


@pytest.mark.usefixtures("signing")
def test_a_correctly_signed_request_passes() -> None:
    body = _click()
    assert slack.verify(_signed(body), body)
    # Header names in any case, as API Gateway may pass them.
    assert slack.verify({k.lower(): v for k, v in _signed(body).items()}, body)


@pytest.mark.usefixtures("signing")
def test_a_wrong_signature_a_changed_body_or_another_secret_fails() -> None:
    body = _click()
    headers = _signed(body)
    assert not slack.verify({**headers, "X-Slack-Signature": "v0=" + "0" * 64}, body)
    assert not slack.verify(headers, body.replace("approve", "reject"))
    assert not slack.verify(_signed(body, secret="another-secret"), body)
    assert not slack.verify(
        {"X-Slack-Request-Timestamp": headers["X-Slack-Request-Timestamp"]}, body
    )
    assert not slack.verify({**headers, "X-Slack-Request-Timestamp": "soon"}, body)


@pytest.mark.usefixtures("signing")
def test_a_timestamp_more_than_five_minutes_away_fails() -> None:
    body = _click()
    now = 1_800_000_000.0
    assert slack.verify(_signed(body, at=now - 299), body, now=now)
    assert not slack.verify(_signed(body, at=now - 301), body, now=now)
    assert not slack.verify(_signed(body, at=now + 301), body, now=now)


def test_without_a_signing_secret_nothing_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOOPLINE_SLACK_SIGNING_SECRET", raising=False)
    monkeypatch.delenv("LOOPLINE_SLACK_SECRET_ARN", raising=False)
    body = _click()
    assert not slack.verify(_signed(body), body)


def test_parse_action_reads_the_clicked_button() -> None:
    action = slack.parse_action(_click())
    assert action == slack.SlackAction(
        human_task=HUMAN_TASK,
        action="approve",
        user_id="U024BE7LH",
        team_id="T9TK3CUKW",
        channel_id="C0123456789",
        message_ts="1700000000.000001",
    )
    assert slack.parse_action(_click(f"{HUMAN_TASK}:reject", "loopline_reject")).action == "reject"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("", "no payload field"),
        ("payload=%7Bnot", "the payload is not JSON"),
        (urlencode({"payload": json.dumps({"type": "view_submission"})}), "not 'view_submission'"),
        (_click(action_id="someone_elses"), "no Loopline button"),
        (_click(value=f"{HUMAN_TASK}:reject"), "is not <human task id>:<its action>"),
        (_click(value="tsk_1:approve"), "is not <human task id>:<its action>"),
        (_click().replace("U024BE7LH", ""), "names no user"),
    ],
)
def test_parse_action_refuses_what_is_not_a_loopline_click(body: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        slack.parse_action(body)
