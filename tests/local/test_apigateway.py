"""The template's REST API served on 127.0.0.1 as API Gateway serves it
(loopline.local.apigateway), over real HTTP, with tests/local/template.yaml."""

from __future__ import annotations

import base64
import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from loopline.local.apigateway import ApiGateway, ApiServer, api_definition
from loopline.local.executor import LocalExecutor
from loopline.local.template import LocalStack

TEMPLATE = Path(__file__).parent / "template.yaml"


class Client:
    def __init__(self, port: int, auth_log: Path) -> None:
        self.port = port
        self.auth_log = auth_log

    def request(
        self,
        method: str,
        path: str,
        *,
        key: str | None = "good",
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        sent = dict(headers or {})
        if key is not None:
            sent["Authorization"] = f"Bearer {key}"
        conn.request(method, path, body=body, headers=sent)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        return resp.status, resp.headers, data

    def json(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        status, _, data = self.request(method, path, **kwargs)
        return status, json.loads(data)

    def authorizer_calls(self) -> list[str]:
        return self.auth_log.read_text().splitlines() if self.auth_log.exists() else []


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Client]:
    auth_log = tmp_path / "auth.log"
    monkeypatch.setenv("FIXTURE_AUTH_LOG", str(auth_log))
    stack = LocalStack.load(TEMPLATE)
    with LocalExecutor(loopline_functions=False) as ex:
        stack.provision(ex)
        server = ApiServer(ApiGateway(api_definition(stack), ex)).start()
        try:
            yield Client(server.port, auth_log)
        finally:
            server.stop()
            stack.restore_environment()


def test_a_request_reaches_the_function_as_a_v1_proxy_event(api: Client) -> None:
    status, answer = api.json(
        "POST",
        "/v1/tasks?limit=5&tag=a&tag=b",
        body=b'{"x": 1}',
        headers={"X-Trace": "t1", "User-Agent": "tests/1"},
    )

    assert status == 200
    event = answer["event"]
    assert answer["function"] == "loopline-local-ApiFunction"
    assert event["resource"] == "/{proxy+}"
    assert event["path"] == "/v1/tasks"
    assert event["httpMethod"] == "POST"
    assert event["headers"]["X-Trace"] == "t1"
    assert event["multiValueHeaders"]["X-Trace"] == ["t1"]
    assert event["queryStringParameters"] == {"limit": "5", "tag": "b"}
    assert event["multiValueQueryStringParameters"] == {"limit": ["5"], "tag": ["a", "b"]}
    assert event["pathParameters"] == {"proxy": "v1/tasks"}
    assert event["stageVariables"] is None
    assert event["body"] == '{"x": 1}'
    assert event["isBase64Encoded"] is False
    ctx = event["requestContext"]
    assert ctx["stage"] == "v9"
    assert ctx["resourcePath"] == "/{proxy+}"
    assert ctx["httpMethod"] == "POST"
    assert ctx["path"] == "/v9/v1/tasks"
    assert ctx["accountId"] == "123456789012"
    assert len(ctx["apiId"]) == 10
    assert ctx["requestId"]
    assert ctx["identity"] == {"sourceIp": "127.0.0.1", "userAgent": "tests/1"}
    # The authorizer's principal and context, values as strings (as API Gateway passes them).
    assert ctx["authorizer"] == {
        "principalId": "key_1",
        "tenant": "acme",
        "roles": "a,b",
        "count": "2",
        "admin": "true",
    }


def test_the_most_specific_route_wins(api: Client) -> None:
    status, answer = api.json("GET", "/v1/things/t-1")
    assert status == 200
    assert answer["event"]["resource"] == "/v1/things/{id}"
    assert answer["event"]["pathParameters"] == {"id": "t-1"}
    # The same path with another method falls to the greedy route.
    _, answer = api.json("DELETE", "/v1/things/t-1")
    assert answer["event"]["resource"] == "/{proxy+}"


def test_a_route_without_authorization_is_served_without_a_key(api: Client) -> None:
    status, answer = api.json("GET", "/v1/openapi.json", key=None)

    assert status == 200
    assert answer["event"]["resource"] == "/v1/openapi.json"
    assert answer["event"]["requestContext"]["authorizer"] is None
    assert api.authorizer_calls() == []


def test_no_key_is_401_from_the_template_without_calling_the_authorizer(api: Client) -> None:
    status, headers, data = api.request("GET", "/v1/tasks", key=None)

    assert status == 401
    assert headers["WWW-Authenticate"] == "Bearer"
    assert headers["Content-Type"] == "application/problem+json"
    body = json.loads(data)
    assert body["title"] == "Unauthorized" and body["detail"] == "Unauthorized"
    assert body["request"] == headers["x-amzn-RequestId"]
    assert api.authorizer_calls() == []


def test_an_unknown_key_is_401(api: Client) -> None:
    status, headers, data = api.request("GET", "/v1/tasks", key="stranger")

    assert status == 401
    assert headers["WWW-Authenticate"] == "Bearer"
    assert json.loads(data)["status"] == 401
    assert api.authorizer_calls() == ["Bearer stranger"]


def test_a_deny_policy_is_403_access_denied(api: Client) -> None:
    status, headers, data = api.request("GET", "/v1/tasks", key="deny")

    assert status == 403
    # No ACCESS_DENIED in the template: its DEFAULT_4XX.
    assert headers["Content-Type"] == "application/problem+json"
    assert json.loads(data) == {
        "title": "User is not authorized to access this resource with an explicit deny",
        "kind": "ACCESS_DENIED",
    }


def test_a_policy_not_covering_the_method_is_403(api: Client) -> None:
    assert api.request("GET", "/v1/things/a", key="narrow")[0] == 200
    status, _, data = api.request("POST", "/v1/things/a", key="narrow")
    assert status == 403
    assert json.loads(data)["title"] == "User is not authorized to access this resource"


def test_an_authorizer_error_is_500_with_api_gateways_default_body(api: Client) -> None:
    status, headers, data = api.request("GET", "/v1/tasks", key="boom")

    assert status == 500
    assert json.loads(data) == {"message": None}
    assert headers["x-amzn-ErrorType"] == "AuthorizerFailureException"


def test_a_malformed_authorizer_answer_is_500(api: Client) -> None:
    assert api.request("GET", "/v1/tasks", key="odd")[0] == 500


def test_the_authorizers_answer_is_cached_per_token(api: Client) -> None:
    for path in ("/v1/tasks", "/v1/tasks/1", "/v1/workflows"):
        assert api.request("GET", path)[0] == 200
    assert api.request("GET", "/v1/tasks", key="deny")[0] == 403
    assert api.request("GET", "/v1/tasks", key="deny")[0] == 403

    assert api.authorizer_calls() == ["Bearer good", "Bearer deny"]


def test_a_path_no_route_takes_is_403_missing_authentication_token(api: Client) -> None:
    status, _, data = api.request("GET", "/", key=None)

    assert status == 403
    assert json.loads(data) == {
        "title": "Missing Authentication Token",
        "kind": "MISSING_AUTHENTICATION_TOKEN",
    }


def test_a_body_over_10_mb_is_413_before_anything_runs(api: Client) -> None:
    status, _, data = api.request("POST", "/v1/tasks", body=b"x" * (10 * 1024 * 1024 + 1))

    assert status == 413
    assert json.loads(data)["kind"] == "REQUEST_TOO_LARGE"
    assert api.authorizer_calls() == []


def test_a_function_error_is_502_internal_server_error(api: Client) -> None:
    for path in ("/v1/boom", "/v1/not-a-response"):
        status, _, data = api.request("GET", path)
        assert status == 502
        assert json.loads(data) == {"message": "Internal server error"}


def test_base64_bodies_are_decoded_both_ways(api: Client) -> None:
    status, headers, data = api.request("GET", "/v1/binary")
    assert status == 200
    assert headers["Content-Type"] == "application/octet-stream"
    assert data == b"\x00\x01\xfe\xff"

    _, answer = api.json("POST", "/v1/upload", body=b"\xff\xfe\x00")
    assert answer["event"]["isBase64Encoded"] is True
    assert base64.b64decode(answer["event"]["body"]) == b"\xff\xfe\x00"


def test_multi_value_headers_reach_the_client(api: Client) -> None:
    status, headers, _ = api.request("GET", "/v1/cookies")

    assert status == 201
    assert headers.get_all("Set-Cookie") == ["a=1", "b=2"]
    assert headers["X-One"] == "1"
