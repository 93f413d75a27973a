"""Model providers behind one interface (``loopline.runtime.model.Model``).

- ``openai``: any OpenAI-compatible Chat Completions API (``OpenAIModel``);
- ``bedrock``: Amazon Bedrock's Converse API (``BedrockModel``);
- ``scripted``: answers from a model script (``loopline.runtime.scripted.ScriptedModel``).

``provider_for(settings)`` picks one: ``LOOPLINE_LLM_PROVIDER`` when set; otherwise the
scripted model when ``LOOPLINE_LLM_SCRIPT`` is set, else openai when
``LOOPLINE_LLM_BASE_URL`` is set, else bedrock when ``LOOPLINE_LLM_MODEL`` is set, else none.
"""

from __future__ import annotations

import os

from loopline.runtime.model import Model
from loopline.settings import ConfigError, Settings


def provider_name(settings: Settings) -> str:
    """``openai``, ``bedrock``, ``scripted`` or ``""`` (no model) per the rules above."""
    if settings.llm_provider:
        return settings.llm_provider
    if settings.llm_script:
        return "scripted"
    if settings.llm_base_url:
        return "openai"
    if settings.llm_model:
        return "bedrock"
    return ""


def bedrock_region(settings: Settings) -> str | None:
    """Bedrock's region: ``LOOPLINE_BEDROCK_REGION``, else the AWS region boto3 finds
    (``AWS_REGION``, ``AWS_DEFAULT_REGION``, the profile's config); None when none."""
    if settings.bedrock_region:
        return settings.bedrock_region
    if os.environ.get("AWS_REGION"):  # Lambda's; boto3 itself reads AWS_DEFAULT_REGION
        return os.environ["AWS_REGION"]
    import botocore.session

    region = botocore.session.Session().get_config_variable("region")
    return str(region) if region else None


def provider_for(settings: Settings) -> Model | None:
    """The model the settings name, or None when they name none.

    Raise ``ConfigError`` when the combination of settings names a provider that cannot
    work: Bedrock without a region, the scripted model without a (valid) script.
    """
    name = provider_name(settings)
    if name == "openai":
        from loopline.runtime.providers.openai import OpenAIModel

        return OpenAIModel.from_settings(settings)
    if name == "bedrock":
        from loopline.runtime.providers.bedrock import BedrockModel

        region = bedrock_region(settings)
        if region is None:
            why = (
                "LOOPLINE_LLM_PROVIDER is bedrock"
                if settings.llm_provider
                else "LOOPLINE_LLM_MODEL is set without LOOPLINE_LLM_BASE_URL, which means "
                "Amazon Bedrock"
            )
            raise ConfigError(
                [
                    f"{why}, and Bedrock needs an AWS region: set LOOPLINE_BEDROCK_REGION "
                    "(or AWS_REGION / AWS_DEFAULT_REGION), or set LOOPLINE_LLM_BASE_URL to "
                    "use an OpenAI-compatible API"
                ]
            )
        model = BedrockModel.from_settings(settings)
        model.region = region
        return model
    if name == "scripted":
        from loopline.runtime.scripted import ScriptedModel, ScriptInvalid

        if not settings.llm_script:
            raise ConfigError(
                ["LOOPLINE_LLM_PROVIDER is scripted, but LOOPLINE_LLM_SCRIPT names no script"]
            )
        try:
            return ScriptedModel.from_file(settings.llm_script)
        except ScriptInvalid as exc:
            raise ConfigError(
                [f"LOOPLINE_LLM_SCRIPT names an invalid model script: {exc.render()}"]
            ) from None
    return None
