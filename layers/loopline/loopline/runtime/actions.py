"""One function per action of docs/internals.md ("Lambda payloads"), and ``dispatch``.

Every action takes the Lambda payload and an ``Env`` (the model, the way to invoke custom
step functions, the inbox of human waits) and returns ``{"output": VALUE}`` (``llm`` adds
``usage``; ``human`` returns ``{}`` because the output comes with the task token). A
failure is a ``StepError``; ``dispatch`` turns any other exception into one, so a Lambda
error never carries a bare traceback.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
import jmespath
import jmespath.exceptions
import jsonschema

from loopline.runtime.errors import StepError
from loopline.runtime.evaluate import (
    context_from_payload,
    evaluate_value,
    render_text,
    render_tree,
)
from loopline.runtime.model import Model, ModelRequest

Payload = dict[str, Any]
Result = dict[str, Any]
#: ``invoke(function, event) -> result``: runs a custom step type's function.
Invoker = Callable[[str, dict[str, Any]], Any]


# --------------------------------------------------------------------------- human waits


@dataclass
class HumanWait:
    """A human step waiting for someone: what the reviewer sees and the token to answer."""

    token: str
    workflow: str
    step: str
    execution: str
    kind: str  # approval | human_task | pause
    instruction: str | None = None
    assignee: dict[str, Any] | None = None
    notify: list[Any] = field(default_factory=list)
    context: dict[str, Any] = field(default_factory=dict)
    form_schema: dict[str, Any] | None = None
    rollback_to: list[str] = field(default_factory=list)
    timeout: int | None = None
    escalated: bool = False
    created_at: str = ""
    #: Set by whoever asks a person when their previous answer was refused.
    problem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Inbox:
    """Pending human waits, in arrival order; safe to use from several threads."""

    def __init__(self) -> None:
        self._waits: list[HumanWait] = []
        self._cond = threading.Condition()

    def add(self, wait: HumanWait) -> None:
        with self._cond:
            self._waits.append(wait)
            self._cond.notify_all()

    def pending(self, execution: str | None = None) -> list[HumanWait]:
        with self._cond:
            return [w for w in self._waits if execution is None or w.execution == execution]

    def take(self, token: str) -> HumanWait | None:
        """Remove and return the wait of ``token`` (a token is answered once)."""
        with self._cond:
            for i, w in enumerate(self._waits):
                if w.token == token:
                    return self._waits.pop(i)
        return None

    def wait_for_new(self, timeout: float) -> None:
        """Block until a wait is added or ``timeout`` seconds pass."""
        with self._cond:
            self._cond.wait(timeout)


# --------------------------------------------------------------------------- environment


@dataclass
class Env:
    """What actions need from outside: set up once per process (or per local run)."""

    model: Model | None = None
    invoke: Invoker | None = None
    inbox: Inbox = field(default_factory=Inbox)

    @classmethod
    def from_environ(cls) -> Env:
        """``LOOPLINE_LLM_SCRIPT`` names a model script (the scripted model)."""
        model: Model | None = None
        script = os.environ.get("LOOPLINE_LLM_SCRIPT")
        if script:
            from loopline.runtime.scripted import ScriptedModel

            model = ScriptedModel.from_file(script)
        return cls(model=model)


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


def _config(payload: Payload) -> dict[str, Any]:
    cfg = payload.get("config")
    return cfg if isinstance(cfg, dict) else {}


def _step(payload: Payload) -> str:
    return str(payload.get("step") or "?")


_FENCE = re.compile(r"^\s*```[A-Za-z0-9_-]*\s*\n(.*?)\n?```\s*$", re.S)


def _strip_fence(text: str) -> str:
    m = _FENCE.match(text)
    return m.group(1) if m else text


def _where(path: Any) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(root)"


def schema_problem(value: Any, schema: dict[str, Any]) -> str | None:
    """The most relevant violation of ``schema`` by ``value``, as one sentence, or None."""
    cls = jsonschema.validators.validator_for(schema)
    error = jsonschema.exceptions.best_match(cls(schema).iter_errors(value))
    if error is None:
        return None
    return f"{_where(error.absolute_path)}: {error.message} (rule {error.validator})"


def _model(env: Env, payload: Payload) -> Model:
    if env.model is None:
        raise StepError(
            "Loopline.LLMError",
            f"step {_step(payload)} asks a model, but no model is configured: "
            "run with --llm-script SCRIPT to answer model calls from a script",
        )
    return env.model


# --------------------------------------------------------------------------- llm


def llm(payload: Payload, env: Env) -> Result:
    cfg = _config(payload)
    ctx = context_from_payload(payload)
    step = _step(payload)
    prompt = render_text(cfg.get("prompt"), ctx) or ""
    system = render_text(cfg.get("system"), ctx)
    reply = _model(env, payload).complete(
        ModelRequest(
            step=step,
            prompt=prompt,
            system=system,
            model=cfg.get("model"),
            temperature=cfg.get("temperature"),
            max_tokens=cfg.get("max_tokens"),
        )
    )
    output: Any = reply.text
    schema = cfg.get("output_schema")
    if schema:
        text = _strip_fence(reply.text)
        try:
            output = json.loads(text)
        except json.JSONDecodeError as exc:
            raise StepError(
                "Loopline.InvalidOutput",
                f"step {step}: the answer is not JSON ({exc.msg} at line {exc.lineno} "
                f"column {exc.colno}), but output_schema asks for JSON: {text[:200]!r}",
            ) from None
        problem = schema_problem(output, schema)
        if problem:
            raise StepError(
                "Loopline.InvalidOutput",
                f"step {step}: the answer does not match output_schema: {problem}",
            )
    return {"output": output, "usage": reply.usage}


# --------------------------------------------------------------------------- vote


_VERDICT_WORD = re.compile(
    r"^\s*\**\s*(REFUTED|UPHELD)\b\**[\s:.,;\-\u2013\u2014]*(.*)$", re.I | re.S
)


def parse_verdict(text: str) -> tuple[bool | None, str]:
    """``(refuted, reason)`` of a voter's answer; ``refuted`` is None when unparseable.

    Accepted: JSON ``{"refuted": bool, "reason": text}``, or text that starts with
    ``REFUTED`` or ``UPHELD`` (any case) followed by the reason.
    """
    body = _strip_fence(text).strip()
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
    reply = _model(env, payload).complete(
        ModelRequest(step=_step(payload), prompt=prompt, model=cfg.get("model"))
    )
    refuted, reason = parse_verdict(reply.text)
    return {"output": {"refuted": refuted, "reason": reason, "voter": voter}}


def _verdict(v: Any) -> dict[str, Any]:
    """A verdict as ``vote_voter`` returns it, with or without the ``output`` wrapper."""
    if isinstance(v, dict) and isinstance(v.get("output"), dict) and "refuted" not in v:
        v = v["output"]
    if not isinstance(v, dict):
        return {"refuted": None, "reason": f"not a verdict: {v!r}", "voter": None}
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
            f"step {_step(payload)}: the vote has no results list to count (got {type(results).__name__})",
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


# --------------------------------------------------------------------------- tools


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    schema: dict[str, Any]
    fn: Callable[[dict[str, Any]], Any]


TOOLS: dict[str, Tool] = {}


def register_tool(tool: Tool) -> Tool:
    """Add ``tool`` to the registry (a later registration of the same name replaces it)."""
    jsonschema.validators.validator_for(tool.schema).check_schema(tool.schema)
    TOOLS[tool.name] = tool
    return tool


def call_tool(name: str, args: dict[str, Any]) -> Any:
    """Validate ``args`` against the tool's schema, then call it."""
    tool = TOOLS.get(name)
    if tool is None:
        raise StepError(
            "Loopline.Failed",
            f"unknown tool {name!r}: the tools are {', '.join(sorted(TOOLS))}",
        )
    problem = schema_problem(args, tool.schema)
    if problem:
        raise StepError("Loopline.Failed", f"tool {name}: invalid args: {problem}")
    return tool.fn(args)


def _now(args: dict[str, Any]) -> Any:
    tz: Any = UTC
    if args.get("timezone"):
        try:
            tz = ZoneInfo(args["timezone"])
        except (ZoneInfoNotFoundError, ValueError):
            raise StepError(
                "Loopline.Failed", f"tool now: unknown timezone {args['timezone']!r}"
            ) from None
    now = datetime.now(tz)
    fmt = args.get("format", "iso")
    if fmt == "unix":
        return int(now.timestamp())
    if fmt == "date":
        return now.date().isoformat()
    return now.isoformat(timespec="seconds").replace("+00:00", "Z")


def _json_query(args: dict[str, Any]) -> Any:
    try:
        return jmespath.search(args["query"], args["data"])
    except jmespath.exceptions.JMESPathError as exc:
        message = " ".join(str(exc).split())
        raise StepError(
            "Loopline.Failed", f"tool json_query: invalid query {args['query']!r}: {message}"
        ) from None


register_tool(
    Tool(
        "now",
        "The current time: ISO 8601 (default), a unix timestamp, or the date.",
        {
            "type": "object",
            "properties": {
                "format": {"enum": ["iso", "unix", "date"]},
                "timezone": {"type": "string", "minLength": 1},
            },
            "additionalProperties": False,
        },
        _now,
    )
)
register_tool(
    Tool(
        "render",
        "Returns `template`, a JSON value whose strings are templates, rendered.",
        {
            "type": "object",
            "properties": {"template": {}},
            "required": ["template"],
            "additionalProperties": False,
        },
        lambda args: args["template"],
    )
)
register_tool(
    Tool(
        "json_query",
        "Evaluates the JMESPath expression `query` against `data`.",
        {
            "type": "object",
            "properties": {"data": {}, "query": {"type": "string", "minLength": 1}},
            "required": ["data", "query"],
            "additionalProperties": False,
        },
        _json_query,
    )
)


def tool(payload: Payload, env: Env) -> Result:
    cfg = _config(payload)
    name = str(cfg.get("tool") or "")
    args = render_tree(cfg.get("args") or {}, context_from_payload(payload))
    return {"output": call_tool(name, args)}


# --------------------------------------------------------------------------- http


def _expected(expect: list[int] | None) -> str:
    return "2xx" if not expect else ", ".join(str(s) for s in expect)


def http(payload: Payload, env: Env) -> Result:
    cfg = _config(payload)
    ctx = context_from_payload(payload)
    method = str(cfg.get("method") or "GET").upper()
    url = render_text(cfg.get("url"), ctx) or ""
    headers = {k: render_text(v, ctx) or "" for k, v in (cfg.get("headers") or {}).items()}
    query = {k: render_text(v, ctx) or "" for k, v in (cfg.get("query") or {}).items()}
    body = render_tree(cfg.get("body"), ctx)
    expect: list[int] | None = cfg.get("expect_status") or None
    timeout = float(cfg.get("timeout") or 30)
    if not re.match(r"^https?://", url, re.I):
        raise StepError(
            "Loopline.Failed", f"{method} {url!r}: the url must start with http:// or https://"
        )
    content: dict[str, Any] = {}
    if isinstance(body, str):
        content["content"] = body.encode()
    elif body is not None:
        content["json"] = body
    follow = not any(300 <= s < 400 for s in expect or [])
    try:
        with httpx.Client(timeout=timeout, follow_redirects=follow) as client:
            resp = client.request(method, url, headers=headers, params=query, **content)
    except httpx.TimeoutException:
        raise StepError(
            "Loopline.Transient", f"{method} {url} timed out after {timeout:g}s"
        ) from None
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        raise StepError("Loopline.Failed", f"{method} {url}: invalid url: {exc}") from None
    except httpx.TransportError as exc:
        raise StepError(
            "Loopline.Transient", f"{method} {url} failed: {exc or type(exc).__name__}"
        ) from None
    except httpx.HTTPError as exc:
        raise StepError("Loopline.Failed", f"{method} {url} failed: {exc}") from None
    parsed: Any = resp.text
    if "json" in resp.headers.get("content-type", "").lower() and resp.content:
        try:
            parsed = resp.json()
        except ValueError:
            parsed = resp.text
    ok = resp.status_code in expect if expect else 200 <= resp.status_code < 300
    if not ok:
        snippet = resp.text[:300].strip()
        raise StepError(
            "Loopline.HTTPError",
            f"{method} {url} returned status {resp.status_code} (expected {_expected(expect)})"
            + (f": {snippet}" if snippet else ""),
        )
    return {"output": {"status": resp.status_code, "headers": dict(resp.headers), "body": parsed}}


# --------------------------------------------------------------------------- task, eval, render


def task(payload: Payload, env: Env) -> Result:
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
    return {"output": env.invoke(function, event)}


def eval_(payload: Payload, env: Env) -> Result:
    cfg = _config(payload)
    expr = cfg.get("expr")
    if not isinstance(expr, str):
        raise StepError("Loopline.Failed", f"step {_step(payload)}: eval needs an expr")
    return {"output": evaluate_value(expr, context_from_payload(payload))}


def render(payload: Payload, env: Env) -> Result:
    return {"output": render_tree(_config(payload).get("template"), context_from_payload(payload))}


# --------------------------------------------------------------------------- human


def human(payload: Payload, env: Env) -> Result:
    cfg = _config(payload)
    ctx = context_from_payload(payload)
    token = payload.get("token") or cfg.get("token")
    if not token:
        raise StepError(
            "Loopline.Failed", f"step {_step(payload)}: a human step needs a task token"
        )
    kind = str(cfg.get("kind") or "approval")
    wait = HumanWait(
        token=str(token),
        workflow=str(payload.get("workflow") or ""),
        step=_step(payload),
        execution=str(payload.get("execution") or ""),
        kind=kind,
        instruction=render_text(cfg.get("instruction"), ctx),
        assignee=cfg.get("assignee"),
        notify=list(cfg.get("notify") or []),
        context={k: render_tree(v, ctx) for k, v in (cfg.get("context") or {}).items()},
        form_schema=cfg.get("form_schema"),
        rollback_to=list(cfg.get("rollback_to") or []),
        timeout=cfg.get("timeout"),
        escalated=bool(cfg.get("escalated")),
        created_at=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
    )
    env.inbox.add(wait)
    return {}


# --------------------------------------------------------------------------- dispatch

ACTIONS: dict[str, Callable[[Payload, Env], Result]] = {
    "llm": llm,
    "vote_voter": vote_voter,
    "tool": tool,
    "http": http,
    "task": task,
    "eval": eval_,
    "render": render,
    "vote_aggregate": vote_aggregate,
    "human": human,
}


def dispatch(payload: Payload, env: Env | None = None) -> Result:
    """Run the action a Lambda payload names; every failure is a ``StepError``."""
    if not isinstance(payload, dict):
        raise StepError(
            "Loopline.Failed", f"a step payload is an object, got {type(payload).__name__}"
        )
    action = payload.get("action")
    fn = ACTIONS.get(str(action))
    if fn is None:
        raise StepError(
            "Loopline.Failed",
            f"step {_step(payload)}: unknown action {action!r} (expected one of {', '.join(ACTIONS)})",
        )
    try:
        return fn(payload, env or default_env())
    except StepError:
        raise
    except Exception as exc:
        raise StepError(
            "Loopline.Failed",
            f"step {_step(payload)}: {action} failed unexpectedly: {type(exc).__name__}: {exc}",
        ) from exc
