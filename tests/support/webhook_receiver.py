"""A webhook receiver: a real HTTP server on 127.0.0.1 that verifies every request as a
Standard Webhooks consumer does (``standardwebhooks.Webhook(secret).verify(body,
headers)``) and records it.

```python
with WebhookReceiver(secrets=[signing_secret]) as receiver:
    client.post("/v1/tasks", json={..., "webhook": receiver.url})
    [hit] = receiver.wait_for(lambda r: r.received(type="task.succeeded"), timeout=30)
    assert hit.secret == signing_secret and hit.json["data"]["status"] == "SUCCEEDED"
    receiver.secrets = [old, new]       # the secrets it verifies with can change any time
```

Each request is a ``Received``: method, path, headers (lower-case names), raw body, the
parsed JSON (or None), the secret that verified it (or ``error``, why none did), the
status the receiver answered, and when it arrived (``at``: ``time.time()``).

What it answers is switchable at run time:

- ``up()``: 200 (the default);
- ``status(n)``: ``n`` for every request;
- ``fail_first(n, status)``: ``status`` for the first ``n`` attempts of each
  ``webhook-id``, 200 from then on (a receiver that was down for a while, counted per
  delivery);
- ``down()``: stops listening (connections are refused) but keeps its port, so ``up()``
  (or any other mode) listens again on the same port and ``url`` stays valid;
- ``slow(seconds)``: waits that long, then answers as ``up()``.

Verification does not change the answer (so a receiver missing a secret still lets a
delivery succeed, and the test sees why it did not verify), unless ``reject_unverified``
is set: then an unverified request is answered 401.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from standardwebhooks import Webhook


@dataclass
class Received:
    """One request the receiver got."""

    method: str
    path: str
    #: Header names in lower case.
    headers: dict[str, str]
    body: bytes
    #: The parsed JSON body, or None when it is not JSON.
    json: Any
    #: The secret that verified the request, or None.
    secret: str | None
    #: Why no secret verified it (None when one did).
    error: str | None
    #: The status the receiver answered.
    status: int
    #: When it arrived (``time.time()``) and its ``time.monotonic()``.
    at: float
    monotonic: float

    @property
    def verified(self) -> bool:
        return self.secret is not None

    @property
    def webhook_id(self) -> str | None:
        return self.headers.get("webhook-id")

    @property
    def type(self) -> str | None:
        return self.json.get("type") if isinstance(self.json, dict) else None

    @property
    def data(self) -> Any:
        return self.json.get("data") if isinstance(self.json, dict) else None

    @property
    def signatures(self) -> list[str]:
        """The entries of ``webhook-signature`` (``v1,<base64>`` each)."""
        return (self.headers.get("webhook-signature") or "").split()


def verify(body: bytes, headers: dict[str, str], secrets: Iterable[str]) -> tuple[str | None, str]:
    """The first of ``secrets`` that verifies the request per Standard Webhooks, and the
    last verification error (``""`` when one verified)."""
    error = "no secret to verify with"
    for secret in secrets:
        try:
            Webhook(secret).verify(body, headers)
        except Exception as exc:  # the library's errors, and a malformed header
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            continue
        return secret, ""
    return None, error


class WebhookReceiver:
    def __init__(
        self, secrets: Iterable[str] = (), *, path: str = "/hooks", reject_unverified: bool = False
    ) -> None:
        self.secrets: list[str] = list(secrets)
        self.path = path
        self.reject_unverified = reject_unverified
        self.requests: list[Received] = []
        self._mode: tuple[str, float] = ("up", 200)
        self._fail_first: tuple[int, int] | None = None
        self._fail_counts: Counter[str] = Counter()
        self._changed = threading.Condition()
        self._port = 0
        self._httpd: ThreadingHTTPServer | None = None
        #: Open connections (kept alive between requests): closed by ``down()`` too.
        self._connections: set[socket.socket] = set()
        self._thread: threading.Thread | None = None
        self._location = ""
        #: Bytes of ``large`` answers written so far.
        self.bytes_sent = 0

    # ------------------------------------------------------------------ life

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}{self.path}"

    @property
    def listening(self) -> bool:
        return self._httpd is not None

    def __enter__(self) -> WebhookReceiver:
        self._listen()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._close()

    def _listen(self) -> None:
        if self._httpd is not None:
            return
        httpd = ThreadingHTTPServer(("127.0.0.1", self._port), self._handler())
        httpd.daemon_threads = True
        self._port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def _close(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        with self._changed:
            connections, self._connections = self._connections, set()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    # ------------------------------------------------------------------ modes

    def up(self) -> None:
        """Answer 200 (listening again on the same port after ``down()``)."""
        self._set(("up", 200))

    def status(self, code: int) -> None:
        """Answer ``code`` to every request."""
        self._set(("status", code))

    def fail_first(self, attempts: int, status: int = 503) -> None:
        """Answer ``status`` to the first ``attempts`` requests of each ``webhook-id``
        (counted from now), then 200."""
        self._set(("up", 200))
        with self._changed:
            self._fail_first = (attempts, status)
            self._fail_counts = Counter()

    def slow(self, seconds: float) -> None:
        """Wait ``seconds`` before answering 200."""
        self._set(("slow", seconds))

    def redirect(self, location: str) -> None:
        """Answer ``302`` to ``location`` (which a webhook sender must not follow)."""
        self._set(("redirect", 302))
        with self._changed:
            self._location = location

    def large(self, size: int) -> None:
        """Answer 200 with a body of ``size`` bytes, written as long as the sender reads
        (``bytes_sent`` counts what went out)."""
        self._set(("large", size))

    def down(self) -> None:
        """Stop listening: connections to the port are refused until another mode."""
        with self._changed:
            self._fail_first = None
            self._mode = ("down", 0)
        self._close()

    def _set(self, mode: tuple[str, float]) -> None:
        with self._changed:
            self._fail_first = None
            self._mode = mode
        self._listen()

    def _answer_for(self, webhook_id: str | None) -> tuple[int, float]:
        """The status to answer and the seconds to wait first."""
        with self._changed:
            if self._fail_first is not None and webhook_id:
                attempts, status = self._fail_first
                self._fail_counts[webhook_id] += 1
                if self._fail_counts[webhook_id] <= attempts:
                    return status, 0
            kind, value = self._mode
        if kind == "status":
            return int(value), 0
        if kind == "slow":
            return 200, value
        if kind == "redirect":
            return 302, 0
        return 200, 0

    # ------------------------------------------------------------------ what arrived

    def received(
        self, type: str | None = None, *, task: str | None = None, verified: bool | None = None
    ) -> list[Received]:
        """The requests received so far (of event ``type``, about ``task``: ``data.id`` or
        ``data.task.id``; only verified or unverified ones), in order of arrival."""
        with self._changed:
            out = list(self.requests)
        if type is not None:
            out = [r for r in out if r.type == type]
        if task is not None:
            out = [r for r in out if task_of(r) == task]
        if verified is not None:
            out = [r for r in out if r.verified is verified]
        return out

    def counts(self) -> Counter[str]:
        """How many requests arrived per ``webhook-id``."""
        with self._changed:
            return Counter(r.webhook_id or "" for r in self.requests)

    def wait_for[T](self, predicate: Callable[[WebhookReceiver], T], timeout: float = 30) -> T:
        """Wait until ``predicate(receiver)`` is truthy (checked on every request and at
        least every 0.2 s); its value. A timeout is an AssertionError listing what came."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = predicate(self)
                if found:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(min(left, 0.2))
        seen = [(r.type, r.webhook_id, r.status, r.error) for r in self.received()]
        raise AssertionError(f"webhook receiver: condition not met within {timeout}s; got {seen}")

    # ------------------------------------------------------------------ HTTP

    def _record(self, request: Received) -> None:
        with self._changed:
            self.requests.append(request)
            self._changed.notify_all()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: without this, a kept-alive client's
            # delayed ACK holds the second for 40 ms.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                with receiver._changed:
                    receiver._connections.add(self.connection)

            def finish(self) -> None:
                with receiver._changed:
                    receiver._connections.discard(self.connection)
                with contextlib.suppress(OSError):
                    super().finish()

            def do_POST(self) -> None:
                arrived, arrived_mono = time.time(), time.monotonic()
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    parsed: Any = json.loads(body)
                except ValueError:
                    parsed = None
                secret, error = verify(body, headers, list(receiver.secrets))
                status, wait = receiver._answer_for(headers.get("webhook-id"))
                if secret is None and receiver.reject_unverified:
                    status = 401
                if wait:
                    time.sleep(wait)
                receiver._record(
                    Received(
                        method="POST",
                        path=self.path,
                        headers=headers,
                        body=body,
                        json=parsed,
                        secret=secret,
                        error=error or None,
                        status=status,
                        at=arrived,
                        monotonic=arrived_mono,
                    )
                )
                kind, size = receiver._mode
                if status == 302:
                    self.send_response(302)
                    self.send_header("Location", receiver._location)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if kind == "large" and status == 200:
                    self.send_response(200)
                    self.send_header("Content-Length", str(int(size)))
                    self.end_headers()
                    chunk = b"x" * 65536
                    with contextlib.suppress(OSError):
                        while receiver.bytes_sent < size:
                            self.wfile.write(chunk)
                            receiver.bytes_sent += len(chunk)
                    return
                answer = json.dumps({"ok": 200 <= status < 300}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def do_GET(self) -> None:
                self.send_response(405)
                self.send_header("Content-Length", "0")
                self.end_headers()

        return Handler


def task_of(request: Received) -> str | None:
    """The task a delivery is about: ``data.id`` for ``task.*``, ``data.task.id`` for
    ``human.*``."""
    data = request.data
    if not isinstance(data, dict):
        return None
    if isinstance(data.get("task"), dict):
        return str(data["task"].get("id"))
    return str(data["id"]) if "id" in data else None
