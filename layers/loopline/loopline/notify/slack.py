"""Slack: Block Kit messages about human tasks, sent through Slack's Web API, and the
verification of the button clicks Slack sends back.

- ``blocks(view)`` is the message a human step posts: a header naming the workflow and
  step, the instruction, the context as fields, and for an ``approval`` Approve / Reject
  buttons (``action_id`` ``loopline_approve`` / ``loopline_reject``, ``value``
  ``"<human task id>:approve|reject"``), for a ``pause`` a Complete button, for a
  ``human_task`` (a form Slack cannot show) a note to decide in Loopline.
  ``outcome_blocks(view)`` is the same message once decided (or expired), without
  buttons. Every value shown is escaped for Slack's ``mrkdwn`` (``&``, ``<``, ``>``), so
  no value can mention a channel, link or format around the message's own text.
- ``post`` and ``update`` call ``chat.postMessage`` and ``chat.update`` through
  ``slack_sdk.WebClient`` at ``LOOPLINE_SLACK_API_URL``.
- ``verify`` checks a request's ``X-Slack-Signature`` with the signing secret and its
  ``X-Slack-Request-Timestamp`` (within 5 minutes), with slack-sdk's
  ``SignatureVerifier``; ``parse_action`` reads the clicked button from the form-encoded
  ``payload``.

The bot token and the signing secret are ``LOOPLINE_SLACK_BOT_TOKEN`` and
``LOOPLINE_SLACK_SIGNING_SECRET`` when set (locally), else the fields ``bot_token`` and
``signing_secret`` of the Secrets Manager secret ``LOOPLINE_SLACK_SECRET_ARN``, read once
per process when first needed (read again while the field is still empty, and after
Slack refused the token, so a secret filled in or rotated is picked up).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from loopline.notify import NotifyError, headline, when
from loopline.settings import settings

log = logging.getLogger("loopline.notify")

#: The buttons' ``action_id`` → the decision.
ACTION_IDS = {
    "loopline_approve": "approve",
    "loopline_reject": "reject",
    "loopline_complete": "complete",
}
#: What the message asks, by kind of human step.
#: The words of a decision.
DONE = {"approve": "Approved", "reject": "Rejected", "complete": "Completed"}
#: Slack's limits (characters): header text, section text, a field, the fallback text.
HEADER_CHARS, SECTION_CHARS, FIELD_CHARS, TEXT_CHARS = 150, 3000, 2000, 3000
#: Fields per section, blocks per message.
FIELDS_PER_SECTION, MAX_BLOCKS = 10, 50
#: Signed requests older (or newer) than this many seconds are refused.
MAX_CLOCK_SKEW = 5 * 60

#: Errors about the message or channel itself: sending it again cannot succeed.
_PERMANENT = {
    "channel_not_found",
    "not_in_channel",
    "is_archived",
    "msg_too_long",
    "no_text",
    "invalid_blocks",
    "invalid_blocks_format",
    "message_not_found",
    "cant_update_message",
    "edit_window_closed",
    "restricted_action",
}
#: Errors saying the token is wrong: the secret is read again before the next call.
_AUTH = {"invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive"}
_HUMAN_TASK = re.compile(r"^hum_[0-9A-Za-z]{1,64}$")
_SLACK_USER = re.compile(r"^[UW][0-9A-Z]{1,20}$")


@dataclass(frozen=True)
class SlackAction:
    """A click on one of Loopline's buttons."""

    human_task: str
    action: str
    user_id: str
    team_id: str | None = None
    channel_id: str | None = None
    message_ts: str | None = None


# --------------------------------------------------------------------------- messages


def escape(text: Any) -> str:
    """``text`` for Slack's mrkdwn: ``&``, ``<`` and ``>`` as entities (no mention, link
    or channel can be made of a value)."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, indent=2)


def title(view: dict[str, Any]) -> str:
    """``Approval needed: ticket-triage, step review``."""
    return headline(view)


def _body(view: dict[str, Any]) -> list[dict[str, Any]]:
    """Header, instruction and context fields."""
    out: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": _cut(" ".join(title(view).split()), HEADER_CHARS),
            },
        }
    ]
    if view.get("instruction"):
        text = _cut(escape(view["instruction"]), SECTION_CHARS)
        out.append({"type": "section", "text": {"type": "mrkdwn", "text": text}})
    fields = [
        {
            "type": "mrkdwn",
            "text": _cut(
                f"*{escape(' '.join(str(name).split()))}*\n{escape(_value(value))}", FIELD_CHARS
            ),
        }
        for name, value in (view.get("context") or {}).items()
    ]
    for start in range(0, len(fields), FIELDS_PER_SECTION):
        out.append({"type": "section", "fields": fields[start : start + FIELDS_PER_SECTION]})
    return out


def _footer(view: dict[str, Any]) -> dict[str, Any]:
    parts = []
    assignee = view.get("assignee") or {}
    if assignee.get("user"):
        parts.append(f"For {escape(assignee['user'])}")
    elif assignee.get("role"):
        parts.append(f"For role {escape(assignee['role'])}")
    expires = when(view.get("expires_at"))
    if expires and view.get("status", "open") == "open":
        parts.append(f"Expires {expires}")
    parts.append(f"Task {escape(view.get('task', ''))}, human task {escape(view.get('id', ''))}")
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(parts)}]}


def _button(view: dict[str, Any], action: str, label: str, style: str | None) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "action_id": f"loopline_{action}",
        "text": {"type": "plain_text", "text": label},
        "value": f"{view['id']}:{action}",
    }
    if style:
        button["style"] = style
    return button


def _fallback(view: dict[str, Any], extra: str = "") -> str:
    text = title(view)
    if extra:
        text += f": {extra}"
    elif view.get("instruction"):
        text += f": {' '.join(str(view['instruction']).split())}"
    return _cut(escape(text), TEXT_CHARS)


def _limited(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """At most ``MAX_BLOCKS``: context fields beyond that are left out, the last blocks
    (the footer, the buttons or the outcome) kept."""
    if len(blocks) <= MAX_BLOCKS:
        return blocks
    head, tail = blocks[:1], blocks[-3:]
    return head + blocks[1 : MAX_BLOCKS - len(tail) - 1] + tail


def blocks(view: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """``(text, blocks)`` of the message asking for the human task of ``view``."""
    out = _body(view)
    kind = view.get("kind")
    if kind == "approval":
        actions = [
            _button(view, "approve", "Approve", "primary"),
            _button(view, "reject", "Reject", "danger"),
        ]
        out.append({"type": "actions", "block_id": "loopline_decision", "elements": actions})
    elif kind == "pause":
        actions = [_button(view, "complete", "Resume", "primary")]
        out.append({"type": "actions", "block_id": "loopline_decision", "elements": actions})
    else:
        note = "This step needs a form: decide in Loopline (the link in your email, or the API)."
        out.append({"type": "section", "text": {"type": "mrkdwn", "text": note}})
    out.append(_footer(view))
    return _fallback(view), _limited(out)


def _by(who: Any) -> str:
    text = str(who or "someone")
    user = text.removeprefix("slack:")
    if text.startswith("slack:") and _SLACK_USER.match(user):
        return f"<@{user}>"
    return escape(text)


def outcome(view: dict[str, Any]) -> str:
    """What happened to the human task, in mrkdwn (``*Approved* by <@U1> …``)."""
    decision = view.get("decision")
    if decision:
        words = DONE.get(str(decision.get("action")), str(decision.get("action")).capitalize())
        text = f"*{escape(words)}* by {_by(decision.get('by'))}"
        at = when(decision.get("at"))
        if at:
            text += f" at {at}"
        if decision.get("rollback_to"):
            text += f", back to step {escape(decision['rollback_to'])}"
        if decision.get("comment"):
            text += f"\n> {escape(' '.join(str(decision['comment']).split()))}"
        return _cut(text, SECTION_CHARS)
    status = view.get("status")
    if status == "expired":
        return "*Expired*: nobody decided in time."
    if status == "closed":
        return "*Closed*: the task ended before anyone decided."
    return "*Waiting* for a decision."


def outcome_blocks(view: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """``(text, blocks)`` of the message once the human task was decided (or ended): the
    same header, instruction and context, the outcome instead of the buttons."""
    said = outcome(view)
    out = _body(view)
    out.append({"type": "section", "text": {"type": "mrkdwn", "text": said}})
    out.append(_footer(view))
    first_line = said.splitlines()[0].replace("*", "")
    return _cut(f"{escape(title(view))}: {first_line}", TEXT_CHARS), _limited(out)


# --------------------------------------------------------------------------- credentials

_lock = threading.Lock()
_secret: dict[str, str] | None = None
_secret_arn: str | None = None


def reset() -> None:
    """Forget the secret read from Secrets Manager (read again when next needed)."""
    global _secret, _secret_arn
    with _lock:
        _secret, _secret_arn = None, None


def _from_secret(field: str) -> str | None:
    global _secret, _secret_arn
    arn = settings().slack_secret_arn
    if not arn:
        return None
    with _lock:
        if _secret is None or _secret_arn != arn or not _secret.get(field):
            _secret, _secret_arn = _read_secret(arn), arn
        return _secret.get(field) or None


def _read_secret(arn: str) -> dict[str, str]:
    from botocore.exceptions import BotoCoreError, ClientError

    from loopline import aws
    from loopline.redact import remember_secret

    try:
        text = aws.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"]
    except ClientError as exc:
        error = exc.response.get("Error") or {}
        why = error.get("Message") or error.get("Code") or "no reason given"
        raise NotifyError(f"the Slack secret could not be read: {why}") from None
    except BotoCoreError as exc:
        raise NotifyError(f"the Slack secret could not be read: {exc}") from None
    try:
        data = json.loads(text)
    except (TypeError, ValueError):
        data = None
    if not isinstance(data, dict):
        raise NotifyError(
            'the Slack secret must be a JSON object {"bot_token": "xoxb-…", "signing_secret": "…"}'
        )
    values = {k: v.strip() for k, v in data.items() if isinstance(v, str) and v.strip()}
    for value in values.values():
        remember_secret(value)
    return values


def bot_token() -> str | None:
    """The bot token: ``LOOPLINE_SLACK_BOT_TOKEN``, else the secret's ``bot_token``."""
    return settings().slack_bot_token or _from_secret("bot_token")


def signing_secret() -> str | None:
    """The signing secret: ``LOOPLINE_SLACK_SIGNING_SECRET``, else the secret's
    ``signing_secret``."""
    return settings().slack_signing_secret or _from_secret("signing_secret")


# --------------------------------------------------------------------------- Web API


def _client() -> Any:
    from slack_sdk import WebClient

    token = bot_token()
    if not token:
        raise NotifyError(
            "no Slack bot token: set bot_token in the stack's Slack secret "
            "(LOOPLINE_SLACK_SECRET_ARN), or LOOPLINE_SLACK_BOT_TOKEN"
        )
    return WebClient(base_url=settings().slack_api_url + "/", token=token, timeout=10)


def _call(method: str, send: Callable[[Any], Any]) -> Any:
    """``send(client)``, with Slack's refusals and network failures as ``NotifyError``."""
    from slack_sdk.errors import SlackApiError, SlackClientError

    client = _client()
    try:
        return send(client)
    except SlackApiError as exc:
        response = exc.response
        data = response.data if isinstance(response.data, dict) else {}
        error = str(data.get("error") or f"HTTP {response.status_code}")
        retry_after = None
        if response.status_code == 429:
            headers = {str(k).lower(): v for k, v in (response.headers or {}).items()}
            value = headers.get("retry-after")
            if isinstance(value, list):
                value = value[0] if value else None
            try:
                retry_after = float(value) if value is not None else None
            except ValueError:
                retry_after = None
        if error in _AUTH:
            reset()
        raise NotifyError(
            f"Slack's {method} failed: {error}",
            permanent=error in _PERMANENT,
            retry_after=retry_after,
        ) from None
    except (SlackClientError, OSError) as exc:
        raise NotifyError(f"Slack could not be reached ({method}): {exc}") from None


def post(channel: str, text: str, blocks: list[dict[str, Any]]) -> tuple[str, str]:
    """Post a message to ``channel`` (a name like ``#approvals`` or an id); its channel id
    and ``ts`` (what ``update`` needs). Raise ``NotifyError``."""
    answer = _call(
        "chat.postMessage",
        lambda client: client.chat_postMessage(
            channel=channel, text=text, blocks=blocks, unfurl_links=False, unfurl_media=False
        ),
    )
    return str(answer["channel"]), str(answer["ts"])


def update(channel_id: str, ts: str, text: str, blocks: list[dict[str, Any]]) -> None:
    """Replace the message ``ts`` of ``channel_id``. Raise ``NotifyError``."""
    _call(
        "chat.update",
        lambda client: client.chat_update(channel=channel_id, ts=ts, text=text, blocks=blocks),
    )


# --------------------------------------------------------------------------- requests


def verify(headers: Any, body: str, now: float | None = None) -> bool:
    """True when ``body`` (the raw request body) carries a valid ``X-Slack-Signature``
    for the signing secret and its ``X-Slack-Request-Timestamp`` is within 5 minutes of
    ``now`` (epoch seconds; default the clock's). False without a signing secret."""
    from slack_sdk.signature import Clock, SignatureVerifier

    secret = signing_secret()
    if not secret:
        log.warning("a Slack request was refused: no Slack signing secret is configured")
        return False
    found = {str(k).lower(): v for k, v in dict(headers or {}).items()}
    timestamp = str(found.get("x-slack-request-timestamp") or "").strip()
    signature = str(found.get("x-slack-signature") or "").strip()
    if not signature or not timestamp.isdigit() or len(timestamp) > 12:
        return False

    class _At(Clock):
        def now(self) -> float:
            return time.time() if now is None else now

    return bool(SignatureVerifier(secret, _At()).is_valid(body, timestamp, signature))


def sign(body: str, timestamp: str, secret: str) -> str:
    """The ``X-Slack-Signature`` of ``body`` sent at ``timestamp`` (what Slack computes)."""
    from slack_sdk.signature import SignatureVerifier

    return str(SignatureVerifier(secret).generate_signature(timestamp=timestamp, body=body))


def parse_action(body: str) -> SlackAction:
    """The Loopline button clicked in an interaction request (form-encoded
    ``payload=<JSON>`` of type ``block_actions``). Raise ``ValueError`` saying what is
    wrong."""
    try:
        form = parse_qs(body or "", keep_blank_values=True, max_num_fields=20)
    except ValueError:
        raise ValueError("the body is not a form (application/x-www-form-urlencoded)") from None
    text = (form.get("payload") or [""])[0]
    if not text:
        raise ValueError("the request has no payload field (payload=<JSON>)")
    try:
        payload = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"the payload is not JSON: {exc}") from None
    kind = payload.get("type") if isinstance(payload, dict) else None
    if kind != "block_actions":
        raise ValueError(f"only button clicks (block_actions) are answered, not {kind!r}")
    ours = [
        a
        for a in payload.get("actions") or []
        if isinstance(a, dict) and a.get("action_id") in ACTION_IDS
    ]
    if not ours:
        raise ValueError("the payload has no Loopline button")
    clicked = ours[0]
    human_task, sep, action = str(clicked.get("value") or "").rpartition(":")
    if not sep or action != ACTION_IDS[clicked["action_id"]] or not _HUMAN_TASK.match(human_task):
        raise ValueError("the button's value is not <human task id>:<its action>")
    user = payload.get("user") if isinstance(payload.get("user"), dict) else {}
    user_id = str(user.get("id") or "")
    if not user_id:
        raise ValueError("the payload names no user")
    team = payload.get("team") if isinstance(payload.get("team"), dict) else {}
    channel = payload.get("channel") if isinstance(payload.get("channel"), dict) else {}
    container = payload.get("container") if isinstance(payload.get("container"), dict) else {}
    message = payload.get("message") if isinstance(payload.get("message"), dict) else {}
    return SlackAction(
        human_task=human_task,
        action=action,
        user_id=user_id,
        team_id=team.get("id") or user.get("team_id") or None,
        channel_id=channel.get("id") or container.get("channel_id") or None,
        message_ts=container.get("message_ts") or message.get("ts") or None,
    )
