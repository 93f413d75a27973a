"""``GET``/``POST /a/<token>`` through the task API's resolver (``loopline.api.app.build``,
validation on), with the domain's link functions replaced by ``FakeLinks``: which page,
status and headers each domain answer and each request gets."""

from __future__ import annotations

import base64
import json
import logging
import threading
from typing import Any
from urllib.parse import urlencode

import pytest
from loopline.api import app as api_app
from loopline.api import links as pages
from loopline.service.errors import Conflict, Forbidden, Gone, NotFound, Unavailable

from tests.pages.conftest import RECIPIENT, Api, FakeLinks, human_view, link_view
from tests.service.test_forms import SCHEMA

SECURITY = {
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


def assert_secured(headers: dict[str, str], html: bool = True) -> None:
    for name, value in SECURITY.items():
        assert headers.get(name) == value, name
    assert headers["Content-Security-Policy"] == pages.CSP
    if html:
        assert headers["Content-Type"] == "text/html; charset=utf-8"


# --------------------------------------------------------------------------- GET


def test_get_renders_the_page_with_strict_headers_and_never_the_token(
    api: Api, links: FakeLinks
) -> None:
    token = links.add(human_view(context={"note": "<script>alert(1)</script>"}))
    answer = api("GET", f"/a/{token}")
    assert answer.status == 200
    assert_secured(answer.headers)
    assert "Approval requested" in answer.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in answer.text
    assert token not in answer.text


def test_get_changes_nothing(api: Api, links: FakeLinks) -> None:
    token = links.add(human_view())
    for _ in range(3):
        assert api("GET", f"/a/{token}").status == 200
    assert links.decided == []


@pytest.mark.parametrize(
    ("refusal", "status", "says"),
    [
        (Gone("this link expired at 2026-11-24T10:00:00Z"), 410, "expired or was replaced"),
        (NotFound("no such link"), 410, "expired or was replaced"),
        (Conflict("being decided by another request"), 409, "Being decided by another request."),
        (Forbidden("assigned to someone else"), 403, "may not decide"),
        (Unavailable("Step Functions failed"), 503, "Step Functions failed"),
    ],
)
def test_get_maps_each_domain_refusal_to_a_page(
    api: Api, links: FakeLinks, refusal: Exception, status: int, says: str
) -> None:
    links.refuse = refusal
    answer = api("GET", "/a/whatever-token-it-is")
    assert answer.status == status
    assert_secured(answer.headers)
    assert says in answer.text
    assert "<form" not in answer.text


def test_an_unknown_link_is_410(api: Api, links: FakeLinks) -> None:
    answer = api("GET", "/a/never-issued-token-0123456789")
    assert answer.status == 410
    assert "expired or was replaced" in answer.text


def test_a_used_link_is_409_naming_the_decision(api: Api, links: FakeLinks) -> None:
    token = links.add(human_view())
    assert api("POST", f"/a/{token}", form={"action": "approve", "comment": "ok"}).status == 200
    for method, form in (("GET", None), ("POST", {"action": "reject"})):
        answer = api(method, f"/a/{token}", form=form)
        assert answer.status == 409, method
        assert_secured(answer.headers)
        assert "Already decided" in answer.text
        assert "Approved" in answer.text and RECIPIENT in answer.text
    assert len(links.decided) == 1


def test_a_view_that_is_no_longer_open_is_not_offered_a_form(api: Api, links: FakeLinks) -> None:
    links.refuse = None
    token = links.add(human_view(status="expired"))
    answer = api("GET", f"/a/{token}")
    assert answer.status == 410 and "<form" not in answer.text


# --------------------------------------------------------------------------- POST (form)


def test_post_approve_decides_and_shows_the_outcome(api: Api, links: FakeLinks) -> None:
    token = links.add(human_view(rollback_to=["draft"]))
    answer = api(
        "POST",
        f"/a/{token}",
        form={"action": "approve", "comment": "looks\r\ngood", "rollback_to": "draft"},
    )
    assert answer.status == 200
    assert_secured(answer.headers)
    assert "Approved" in answer.text and RECIPIENT in answer.text
    assert "2026-11-23T10:15:00Z" in answer.text
    assert token not in answer.text
    (decided,) = links.decided
    assert (decided["action"], decided["comment"], decided["rollback_to"]) == (
        "approve",
        "looks\ngood",
        None,  # the rollback choice applies to a rejection only
    )


def test_post_reject_with_a_rollback_target(api: Api, links: FakeLinks) -> None:
    token = links.add(human_view(rollback_to=["draft", "build"]))
    answer = api(
        "POST", f"/a/{token}", form={"action": "reject", "rollback_to": "build", "comment": ""}
    )
    assert answer.status == 200
    assert "Rejected" in answer.text and "Rolled back to" in answer.text
    (decided,) = links.decided
    assert (decided["action"], decided["rollback_to"], decided["comment"]) == (
        "reject",
        "build",
        None,
    )


def test_post_complete_converts_the_form_by_its_schema(api: Api, links: FakeLinks) -> None:
    token = links.add(human_view("human_task", form_schema=SCHEMA))
    form = {
        "action": "complete",
        "field.notes": "All good",
        "field.count": "3",
        "field.urgent": "true",
        "field.tone": "dry",
        "field.address": '{"city": "Lyon"}',
        "field.ratio": "",
    }
    answer = api("POST", f"/a/{token}", form=form)
    assert answer.status == 200, answer.text
    assert "Submitted" in answer.text
    (decided,) = links.decided
    assert decided["data"] == {
        "notes": "All good",
        "count": 3,
        "urgent": True,
        "tone": "dry",
        "address": {"city": "Lyon"},
    }


def test_invalid_form_is_422_with_the_errors_and_decides_nothing(
    api: Api, links: FakeLinks
) -> None:
    token = links.add(human_view("human_task", form_schema=SCHEMA))
    form = {"action": "complete", "field.notes": "ab", "field.count": "three", "comment": "typed"}
    answer = api("POST", f"/a/{token}", form=form)
    assert answer.status == 422
    assert_secured(answer.headers)
    assert "must be at least 3 characters long" in answer.text
    assert "must be an integer" in answer.text
    assert 'value="three"' in answer.text and ">typed</textarea>" in answer.text
    assert token not in answer.text
    assert links.decided == []


def test_the_domains_own_refusal_of_the_data_re_renders_the_form(
    api: Api, links: FakeLinks
) -> None:
    token = links.add(human_view(rollback_to=["draft"]))
    answer = api("POST", f"/a/{token}", form={"action": "reject", "rollback_to": "nowhere"})
    assert answer.status == 422
    assert "must be one of the step&#39;s rollback targets" in answer.text
    assert links.decided == []


def test_reject_of_a_human_task_skips_the_form(api: Api, links: FakeLinks) -> None:
    token = links.add(human_view("human_task", form_schema=SCHEMA))
    answer = api("POST", f"/a/{token}", form={"action": "reject", "field.count": "x"})
    assert answer.status == 200 and "Rejected" in answer.text


def test_pause_is_resumed(api: Api, links: FakeLinks) -> None:
    token = links.add(human_view("pause"))
    answer = api("POST", f"/a/{token}", form={"action": "complete"})
    assert answer.status == 200 and "Resumed" in answer.text


@pytest.mark.parametrize("action", ["", "launch", "APPROVE"])
def test_an_unknown_action_is_422(api: Api, links: FakeLinks, action: str) -> None:
    token = links.add(human_view())
    answer = api("POST", f"/a/{token}", form={"action": action})
    assert answer.status == 422
    assert "action: must be approve, reject or complete" in answer.text
    assert "<form" in answer.text
    assert links.decided == []


def test_a_base64_body_is_read(api: Api, links: FakeLinks) -> None:
    token = links.add(human_view())
    event_body = base64.b64encode(urlencode({"action": "approve"}).encode())
    from tests.support.proxy_server import proxy_event

    event = proxy_event(
        "POST", f"/a/{token}", [("Content-Type", "application/x-www-form-urlencoded")], b""
    )
    event.update(body=event_body.decode(), isBase64Encoded=True)
    out = api.app.resolve(event, None)
    assert out["statusCode"] == 200
    assert links.decided[0]["action"] == "approve"


def test_an_unreadable_body_type_is_415(api: Api, links: FakeLinks) -> None:
    token = links.add(human_view())
    answer = api(
        "POST",
        f"/a/{token}",
        body=b"--x--",
        headers={"Content-Type": "multipart/form-data; boundary=x"},
    )
    assert answer.status == 415
    assert_secured(answer.headers)


@pytest.mark.parametrize(
    ("refusal", "status"),
    [(Gone("expired"), 410), (NotFound("unknown"), 410), (Forbidden("no"), 403)],
)
def test_post_maps_each_domain_refusal_to_a_page(
    api: Api, links: FakeLinks, refusal: Exception, status: int
) -> None:
    links.refuse = refusal
    answer = api("POST", "/a/some-token-0123456789abcdef", form={"action": "approve"})
    assert answer.status == status
    assert_secured(answer.headers)


def test_an_unexpected_failure_is_a_500_page_that_names_no_token(
    api: Api, links: FakeLinks, caplog: pytest.LogCaptureFixture
) -> None:
    links.refuse = RuntimeError("the table is on fire")
    token = "tok-0123456789abcdef-secret"
    for method in ("GET", "POST"):
        with caplog.at_level(logging.ERROR):
            answer = api(
                method, f"/a/{token}", form={"action": "approve"} if method == "POST" else None
            )
        assert answer.status == 500
        assert_secured(answer.headers)
        assert "Something failed" in answer.text
        assert "Traceback" not in answer.text and "RuntimeError" not in answer.text
    assert token not in caplog.text


# --------------------------------------------------------------------------- POST (JSON)


def test_json_post_answers_the_view(api: Api, links: FakeLinks) -> None:
    token = links.add(human_view("human_task", form_schema=SCHEMA))
    answer = api(
        "POST",
        f"/a/{token}",
        json_body={"action": "complete", "data": {"notes": "abc", "count": 2}},
    )
    assert answer.status == 200
    assert answer.headers["Content-Type"] == "application/json"
    assert_secured(answer.headers, html=False)
    body = answer.json()
    assert body["decision"]["action"] == "complete"
    assert body["decision"]["data"] == {"notes": "abc", "count": 2}


def test_json_post_errors_are_problem_json(api: Api, links: FakeLinks) -> None:
    token = links.add(human_view("human_task", form_schema=SCHEMA))
    answer = api("POST", f"/a/{token}", json_body={"action": "complete", "data": {"count": 0}})
    assert answer.status == 422
    assert answer.headers["Content-Type"] == "application/problem+json"
    fields = [e["field"] for e in answer.json()["errors"]]
    assert fields == ["data.notes", "data.count"]
    answer = api("POST", f"/a/{token}", json_body={"action": "launch", "extra": 1})
    assert answer.status == 422
    assert {e["field"] for e in answer.json()["errors"]} == {"extra"}
    answer = api("POST", f"/a/{token}", json_body={"action": "launch"})
    assert [e["field"] for e in answer.json()["errors"]] == ["action"]
    answer = api("POST", f"/a/{token}", json_body=[1])
    assert answer.status == 422 and answer.json()["errors"][0]["field"] == "body"
    for raw in (b"{", b"[" * 100_000):
        answer = api(
            "POST",
            f"/a/{token}",
            body=raw,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        assert answer.status == 422 and answer.json()["errors"][0]["field"] == "body"
    assert links.decided == []


def test_json_post_on_a_used_or_unknown_link(api: Api, links: FakeLinks) -> None:
    token = links.add(human_view())
    assert api("POST", f"/a/{token}", json_body={"action": "approve"}).status == 200
    again = api("POST", f"/a/{token}", json_body={"action": "reject"})
    assert again.status == 409 and again.json()["title"] == "Conflict"
    links.refuse = NotFound("unknown")
    gone = api("POST", "/a/unknown-token-0123456789", json_body={"action": "approve"})
    assert gone.status == 410 and gone.headers["Content-Type"] == "application/problem+json"


def test_a_form_posted_for_a_json_answer_is_converted_too(api: Api, links: FakeLinks) -> None:
    token = links.add(human_view("human_task", form_schema=SCHEMA))
    answer = api(
        "POST",
        f"/a/{token}",
        form={"action": "complete", "field.notes": "abc", "field.count": "4"},
        headers={"Accept": "application/json"},
    )
    assert answer.status == 200
    assert answer.json()["decision"]["data"] == {"notes": "abc", "count": 4, "urgent": False}


# --------------------------------------------------------------------------- the resolver


def test_link_routes_are_kept_out_of_the_openapi_document() -> None:
    paths = api_app.openapi_document()["paths"]
    assert not [p for p in paths if p.startswith("/a/")]
    assert "/v1/tasks" in paths


def test_each_threads_resolver_answers_its_own_request(links: FakeLinks) -> None:
    """An included router reads the request from the resolver that included it; each
    thread builds its own resolver (and router), so concurrent requests do not mix."""
    tokens = [links.add(human_view(step=f"step{i}")) for i in range(2)]
    inside = threading.Barrier(2, timeout=5)
    real = links.link_page

    def slow_link_page(token: str) -> Any:
        inside.wait()  # both requests are in flight at once
        return real(token)

    links_module = pytest.MonkeyPatch()
    from loopline.service import humans

    links_module.setattr(humans, "link_page", slow_link_page)
    answers: dict[int, str] = {}

    def ask(i: int) -> None:
        answers[i] = Api()("GET", f"/a/{tokens[i]}").text

    try:
        threads = [threading.Thread(target=ask, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=10)
    finally:
        links_module.undo()
    assert "step step0" in answers[0] and "step step1" in answers[1]


def test_concurrent_posts_each_decide_with_their_own_body(links: FakeLinks) -> None:
    """Two links posted at the same moment, each answered by its thread's resolver: each
    decision is the one its own request asked for."""
    tokens = [links.add(human_view()), links.add(human_view())]
    both_in = threading.Barrier(2, timeout=5)

    def in_step(app: Any, next_middleware: Any) -> Any:
        both_in.wait()  # both requests have started before either route reads its request
        return next_middleware(app)

    def post(i: int) -> None:
        api = Api()
        api.app.use([in_step])
        api("POST", f"/a/{tokens[i]}", form={"action": ("approve", "reject")[i]})

    threads = [threading.Thread(target=post, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    decided = {d["token"]: d["action"] for d in links.decided}
    assert decided == {tokens[0]: "approve", tokens[1]: "reject"}


def test_render_functions_are_reusable_on_a_link_view() -> None:
    html = pages.render_link_page(link_view(human_view()))
    assert html.startswith("<!doctype html>")
    answer = pages.html_response(200, html)
    assert answer.headers["Content-Security-Policy"] == pages.CSP
    assert json.loads(json.dumps(pages.SECURITY_HEADERS))
