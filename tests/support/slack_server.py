"""A real HTTP server on 127.0.0.1 speaking the part of Slack's Web API Loopline uses:
``chat.postMessage`` and ``chat.update``.

```python
with SlackServer(token="xoxb-test") as slack:
    monkeypatch.setenv("LOOPLINE_SLACK_API_URL", slack.url)   # http://127.0.0.1:PORT/api
    ...
    [request] = slack.requests      # method, path, headers, body (JSON or form, parsed)
    slack.messages[(channel_id, ts)] # what the channel shows now
```

Requests are authenticated as Slack does (``Authorization: Bearer <token>``, or a
``token`` field): a missing token is ``{"ok": false, "error": "not_authed"}``, a wrong one
``invalid_auth``. Bodies may be JSON (what slack-sdk sends for these methods) or
form-encoded (``blocks`` then a JSON string). ``post`` to a channel in
``unknown_channels`` is ``channel_not_found``; ``update`` of a message it never posted is
``message_not_found``. ``fail_next(n)`` answers the next ``n`` calls with HTTP 500,
``rate_limit_next(n, retry_after)`` with 429 ``ratelimited`` and ``Retry-After``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs


@dataclass
class SlackRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def api_method(self) -> str:
        """``chat.postMessage`` of ``/api/chat.postMessage``."""
        return self.path.rsplit("/", 1)[-1]


def channel_id(name: str) -> str:
    """The id the server gives a channel name (``#approvals`` → ``C…``), or the id itself."""
    if name.startswith(("C", "G", "D")) and name[1:].isalnum() and name.isupper():
        return name
    return "C" + hashlib.sha256(name.encode()).hexdigest()[:10].upper()


class SlackServer:
    def __init__(self, token: str = "xoxb-test-token") -> None:
        self.token = token
        self.requests: list[SlackRequest] = []
        #: (channel id, ts) → the message's ``{"text", "blocks", "channel"}``, as it is now.
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}
        self.unknown_channels: set[str] = set()
        self._failures: list[tuple[int, float | None]] = []
        self._lock = threading.Lock()
        self._ts = itertools.count(1)
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._answer(405, {"ok": False, "error": "method_not_allowed"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode("utf-8")
                body = _parse(self.headers.get("Content-Type") or "", raw)
                request = SlackRequest("POST", self.path, dict(self.headers.items()), body)
                status, answer, headers = server._handle(request)
                self._answer(status, answer, headers)

            def _answer(
                self, status: int, answer: dict[str, Any], headers: dict[str, str] | None = None
            ) -> None:
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The Web API's base URL (``LOOPLINE_SLACK_API_URL``)."""
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/api"

    def __enter__(self) -> SlackServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    # ------------------------------------------------------------------ test controls

    def fail_next(self, count: int = 1) -> None:
        """Answer the next ``count`` calls with HTTP 500."""
        with self._lock:
            self._failures += [(500, None)] * count

    def rate_limit_next(self, count: int = 1, retry_after: float = 1) -> None:
        """Answer the next ``count`` calls with 429 ``ratelimited`` and ``Retry-After``."""
        with self._lock:
            self._failures += [(429, retry_after)] * count

    def calls(self, api_method: str) -> list[SlackRequest]:
        return [r for r in self.requests if r.api_method == api_method]

    # ------------------------------------------------------------------ the API

    def _handle(self, request: SlackRequest) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self._lock:
            self.requests.append(request)
            if self._failures:
                status, retry_after = self._failures.pop(0)
                if status == 429:
                    return (
                        429,
                        {"ok": False, "error": "ratelimited"},
                        {"Retry-After": f"{retry_after:g}"},
                    )
                return status, {"ok": False, "error": "internal_error"}, {}
            auth = request.headers.get("Authorization") or request.headers.get("authorization")
            token = auth.removeprefix("Bearer ").strip() if auth else request.body.get("token")
            if not token:
                return 200, {"ok": False, "error": "not_authed"}, {}
            if token != self.token:
                return 200, {"ok": False, "error": "invalid_auth"}, {}
            method = request.api_method
            if method == "chat.postMessage":
                return 200, self._post(request.body), {}
            if method == "chat.update":
                return 200, self._update(request.body), {}
            return 404, {"ok": False, "error": "unknown_method"}, {}

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = str(body.get("channel") or "")
        if not channel or channel in self.unknown_channels:
            return {"ok": False, "error": "channel_not_found"}
        if not body.get("text") and not body.get("blocks"):
            return {"ok": False, "error": "no_text"}
        cid = channel_id(channel)
        ts = f"1700000000.{next(self._ts):06d}"
        message = {
            "type": "message",
            "text": body.get("text"),
            "blocks": body.get("blocks"),
            "ts": ts,
        }
        self.messages[(cid, ts)] = {**message, "channel": cid}
        return {"ok": True, "channel": cid, "ts": ts, "message": message}

    def _update(self, body: dict[str, Any]) -> dict[str, Any]:
        key = (str(body.get("channel") or ""), str(body.get("ts") or ""))
        if key not in self.messages:
            return {"ok": False, "error": "message_not_found"}
        message = {
            "type": "message",
            "text": body.get("text"),
            "blocks": body.get("blocks"),
            "ts": key[1],
        }
        self.messages[key] = {**message, "channel": key[0]}
        return {
            "ok": True,
            "channel": key[0],
            "ts": key[1],
            "text": body.get("text"),
            "message": message,
        }


def _parse(content_type: str, raw: str) -> dict[str, Any]:
    """A JSON body, or a form whose ``blocks`` (and ``attachments``) are JSON strings."""
    if content_type.split(";")[0].strip().lower() == "application/json":
        data = json.loads(raw or "{}")
        return data if isinstance(data, dict) else {}
    form = {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}
    out: dict[str, Any] = dict(form)
    for name in ("blocks", "attachments"):
        if isinstance(out.get(name), str) and out[name]:
            out[name] = json.loads(out[name])
    return out
