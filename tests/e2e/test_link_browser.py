"""An approval link from a real email, opened in a real browser (Debian's chromium,
headless) against ``loopline serve``: the person sees the context, fills the form rendered
from ``form_schema``, submits and sees the confirmation; the workflow goes on with what
they typed. A value the workflow shows (here a task input) that is HTML is shown as text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.e2e.conftest import Service, link_of, register
from tests.e2e.test_humans_http import _human_task, _start
from tests.support.browser import BrowserLog

SCRIPT = "<script>alert(1)</script>"


def test_a_person_opens_the_emailed_link_fills_the_form_and_the_task_goes_on(
    service: Service, browser_page: Any, browser_log: BrowserLog, artifacts: Path
) -> None:
    register(service, "intake")
    task_id = _start(service, "intake", {"topic": SCRIPT})
    _human_task(service, task_id, "form")
    link = link_of(service.wait_email("clerk@example.com", saying=SCRIPT))
    page = browser_page
    page.goto(link)
    assert page.get_by_text(f"Fill in the intake for {SCRIPT}.").is_visible()
    assert page.get_by_text(SCRIPT, exact=True).is_visible()  # the context, as text
    page.screenshot(path=str(artifacts / "e2e-link-form.png"), full_page=True)

    page.get_by_label("Name").fill("Ada")
    page.get_by_label("How many").fill("3")
    page.get_by_label("Urgent").check()
    page.get_by_label("Level").select_option("high")
    page.get_by_role("button", name="Submit").click()
    page.wait_for_load_state()
    assert page.get_by_role("heading", name="Submitted").is_visible()
    assert page.get_by_text("clerk@example.com").is_visible()
    page.screenshot(path=str(artifacts / "e2e-link-submitted.png"), full_page=True)
    assert browser_log.dialogs == [] and browser_log.page_errors == []

    with service.client() as c:
        view = service.wait_done(c, task_id)
    assert view["status"] == "SUCCEEDED"
    assert view["output"]["form"] == {"name": "Ada", "count": 3, "urgent": True, "level": "high"}
