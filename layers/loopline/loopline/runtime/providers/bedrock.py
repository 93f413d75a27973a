"""Amazon Bedrock's Converse API (boto3 ``bedrock-runtime`` ``converse``).

The conversation goes as ``messages`` (user text; assistant text and ``toolUse`` blocks;
tool results as ``toolResult`` blocks of a user message), the system text as ``system``,
``temperature``/``max_tokens`` as ``inferenceConfig``, offered tools as ``toolConfig``.
Converse has no JSON-Schema answer format, so an ``output_schema`` becomes a tool,
``ANSWER_TOOL``, whose ``inputSchema`` is the schema: the model is made to call it (forced
with ``toolChoice`` when no other tool is offered, else with ``any``) and the call's input
is the answer (sent back as JSON text). Usage comes from ``usage.inputTokens/outputTokens``.

Failures: ``ThrottlingException`` → ``Loopline.LLMRateLimited`` (Bedrock names no wait);
``ServiceUnavailableException``, ``InternalServerException``, ``ModelTimeoutException``,
``ModelNotReadyException``, timeouts and connection errors → ``Loopline.Transient``; any
other error (``ValidationException``, ``AccessDeniedException``, ...) → ``Loopline.LLMError``.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    ReadTimeoutError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from loopline.runtime.errors import StepError, readable
from loopline.runtime.model import (
    Message,
    ModelReply,
    ModelRequest,
    RateLimited,
    ToolCall,
    estimate_tokens,
)
from loopline.settings import Settings

#: The tool through which an ``output_schema`` answer is given.
ANSWER_TOOL = "final_answer"
TRANSIENT_CODES = {
    "ServiceUnavailableException",
    "InternalServerException",
    "ModelTimeoutException",
    "ModelNotReadyException",
}
THROTTLED_CODES = {"ThrottlingException", "TooManyRequestsException"}


def _tool_use(c: ToolCall) -> dict[str, Any]:
    args = c.args if isinstance(c.args, dict) else {"arguments": c.args}
    return {"toolUse": {"toolUseId": c.id, "name": c.name, "input": args}}


def converse_messages(messages: tuple[Message, ...]) -> list[dict[str, Any]]:
    """Converse ``messages``: tool results join one user message, as Converse wants roles to
    alternate."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "assistant":
            content: list[dict[str, Any]] = [{"text": m.text}] if m.text else []
            content += [_tool_use(c) for c in m.tool_calls]
            out.append({"role": "assistant", "content": content})
            continue
        if m.role == "tool":
            block: dict[str, Any] = {
                "toolResult": {
                    "toolUseId": m.tool_call_id,
                    "content": [{"text": m.text or ""}],
                }
            }
            if m.is_error:
                block["toolResult"]["status"] = "error"
        else:
            block = {"text": m.text or ""}
        if out and out[-1]["role"] == "user":
            out[-1]["content"].append(block)
        else:
            out.append({"role": "user", "content": [block]})
    return out


def converse_args(request: ModelRequest, model: str) -> dict[str, Any]:
    """The keyword arguments of ``converse`` for ``request``."""
    args: dict[str, Any] = {"modelId": model, "messages": converse_messages(request.messages)}
    if request.system:
        args["system"] = [{"text": request.system}]
    inference: dict[str, Any] = {}
    if request.max_tokens is not None:
        inference["maxTokens"] = request.max_tokens
    if request.temperature is not None:
        inference["temperature"] = request.temperature
    if inference:
        args["inferenceConfig"] = inference
    tools = [
        {
            "toolSpec": {
                "name": t.name,
                "description": t.description or t.name,
                "inputSchema": {"json": t.schema},
            }
        }
        for t in request.tools
    ]
    if request.output_schema is not None:
        tools.append(
            {
                "toolSpec": {
                    "name": ANSWER_TOOL,
                    "description": "Give the final answer: its input is the answer, "
                    "matching the required JSON Schema.",
                    "inputSchema": {"json": request.output_schema},
                }
            }
        )
    if tools:
        config: dict[str, Any] = {"tools": tools}
        if request.output_schema is not None:
            config["toolChoice"] = {"any": {}} if request.tools else {"tool": {"name": ANSWER_TOOL}}
        args["toolConfig"] = config
    return args


def parse_converse(response: dict[str, Any], request: ModelRequest) -> ModelReply:
    """A ``ModelReply`` of a ``converse`` response; ``ValueError`` when it is not one."""
    try:
        content = response["output"]["message"]["content"]
    except (KeyError, TypeError):
        raise ValueError("no output.message.content") from None
    texts: list[str] = []
    calls: list[ToolCall] = []
    answer: Any = None
    answered = False
    for block in content:
        if "text" in block:
            texts.append(str(block["text"]))
        elif "toolUse" in block:
            use = block["toolUse"]
            if request.output_schema is not None and use.get("name") == ANSWER_TOOL:
                answer, answered = use.get("input"), True
            else:
                calls.append(
                    ToolCall(str(use.get("toolUseId")), str(use.get("name")), use.get("input"))
                )
    text = "".join(texts)
    if answered and not calls:
        text = json.dumps(answer, ensure_ascii=False)
    usage = response.get("usage") or {}
    sent = "".join(m.text or "" for m in request.messages) + (request.system or "")
    return ModelReply(
        text,
        int(usage.get("inputTokens", estimate_tokens(sent))),
        int(usage.get("outputTokens", estimate_tokens(text))),
        tuple(calls),
    )


@dataclass
class BedrockModel:
    """A ``Model`` answered by Bedrock's Converse API."""

    default_model: str | None = None
    region: str | None = None
    timeout: float = 60.0
    #: A ``bedrock-runtime`` client; made on first use when not given.
    client: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> BedrockModel:
        return cls(
            default_model=settings.llm_model,
            region=settings.bedrock_region,
            timeout=settings.llm_timeout,
        )

    def connect(self) -> Any:
        """The ``bedrock-runtime`` client, made now (credentials are resolved now)."""
        return self._client()

    def _client(self) -> Any:
        with self._lock:
            if self.client is None:
                import boto3
                from botocore.config import Config

                self.client = boto3.client(
                    "bedrock-runtime",
                    region_name=self.region,
                    config=Config(
                        read_timeout=self.timeout,
                        connect_timeout=min(self.timeout, 10.0),
                        retries={"total_max_attempts": 1},
                    ),
                )
            return self.client

    def complete(self, request: ModelRequest) -> ModelReply:
        model = request.model or self.default_model
        if not model:
            raise StepError(
                "Loopline.LLMError",
                f"step {request.step}: no model named: set model on the step (or the "
                "workflow's defaults) or LOOPLINE_LLM_MODEL (a Bedrock model id)",
            )
        where = f"step {request.step}: Bedrock {model}"
        try:
            response = self._client().converse(**converse_args(request, model))
        except ClientError as exc:
            err = exc.response.get("Error", {})
            code = str(err.get("Code") or "")
            if code in THROTTLED_CODES:
                raise RateLimited(
                    f"{where} is throttling ({readable(exc)}); Bedrock names no wait"
                ) from None
            name = "Loopline.Transient" if code in TRANSIENT_CODES else "Loopline.LLMError"
            raise StepError(name, f"{where} failed: {readable(exc)}") from None
        except ReadTimeoutError:
            raise StepError(
                "Loopline.Transient", f"{where} did not answer within {self.timeout:g}s"
            ) from None
        except (BotoConnectionError, HTTPClientError) as exc:
            raise StepError(
                "Loopline.Transient", f"{where} could not be reached: {readable(exc)}"
            ) from None
        except BotoCoreError as exc:  # no credentials, an invalid parameter, ...
            raise StepError("Loopline.LLMError", f"{where} failed: {readable(exc)}") from None
        try:
            return parse_converse(response, request)
        except ValueError as exc:
            raise StepError(
                "Loopline.Transient", f"{where} sent a malformed response: {readable(exc)}"
            ) from None
        except (TypeError, AttributeError):
            raise StepError(
                "Loopline.Transient",
                f"{where} sent a malformed response: not the shape of a Converse answer",
            ) from None
