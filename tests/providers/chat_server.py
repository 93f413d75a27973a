"""A real HTTP server on 127.0.0.1 speaking the OpenAI Chat Completions wire format.

Each test queues the responses it wants, in order (``answer``, ``answer_json``,
``tool_calls``, ``rate_limited``, ``error``, ``echo_headers``, ``hang``, ``malformed``), and
reads back the requests the server got (``requests``, ``bodies``). A request with nothing
queued gets a 400 saying so. It runs in a thread; ``hang`` holds the connection open
without answering until the server stops.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    #: Sent as is instead of ``body`` as JSON.
    raw: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False
    #: Answer an error whose body echoes the request's headers, as some providers do.
    echo_headers: bool = False


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: Any


def completion(
    content: str | None,
    tool_calls: list[dict[str, Any]] | None = None,
    *,
    prompt_tokens: int = 11,
    completion_tokens: int = 7,
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 0,
        "model": "test-model",
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if tool_calls else "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


class ChatServer:
    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._calls = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw.decode(errors="replace")
                with server._lock:
                    server.requests.append(
                        Request(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    reply = server.replies.popleft() if server.replies else None
                if self.path.rstrip("/") != "/v1/chat/completions":
                    reply = Reply(404, {"error": {"message": f"no route {self.path}"}})
                if reply is None:
                    reply = Reply(400, {"error": {"message": "chat server: no response queued"}})
                if reply.hang:
                    server._stop.wait(30)
                    self.close_connection = True
                    return
                if reply.echo_headers:
                    auth = self.headers.get("Authorization") or ""
                    key = auth.removeprefix("Bearer ")
                    reply = Reply(
                        reply.status,
                        {
                            "error": {
                                "message": f"Incorrect API key provided: {key} "
                                f"(Authorization: {auth})",
                                "request_headers": dict(self.headers.items()),
                            }
                        },
                    )
                data = reply.raw if reply.raw is not None else json.dumps(reply.body).encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> ChatServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> ChatServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    @property
    def bodies(self) -> list[Any]:
        with self._lock:
            return [r.body for r in self.requests]

    # ------------------------------------------------------------------ scripting

    def queue(self, reply: Reply) -> ChatServer:
        with self._lock:
            self.replies.append(reply)
        return self

    def answer(
        self, text: str, *, prompt_tokens: int = 11, completion_tokens: int = 7
    ) -> ChatServer:
        body = completion(text, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
        return self.queue(Reply(body=body))

    def answer_json(self, value: Any) -> ChatServer:
        return self.answer(json.dumps(value))

    def tool_calls(self, *calls: tuple[str, Any], text: str | None = None) -> ChatServer:
        """Ask for ``(name, args)`` calls; args that are not a string are sent as JSON."""
        with self._lock:
            self._calls += len(calls)
            first = self._calls - len(calls)
        raw = [
            {
                "id": f"call_{first + n}",
                "type": "function",
                "function": {
                    "name": name,
                    "arguments": args if isinstance(args, str) else json.dumps(args),
                },
            }
            for n, (name, args) in enumerate(calls)
        ]
        return self.queue(Reply(body=completion(text, raw)))

    def rate_limited(self, retry_after: str | None = None) -> ChatServer:
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        body = {"error": {"message": "Rate limit reached", "type": "rate_limit"}}
        return self.queue(Reply(429, body, headers=headers))

    def error(self, status: int, message: str) -> ChatServer:
        return self.queue(Reply(status, {"error": {"message": message, "type": "x"}}))

    def echo_headers(self, status: int) -> ChatServer:
        """An error of ``status`` whose body repeats the request's headers (the API key)."""
        return self.queue(Reply(status, echo_headers=True))

    def hang(self) -> ChatServer:
        return self.queue(Reply(hang=True))

    def malformed(self, raw: bytes = b"<html>this is not json") -> ChatServer:
        return self.queue(Reply(raw=raw))
