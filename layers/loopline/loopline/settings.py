"""Configuration from the environment, parsed once (``settings()``).

Every variable is ``LOOPLINE_<FIELD>``; in AWS the SAM template sets them on each
function, locally the shell or the local stack does. Domain code reads this model, never
``os.environ``.
"""

from __future__ import annotations

from functools import cache
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOOPLINE_", extra="ignore", frozen=True)

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
    llm_timeout: float = Field(60.0, gt=0)
    #: Longest Retry-After (seconds) a handler waits out itself before retrying a 429.
    llm_max_retry_after: float = Field(20.0, ge=0)
    llm_script: str | None = None
    bedrock_region: str | None = None

    # -- tools and HTTP ----------------------------------------------------------------
    #: Comma-separated Python modules that register extra tools when imported.
    tool_modules: str = ""
    #: Hosts every http step and http_get call may reach even when they resolve to
    #: private, loopback or link-local addresses (comma-separated).
    http_allow_hosts: str = ""
    http_max_bytes: int = Field(10 * 1024 * 1024, gt=0)

    # -- large values ----------------------------------------------------------------------
    #: Bucket for large step outputs and artifacts.
    bucket: str | None = None
    #: A step output larger than this (bytes of JSON) is stored in S3 and replaced by a
    #: reference.
    large_value_bytes: int = Field(64 * 1024, gt=0)

    # -- the deployed stack (template.yaml) -------------------------------------------------
    #: ``dev`` or ``prod``: the stack's ``Stage`` parameter.
    stage: str = ""
    #: DynamoDB table of tasks, step records, events and human waits (``TasksTable``).
    table: str | None = None
    #: SNS topic that approval requests are published to (``ApprovalTopic``).
    approval_topic_arn: str | None = None
    #: SQS queue of outgoing webhook notifications (``WebhookQueue``).
    webhook_queue_url: str | None = None
    #: Role of the state machines the API creates at run time (``StateMachineRole``).
    state_machine_role_arn: str | None = None
    #: Name prefix of the stack's state machines (``<stack name>-``).
    state_machine_prefix: str = ""
    #: Definition substitutions for workflows compiled at run time, as JSON
    #: (``{"LlmFunctionArn": "arn:aws:lambda:...", ...}``).
    function_arns: dict[str, str] = Field(default_factory=dict)

    @property
    def tool_module_list(self) -> list[str]:
        return [m.strip() for m in self.tool_modules.split(",") if m.strip()]

    @property
    def http_allow_host_list(self) -> list[str]:
        return [h.strip().lower() for h in self.http_allow_hosts.split(",") if h.strip()]


@cache
def settings() -> Settings:
    """The process's settings (read once; ``settings.cache_clear()`` in tests)."""
    return Settings()
