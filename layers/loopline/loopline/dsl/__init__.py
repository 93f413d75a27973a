"""The workflow language: load a file, validate it completely, resolve task inputs.

``load_workflow`` parses YAML or JSON, validates the structure (``models``) and runs the
whole-workflow checks (``checks``) on what validated. Any problem raises
``WorkflowInvalid`` listing every problem of a file that parses, located by line, column
and path. A ``CheckContext`` tells the checks where the workflow runs (tools, functions).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loopline.dsl.api import load_workflow, load_workflow_text
    from loopline.dsl.checks import CheckContext
    from loopline.dsl.inputs import resolve_inputs
    from loopline.dsl.models import Workflow
    from loopline.dsl.problems import InputsInvalid, Problem, WorkflowInvalid

# Imported on first use: the step runtime imports ``loopline.dsl.expr`` and must not pay
# for the models, the checks and the YAML loader at a Lambda cold start.
_HOMES = {
    "CheckContext": "loopline.dsl.checks",
    "load_workflow": "loopline.dsl.api",
    "load_workflow_text": "loopline.dsl.api",
    "resolve_inputs": "loopline.dsl.inputs",
    "Workflow": "loopline.dsl.models",
    "InputsInvalid": "loopline.dsl.problems",
    "Problem": "loopline.dsl.problems",
    "WorkflowInvalid": "loopline.dsl.problems",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'loopline.dsl' has no attribute {name!r}")


__all__ = [
    "CheckContext",
    "InputsInvalid",
    "Problem",
    "Workflow",
    "WorkflowInvalid",
    "load_workflow",
    "load_workflow_text",
    "resolve_inputs",
]
