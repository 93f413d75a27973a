"""Loading a workflow: parse, validate the structure, run the whole-workflow checks."""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from pathlib import Path as FsPath

from loopline.dsl.checks import CheckContext, check_workflow, step_locations
from loopline.dsl.loader import (
    Document,
    parse_document,
    read_file,
    validate_document,
    with_parse_problems,
)
from loopline.dsl.models import Workflow
from loopline.dsl.problems import Loc, Problem, WorkflowInvalid, format_loc


def load_workflow_text(
    text: str, filename: str = "<workflow>", context: CheckContext | None = None
) -> Workflow:
    """Parse, validate and check workflow ``text``; raise ``WorkflowInvalid`` listing
    every problem of a file that parses.

    ``filename`` prefixes each rendered problem; a name ending in ``.json`` gets JSON
    syntax errors. ``context`` tells the checks where the workflow runs (tool names,
    the template's functions); without it those names are not judged.
    """
    doc = parse_document(text, filename)
    validated = validate_document(doc)
    problems = with_parse_problems(
        doc,
        [*validated.problems, *check_workflow(validated.workflow, doc, context, validated.gaps)],
    )
    if problems:
        raise WorkflowInvalid(list(dict.fromkeys(problems)), filename)
    _remember(validated.workflow, doc, filename)
    return validated.workflow


def load_workflow(path: str | FsPath, context: CheckContext | None = None) -> Workflow:
    """Load the workflow file at ``path``; raise ``WorkflowInvalid``."""
    return load_workflow_text(read_file(path), str(path), context)


# --------------------------------------------------------------------------- later problems


@dataclass(frozen=True)
class _Source:
    doc: Document
    filename: str


#: The file each loaded workflow came from, by ``id`` (dropped with the workflow).
_SOURCES: dict[int, _Source] = {}


def _remember(wf: Workflow, doc: Document, filename: str) -> None:
    key = id(wf)
    _SOURCES[key] = _Source(doc, filename)
    weakref.finalize(wf, _SOURCES.pop, key, None)


def locate(
    wf: Workflow, message: str, step: str | None = None, path: Loc = ()
) -> tuple[Problem, str | None]:
    """A problem found after loading (by the compiler), located like the checks' own:
    at step ``step`` when given, else at the workflow path ``path``, with the line and
    column of the file ``wf`` was loaded from. Returns it with that file's name."""
    loc = path
    if step is not None:
        loc = (*step_locations(wf).get(step, ("steps",)), *path)
    source = _SOURCES.get(id(wf))
    if source is None:
        return Problem(0, 0, format_loc(loc), message), None
    line, col = source.doc.position(loc)
    return Problem(line, col, format_loc(loc), message), source.filename
