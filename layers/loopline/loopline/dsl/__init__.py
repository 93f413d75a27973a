"""The workflow language: load a file, validate it completely, resolve task inputs.

``load_workflow`` parses YAML or JSON, validates the structure (``models``) and, when the
structure is sound, runs the whole-workflow checks (``checks``). Any problem raises
``WorkflowInvalid`` listing every problem found, located by line, column and path.
"""

from __future__ import annotations

from pathlib import Path as FsPath

from loopline.dsl.checks import check_workflow
from loopline.dsl.inputs import resolve_inputs
from loopline.dsl.loader import load_text, read_file
from loopline.dsl.models import Workflow
from loopline.dsl.problems import InputsInvalid, Problem, WorkflowInvalid


def load_workflow_text(text: str, filename: str = "<workflow>") -> Workflow:
    """Parse, validate and check workflow ``text``; raise ``WorkflowInvalid``.

    ``filename`` prefixes each rendered problem; a name ending in ``.json`` gets JSON
    syntax errors.
    """
    wf, doc = load_text(text, filename)
    problems = check_workflow(wf, doc)
    if problems:
        raise WorkflowInvalid(problems, filename)
    return wf


def load_workflow(path: str | FsPath) -> Workflow:
    """Load the workflow file at ``path``; raise ``WorkflowInvalid``."""
    return load_workflow_text(read_file(path), str(path))


__all__ = [
    "InputsInvalid",
    "Problem",
    "Workflow",
    "WorkflowInvalid",
    "load_workflow",
    "load_workflow_text",
    "resolve_inputs",
]
