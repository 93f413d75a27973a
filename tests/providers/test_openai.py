"""The OpenAI-compatible provider against a real Chat Completions server on 127.0.0.1:
what it sends, and how every kind of answer and failure ends."""

from __future__ import annotations

import base64
import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any

import boto3
import pytest
from loopline.runtime.actions import Env, dispatch, set_default_env
from loopline.runtime.errors import StepError
from loopline.runtime.lambda_entry import handle
from loopline.runtime.llm import lambda_context
from loopline.runtime.providers import provider_for, provider_name
from loopline.runtime.providers.openai import OpenAIModel, api_key_from, retry_after_seconds
from loopline.runtime.scripted import ScriptedModel
from loopline.settings import ConfigError, Settings
from moto import mock_aws

from tests.providers.chat_server import ChatServer
from tests.providers.conftest import LogCapture, SetEnv


def payload(config: dict[str, Any], action: str = "llm", **values: Any) -> dict[str, Any]:
    return {
        "action": action,
        "workflow": "wf",
        "step": "classify",
        "execution": "arn:exec",
        "attempt": 0,
        "config": config,
        "values": values,
    }


def openai_env(chat: ChatServer, **overrides: Any) -> Env:
    values: dict[str, Any] = {
        "llm_base_url": chat.base_url,
        "llm_model": "test-model",
        "llm_api_key": "sk-test",
        "llm_timeout": 0.5,
        **overrides,
    }
    return Env(model=OpenAIModel.from_settings(Settings(**values)))


def fails(p: dict[str, Any], env: Env) -> StepError:
    with pytest.raises(StepError) as err:
        dispatch(p, env)
    assert "Traceback" not in err.value.message
    return err.value


# --------------------------------------------------------------------------- answers


def test_a_plain_answer_with_the_providers_token_counts(chat: ChatServer) -> None:
    chat.answer("Tides rise twice a day.", prompt_tokens=21, completion_tokens=6)
    config = {
        "prompt": "Write about {{ inputs.topic }}",
        "system": "Be brief.",
        "temperature": 0.2,
        "max_tokens": 50,
    }
    out = dispatch(payload(config, inputs={"topic": "tides"}), openai_env(chat))
    assert out["output"] == "Tides rise twice a day."
    assert out["usage"] == {"input_tokens": 21, "output_tokens": 6, "turns": 1, "tool_calls": 0}
    (req,) = chat.requests
    assert req.path == "/v1/chat/completions"
    assert req.headers["authorization"] == "Bearer sk-test"
    assert req.body == {
        "model": "test-model",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Write about tides"},
        ],
        "temperature": 0.2,
        "max_tokens": 50,
    }


def test_the_steps_model_wins_over_the_default(chat: ChatServer) -> None:
    chat.answer("ok")
    dispatch(payload({"prompt": "p", "model": "big-model"}), openai_env(chat))
    assert chat.bodies[0]["model"] == "big-model"


def test_output_schema_is_sent_as_a_strict_json_schema_response_format(chat: ChatServer) -> None:
    schema = {
        "type": "object",
        "properties": {"severity": {"type": "integer", "maximum": 3}},
        "required": ["severity"],
        "additionalProperties": False,
    }
    chat.answer_json({"severity": 2})
    out = dispatch(payload({"prompt": "p", "output_schema": schema}), openai_env(chat))
    assert out["output"] == {"severity": 2}
    assert chat.bodies[0]["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "classify", "schema": schema, "strict": True},
    }
    assert "tools" not in chat.bodies[0]


def test_a_json_answer_breaking_the_schema_is_invalid_output_naming_the_rule(
    chat: ChatServer,
) -> None:
    schema = {"type": "object", "properties": {"severity": {"type": "integer", "maximum": 3}}}
    chat.answer_json({"severity": 5})
    err = fails(payload({"prompt": "p", "output_schema": schema}), openai_env(chat))
    assert err.name == "Loopline.InvalidOutput"
    assert "severity" in err.message and "maximum" in err.message


def test_a_vote_voter_reads_the_verdict(chat: ChatServer) -> None:
    chat.answer('{"refuted": true, "reason": "no source"}')
    p = payload({"rules": "Cite sources.", "voters": 3, "voter": 0}, "vote_voter")
    p["values"] = {"vars": {"item": "The moon is cheese."}}
    out = dispatch(p, openai_env(chat))
    assert out["output"] == {"refuted": True, "reason": "no source", "voter": 0}
    assert "voter 1 of 3" in chat.bodies[0]["messages"][0]["content"]


# --------------------------------------------------------------------------- rate limits


@pytest.fixture
def quick_retries(set_env: SetEnv) -> SetEnv:
    set_env(llm_max_retry_after=2)
    return set_env


def test_a_429_with_a_short_retry_after_is_waited_out_and_retried_once(
    chat: ChatServer, quick_retries: SetEnv
) -> None:
    chat.rate_limited("1").answer("after the wait")
    started = time.monotonic()
    out = dispatch(payload({"prompt": "p"}), openai_env(chat))
    assert out["output"] == "after the wait"
    assert time.monotonic() - started >= 1.0
    assert len(chat.requests) == 2


def test_a_second_429_after_the_wait_fails_rate_limited(
    chat: ChatServer, quick_retries: SetEnv
) -> None:
    chat.rate_limited("0").rate_limited("0").answer("never asked")
    err = fails(payload({"prompt": "p"}), openai_env(chat))
    assert err.name == "Loopline.LLMRateLimited"
    assert len(chat.requests) == 2


def test_a_429_asking_for_a_long_wait_fails_saying_how_long(
    chat: ChatServer, quick_retries: SetEnv
) -> None:
    chat.rate_limited("120").answer("never asked")
    err = fails(payload({"prompt": "p"}), openai_env(chat))
    assert err.name == "Loopline.LLMRateLimited"
    assert "asked to wait 120s" in err.message
    assert "LOOPLINE_LLM_MAX_RETRY_AFTER" in err.message
    assert len(chat.requests) == 1


def test_a_429_whose_wait_does_not_fit_the_remaining_time_is_not_waited(
    chat: ChatServer, quick_retries: SetEnv
) -> None:
    @dataclass
    class Context:
        def get_remaining_time_in_millis(self) -> int:
            return 3000

    chat.rate_limited("1").answer("never asked")
    with lambda_context(Context()):
        err = fails(payload({"prompt": "p"}), openai_env(chat))
    assert err.name == "Loopline.LLMRateLimited"
    assert "left in this invocation" in err.message
    assert len(chat.requests) == 1


def test_a_429_without_retry_after_fails_at_once(chat: ChatServer) -> None:
    chat.rate_limited(None)
    err = fails(payload({"prompt": "p"}), openai_env(chat))
    assert err.name == "Loopline.LLMRateLimited"
    assert "no Retry-After" in err.message


def test_retry_after_as_seconds_or_http_date() -> None:
    assert retry_after_seconds("7") == 7
    assert retry_after_seconds("1.5") == 1.5
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    now = time.time()
    assert 29 <= (retry_after_seconds(formatdate(now + 30, usegmt=True), now=now) or 0) <= 31


# --------------------------------------------------------------------------- failures


def test_a_500_is_transient(chat: ChatServer) -> None:
    chat.error(500, "upstream exploded")
    err = fails(payload({"prompt": "p"}), openai_env(chat))
    assert err.name == "Loopline.Transient"
    assert "500" in err.message and "upstream exploded" in err.message


def test_a_server_that_never_answers_is_transient_after_the_timeout(chat: ChatServer) -> None:
    chat.hang()
    started = time.monotonic()
    err = fails(payload({"prompt": "p"}), openai_env(chat, llm_timeout=0.3))
    assert err.name == "Loopline.Transient"
    assert "did not answer within 0.3s" in err.message
    assert time.monotonic() - started < 5


def test_a_malformed_body_is_transient(chat: ChatServer) -> None:
    chat.malformed()
    err = fails(payload({"prompt": "p"}), openai_env(chat))
    assert err.name == "Loopline.Transient"
    assert "malformed" in err.message


def test_a_json_body_that_is_no_completion_is_transient(chat: ChatServer) -> None:
    chat.malformed(b'{"choices": []}')
    assert fails(payload({"prompt": "p"}), openai_env(chat)).name == "Loopline.Transient"


@pytest.mark.parametrize("status", [400, 401, 404])
def test_other_4xx_are_llm_errors_with_the_providers_message(chat: ChatServer, status: int) -> None:
    chat.error(status, "model 'test-model' does not exist")
    err = fails(payload({"prompt": "p"}), openai_env(chat))
    assert err.name == "Loopline.LLMError"
    assert f"status {status}" in err.message
    assert "model 'test-model' does not exist" in err.message


def test_a_refused_connection_is_transient() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    model = OpenAIModel(base_url=f"http://127.0.0.1:{port}/v1", default_model="m", timeout=1)
    err = fails(payload({"prompt": "p"}), Env(model=model))
    assert err.name == "Loopline.Transient"
    assert "could not be reached" in err.message


def test_no_model_named_anywhere_is_an_llm_error(chat: ChatServer) -> None:
    err = fails(payload({"prompt": "p"}), openai_env(chat, llm_model=None))
    assert err.name == "Loopline.LLMError"
    assert "LOOPLINE_LLM_MODEL" in err.message
    assert chat.requests == []


def test_no_api_key_sends_no_authorization(chat: ChatServer) -> None:
    chat.answer("ok")
    dispatch(payload({"prompt": "p"}), openai_env(chat, llm_api_key=None))
    assert "authorization" not in chat.requests[0].headers


# --------------------------------------------------------------------------- API keys


def test_the_api_key_comes_from_secrets_manager_or_ssm() -> None:
    with mock_aws():
        boto3.client("secretsmanager").create_secret(Name="llm-key-a", SecretString="sk-secret")
        boto3.client("secretsmanager").create_secret(
            Name="llm-key-b", SecretString=json.dumps({"api_key": "sk-json"})
        )
        boto3.client("ssm").put_parameter(Name="/llm/key", Value="sk-ssm", Type="SecureString")
        assert api_key_from(Settings(llm_api_key_secret="llm-key-a")) == "sk-secret"
        assert api_key_from(Settings(llm_api_key_secret="llm-key-b")) == "sk-json"
        assert api_key_from(Settings(llm_api_key_parameter="/llm/key")) == "sk-ssm"
        assert api_key_from(Settings(llm_api_key="sk-direct", llm_api_key_secret="x")) == (
            "sk-direct"
        )
        with pytest.raises(StepError) as err:
            api_key_from(Settings(llm_api_key_secret="no-such-secret"))
        assert err.value.name == "Loopline.LLMError"
        assert "no-such-secret" in err.value.message


def test_a_key_from_secrets_manager_is_sent_as_bearer(chat: ChatServer) -> None:
    chat.answer("ok")
    with mock_aws():
        boto3.client("secretsmanager").create_secret(Name="llm-key-c", SecretString="sk-c")
        settings = Settings(
            llm_base_url=chat.base_url, llm_model="m", llm_api_key_secret="llm-key-c"
        )
        dispatch(payload({"prompt": "p"}), Env(model=provider_for(settings)))
    assert chat.requests[0].headers["authorization"] == "Bearer sk-c"


# --------------------------------------------------------------------------- choosing


@pytest.mark.parametrize(
    ("values", "name", "cls"),
    [
        ({}, "", type(None)),
        ({"llm_base_url": "http://127.0.0.1:1/v1"}, "openai", OpenAIModel),
        ({"llm_model": "anthropic.claude"}, "bedrock", None),
        ({"llm_base_url": "http://x", "llm_provider": "bedrock"}, "bedrock", None),
        ({"llm_provider": "openai"}, "openai", OpenAIModel),
    ],
)
def test_provider_for_follows_the_settings(
    values: dict[str, Any], name: str, cls: type | None
) -> None:
    settings = Settings(**values)
    assert provider_name(settings) == name
    model = provider_for(settings)
    if cls is None:
        from loopline.runtime.providers.bedrock import BedrockModel

        cls = BedrockModel
    assert isinstance(model, cls)


def test_a_script_setting_picks_the_scripted_model(tmp_path: Any) -> None:
    script = tmp_path / "s.yaml"
    script.write_text("responses:\n  - answer: scripted\n")
    settings = Settings(llm_script=str(script), llm_base_url="http://x")
    assert isinstance(provider_for(settings), ScriptedModel)


def test_settings_that_name_a_provider_that_cannot_work_are_a_config_error(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError) as err:
        provider_for(Settings(llm_provider="scripted"))
    assert str(err.value) == (
        "LOOPLINE_LLM_PROVIDER is scripted, but LOOPLINE_LLM_SCRIPT names no script"
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text("responses: 3\n")
    with pytest.raises(ConfigError, match="LOOPLINE_LLM_SCRIPT names an invalid model script"):
        provider_for(Settings(llm_script=str(bad)))
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    with pytest.raises(ConfigError) as err:
        provider_for(Settings(llm_model="amazon.nova-lite-v1:0"))
    assert str(err.value) == (
        "LOOPLINE_LLM_MODEL is set without LOOPLINE_LLM_BASE_URL, which means Amazon Bedrock, "
        "and Bedrock needs an AWS region: set LOOPLINE_BEDROCK_REGION (or AWS_REGION / "
        "AWS_DEFAULT_REGION), or set LOOPLINE_LLM_BASE_URL to use an OpenAI-compatible API"
    )
    with pytest.raises(ConfigError, match=r"^LOOPLINE_LLM_PROVIDER is bedrock, and Bedrock needs"):
        provider_for(Settings(llm_provider="bedrock"))
    model = provider_for(Settings(llm_model="m", bedrock_region="eu-west-1"))
    assert getattr(model, "region", None) == "eu-west-1"
    monkeypatch.setenv("AWS_REGION", "ap-south-1")
    assert getattr(provider_for(Settings(llm_model="m")), "region", None) == "ap-south-1"


def test_env_from_environ_uses_the_settings(chat: ChatServer, set_env: SetEnv) -> None:
    set_env(llm_base_url=chat.base_url, llm_model="env-model")
    chat.answer("from env")
    env = Env.from_environ()
    assert dispatch(payload({"prompt": "p"}), env)["output"] == "from env"
    assert chat.bodies[0]["model"] == "env-model"


# --------------------------------------------------------------------------- secrets


@pytest.fixture
def lambda_env() -> Iterator[None]:
    """Handlers build their Env from the settings again (``default_env``)."""
    previous = set_default_env(None)
    try:
        yield
    finally:
        set_default_env(previous)


def test_an_api_key_the_provider_echoes_is_in_no_cause_and_no_log_line(
    chat: ChatServer, set_env: SetEnv, lambda_env: None, log_lines: LogCapture
) -> None:
    key = "sk-live-5f1c9a77e2b04d18"
    set_env(llm_base_url=chat.base_url, llm_model="m", llm_api_key=key)
    chat.echo_headers(401)
    with pytest.raises(Exception) as info:
        handle(payload({"prompt": "p"}))
    assert chat.requests[0].headers["authorization"] == f"Bearer {key}"  # it was sent
    assert type(info.value).__name__ == "Loopline.LLMError"
    cause = str(info.value)
    assert "Incorrect API key provided: *** (Authorization: Bearer ***)" in cause
    assert "step failed" in log_lines.text and "Incorrect API key" in log_lines.text
    for text in (cause, log_lines.text):
        assert key not in text
        assert key[3:] not in text  # not even the key without its prefix


def test_a_key_in_the_base_urls_userinfo_the_provider_echoes_is_in_no_cause_and_no_log_line(
    chat: ChatServer, set_env: SetEnv, lambda_env: None, log_lines: LogCapture
) -> None:
    secret = "uk-2b8f4c61d09e"
    set_env(llm_base_url=chat.base_url.replace("http://", f"http://apikey:{secret}@"))
    set_env(llm_model="m")
    chat.echo_headers(401)
    with pytest.raises(Exception) as info:
        handle(payload({"prompt": "p"}))
    basic = base64.b64encode(f"apikey:{secret}".encode()).decode()
    assert chat.requests[0].headers["authorization"] == f"Basic {basic}"  # what was sent
    cause = str(info.value)
    assert "Incorrect API key provided: Basic *** (Authorization: Basic ***)" in cause
    assert "step failed" in log_lines.text and "Incorrect API key" in log_lines.text
    for text in (cause, log_lines.text):
        assert secret not in text and basic.rstrip("=") not in text


def test_a_key_in_the_base_urls_userinfo_is_in_no_cause_and_no_log_line(
    chat: ChatServer, set_env: SetEnv, lambda_env: None, log_lines: LogCapture
) -> None:
    secret = "uk-7d3e0b5a91c2"
    base = chat.base_url.replace("http://", f"http://apikey:{secret}@")
    set_env(llm_base_url=base, llm_model="m")
    chat.error(500, "upstream exploded")
    with pytest.raises(Exception) as info:
        handle(payload({"prompt": "p"}))
    assert type(info.value).__name__ == "Loopline.Transient"
    cause = str(info.value)
    assert "at http://***@127.0.0.1:" in cause and "upstream exploded" in cause
    assert secret not in cause and secret not in log_lines.text
    assert "step failed" in log_lines.text
