"""What the runtime asks of a language model, whatever answers it (a script, a provider)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class ModelRequest:
    """One model call: the rendered prompt of step ``step`` and its settings."""

    step: str
    prompt: str
    system: str | None = None
    model: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None


@dataclass(frozen=True)
class ModelReply:
    text: str
    input_tokens: int
    output_tokens: int

    @property
    def usage(self) -> dict[str, int]:
        return {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens}


class Model(Protocol):
    def complete(self, request: ModelRequest) -> ModelReply:
        """Answer ``request``; raise ``StepError`` (``Loopline.LLMError``, ...) on failure."""
        ...


def estimate_tokens(text: str) -> int:
    """A rough token count (about four characters a token) for models that report none."""
    return math.ceil(len(text) / 4) if text else 0
