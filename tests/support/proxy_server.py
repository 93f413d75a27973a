"""A Lambda proxy handler served over HTTP on 127.0.0.1, as API Gateway would call it: each
request becomes a REST API proxy event (payload format 1.0, no authorizer) and the
handler's answer the response. For a browser pointed at one function's routes without the
whole local stack (``loopline serve`` does that, from template.yaml).
"""

from __future__ import annotations

import base64
import threading
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def proxy_event(
    method: str, target: str, headers: list[tuple[str, str]], body: bytes
) -> dict[str, Any]:
    url = urlsplit(target)
    path = unquote(url.path) or "/"
    query = parse_qsl(url.query, keep_blank_values=True)
    single = dict(headers)
    multi: dict[str, list[str]] = {}
    for k, v in headers:
        multi.setdefault(k, []).append(v)
    text: str | None = None
    encoded = False
    if body:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            text, encoded = base64.b64encode(body).decode("ascii"), True
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": single or None,
        "multiValueHeaders": multi or None,
        "queryStringParameters": dict(query) or None,
        "multiValueQueryStringParameters": {k: [v for n, v in query if n == k] for k, _ in query}
        or None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "resourcePath": "/{proxy+}",
            "httpMethod": method,
            "path": f"/dev{path}",
            "stage": "dev",
            "requestId": str(uuid.uuid4()),
            "accountId": "123456789012",
            "apiId": "localapi",
            "protocol": "HTTP/1.1",
            "identity": {"sourceIp": "127.0.0.1", "userAgent": single.get("User-Agent")},
        },
        "body": text,
        "isBase64Encoded": encoded,
    }


class ProxyServer:
    """``with ProxyServer(handler) as server:`` ... ``server.url`` ... (a free port)."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[tuple[str, str]] = []
        outer = self

        class _Request(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                outer.requests.append((self.command, self.path))
                event = proxy_event(self.command, self.path, list(self.headers.items()), body)
                result = outer.handler(event, None)
                answer = result.get("body") or ""
                data = (
                    base64.b64decode(answer)
                    if result.get("isBase64Encoded")
                    else str(answer).encode("utf-8")
                )
                self.send_response(int(result["statusCode"]))
                sent = set()
                for name, values in (result.get("multiValueHeaders") or {}).items():
                    for value in values:
                        self.send_header(name, str(value))
                    sent.add(name.lower())
                for name, value in (result.get("headers") or {}).items():
                    if name.lower() not in sent:
                        self.send_header(name, str(value))
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_POST = do_HEAD = _serve

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Request)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> ProxyServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
