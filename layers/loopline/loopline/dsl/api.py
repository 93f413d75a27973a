"""Loading a workflow: parse, validate the structure, run the whole-workflow checks."""

from __future__ import annotations

from pathlib import Path as FsPath

from loopline.dsl.checks import check_workflow
from loopline.dsl.loader import load_text, read_file
from loopline.dsl.models import Workflow
from loopline.dsl.problems import WorkflowInvalid


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
