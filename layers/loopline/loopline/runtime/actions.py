"""One function per action of docs/internals.md ("Lambda payloads"), and ``dispatch``.

Every action takes the Lambda payload and an ``Env`` (the model, the way to invoke custom
step functions) and returns ``{"output": VALUE}`` (``llm`` adds
``usage``; ``human`` returns ``{}`` because the output comes with the task token). A
failure is a ``StepError``; ``dispatch`` turns any other exception into a readable one
(``loopline.runtime.errors``), so a Lambda error never carries a traceback, a class name or
a credential.

Each action imports what it needs when it runs (``ACTIONS`` maps names to thin functions
that do): a Lambda function imports the modules of its own actions only, on its first
call, and the names re-exported here load on first use (``__getattr__``).
"""

from __future__ import annotations

import importlib
import json
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loopline.runtime.errors import StepError, clean, json_type, quote, unexpected
from loopline.runtime.payload import Payload, Result, expanded
from loopline.runtime.payload import config_of as _config
from loopline.runtime.payload import step_of as _step
from loopline.settings import ConfigError, settings

if TYPE_CHECKING:
    from loopline.runtime.http import http as http
    from loopline.runtime.llm import llm as llm
    from loopline.runtime.llm import parse_verdict as parse_verdict
    from loopline.runtime.llm import schema_problem as schema_problem
    from loopline.runtime.llm import vote_voter as vote_voter
    from loopline.runtime.llm import voter_prompt as voter_prompt
    from loopline.runtime.model import Model
    from loopline.runtime.tools import TOOLS as TOOLS
    from loopline.runtime.tools import Tool as Tool
    from loopline.runtime.tools import call_tool as call_tool
    from loopline.runtime.tools import get_tool as get_tool
    from loopline.runtime.tools import load_tool_modules as load_tool_modules
    from loopline.runtime.tools import register_tool as register_tool
    from loopline.runtime.tools import tool_specs as tool_specs

#: Names this module re-exports, each from the module that defines it: imported when first
#: used, so a function imports only the modules of the actions it runs.
_REEXPORTS = {
    "http": "loopline.runtime.http",
    "llm": "loopline.runtime.llm",
    "vote_voter": "loopline.runtime.llm",
    "parse_verdict": "loopline.runtime.llm",
    "schema_problem": "loopline.runtime.llm",
    "voter_prompt": "loopline.runtime.llm",
    "TOOLS": "loopline.runtime.tools",
    "Tool": "loopline.runtime.tools",
    "call_tool": "loopline.runtime.tools",
    "get_tool": "loopline.runtime.tools",
    "load_tool_modules": "loopline.runtime.tools",
    "register_tool": "loopline.runtime.tools",
    "tool_specs": "loopline.runtime.tools",
}


def __getattr__(name: str) -> Any:
    module = _REEXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


#: ``invoke(function, event) -> result``: runs a custom step type's function.
Invoker = Callable[[str, dict[str, Any]], Any]


# --------------------------------------------------------------------------- environment


@dataclass
class Env:
    """What actions need from outside: set up once per process (or per local run)."""

    model: Model | None = None
    invoke: Invoker | None = None
    #: Where large outputs go (overrides ``LOOPLINE_BUCKET``; the local stack sets it).
    bucket: str | None = None

    @classmethod
    def from_environ(cls) -> Env:
        """The model the settings name (``loopline.runtime.providers.provider_for``)."""
        from loopline.runtime.providers import provider_for

        return cls(model=provider_for(settings()), invoke=invoke_lambda, bucket=settings().bucket)


def invoke_lambda(function: str, event: dict[str, Any]) -> Any:
    """Invoke a custom step type's Lambda function (name or ARN) and return its result;
    its error becomes a ``StepError`` with the function's error type as the name."""
    from loopline import aws

    try:
        resp = aws.client("lambda").invoke(
            FunctionName=function, Payload=json.dumps(event).encode()
        )
        body = resp["Payload"].read()
    except Exception as exc:  # throttling is worth a retry, a missing function is not
        raise unexpected(exc, "it could not be invoked") from exc
    try:
        result = json.loads(body) if body else None
    except ValueError:
        result = body.decode(errors="replace")
    if resp.get("FunctionError"):
        name = result.get("errorType") if isinstance(result, dict) else None
        message = result.get("errorMessage") if isinstance(result, dict) else result
        raise StepError(str(name or "Loopline.Failed"), clean(str(message or "")) or "no message")
    return result


_default_env: Env | None = None
_default_lock = threading.Lock()


def default_env() -> Env:
    global _default_env
    with _default_lock:
        if _default_env is None:
            _default_env = Env.from_environ()
        return _default_env


def set_default_env(env: Env | None) -> Env | None:
    """Make ``env`` what handlers use (the local stack's model and inbox); returns the
    previous one so it can be put back."""
    global _default_env
    with _default_lock:
        previous, _default_env = _default_env, env
        return previous


# --------------------------------------------------------------------------- helpers


# --------------------------------------------------------------------------- vote


def _verdict(v: Any) -> dict[str, Any]:
    """A verdict as ``vote_voter`` returns it, with or without the ``output`` wrapper."""
    if isinstance(v, dict) and isinstance(v.get("output"), dict) and "refuted" not in v:
        v = v["output"]
    if not isinstance(v, dict):
        shown = json.dumps(v, ensure_ascii=False, default=str)
        return {"refuted": None, "reason": f"not a verdict: {shown[:200]}", "voter": None}
    refuted = v.get("refuted")
    return {
        "refuted": refuted if isinstance(refuted, bool) else None,
        "reason": v.get("reason"),
        "voter": v.get("voter"),
    }


def vote_aggregate(payload: Payload, env: Env) -> Result:
    cfg = _config(payload)
    results = payload.get("results", cfg.get("results"))
    if not isinstance(results, list):
        raise StepError(
            "Loopline.Failed",
            f"step {_step(payload)}: the vote has no results list to count (got {json_type(results)})",
        )
    voters = int(cfg.get("voters") or 0)
    threshold = cfg.get("threshold")
    if threshold is None:
        threshold = math.ceil(voters / 2) if voters else 1
    survived: list[Any] = []
    dropped: list[Any] = []
    verdicts: list[list[dict[str, Any]]] = []
    for entry in results:
        entry = entry if isinstance(entry, dict) else {"item": entry, "verdicts": []}
        # ``{"item", "verdicts"}``, or a Map iteration's state ``{"vars": {"item"}, "verdicts"}``
        item = entry["item"] if "item" in entry else (entry.get("vars") or {}).get("item")
        vs = [_verdict(v) for v in entry.get("verdicts") or []]
        verdicts.append(vs)
        refutations = sum(1 for v in vs if v["refuted"] is True)
        (dropped if refutations >= threshold else survived).append(item)
    return {
        "output": {
            "survived": survived,
            "dropped": dropped,
            "total": len(results),
            "kept": len(survived),
            "verdicts": verdicts,
        }
    }


# --------------------------------------------------------------------------- tool
# The tool registry and the built-in tools are in loopline.runtime.tools, the http action
# in loopline.runtime.http (both re-exported here).


def tool(payload: Payload, env: Env) -> Result:
    from loopline.runtime.evaluate import context_from_payload, render_tree
    from loopline.runtime.tools import call_tool

    cfg = _config(payload)
    name = str(cfg.get("tool") or "")
    args = render_tree(cfg.get("args") or {}, context_from_payload(payload))
    return {"output": call_tool(name, args)}


# --------------------------------------------------------------------------- task, eval, render


def task(payload: Payload, env: Env) -> Result:
    from loopline.runtime.evaluate import context_from_payload, render_tree

    cfg = _config(payload)
    function = str(cfg.get("function") or "")
    if not function:
        raise StepError(
            "Loopline.Failed", f"step {_step(payload)}: the custom step type names no function"
        )
    if env.invoke is None:
        raise StepError(
            "Loopline.Failed",
            f"step {_step(payload)}: no way to invoke custom step functions is configured",
        )
    args = render_tree(cfg.get("args") or {}, context_from_payload(payload))
    event = {
        "workflow": payload.get("workflow"),
        "step": payload.get("step"),
        "execution": payload.get("execution"),
        "args": args,
    }
    try:
        result = env.invoke(function, event)
    except StepError as exc:
        raise function_error(exc, function, _step(payload)) from None
    try:
        json.dumps(result, allow_nan=False)
    except (TypeError, ValueError):
        raise StepError(
            "Loopline.Failed",
            f"step {_step(payload)}: function {function} returned a value that is not JSON",
        ) from None
    return {"output": result}


def function_error(exc: StepError, function: str, step: str) -> StepError:
    """The error of a custom step type's function as the step's error.

    A dotted error type is a name the function chose (``WordCount.TooLong``, a
    ``Loopline.*`` name, Lambda's ``Sandbox.Timedout``) and is kept; any other is an
    unhandled exception named after its Python class by Lambda (``ValueError``), which
    becomes ``Loopline.Failed``: a workflow routes on error names, not on class names.
    """
    name = exc.name if "." in exc.name else "Loopline.Failed"
    return StepError(name, f"step {step}: function {function} failed: {exc.message}")


def eval_(payload: Payload, env: Env) -> Result:
    from loopline.dsl.expr import ExpressionError, parse_expression
    from loopline.runtime.evaluate import context_from_payload, evaluate_value

    cfg = _config(payload)
    expr = cfg.get("expr")
    if not isinstance(expr, str):
        raise StepError("Loopline.Failed", f"step {_step(payload)}: eval needs an expr")
    try:
        parsed = parse_expression(expr)
    except ExpressionError as exc:
        raise StepError(
            "Loopline.Failed", f"step {_step(payload)}: invalid expression {quote(expr)}: {exc}"
        ) from None
    return {"output": evaluate_value(parsed, context_from_payload(payload))}


def render(payload: Payload, env: Env) -> Result:
    from loopline.runtime.evaluate import context_from_payload, render_tree

    return {"output": render_tree(_config(payload).get("template"), context_from_payload(payload))}


# --------------------------------------------------------------------------- human


def human(payload: Payload, env: Env) -> Result:
    """Record the human task of a human step (``loopline.service.humans``): its people are
    told, and the decision comes back through Step Functions with the task token."""
    from loopline.runtime.evaluate import context_from_payload, render_text, render_tree

    cfg = _config(payload)
    ctx = context_from_payload(payload)
    token = payload.get("token") or cfg.get("token")
    if not token:
        raise StepError(
            "Loopline.Failed", f"step {_step(payload)}: a human step needs a task token"
        )
    if not settings().table:
        raise StepError(
            "Loopline.Failed",
            f"step {_step(payload)}: human steps need the tasks table (LOOPLINE_TABLE)",
        )
    from loopline.service import humans

    humans.open_human_task(
        {
            "token": str(token),
            "workflow": str(payload.get("workflow") or ""),
            "step": _step(payload),
            "execution": str(payload.get("execution") or ""),
            "kind": str(cfg.get("kind") or "approval"),
            "instruction": render_text(cfg.get("instruction"), ctx),
            "assignee": cfg.get("assignee"),
            "notify": list(cfg.get("notify") or []),
            "context": {k: render_tree(v, ctx) for k, v in (cfg.get("context") or {}).items()},
            "form_schema": cfg.get("form_schema"),
            "rollback_to": list(cfg.get("rollback_to") or []),
            "timeout": cfg.get("timeout"),
            "escalated": bool(cfg.get("escalated")),
        }
    )
    return {}


# --------------------------------------------------------------------------- dispatch


def _llm(payload: Payload, env: Env) -> Result:
    from loopline.runtime.llm import llm

    return llm(payload, env)


def _vote_voter(payload: Payload, env: Env) -> Result:
    from loopline.runtime.llm import vote_voter

    return vote_voter(payload, env)


def _http(payload: Payload, env: Env) -> Result:
    from loopline.runtime.http import http

    return http(payload, env)


ACTIONS: dict[str, Callable[[Payload, Env], Result]] = {
    "llm": _llm,
    "vote_voter": _vote_voter,
    "tool": tool,
    "http": _http,
    "task": task,
    "eval": eval_,
    "render": render,
    "vote_aggregate": vote_aggregate,
    "human": human,
}


def dispatch(payload: Payload, env: Env | None = None) -> Result:
    """Run the action a Lambda payload names; every failure is a ``StepError``.

    An invalid configuration (``ConfigError``) is ``Loopline.Failed`` with its message;
    any other unexpected exception becomes a readable ``StepError`` named by its cause
    (``loopline.runtime.errors.unexpected``), chained to the original for the log.
    """
    if not isinstance(payload, dict):
        raise StepError("Loopline.Failed", f"a step payload is an object, got {json_type(payload)}")
    payload = expanded(payload)
    action = payload.get("action")
    fn = ACTIONS.get(str(action))
    if fn is None:
        raise StepError(
            "Loopline.Failed",
            f"step {_step(payload)}: unknown action {str(action)!r} "
            f"(expected one of {', '.join(ACTIONS)})",
        )
    try:
        from loopline.runtime import largevalues
        from loopline.runtime.s3scope import CallContext, calling

        env = env or default_env()
        bucket = env.bucket or settings().bucket
        # Large values (loopline.runtime.largevalues): references in the payload are
        # resolved before the action runs, a large output is stored after it. Tools see
        # the step they run for through the call context (loopline.runtime.s3scope).
        with calling(CallContext.of(payload, bucket)) as scope:
            result = fn(largevalues.resolve_payload(payload, bucket, scope), env)
            return largevalues.offload(result, payload, bucket, scope)
    except StepError:
        raise
    except ConfigError as exc:
        raise StepError(
            "Loopline.Failed", f"step {_step(payload)}: the configuration is invalid: {exc}"
        ) from exc
    except Exception as exc:
        raise unexpected(exc, f"step {_step(payload)}: {action} failed unexpectedly") from exc
