"""Credentials are removed from every message and log line (loopline.redact)."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from loopline.redact import (
    forget_secrets,
    is_sensitive,
    redact,
    redact_headers,
    redact_url,
    redact_value,
    remember_secret,
    remember_secrets,
)
from loopline.runtime.errors import StepError


@pytest.fixture(autouse=True)
def _no_remembered_secrets() -> Iterator[None]:
    forget_secrets()
    yield
    forget_secrets()


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        (
            "server said Authorization: Bearer sk-abc123def",
            "server said Authorization: Bearer ***",
        ),
        ("Proxy-Authorization: Basic dXNlcjpwYXNz", "Proxy-Authorization: Basic ***"),
        ("x-api-key: k-999999 and X-Auth-Token: t-1", "x-api-key: *** and X-Auth-Token: ***"),
        (
            '{"headers": {"authorization": "Bearer sk-1", "api-key": "k1", "accept": "json"}}',
            '{"headers": {"authorization": "Bearer ***", "api-key": "***", "accept": "json"}}',
        ),
        ('{\\"authorization\\": \\"Bearer sk-1\\"}', '{\\"authorization\\": \\"Bearer ***\\"}'),
        ("{'X-Api-Key': 'abcdefg'}", "{'X-Api-Key': '***'}"),
        ("password=hunter2 client_secret=cs-1", "password=*** client_secret=***"),
        (
            "GET https://user:pa55@api.example.com/v1?api_key=abc&page=2 failed",
            "GET https://***@api.example.com/v1?api_key=***&page=2 failed",
        ),
        (
            "https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIA%2F&X-Amz-Signature=deadbeef&x=1",
            "https://b.s3.amazonaws.com/k?X-Amz-Credential=***&X-Amz-Signature=***&x=1",
        ),
        ("?sig=abc&accessToken=xyz&sort=asc", "?sig=***&accessToken=***&sort=asc"),
        ("use a Bearer eyJhbGciOi.payload.sig here", "use a Bearer *** here"),
        # ordinary prose is left alone
        ("no such key: The specified key does not exist.", None),
        ("cannot read the secret my-secret: not found", None),
        ("monkey=1&keyword=2&max_tokens=50", None),
        ("unknown tool 'json_qeury' (did you mean 'json_query'?)", None),
        ("Basic usage: see the token budget", None),
    ],
)
def test_credentials_are_masked_and_prose_is_left_alone(text: str, redacted: str | None) -> None:
    assert redact(text) == (text if redacted is None else redacted)


def test_a_remembered_secret_is_masked_however_it_appears() -> None:
    remember_secret("sk-live-0123456789")
    assert redact("Incorrect API key provided: sk-live-0123456789.") == (
        "Incorrect API key provided: ***."
    )
    assert redact("key=sk-live-0123456789xyz") == "key=***"
    remember_secret("12345")  # too short to mask safely
    assert redact("step 12345") == "step 12345"


def test_the_credentials_of_a_request_are_remembered() -> None:
    remember_secrets(
        {"Authorization": "Bearer tok-abcdef", "X-Trace": "trace-123456"},
        "https://u:pw-987654@h/x?token=qt-5555555&q=visible",
    )
    text = "echo: tok-abcdef pw-987654 qt-5555555 trace-123456 visible"
    assert redact(text) == "echo: *** *** *** trace-123456 visible"


def test_a_urls_userinfo_is_remembered_with_the_basic_credentials_made_of_it() -> None:
    # httpx sends https://u:p@h as "Authorization: Basic base64(u:p)"; a server may echo
    # it in prose, where no header name marks it.
    remember_secrets(url="https://svc:pw%2F7d3e0b5a@h/v1")
    basic = base64.b64encode(b"svc:pw/7d3e0b5a").decode()
    text = f"bad credentials Basic {basic} ({basic.rstrip('=')}) for pw/7d3e0b5a, pw%2F7d3e0b5a"
    assert redact(text) == "bad credentials Basic *** (***) for ***, ***"
    # A token written as the user, with no password.
    remember_secrets(url="https://tok-51d0e3aa9c@h/v1")
    basic = base64.b64encode(b"tok-51d0e3aa9c:").decode()
    assert redact(f"Basic {basic} tok-51d0e3aa9c") == "Basic *** ***"


def test_urls_headers_and_values() -> None:
    assert (
        redact_url("https://u:p@h:8443/x?token=1&a=2#f") == "https://***@h:8443/x?token=***&a=2#f"
    )
    assert redact_headers({"Authorization": "x", "Accept": "y"}) == {
        "Authorization": "***",
        "Accept": "y",
    }
    value = {"api_key": "k", "nested": ["Bearer abcdef123"], "n": 1, "err": ValueError("token=t1")}
    assert redact_value(value) == {
        "api_key": "***",
        "nested": ["Bearer ***"],
        "n": 1,
        "err": "token=***",
    }


@pytest.mark.parametrize(
    ("name", "sensitive"),
    [
        ("Authorization", True),
        ("X-Api-Key", True),
        ("apiKey", True),
        ("access_token", True),
        ("X-Amz-Security-Token", True),
        ("Ocp-Apim-Subscription-Key", True),
        ("client_secret", True),
        ("Content-Type", False),
        ("monkey", False),
        ("keyword", False),
        ("max_tokens", False),
    ],
)
def test_which_names_carry_credentials(name: str, sensitive: bool) -> None:
    assert is_sensitive(name) is sensitive


def test_a_step_error_is_redacted_when_it_is_made() -> None:
    err = StepError("Loopline.HTTPError", "GET https://u:pw@h/?api_key=k1 returned 401")
    assert err.message == "GET https://***@h/?api_key=*** returned 401"
    assert "pw" not in str(err) and err.to_payload()["errorMessage"] == err.message
