"""The tool registry: what ``tool:`` steps and the ``llm`` tool loop can call.

A tool is a name, a description (shown to models), a JSON Schema for its args and a
function ``fn(args) -> JSON value``. ``call_tool`` validates the args against the schema
before calling. The built-in tools are registered here; more come from the modules listed
in ``LOOPLINE_TOOL_MODULES`` (comma-separated), imported once, the first time the registry
is used, which call ``register_tool`` when imported (README, "Adding your own tools").
"""

from __future__ import annotations

import difflib
import importlib
import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jsonschema

from loopline.runtime import s3scope
from loopline.runtime.errors import FAILED, StepError, readable, unexpected
from loopline.settings import settings


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    #: JSON Schema of the args object.
    schema: dict[str, Any]
    fn: Callable[[dict[str, Any]], Any]


TOOLS: dict[str, Tool] = {}

_lock = threading.RLock()
_loaded_modules: set[str] = set()


def register_tool(tool: Tool) -> Tool:
    """Add ``tool`` to the registry (a later registration of the same name replaces it)."""
    jsonschema.validators.validator_for(tool.schema).check_schema(tool.schema)
    with _lock:
        TOOLS[tool.name] = tool
    return tool


def load_tool_modules() -> None:
    """Import the modules of ``LOOPLINE_TOOL_MODULES`` not imported yet.

    Raise ``StepError`` (``Loopline.Failed``) naming a module that cannot be imported.
    """
    with _lock:
        for name in settings().tool_module_list:
            if name in _loaded_modules:
                continue
            try:
                importlib.import_module(name)
            except Exception as exc:
                raise StepError(
                    FAILED,
                    f"the tool module {name!r} (LOOPLINE_TOOL_MODULES) could not be imported: "
                    f"{readable(exc)}",
                ) from exc
            _loaded_modules.add(name)


def get_tool(name: str) -> Tool:
    """The tool named ``name``; raise ``StepError`` (``Loopline.Failed``) when unknown."""
    load_tool_modules()
    tool = TOOLS.get(name)
    if tool is None:
        close = difflib.get_close_matches(name, list(TOOLS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise StepError(
            "Loopline.Failed",
            f"unknown tool {name!r}{hint}: the tools are {', '.join(sorted(TOOLS))}",
        )
    return tool


def tool_specs(names: Iterable[str]) -> list[Tool]:
    """The tools named ``names``, in order (for the ``llm`` tool loop)."""
    return [get_tool(n) for n in names]


def _where(path: Iterable[Any]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(root)"


def args_problem(args: Any, schema: dict[str, Any]) -> str | None:
    """The most relevant violation of ``schema`` by ``args``, as one sentence, or None."""
    cls = jsonschema.validators.validator_for(schema)
    error = jsonschema.exceptions.best_match(cls(schema).iter_errors(args))
    if error is None:
        return None
    return f"{_where(error.absolute_path)}: {error.message} (rule {error.validator})"


def call_tool(name: str, args: dict[str, Any]) -> Any:
    """Validate ``args`` against the tool's schema, then call it.

    A ``StepError`` the tool raises fails the step as it is; any other exception is a
    readable ``Loopline.Failed`` (``Loopline.Transient`` when it is worth retrying, see
    ``loopline.runtime.errors``) naming the tool. A tool reads the step it runs for
    (workflow, execution, artifacts bucket) with ``loopline.runtime.s3scope.current()``.
    """
    tool = get_tool(name)
    try:
        problem = args_problem(args, tool.schema)
    except Exception as exc:  # a schema the validator cannot apply (a bad pattern)
        raise unexpected(exc, f"tool {name}: its args schema cannot be checked") from exc
    if problem:
        raise StepError(FAILED, f"tool {name}: invalid args: {problem}")
    try:
        return tool.fn(args)
    except StepError:
        raise
    except Exception as exc:
        raise unexpected(exc, f"tool {name} failed") from exc


# --------------------------------------------------------------------------- built-ins


def _now(args: dict[str, Any]) -> Any:
    tz: Any = UTC
    if args.get("timezone"):
        try:
            tz = ZoneInfo(args["timezone"])
        except (ZoneInfoNotFoundError, ValueError, OSError):
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
    query = args["query"]
    if args.get("language", "jmespath") == "jsonpath":
        from jsonpath_ng.ext import parse as jsonpath_parse

        try:
            expr = jsonpath_parse(query)
        except Exception as exc:  # the parser raises several exception types
            message = " ".join(str(exc).split())
            raise StepError(
                "Loopline.Failed", f"tool json_query: invalid JSONPath {query!r}: {message}"
            ) from None
        return [match.value for match in expr.find(args["data"])]
    import jmespath
    import jmespath.exceptions

    try:
        return jmespath.search(query, args["data"])
    except jmespath.exceptions.JMESPathError as exc:
        message = " ".join(str(exc).split())
        raise StepError(
            "Loopline.Failed", f"tool json_query: invalid query {query!r}: {message}"
        ) from None


def _http_get(args: dict[str, Any]) -> Any:
    from loopline.runtime import http

    return http.fetch(
        "GET",
        args["url"],
        headers=args.get("headers"),
        query={k: str(v) for k, v in (args.get("query") or {}).items()},
        expect_status=args.get("expect_status"),
        timeout=float(args.get("timeout", 30)),
    ).to_output()


def _s3_uri(args: dict[str, Any], tool: str) -> str:
    """The ``s3://`` URI of the object ``args["uri"]`` addresses, within what the workflow
    may reach (``loopline.runtime.s3scope``)."""
    bucket, key = s3scope.locate(
        args["uri"], s3scope.current(), settings().s3_allow_list, f"tool {tool}"
    )
    return f"s3://{bucket}/{key}"


def _s3_get(args: dict[str, Any]) -> Any:
    from loopline.runtime import largevalues

    uri = _s3_uri(args, "s3_get")
    data, content_type = largevalues.get_object(uri)
    text = data.decode("utf-8", errors="replace")
    if "json" in content_type.lower() or uri.lower().endswith(".json"):
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def _s3_put(args: dict[str, Any]) -> Any:
    from loopline.runtime import largevalues

    uri = _s3_uri(args, "s3_put")
    body = args["body"]
    if isinstance(body, str):
        data, default_type = body.encode(), "text/plain; charset=utf-8"
    else:
        data, default_type = json.dumps(body, ensure_ascii=False).encode(), "application/json"
    largevalues.put_object(uri, data, args.get("content_type") or default_type)
    return {"uri": uri, "size": len(data)}


#: A key under the workflow's prefix (``reports/x.json``) or an ``s3://bucket/key`` URI.
_S3_URI = {"type": "string", "minLength": 1, "maxLength": 2048}

BUILTINS = [
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
    ),
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
    ),
    Tool(
        "json_query",
        "Evaluates `query` against `data`: a JMESPath expression (default), or with "
        "language jsonpath a JSONPath expression, which returns the list of matches.",
        {
            "type": "object",
            "properties": {
                "data": {},
                "query": {"type": "string", "minLength": 1},
                "language": {"enum": ["jmespath", "jsonpath"]},
            },
            "required": ["data", "query"],
            "additionalProperties": False,
        },
        _json_query,
    ),
    Tool(
        "http_get",
        "GETs `url` (public hosts only) and returns {status, headers, body}; "
        "the body is parsed when it is JSON.",
        {
            "type": "object",
            "properties": {
                "url": {"type": "string", "pattern": "^[hH][tT][tT][pP][sS]?://"},
                "headers": {"type": "object", "additionalProperties": {"type": "string"}},
                "query": {
                    "type": "object",
                    "additionalProperties": {"type": ["string", "number", "boolean"]},
                },
                "expect_status": {
                    "type": "array",
                    "items": {"type": "integer", "minimum": 100, "maximum": 599},
                },
                "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 900},
            },
            "required": ["url"],
            "additionalProperties": False,
        },
        _http_get,
    ),
    Tool(
        "s3_get",
        "Reads the S3 object `uri` (a key such as reports/x.json under this workflow's "
        "prefix, or an s3://bucket/key URI): parsed JSON when it is JSON, else text.",
        {
            "type": "object",
            "properties": {"uri": _S3_URI},
            "required": ["uri"],
            "additionalProperties": False,
        },
        _s3_get,
    ),
    Tool(
        "s3_put",
        "Writes `body` to the S3 object `uri` (a key such as reports/x.json under this "
        "workflow's prefix, or an s3://bucket/key URI; a string as is, anything else as "
        "JSON); returns {uri, size} with the full s3:// URI.",
        {
            "type": "object",
            "properties": {
                "uri": _S3_URI,
                "body": {},
                "content_type": {"type": "string", "minLength": 1},
            },
            "required": ["uri", "body"],
            "additionalProperties": False,
        },
        _s3_put,
    ),
]

for _tool in BUILTINS:
    register_tool(_tool)
