"""The custom step type `word_count` of workflows/release_gate.yaml.

TaskFunction invokes a custom step type's function with ``{"workflow", "step",
"execution", "args"}`` (args rendered) and the step's output is what it returns: here the
number of words of ``args.text``.
"""

from typing import Any


def handler(event: dict[str, Any], context: Any) -> int:
    return len(str(event["args"]["text"]).split())
