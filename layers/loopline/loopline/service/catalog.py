"""The stack's workflows: what the service knows of the workflows deployed with the stack.

``make compile`` writes the catalog into the package (so the layer ships it to every
function: the API function checks inputs with it, the status events function nests the
steps of a stack workflow's task with it)::

    python -m loopline.service.catalog workflows/*.yaml -o layers/loopline/loopline/catalog.json

one entry per workflow, by name: ``{name, version, description, source, inputs_schema,
steps, graph}`` (``source`` is the workflow file's text, which submission loads to check
inputs; ``steps`` the step ids and kinds in file order; ``graph`` Mermaid). The file is
byte-identical for the same workflow files, and a test keeps it up to date, as the
state machines are. A function reads it once, when first needed (``entries``); which of these
workflows a tenant may start is decided by ``LOOPLINE_STACK_WORKFLOWS`` (the state machine
of each).
"""

from __future__ import annotations

import argparse
import json
import sys
from functools import cache
from pathlib import Path
from typing import Any

#: The catalog the layer ships (``use`` points elsewhere, for tests).
PACKAGED = Path(__file__).resolve().parents[1] / "catalog.json"
_path: Path | None = PACKAGED


def describe(wf: Any, source: str) -> dict[str, Any]:
    """The catalog entry (and the stored record) of a loaded workflow: ``{name, version,
    description, source, inputs_schema, steps, graph}``."""
    from loopline.compiler.graph import mermaid
    from loopline.dsl.inputs import workflow_schema

    return {
        "name": wf.name,
        "version": wf.version,
        "description": wf.description,
        "source": source,
        "inputs_schema": workflow_schema(wf),
        "steps": [{"id": s.id, "kind": s.kind} for s in wf.all_steps()],
        "graph": mermaid(wf),
    }


def build(paths: list[Path]) -> dict[str, Any]:
    """The catalog of the workflow files ``paths``; raise ``WorkflowInvalid``."""
    from loopline.dsl import load_workflow_text

    entries = []
    for path in paths:
        text = path.read_text(encoding="utf-8")
        entries.append(describe(load_workflow_text(text, str(path)), text))
    names = [e["name"] for e in entries]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"two workflow files have the name {', '.join(duplicates)}")
    return {"workflows": sorted(entries, key=lambda e: e["name"])}


def dumps(catalog: dict[str, Any]) -> str:
    """The catalog's canonical text (byte-stable)."""
    return json.dumps(catalog, indent=2, ensure_ascii=False) + "\n"


# --------------------------------------------------------------------------- reading


def use(path: Path | None) -> None:
    """Read the catalog from ``path`` instead of the packaged one (None: no catalog)."""
    global _path
    _path = path
    entries.cache_clear()


@cache
def entries() -> dict[str, dict[str, Any]]:
    """The catalog's entries by workflow name (empty when no catalog is in use)."""
    if _path is None or not _path.is_file():
        return {}
    data = json.loads(_path.read_text(encoding="utf-8"))
    return {e["name"]: e for e in data.get("workflows", [])}


# --------------------------------------------------------------------------- command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loopline.service.catalog",
        description="Write the API's catalog of the stack's workflows.",
    )
    parser.add_argument("files", nargs="+", type=Path, help="workflow files")
    parser.add_argument("-o", "--output", type=Path, help="the catalog file (default: stdout)")
    args = parser.parse_args(argv)
    from loopline.dsl import WorkflowInvalid

    try:
        text = dumps(build(sorted(args.files)))
    except (WorkflowInvalid, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
