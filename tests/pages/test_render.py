"""The approval pages as rendered (``loopline.api.links``), from hand-made views: what
each kind of step shows, escaping, the form's fields, errors next to their fields, and
the Content-Security-Policy that lets the one inline stylesheet in and nothing else."""

from __future__ import annotations

import base64
import hashlib
import re
from html.parser import HTMLParser
from typing import Any

from loopline.api import links
from loopline.service.errors import Conflict, FieldError, Forbidden, Gone

from tests.pages.conftest import human_view, link_view
from tests.service.test_forms import SCHEMA

SCRIPT = "<script>alert(1)</script>"


class Page(HTMLParser):
    """The elements of a page: ``(tag, attributes)`` in order, and the text of each."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text = ""
        self.styles: list[str] = []
        self._in_style = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.styles.append(data)
        else:
            self.text += data

    def find(self, tag: str, **attrs: str) -> list[dict[str, str | None]]:
        return [
            a
            for t, a in self.elements
            if t == tag and all(a.get(k.rstrip("_")) == v for k, v in attrs.items())
        ]

    def one(self, tag: str, **attrs: str) -> dict[str, str | None]:
        found = self.find(tag, **attrs)
        assert len(found) == 1, (tag, attrs, found)
        return found[0]


def render(kind: str = "approval", **fields: Any) -> Page:
    return Page(links.render_link_page(link_view(human_view(kind, **fields))))


def words(page: Page) -> str:
    return " ".join(page.text.split())


def assert_inert(page: Page) -> None:
    """No script, no inline style attribute or event handler, no external resource."""
    for tag, attrs in page.elements:
        assert tag not in ("script", "iframe", "object", "embed", "img", "link", "base"), tag
        for name in attrs:
            assert not name.startswith("on") and name != "style", (tag, name)


# --------------------------------------------------------------------------- what it shows


def test_approval_page_shows_where_the_instruction_and_the_context() -> None:
    page = render(context={"version": "2.1", "changes": {"files": 3, "risky": ["db"]}})
    text = words(page)
    assert "release · step gate" in text
    assert "Approval requested" in text
    assert "Ship version 2.1?" in text
    assert "version 2.1" in text
    assert "You decide as ada@example.com" in text


def test_non_text_context_values_are_pretty_json_in_pre() -> None:
    html = links.render_link_page(
        link_view(human_view(context={"changes": {"files": 3, "risky": ["db"]}}))
    )
    pre = re.search(r"<pre>(.*?)</pre>", html, re.S)
    assert pre is not None
    assert pre.group(1) == (
        "{\n  &#34;files&#34;: 3,\n  &#34;risky&#34;: [\n    &#34;db&#34;\n  ]\n}"
    )


def test_approval_form_posts_back_with_approve_reject_and_a_comment() -> None:
    page = render()
    form = page.one("form")
    assert form.get("method") == "post" and "action" not in form
    assert page.one("button", value="approve").get("name") == "action"
    assert page.one("button", value="reject").get("name") == "action"
    assert page.one("textarea", name="comment") is not None
    assert page.find("select", name="rollback_to") == []


def test_rollback_targets_are_a_choice_when_rejecting() -> None:
    page = render(rollback_to=["draft", "build"])
    assert page.one("select", name="rollback_to")
    values = [a.get("value") for a in page.find("option")]
    assert values == ["", "draft", "build"]
    assert "reject and roll back to draft" in words(page)
    assert "reject and roll back to build" in words(page)


def test_human_task_fields_follow_the_form_schema() -> None:
    page = render("human_task", form_schema=SCHEMA)
    notes = page.one("textarea", name="field.notes")
    assert "required" in notes and notes.get("minlength") == "3"
    count = page.one("input", name="field.count")
    assert count.get("type") == "number" and count.get("step") == "1" and "required" in count
    assert (count.get("min"), count.get("max")) == ("1", "10")
    assert page.one("input", name="field.ratio").get("step") == "any"
    assert "required" not in page.one("input", name="field.ratio")
    urgent = page.one("input", name="field.urgent")
    assert urgent.get("type") == "checkbox" and urgent.get("value") == "true"
    assert page.one("select", name="field.tone") is not None
    assert [a.get("value") for a in page.find("option")] == ["", "warm", "dry"]
    address = page.one("textarea", name="field.address")
    assert address.get("class") == "json"
    text = words(page)
    assert "Release notes *" in text  # the title, with the required marker
    assert "Tick when it cannot wait" in text
    assert page.one("button", value="complete").get("name") == "action"
    assert "formnovalidate" in page.one("button", value="reject")


def test_every_field_has_a_label() -> None:
    page = render("human_task", form_schema=SCHEMA)
    ids = {a.get("for") for a in page.find("label")}
    for tag in ("input", "select", "textarea"):
        for attrs in page.find(tag):
            assert attrs.get("id") in ids, attrs


def test_defaults_fill_the_fields_before_anything_is_typed() -> None:
    schema = {
        "type": "object",
        "properties": {
            "n": {"type": "integer", "default": 2},
            "ok": {"type": "boolean", "default": True},
            "tone": {"enum": ["warm", "dry"], "default": "dry"},
        },
    }
    page = render("human_task", form_schema=schema)
    assert page.one("input", name="field.n").get("value") == "2"
    assert "checked" in page.one("input", name="field.ok")
    assert "selected" in page.one("option", value="dry")


def test_pause_page_has_only_resume() -> None:
    page = render("pause", instruction="Resume when the window opens.")
    buttons = [(a.get("value"), a.get("name")) for a in page.find("button")]
    assert buttons == [("complete", "action")]
    assert "Resume" in words(page) and "Paused" in words(page)


# --------------------------------------------------------------------------- escaping


def test_a_script_in_the_context_is_shown_as_text() -> None:
    html = links.render_link_page(link_view(human_view(context={"note": SCRIPT})))
    assert SCRIPT not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    page = Page(html)
    assert SCRIPT in page.text
    assert_inert(page)


def test_every_author_supplied_value_is_escaped() -> None:
    evil = '"><img src=x onerror=alert(1)>'
    schema = {
        "type": "object",
        "required": [evil],
        "properties": {
            evil: {"type": "string", "title": evil, "description": evil, "maxLength": 10},
            "pick": {"enum": [evil, SCRIPT]},
            "blob": {"type": "object", "examples": [{"x": evil}]},
        },
    }
    human = human_view(
        "human_task",
        workflow=evil,
        step=evil,
        instruction=SCRIPT,
        context={evil: SCRIPT, "nested": {"k": SCRIPT}},
        form_schema=schema,
        expires_at=evil,
    )
    html = links.render_link_page(link_view(human), values={f"field.{evil}": [SCRIPT]})
    page = Page(html)
    assert_inert(page)
    assert SCRIPT not in html and "<img" not in html
    assert page.text.count(SCRIPT) >= 3


def test_approval_rollback_targets_and_recipient_are_escaped() -> None:
    view = link_view(human_view(rollback_to=[SCRIPT]))
    view.recipient = SCRIPT
    page = Page(links.render_link_page(view))
    assert_inert(page)
    assert page.one("option", value=SCRIPT)


# --------------------------------------------------------------------------- errors


def test_errors_are_shown_next_to_their_fields_with_what_was_typed() -> None:
    typed = {
        "field.notes": ["ab"],
        "field.count": ["x"],
        "field.urgent": ["true"],
        "field.tone": ["dry"],
        "field.address": ['{"city": 3}'],
        "comment": ["see <b>notes</b>"],
    }
    errors = [
        FieldError("data.notes", "minLength", "must be at least 3 characters long", "ab"),
        FieldError("data.count", "type", "must be an integer", "x"),
        FieldError("data.address.city", "type", "must be text", 3),
        FieldError("action", "enum", "must be one of complete, reject", "approve"),
    ]
    html = links.render_link_page(
        link_view(human_view("human_task", form_schema=SCHEMA)), errors=errors, values=typed
    )
    page = Page(html)

    def field_block(name: str) -> str:
        match = re.search(
            rf'<div class="field[^"]*">(?:(?!<div).)*?name="{re.escape(name)}".*?</div>', html, re.S
        )
        assert match is not None, name
        return match.group(0)

    assert "must be at least 3 characters long" in field_block("field.notes")
    assert "must be an integer" in field_block("field.count")
    assert "city: must be text" in field_block("field.address")
    assert "action: must be one of complete, reject" in words(page)
    assert page.one("textarea", name="field.notes") is not None and ">ab</textarea>" in html
    assert page.one("input", name="field.count").get("value") == "x"
    assert "checked" in page.one("input", name="field.urgent")
    assert "selected" in page.one("option", value="dry")
    assert "see &lt;b&gt;notes&lt;/b&gt;</textarea>" in html
    assert page.one("input", name="field.count").get("aria-invalid") == "true"
    assert page.find("div", role="alert")
    assert "Nothing was recorded yet: 4 problems to fix below." in words(page)


def test_a_rollback_error_is_shown_at_the_choice() -> None:
    errors = [FieldError("rollback_to", "enum", "must be one of the step's rollback targets")]
    html = links.render_link_page(
        link_view(human_view(rollback_to=["draft"])), errors=errors, values={"rollback_to": ["x"]}
    )
    assert re.search(
        r'name="rollback_to".*must be one of the step&#39;s rollback targets', html, re.S
    )


# --------------------------------------------------------------------------- other pages


def test_outcome_page_says_what_was_recorded() -> None:
    decision = {
        "action": "reject",
        "by": "ada@example.com",
        "at": "2026-11-23T10:15:00Z",
        "comment": "not yet <b>",
        "via": "link",
        "rollback_to": "draft",
        "data": None,
    }
    page = Page(links.render_outcome_page(human_view(status="decided", decision=decision)))
    text = words(page)
    for part in (
        "Rejected",
        "By ada@example.com",
        "At 2026-11-23T10:15:00Z",
        "not yet <b>",
        "Rolled back to draft",
        "Through a link",
    ):
        assert part in text, part
    assert_inert(page)


def test_outcome_of_a_form_shows_the_data_and_of_a_pause_says_resumed() -> None:
    decision = {"action": "complete", "by": "a", "at": "t", "data": {"n": 3}}
    page = Page(links.render_outcome_page(human_view("human_task", decision=decision)))
    assert "Submitted" in words(page) and '"n": 3' in page.text
    page = Page(links.render_outcome_page(human_view("pause", decision={**decision, "data": None})))
    assert "Resumed" in words(page)


def test_used_link_page_names_the_decision_made() -> None:
    error = Conflict("human task hum_1 was already decided")
    error.decision = {"action": "approve", "by": "bob@example.com", "at": "2026-11-23T09:00:00Z"}  # type: ignore[attr-defined]
    text = words(Page(links.render_refusal_page(error)))
    assert "Already decided" in text
    assert "Approved" in text and "bob@example.com" in text and "2026-11-23T09:00:00Z" in text


def test_conflict_without_a_decision_shows_its_detail() -> None:
    text = words(Page(links.render_refusal_page(Conflict("being decided by another request"))))
    assert "Being decided by another request." in text


def test_gone_and_forbidden_pages_say_so() -> None:
    text = words(Page(links.render_refusal_page(Gone("this link expired at 2026-11-24T10:00:00Z"))))
    assert "This link has expired or was replaced" in text
    assert "expired at 2026-11-24T10:00:00Z" in text
    assert "may not decide" in words(Page(links.render_refusal_page(Forbidden("no"))))


# --------------------------------------------------------------------------- CSP


def test_the_csp_allows_exactly_the_inline_stylesheet() -> None:
    page = render("human_task", form_schema=SCHEMA)
    (style,) = page.styles
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in links.CSP
    directives = dict(d.strip().split(" ", 1) for d in links.CSP.split(";"))
    assert directives == {
        "default-src": "'none'",
        "style-src": f"'sha256-{digest}'",
        "img-src": "'none'",
        "form-action": "'self'",
        "base-uri": "'none'",
        "frame-ancestors": "'none'",
    }


def test_every_page_is_inert_and_phone_sized() -> None:
    pages = [
        links.render_link_page(link_view(human_view("human_task", form_schema=SCHEMA))),
        links.render_outcome_page(human_view(decision={"action": "approve"})),
        links.render_refusal_page(Gone("gone")),
    ]
    for html in pages:
        page = Page(html)
        assert_inert(page)
        assert page.one("meta", name="viewport").get("content") == (
            "width=device-width, initial-scale=1"
        )
        assert page.one("meta", name="referrer").get("content") == "no-referrer"
