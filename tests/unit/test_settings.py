"""Every setting is checked where it is parsed: a mistake names its variable and what it
needs, every mistake at once, never a pydantic traceback."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from loopline.redact import redact
from loopline.settings import ConfigError, Settings, settings


@pytest.fixture(autouse=True)
def _fresh_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    import os

    for key in list(os.environ):
        if key.startswith("LOOPLINE_"):
            monkeypatch.delenv(key)
    settings.cache_clear()
    yield
    settings.cache_clear()


def problem_of(variable: str, value: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as err:
        settings()
    return str(err.value)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "LOOPLINE_LLM_PROVIDER",
            "anthropic",
            'LOOPLINE_LLM_PROVIDER must be openai, bedrock or scripted (or unset), got "anthropic"',
        ),
        (
            "LOOPLINE_LLM_BASE_URL",
            "api.openai.com/v1",
            "LOOPLINE_LLM_BASE_URL must be an http:// or https:// URL with a host, got "
            '"api.openai.com/v1"',
        ),
        (
            "LOOPLINE_LLM_BASE_URL",
            "ftp://files.example.com",
            "LOOPLINE_LLM_BASE_URL must be an http:// or https:// URL with a host, got "
            '"ftp://files.example.com"',
        ),
        (
            "LOOPLINE_LLM_BASE_URL",
            "http://localhost:99999/v1",
            "LOOPLINE_LLM_BASE_URL must be an http:// or https:// URL with a host, got "
            '"http://localhost:99999/v1"',
        ),
        (
            "LOOPLINE_LLM_MODEL",
            "gpt 4o",
            'LOOPLINE_LLM_MODEL must be one name without spaces, got "gpt 4o"',
        ),
        (
            "LOOPLINE_LLM_API_KEY",
            "sk-abc def",
            "LOOPLINE_LLM_API_KEY must be the API key alone: printable ASCII without spaces or "
            "line breaks",
        ),
        (
            "LOOPLINE_LLM_API_KEY_SECRET",
            "my secret",
            'LOOPLINE_LLM_API_KEY_SECRET must be one name without spaces, got "my secret"',
        ),
        (
            "LOOPLINE_LLM_API_KEY_PARAMETER",
            "/llm/key\tx",
            'LOOPLINE_LLM_API_KEY_PARAMETER must be one name without spaces, got "/llm/key\\tx"',
        ),
        (
            "LOOPLINE_LLM_TIMEOUT",
            "soon",
            "LOOPLINE_LLM_TIMEOUT must be a number of seconds greater than 0 and at most 900, "
            'got "soon"',
        ),
        (
            "LOOPLINE_LLM_TIMEOUT",
            "0",
            "LOOPLINE_LLM_TIMEOUT must be a number of seconds greater than 0 and at most 900, "
            'got "0"',
        ),
        (
            "LOOPLINE_LLM_TIMEOUT",
            "nan",
            "LOOPLINE_LLM_TIMEOUT must be a number of seconds greater than 0 and at most 900, "
            'got "nan"',
        ),
        (
            "LOOPLINE_LLM_MAX_RETRY_AFTER",
            "-1",
            "LOOPLINE_LLM_MAX_RETRY_AFTER must be a number of seconds at least 0 and at most "
            '900, got "-1"',
        ),
        (
            "LOOPLINE_LLM_SCRIPT",
            "my script.yaml",
            'LOOPLINE_LLM_SCRIPT must be one name without spaces, got "my script.yaml"',
        ),
        (
            "LOOPLINE_BEDROCK_REGION",
            "Virginia",
            'LOOPLINE_BEDROCK_REGION must be an AWS region such as us-east-1, got "Virginia"',
        ),
        (
            "LOOPLINE_TOOL_MODULES",
            "my_tools, my-tools",
            "LOOPLINE_TOOL_MODULES must be Python module names separated by commas (my_tools, "
            'pkg.tools), got "my-tools"',
        ),
        (
            "LOOPLINE_TOOL_MODULES",
            "pkg.class",
            "LOOPLINE_TOOL_MODULES must be Python module names separated by commas (my_tools, "
            'pkg.tools), got "pkg.class"',
        ),
        (
            "LOOPLINE_HTTP_ALLOW_HOSTS",
            "api.example.com, https://internal.example.com/",
            "LOOPLINE_HTTP_ALLOW_HOSTS must be host names, addresses or *.domain entries "
            'separated by commas, got "https://internal.example.com/": not a host name or '
            "address (no scheme, port or path)",
        ),
        (
            "LOOPLINE_HTTP_ALLOW_HOSTS",
            "internal.example.com:8080",
            "LOOPLINE_HTTP_ALLOW_HOSTS must be host names, addresses or *.domain entries "
            'separated by commas, got "internal.example.com:8080": not a host name or address '
            "(no scheme, port or path)",
        ),
        (
            "LOOPLINE_HTTP_MAX_BYTES",
            "10MB",
            "LOOPLINE_HTTP_MAX_BYTES must be a whole number of bytes at least 1 and at most "
            '1073741824, got "10MB"',
        ),
        (
            "LOOPLINE_S3_ALLOW",
            "Shared_Bucket/reports",
            "LOOPLINE_S3_ALLOW must be bucket or bucket/prefix entries separated by commas; "
            "'Shared_Bucket/reports' does not start with a bucket name",
        ),
        (
            "LOOPLINE_S3_ALLOW",
            "shared-bucket/../secrets",
            "LOOPLINE_S3_ALLOW must be bucket or bucket/prefix entries separated by commas; the "
            "prefix of 'shared-bucket/../secrets' is not usable: the key has a '..' segment",
        ),
        (
            "LOOPLINE_BUCKET",
            "My_Bucket",
            "LOOPLINE_BUCKET must be an S3 bucket name (3 to 63 lower-case letters, digits, dots "
            'and hyphens, starting and ending with a letter or digit), got "My_Bucket"',
        ),
        (
            "LOOPLINE_LARGE_VALUE_BYTES",
            "300000",
            "LOOPLINE_LARGE_VALUE_BYTES must be a whole number of bytes at least 1 and at most "
            '262144, got "300000"',
        ),
        (
            "LOOPLINE_LARGE_VALUE_BYTES",
            "1.5",
            "LOOPLINE_LARGE_VALUE_BYTES must be a whole number of bytes at least 1 and at most "
            '262144, got "1.5"',
        ),
        (
            "LOOPLINE_STAGE",
            "dev stage",
            "LOOPLINE_STAGE must be a stage name (letters, digits and hyphens, such as dev), "
            'got "dev stage"',
        ),
        (
            "LOOPLINE_TABLE",
            "t",
            "LOOPLINE_TABLE must be a DynamoDB table name (3 to 255 letters, digits, _ . -), "
            'got "t"',
        ),
        (
            "LOOPLINE_APPROVAL_TOPIC_ARN",
            "approvals",
            "LOOPLINE_APPROVAL_TOPIC_ARN must be an ARN (arn:partition:service:region:account:"
            'resource), got "approvals"',
        ),
        (
            "LOOPLINE_WEBHOOK_QUEUE_URL",
            "sqs/webhooks",
            "LOOPLINE_WEBHOOK_QUEUE_URL must be an http:// or https:// URL with a host, got "
            '"sqs/webhooks"',
        ),
        (
            "LOOPLINE_STATE_MACHINE_ROLE_ARN",
            "role/StateMachineRole",
            "LOOPLINE_STATE_MACHINE_ROLE_ARN must be an ARN (arn:partition:service:region:"
            'account:resource), got "role/StateMachineRole"',
        ),
        (
            "LOOPLINE_STATE_MACHINE_PREFIX",
            "my stack-",
            "LOOPLINE_STATE_MACHINE_PREFIX must be at most 70 letters, digits, _ and - (a state "
            'machine name prefix), got "my stack-"',
        ),
        (
            "LOOPLINE_FUNCTION_ARNS",
            "{LlmFunctionArn: arn}",
            "LOOPLINE_FUNCTION_ARNS must be a JSON object of placeholder names to function ARNs "
            '({"LlmFunctionArn": "arn:aws:lambda:…"}), but it is not JSON (Expecting property '
            "name enclosed in double quotes at column 2)",
        ),
        (
            "LOOPLINE_FUNCTION_ARNS",
            '["arn:aws:lambda:us-east-1:1:function:f"]',
            "LOOPLINE_FUNCTION_ARNS must be a JSON object of placeholder names to function ARNs "
            '({"LlmFunctionArn": "arn:aws:lambda:…"}), got "[\\"arn:aws:lambda:us-east-1:1:'
            'function:f\\"]"',
        ),
    ],
)
def test_each_setting_names_itself_and_what_it_needs(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    assert problem_of(variable, value, monkeypatch) == message


def test_every_mistake_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPLINE_LLM_TIMEOUT", "-3")
    monkeypatch.setenv("LOOPLINE_BUCKET", "B")
    with pytest.raises(ConfigError) as err:
        settings()
    assert [p.split(" ", 1)[0] for p in err.value.problems] == [
        "LOOPLINE_LLM_TIMEOUT",
        "LOOPLINE_BUCKET",
    ]


def test_settings_given_as_arguments_are_checked_the_same_way() -> None:
    with pytest.raises(ConfigError, match=r"^LOOPLINE_LLM_TIMEOUT must be a number of seconds"):
        Settings(llm_timeout=0)
    with pytest.raises(ConfigError, match=r"^LOOPLINE_HTTP_MAX_BYTES must be a whole number"):
        Settings(http_max_bytes=True)


def test_a_wrong_url_is_quoted_without_its_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    message = problem_of("LOOPLINE_LLM_BASE_URL", "ftp://user:s3cr3t-pw@host/v1", monkeypatch)
    assert "s3cr3t-pw" not in message and '"ftp://***@host/v1"' in message


def test_an_invalid_api_key_is_never_quoted_back(monkeypatch: pytest.MonkeyPatch) -> None:
    message = problem_of("LOOPLINE_LLM_API_KEY", "sk-live-9d8c7b6a\tx", monkeypatch)
    assert "9d8c7b6a" not in message


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({}, {"llm_base_url": None, "bucket": None, "llm_timeout": 60.0, "function_arns": {}}),
        (
            {
                "LOOPLINE_LLM_BASE_URL": "",
                "LOOPLINE_LLM_API_KEY_SECRET": "",
                "LOOPLINE_BUCKET": " ",
                "LOOPLINE_FUNCTION_ARNS": "",
            },
            {"llm_base_url": None, "llm_api_key_secret": None, "bucket": None, "function_arns": {}},
        ),
        (
            {
                "LOOPLINE_LLM_PROVIDER": "OpenAI",
                "LOOPLINE_LLM_BASE_URL": "https://api.openai.com/v1",
                "LOOPLINE_LLM_TIMEOUT": "2.5",
                "LOOPLINE_HTTP_MAX_BYTES": "1024",
                "LOOPLINE_TOOL_MODULES": "my_tools, pkg.more_tools,",
                "LOOPLINE_HTTP_ALLOW_HOSTS": "*.internal.example, 10.0.0.1, [::1]",
                "LOOPLINE_S3_ALLOW": "shared-bucket/reports/, s3://other-bucket",
                "LOOPLINE_BUCKET": "artifacts-123",
                "LOOPLINE_FUNCTION_ARNS": '{"LlmFunctionArn": "arn:aws:lambda:us-east-1:1:function:f"}',
            },
            {
                "llm_provider": "openai",
                "llm_timeout": 2.5,
                "http_max_bytes": 1024,
                "tool_module_list": ["my_tools", "pkg.more_tools"],
                "http_allow_host_list": ["*.internal.example", "10.0.0.1", "[::1]"],
                "s3_allow_list": ["shared-bucket/reports/", "s3://other-bucket"],
                "function_arns": {"LlmFunctionArn": "arn:aws:lambda:us-east-1:1:function:f"},
            },
        ),
    ],
)
def test_good_values_parse_and_empty_ones_count_as_unset(
    monkeypatch: pytest.MonkeyPatch, values: dict[str, str], expected: dict[str, Any]
) -> None:
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    parsed = settings()
    assert {k: getattr(parsed, k) for k in expected} == expected


def test_the_api_key_is_masked_once_the_settings_are_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LOOPLINE_LLM_API_KEY", "sk-settings-4e5f6a7b")
    settings()
    assert redact("the provider said: sk-settings-4e5f6a7b is wrong") == (
        "the provider said: *** is wrong"
    )


#: One wrong value of every setting (``loopline.settings.FIELDS``): a setting added without
#: a check where it is parsed, or without a line here, fails
#: ``test_every_setting_refuses_a_wrong_value_naming_its_variable``.
WRONG = {
    "llm_provider": "gpt",
    "llm_base_url": "api.example.com",
    "llm_model": "two words",
    "llm_api_key": "sk key",
    "llm_api_key_secret": "my secret",
    "llm_api_key_parameter": "/my param",
    "llm_timeout": "0",
    "llm_max_retry_after": "-1",
    "llm_script": "a script.yaml",
    "bedrock_region": "mars",
    "tool_modules": "1tools",
    "http_allow_hosts": "http://ci.internal",
    "http_max_bytes": "lots",
    "s3_allow": "../reports",
    "bucket": "Artifacts_Bucket",
    "large_value_bytes": "300000",
    "stage": "dev.1",
    "table": "t",
    "approval_topic_arn": "approvals",
    "webhook_queue_url": "sqs/webhooks",
    "webhook_dlq_url": "ftp://queue",
    "state_machine_role_arn": "role",
    "state_machine_prefix": "stack prefix",
    "function_arns": "[]",
    "stack_workflows": '{"triage": 1}',
    "webhook_allow_hosts": "https://hooks.internal",
    "webhook_retry_delays": "5,soon",
    "public_url": "example.com",
    "cors_origin": "https://app.example.com/path",
    "sender_email": "loopline",
    "slack_api_url": "slack.com/api",
    "slack_secret_arn": "arn:aws:sns:us-east-1:1:topic",
    "slack_bot_token": "xoxb token",
    "slack_signing_secret": "a secret",
    "outbox_queue": "queue",
    "outbox_retry_delays": "86400",
}


def test_the_wrong_values_cover_every_setting() -> None:
    from loopline.settings import FIELDS

    assert sorted(WRONG) == sorted(FIELDS)


@pytest.mark.parametrize(("field", "value"), sorted(WRONG.items()))
def test_every_setting_refuses_a_wrong_value_naming_its_variable(
    monkeypatch: pytest.MonkeyPatch, field: str, value: str
) -> None:
    variable = f"LOOPLINE_{field.upper()}"
    message = problem_of(variable, value, monkeypatch)
    assert message.startswith(f"{variable} must "), message
    assert "Error" not in message and "Traceback" not in message
