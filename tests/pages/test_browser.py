"""The approval page in a real browser (Debian's chromium, headless): served over HTTP on
127.0.0.1 by the task API's resolver with the link routes, the domain's link functions
faked (``FakeLinks``). A person opens the link, reads the context, fills the form,
submits and sees what was recorded; nothing on the page runs as script."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.pages.conftest import RECIPIENT, FakeLinks, human_view
from tests.support.browser import BrowserLog
from tests.support.proxy_server import ProxyServer

SCRIPT = "<script>alert(1)</script>"
FORM = {
    "type": "object",
    "required": ["notes", "reviewers"],
    "properties": {
        "notes": {"type": "string", "title": "Release notes", "minLength": 3},
        "reviewers": {"type": "integer", "title": "Reviewers", "minimum": 1},
        "urgent": {"type": "boolean", "title": "Urgent"},
        "channel": {"enum": ["email", "slack"], "title": "Announce on"},
        "extra": {"type": "object", "title": "Extra settings"},
    },
}


@pytest.fixture
def site(links: FakeLinks) -> Iterator[ProxyServer]:
    from loopline.api.app import resolver

    with ProxyServer(lambda event, context: resolver().resolve(event, context)) as server:
        yield server


def assert_quiet(log: BrowserLog) -> None:
    """No dialog opened (no script ran), no CSP violation or other console error (the
    browser's note of a 4xx answer aside: a refused form is one)."""
    assert log.dialogs == []
    assert log.page_errors == []
    status_notes = "Failed to load resource: the server responded with a status of 4"
    assert [e for e in log.console_errors if not e.startswith(status_notes)] == []


def fits_the_screen(page: Any) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def test_a_person_fills_the_form_and_sees_what_was_recorded(
    site: ProxyServer,
    links: FakeLinks,
    browser_page: Any,
    browser_log: BrowserLog,
    artifacts: Path,
) -> None:
    page = browser_page
    token = links.add(
        human_view(
            "human_task",
            instruction="Write the release notes for 2.1.",
            context={"version": "2.1", "summary": SCRIPT, "changes": {"files": 3}},
            form_schema=FORM,
        )
    )
    page.goto(f"{site.url}/a/{token}")
    assert page.title() == "Your input is requested · Loopline"
    assert page.get_by_text("Write the release notes for 2.1.").is_visible()
    assert page.get_by_text(SCRIPT, exact=True).is_visible()  # the script, as text
    assert '"files": 3' in page.locator("pre").inner_text()
    assert fits_the_screen(page)
    # The stylesheet applied: the CSP let the inline <style> in by its hash.
    color = page.locator("button[value=complete]").evaluate(
        "b => getComputedStyle(b).backgroundColor"
    )
    assert color == "rgb(30, 107, 82)"
    page.screenshot(path=str(artifacts / "approval-page-form.png"), full_page=True)

    # JSON a browser does not check: the server refuses it and keeps what was typed.
    page.get_by_label("Release notes").fill("Faster <b>builds</b>")
    page.get_by_label("Reviewers").fill("2")
    page.get_by_label("Urgent").check()
    page.get_by_label("Announce on").select_option("slack")
    page.get_by_label("Extra settings").fill('{"dry_run": tru')
    page.get_by_role("button", name="Submit").click()
    page.wait_for_load_state()
    assert page.get_by_text("is not valid JSON", exact=False).is_visible()
    assert page.get_by_label("Release notes").input_value() == "Faster <b>builds</b>"
    assert page.get_by_label("Reviewers").input_value() == "2"
    assert page.get_by_label("Urgent").is_checked()
    assert page.get_by_label("Announce on").input_value() == "slack"
    assert links.decided == []
    page.screenshot(path=str(artifacts / "approval-page-errors.png"), full_page=True)

    page.get_by_label("Extra settings").fill('{"dry_run": true}')
    page.get_by_label("Comment (optional)").fill("ship it")
    page.get_by_role("button", name="Submit").click()
    page.wait_for_load_state()
    assert page.get_by_role("heading", name="Submitted").is_visible()
    assert page.get_by_text(RECIPIENT).is_visible()
    assert page.get_by_text("ship it").is_visible()
    page.screenshot(path=str(artifacts / "approval-page-outcome.png"), full_page=True)
    (decided,) = links.decided
    assert decided["data"] == {
        "notes": "Faster <b>builds</b>",
        "reviewers": 2,
        "urgent": True,
        "channel": "slack",
        "extra": {"dry_run": True},
    }
    assert decided["comment"] == "ship it"
    assert token not in page.content()
    assert_quiet(browser_log)


def test_an_approval_is_approved_once_then_the_link_names_the_decision(
    site: ProxyServer, links: FakeLinks, browser_page: Any, browser_log: BrowserLog, artifacts: Path
) -> None:
    page = browser_page
    token = links.add(human_view(rollback_to=["draft"], context={"note": SCRIPT}))
    page.goto(f"{site.url}/a/{token}")
    assert page.get_by_text(SCRIPT, exact=True).is_visible()
    assert page.get_by_label("If you reject").input_value() == ""
    page.screenshot(path=str(artifacts / "approval-page-approval.png"), full_page=True)
    page.get_by_role("button", name="Approve").click()
    page.wait_for_load_state()
    assert page.get_by_role("heading", name="Approved").is_visible()
    assert [d["action"] for d in links.decided] == ["approve"]

    response = page.goto(f"{site.url}/a/{token}")
    assert response is not None and response.status == 409
    assert page.get_by_role("heading", name="Already decided").is_visible()
    assert page.get_by_text("Approved").is_visible()
    assert_quiet(browser_log)
