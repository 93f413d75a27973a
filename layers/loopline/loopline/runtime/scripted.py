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
  - step: research              # an llm step with tools: ask for a tool call, then answer
    answers:
      - {tool_call: {name: json_query, args: {data: [1, 2], query: "length(@)"}}}
      - "There are 2 items."
  - answer: "fallback text"     # no step: matches any call
```

An error answer is a mapping whose only keys are ``error`` (the error name) and, optionally,
``message``. A tool-call answer is a mapping with ``tool_call: {name, args}`` (or
``tool_calls``, a list of them, for several calls in one turn) and optionally ``text``:
the model asks for those calls, and the tool results come back in the next call of the
same step (which the same rule's next answer usually answers). Any other answer that is
not text is sent back as JSON text. Calls can come from concurrent Map iterations, so the
position in each rule's ``answers`` is kept under a lock.
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
from loopline.runtime.model import ModelReply, ModelRequest, ToolCall, estimate_tokens

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


def _is_tool_call(answer: Any) -> bool:
    return (
        isinstance(answer, dict)
        and bool({"tool_call", "tool_calls"} & set(answer))
        and set(answer) <= {"tool_call", "tool_calls", "text"}
    )


def _tool_calls_of(answer: Any) -> list[dict[str, Any]]:
    """The ``{name, args}`` calls of a tool-call answer (checked by ``_check_answer``)."""
    calls = [answer["tool_call"]] if "tool_call" in answer else []
    return calls + list(answer.get("tool_calls") or [])


def _check_answer(answer: Any) -> Any:
    if isinstance(answer, dict) and "error" in answer and set(answer) <= {"error", "message"}:
        name = answer["error"]
        if not isinstance(name, str) or not re.match(_ERROR_NAME, name):
            raise ValueError(f"error answer: {name!r} is not an error name like Loopline.Transient")
    if _is_tool_call(answer):
        if "tool_calls" in answer and (
            not isinstance(answer["tool_calls"], list) or not answer["tool_calls"]
        ):
            raise ValueError("tool_calls: expected a non-empty list of {name, args}")
        if "text" in answer and not isinstance(answer["text"], str):
            raise ValueError("text beside a tool call must be a string")
        for call in [answer["tool_call"]] if "tool_call" in answer else answer["tool_calls"]:
            if not isinstance(call, dict) or not set(call) <= {"name", "args"}:
                raise ValueError("a tool call is a mapping {name, args}")
            if not isinstance(call.get("name"), str) or not call["name"]:
                raise ValueError("a tool call needs the tool's name")
            if not isinstance(call.get("args", {}), dict):
                raise ValueError(f"tool call {call['name']}: args must be a mapping")
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
    _call_ids: int = 1
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
            doc = parse_text(text, name, max_bytes=None)  # answers may be large
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
        value = self._next(step, prompt)
        if isinstance(value, str):
            return value
        return json.dumps(value, ensure_ascii=False)

    def _next(self, step: str, prompt: str) -> Any:
        """The next answer of the first rule matching; raise for an error answer."""
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
        return value

    def complete(self, request: ModelRequest) -> ModelReply:
        """The next answer as a ``Model`` reply (a tool-call answer asks for its calls);
        token counts are estimated from the text lengths."""
        value = self._next(request.step, request.prompt)
        sent = "".join(m.text or "" for m in request.messages) + (request.system or "")
        if _is_tool_call(value):
            with self._lock:
                first = self._call_ids
                self._call_ids += len(_tool_calls_of(value))
            calls = tuple(
                ToolCall(f"call_{first + n}", c["name"], dict(c.get("args") or {}))
                for n, c in enumerate(_tool_calls_of(value))
            )
            text = value.get("text") or ""
            asked = text + json.dumps([{"name": c.name, "args": c.args} for c in calls])
            return ModelReply(text, estimate_tokens(sent), estimate_tokens(asked), calls)
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        return ModelReply(text, estimate_tokens(sent), estimate_tokens(text))
