"""The settings of notifications: sender, Slack, the outbox queue and its retry delays,
each checked where it is parsed (a mistake names its variable and what it needs)."""

from __future__ import annotations

import pytest
from loopline.redact import redact
from loopline.settings import settings

from tests.unit.test_settings import _fresh_settings, problem_of

__all__ = ["_fresh_settings"]


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "LOOPLINE_SENDER_EMAIL",
            "Loopline <loopline@example.com>",
            "LOOPLINE_SENDER_EMAIL must be one email address (loopline@example.com), got "
            '"Loopline <loopline@example.com>"',
        ),
        (
            "LOOPLINE_SENDER_EMAIL",
            "loopline@localhost",
            "LOOPLINE_SENDER_EMAIL must be one email address (loopline@example.com), got "
            '"loopline@localhost"',
        ),
        (
            "LOOPLINE_SLACK_API_URL",
            "slack.com/api",
            'LOOPLINE_SLACK_API_URL must be an http:// or https:// URL with a host, got "slack.com/api"',
        ),
        (
            "LOOPLINE_SLACK_SECRET_ARN",
            "arn:aws:ssm:us-east-1:123456789012:parameter/slack",
            "LOOPLINE_SLACK_SECRET_ARN must be the ARN of a Secrets Manager secret "
            "(arn:aws:secretsmanager:region:account:secret:name), got "
            '"arn:aws:ssm:us-east-1:123456789012:parameter/slack"',
        ),
        (
            "LOOPLINE_OUTBOX_QUEUE",
            "outbox",
            'LOOPLINE_OUTBOX_QUEUE must be an http:// or https:// URL with a host, got "outbox"',
        ),
        (
            "LOOPLINE_OUTBOX_RETRY_DELAYS",
            "5, soon, 60",
            "LOOPLINE_OUTBOX_RETRY_DELAYS must be seconds separated by commas (5,30,120), each "
            "greater than 0 and at most 43200 (SQS keeps a message hidden 12 hours at most), "
            'got "soon"',
        ),
        (
            "LOOPLINE_OUTBOX_RETRY_DELAYS",
            "5,0",
            "LOOPLINE_OUTBOX_RETRY_DELAYS must be seconds separated by commas (5,30,120), each "
            "greater than 0 and at most 43200 (SQS keeps a message hidden 12 hours at most), "
            'got "0"',
        ),
        (
            "LOOPLINE_OUTBOX_RETRY_DELAYS",
            "50000",
            "LOOPLINE_OUTBOX_RETRY_DELAYS must be seconds separated by commas (5,30,120), each "
            "greater than 0 and at most 43200 (SQS keeps a message hidden 12 hours at most), "
            'got "50000"',
        ),
    ],
)
def test_each_notification_setting_names_itself_and_what_it_needs(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    assert problem_of(variable, value, monkeypatch) == message


def test_unset_or_empty_the_defaults_apply(monkeypatch: pytest.MonkeyPatch) -> None:
    parsed = settings()
    assert parsed.slack_api_url == "https://slack.com/api"
    assert parsed.outbox_retry_delays == (5, 30, 120, 600, 1800)
    assert parsed.sender_email is parsed.outbox_queue is parsed.slack_secret_arn is None
    for name in ("SLACK_API_URL", "OUTBOX_RETRY_DELAYS", "SENDER_EMAIL", "SLACK_BOT_TOKEN"):
        monkeypatch.setenv(f"LOOPLINE_{name}", "")
    settings.cache_clear()
    parsed = settings()
    assert parsed.slack_api_url == "https://slack.com/api"
    assert parsed.outbox_retry_delays == (5, 30, 120, 600, 1800)
    assert parsed.sender_email is parsed.slack_bot_token is None


def test_good_values_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPLINE_SENDER_EMAIL", " approvals@loopline.example.com ")
    monkeypatch.setenv("LOOPLINE_SLACK_API_URL", "http://127.0.0.1:8123/api/")
    monkeypatch.setenv("LOOPLINE_OUTBOX_RETRY_DELAYS", "1, 2.5,30")
    monkeypatch.setenv(
        "LOOPLINE_SLACK_SECRET_ARN",
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:loopline-slack-AbCdEf",
    )
    parsed = settings()
    assert parsed.sender_email == "approvals@loopline.example.com"
    assert parsed.slack_api_url == "http://127.0.0.1:8123/api"
    assert parsed.outbox_retry_delays == (1, 2.5, 30)
    assert parsed.slack_secret_arn is not None


def test_slack_secrets_are_never_quoted_back_and_are_masked_once_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    message = problem_of("LOOPLINE_SLACK_SIGNING_SECRET", "abc def-0123456789", monkeypatch)
    assert "0123456789" not in message
    assert message == (
        "LOOPLINE_SLACK_SIGNING_SECRET must be the value alone: printable ASCII without spaces"
    )
    monkeypatch.setenv("LOOPLINE_SLACK_SIGNING_SECRET", "f00dfeed-signing-0123")
    monkeypatch.setenv("LOOPLINE_SLACK_BOT_TOKEN", "xoxb-1234-5678-abcdef")
    settings()
    assert redact("token xoxb-1234-5678-abcdef, secret f00dfeed-signing-0123") == (
        "token ***, secret ***"
    )
