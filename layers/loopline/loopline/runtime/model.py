"""What the runtime asks of a language model, whatever answers it (a script, a provider).

A ``ModelRequest`` is one model turn: the conversation so far (``messages``), the system
text, the tools offered (``ToolSpec``) and, optionally, the JSON Schema the answer must
match. A ``ModelReply`` carries the answer's text and/or the tool calls the model asks for,
and the tokens the turn used. Providers (``loopline.runtime.providers``) translate both to
their wire formats; ``loopline.runtime.llm`` runs the tool-calling loop on top.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from loopline.runtime.errors import StepError


@dataclass(frozen=True)
class ToolSpec:
    """A tool offered to the model: its name, what it does, and its arguments' JSON Schema."""

    name: str
    description: str
    schema: dict[str, Any]


@dataclass(frozen=True)
class ToolCall:
    """A call the model asks for. ``args`` is what the model sent: normally a JSON object,
    anything else when the model sent arguments that do not parse as one."""

    id: str
    name: str
    args: Any


@dataclass(frozen=True)
class Message:
    """One message of a conversation.

    - ``user``: ``text`` (the rendered prompt);
    - ``assistant``: ``text`` and/or ``tool_calls`` (an earlier reply of the model);
    - ``tool``: the result ``text`` of the call ``tool_call_id`` (of tool ``tool_name``);
      ``is_error`` when the call failed and ``text`` says why.
    """

    role: Literal["user", "assistant", "tool"]
    text: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    tool_name: str | None = None
    is_error: bool = False

    @classmethod
    def user(cls, text: str) -> Message:
        return cls("user", text)

    @classmethod
    def assistant(cls, text: str | None, tool_calls: tuple[ToolCall, ...] = ()) -> Message:
        return cls("assistant", text or None, tool_calls)

    @classmethod
    def tool_result(cls, call: ToolCall, text: str, *, is_error: bool = False) -> Message:
        return cls("tool", text, tool_call_id=call.id, tool_name=call.name, is_error=is_error)


@dataclass(frozen=True)
class ModelRequest:
    """One model call of step ``step``.

    ``prompt`` is the rendered prompt (what scripted-model rules match); ``messages`` is
    the conversation sent, by default just the prompt as a user message.
    """

    step: str
    prompt: str
    system: str | None = None
    model: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    messages: tuple[Message, ...] = ()
    tools: tuple[ToolSpec, ...] = ()
    output_schema: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if not self.messages:
            object.__setattr__(self, "messages", (Message.user(self.prompt),))


@dataclass(frozen=True)
class ModelReply:
    """A model's answer: ``text`` and/or ``tool_calls``, and the turn's token counts."""

    text: str
    input_tokens: int
    output_tokens: int
    tool_calls: tuple[ToolCall, ...] = field(default=())

    @property
    def usage(self) -> dict[str, int]:
        return {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens}


class Model(Protocol):
    def complete(self, request: ModelRequest) -> ModelReply:
        """Answer ``request``; raise ``StepError`` (``Loopline.LLMError``, ...) on failure."""
        ...


class RateLimited(StepError):
    """``Loopline.LLMRateLimited``; ``retry_after`` is the wait (seconds) the provider asked
    for, None when it named none."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__("Loopline.LLMRateLimited", message)
        self.retry_after = retry_after


def estimate_tokens(text: str) -> int:
    """A rough token count (about four characters a token) for models that report none."""
    return math.ceil(len(text) / 4) if text else 0
