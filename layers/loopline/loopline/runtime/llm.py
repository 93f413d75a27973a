"""The ``llm`` and ``vote_voter`` actions (docs/internals.md, "Lambda payloads").

``llm`` renders the prompt and runs the tool-calling loop, whatever the model
(``loopline.runtime.providers``): only the step's ``tools`` are offered; each tool call the
model asks for is run and its result (or its error, as text) sent back; at most
``max_turns`` model turns. The same tool called with the same arguments a third time fails
with ``Loopline.ToolLoop``; using up ``max_turns`` still calling tools fails with
``Loopline.MaxTurns``. With ``output_schema`` the final answer is parsed as JSON (a code
fence is allowed) and validated: ``Loopline.InvalidOutput`` names the violated rule.
``usage`` sums the turns: ``{input_tokens, output_tokens, turns, tool_calls}``.

A 429 whose Retry-After is at most ``LOOPLINE_LLM_MAX_RETRY_AFTER`` seconds, and leaves
time in the Lambda invocation (``lambda_context``), is waited out and the call retried
once, here in the function; otherwise ``Loopline.LLMRateLimited`` says how long the
provider asked to wait, and the state machine's Retry decides.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from loopline.runtime.errors import StepError, quote, unexpected
from loopline.runtime.evaluate import context_from_payload, render_text
from loopline.runtime.model import (
    Message,
    Model,
    ModelReply,
    ModelRequest,
    RateLimited,
    ToolCall,
    ToolSpec,
)
from loopline.runtime.payload import Payload, Result
from loopline.runtime.payload import config_of as _config
from loopline.runtime.payload import step_of as _step
from loopline.settings import settings

if TYPE_CHECKING:
    from loopline.runtime.actions import Env


DEFAULT_MAX_TURNS = 10
#: A tool called with the same arguments this many times is a loop.
SAME_CALL_LIMIT = 3
#: Seconds a retried call needs beyond the Retry-After wait, in the Lambda's remaining time.
RETRY_MARGIN = 5.0


# --------------------------------------------------------------------------- Lambda context

_lambda_context: ContextVar[Any] = ContextVar("loopline_lambda_context", default=None)


@contextmanager
def lambda_context(context: Any) -> Iterator[None]:
    """Make the Lambda ``context`` of the running invocation known to the actions (the
    remaining time decides whether a Retry-After can be waited out)."""
    token = _lambda_context.set(context)
    try:
        yield
    finally:
        _lambda_context.reset(token)


def remaining_seconds() -> float | None:
    """Seconds left in the running Lambda invocation; None outside one."""
    remaining = getattr(_lambda_context.get(), "get_remaining_time_in_millis", None)
    if not callable(remaining):
        return None
    try:
        return float(remaining()) / 1000
    except (TypeError, ValueError):
        return None


# --------------------------------------------------------------------------- helpers


_FENCE = re.compile(r"^\s*```[A-Za-z0-9_-]*\s*\n(.*?)\n?```\s*$", re.S)


def strip_fence(text: str) -> str:
    """``text`` without a surrounding Markdown code fence (```` ```json ... ``` ````)."""
    m = _FENCE.match(text)
    return m.group(1) if m else text


def _where(path: Any) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(root)"


def schema_problem(value: Any, schema: dict[str, Any]) -> str | None:
    """The most relevant violation of ``schema`` by ``value``, as one sentence, or None."""
    import jsonschema

    from loopline.patterns import schema_validator

    error = jsonschema.exceptions.best_match(schema_validator(schema).iter_errors(value))
    if error is None:
        return None
    return f"{_where(error.absolute_path)}: {error.message} (rule {error.validator})"


def parse_output(text: str, schema: dict[str, Any], step: str) -> Any:
    """The answer ``text`` parsed as JSON and checked against ``schema``."""
    body = strip_fence(text)
    try:
        value = json.loads(body)
    except json.JSONDecodeError as exc:
        raise StepError(
            "Loopline.InvalidOutput",
            f"step {step}: the answer is not JSON ({exc.msg} at line {exc.lineno} "
            f"column {exc.colno}), but output_schema asks for JSON: {quote(body)}",
        ) from None
    try:
        problem = schema_problem(value, schema)
    except Exception as exc:  # a schema the validator cannot apply (a bad pattern)
        raise unexpected(exc, f"step {step}: output_schema cannot be checked") from exc
    if problem:
        raise StepError(
            "Loopline.InvalidOutput",
            f"step {step}: the answer does not match output_schema: {problem}",
        )
    return value


def _model(env: Env, payload: Payload) -> Model:
    if env.model is None:
        raise StepError(
            "Loopline.LLMError",
            f"step {_step(payload)} asks a model, but no model is configured: "
            "run with --llm-script SCRIPT to answer model calls from a script, or set "
            "LOOPLINE_LLM_BASE_URL (an OpenAI-compatible API) or LOOPLINE_LLM_MODEL (Bedrock)",
        )
    return env.model


# --------------------------------------------------------------------------- model calls


def _wait_refusal(wait: float) -> str | None:
    """Why a Retry-After of ``wait`` seconds is not waited out here, or None to wait."""
    limit = settings().llm_max_retry_after
    if wait > limit:
        return f"longer than LOOPLINE_LLM_MAX_RETRY_AFTER ({limit:g}s)"
    remaining = remaining_seconds()
    if remaining is not None and wait + RETRY_MARGIN > remaining:
        return f"more than the {remaining:.0f}s left in this invocation allow"
    return None


def complete(model: Model, request: ModelRequest) -> ModelReply:
    """``model.complete(request)``, waiting out a short Retry-After once (see the module)."""
    try:
        return model.complete(request)
    except RateLimited as exc:
        if exc.retry_after is None:
            raise
        refusal = _wait_refusal(exc.retry_after)
        if refusal is not None:
            raise RateLimited(
                f"{exc.message}; not waiting here: {refusal}", exc.retry_after
            ) from None
        time.sleep(exc.retry_after)
    return model.complete(request)


# --------------------------------------------------------------------------- tools


Registry = tuple[Callable[[str], Any], Callable[[str, dict[str, Any]], Any]]


def _registry() -> Registry:
    """``(get_tool, call_tool)`` of the tool registry."""
    from loopline.runtime.tools import call_tool, get_tool

    return get_tool, call_tool


def _result_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def _run_tool(call: ToolCall, offered: dict[str, ToolSpec], call_tool: Any) -> tuple[str, bool]:
    """``(result text, is_error)`` of one tool call; a failure is text for the model."""
    if call.name not in offered:
        names = ", ".join(offered) or "none"
        return f"error: there is no tool {call.name!r} here (the tools are: {names})", True
    if not isinstance(call.args, dict):
        shown = call.args if isinstance(call.args, str) else json.dumps(call.args, default=str)
        return (
            f"error: the arguments of {call.name} must be a JSON object, got {quote(shown)}",
            True,
        )
    try:
        return _result_text(call_tool(call.name, call.args)), False
    except StepError as exc:
        return f"error {exc.name}: {exc.message}", True
    except Exception as exc:  # call_tool makes StepErrors; this is a safety net
        return f"error {unexpected(exc, f'tool {call.name} failed').message}", True


def _call_key(call: ToolCall) -> tuple[str, str]:
    try:
        args = json.dumps(call.args, sort_keys=True, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        args = repr(call.args)
    return call.name, args


def run_loop(
    model: Model, request: ModelRequest, max_turns: int = DEFAULT_MAX_TURNS
) -> tuple[ModelReply, dict[str, int]]:
    """Ask ``model`` until it answers without calling tools; returns the final reply and
    the summed usage ``{input_tokens, output_tokens, turns, tool_calls}``."""
    offered = {t.name: t for t in request.tools}
    call_tool: Any = _registry()[1] if offered else None
    usage = {"input_tokens": 0, "output_tokens": 0, "turns": 0, "tool_calls": 0}
    seen: Counter[tuple[str, str]] = Counter()
    messages = list(request.messages)
    last: list[str] = []
    for _ in range(max(1, max_turns)):
        turn = ModelRequest(
            step=request.step,
            prompt=request.prompt,
            system=request.system,
            model=request.model,
            temperature=request.temperature,
            max_tokens=request.max_tokens,
            messages=tuple(messages),
            tools=request.tools,
            output_schema=request.output_schema,
        )
        reply = complete(model, turn)
        usage["input_tokens"] += reply.input_tokens
        usage["output_tokens"] += reply.output_tokens
        usage["turns"] += 1
        if not reply.tool_calls:
            return reply, usage
        messages.append(Message.assistant(reply.text, reply.tool_calls))
        for call in reply.tool_calls:
            key = _call_key(call)
            seen[key] += 1
            if seen[key] >= SAME_CALL_LIMIT:
                raise StepError(
                    "Loopline.ToolLoop",
                    f"step {request.step}: the model called {call.name} with the same "
                    f"arguments {SAME_CALL_LIMIT} times ({key[1][:200]}): it is going in circles",
                )
            usage["tool_calls"] += 1
            text, is_error = _run_tool(call, offered, call_tool)
            messages.append(Message.tool_result(call, text, is_error=is_error))
        last = [c.name for c in reply.tool_calls]
    raise StepError(
        "Loopline.MaxTurns",
        f"step {request.step}: the model was still calling tools after max_turns "
        f"({max(1, max_turns)}) turns (last: {', '.join(last)})",
    )


def _tool_specs(names: Any, step: str) -> tuple[ToolSpec, ...]:
    if not names:
        return ()
    if not isinstance(names, list):
        raise StepError("Loopline.Failed", f"step {step}: tools must be a list of tool names")
    get_tool = _registry()[0]
    specs = []
    for name in dict.fromkeys(str(n) for n in names):
        tool = get_tool(name)
        specs.append(ToolSpec(tool.name, tool.description, tool.schema))
    return tuple(specs)


# --------------------------------------------------------------------------- llm


def llm(payload: Payload, env: Env) -> Result:
    cfg = _config(payload)
    ctx = context_from_payload(payload)
    step = _step(payload)
    prompt = render_text(cfg.get("prompt"), ctx) or ""
    system = render_text(cfg.get("system"), ctx)
    schema = cfg.get("output_schema") or None
    model = _model(env, payload)
    request = ModelRequest(
        step=step,
        prompt=prompt,
        system=system,
        model=cfg.get("model"),
        temperature=cfg.get("temperature"),
        max_tokens=cfg.get("max_tokens"),
        tools=_tool_specs(cfg.get("tools"), step),
        output_schema=schema if isinstance(schema, dict) else None,
    )
    reply, usage = run_loop(model, request, int(cfg.get("max_turns") or DEFAULT_MAX_TURNS))
    output: Any = reply.text
    if isinstance(schema, dict):
        output = parse_output(reply.text, schema, step)
    return {"output": output, "usage": usage}


# --------------------------------------------------------------------------- vote


_VERDICT_WORD = re.compile(
    r"^\s*\**\s*(REFUTED|UPHELD)\b\**[\s:.,;\-\u2013\u2014]*(.*)$", re.I | re.S
)


def parse_verdict(text: str) -> tuple[bool | None, str]:
    """``(refuted, reason)`` of a voter's answer; ``refuted`` is None when unparseable.

    Accepted: JSON ``{"refuted": bool, "reason": text}``, or text that starts with
    ``REFUTED`` or ``UPHELD`` (any case) followed by the reason.
    """
    body = strip_fence(text).strip()
    try:
        data = json.loads(body)
    except json.JSONDecodeError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("refuted"), bool):
        reason = data.get("reason")
        return data["refuted"], reason if isinstance(reason, str) else json.dumps(reason)
    m = _VERDICT_WORD.match(body)
    if m:
        return m.group(1).upper() == "REFUTED", m.group(2).strip()
    return None, f"unparseable answer: {body[:200]!r}"


def voter_prompt(item: Any, rules: str, voter: Any, voters: Any) -> str:
    shown = item if isinstance(item, str) else json.dumps(item, ensure_ascii=False, indent=2)
    number = voter + 1 if isinstance(voter, int) else voter  # ``voter`` counts from 0
    return (
        f"You are voter {number} of {voters} independent, adversarial reviewers. "
        "Try hard to refute the item below: it is refuted when it breaks the rules.\n\n"
        f"Rules:\n{rules}\n\n"
        f"Item:\n{shown}\n\n"
        'Answer with JSON only: {"refuted": true or false, "reason": "one sentence"}.'
    )


def vote_voter(payload: Payload, env: Env) -> Result:
    cfg = _config(payload)
    values = payload.get("values") or {}
    item = (values.get("vars") or {}).get("item")
    voter = cfg.get("voter", payload.get("voter"))
    prompt = voter_prompt(item, str(cfg.get("rules") or ""), voter, cfg.get("voters"))
    reply = complete(
        _model(env, payload),
        ModelRequest(step=_step(payload), prompt=prompt, model=cfg.get("model")),
    )
    refuted, reason = parse_verdict(reply.text)
    return {"output": {"refuted": refuted, "reason": reason, "voter": voter}}
