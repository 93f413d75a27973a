"""The ``http`` action and the safe HTTP client it shares with the ``http_get`` tool.

``fetch`` makes one request the way a workflow may: only http(s) URLs; every host
(the first one and each redirect target) vetted by ``loopline.runtime.netguard`` and the
connection made to the vetted address (the Host header and TLS server name stay the
host's); at most ``MAX_REDIRECTS`` redirects, each followed by hand; the whole exchange
bounded by ``timeout`` seconds; the body read as a stream and abandoned past
``LOOPLINE_HTTP_MAX_BYTES``; no proxies from the environment.
"""

from __future__ import annotations

import functools
import json
import re
import ssl
import time
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

from loopline.redact import is_sensitive, remember_secret, remember_secrets
from loopline.runtime.errors import StepError, json_type, quote, readable, unexpected
from loopline.runtime.evaluate import context_from_payload, render_text, render_tree
from loopline.runtime.netguard import Target, normalize_host, vet
from loopline.runtime.payload import config_of
from loopline.settings import settings

MAX_REDIRECTS = 5
_REDIRECTS = (301, 302, 303, 307, 308)


# --------------------------------------------------------------------------- pinned transport


class _PinnedBackend(httpcore.NetworkBackend):
    """Opens TCP connections to the vetted addresses of one host, and to nothing else."""

    def __init__(self, target: Target) -> None:
        self._target = target
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        if normalize_host(host) != normalize_host(self._target.host) or port != self._target.port:
            raise httpcore.ConnectError(
                f"connection to {host}:{port} not allowed (only {self._target.host})"
            )
        error: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in self._target.addresses:  # each one vetted; the first that answers
            try:
                return self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None  # a Target has at least one address
        raise error

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:  # pragma: no cover - never configured
        raise httpcore.ConnectError("unix sockets are not allowed")

    def sleep(self, seconds: float) -> None:  # pragma: no cover - no retries configured
        self._inner.sleep(seconds)


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """The one verifying TLS context of the process (certifi's roots, as httpx's default):
    building one loads the CA bundle, about 20 ms, which was paid twice per request."""
    return httpx.create_ssl_context(trust_env=False)


class PinnedTransport(httpx.HTTPTransport):
    """``httpx.HTTPTransport`` whose connections all go to ``target.addresses`` (the HTTP
    step's and the webhooks' client)."""

    def __init__(self, target: Target) -> None:
        ssl_context = _ssl_context()
        super().__init__(verify=ssl_context, trust_env=False)
        # httpx has no public hook for the network backend: the pool it built is replaced
        # by one that connects through _PinnedBackend (TLS still verifies the host name).
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=1,
            max_keepalive_connections=0,
            network_backend=_PinnedBackend(target),
        )


# --------------------------------------------------------------------------- fetch


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: Any
    url: str

    def to_output(self) -> dict[str, Any]:
        return {"status": self.status, "headers": self.headers, "body": self.body}


_METHOD = re.compile(r"^[A-Z][A-Z-]{0,19}$")
#: RFC 9110 ``token``: what a header name may be.
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def header_problem(name: Any, value: Any) -> str | None:
    """Why a header cannot be sent as given (None when it can). The value is never
    quoted back: it may be a credential."""
    if not isinstance(name, str) or not _TOKEN.match(name):
        return "not a header name (letters, digits and !#$%&'*+.^_`|~-)"
    if not isinstance(value, str):
        return f"the value is {json_type(value)}, not text"
    if "\r" in value or "\n" in value:
        return "the value contains a line break"
    if any((ord(c) < 32 and c != "\t") or ord(c) == 127 for c in value):
        return "the value contains a control character"
    if not value.isascii():
        return "the value contains characters outside ASCII"
    return None


def _expected(expect: list[int] | None) -> str:
    return "2xx" if not expect else ", ".join(str(s) for s in expect)


def _read(
    resp: httpx.Response, what: str, max_bytes: int, deadline: float, timeout: float
) -> bytes:
    declared = resp.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise StepError(
            "Loopline.HTTPError",
            f"{what}: the response is {int(declared)} bytes, more than the {max_bytes}-byte "
            "limit (LOOPLINE_HTTP_MAX_BYTES)",
        )
    chunks: list[bytes] = []
    size = 0
    for chunk in resp.iter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise StepError(
                "Loopline.HTTPError",
                f"{what}: the response is larger than the {max_bytes}-byte limit "
                "(LOOPLINE_HTTP_MAX_BYTES); stopped reading",
            )
        if time.monotonic() > deadline:
            raise StepError("Loopline.Transient", f"{what} timed out after {timeout:g}s")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(resp: httpx.Response, data: bytes) -> Any:
    text = data.decode(resp.charset_encoding or "utf-8", errors="replace")
    if "json" in resp.headers.get("content-type", "").lower() and data:
        try:
            return json.loads(data)
        except ValueError:
            return text
    return text


def fetch(
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    body: Any = None,
    expect_status: list[int] | None = None,
    timeout: float = 30.0,
    allow_hosts: Iterable[str] = (),
) -> Response:
    """Make the request (see the module's docstring); raise ``StepError`` on any failure.

    ``allow_hosts`` adds to ``LOOPLINE_HTTP_ALLOW_HOSTS``. Redirects are followed unless
    ``expect_status`` lists a 3xx status. A status outside ``expect_status`` (default
    2xx) is ``Loopline.HTTPError``; timeouts and connection errors ``Loopline.Transient``.
    """
    method = method.upper()
    allowed = [*settings().http_allow_host_list, *allow_hosts]
    max_bytes = settings().http_max_bytes
    expect = expect_status or None
    follow = not any(300 <= s < 400 for s in expect or [])
    # Credentials sent are masked in every message and log line from here on.
    remember_secrets(headers, url)
    for name, value in (query or {}).items():
        if is_sensitive(name):
            remember_secret(value)
    what = f"{method} {url}"
    if not _METHOD.match(method):
        raise StepError("Loopline.Failed", f"{what}: {quote(method)} is not an HTTP method")
    if not url.lower().startswith(("http://", "https://")):
        raise StepError(
            "Loopline.Failed", f"{method} {quote(url)}: the url must start with http:// or https://"
        )
    for name, value in (headers or {}).items():
        problem = header_problem(name, value)
        if problem:
            raise StepError("Loopline.Failed", f"{what}: header {quote(name)}: {problem}")
    content: dict[str, Any] = {}
    if isinstance(body, str):
        content["content"] = body.encode()
    elif body is not None:
        content["json"] = body
    try:
        target_url = httpx.URL(url)
        if query:  # added to the URL's own query (httpx's params= would replace it)
            target_url = target_url.copy_merge_params(query)
        request = httpx.Request(method, target_url, headers=headers, **content)
    except (httpx.InvalidURL, httpx.UnsupportedProtocol, ValueError) as exc:
        raise StepError("Loopline.Failed", f"{what}: invalid url: {readable(exc)}") from None
    deadline = time.monotonic() + timeout
    first = str(request.url)
    redirects = 0
    while True:
        current = str(request.url)
        target = vet(current, allowed, what=what)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise StepError("Loopline.Transient", f"{what} timed out after {timeout:g}s")
        try:
            with httpx.Client(
                transport=PinnedTransport(target),
                timeout=remaining,
                follow_redirects=False,
                trust_env=False,
            ) as client:
                resp = client.send(request, stream=True)
                try:
                    if follow and resp.status_code in _REDIRECTS and resp.next_request:
                        nxt = resp.next_request
                        redirects += 1
                        if redirects > MAX_REDIRECTS:
                            raise StepError(
                                "Loopline.HTTPError",
                                f"{what}: more than {MAX_REDIRECTS} redirects (the last to "
                                f"{nxt.url})",
                            )
                        request = nxt
                        continue
                    data = _read(resp, what, max_bytes, deadline, timeout)
                finally:
                    resp.close()
        except httpx.TimeoutException:
            raise StepError("Loopline.Transient", f"{what} timed out after {timeout:g}s") from None
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            raise StepError(
                "Loopline.HTTPError", f"{what}: invalid url {current}: {readable(exc)}"
            ) from None
        except ssl.SSLError as exc:  # pragma: no cover - mapped by httpx in practice
            raise StepError("Loopline.Transient", f"{what} failed: {readable(exc)}") from None
        except httpx.HTTPError as exc:
            # A connection refused or broken is worth a retry; a request the server or
            # the protocol refuses is not (``loopline.runtime.errors.is_transient``).
            raise unexpected(exc, f"{what} failed", "Loopline.HTTPError") from None
        break
    parsed = _parse(resp, data)
    ok = resp.status_code in expect if expect else 200 <= resp.status_code < 300
    if not ok:
        snippet = data[:300].decode("utf-8", errors="replace").strip()
        raise StepError(
            "Loopline.HTTPError",
            f"{what} returned status {resp.status_code} (expected {_expected(expect)})"
            + (f" from {current}" if current != first else "")
            + (f": {snippet}" if snippet else ""),
        )
    return Response(resp.status_code, dict(resp.headers), parsed, current)


# --------------------------------------------------------------------------- the action


def http(payload: dict[str, Any], env: Any = None) -> dict[str, Any]:
    """The ``http`` action (docs/internals.md, "Lambda payloads")."""
    cfg = config_of(payload)
    ctx = context_from_payload(payload)
    url = render_text(cfg.get("url"), ctx) or ""
    headers = {k: render_text(v, ctx) or "" for k, v in (cfg.get("headers") or {}).items()}
    query = {k: render_text(v, ctx) or "" for k, v in (cfg.get("query") or {}).items()}
    resp = fetch(
        str(cfg.get("method") or "GET"),
        url,
        headers=headers,
        query=query,
        body=render_tree(cfg.get("body"), ctx),
        expect_status=cfg.get("expect_status") or None,
        timeout=float(cfg.get("timeout") or 30),
        allow_hosts=[str(h) for h in cfg.get("allow_hosts") or []],
    )
    return {"output": resp.to_output()}
