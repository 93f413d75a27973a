"""The template's REST API (``AWS::Serverless::Api``) on 127.0.0.1, as API Gateway runs it.

moto's API Gateway ignores Lambda proxy integrations, so the local stack serves the API
itself, from what template.yaml declares:

- **Routes** from the ``Api`` events of the functions that name the API (``RestApiId``):
  matched as API Gateway does, the most specific first (a literal segment before a
  ``{param}``, a ``{param}`` before a greedy ``{proxy+}``; a method before ``ANY``). A
  request no route takes is ``MISSING_AUTHENTICATION_TOKEN`` (403), as in AWS.
- **The TOKEN authorizer** (``Auth.DefaultAuthorizer``, or a route's ``Auth.Authorizer``;
  ``NONE`` for none): a missing identity header (or one failing ``ValidationExpression``)
  is ``UNAUTHORIZED`` without calling it; the authorizer raising ``Exception("Unauthorized")``
  is ``UNAUTHORIZED`` (401); a policy that denies, or does not allow, the method ARN is
  ``ACCESS_DENIED`` (403); any other failure is ``AUTHORIZER_FAILURE`` (500), a malformed
  answer ``AUTHORIZER_CONFIGURATION_ERROR`` (500). Policies are cached per token for
  ``Identity.ReauthorizeEvery`` seconds (default 300) and checked against each request's
  method ARN.
- **Gateway responses** from ``GatewayResponses`` (status, headers with their ``'…'``
  quoting removed, the ``application/json`` template with ``$context.error.messageString``,
  ``$context.error.message``, ``$context.error.responseType`` and ``$context.requestId``
  filled in), falling back to ``DEFAULT_4XX``/``DEFAULT_5XX``, then to API Gateway's own
  ``{"message": ...}``.
- **Payload limit**: a body over 10 MB is ``REQUEST_TOO_LARGE`` (413).
- **Lambda proxy integration** (payload v1): the function gets the proxy event (the
  authorizer's ``principalId`` and context, values as strings, in
  ``requestContext.authorizer``) and its result (``statusCode``, ``headers``,
  ``multiValueHeaders``, ``body``, ``isBase64Encoded``) is the response; a function that
  fails or answers something else is 502 ``{"message": "Internal server error"}``.

Paths: the deployed URL carries the stage as its first path segment
(``https://<api id>.execute-api.<region>.amazonaws.com/<stage>/v1/...``); the local server
serves at its root (``http://127.0.0.1:PORT/v1/...``). The proxy event is the same in both:
``path`` has no stage, ``requestContext.path`` has it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from loopline.local.executor import ACCOUNT_ID, LocalContext, LocalExecutor, LocalStackError
from loopline.local.template import LocalStack

log = logging.getLogger("loopline.local")

#: API Gateway's payload limit.
MAX_BODY = 10 * 1024 * 1024
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")

#: API Gateway's own gateway responses: status and message.
_DEFAULT_RESPONSES: dict[str, tuple[int, str | None]] = {
    "UNAUTHORIZED": (401, "Unauthorized"),
    "ACCESS_DENIED": (403, "User is not authorized to access this resource"),
    "AUTHORIZER_FAILURE": (500, None),
    "AUTHORIZER_CONFIGURATION_ERROR": (500, None),
    "MISSING_AUTHENTICATION_TOKEN": (403, "Missing Authentication Token"),
    "REQUEST_TOO_LARGE": (413, "Request Too Long"),
}
_ERROR_TYPES = {
    "UNAUTHORIZED": "UnauthorizedException",
    "ACCESS_DENIED": "AccessDeniedException",
    "AUTHORIZER_FAILURE": "AuthorizerFailureException",
    "AUTHORIZER_CONFIGURATION_ERROR": "AuthorizerConfigurationException",
    "MISSING_AUTHENTICATION_TOKEN": "MissingAuthenticationTokenException",
    "REQUEST_TOO_LARGE": "RequestTooLargeException",
}
EXPLICIT_DENY = "User is not authorized to access this resource with an explicit deny"


# --------------------------------------------------------------------------- the definition


@dataclass(frozen=True)
class Route:
    path: str  # the resource path: /{proxy+}, /v1/openapi.json
    method: str  # GET, ..., ANY
    function: str  # the function's name
    authorizer: str | None  # None: no authorization

    @property
    def segments(self) -> list[str]:
        return [s for s in self.path.split("/") if s]

    def specificity(self) -> tuple[Any, ...]:
        """Smaller is more specific: literal < {param} < {greedy+}, then method < ANY."""
        ranks = []
        for s in self.segments:
            ranks.append(2 if s.endswith("+}") else 1 if s.startswith("{") else 0)
        return (*ranks, 9, self.method == "ANY")

    def match(self, path: str) -> dict[str, str] | None:
        """The path parameters when ``path`` (decoded, no stage) is this resource."""
        parts = [p for p in path.split("/") if p]
        params: dict[str, str] = {}
        segments = self.segments
        for i, seg in enumerate(segments):
            if seg.startswith("{") and seg.endswith("+}"):
                if i >= len(parts):
                    return None
                params[seg[1:-2]] = "/".join(parts[i:])
                return params
            if i >= len(parts):
                return None
            if seg.startswith("{") and seg.endswith("}"):
                params[seg[1:-1]] = parts[i]
            elif seg != parts[i]:
                return None
        return params if len(parts) == len(segments) else None


@dataclass(frozen=True)
class TokenAuthorizer:
    name: str
    function: str
    header: str = "Authorization"
    ttl: int = 300
    validation: str | None = None


@dataclass
class ApiDefinition:
    logical_id: str
    api_id: str
    stage: str
    region: str
    routes: list[Route]
    authorizers: dict[str, TokenAuthorizer]
    responses: dict[str, dict[str, Any]] = field(default_factory=dict)

    def route_for(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        found = []
        for r in self.routes:
            if r.method not in (method, "ANY"):
                continue
            params = r.match(path)
            if params is not None:
                found.append((r.specificity(), r, params))
        if not found:
            return None
        _, route, params = min(found, key=lambda f: f[0])
        return route, params

    def method_arn(self, method: str, path: str) -> str:
        return (
            f"arn:aws:execute-api:{self.region}:{ACCOUNT_ID}:{self.api_id}/{self.stage}/"
            f"{method}/{path.lstrip('/')}"
        )


def _function_of(stack: LocalStack, arn_or_name: Any, where: str) -> str:
    text = str(arn_or_name)
    for fn in stack.functions():
        if text in (fn.arn, fn.name):
            return fn.name
    raise LocalStackError(f"{where}: {text!r} is not a function of the template")


def api_definition(stack: LocalStack, logical_id: str | None = None) -> ApiDefinition:
    """The REST API ``logical_id`` (default: the template's only ``AWS::Serverless::Api``)."""
    apis = stack.of_type("AWS::Serverless::Api")
    if logical_id is None:
        if len(apis) != 1:
            found = ", ".join(a.logical_id for a in apis) or "none"
            raise LocalStackError(
                f"{stack.path}: expected one AWS::Serverless::Api to serve, found {found}"
            )
        api = apis[0]
    else:
        api = stack.resources[logical_id]
    where = f"Resources.{api.logical_id}"
    props = stack.properties(api.logical_id)
    auth = props.get("Auth") or {}
    authorizers: dict[str, TokenAuthorizer] = {}
    for name, spec in (auth.get("Authorizers") or {}).items():
        kind = str(spec.get("FunctionPayloadType", "TOKEN"))
        if kind != "TOKEN":
            raise LocalStackError(
                f"{where}.Properties.Auth.Authorizers.{name}: the local stack serves TOKEN "
                f"authorizers only, not {kind}"
            )
        identity = spec.get("Identity") or {}
        authorizers[name] = TokenAuthorizer(
            name=name,
            function=_function_of(stack, spec.get("FunctionArn"), f"{where}.Auth.{name}"),
            header=str(identity.get("Header", "Authorization")),
            ttl=int(identity.get("ReauthorizeEvery", 300)),
            validation=identity.get("ValidationExpression"),
        )
    default = auth.get("DefaultAuthorizer")
    if default is not None and default not in authorizers:
        raise LocalStackError(f"{where}.Properties.Auth: unknown DefaultAuthorizer {default!r}")
    routes = []
    for fn in stack.functions():
        fprops = stack.properties(fn.logical_id)
        for ev_name, ev in (fprops.get("Events") or {}).items():
            if (ev or {}).get("Type") != "Api":
                continue
            ep = ev.get("Properties") or {}
            if ep.get("RestApiId") != api.ref:
                continue
            chosen = ((ep.get("Auth") or {}).get("Authorizer")) or default
            if chosen == "NONE":
                chosen = None
            if chosen is not None and chosen not in authorizers:
                raise LocalStackError(
                    f"Resources.{fn.logical_id}.Events.{ev_name}: unknown authorizer {chosen!r}"
                )
            method = str(ep.get("Method", "ANY")).upper()
            routes.append(
                Route(str(ep["Path"]), "ANY" if method == "ANY" else method, fn.name, chosen)
            )
    if not routes:
        raise LocalStackError(f"{where}: no function has an Api event on it")
    digest = hashlib.sha256(f"{stack.stack_name}/{api.logical_id}".encode()).hexdigest()
    return ApiDefinition(
        logical_id=api.logical_id,
        api_id=digest[:10],
        stage=str(props.get("StageName", "Prod")),
        region=stack.region,
        routes=routes,
        authorizers=authorizers,
        responses=dict(props.get("GatewayResponses") or {}),
    )


# --------------------------------------------------------------------------- policies


def _pattern(text: str) -> re.Pattern[str]:
    return re.compile(
        "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in text)
    )


def _listed(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def policy_decision(policy: Any, method_arn: str) -> str:
    """``allow``, ``deny`` (an explicit Deny) or ``none`` (nothing allows it)."""
    if not isinstance(policy, dict):
        raise ValueError("policyDocument is not an object")
    statements = policy.get("Statement")
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list):
        raise ValueError("policyDocument has no Statement list")
    allowed = False
    for st in statements:
        actions = _listed(st.get("Action", []))
        if not any(_pattern(a).fullmatch("execute-api:Invoke") for a in actions):
            continue
        if not any(_pattern(r).fullmatch(method_arn) for r in _listed(st.get("Resource", []))):
            continue
        effect = str(st.get("Effect", ""))
        if effect == "Deny":
            return "deny"
        if effect == "Allow":
            allowed = True
    return "allow" if allowed else "none"


# --------------------------------------------------------------------------- answers


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


class GatewayError(Exception):
    def __init__(self, kind: str, message: str | None = None) -> None:
        super().__init__(kind)
        self.kind = kind
        self.message = message if message is not None else _DEFAULT_RESPONSES[kind][1]


def _header_value(value: Any, request_headers: dict[str, str]) -> str | None:
    text = str(value)
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1]
    if text.startswith("method.request.header."):
        return request_headers.get(text[len("method.request.header.") :].lower())
    return None


class ApiGateway:
    """Turns HTTP requests into the proxy events API Gateway gives the API's functions."""

    def __init__(self, definition: ApiDefinition, executor: LocalExecutor) -> None:
        self.api = definition
        self.executor = executor
        self._cache: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ gateway responses

    def gateway_response(
        self, kind: str, message: str | None, request_id: str, request_headers: dict[str, str]
    ) -> Answer:
        status, _ = _DEFAULT_RESPONSES[kind]
        fallback_kind = "DEFAULT_4XX" if status < 500 else "DEFAULT_5XX"
        specific = self.api.responses.get(kind) or {}
        fallback = self.api.responses.get(fallback_kind) or {}
        spec = specific or fallback
        status = int(specific.get("StatusCode") or fallback.get("StatusCode") or status)
        headers: list[tuple[str, str]] = []
        for name, value in ((spec.get("ResponseParameters") or {}).get("Headers") or {}).items():
            shown = _header_value(value, request_headers)
            if shown is not None:
                headers.append((str(name), shown))
        templates = spec.get("ResponseTemplates") or {}
        template = templates.get("application/json")
        if template is None:
            template = '{"message":$context.error.messageString}'
        body = (
            str(template)
            .replace("$context.error.messageString", json.dumps(message))
            .replace("$context.error.message", "" if message is None else message)
            .replace("$context.error.responseType", kind)
            .replace("$context.requestId", request_id)
        )
        if not any(h.lower() == "content-type" for h, _ in headers):
            headers.append(("Content-Type", "application/json"))
        headers.append(("x-amzn-ErrorType", _ERROR_TYPES[kind]))
        return Answer(status, headers, body.encode())

    # ------------------------------------------------------------------ authorization

    def authorize(
        self, authorizer: TokenAuthorizer, headers: dict[str, str], method_arn: str
    ) -> dict[str, Any]:
        """The authorizer's answer allowing ``method_arn``; raise ``GatewayError``."""
        token = headers.get(authorizer.header.lower(), "")
        if not token:
            raise GatewayError("UNAUTHORIZED")
        if authorizer.validation and not re.fullmatch(authorizer.validation, token):
            raise GatewayError("UNAUTHORIZED")
        key = (authorizer.name, token)
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            answer = cached[1]
        else:
            answer = self._call_authorizer(authorizer, token, method_arn)
            if authorizer.ttl > 0:
                with self._lock:
                    self._cache[key] = (now + authorizer.ttl, answer)
        try:
            decision = policy_decision(answer.get("policyDocument"), method_arn)
        except (ValueError, AttributeError, TypeError):
            raise GatewayError("AUTHORIZER_CONFIGURATION_ERROR") from None
        if decision == "deny":
            raise GatewayError("ACCESS_DENIED", EXPLICIT_DENY)
        if decision == "none":
            raise GatewayError("ACCESS_DENIED")
        return answer

    def _call_authorizer(
        self, authorizer: TokenAuthorizer, token: str, method_arn: str
    ) -> dict[str, Any]:
        handler = self.executor.functions.get(authorizer.function)
        if handler is None:
            raise GatewayError("AUTHORIZER_CONFIGURATION_ERROR")
        event = {"type": "TOKEN", "authorizationToken": token, "methodArn": method_arn}
        context = LocalContext(authorizer.function, self.executor.function_arn(authorizer.function))
        try:
            answer = handler(event, context)
        except Exception as exc:
            if str(exc) == "Unauthorized":
                raise GatewayError("UNAUTHORIZED") from None
            log.warning("authorizer %s failed: %s", authorizer.function, exc, exc_info=True)
            raise GatewayError("AUTHORIZER_FAILURE") from None
        if not isinstance(answer, dict) or "principalId" not in answer:
            raise GatewayError("AUTHORIZER_CONFIGURATION_ERROR")
        return answer

    # ------------------------------------------------------------------ requests

    def handle(
        self,
        method: str,
        target: str,
        header_items: list[tuple[str, str]],
        body: bytes | None,
        source_ip: str,
    ) -> Answer:
        request_id = str(uuid.uuid4())
        headers = {k.lower(): v for k, v in header_items}
        answer = self._handle(method, target, header_items, headers, body, source_ip, request_id)
        answer.headers.append(("x-amzn-RequestId", request_id))
        return answer

    def _handle(
        self,
        method: str,
        target: str,
        header_items: list[tuple[str, str]],
        headers: dict[str, str],
        body: bytes | None,
        source_ip: str,
        request_id: str,
    ) -> Answer:
        url = urlsplit(target)
        path = unquote(url.path) or "/"
        try:
            if body is None:
                raise GatewayError("REQUEST_TOO_LARGE")
            found = self.api.route_for(method, path)
            if found is None:
                raise GatewayError("MISSING_AUTHENTICATION_TOKEN")
            route, params = found
            auth: dict[str, Any] = {}
            if route.authorizer is not None:
                authorizer = self.api.authorizers[route.authorizer]
                answer = self.authorize(authorizer, headers, self.api.method_arn(method, path))
                auth = {"principalId": str(answer["principalId"])}
                for k, v in (answer.get("context") or {}).items():
                    auth[str(k)] = ("true" if v else "false") if isinstance(v, bool) else str(v)
        except GatewayError as exc:
            return self.gateway_response(exc.kind, exc.message, request_id, headers)
        event = self.proxy_event(
            route, params, method, path, url.query, header_items, body, source_ip, request_id, auth
        )
        return self._integrate(route, event)

    def proxy_event(
        self,
        route: Route,
        params: dict[str, str],
        method: str,
        path: str,
        query: str,
        header_items: list[tuple[str, str]],
        body: bytes,
        source_ip: str,
        request_id: str,
        authorizer: dict[str, Any],
    ) -> dict[str, Any]:
        """API Gateway's Lambda proxy event (payload format 1.0)."""
        single: dict[str, str] = {}
        multi: dict[str, list[str]] = {}
        for k, v in header_items:
            single[k] = v
            multi.setdefault(k, []).append(v)
        qs: dict[str, str] = {}
        mqs: dict[str, list[str]] = {}
        for k, v in parse_qsl(query, keep_blank_values=True):
            qs[k] = v
            mqs.setdefault(k, []).append(v)
        text: str | None = None
        encoded = False
        if body:
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                text, encoded = base64.b64encode(body).decode("ascii"), True
        now = datetime.now(UTC)
        lower = {k.lower(): v for k, v in header_items}
        return {
            "resource": route.path,
            "path": path,
            "httpMethod": method,
            "headers": single,
            "multiValueHeaders": multi,
            "queryStringParameters": qs or None,
            "multiValueQueryStringParameters": mqs or None,
            "pathParameters": params or None,
            "stageVariables": None,
            "requestContext": {
                "accountId": ACCOUNT_ID,
                "apiId": self.api.api_id,
                "stage": self.api.stage,
                "requestId": request_id,
                "extendedRequestId": request_id,
                "resourceId": hashlib.sha256(route.path.encode()).hexdigest()[:6],
                "resourcePath": route.path,
                "httpMethod": method,
                "path": f"/{self.api.stage}{path}",
                "protocol": "HTTP/1.1",
                "domainName": lower.get("host", "127.0.0.1"),
                "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
                "requestTimeEpoch": int(now.timestamp() * 1000),
                "identity": {"sourceIp": source_ip, "userAgent": lower.get("user-agent")},
                "authorizer": authorizer or None,
            },
            "body": text,
            "isBase64Encoded": encoded,
        }

    def _integrate(self, route: Route, event: dict[str, Any]) -> Answer:
        failed = Answer(
            502,
            [
                ("Content-Type", "application/json"),
                ("x-amzn-ErrorType", "InternalServerErrorException"),
            ],
            b'{"message": "Internal server error"}',
        )
        handler = self.executor.functions.get(route.function)
        if handler is None:
            return failed
        context = LocalContext(route.function, self.executor.function_arn(route.function))
        try:
            result = handler(event, context)
        except Exception:
            log.warning("function %s failed", route.function, exc_info=True)
            return failed
        try:
            return self._response(result)
        except (TypeError, ValueError, KeyError):
            log.warning("function %s: not a proxy response: %.200r", route.function, result)
            return failed

    @staticmethod
    def _response(result: Any) -> Answer:
        if not isinstance(result, dict):
            raise TypeError("not an object")
        status = result.get("statusCode")
        if isinstance(status, str) and status.isdigit():
            status = int(status)
        if not isinstance(status, int) or isinstance(status, bool):
            raise ValueError("statusCode is not a number")
        headers: list[tuple[str, str]] = []
        multi = result.get("multiValueHeaders") or {}
        for k, values in multi.items():
            headers.extend((str(k), str(v)) for v in values)
        for k, v in (result.get("headers") or {}).items():
            if k not in multi:
                headers.append((str(k), str(v)))
        body = result.get("body")
        if body is None:
            data = b""
        elif result.get("isBase64Encoded"):
            data = base64.b64decode(str(body))
        else:
            data = str(body).encode("utf-8")
        if not any(h.lower() == "content-type" for h, _ in headers):
            headers.append(("Content-Type", "application/json"))
        return Answer(status, headers, data)


# --------------------------------------------------------------------------- the server


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.client_address[0], *args)

    def _serve(self) -> None:
        length_text = self.headers.get("Content-Length")
        body: bytes | None
        try:
            length = int(length_text) if length_text else 0
        except ValueError:
            length = 0
        if length > MAX_BODY:
            body = None
            self.close_connection = True
            self._discard(length)
        elif self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = self._chunked()
        else:
            body = self.rfile.read(length) if length else b""
        items = [(k, v) for k, v in self.headers.items() if k.lower() != "transfer-encoding"]
        gateway = self.server.gateway
        assert gateway is not None  # set before the server starts
        answer = gateway.handle(self.command, self.path, items, body, self.client_address[0])
        self.send_response(answer.status)
        for name, value in answer.headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer.body)

    def _discard(self, length: int) -> None:
        """Read what the client sends (so it sees the answer), keeping none of it."""
        left = min(length, 8 * MAX_BODY)
        while left > 0:
            chunk = self.rfile.read(min(left, 1 << 20))
            if not chunk:
                return
            left -= len(chunk)

    def _chunked(self) -> bytes | None:
        data = bytearray()
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return bytes(data)
            if len(data) + size > MAX_BODY:
                self.close_connection = True
                return None
            data += self.rfile.read(size)
            self.rfile.readline()


for _method in _METHODS:
    setattr(_Handler, f"do_{_method}", _Handler._serve)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    #: Connections waiting to be accepted (the default, 5, resets bursts of clients).
    request_queue_size = 256
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], gateway: ApiGateway | None) -> None:
        self.gateway: ApiGateway | None = gateway
        super().__init__(address, _Handler)


class ApiServer:
    """The API on ``http://127.0.0.1:<port>`` (``port=0``: a free port), in a thread.

    The port is bound at once (``OSError`` when it is taken); the gateway may be given
    later, before ``start``."""

    def __init__(
        self, gateway: ApiGateway | None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self._server = _Server((host, port), gateway)
        self._thread: threading.Thread | None = None

    @property
    def gateway(self) -> ApiGateway | None:
        return self._server.gateway

    @gateway.setter
    def gateway(self, value: ApiGateway) -> None:
        self._server.gateway = value

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ApiServer:
        if self._server.gateway is None:
            raise LocalStackError("the API server has no gateway to serve")
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="loopline-api", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
