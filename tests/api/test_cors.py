"""CORS is off unless the stack names one origin (``CorsOrigin`` → ``LOOPLINE_CORS_ORIGIN``):
then the API function's own answers carry the headers for that origin."""

from __future__ import annotations

import json

import pytest
from loopline.api import app as api
from loopline.settings import settings


def _openapi() -> dict:
    event = {
        "resource": "/v1/openapi.json",
        "path": "/v1/openapi.json",
        "httpMethod": "GET",
        "headers": {"Origin": "https://app.example.com"},
        "multiValueHeaders": {"Origin": ["https://app.example.com"]},
        "queryStringParameters": None,
        "requestContext": {"resourcePath": "/v1/openapi.json", "httpMethod": "GET"},
        "body": None,
        "isBase64Encoded": False,
    }
    return api.build().resolve(event, None)


@pytest.fixture(autouse=True)
def _fresh_settings():
    settings.cache_clear()
    yield
    settings.cache_clear()


def test_without_an_origin_no_answer_carries_cors_headers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOOPLINE_CORS_ORIGIN", raising=False)
    answer = _openapi()
    headers = {
        k.lower() for k in {**answer.get("headers", {}), **answer.get("multiValueHeaders", {})}
    }
    assert answer["statusCode"] == 200
    assert "access-control-allow-origin" not in headers


def test_with_an_origin_the_answers_allow_exactly_that_origin(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LOOPLINE_CORS_ORIGIN", "https://app.example.com")
    answer = _openapi()
    headers = {
        k.lower(): v
        for k, v in {**answer.get("multiValueHeaders", {}), **answer.get("headers", {})}.items()
    }
    assert answer["statusCode"] == 200
    allowed = headers["access-control-allow-origin"]
    assert allowed in ("https://app.example.com", ["https://app.example.com"])
    assert json.loads(answer["body"])["openapi"].startswith("3.")
