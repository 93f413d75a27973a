"""Model providers behind one interface (``loopline.runtime.model.Model``).

- ``openai``: any OpenAI-compatible Chat Completions API (``OpenAIModel``);
- ``bedrock``: Amazon Bedrock's Converse API (``BedrockModel``);
- ``scripted``: answers from a model script (``loopline.runtime.scripted.ScriptedModel``).

``provider_for(settings)`` picks one: ``LOOPLINE_LLM_PROVIDER`` when set; otherwise the
scripted model when ``LOOPLINE_LLM_SCRIPT`` is set, else openai when
``LOOPLINE_LLM_BASE_URL`` is set, else bedrock when ``LOOPLINE_LLM_MODEL`` is set, else none.
"""

from __future__ import annotations

from dataclasses import dataclass

from loopline.runtime.errors import StepError
from loopline.runtime.model import Model, ModelReply, ModelRequest
from loopline.settings import Settings


@dataclass(frozen=True)
class Unconfigured:
    """A provider the settings name but cannot set up: every call fails saying why (other
    actions, which need no model, keep working)."""

    reason: str

    def complete(self, request: ModelRequest) -> ModelReply:
        raise StepError("Loopline.LLMError", f"step {request.step}: {self.reason}")


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


def provider_for(settings: Settings) -> Model | None:
    """The model the settings name, or None when they name none."""
    name = provider_name(settings)
    if name == "openai":
        from loopline.runtime.providers.openai import OpenAIModel

        return OpenAIModel.from_settings(settings)
    if name == "bedrock":
        from loopline.runtime.providers.bedrock import BedrockModel

        return BedrockModel.from_settings(settings)
    if name == "scripted":
        from loopline.runtime.scripted import ScriptedModel, ScriptInvalid

        if not settings.llm_script:
            return Unconfigured(
                "LOOPLINE_LLM_PROVIDER is scripted but LOOPLINE_LLM_SCRIPT names no script"
            )
        try:
            return ScriptedModel.from_file(settings.llm_script)
        except ScriptInvalid as exc:
            return Unconfigured(f"the model script LOOPLINE_LLM_SCRIPT is invalid: {exc}")
    return None
