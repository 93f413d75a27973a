"""Approval links: ``GET /a/<token>`` shows a human step's page, ``POST /a/<token>`` decides
it (docs/internals.md, "Approval pages").

The token is the capability (``loopline.service.humans``: random, stored as its hash,
single use); these routes need no API key. ``GET`` changes nothing — mail scanners and
chat unfurlers follow links — and renders the instruction, the context snapshot and the
form: Approve / Reject (with a comment and the rollback targets) for an ``approval``, the
fields of ``form_schema`` (``loopline.service.forms``) for a ``human_task``, Resume for a
``pause``. The form posts back to the same URL (no ``action`` attribute: behind API
Gateway the URL carries the stage), so the page never holds the token.

``POST`` takes the form (``application/x-www-form-urlencoded``) or, with
``Accept: application/json``, a JSON body ``{action, comment?, rollback_to?, data?}`` and
answers JSON (the human task view, or problem+json). The HTML answers:

- 200: what was recorded (action, by, at, comment);
- 409: the link was used (or the step decided otherwise), naming the decision;
- 410: the link is unknown, expired or was replaced (an escalation sends new links);
- 422: the form again, with every problem next to its field and what was typed kept;
- 403, 415, 500: a page saying so.

Pages are Jinja2 templates (``templates/``) rendered with autoescaping: instructions,
context values and form schemas come from workflow authors and model outputs, so every
value is text, never markup. There is no JavaScript; the one inline ``<style>`` is allowed
by its hash in a strict Content-Security-Policy, and every answer says ``no-store`` and
``no-referrer`` (the URL is a capability).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from markupsafe import Markup

from loopline.service import forms, humans
from loopline.service.errors import (
    Conflict,
    FieldError,
    Gone,
    Invalid,
    NotFound,
    ServiceError,
    UnsupportedMediaType,
)

log = logging.getLogger("loopline.api.links")

TEMPLATES = Path(__file__).with_name("templates")
#: The pages' one stylesheet, inlined; the CSP allows it by its hash.
CSS = (TEMPLATES / "page.css").read_text(encoding="utf-8")
STYLE_HASH = "sha256-" + base64.b64encode(hashlib.sha256(CSS.encode("utf-8")).digest()).decode()
CSP = (
    f"default-src 'none'; style-src '{STYLE_HASH}'; img-src 'none'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
HTML = "text/html; charset=utf-8"
#: Sent with every answer of these routes.
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}
ACTIONS = ("approve", "reject", "complete")
#: Form fields a browser sends for one decision, at most (``parse_qs`` refuses more).
MAX_FIELDS = 1000
_JSON_FIELDS = ("action", "comment", "rollback_to", "data")


class LinkLike(Protocol):
    """What ``humans.link_page`` answers (``humans.LinkView``)."""

    human: dict[str, Any]
    recipient: str
    task: dict[str, Any]


# --------------------------------------------------------------------------- rendering


@cache
def _environment() -> Any:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _render(template: str, title: str, **values: Any) -> str:
    page = _environment().get_template(template)
    return str(page.render(title=title, css=Markup(CSS), **values))


_HEADINGS = {
    "approval": "Approval requested",
    "human_task": "Your input is requested",
    "pause": "Paused until you resume it",
}
_BUTTONS = {
    "approval": [("approve", "Approve", "primary"), ("reject", "Reject", "secondary")],
    "human_task": [("complete", "Submit", "primary"), ("reject", "Reject", "secondary")],
    "pause": [("complete", "Resume", "primary")],
}
_DONE = {"approve": "Approved", "reject": "Rejected", "complete": "Submitted"}


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def _place(human: Mapping[str, Any], task: Mapping[str, Any] | None) -> dict[str, str]:
    workflow = (task or {}).get("workflow") or human.get("workflow") or "a workflow"
    return {"workflow": str(workflow), "step": str(human.get("step") or "?")}


def _context(human: Mapping[str, Any]) -> list[dict[str, Any]]:
    context = human.get("context")
    if not isinstance(context, Mapping):
        return (
            [] if context is None else [{"name": "context", "text": None, "json": _pretty(context)}]
        )
    return [
        {"name": str(name), "text": value, "json": None}
        if isinstance(value, str)
        else {"name": str(name), "text": None, "json": _pretty(value)}
        for name, value in context.items()
    ]


@dataclass
class _Control:
    """A control of the page as the template draws it."""

    id: str
    key: str
    label: str
    value: str = ""
    errors: tuple[str, ...] = ()
    required: bool = False
    help: str | None = None
    widget: str = "textarea"
    input_type: str = "text"
    options: tuple[Any, ...] = ()
    attrs: tuple[tuple[str, str], ...] = ()
    checked: bool = False
    example: str | None = None


def _last(values: Mapping[str, Any], key: str) -> str | None:
    value = values.get(key)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, Sequence) and value:
        return str(value[-1])
    return None


def _default_text(field: forms.Field) -> tuple[str, bool]:
    """What a field shows before anything is typed: its schema's ``default``."""
    if "default" not in field.schema:
        return "", False
    default = field.schema["default"]
    if field.widget == "checkbox":
        return "", default is True
    if field.widget == "select":
        return forms.option_text(default), False
    if field.widget == "json":
        return _pretty(default), False
    if isinstance(default, bool) or default is None:
        return "", False
    return (default if isinstance(default, str) else json.dumps(default)), False


def _example(field: forms.Field) -> str | None:
    examples = field.schema.get("examples")
    if field.widget == "json" and isinstance(examples, list) and examples:
        return json.dumps(examples[0], ensure_ascii=False)
    return None


def _relative(path: str, parent: str, message: str) -> str:
    rest = path[len(parent) :].lstrip(".")
    return f"{rest}: {message}" if rest else message


def render_link_page(
    link: LinkLike,
    *,
    errors: Sequence[FieldError] | None = None,
    values: Mapping[str, str | Sequence[str]] | None = None,
) -> str:
    """The page of an approval link: instruction, context and the form; with ``errors``
    (a refused submission), each next to its field, and the ``values`` typed kept."""
    human = link.human
    kind = str(human.get("kind") or "approval")
    schema = human.get("form_schema") if kind == "human_task" else None
    form = forms.fields(schema if isinstance(schema, Mapping) else None)
    typed = values is not None
    values = values or {}
    by_key: dict[str, list[str]] = {}
    general: list[str] = []
    for error in errors or ():
        if error.field in ("comment", "rollback_to"):
            by_key.setdefault(error.field, []).append(error.message)
            continue
        owner = forms.field_of(error.field, form)
        if owner is None:
            general.append(f"{error.field}: {error.message}")
        else:
            by_key.setdefault(owner.key, []).append(
                _relative(error.field, owner.path, error.message)
            )
    if "rollback_to" in by_key and not human.get("rollback_to"):
        general.extend(f"rollback_to: {m}" for m in by_key.pop("rollback_to"))

    controls = []
    for index, field in enumerate(form, 1):
        if typed:
            text = _last(values, field.key) or ""
            checked = forms.is_ticked(text)
        else:
            text, checked = _default_text(field)
        controls.append(
            _Control(
                id=f"field-{index}",
                key=field.key,
                label=field.label,
                value=text,
                errors=tuple(by_key.get(field.key, ())),
                required=field.required,
                help=field.help,
                widget=field.widget,
                input_type=field.input_type,
                options=field.options,
                attrs=field.attrs,
                checked=checked,
                example=_example(field),
            )
        )
    targets = [str(t) for t in human.get("rollback_to") or []]
    rollback = (
        _Control(
            id="rollback",
            key="rollback_to",
            label="If you reject",
            value=_last(values, "rollback_to") or "",
            errors=tuple(by_key.get("rollback_to", ())),
            options=tuple(targets),
        )
        if kind == "approval" and targets
        else None
    )
    comment = _Control(
        id="comment",
        key="comment",
        label="Comment (optional)",
        value=_last(values, "comment") or "",
        errors=tuple(by_key.get("comment", ())),
    )
    buttons = [
        {"action": a, "text": t, "style": s, "skip_checks": a == "reject"}
        for a, t, s in _BUTTONS.get(kind, _BUTTONS["approval"])
    ]
    heading = _HEADINGS.get(kind, "Your decision is requested")
    instruction = human.get("instruction")
    return _render(
        "link.html",
        heading,
        heading=heading,
        place=_place(human, link.task),
        instruction=instruction if isinstance(instruction, str) else None,
        context=_context(human),
        fields=controls,
        rollback=rollback,
        comment=comment,
        buttons=buttons,
        general=general,
        problem_count=len(general)
        + sum(len(c.errors) for c in [*controls, comment, *([rollback] if rollback else [])]),
        recipient=link.recipient,
        expires_at=str(human.get("expires_at") or ""),
    )


def _decision_facts(decision: Mapping[str, Any], kind: str | None = None) -> dict[str, Any]:
    action = str(decision.get("action") or "")
    words = "Resumed" if action == "complete" and kind == "pause" else _DONE.get(action, action)
    data = decision.get("data")
    return {
        "action_words": words,
        "by": str(decision.get("by") or ""),
        "at": str(decision.get("at") or ""),
        "via": {
            "api": "the API",
            "link": "a link",
            "slack": "Slack",
            "cli": "the command line",
        }.get(str(decision.get("via") or ""), str(decision.get("via") or "")),
        "rollback_to": str(decision.get("rollback_to") or ""),
        "comment": decision.get("comment") if isinstance(decision.get("comment"), str) else None,
        "data": None if data is None else _pretty(data),
    }


def render_outcome_page(human: Mapping[str, Any], task: Mapping[str, Any] | None = None) -> str:
    """What a decision recorded: the human task view with its ``decision``."""
    decision = human.get("decision") if isinstance(human.get("decision"), Mapping) else {}
    facts = _decision_facts(decision or {}, str(human.get("kind") or ""))
    return _render(
        "outcome.html",
        facts["action_words"] or "Recorded",
        heading=facts["action_words"] or "Recorded",
        place=_place(human, task),
        decision=facts,
    )


_REFUSALS = {
    409: "Already decided",
    410: "This link has expired or was replaced",
    403: "You may not decide this",
    415: "This form cannot be read",
    422: "This cannot be recorded",
}


def render_refusal_page(error: ServiceError) -> str:
    """The page of a refused request: a used link names the decision already made."""
    decision = getattr(error, "decision", None)
    heading = _REFUSALS.get(error.status, error.title)
    facts = _decision_facts(decision) if isinstance(decision, Mapping) else None
    if facts is not None:
        detail = "This was already decided; nothing more was recorded."
    elif error.status == 410:
        detail = f"{_sentence(error.detail)} Ask for a new link if a decision is still needed."
    else:
        detail = _sentence(error.detail)
    return _render("refused.html", heading, heading=heading, detail=detail, decision=facts)


def _sentence(text: str) -> str:
    text = text.strip() or "The request was refused."
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


_FAILED = "Something failed on our side; nothing may have been recorded. Try again in a moment."


# --------------------------------------------------------------------------- answers


def html_response(status: int, page: str) -> Response[str]:
    """An HTML answer with the pages' security headers."""
    return Response(
        status_code=status, content_type=HTML, body=page, headers=dict(SECURITY_HEADERS)
    )


def _refusal(error: ServiceError) -> Response[str]:
    return html_response(error.status, render_refusal_page(error))


def _json_answer(body: Any, status: int = 200) -> Response[Any]:
    return Response(
        status_code=status,
        content_type="application/json",
        body=json.dumps(body, ensure_ascii=False, default=str),
        headers=dict(SECURITY_HEADERS),
    )


def _problem(error: ServiceError) -> Response[Any]:
    from loopline.api.app import service_problem

    answer = service_problem(error)
    answer.headers.update(SECURITY_HEADERS)
    return answer


def _as_link_error(error: ServiceError) -> ServiceError:
    """An unknown link is ``410`` like an expired one (never ``404``)."""
    if isinstance(error, NotFound):
        return Gone(error.detail or "this link is not valid (or no longer is)")
    return error


def _not_open(link: LinkLike) -> ServiceError | None:
    """Why a link's human task can no longer be decided, when its view says so."""
    status = link.human.get("status")
    if status == "decided":
        decision = link.human.get("decision")
        error = Conflict("this was already decided")
        error.decision = decision  # type: ignore[attr-defined]
        return error
    if status in ("expired", "closed"):
        return Gone(f"this link's step is {status}")
    return None


# --------------------------------------------------------------------------- requests


@dataclass
class _Submission:
    action: str
    comment: str | None
    rollback_to: str | None
    data: Any = None
    #: The form's text fields, when the body was a form.
    form: dict[str, list[str]] | None = None


def _text(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    return value if value.strip() else None


def _read(event: Any) -> _Submission:
    """The decision a POST asks for; raise ``Invalid`` or ``UnsupportedMediaType``."""
    media = str(event.headers.get("content-type") or "").split(";")[0].strip().lower()
    try:
        body = event.decoded_body or ""
    except (UnicodeDecodeError, ValueError):
        raise Invalid(
            "the body is not UTF-8 text", [FieldError("body", "encoding", "must be UTF-8")]
        ) from None
    if media == "application/json":
        return _read_json(body)
    if media not in ("", "application/x-www-form-urlencoded"):
        raise UnsupportedMediaType(
            "send the form as application/x-www-form-urlencoded, or JSON as application/json"
        )
    try:
        form = parse_qs(body, keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except ValueError:
        raise Invalid(
            "the form has too many fields",
            [FieldError("body", "maxFields", f"must have at most {MAX_FIELDS} fields")],
        ) from None
    action = _last(form, "action") or ""
    rollback = _last(form, "rollback_to") or None
    return _Submission(
        action=action,
        comment=_text(_last(form, "comment")),
        rollback_to=rollback if action == "reject" else None,
        form=form,
    )


def _read_json(body: str) -> _Submission:
    try:
        doc = json.loads(body) if body.strip() else None
    except ValueError as exc:
        raise Invalid(
            "the body is not valid JSON", [FieldError("body", "json", f"is not valid JSON: {exc}")]
        ) from None
    except RecursionError:
        raise Invalid(
            "the body is nested too deeply",
            [FieldError("body", "maxDepth", "is nested too deeply")],
        ) from None
    if not isinstance(doc, dict):
        raise Invalid(
            "the body must be a JSON object",
            [
                FieldError(
                    "body", "type", "must be a JSON object {action, comment?, rollback_to?, data?}"
                )
            ],
        )
    errors = [
        FieldError(str(k), "additionalProperties", "is not a field of this request")
        for k in doc
        if k not in _JSON_FIELDS
    ]
    action = doc.get("action")
    if not isinstance(action, str):
        errors.append(
            FieldError(
                "action",
                "required" if action is None else "type",
                "is required: approve, reject or complete",
            )
        )
    for name in ("comment", "rollback_to"):
        if doc.get(name) is not None and not isinstance(doc[name], str):
            errors.append(FieldError(name, "type", "must be text"))
    if errors:
        raise _invalid(errors)
    return _Submission(
        action=str(action),
        comment=_text(doc.get("comment")),
        rollback_to=doc.get("rollback_to") or None,
        data=doc.get("data"),
    )


def _invalid(errors: list[FieldError]) -> Invalid:
    count = len(errors)
    return Invalid(f"the request has {count} problem{'s' if count != 1 else ''}", errors)


def _check_action(submission: _Submission) -> None:
    if submission.action not in ACTIONS:
        value = submission.action
        raise _invalid([FieldError("action", "enum", "must be approve, reject or complete", value)])


def _wants_json(event: Any) -> bool:
    return "application/json" in str(event.headers.get("accept") or "").lower()


def show(token: str) -> Response[str]:
    """``GET /a/<token>``: the page; changes nothing."""
    try:
        link = humans.link_page(token)
        refused = _not_open(link)
        if refused is not None:
            return _refusal(refused)
        return html_response(200, render_link_page(link))
    except ServiceError as exc:
        return _refusal(_as_link_error(exc))


def decide(event: Any, token: str) -> Response[Any]:
    """``POST /a/<token>``: decide, and say what was recorded."""
    if _wants_json(event):
        return _decide_json(event, token)
    link: LinkLike | None = None
    submission: _Submission | None = None
    try:
        submission = _read(event)
        link = humans.link_page(token)
        refused = _not_open(link)
        if refused is not None:
            return _refusal(refused)
        _check_action(submission)
        _convert(link, submission)
        decided = humans.decide_by_link(
            token,
            submission.action,
            comment=submission.comment,
            rollback_to=submission.rollback_to,
            data=submission.data,
        )
    except Invalid as exc:
        if link is None:
            try:
                link = humans.link_page(token)
            except ServiceError as refused:
                return _refusal(_as_link_error(refused))
        values = submission.form if submission is not None else None
        return html_response(422, render_link_page(link, errors=exc.errors, values=values or {}))
    except ServiceError as exc:
        return _refusal(_as_link_error(exc))
    return html_response(200, render_outcome_page(decided, link.task))


def _convert(link: LinkLike, submission: _Submission) -> None:
    """Form text → the data ``form_schema`` describes; raise ``Invalid`` with every
    problem."""
    if submission.form is None or submission.action != "complete":
        return
    if link.human.get("kind") != "human_task":
        return
    schema = link.human.get("form_schema")
    data, problems = forms.convert(schema if isinstance(schema, Mapping) else None, submission.form)
    if problems:
        count = len(problems)
        raise Invalid(
            f"the form has {count} problem{'s' if count != 1 else ''}; nothing was recorded",
            problems,
        )
    submission.data = data


def _decide_json(event: Any, token: str) -> Response[Any]:
    try:
        submission = _read(event)
        _check_action(submission)
        if submission.form is not None and submission.action == "complete":
            _convert(humans.link_page(token), submission)
        decided = humans.decide_by_link(
            token,
            submission.action,
            comment=submission.comment,
            rollback_to=submission.rollback_to,
            data=submission.data,
        )
    except ServiceError as exc:
        return _problem(_as_link_error(exc))
    return _json_answer(decided)


# --------------------------------------------------------------------------- the routes


def router() -> Router:
    """The routes of approval links, for ``app.include_router``. A new router each call:
    an included router answers through the resolver that included it, and each thread
    has its own resolver (``loopline.api.app.resolver``)."""
    routes = Router()

    @routes.get("/a/<token>", include_in_schema=False)
    def get_link(token: str) -> Response[Any]:
        try:
            return show(token)
        except Exception:
            log.exception("the approval page failed")
            return _failure(routes.current_event)

    @routes.post("/a/<token>", include_in_schema=False)
    def post_link(token: str) -> Response[Any]:
        try:
            return decide(routes.current_event, token)
        except Exception:
            log.exception("deciding through an approval link failed")
            return _failure(routes.current_event)

    return routes


def _failure(event: Any) -> Response[Any]:
    if event.http_method == "POST" and _wants_json(event):
        from loopline.api.app import problem_response

        answer = problem_response(
            500, "Internal Server Error", "the service failed; the request may be retried", []
        )
        answer.headers.update(SECURITY_HEADERS)
        return answer
    return html_response(
        500,
        _render(
            "refused.html",
            "Something failed",
            heading="Something failed",
            detail=_FAILED,
            decision=None,
        ),
    )
