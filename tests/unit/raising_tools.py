"""A tool module whose tools fail the way careless code does: with whatever exception
(tests of readable causes). ``raise_it`` raises the exception ``args.kind`` names."""

from __future__ import annotations

from typing import Any

from loopline.runtime.tools import Tool, register_tool


class QuotaBlown(Exception):
    pass


class _Thing:
    pass


def raise_it(args: dict[str, Any]) -> Any:
    kind = args["kind"]
    data: dict[str, Any] = {}
    if kind == "key":
        return data["missing"]
    if kind == "type":
        return len(None)  # type: ignore[arg-type]
    if kind == "attribute":
        return None.strip()  # type: ignore[attr-defined]
    if kind == "zero":
        return 1 / 0
    if kind == "custom":
        raise QuotaBlown(f"quota blown for {_Thing()}")
    if kind == "silent":
        raise QuotaBlown()
    if kind == "os":
        return open("/nonexistent/loopline/file.txt").read()
    if kind == "timeout":
        raise TimeoutError("the backend did not answer")
    raise ValueError(f"unknown kind {kind}")


register_tool(
    Tool(
        name="raise_it",
        description="Fails with the exception `kind` names.",
        schema={
            "type": "object",
            "properties": {"kind": {"type": "string"}},
            "required": ["kind"],
            "additionalProperties": False,
        },
        fn=raise_it,
    )
)
