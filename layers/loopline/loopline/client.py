"""A client of the task service's HTTP API (``loopline task …``): the deployed API or
``loopline serve``.

Every call sends ``Authorization: Bearer <key>`` and JSON. An answer that is not 2xx
raises ``ServiceProblem`` with the problem's ``status``, ``title``, ``detail`` and
``errors`` (RFC 9457 problem+json, as every error of the API is; an answer in another
shape, from a proxy say, is made into one). A service that cannot be reached raises
``ServiceUnreachable`` with a readable message (the URL and what went wrong, never a
class name).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import httpx

#: Event types that end a task: following its events stops at the first of them.
END_EVENTS = frozenset({"task.succeeded", "task.failed", "task.cancelled", "task.timed_out"})
#: Statuses a task never leaves.
ENDED = frozenset({"SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT"})
#: The longest long poll the API holds (``wait``, seconds).
MAX_WAIT = 20


class ServiceProblem(Exception):
    """A problem+json answer: ``status``, ``title``, ``detail`` and ``errors`` (each
    ``{field, rule, message, value?}``)."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = errors or []
        self.headers = headers or {}
        super().__init__(self.lines()[0])

    def lines(self) -> list[str]:
        """One ``<status> <title>: <field>: <message>`` per error (``<detail>`` when the
        problem lists none)."""
        head = f"{self.status} {self.title}"
        out = []
        for error in self.errors:
            field = error.get("field")
            message = error.get("message") or error.get("rule") or "invalid"
            out.append(f"{head}: {field}: {message}" if field else f"{head}: {message}")
        if not out:
            out.append(f"{head}: {self.detail}" if self.detail else head)
        return out


class ServiceUnreachable(Exception):
    """No answer from the service (refused, unknown host, timed out, cut off)."""


def _reason(exc: Exception) -> str:
    """What went wrong, in words: ``[Errno 111] Connection refused`` → ``connection
    refused``."""
    text = str(exc) or exc.__class__.__name__
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", text)
    return text[:1].lower() + text[1:]


def _problem(response: httpx.Response) -> ServiceProblem:
    headers = {k.lower(): v for k, v in response.headers.items()}
    try:
        body = response.json()
    except ValueError:
        body = None
    try:
        phrase = HTTPStatus(response.status_code).phrase
    except ValueError:
        phrase = "Error"
    if isinstance(body, dict) and ("title" in body or "errors" in body):
        errors = body.get("errors")
        return ServiceProblem(
            int(body.get("status") or response.status_code),
            str(body.get("title") or phrase),
            str(body["detail"]) if body.get("detail") is not None else None,
            [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else [],
            headers,
        )
    text = " ".join(response.text.split())
    detail = (text[:200] + "…" if len(text) > 200 else text) or None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        detail = body["message"]  # API Gateway's own shape, when not customised
    return ServiceProblem(response.status_code, phrase, detail, [], headers)


class Client:
    """The task API at ``base_url`` (``https://…/dev`` or ``http://127.0.0.1:8000``),
    called with API key ``key``."""

    def __init__(
        self,
        base_url: str,
        key: str,
        *,
        timeout: float = MAX_WAIT + 10,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        try:
            self._http = httpx.Client(
                base_url=self.base_url,
                headers={
                    "Authorization": f"Bearer {key}",
                    "Accept": "application/json, application/problem+json",
                },
                timeout=httpx.Timeout(timeout, connect=10.0),
                transport=transport,
            )
        except (httpx.InvalidURL, TypeError, ValueError) as exc:
            raise ServiceUnreachable(f"{base_url} is not a URL: {_reason(exc)}") from None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ transport

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """The JSON of a 2xx answer to ``method path``; ``ServiceProblem`` otherwise."""
        url = f"{self.base_url}{path}"
        try:
            response = self._http.request(
                method,
                path,
                content=None if body is None else json.dumps(body).encode(),
                params={k: v for k, v in (params or {}).items() if v is not None},
                headers={
                    **({"Content-Type": "application/json"} if body is not None else {}),
                    **(headers or {}),
                },
            )
        except httpx.TimeoutException:
            raise ServiceUnreachable(f"no answer from {url} in time") from None
        except httpx.UnsupportedProtocol:
            raise ServiceUnreachable(f"{self.base_url} is not an http:// or https:// URL") from None
        except httpx.ConnectError as exc:
            raise ServiceUnreachable(f"cannot reach {self.base_url}: {_reason(exc)}") from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise ServiceUnreachable(f"{method} {url} failed: {_reason(exc)}") from None
        if not response.is_success:
            raise _problem(response)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise ServiceUnreachable(
                f"{method} {url}: the answer is not JSON ({response.headers.get('content-type')})"
            ) from None

    # ------------------------------------------------------------------ tasks

    def start_task(
        self,
        workflow: str,
        inputs: dict[str, Any],
        *,
        labels: dict[str, str] | None = None,
        webhook: str | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """``POST /v1/tasks``: the new task's view (or, for a repeated idempotency key
        with the same body, the task it started)."""
        body: dict[str, Any] = {"workflow": workflow, "inputs": inputs}
        if labels:
            body["labels"] = labels
        if webhook:
            body["webhook"] = webhook
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        view: dict[str, Any] = self.request("POST", "/v1/tasks", body=body, headers=headers)
        return view

    def get_task(self, task_id: str) -> dict[str, Any]:
        view: dict[str, Any] = self.request("GET", f"/v1/tasks/{quote(task_id, safe='')}")
        return view

    def cancel_task(self, task_id: str) -> dict[str, Any]:
        view: dict[str, Any] = self.request("POST", f"/v1/tasks/{quote(task_id, safe='')}/cancel")
        return view

    def events(self, task_id: str, *, after: int = 0, wait: int | None = None) -> list[Any]:
        """The task's events after ``after``; with ``wait`` the API holds the call (up to
        that many seconds) until one arrives."""
        page = self.request(
            "GET",
            f"/v1/tasks/{quote(task_id, safe='')}/events",
            params={"after": after, "wait": wait},
        )
        items = page.get("items") if isinstance(page, dict) else None
        if not isinstance(items, list):
            raise ServiceUnreachable(f"{self.base_url}: an events page without items")
        return items

    def follow_events(
        self, task_id: str, *, after: int = 0, wait: int = MAX_WAIT
    ) -> Iterator[dict[str, Any]]:
        """Every event after ``after`` as it arrives, until one that ends the task.

        The first call takes what there is; each next one holds up to ``wait`` seconds. A
        call that brings nothing checks the task, so following a task that ended before
        ``after`` stops at once.
        """
        hold: int | None = None
        while True:
            batch = self.events(task_id, after=after, wait=hold)
            hold = wait
            for event in batch:
                yield event
                if isinstance(event.get("seq"), int):
                    after = max(after, event["seq"])
                if event.get("type") in END_EVENTS:
                    return
            if not batch:
                if self.get_task(task_id).get("status") in ENDED:
                    # Its end event may have come between the two calls.
                    yield from self.events(task_id, after=after)
                    return
                if wait <= 0:
                    time.sleep(1.0)
