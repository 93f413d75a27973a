"""A webhook receiver on 127.0.0.1 for the domain tests (answers as told)."""

from __future__ import annotations

import http.server
import threading
import time
from dataclasses import dataclass
from typing import Any


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes


class WebhookReceiver:
    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.status = 200
        self.redirect_to: str | None = None
        self.answer_bytes = 0
        self.bytes_sent = 0
        self.delay = 0.0
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                owner.requests.append(
                    Request(
                        self.path,
                        {k.lower(): v for k, v in self.headers.items()},
                        self.rfile.read(length),
                    )
                )
                time.sleep(owner.delay)
                if owner.redirect_to and self.path != "/elsewhere":
                    self.send_response(302)
                    self.send_header("Location", owner.redirect_to)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(owner.status)
                self.send_header("Content-Length", str(owner.answer_bytes))
                self.end_headers()
                chunk = b"x" * 65536
                try:
                    while owner.bytes_sent < owner.answer_bytes:
                        self.wfile.write(chunk)
                        owner.bytes_sent += len(chunk)
                except OSError:
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_port}"

    def __enter__(self) -> WebhookReceiver:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
