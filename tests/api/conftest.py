"""The API function on the local stack made from template.yaml, driven by API Gateway
REST proxy events (v1) as API Gateway sends them, with the authorizer's context.

``api`` (module-scoped) provisions the stack in moto once: executions of the state
machines the API creates really run there. Each test takes its own tenant (``caller``),
so tests share the stack without seeing each other's things.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from loopline import aws
from loopline.local.executor import ROLE_ARN, LocalExecutor, load_handler
from loopline.local.template import LocalStack
from loopline.settings import settings

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
#: Set in the shell before provisioning (the shell's value wins over the template's).
ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "LOOPLINE_STATE_MACHINE_ROLE_ARN": ROLE_ARN,
    "LOOPLINE_WEBHOOK_ALLOW_HOSTS": "hooks.allowed.test",
}

GREET = """\
name: greet
version: 1.2.0
description: Say hello.
inputs:
  who: {type: string, required: true, min_length: 2}
  times: {type: integer, default: 1}
  tone: {type: enum, values: [warm, dry], default: warm}
steps:
  - id: hello
    tool: render
    args: {template: "hello {{ inputs.who }}"}
output:
  text: "{{ steps.hello.output }}"
"""

HOLD = """\
name: hold
description: Waits for a person to resume it.
steps:
  - id: first
    tool: now
  - id: stop
    pause: Resume when ready.
"""


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    text: str
    body: Any = field(default=None)


def proxy_event(
    method: str,
    path: str,
    *,
    body: str | None = None,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    authorizer: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An API Gateway REST API proxy event (payload format 1.0) for ``/{proxy+}``."""
    headers = dict(headers or {})
    context: dict[str, Any] = {
        "resourcePath": "/{proxy+}",
        "httpMethod": method,
        "path": f"/dev{path}",
        "stage": "dev",
        "requestId": str(uuid.uuid4()),
        "accountId": "123456789012",
        "apiId": "localapi",
        "protocol": "HTTP/1.1",
        "identity": {"sourceIp": "127.0.0.1", "userAgent": "tests"},
    }
    if authorizer is not None:
        context["authorizer"] = authorizer
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": headers or None,
        "multiValueHeaders": {k: [v] for k, v in headers.items()} or None,
        "queryStringParameters": query or None,
        "multiValueQueryStringParameters": {k: [v] for k, v in (query or {}).items()} or None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": context,
        "body": body,
        "isBase64Encoded": False,
    }


class Api:
    """Calls the real handler of functions/api/app.py."""

    def __init__(self, handler: Any) -> None:
        self.handler = handler

    def call(
        self,
        method: str,
        path: str,
        json_body: Any = None,
        *,
        tenant: str | None,
        raw: str | None = None,
        headers: dict[str, str] | None = None,
        query: dict[str, Any] | None = None,
    ) -> Reply:
        headers = dict(headers or {})
        body = raw
        if json_body is not None:
            body = json.dumps(json_body)
            headers.setdefault("Content-Type", "application/json")
        authorizer = (
            None
            if tenant is None
            else {
                "principalId": f"key_{tenant}",
                "tenant": tenant,
                "user": "ada",
                "roles": "admin,ops",
                "key_id": f"key_{tenant}",
            }
        )
        event = proxy_event(
            method,
            path,
            body=body,
            headers=headers,
            query={k: str(v) for k, v in (query or {}).items()},
            authorizer=authorizer,
        )
        from loopline.local.executor import LocalContext

        out = self.handler(event, LocalContext("api", "arn:aws:lambda:us-east-1:1:function:api"))
        found = {k: v for k, v in (out.get("headers") or {}).items()}
        for k, values in (out.get("multiValueHeaders") or {}).items():
            found[k] = ", ".join(values)
        reply = Reply(out["statusCode"], found, out.get("body") or "")
        if reply.text:
            try:
                reply.body = json.loads(reply.text)
            except ValueError:
                reply.body = None
        return reply


@dataclass
class Caller:
    """One tenant's view of the API."""

    api: Api
    tenant: str

    def __call__(self, method: str, path: str, json_body: Any = None, **kw: Any) -> Reply:
        return self.api.call(method, path, json_body, tenant=self.tenant, **kw)

    def register(self, text: str, name: str | None = None) -> Reply:
        import yaml

        name = name or yaml.safe_load(text)["name"]
        return self(
            "PUT", f"/v1/workflows/{name}", raw=text, headers={"Content-Type": "application/yaml"}
        )


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[LocalStack, LocalExecutor, Api]]:
    saved = {k: os.environ.get(k) for k in ENVIRONMENT}
    os.environ.update(ENVIRONMENT)
    settings.cache_clear()
    aws.reset()
    local = LocalStack.load(TEMPLATE)
    try:
        with LocalExecutor(loopline_functions=False) as ex:
            try:
                local.provision(ex)
                aws.reset()
                handler = load_handler(ROOT / "functions" / "api", "app.handler")
                yield local, ex, Api(handler)
            finally:
                local.restore_environment()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        settings.cache_clear()
        aws.reset()


@pytest.fixture
def api(stack: tuple[LocalStack, LocalExecutor, Api]) -> Api:
    return stack[2]


@pytest.fixture
def executor(stack: tuple[LocalStack, LocalExecutor, Api]) -> LocalExecutor:
    return stack[1]


@pytest.fixture
def caller(api: Api) -> Caller:
    return Caller(api, f"t{uuid.uuid4().hex[:10]}")


@pytest.fixture
def other(api: Api) -> Caller:
    return Caller(api, f"o{uuid.uuid4().hex[:10]}")
