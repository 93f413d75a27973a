"""The scripted model: answers every model call from a YAML/JSON file (spec: "Testing a
workflow offline").

```yaml
responses:                      # first matching rule wins
  - step: classify              # the llm step's id (for a vote, the vote step's id)
    when: "billing"             # optional: a substring the prompt must contain
    answer: {severity: 2}       # an object is sent back as JSON text
  - step: critic
    answers: [{done: false}, {done: true}]   # consumed in order; the last one repeats
  - step: flaky
    answers: [{error: Loopline.Transient}, "ok"]   # {error: NAME} fails that call with NAME
  - answer: "fallback text"     # no step: matches any call
```

An error answer is a mapping whose only keys are ``error`` (the error name) and, optionally,
``message``. Any other answer that is not text is sent back as JSON text. Calls can come
from concurrent Map iterations, so the position in each rule's ``answers`` is kept under a
lock.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from loopline.dsl.loader import Document, parse_text, problems_from_validation
from loopline.dsl.problems import Problem, WorkflowInvalid
from loopline.runtime.errors import StepError
from loopline.runtime.model import ModelReply, ModelRequest, estimate_tokens

_ERROR_NAME = r"^[A-Za-z][A-Za-z0-9_.]*$"


class ScriptInvalid(WorkflowInvalid):
    """The model script has problems; ``problems`` lists every one, located."""


def _error_of(answer: Any) -> tuple[str, str | None] | None:
    """``(name, message)`` when ``answer`` is an error answer."""
    if isinstance(answer, dict) and "error" in answer and set(answer) <= {"error", "message"}:
        return str(answer["error"]), (
            None if answer.get("message") is None else str(answer["message"])
        )
    return None


def _check_answer(answer: Any) -> Any:
    if isinstance(answer, dict) and "error" in answer and set(answer) <= {"error", "message"}:
        name = answer["error"]
        if not isinstance(name, str) or not re.match(_ERROR_NAME, name):
            raise ValueError(f"error answer: {name!r} is not an error name like Loopline.Transient")
    return answer


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    step: str | None = Field(None, min_length=1)
    when: str | None = Field(None, min_length=1)
    answer: Any = None
    answers: list[Any] | None = Field(None, min_length=1)

    @field_validator("answers")
    @classmethod
    def _check_answers(cls, value: list[Any] | None) -> list[Any] | None:
        for a in value or []:
            _check_answer(a)
        return value

    @field_validator("answer")
    @classmethod
    def _check_one(cls, value: Any) -> Any:
        return _check_answer(value)

    @model_validator(mode="after")
    def _one_answer(self) -> Rule:
        has_answer = "answer" in self.model_fields_set
        if has_answer == (self.answers is not None):
            raise ValueError("a rule needs exactly one of answer or answers")
        return self

    def sequence(self) -> list[Any]:
        return list(self.answers) if self.answers is not None else [self.answer]


class Script(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    responses: list[Rule]


@dataclass
class Call:
    """One model call the script answered (kept for tests and debugging)."""

    step: str
    prompt: str
    answer: Any
    rule: int | None


@dataclass
class ScriptedModel:
    """A model whose answers come from a script; safe to call from several threads."""

    script: Script
    name: str = "<script>"
    calls: list[Call] = field(default_factory=list)
    _positions: dict[int, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # ------------------------------------------------------------------ loading

    @classmethod
    def from_data(cls, data: Any, name: str = "<script>") -> ScriptedModel:
        """Validate already-parsed data (a mapping with ``responses``)."""
        return cls._validate(Document(data), name)

    @classmethod
    def from_text(cls, text: str, name: str = "<script>") -> ScriptedModel:
        """Parse YAML or JSON text; raise ``ScriptInvalid`` with located problems."""
        try:
            doc = parse_text(text, name)
        except WorkflowInvalid as exc:
            raise ScriptInvalid(exc.problems, name) from None
        return cls._validate(doc, name)

    @classmethod
    def from_file(cls, path: str | FsPath) -> ScriptedModel:
        p = FsPath(path)
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ScriptInvalid([Problem(0, 0, "(file)", "no such file")], str(path)) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ScriptInvalid(
                [Problem(0, 0, "(file)", f"cannot read: {exc}")], str(path)
            ) from None
        return cls.from_text(text, str(path))

    @classmethod
    def _validate(cls, doc: Document, name: str) -> ScriptedModel:
        if not isinstance(doc.data, dict):
            raise ScriptInvalid(
                [Problem(1, 1, "(file)", "a model script is a mapping with a responses list")], name
            )
        try:
            script = Script.model_validate(doc.data)
        except ValidationError as exc:
            raise ScriptInvalid(problems_from_validation(exc, doc, Script), name) from None
        return cls(script=script, name=name)

    # ------------------------------------------------------------------ answering

    def _matches(self, rule: Rule, step: str, prompt: str) -> bool:
        if rule.step is not None and rule.step != step:
            return False
        return rule.when is None or rule.when in prompt

    def answer(self, step: str, prompt: str) -> str:
        """The text answer for a call of ``step`` with ``prompt``.

        Raise ``StepError`` for an error answer, or when no rule matches.
        """
        with self._lock:
            for i, rule in enumerate(self.script.responses):
                if not self._matches(rule, step, prompt):
                    continue
                seq = rule.sequence()
                pos = self._positions.get(i, 0)
                value = seq[min(pos, len(seq) - 1)]
                self._positions[i] = pos + 1
                self.calls.append(Call(step, prompt, value, i))
                break
            else:
                self.calls.append(Call(step, prompt, None, None))
                raise StepError(
                    "Loopline.LLMError",
                    f"the model script {self.name} has no answer for step {step}: "
                    f"no rule in responses matches it"
                    + ("" if not prompt else f" (prompt starts {prompt[:80]!r})"),
                )
        error = _error_of(value)
        if error is not None:
            name, message = error
            raise StepError(
                name, message or f"scripted error for step {step} (responses[{i}] of {self.name})"
            )
        if isinstance(value, str):
            return value
        return json.dumps(value, ensure_ascii=False)

    def complete(self, request: ModelRequest) -> ModelReply:
        """``answer`` as a ``Model``: token counts are estimated from the text lengths."""
        text = self.answer(request.step, request.prompt)
        sent = request.prompt + (request.system or "")
        return ModelReply(text, estimate_tokens(sent), estimate_tokens(text))
