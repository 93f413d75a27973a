"""A tool module as README "Adding your own tools" shows it (LOOPLINE_TOOL_MODULES)."""

from __future__ import annotations

from typing import Any

from loopline.runtime.errors import StepError
from loopline.runtime.tools import Tool, register_tool


def word_count(args: dict[str, Any]) -> dict[str, Any]:
    words = args["text"].split()
    if args.get("max") is not None and len(words) > args["max"]:
        # A StepError fails the step with that error name (Retry/Catch route on it).
        raise StepError(
            "Loopline.Failed", f"word_count: {len(words)} words, more than {args['max']}"
        )
    return {"words": len(words), "longest": max(words, key=len, default="")}


register_tool(
    Tool(
        name="word_count",
        description="Counts the words of `text` and finds the longest one.",
        schema={
            "type": "object",
            "properties": {
                "text": {"type": "string"},
                "max": {"type": "integer", "minimum": 0},
            },
            "required": ["text"],
            "additionalProperties": False,
        },
        fn=word_count,
    )
)
