"""The task API's routes: Powertools' REST resolver with request validation, one domain
call per route, and every error as ``application/problem+json`` (RFC 9457), mapped here
and only here:

- a domain error (``loopline.service.errors.ServiceError``) becomes its status, title,
  detail, ``errors`` and headers (``Retry-After``, ``WWW-Authenticate``);
- a request that does not fit a route's types (Powertools' ``RequestValidationError``:
  a missing field, ``limit=0``, a body that is not JSON) is ``422`` listing every problem
  as ``{field, rule, message, value?}`` (Powertools' own answer, ``{"statusCode",
  "detail": [{"loc", "type"}]}``, is replaced by registering a handler for it);
- an unknown route is ``404``; anything unexpected ``500`` without a traceback (logged).

The caller is the authorizer's context (``requestContext.authorizer``: ``tenant``,
``user``, ``roles`` comma-joined, ``key_id``), never the request body; a request without
it is ``401``. ``GET /v1/openapi.json`` (no key needed) serves the OpenAPI document.

The resolver keeps the request being answered on itself, so each thread gets its own
(``resolver()``): the local stack answers requests concurrently in one process, as many
Lambda containers would.
"""

from __future__ import annotations

import json
import logging
import threading
from functools import cache
from http import HTTPStatus
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.exceptions import ServiceError as PowertoolsError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from loopline.api import links
from loopline.service import humans, tasks, webhooks, workflows
from loopline.service.errors import (
    FieldError,
    Invalid,
    NotFound,
    ServiceError,
    Unauthorized,
    UnsupportedMediaType,
)
from loopline.service.keys import Caller
from loopline.settings import settings

log = logging.getLogger("loopline.api")

PROBLEM = "application/problem+json"
TITLE = "Loopline task API"
API_VERSION = "1.0.0"
TaskStatus = Literal[
    "QUEUED", "RUNNING", "WAITING", "PAUSED", "SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT"
]
_NAME = r"^[a-z][a-z0-9_-]*$"
HumanStatus = Literal["open", "decided", "expired", "closed"]


class SubmitTask(BaseModel):
    """``POST /v1/tasks``: the workflow to run, its inputs, and optionally a webhook URL
    for the task's events and labels to find it by."""

    model_config = ConfigDict(extra="forbid")

    workflow: Annotated[str, Field(min_length=1, max_length=128)]
    inputs: dict[str, Any] = Field(default_factory=dict)
    webhook: Annotated[str | None, Field(max_length=2048)] = None
    labels: Annotated[dict[str, Annotated[str, Field(max_length=256)]], Field(max_length=50)] = (
        Field(default_factory=dict)
    )


class Approve(BaseModel):
    """``POST /v1/human-tasks/{id}/approve``."""

    model_config = ConfigDict(extra="forbid")

    comment: Annotated[str | None, Field(max_length=4000)] = None


class Reject(BaseModel):
    """``POST /v1/human-tasks/{id}/reject``: with ``rollback_to``, one of the step's
    rollback targets runs again."""

    model_config = ConfigDict(extra="forbid")

    comment: Annotated[str | None, Field(max_length=4000)] = None
    rollback_to: Annotated[str | None, Field(max_length=128)] = None


class Complete(BaseModel):
    """``POST /v1/human-tasks/{id}/complete``: the form data of a ``human_task`` (checked
    against its ``form_schema``); nothing for a ``pause``."""

    model_config = ConfigDict(extra="forbid")

    data: Any = None
    comment: Annotated[str | None, Field(max_length=4000)] = None


class CreateWebhook(BaseModel):
    """``POST /v1/webhooks``: where to POST, and which event types (``task.succeeded``,
    ``human.waiting``…, or ``task.*``, ``human.*``, ``*``)."""

    model_config = ConfigDict(extra="forbid")

    url: Annotated[str, Field(min_length=1, max_length=2048)]
    events: Annotated[list[Annotated[str, Field(max_length=64)]], Field(max_length=20)]


DeliveryStatus = Literal["pending", "delivered", "failed"]


# --------------------------------------------------------------------------- problems


def problem_response(
    status: int, title: str, detail: str, errors: list[dict[str, Any]], headers: Any = None
) -> Response[Any]:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    body["errors"] = errors
    return Response(
        status_code=status,
        content_type=PROBLEM,
        body=json.dumps(body, ensure_ascii=False),
        headers=dict(headers or {}),
    )


def service_problem(exc: ServiceError) -> Response[Any]:
    doc = exc.problem()
    return problem_response(exc.status, doc["title"], doc["detail"], doc["errors"], exc.headers)


#: Pydantic's error types in the API's words (its own messages name Python types).
_RULE_WORDS = {
    "missing": "is required",
    "extra_forbidden": "is not a field of this request",
    "dict_type": "must be a JSON object",
    "model_type": "must be a JSON object",
    "model_attributes_type": "must be a JSON object",
    "string_type": "must be text",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "list_type": "must be a JSON array",
    "json_invalid": "is not valid JSON",
    "json_type": "is not valid JSON",
}


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = list(loc)
    where = parts.pop(0) if parts else "body"
    if where == "body" and parts and isinstance(parts[-1], int) and len(parts) == 1:
        parts = []  # ("body", <position>) of a JSON syntax error
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    if where == "header":
        out = "-".join(w.capitalize() for w in out.split("-"))
    return out or "body"


def _validation_problem(exc: RequestValidationError) -> Response[Any]:
    errors: list[FieldError] = []
    for err in exc.errors():
        rule = str(err.get("type", "invalid"))
        message = _RULE_WORDS.get(rule) or str(err.get("msg") or "is invalid")
        if message.startswith("Input should be "):
            message = "must be " + message[len("Input should be ") :]
        elif message.startswith("Input should have "):
            message = "must have " + message[len("Input should have ") :]
        if rule == "json_invalid" and (err.get("ctx") or {}).get("error"):
            message = f"is not valid JSON: {err['ctx']['error']}"
        value = err.get("input")
        field = _field(err.get("loc") or ())
        if isinstance(value, (str, int, float, bool)) and rule not in ("missing", "json_invalid"):
            errors.append(FieldError(field, rule, message, value))
        else:
            errors.append(FieldError(field, rule, message))
    count = len(errors)
    doc = Invalid(f"the request has {count} problem{'s' if count != 1 else ''}", errors)
    return service_problem(doc)


# --------------------------------------------------------------------------- the resolver


def _caller(app: APIGatewayRestResolver) -> Caller:
    context = (app.current_event.raw_event.get("requestContext") or {}).get("authorizer") or {}
    tenant = str(context.get("tenant") or "")
    if not tenant:
        raise Unauthorized("send an API key: Authorization: Bearer <key>")
    roles = tuple(r for r in str(context.get("roles") or "").split(",") if r)
    return Caller(
        tenant=tenant,
        user=str(context.get("user") or "") or None,
        roles=roles,
        key_id=str(context.get("key_id") or context.get("principalId") or ""),
    )


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(
        status_code=status,
        content_type="application/json",
        body=json.dumps(body, ensure_ascii=False),
        headers=headers or {},
    )


_PROBLEM_RESPONSES: dict[int, Any] = {
    code: {"description": HTTPStatus(code).phrase, "content": {PROBLEM: {}}}
    for code in (401, 404, 422)
}


class _Resolver(APIGatewayRestResolver):
    """Powertools' REST resolver, answering from the request it was given.

    ``resolve`` keeps the request on the ``BaseRouter`` class (for included routers), so
    resolvers in concurrent threads would read each other's request — its body, headers
    and caller. Here the request is also kept on the resolver and on each router it
    includes (instance attributes, which win over the class's), and the resolvers and
    routers are one set per thread (``resolver()``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.routers: list[Any] = []

    def include(self, router: Any) -> None:
        self.include_router(router)
        self.routers.append(router)

    def resolve(self, event: Any, context: Any) -> dict[str, Any]:
        current = self._to_proxy_event(event)
        for target in (self, *self.routers):
            target.current_event = current
            target.lambda_context = context
        return super().resolve(event, context)


def build() -> APIGatewayRestResolver:
    """A resolver with every route and error handler; with ``LOOPLINE_CORS_ORIGIN`` (the
    stack's ``CorsOrigin``), its answers carry the CORS headers for that one origin."""
    from aws_lambda_powertools.event_handler import CORSConfig

    origin = settings().cors_origin
    cors = (
        CORSConfig(
            allow_origin=origin,
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
            expose_headers=["Location", "Retry-After"],
            max_age=600,
        )
        if origin
        else None
    )
    app = _Resolver(enable_validation=True, cors=cors)

    # -- errors ---------------------------------------------------------------------

    @app.exception_handler(ServiceError)
    def _service_error(exc: ServiceError) -> Response[Any]:
        return service_problem(exc)

    @app.exception_handler(RequestValidationError)
    def _invalid_request(exc: RequestValidationError) -> Response[Any]:
        return _validation_problem(exc)

    @app.exception_handler(RequestUnsupportedContentType)
    def _unsupported(exc: RequestUnsupportedContentType) -> Response[Any]:
        return service_problem(UnsupportedMediaType("send the request body as application/json"))

    @app.not_found
    def _no_route(exc: NotFoundError) -> Response[Any]:
        event = app.current_event
        return service_problem(NotFound(f"there is no route {event.http_method} {event.path}"))

    @app.exception_handler(PowertoolsError)
    def _powertools_error(exc: PowertoolsError) -> Response[Any]:
        status = HTTPStatus(exc.status_code)
        return problem_response(status.value, status.phrase, str(exc.msg), [])

    @app.exception_handler(Exception)
    def _unexpected(exc: Exception) -> Response[Any]:
        log.exception("unexpected error answering %s", app.current_event.path)
        return problem_response(
            500, "Internal Server Error", "the service failed; the request may be retried", []
        )

    # -- workflows ----------------------------------------------------------------------

    @app.get(
        "/v1/workflows",
        summary="The workflows the tenant can start",
        description="Those deployed with the stack (every tenant) and those the tenant "
        "registered, by name, as one page (`next_cursor` is null).",
        tags=["workflows"],
        responses={200: {"description": "A page of workflows"}, **_PROBLEM_RESPONSES},
    )
    def list_workflows() -> Response[Any]:
        items = workflows.list_workflows(_caller(app))
        return _json({"items": items, "next_cursor": None})

    @app.get(
        "/v1/workflows/<name>",
        summary="One workflow",
        description="`{name, version, description, origin, inputs_schema, steps, graph}`: "
        "`inputs_schema` is the JSON Schema of the inputs, `graph` a Mermaid flowchart.",
        tags=["workflows"],
        responses={200: {"description": "The workflow"}, **_PROBLEM_RESPONSES},
    )
    def get_workflow(name: Annotated[str, Path(max_length=128)]) -> Response[Any]:
        return _json(workflows.get_workflow(_caller(app), name))

    @app.put(
        "/v1/workflows/<name>",
        summary="Register a workflow",
        description="The body is the workflow file (`application/yaml`, `text/yaml` or "
        "`application/json`). It is compiled and the tenant's state machine created "
        "(201) or updated (200). An invalid file is 422 with the compiler's located "
        "problems (`field` the workflow path, `line`, `column`); a file whose `name` is "
        "not `{name}` is 422; a name the stack deploys is 409.",
        tags=["workflows"],
        responses={
            200: {"description": "Updated"},
            201: {"description": "Created"},
            409: {"description": "A stack workflow's name", "content": {PROBLEM: {}}},
            415: {"description": "Not YAML or JSON", "content": {PROBLEM: {}}},
            **_PROBLEM_RESPONSES,
        },
    )
    def put_workflow(
        name: Annotated[str, Path(max_length=64, pattern=_NAME)],
    ) -> Response[Any]:
        event = app.current_event
        body = event.decoded_body or ""
        view, created = workflows.register_workflow(
            _caller(app), name, body, event.headers.get("content-type")
        )
        return _json(view, 201 if created else 200)

    # -- tasks --------------------------------------------------------------------------

    @app.post(
        "/v1/tasks",
        summary="Start a task",
        description="Checks `inputs` against the workflow's input specs before anything "
        "starts (422 listing each violation, `field` = `inputs.<name>`), and the "
        "`webhook` URL (https; its host's addresses must be public). 202 with the task "
        "view and `Location`. With `Idempotency-Key`, the same key and body within 24 h "
        "answer the same task (200); another body is 409; while the first request is in "
        "flight, 409 with `Retry-After`.",
        tags=["tasks"],
        responses={
            200: {"description": "The task an earlier request with this key started"},
            202: {
                "description": "Started",
                "headers": {"Location": {"schema": {"type": "string"}}},
            },
            409: {"description": "Key reused or in flight", "content": {PROBLEM: {}}},
            503: {"description": "The execution did not start", "content": {PROBLEM: {}}},
            **_PROBLEM_RESPONSES,
        },
    )
    def submit_task(
        body: Annotated[SubmitTask, Body()],
        idempotency_key: Annotated[str | None, Header(alias="idempotency-key")] = None,
    ) -> Response[Any]:
        view, started = tasks.submit_task(
            _caller(app),
            body.workflow,
            body.inputs,
            webhook=body.webhook,
            labels=body.labels,
            idempotency_key=idempotency_key,
        )
        location = view["links"]["self"]
        return _json(view, 202 if started else 200, {"Location": location})

    @app.get(
        "/v1/tasks",
        summary="The tenant's tasks, newest first",
        description="Filters `status` and `workflow`; `limit` 1..100 (default 20); "
        "`cursor` from the previous page's `next_cursor` (null at the end). Items show "
        "`steps` as recorded once a task ended (`{}` before) and large values as "
        "references.",
        tags=["tasks"],
        responses={200: {"description": "A page of tasks"}, **_PROBLEM_RESPONSES},
    )
    def list_tasks(
        status: Annotated[TaskStatus | None, Query()] = None,
        workflow: Annotated[str | None, Query(max_length=128)] = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        cursor: Annotated[str | None, Query(max_length=4096)] = None,
    ) -> Response[Any]:
        page = tasks.list_tasks(
            _caller(app), status=status, workflow=workflow, limit=limit, cursor=cursor
        )
        return _json(page)

    @app.get(
        "/v1/tasks/<task_id>",
        summary="One task",
        tags=["tasks"],
        responses={200: {"description": "The task view"}, **_PROBLEM_RESPONSES},
    )
    def get_task(task_id: Annotated[str, Path(max_length=64)]) -> Response[Any]:
        return _json(tasks.get_task(_caller(app), task_id))

    @app.get(
        "/v1/tasks/<task_id>/steps/<step>",
        summary="One step of a task",
        description="`{task, step, status, starts, runs}`: every start of the step "
        "(`runs: [{attempt, started_at, finished_at, status, output, error, cause}]`), "
        "newest last. Outputs stored in S3 are shown whole, or as "
        "`{link, size, preview, expires_at}` when over 1 MB.",
        tags=["tasks"],
        responses={200: {"description": "The step"}, **_PROBLEM_RESPONSES},
    )
    def get_step(
        task_id: Annotated[str, Path(max_length=64)],
        step: Annotated[str, Path(max_length=128)],
    ) -> Response[Any]:
        return _json(tasks.get_step(_caller(app), task_id, step))

    @app.get(
        "/v1/tasks/<task_id>/events",
        summary="A task's events, in order",
        description="`{items: [{seq, at, type, step?, data}], next_cursor}`: the events "
        "with `seq` greater than `after`; `next_cursor` is the `after` of the next page "
        "when this one is full, else null. With `wait` (seconds, at most 20) an empty "
        "answer is held until an event arrives; an ended task answers at once.",
        tags=["tasks"],
        responses={200: {"description": "A page of events"}, **_PROBLEM_RESPONSES},
    )
    def list_events(
        task_id: Annotated[str, Path(max_length=64)],
        after: Annotated[int, Query(ge=0)] = 0,
        wait: Annotated[float, Query(ge=0, le=tasks.MAX_WAIT)] = 0,
        limit: Annotated[int, Query(ge=1, le=100)] = 100,
    ) -> Response[Any]:
        return _json(tasks.list_events(_caller(app), task_id, after=after, wait=wait, limit=limit))

    @app.post(
        "/v1/tasks/<task_id>/cancel",
        summary="Cancel a task",
        description="Stops the execution; the task is `CANCELLED` (event "
        "`task.cancelled`). 409 when it has already ended.",
        tags=["tasks"],
        responses={
            200: {"description": "The cancelled task"},
            409: {"description": "Already ended", "content": {PROBLEM: {}}},
            **_PROBLEM_RESPONSES,
        },
    )
    def cancel_task(task_id: Annotated[str, Path(max_length=64)]) -> Response[Any]:
        return _json(tasks.cancel_task(_caller(app), task_id))

    # -- people in the loop -------------------------------------------------------------

    decision_responses: dict[int, Any] = {
        200: {"description": "The human task, `decision` filled"},
        403: {"description": "Not the assignee", "content": {PROBLEM: {}}},
        409: {
            "description": "No longer open: decided (names the decision) or closed",
            "content": {PROBLEM: {}},
        },
        410: {"description": "Expired", "content": {PROBLEM: {}}},
        **_PROBLEM_RESPONSES,
    }

    @app.get(
        "/v1/human-tasks",
        summary="The inbox",
        description="Human tasks, newest first, in `status` (default `open`); filters "
        "`role`, `user`, `task`. With neither `role` nor `user`: the caller's own (assigned "
        "to its user, one of its roles, or nobody; every one for an `admin` key).",
        tags=["people"],
        responses={200: {"description": "A page of human tasks"}, **_PROBLEM_RESPONSES},
    )
    def list_human_tasks(
        status: Annotated[HumanStatus, Query()] = "open",
        role: Annotated[str | None, Query(max_length=128)] = None,
        user: Annotated[str | None, Query(max_length=256)] = None,
        task: Annotated[str | None, Query(max_length=64)] = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        cursor: Annotated[str | None, Query(max_length=4096)] = None,
    ) -> Response[Any]:
        page = humans.list_human_tasks(
            _caller(app), status=status, role=role, user=user, task=task, limit=limit, cursor=cursor
        )
        return _json(page)

    @app.get(
        "/v1/human-tasks/<human_task_id>",
        summary="One human task",
        description="`{id, task, step, kind, status, instruction, context, form_schema, "
        "rollback_to, assignee, escalated, created_at, expires_at, decision}`, with "
        "`instruction` and `context` rendered.",
        tags=["people"],
        responses={200: {"description": "The human task"}, **_PROBLEM_RESPONSES},
    )
    def get_human_task(human_task_id: Annotated[str, Path(max_length=64)]) -> Response[Any]:
        return _json(humans.get_human_task(_caller(app), human_task_id))

    @app.post(
        "/v1/human-tasks/<human_task_id>/approve",
        summary="Approve",
        description="Decides an `approval`. The decision is recorded before the workflow "
        "is told, once: a second decision is 409 naming the first.",
        tags=["people"],
        responses=decision_responses,
    )
    def approve(
        human_task_id: Annotated[str, Path(max_length=64)],
        body: Annotated[Approve | None, Body()] = None,
    ) -> Response[Any]:
        caller = _caller(app)
        body = body or Approve()
        return _json(
            humans.decide(
                human_task_id,
                "approve",
                actor=humans.Actor.of_caller(caller),
                via="api",
                comment=body.comment,
            )
        )

    @app.post(
        "/v1/human-tasks/<human_task_id>/reject",
        summary="Reject",
        description="Rejects an `approval` or `human_task`; `rollback_to` (one of the "
        "step's targets, 422 otherwise) runs that step again and asks anew.",
        tags=["people"],
        responses=decision_responses,
    )
    def reject(
        human_task_id: Annotated[str, Path(max_length=64)],
        body: Annotated[Reject | None, Body()] = None,
    ) -> Response[Any]:
        caller = _caller(app)
        body = body or Reject()
        return _json(
            humans.decide(
                human_task_id,
                "reject",
                actor=humans.Actor.of_caller(caller),
                via="api",
                comment=body.comment,
                rollback_to=body.rollback_to,
            )
        )

    @app.post(
        "/v1/human-tasks/<human_task_id>/complete",
        summary="Complete",
        description="Submits a `human_task`'s form data (checked against `form_schema`: 422 "
        "with every violation, and the task keeps waiting) or resumes a `pause`.",
        tags=["people"],
        responses=decision_responses,
    )
    def complete(
        human_task_id: Annotated[str, Path(max_length=64)],
        body: Annotated[Complete | None, Body()] = None,
    ) -> Response[Any]:
        caller = _caller(app)
        body = body or Complete()
        return _json(
            humans.decide(
                human_task_id,
                "complete",
                actor=humans.Actor.of_caller(caller),
                via="api",
                comment=body.comment,
                data=body.data,
            )
        )

    # -- webhooks -------------------------------------------------------------------------

    secret_responses = {
        200: {"description": "`{secret, previous, previous_expires_at, rotated_at}`"},
        **_PROBLEM_RESPONSES,
    }

    # Before /v1/webhooks/<webhook_id>: the resolver tries routes in order.
    @app.get(
        "/v1/webhooks/signing-secret",
        summary="The tenant's signing secret",
        description="`{secret, previous, previous_expires_at, rotated_at}`: the secret "
        "(`whsec_<base64>`) that signs per-task webhooks and human steps' `notify: "
        "[{webhook}]`; created on first use. `previous` is the rotated-out secret while it "
        "still signs (24 h), else null.",
        tags=["webhooks"],
        responses=secret_responses,
    )
    def get_signing_secret() -> Response[Any]:
        return _json(webhooks.signing_secret(_caller(app)))

    @app.post(
        "/v1/webhooks/signing-secret/rotate",
        summary="Rotate the signing secret",
        description="A new secret; for 24 h the previous one still signs beside it (two "
        "`v1,` signatures in `webhook-signature`), so receivers can switch without losing "
        "a delivery.",
        tags=["webhooks"],
        responses=secret_responses,
    )
    def rotate_signing_secret() -> Response[Any]:
        return _json(webhooks.rotate_signing_secret(_caller(app)))

    @app.post(
        "/v1/webhooks",
        summary="Subscribe to events",
        description="`{url, events}` → 201 `{id, url, events, created_at, secret}`; the "
        "secret (`whsec_<base64>`) is shown here only. `url` must be https (plain http only "
        "to hosts the stack allows) and its host's addresses public; `events` lists types "
        "(`task.succeeded`, `human.waiting`…) or `task.*`, `human.*`, `*`. At most 20 per "
        "tenant.",
        tags=["webhooks"],
        responses={201: {"description": "Subscribed"}, **_PROBLEM_RESPONSES},
    )
    def create_webhook(body: Annotated[CreateWebhook, Body()]) -> Response[Any]:
        view = webhooks.create_subscription(_caller(app), body.url, body.events)
        return _json(view, 201, {"Location": f"/v1/webhooks/{view['id']}"})

    @app.get(
        "/v1/webhooks",
        summary="The tenant's subscriptions",
        description="Oldest first, without their secrets.",
        tags=["webhooks"],
        responses={200: {"description": "A page of subscriptions"}, **_PROBLEM_RESPONSES},
    )
    def list_webhooks(
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        cursor: Annotated[str | None, Query(max_length=4096)] = None,
    ) -> Response[Any]:
        return _json(webhooks.list_subscriptions(_caller(app), limit=limit, cursor=cursor))

    @app.get(
        "/v1/webhooks/<webhook_id>",
        summary="One subscription",
        description="`{id, url, events, created_at}`.",
        tags=["webhooks"],
        responses={200: {"description": "The subscription"}, **_PROBLEM_RESPONSES},
    )
    def get_webhook(webhook_id: Annotated[str, Path(max_length=64)]) -> Response[Any]:
        return _json(webhooks.get_subscription(_caller(app), webhook_id))

    @app.delete(
        "/v1/webhooks/<webhook_id>",
        summary="Unsubscribe",
        description="204. Its deliveries still pending end `failed` at their next attempt.",
        tags=["webhooks"],
        responses={204: {"description": "Removed"}, **_PROBLEM_RESPONSES},
    )
    def delete_webhook(webhook_id: Annotated[str, Path(max_length=64)]) -> Response[Any]:
        webhooks.delete_subscription(_caller(app), webhook_id)
        return Response(status_code=204, content_type="application/json", body="")

    @app.post(
        "/v1/webhooks/<webhook_id>/rotate-secret",
        summary="Rotate a subscription's secret",
        description="As the signing secret's rotation, for this subscription: "
        "`{secret, previous, previous_expires_at, rotated_at}`.",
        tags=["webhooks"],
        responses=secret_responses,
    )
    def rotate_webhook_secret(webhook_id: Annotated[str, Path(max_length=64)]) -> Response[Any]:
        return _json(webhooks.rotate_subscription_secret(_caller(app), webhook_id))

    @app.get(
        "/v1/webhook-deliveries",
        summary="The delivery log",
        description="Deliveries newest first (of one `task`; in one `status`), each with "
        "every attempt `{at, status_code, duration_ms, error}` (`status_code` null when no "
        "answer came).",
        tags=["webhooks"],
        responses={200: {"description": "A page of deliveries"}, **_PROBLEM_RESPONSES},
    )
    def list_deliveries(
        task: Annotated[str | None, Query(max_length=64)] = None,
        status: Annotated[DeliveryStatus | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        cursor: Annotated[str | None, Query(max_length=4096)] = None,
    ) -> Response[Any]:
        page = webhooks.list_deliveries(
            _caller(app), task=task, status=status, limit=limit, cursor=cursor
        )
        return _json(page)

    @app.get(
        "/v1/webhook-deliveries/<delivery_id>",
        summary="One delivery",
        description="`{id, task, event, url, target, status, attempts, next_attempt_at, "
        "created_at, delivered_at, failed_at}`.",
        tags=["webhooks"],
        responses={200: {"description": "The delivery"}, **_PROBLEM_RESPONSES},
    )
    def get_delivery(delivery_id: Annotated[str, Path(max_length=64)]) -> Response[Any]:
        return _json(webhooks.get_delivery(_caller(app), delivery_id))

    @app.post(
        "/v1/webhook-deliveries/<delivery_id>/retry",
        summary="Send a delivery again",
        description="202: a delivered or failed delivery is attempted once more, now (the "
        "same `webhook-id`). 409 while it is still pending.",
        tags=["webhooks"],
        responses={
            202: {"description": "Queued"},
            409: {"description": "Still pending", "content": {PROBLEM: {}}},
            **_PROBLEM_RESPONSES,
        },
    )
    def retry_delivery(delivery_id: Annotated[str, Path(max_length=64)]) -> Response[Any]:
        return _json(webhooks.retry(_caller(app), delivery_id), 202)

    app.include(links.router())  # GET/POST /a/<token>: approval link pages
    # Slack's button clicks (loopline.api.slack: signed by Slack, no API key).
    from loopline.api import slack

    app.include(slack.router())

    # -- the document ---------------------------------------------------------------

    @app.get("/v1/openapi.json", include_in_schema=False)
    def openapi() -> Response[Any]:
        return Response(status_code=200, content_type="application/json", body=openapi_text())

    return app


_threads = threading.local()


def resolver() -> APIGatewayRestResolver:
    """This thread's resolver."""
    app = getattr(_threads, "app", None)
    if app is None:
        app = _threads.app = build()
    return app


def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Answer one API Gateway (REST, proxy integration) event."""
    return resolver().resolve(event, context)


# --------------------------------------------------------------------------- OpenAPI


@cache
def openapi_document() -> dict[str, Any]:
    """The OpenAPI document of every route (3.1)."""
    from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer

    app = build()
    schema = app.get_openapi_schema(
        title=TITLE,
        version=API_VERSION,
        description="Register workflows; start, follow and cancel tasks; decide the human "
        "tasks they wait on. Errors are "
        "`application/problem+json` (RFC 9457) listing every problem as "
        "`{field, rule, message, value?}`.",
        security_schemes={"bearer": HTTPBearer(scheme="bearer")},
        security=[{"bearer": []}],
    )
    doc: dict[str, Any] = json.loads(schema.model_dump_json(by_alias=True, exclude_none=True))
    put = doc["paths"]["/v1/workflows/{name}"]["put"]
    put["requestBody"] = {
        "required": True,
        "content": {
            media: {"schema": {"type": "string"}}
            for media in ("application/yaml", "text/yaml", "application/json")
        },
    }
    return doc


@cache
def openapi_text() -> str:
    return json.dumps(openapi_document(), indent=2, ensure_ascii=False) + "\n"
