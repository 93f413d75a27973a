"""Approval emails: composed from a human task's view, sent through Amazon SES.

``compose`` makes one message per recipient: the subject names the workflow and the
step, a plain text part and an HTML part both carry the instruction, the context and the
recipient's own link. Every value shown comes from workflow authors, inputs or model
outputs, none of them trusted: the HTML part escapes each one, the headers take no line
breaks. A body in ASCII is sent as it is (the link stays whole for whoever reads the
raw message); one with other characters is quoted-printable: 7-bit clean, as SES asks.

``send`` hands the message to SES ``SendRawEmail`` (the sender must be an identity SES has
verified) and returns SES's message id.
"""

from __future__ import annotations

import html
import json
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate
from typing import Any
from urllib.parse import urlsplit

from loopline.notify import NotifyError, headline, when

#: What the message asks, by kind of human step.
#: What the link lets the recipient do, by kind.
ACTIONS = {
    "approval": "Approve or reject",
    "human_task": "Fill in the form",
    "pause": "Resume the task",
}
#: A context value longer than this (characters) is cut in the message.
MAX_VALUE_CHARS = 2000
MAX_SUBJECT_CHARS = 150

#: SES errors about the message itself: sending it again cannot succeed.
_PERMANENT = {"MessageRejected", "InvalidParameterValue", "MailFromDomainNotVerifiedException"}


def _one_line(text: Any, limit: int = MAX_SUBJECT_CHARS) -> str:
    out = " ".join(str(text).split())
    return out if len(out) <= limit else out[: limit - 1] + "…"


def _address(value: str, what: str) -> str:
    text = str(value).strip()
    if not text or any(c.isspace() or ord(c) < 32 for c in text) or text.count("@") != 1:
        raise ValueError(f"the {what} must be one email address, got {text!r}")
    return text


def _link(value: str) -> str:
    parts = urlsplit(str(value))
    bad = any(c.isspace() or ord(c) < 32 for c in str(value))
    if bad or parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("the link must be an http(s) URL")
    return str(value)


def _value_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, indent=2)
    if len(text) > MAX_VALUE_CHARS:
        text = text[:MAX_VALUE_CHARS] + f"… ({len(text) - MAX_VALUE_CHARS} more characters)"
    return text


def subject(view: dict[str, Any]) -> str:
    """``Approval needed: ticket-triage, step review`` (``Escalated, …`` when it was)."""
    return _one_line(headline(view))


def _cte(body: str) -> str:
    """7bit for ASCII lines within RFC 5322's limit, else quoted-printable."""
    if body.isascii() and all(len(line) <= 998 for line in body.splitlines()):
        return "7bit"
    return "quoted-printable"


def _text(view: dict[str, Any], link: str) -> str:
    lines = [subject(view), ""]
    if view.get("instruction"):
        lines += [str(view["instruction"]), ""]
    context = view.get("context") or {}
    if context:
        lines.append("Context")
        for name, value in context.items():
            text = _value_text(value)
            first, *rest = text.splitlines() or [""]
            lines.append(f"  {name}: {first}")
            lines += [f"    {line}" for line in rest]
        lines.append("")
    action = ACTIONS.get(str(view.get("kind")), "Open it")
    lines += [f"{action}:", link, ""]
    expires = when(view.get("expires_at"))
    note = "This link is yours alone and works once"
    lines.append(f"{note}; it expires {expires}." if expires else f"{note}.")
    lines.append(f"Task {view.get('task', '')}, human task {view.get('id', '')}")
    return "\n".join(lines) + "\n"


def _html(view: dict[str, Any], link: str) -> str:
    e = html.escape
    title = e(subject(view))
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{title}</title></head>",
        '<body style="font-family: system-ui, sans-serif; line-height: 1.5; max-width: 40em">',
        f'<h1 style="font-size: 1.25em">{title}</h1>',
    ]
    if view.get("instruction"):
        parts.append(f'<p style="white-space: pre-wrap">{e(str(view["instruction"]))}</p>')
    context = view.get("context") or {}
    if context:
        parts.append('<table style="border-collapse: collapse">')
        for name, value in context.items():
            parts.append(
                '<tr><th style="text-align: left; vertical-align: top; padding: 0.25em 1em '
                f'0.25em 0">{e(str(name))}</th><td style="padding: 0.25em 0"><pre style="'
                f'margin: 0; white-space: pre-wrap">{e(_value_text(value))}</pre></td></tr>'
            )
        parts.append("</table>")
    action = e(ACTIONS.get(str(view.get("kind")), "Open it"))
    href = e(link, quote=True)
    parts.append(
        f'<p><a href="{href}" style="display: inline-block; padding: 0.5em 1em; '
        f'background: #1f6feb; color: #ffffff; text-decoration: none; border-radius: 4px">'
        f"{action}</a></p>"
    )
    parts.append(f'<p>Or open this address: <a href="{href}">{e(link)}</a></p>')
    expires = when(view.get("expires_at"))
    note = "This link is yours alone and works once"
    note = f"{note}; it expires {e(expires)}." if expires else f"{note}."
    parts.append(f'<p style="color: #57606a; font-size: 0.875em">{note}<br>')
    parts.append(
        f"Task {e(str(view.get('task', '')))}, human task {e(str(view.get('id', '')))}</p>"
    )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def compose(view: dict[str, Any], *, link: str, sender: str, recipient: str) -> EmailMessage:
    """The email telling ``recipient`` about the human task of ``view``, with their ``link``.

    Raise ``ValueError`` for a sender or recipient that is not one address, or a link
    that is not an http(s) URL.
    """
    link = _link(link)
    message = EmailMessage()
    message["From"] = _address(sender, "sender")
    message["To"] = _address(recipient, "recipient")
    message["Subject"] = subject(view)
    message["Date"] = formatdate(usegmt=True)
    # RFC 3834: no vacation auto-replies to an automatic message.
    message["Auto-Submitted"] = "auto-generated"
    if view.get("id"):
        message["X-Loopline-Human-Task"] = _one_line(view["id"], 64)
    text, page = _text(view, link), _html(view, link)
    message.set_content(text, cte=_cte(text))
    message.add_alternative(page, subtype="html", cte=_cte(page))
    return message


def send(message: EmailMessage) -> str:
    """Send ``message`` through SES (``SendRawEmail``; sender and recipients from its
    ``From`` and ``To``); SES's message id. Raise ``NotifyError`` when SES refuses or fails."""
    from botocore.exceptions import BotoCoreError, ClientError

    from loopline import aws

    try:
        # Source names the sender for IAM (ses:FromAddress); the recipients come from
        # the message's headers.
        answer = aws.client("ses").send_raw_email(
            Source=str(message["From"]), RawMessage={"Data": message.as_bytes(policy=SMTP)}
        )
    except ClientError as exc:
        error = exc.response.get("Error") or {}
        code = str(error.get("Code") or "")
        text = str(error.get("Message") or code or "no reason given")
        raise NotifyError(
            f"SES did not send the message to {message['To']}: {text}",
            permanent=code in _PERMANENT,
        ) from None
    except BotoCoreError as exc:
        raise NotifyError(f"SES could not be reached: {exc}") from None
    return str(answer["MessageId"])
