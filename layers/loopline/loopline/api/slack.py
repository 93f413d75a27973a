"""``POST /v1/slack/actions``: the clicks on the buttons of Loopline's Slack messages.

Slack signs each request with the app's signing secret. The route answers ``401``
(problem+json) unless the signature of the raw body is valid, its timestamp within 5
minutes (``loopline.notify.slack.verify``), and the request was not seen before (the
domain claims each signature once: ``humans.claim_slack_request``, so a replayed request
changes nothing). Only then is the body parsed and the human task decided, as the Slack
user who clicked (``humans.slack_decide``). The answer is ``200`` with an empty body: the
message is updated with the outcome through the outbox. A decision the domain refuses
(already decided, expired, invalid) is still ``200``, with an ephemeral text Slack shows
only to the one who clicked: a non-2xx answer would only make Slack show an error.

No API key: the route is served without the authorizer (``Auth: {Authorizer: NONE}``),
the signature is its authentication. It is left out of the OpenAPI document, which
describes the API's clients' routes.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from loopline.notify import NotifyError
from loopline.notify import slack as notify_slack
from loopline.service.errors import ServiceError

log = logging.getLogger("loopline.api")

PATH = "/v1/slack/actions"


def _problem(status: int, title: str, detail: str) -> Response[Any]:
    # Imported here: loopline.api.app imports this module to include its router.
    from loopline.api.app import problem_response

    return problem_response(status, title, detail, [])


def _ephemeral(text: str) -> Response[Any]:
    body = {"response_type": "ephemeral", "replace_original": False, "text": text}
    return Response(
        status_code=200, content_type="application/json", body=json.dumps(body, ensure_ascii=False)
    )


def router() -> APIGatewayRouter:
    """The Slack route, for ``app.include_router``."""
    from loopline.service import humans

    r = APIGatewayRouter()

    @r.post(PATH, include_in_schema=False)
    def slack_actions() -> Response[Any]:
        event = r.current_event
        body = event.decoded_body or ""
        headers = {str(k).lower(): str(v) for k, v in (event.headers or {}).items()}
        try:
            verified = notify_slack.verify(headers, body)
        except NotifyError as exc:
            log.error("Slack request not verified: %s", exc)
            return _problem(503, "Service Unavailable", "the Slack signing secret is unavailable")
        if not verified:
            return _problem(
                401,
                "Unauthorized",
                "the request is not signed by Slack (X-Slack-Signature with a timestamp "
                "within 5 minutes)",
            )
        signature = headers["x-slack-signature"]
        timestamp = headers["x-slack-request-timestamp"]
        if not humans.claim_slack_request(signature, timestamp):
            return _problem(401, "Unauthorized", "this request was already received")
        try:
            action = notify_slack.parse_action(body)
        except ValueError as exc:
            return _ephemeral(f"Loopline could not read this action: {exc}")
        try:
            humans.slack_decide(
                action.human_task, action.action, slack_user=action.user_id, team=action.team_id
            )
        except ServiceError as exc:
            return _ephemeral(exc.detail)
        return Response(status_code=200, body="")

    return r
