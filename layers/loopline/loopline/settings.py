"""Configuration from the environment, parsed once (``settings()``).

Every variable is ``LOOPLINE_<FIELD>``; in AWS the SAM template sets them on each
function, locally the shell or the local stack does. Domain code reads this model, never
``os.environ``.

Every value is checked where it is parsed: a mistake is a ``ConfigError`` whose message
names the variable and what it needs (``LOOPLINE_LLM_TIMEOUT must be a number of seconds
greater than 0 and at most 900, got "soon"``), every mistake at once. An empty variable
counts as unset (the template passes empty parameters through). Combinations are checked
where they are used: the model provider's in ``loopline.runtime.providers.provider_for``.
``loopline run`` prints a ``ConfigError`` as ``error: …`` and exits 2; a Lambda function
fails the step with ``Loopline.Failed`` and the same message.

Plain Python on purpose: every Lambda function reads its settings on its first call, and
a settings library (pydantic-settings, with pydantic) would cost it more to import than
the parsing itself (docs/internals.md, "Cold start and tracing").
"""

from __future__ import annotations

import json
import keyword
import math
import os
import re
from collections.abc import Callable
from functools import cache, partial
from typing import Any, Literal
from urllib.parse import urlsplit

from loopline.config_error import ConfigError

__all__ = ["ConfigError", "Settings", "settings"]

#: The longest a Lambda function runs (seconds): no wait or timeout can be longer.
LAMBDA_MAX_SECONDS = 900
#: Step Functions' limit on a state's data (bytes): a larger value is never kept inline.
STATE_DATA_LIMIT = 256 * 1024
#: The largest HTTP response body a step may read (bytes).
HTTP_MAX_BYTES_LIMIT = 1024 * 1024 * 1024
#: The longest an SQS message can be kept invisible (seconds): no retry delay is longer.
SQS_MAX_VISIBILITY = 12 * 60 * 60
#: Seconds between an outbox message's failed deliveries, by attempt (the last repeats).
DEFAULT_OUTBOX_RETRY_DELAYS: tuple[float, ...] = (5, 30, 120, 600, 1800)
#: Seconds between a webhook delivery's attempts, one per retry (27.6 hours in all).
DEFAULT_WEBHOOK_RETRY_DELAYS: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)
#: The longest wait between two webhook attempts (seconds): 30 days.
WEBHOOK_MAX_DELAY = 30 * 86400

_BUCKET = re.compile(r"^(?!\d+\.\d+\.\d+\.\d+$)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_REGION = re.compile(r"^[a-z]{2}(?:-[a-z0-9]+)+-\d{1,2}$")
_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
_ARN = re.compile(r"^arn:[a-z0-9-]+:[A-Za-z0-9-]+:[a-z0-9-]*:\d*:[^\s]+$")
_STAGE = re.compile(r"^[A-Za-z0-9-]{1,32}$")
_TABLE = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")
_STATE_MACHINE_PREFIX = re.compile(r"^[A-Za-z0-9_-]{0,70}$")
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9.-]{1,253}$")


def env_name(field: str) -> str:
    """The variable of a setting: ``llm_timeout`` → ``LOOPLINE_LLM_TIMEOUT``."""
    return f"LOOPLINE_{field.upper()}"


def _shown(value: Any) -> str:
    """A wrong value as a message quotes it (URLs without their credentials)."""
    text = str(value)
    if "://" in text:
        from loopline.redact import redact_url

        text = redact_url(text)
    if len(text) > 80:
        text = text[:80] + "…"
    return json.dumps(text, ensure_ascii=False)


# --------------------------------------------------------------------------- checks
# Each takes the raw value (a string from the environment, or a Python value given to
# ``Settings(...)``) and returns the parsed one or raises ValueError with what is needed.


def _optional_text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _number(
    value: Any, what: str, *, low: float, high: float, low_open: bool, integer: bool
) -> float | int:
    low_words = f"greater than {_num(low)}" if low_open else f"at least {_num(low)}"
    need = f"must be {what} {low_words} and at most {_num(high)}"
    if isinstance(value, bool):
        raise ValueError(f"{need}, got {_shown(value)}")
    try:
        if isinstance(value, str):
            text = value.strip()
            number: float | int = int(text) if integer else float(text)
        elif integer and isinstance(value, float) and value.is_integer():
            number = int(value)
        elif isinstance(value, (int, float)) and not (integer and isinstance(value, float)):
            number = value
        else:
            raise ValueError
    except ValueError:
        raise ValueError(f"{need}, got {_shown(value)}") from None
    if math.isnan(number) or (number <= low if low_open else number < low) or number > high:
        raise ValueError(f"{need}, got {_shown(value)}")
    return number


def check_http_url(value: Any) -> str | None:
    """An http(s) URL with a host (or None when unset)."""
    text = _optional_text(value)
    if text is None:
        return None
    need = "must be an http:// or https:// URL with a host"
    if any(c.isspace() for c in text):
        raise ValueError(f"{need} (no spaces), got {_shown(text)}")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise ValueError(f"{need}, got {_shown(text)}") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{need}, got {_shown(text)}")
    return text


def check_bucket(value: Any) -> str | None:
    """An S3 bucket name (or None when unset)."""
    text = _optional_text(value)
    if text is None:
        return None
    if not _BUCKET.match(text) or ".." in text:
        raise ValueError(
            "must be an S3 bucket name (3 to 63 lower-case letters, digits, dots and "
            f"hyphens, starting and ending with a letter or digit), got {_shown(text)}"
        )
    return text


def check_host(entry: str) -> str | None:
    """Why ``entry`` is not a host, an address or ``*.domain`` (None when it is one)."""
    host = entry.lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if ":" in host:  # an IPv6 address
        import ipaddress

        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return "not a host name or address (no scheme, port or path)"
        return None
    labels = host[2:].split(".") if host.startswith("*.") else host.split(".")
    if not host or not all(_HOST_LABEL.match(label) for label in labels):
        return "not a host name, an address or *.domain (no scheme, port or path)"
    return None


# --------------------------------------------------------------------------- the model


class Settings:
    """Every setting, read-only. ``Settings()`` reads the environment; keyword arguments
    win over it (``Settings(llm_timeout=5)``) and are checked the same way. A name that is
    no setting is ignored."""

    # -- model provider --------------------------------------------------------------
    #: ``openai`` (any OpenAI-compatible Chat Completions API), ``bedrock`` (Converse) or
    #: ``scripted``; empty: scripted when ``llm_script`` is set, else openai when
    #: ``llm_base_url`` is set, else bedrock when ``llm_model`` is set.
    llm_provider: Literal["", "openai", "bedrock", "scripted"] = ""
    llm_base_url: str | None = None
    llm_model: str | None = None
    #: The API key itself (local use) ...
    llm_api_key: str | None = None
    #: ... or where it is kept in AWS: a Secrets Manager secret or an SSM parameter name.
    llm_api_key_secret: str | None = None
    llm_api_key_parameter: str | None = None
    #: Seconds a model call may take before it counts as a transient failure.
    llm_timeout: float = 60.0
    #: Longest Retry-After (seconds) a handler waits out itself before retrying a 429.
    llm_max_retry_after: float = 20.0
    llm_script: str | None = None
    #: Bedrock's region; unset: the AWS region of the environment (``AWS_REGION``, ...).
    bedrock_region: str | None = None

    # -- tools and HTTP ----------------------------------------------------------------
    #: Comma-separated Python modules that register extra tools when imported.
    tool_modules: str = ""
    #: Hosts every http step and http_get call may reach even when they resolve to
    #: private, loopback or link-local addresses (comma-separated).
    http_allow_hosts: str = ""
    http_max_bytes: int = 10 * 1024 * 1024
    #: S3 locations the s3_get/s3_put tools may reach besides the workflow's own prefix
    #: in ``bucket`` (comma-separated ``bucket`` or ``bucket/prefix``).
    s3_allow: str = ""

    # -- large values ----------------------------------------------------------------------
    #: Bucket for large step outputs and artifacts.
    bucket: str | None = None
    #: A step output larger than this (bytes of JSON) is stored in S3 and replaced by a
    #: reference.
    large_value_bytes: int = 64 * 1024

    # -- the deployed stack (template.yaml) -------------------------------------------------
    #: ``dev`` or ``prod``: the stack's ``Stage`` parameter.
    stage: str = ""
    #: DynamoDB table of tasks, step records, events and human waits (``TasksTable``).
    table: str | None = None
    #: SNS topic that approval requests are published to (``ApprovalTopic``).
    approval_topic_arn: str | None = None
    #: SQS queue of webhook deliveries to attempt (``WebhookQueue``).
    webhook_queue_url: str | None = None
    #: Where a delivery that failed its last attempt is put (``WebhookDeadLetterQueue``).
    webhook_dlq_url: str | None = None
    #: Role of the state machines the API creates at run time (``StateMachineRole``).
    state_machine_role_arn: str | None = None
    #: Name prefix of the stack's state machines (``<stack name>-``).
    state_machine_prefix: str = ""
    #: Definition substitutions for workflows compiled at run time, as JSON
    #: (``{"LlmFunctionArn": "arn:aws:lambda:...", ...}``).
    function_arns: dict[str, str] = {}
    #: The workflows deployed with the stack, as JSON: workflow name → state machine ARN
    #: (``{"ticket-triage": "arn:aws:states:…:stateMachine:loopline-ticket-triage"}``).
    stack_workflows: dict[str, str] = {}

    # -- the task service ---------------------------------------------------------------------
    #: Hosts webhook URLs may name although they are plain http or resolve to loopback,
    #: private or link-local addresses (comma-separated; ``loopline serve --allow-hosts``).
    webhook_allow_hosts: str = ""
    #: Seconds between a webhook delivery's attempts, one per retry: N delays allow N + 1
    #: attempts (comma-separated; jitter applies to each; longer than SQS's 12 hours is
    #: fine: the wait is taken in turns).
    webhook_retry_delays: tuple[float, ...] = DEFAULT_WEBHOOK_RETRY_DELAYS
    #: Base URL that links in messages use (``https://<api>/<stage>``); unset: the API's own.
    public_url: str | None = None
    #: The one browser origin allowed to call the API (``https://app.example.com``): the
    #: stack's ``CorsOrigin`` parameter. Unset: CORS is off.
    cors_origin: str | None = None

    # -- people in the loop: email, Slack and the outbox (loopline.notify) ----------------
    #: The address approval emails come from (the stack's ``SenderEmail``): an identity
    #: SES has verified, the address or its domain.
    sender_email: str | None = None
    #: Base URL of Slack's Web API (``chat.postMessage`` is ``<url>/chat.postMessage``).
    slack_api_url: str = "https://slack.com/api"
    #: Secrets Manager secret holding ``{"bot_token", "signing_secret"}`` (``SlackSecret``).
    slack_secret_arn: str | None = None
    #: The bot token and signing secret themselves (local use): they win over the secret's.
    slack_bot_token: str | None = None
    slack_signing_secret: str | None = None
    #: SQS queue URL of outgoing notifications and decisions to re-send (``OutboxQueue``).
    outbox_queue: str | None = None
    #: Seconds before a failed outbox message is tried again, one per attempt, the last
    #: repeating until the queue's dead-letter redrive (comma-separated; jitter applies).
    outbox_retry_delays: tuple[float, ...] = DEFAULT_OUTBOX_RETRY_DELAYS

    def __init__(self, **values: Any) -> None:
        environ = {k.lower(): v for k, v in os.environ.items() if k[:9].lower() == "loopline_"}
        problems = []
        for name, parse in _PARSERS.items():
            if name in values:
                raw = values[name]
            elif f"loopline_{name}" in environ:
                raw = environ[f"loopline_{name}"]
            else:
                default = getattr(Settings, name)
                # A fresh copy of a mutable default for each instance.
                object.__setattr__(
                    self, name, dict(default) if isinstance(default, dict) else default
                )
                continue
            try:
                object.__setattr__(self, name, parse(raw))
            except ValueError as exc:
                problems.append(f"{env_name(name)} {exc}")
        if problems:
            raise ConfigError(problems)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"settings are read-only: {name} cannot be set")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"settings are read-only: {name} cannot be deleted")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Settings):
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in FIELDS)

    def __hash__(self) -> int:
        return hash(tuple(repr(getattr(self, f)) for f in FIELDS))

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{f}={'***' if f in _SECRETS else repr(getattr(self, f))}"
            for f in FIELDS
            if getattr(self, f) != getattr(Settings, f)
        )
        return f"Settings({shown})"

    # -- derived ------------------------------------------------------------------------

    @property
    def tool_module_list(self) -> list[str]:
        return [m.strip() for m in self.tool_modules.split(",") if m.strip()]

    @property
    def http_allow_host_list(self) -> list[str]:
        return [h.strip().lower() for h in self.http_allow_hosts.split(",") if h.strip()]

    @property
    def webhook_allow_host_list(self) -> list[str]:
        return [h.strip().lower() for h in self.webhook_allow_hosts.split(",") if h.strip()]

    @property
    def s3_allow_list(self) -> list[str]:
        return [e.strip() for e in self.s3_allow.split(",") if e.strip()]


# --------------------------------------------------------------------------- parsers
# One per setting (``_PARSERS``): the raw value in, the parsed one out, or ValueError
# saying what is needed.


def _origin(value: Any) -> str | None:
    text = check_http_url(value)
    if text is not None and urlsplit(text)._replace(scheme="", netloc="").geturl():
        raise ValueError(
            "must be an origin: scheme, host and port only (https://app.example.com, "
            f"no path), got {_shown(text)}"
        )
    return text


def _provider(value: Any) -> str:
    text = (_optional_text(value) or "").lower()
    if text not in ("", "openai", "bedrock", "scripted"):
        raise ValueError(f"must be openai, bedrock or scripted (or unset), got {_shown(value)}")
    return text


def _url(value: Any) -> str | None:
    return check_http_url(value)


def _name(value: Any) -> str | None:
    text = _optional_text(value)
    if text is not None and any(c.isspace() or ord(c) < 32 for c in text):
        raise ValueError(f"must be one name without spaces, got {_shown(text)}")
    return text


def _key(value: Any) -> str | None:
    text = _optional_text(value)
    if text is not None and any(c.isspace() or ord(c) < 32 or ord(c) > 126 for c in text):
        # The value is a secret: never quoted back.
        raise ValueError("must be the API key alone: printable ASCII without spaces or line breaks")
    if text is not None:
        from loopline.redact import remember_secret

        remember_secret(text)
    return text


def _timeout(value: Any) -> float:
    return float(
        _number(
            value,
            "a number of seconds",
            low=0,
            high=LAMBDA_MAX_SECONDS,
            low_open=True,
            integer=False,
        )
    )


def _retry_after(value: Any) -> float:
    return float(
        _number(
            value,
            "a number of seconds",
            low=0,
            high=LAMBDA_MAX_SECONDS,
            low_open=False,
            integer=False,
        )
    )


def _region(value: Any) -> str | None:
    text = _optional_text(value)
    if text is not None and not _REGION.match(text):
        raise ValueError(f"must be an AWS region such as us-east-1, got {_shown(text)}")
    return text


def _modules(value: Any) -> str:
    text = _optional_text(value) or ""
    for name in (m.strip() for m in text.split(",")):
        parts = name.split(".")
        if name and not all(p.isidentifier() and not keyword.iskeyword(p) for p in parts):
            raise ValueError(
                "must be Python module names separated by commas "
                f"(my_tools, pkg.tools), got {_shown(name)}"
            )
    return text


def _hosts(value: Any) -> str:
    text = _optional_text(value) or ""
    for entry in (h.strip() for h in text.split(",")):
        problem = check_host(entry) if entry else None
        if problem:
            raise ValueError(
                "must be host names, addresses or *.domain entries separated by commas, "
                f"got {_shown(entry)}: {problem}"
            )
    return text


def _bytes(value: Any, field: str) -> int:
    high = STATE_DATA_LIMIT if field == "large_value_bytes" else HTTP_MAX_BYTES_LIMIT
    return int(
        _number(value, "a whole number of bytes", low=1, high=high, low_open=False, integer=True)
    )


def _s3_allow(value: Any) -> str:
    text = _optional_text(value) or ""
    if text:
        from loopline.runtime.s3scope import parse_allow_entry

        for entry in text.split(","):
            parse_allow_entry(entry)  # raises ValueError saying what is wrong
    return text


def _bucket(value: Any) -> str | None:
    return check_bucket(value)


def _stage(value: Any) -> str:
    text = _optional_text(value) or ""
    if text and not _STAGE.match(text):
        raise ValueError(
            f"must be a stage name (letters, digits and hyphens, such as dev), got {_shown(text)}"
        )
    return text


def _table(value: Any) -> str | None:
    text = _optional_text(value)
    if text is not None and not _TABLE.match(text):
        raise ValueError(
            f"must be a DynamoDB table name (3 to 255 letters, digits, _ . -), got {_shown(text)}"
        )
    return text


def _arn(value: Any) -> str | None:
    text = _optional_text(value)
    if text is not None and not _ARN.match(text):
        raise ValueError(
            f"must be an ARN (arn:partition:service:region:account:resource), got {_shown(text)}"
        )
    return text


def _prefix(value: Any) -> str:
    text = _optional_text(value) or ""
    if not _STATE_MACHINE_PREFIX.match(text):
        raise ValueError(
            "must be at most 70 letters, digits, _ and - (a state machine name prefix), "
            f"got {_shown(text)}"
        )
    return text


def _function_arns(value: Any, field: str) -> dict[str, str]:
    need = (
        'must be a JSON object of placeholder names to function ARNs ({"LlmFunctionArn": '
        '"arn:aws:lambda:…"})'
        if field == "function_arns"
        else 'must be a JSON object of workflow names to state machine ARNs ({"triage": '
        '"arn:aws:states:…"})'
    )
    if value is None or (isinstance(value, str) and not value.strip()):
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"{need}, but it is not JSON ({exc.msg} at column {exc.colno})"
            ) from None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and k and isinstance(v, str) and v.strip() for k, v in value.items()
    ):
        raise ValueError(f"{need}, got {_shown(json.dumps(value))}")
    return {k: v.strip() for k, v in value.items()}


def _sender(value: Any) -> str | None:
    text = _optional_text(value)
    if text is None:
        return None
    domain = text.rpartition("@")[2]
    if not _EMAIL.match(text) or check_host(domain) is not None or "." not in domain:
        raise ValueError(f"must be one email address (loopline@example.com), got {_shown(text)}")
    return text


def _slack_api_url(value: Any) -> str:
    text = check_http_url(value)
    return "https://slack.com/api" if text is None else text.rstrip("/")


def _secret_arn(value: Any) -> str | None:
    text = _optional_text(value)
    if text is not None and not (_ARN.match(text) and text.split(":")[2] == "secretsmanager"):
        raise ValueError(
            "must be the ARN of a Secrets Manager secret "
            f"(arn:aws:secretsmanager:region:account:secret:name), got {_shown(text)}"
        )
    return text


def _slack_secret(value: Any) -> str | None:
    text = _optional_text(value)
    if text is not None and any(c.isspace() or ord(c) < 32 or ord(c) > 126 for c in text):
        # A secret: never quoted back.
        raise ValueError("must be the value alone: printable ASCII without spaces")
    if text is not None:
        from loopline.redact import remember_secret

        remember_secret(text)
    return text


def _queue(value: Any) -> str | None:
    return check_http_url(value)


def _delays(value: Any, field: str) -> tuple[float, ...]:
    webhooks = field == "webhook_retry_delays"
    if value is None or (isinstance(value, str) and not value.strip()):
        return DEFAULT_WEBHOOK_RETRY_DELAYS if webhooks else DEFAULT_OUTBOX_RETRY_DELAYS
    high = WEBHOOK_MAX_DELAY if webhooks else SQS_MAX_VISIBILITY
    need = "must be seconds separated by commas (5,30,120), each greater than 0 and at most " + (
        f"{WEBHOOK_MAX_DELAY} (30 days)"
        if webhooks
        else f"{SQS_MAX_VISIBILITY} (SQS keeps a message hidden 12 hours at most)"
    )
    items = value.split(",") if isinstance(value, str) else list(value)
    delays = []
    for item in items:
        try:
            delays.append(
                _number(
                    item,
                    "seconds",
                    low=0,
                    high=high,
                    low_open=True,
                    integer=False,
                )
            )
        except ValueError:
            raise ValueError(f"{need}, got {_shown(str(item).strip())}") from None
    return tuple(float(d) for d in delays)


#: Each setting's parser, in the order the settings are declared (and problems reported).
_PARSERS: dict[str, Callable[[Any], Any]] = {
    "llm_provider": _provider,
    "llm_base_url": _url,
    "llm_model": _name,
    "llm_api_key": _key,
    "llm_api_key_secret": _name,
    "llm_api_key_parameter": _name,
    "llm_timeout": _timeout,
    "llm_max_retry_after": _retry_after,
    "llm_script": _name,
    "bedrock_region": _region,
    "tool_modules": _modules,
    "http_allow_hosts": _hosts,
    "http_max_bytes": partial(_bytes, field="http_max_bytes"),
    "s3_allow": _s3_allow,
    "bucket": _bucket,
    "large_value_bytes": partial(_bytes, field="large_value_bytes"),
    "stage": _stage,
    "table": _table,
    "approval_topic_arn": _arn,
    "webhook_queue_url": _url,
    "webhook_dlq_url": _url,
    "state_machine_role_arn": _arn,
    "state_machine_prefix": _prefix,
    "function_arns": partial(_function_arns, field="function_arns"),
    "stack_workflows": partial(_function_arns, field="stack_workflows"),
    "webhook_allow_hosts": _hosts,
    "webhook_retry_delays": partial(_delays, field="webhook_retry_delays"),
    "public_url": _url,
    "cors_origin": _origin,
    "sender_email": _sender,
    "slack_api_url": _slack_api_url,
    "slack_secret_arn": _secret_arn,
    "slack_bot_token": _slack_secret,
    "slack_signing_secret": _slack_secret,
    "outbox_queue": _queue,
    "outbox_retry_delays": partial(_delays, field="outbox_retry_delays"),
}
#: Every setting's name (``LOOPLINE_<NAME>``), in the order they are declared.
FIELDS: tuple[str, ...] = tuple(_PARSERS)
#: Settings whose values are secrets: never shown.
_SECRETS = frozenset({"llm_api_key", "slack_bot_token", "slack_signing_secret"})


@cache
def settings() -> Settings:
    """The process's settings (read once; ``settings.cache_clear()`` in tests).

    Raise ``ConfigError`` naming every variable that is wrong.
    """
    return Settings()
