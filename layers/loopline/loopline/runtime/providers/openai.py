"""Any OpenAI-compatible Chat Completions API, over httpx.

``POST {base_url}/chat/completions`` with ``Authorization: Bearer <key>``. The model is
the step's (or the workflow default's) ``model``, else ``LOOPLINE_LLM_MODEL``. An
``output_schema`` is sent as ``response_format: {type: json_schema, json_schema: {name,
schema, strict: true}}``; offered tools as ``tools: [{type: function, function: {name,
description, parameters}}]``, and the calls come back in ``choices[0].message.tool_calls``.

The API key is ``LOOPLINE_LLM_API_KEY``, else (in AWS) the Secrets Manager secret
``LOOPLINE_LLM_API_KEY_SECRET`` or the SSM parameter ``LOOPLINE_LLM_API_KEY_PARAMETER``,
read through Powertools Parameters and cached for ``KEY_MAX_AGE`` seconds. No key at all
sends no ``Authorization`` header (local servers rarely want one).

Failures: 429 → ``Loopline.LLMRateLimited`` (with the Retry-After wait); 5xx, timeouts,
connection errors and a response body that is not a Chat Completions answer →
``Loopline.Transient``; any other 4xx → ``Loopline.LLMError`` with the provider's message.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from loopline.redact import redact_url, remember_secret, remember_secrets
from loopline.runtime.errors import StepError, classify, json_type, quote, readable, unexpected
from loopline.runtime.model import (
    Message,
    ModelReply,
    ModelRequest,
    RateLimited,
    ToolCall,
    estimate_tokens,
)
from loopline.settings import Settings

DEFAULT_BASE_URL = "https://api.openai.com/v1"
#: Seconds a key read from Secrets Manager or SSM is cached.
KEY_MAX_AGE = 300


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """The wait a ``Retry-After`` header asks for: seconds, or an HTTP date; None if absent
    or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _schema_name(step: str) -> str:
    """A ``json_schema.name``: ``^[a-zA-Z0-9_-]{1,64}$``."""
    return (re.sub(r"[^A-Za-z0-9_-]", "_", step) or "output")[:64]


def _message(m: Message) -> dict[str, Any]:
    if m.role == "tool":
        return {"role": "tool", "tool_call_id": m.tool_call_id, "content": m.text or ""}
    if m.role == "assistant":
        out: dict[str, Any] = {"role": "assistant", "content": m.text}
        if m.tool_calls:
            out["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {
                        "name": c.name,
                        "arguments": json.dumps(c.args, ensure_ascii=False)
                        if isinstance(c.args, dict)
                        else str(c.args),
                    },
                }
                for c in m.tool_calls
            ]
        return out
    return {"role": "user", "content": m.text or ""}


def chat_body(request: ModelRequest, model: str) -> dict[str, Any]:
    """The Chat Completions request body of ``request``."""
    messages = [{"role": "system", "content": request.system}] if request.system else []
    messages += [_message(m) for m in request.messages]
    body: dict[str, Any] = {"model": model, "messages": messages}
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.max_tokens is not None:
        body["max_tokens"] = request.max_tokens
    if request.tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {"name": t.name, "description": t.description, "parameters": t.schema},
            }
            for t in request.tools
        ]
    if request.output_schema is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {
                "name": _schema_name(request.step),
                "schema": request.output_schema,
                "strict": True,
            },
        }
    return body


def _text_of(content: Any) -> str:
    """``message.content``: a string, null, or (some servers) a list of text parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(p.get("text") or "") for p in content if isinstance(p, dict) and "text" in p
        )
    raise ValueError(f"message.content is {json_type(content)}")


def _tool_call(raw: Any, n: int) -> ToolCall:
    if not isinstance(raw, dict) or not isinstance(raw.get("function"), dict):
        raise ValueError("a tool call without a function")
    fn = raw["function"]
    name = fn.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError("a tool call without a function name")
    args: Any = fn.get("arguments")
    if isinstance(args, str):
        # Not JSON: kept as text, the tool loop tells the model its arguments are not JSON.
        with contextlib.suppress(json.JSONDecodeError):
            args = json.loads(args) if args.strip() else {}
    elif args is None:
        args = {}
    return ToolCall(str(raw.get("id") or f"call_{n}"), name, args)


def parse_reply(data: Any, sent: str) -> ModelReply:
    """A ``ModelReply`` of a Chat Completions response body; ``ValueError`` when it is not one."""
    if not isinstance(data, dict):
        raise ValueError("the body is not a JSON object")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise ValueError("no choices")
    message = choices[0].get("message")
    if not isinstance(message, dict):
        raise ValueError("choices[0] has no message")
    text = _text_of(message.get("content"))
    calls = tuple(_tool_call(c, n) for n, c in enumerate(message.get("tool_calls") or []))
    if not text and not calls and message.get("refusal"):
        raise StepError("Loopline.LLMError", f"the model refused: {message['refusal']}")
    usage = data.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    given_in, given_out = usage.get("prompt_tokens"), usage.get("completion_tokens")
    return ModelReply(
        text,
        given_in if isinstance(given_in, int) else estimate_tokens(sent),
        given_out if isinstance(given_out, int) else estimate_tokens(text),
        calls,
    )


def _error_message(resp: httpx.Response) -> str:
    """The provider's error message: ``{"error": {"message"}}`` or the start of the body."""
    try:
        data = resp.json()
    except ValueError:
        data = None
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if isinstance(err, str) and err:
            return err
        if data.get("message"):
            return str(data["message"])
    return " ".join(resp.text[:300].split()) or resp.reason_phrase or "no message"


def api_key_from(settings: Settings) -> str | None:
    """The API key the settings name (see the module); raise ``Loopline.LLMError`` when it
    cannot be read."""
    if settings.llm_api_key:
        return settings.llm_api_key
    if not (settings.llm_api_key_secret or settings.llm_api_key_parameter):
        return None
    from aws_lambda_powertools.utilities import parameters

    where = (
        f"secret {settings.llm_api_key_secret}"
        if settings.llm_api_key_secret
        else f"SSM parameter {settings.llm_api_key_parameter}"
    )
    try:
        if settings.llm_api_key_secret:
            value: Any = parameters.get_secret(settings.llm_api_key_secret, max_age=KEY_MAX_AGE)
        else:
            value = parameters.get_parameter(
                str(settings.llm_api_key_parameter), decrypt=True, max_age=KEY_MAX_AGE
            )
    except Exception as exc:
        raise unexpected(
            exc, f"cannot read the model API key from the {where}", "Loopline.LLMError"
        ) from None
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str) and value.strip().startswith("{"):
        with contextlib.suppress(json.JSONDecodeError):
            value = json.loads(value)
    if isinstance(value, dict):  # a JSON secret: {"api_key": "..."} or a single value
        value = value.get("api_key") or (next(iter(value.values())) if len(value) == 1 else None)
    if not isinstance(value, str) or not value:
        raise StepError(
            "Loopline.LLMError",
            f"the {where} holds no API key (a string, or JSON with an api_key field)",
        )
    remember_secret(value)
    return value.strip()


@dataclass
class OpenAIModel:
    """A ``Model`` answered by a Chat Completions API at ``base_url``."""

    base_url: str = DEFAULT_BASE_URL
    default_model: str | None = None
    timeout: float = 60.0
    #: The key, or None to read it through ``settings`` on first use (or to send none).
    api_key: str | None = None
    settings: Settings | None = None
    _client: httpx.Client | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAIModel:
        return cls(
            base_url=settings.llm_base_url or DEFAULT_BASE_URL,
            default_model=settings.llm_model,
            timeout=settings.llm_timeout,
            api_key=settings.llm_api_key,
            settings=settings,
        )

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"

    def _key(self) -> str | None:
        if self.api_key is None and self.settings is not None:
            return api_key_from(self.settings)
        return self.api_key

    def client(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(timeout=httpx.Timeout(self.timeout))
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def complete(self, request: ModelRequest) -> ModelReply:
        model = request.model or self.default_model
        if not model:
            raise StepError(
                "Loopline.LLMError",
                f"step {request.step}: no model named: set model on the step (or the "
                "workflow's defaults) or LOOPLINE_LLM_MODEL",
            )
        body = chat_body(request, model)
        headers = {"Content-Type": "application/json"}
        key = self._key()
        if key:
            remember_secret(key)  # masked wherever a provider echoes it
            headers["Authorization"] = f"Bearer {key}"
        remember_secrets(url=self.base_url)
        where = f"step {request.step}: {model} at {redact_url(self.url)}"
        try:
            resp = self.client().post(self.url, json=body, headers=headers)
        except httpx.TimeoutException:
            raise StepError(
                "Loopline.Transient", f"{where} did not answer within {self.timeout:g}s"
            ) from None
        except httpx.HTTPError as exc:
            # Connection refused or broken: transient. An invalid URL or header (a key
            # with a line break): a configuration mistake, not worth a retry.
            name = classify(exc, "Loopline.LLMError")
            verb = "could not be reached" if name == "Loopline.Transient" else "cannot be called"
            raise StepError(name, f"{where} {verb}: {readable(exc)}") from None
        status = resp.status_code
        if status == 429:
            wait = retry_after_seconds(resp.headers.get("retry-after"))
            asked = (
                f"it asked to wait {wait:g}s (Retry-After)"
                if wait is not None
                else "it named no wait (no Retry-After)"
            )
            raise RateLimited(
                f"{where} is rate limiting (429: {_error_message(resp)}); {asked}", wait
            )
        if status >= 500:
            raise StepError(
                "Loopline.Transient", f"{where} failed with status {status}: {_error_message(resp)}"
            )
        if status >= 400:
            raise StepError(
                "Loopline.LLMError",
                f"{where} refused the request (status {status}): {_error_message(resp)}",
            )
        sent = "".join(m.text or "" for m in request.messages) + (request.system or "")
        try:
            return parse_reply(resp.json(), sent)
        except ValueError as exc:  # JSONDecodeError included
            snippet = " ".join(resp.text[:200].split())
            raise StepError(
                "Loopline.Transient",
                f"{where} sent a malformed response (status {status}, {readable(exc)}): "
                f"{quote(snippet)}",
            ) from None
