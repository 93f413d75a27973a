"""Approval emails: composed from a human task's view (text and HTML, the link in both,
every value escaped), sent through SES (moto), and written by ``loopline serve``'s outbox
as the message SES got."""

from __future__ import annotations

import email
import html
from email.message import EmailMessage
from email.policy import default
from html.parser import HTMLParser
from pathlib import Path

import boto3
import pytest
from loopline.local.executor import LocalExecutor
from loopline.local.serve import Outbox
from loopline.notify import NotifyError
from loopline.notify import email as notify_email
from moto import mock_aws

from tests.notify.conftest import HUMAN_TASK, human_view

LINK = "http://127.0.0.1:8000/a/Q2hhbmdlIG1lIHBsZWFzZSwgaXQgaXMgYSB0ZXN0?x=1&y=2"
SENDER = "loopline@example.com"


def _compose(**changes: object) -> EmailMessage:
    return notify_email.compose(
        human_view(**changes), link=LINK, sender=SENDER, recipient="ann@example.com"
    )


def _parts(message: email.message.Message) -> tuple[str, str]:
    assert isinstance(message, EmailMessage)
    text = message.get_body(("plain",))
    page = message.get_body(("html",))
    assert text is not None and page is not None
    return text.get_content(), page.get_content()


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs += [v or "" for k, v in attrs if k == "href"]
        if tag == "script":
            self.scripts += 1


def test_the_subject_names_the_workflow_and_the_step() -> None:
    message = _compose()
    assert message["Subject"] == "Approval needed: ticket-triage, step review"
    assert message["From"] == SENDER and message["To"] == "ann@example.com"
    assert message["X-Loopline-Human-Task"] == HUMAN_TASK
    assert _compose(kind="human_task")["Subject"].startswith("Input needed: ")
    assert _compose(escalated=True)["Subject"].startswith("Escalated, approval needed: ")


def test_the_text_and_the_html_part_both_carry_the_link() -> None:
    text, page = _parts(_compose())

    assert LINK in text.splitlines()
    links = _Links()
    links.feed(page)
    assert links.hrefs and set(links.hrefs) == {LINK}  # the parser unescapes &amp;
    assert "Check the reply before it goes out." in text and "Check the reply" in page
    assert "customer: Ann" in text and "2026-11-24 10:15 UTC" in text


def test_every_value_is_escaped_in_the_html_part() -> None:
    script = "<script>alert(1)</script>"
    text, page = _parts(
        _compose(
            workflow=f"wf{script}",
            instruction=script,
            context={script: script, "nested": {"k": script}},
        )
    )

    links = _Links()
    links.feed(page)
    assert links.scripts == 0
    assert "<script>" not in page
    assert html.escape(script) in page
    assert script in text  # plain text shows it as it is: nothing runs there


def test_header_injection_and_odd_links_are_refused() -> None:
    view = human_view()
    with pytest.raises(ValueError, match="recipient must be one email address"):
        notify_email.compose(view, link=LINK, sender=SENDER, recipient="a@x.com\r\nBcc: b@x.com")
    with pytest.raises(ValueError, match="link must be an http"):
        notify_email.compose(view, link="javascript:alert(1)", sender=SENDER, recipient="a@x.com")
    # A step or workflow with line breaks stays on the subject line.
    message = _compose(step="review\r\nBcc: eve@example.com")
    assert "\n" not in message["Subject"] and "Bcc" not in message


def test_long_values_are_cut_and_non_ascii_text_is_quoted_printable() -> None:
    message = _compose(context={"draft": "é" * 5000})
    text, _ = _parts(message)
    assert "(3000 more characters)" in text
    raw = message.as_bytes()
    assert raw.isascii()  # 7-bit clean, as SES asks


def test_send_goes_through_ses_and_the_serve_outbox_writes_the_real_message(
    tmp_path: Path,
) -> None:
    with LocalExecutor(loopline_functions=False):
        boto3.client("ses").verify_email_identity(EmailAddress=SENDER)
        outbox = Outbox(tmp_path, "us-east-1", interval=0.05)
        outbox.start()
        message_id = notify_email.send(_compose(instruction="Prüfen <bitte>"))
        outbox.stop()

    assert message_id
    written = email.message_from_bytes((tmp_path / "mail" / "1.eml").read_bytes(), policy=default)
    assert written["Subject"] == "Approval needed: ticket-triage, step review"
    assert written["To"] == "ann@example.com"
    text, page = _parts(written)
    assert LINK in text and html.escape(LINK) in page
    assert "Prüfen <bitte>" in text and "Prüfen &lt;bitte&gt;" in page


def test_an_unverified_sender_is_a_permanent_refusal() -> None:
    with (
        mock_aws(),
        pytest.raises(
            NotifyError, match=r"SES did not send the message to ann@example\.com"
        ) as info,
    ):
        notify_email.send(_compose())
    assert info.value.permanent
