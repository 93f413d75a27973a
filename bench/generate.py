"""Generate large workflows for the compile benchmark: a realistic mix of step kinds."""

from __future__ import annotations

from typing import Any

import yaml


def generate(n: int) -> dict[str, Any]:
    """A workflow with ``n`` steps in all (nested steps included)."""
    steps: list[dict[str, Any]] = []
    count = 0
    i = 0
    while count < n:
        kind = i % 5
        sid = f"s{i}"
        prev = f"steps.s{i - 1}.output" if i else "inputs.topic"
        if kind == 0 or n - count < 4:
            steps.append({"id": sid, "llm": f"Step {i}: improve {{{{ {prev} }}}}", "timeout": 60})
            count += 1
        elif kind == 1:
            steps.append({"id": sid, "tool": "render", "args": {"template": f"{{{{ {prev} }}}}"}})
            count += 1
        elif kind == 2:
            steps.append(
                {
                    "id": sid,
                    "parallel": [
                        {"id": f"{sid}a", "llm": f"left {{{{ {prev} }}}}"},
                        {"id": f"{sid}b", "llm": f"right {{{{ {prev} }}}}"},
                    ],
                }
            )
            count += 3
        elif kind == 3:
            steps.append(
                {
                    "id": sid,
                    "if": f"len({prev}) > 0 or inputs.force == true",
                    "branch": {
                        "if": "inputs.force == true",
                        "then": [{"id": f"{sid}t", "tool": "now"}],
                        "else": [{"id": f"{sid}e", "tool": "now"}],
                    },
                }
            )
            count += 3
        else:
            steps.append({"id": sid, "assert": f"exists({prev})", "message": "missing"})
            count += 1
        i += 1
    return {
        "name": f"bench-{n}",
        "inputs": {
            "topic": {"type": "string", "default": "x"},
            "force": {"type": "boolean", "default": False},
        },
        "steps": steps,
    }


def write(n: int, path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(generate(n), f, sort_keys=False)
