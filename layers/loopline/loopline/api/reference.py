"""The API reference (``docs/api.md``), rendered from the OpenAPI document the API serves,
so the two never disagree: ``python -m loopline.api.reference > docs/api.md`` (``make
docs``); a test checks the file is up to date."""

from __future__ import annotations

import json
import sys
from typing import Any

_METHODS = ("get", "put", "post", "delete", "patch")


def _schema_text(schema: dict[str, Any]) -> str:
    """A parameter's schema in a few words (``integer, 1..100, default 20``)."""
    if "anyOf" in schema:
        options = [s for s in schema["anyOf"] if s.get("type") != "null"]
        schema = {**schema, **(options[0] if len(options) == 1 else {})}
    words = []
    if "enum" in schema:
        words.append(" \\| ".join(f"`{v}`" for v in schema["enum"]))
    elif "type" in schema:
        words.append(str(schema["type"]))
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None or high is not None:
        words.append(
            f"{_num(low) if low is not None else ''}..{_num(high) if high is not None else ''}"
        )
    if "maxLength" in schema:
        words.append(f"at most {schema['maxLength']} characters")
    if "pattern" in schema:
        words.append(f"pattern `{schema['pattern']}`")
    if "default" in schema:
        words.append(f"default `{json.dumps(schema['default'])}`")
    return ", ".join(words)


def _num(value: Any) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _ref(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = doc["components"]["schemas"][name]
    return schema


def render(doc: dict[str, Any]) -> str:
    info = doc["info"]
    out = [
        "# Task API reference",
        "",
        "<!-- Generated from the OpenAPI document by `make docs` "
        "(python -m loopline.api.reference); do not edit. -->",
        "",
        f"{info['title']} {info['version']} (OpenAPI {doc['openapi']}, served at "
        "`GET /v1/openapi.json`).",
        "",
        info.get("description", ""),
        "",
        "Every route needs `Authorization: Bearer <key>`; without it the answer is `401`. "
        "Another tenant's ids are `404`, as ids that do not exist.",
        "",
    ]
    for path in sorted(doc["paths"]):
        for method in _METHODS:
            op = doc["paths"][path].get(method)
            if op is None:
                continue
            out += [f"## `{method.upper()} {path}`", ""]
            if op.get("summary"):
                out += [f"**{op['summary']}.**", ""]
            if op.get("description"):
                out += [op["description"], ""]
            params = op.get("parameters") or []
            if params:
                out += ["| parameter | in | required | schema |", "|---|---|---|---|"]
                for p in params:
                    out.append(
                        f"| `{p['name']}` | {p['in']} | {'yes' if p.get('required') else 'no'} "
                        f"| {_schema_text(p.get('schema') or {})} |"
                    )
                out.append("")
            body = op.get("requestBody")
            if body:
                media = sorted(body.get("content", {}))
                out.append("Body: " + ", ".join(f"`{m}`" for m in media) + ".")
                schema = body.get("content", {}).get("application/json", {}).get("schema")
                if schema:
                    schema = _ref(doc, schema)
                    props = schema.get("properties") or {}
                    required = set(schema.get("required") or [])
                    if props:
                        out += ["", "| field | required | schema |", "|---|---|---|"]
                        for name, prop in props.items():
                            out.append(
                                f"| `{name}` | {'yes' if name in required else 'no'} "
                                f"| {_schema_text(_ref(doc, prop))} |"
                            )
                out.append("")
            responses = op.get("responses") or {}
            out += ["| status | means |", "|---|---|"]
            for code in sorted(responses, key=str):
                out.append(f"| {code} | {responses[code].get('description', '')} |")
            out.append("")
    return "\n".join(out).rstrip() + "\n"


def main() -> int:
    from loopline.api.app import openapi_document

    sys.stdout.write(render(openapi_document()))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
