"""What the checks of a workflow learn from where it runs (``loopline.dsl`` cannot know).

``check_context(path)`` gives ``validate``, ``compile`` and ``run`` a ``CheckContext``:

- the tool names of the runtime's registry: the built-in tools and those the modules of
  ``LOOPLINE_TOOL_MODULES`` register (the shell's value, else the one the nearest
  ``template.yaml`` gives its functions, as ``loopline run`` would set it). A module that
  cannot be imported is a warning, and then tool names are not judged;
- the Lambda functions of the nearest ``template.yaml`` (from the current directory, else
  the workflow's, as ``loopline run`` finds it), which ``step_types`` name by logical id.
  Without a template they are not judged, except for ``loopline run``: it runs on the
  built-in local stack then, whose functions are Loopline's own.

Each part is worked out only when a workflow needs it: the registry and the template
cost a noticeable part of a short command's time.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Collection
from functools import cached_property
from pathlib import Path
from typing import Any

from loopline.dsl import CheckContext

#: Template resource types whose logical ids are functions of the local stack.
FUNCTION_TYPES = ("AWS::Serverless::Function",)
#: The names of ``loopline.runtime.tools.BUILTINS`` (a test keeps them equal): a workflow
#: that calls only these is checked without importing the registry, which costs a third
#: of a second (boto3, jsonschema, httpx).
BUILTIN_TOOLS = frozenset({"now", "render", "json_query", "http_get", "s3_get", "s3_put"})


class LocalContext(CheckContext):
    """The ``CheckContext`` of a workflow file run from the current directory."""

    def __init__(
        self, workflow: str | Path, warn: Callable[[str], None], *, running: bool = False
    ) -> None:
        super().__init__()
        self.workflow = Path(workflow)
        self.warn = warn
        #: For ``loopline run``: without a template, the built-in local stack's functions.
        self.running = running

    @cached_property
    def template_path(self) -> Path | None:
        from loopline.local.template import find_template

        return find_template(Path.cwd(), self.workflow.parent)

    @cached_property
    def _template_data(self) -> dict[str, Any] | None:
        from loopline.local.executor import LocalStackError
        from loopline.local.template import read_template

        if self.template_path is None:
            return None
        try:
            return read_template(self.template_path)
        except LocalStackError as exc:
            self.warn(f"{exc}; step_types functions and template tool modules are not checked")
            return None

    def function_names(self) -> Collection[str] | None:
        if self.template_path is None and self.running:
            from loopline.local.executor import LOOPLINE_FUNCTIONS

            self.template = "the local stack (no template.yaml found)"
            return {placeholder.removesuffix("Arn") for placeholder in LOOPLINE_FUNCTIONS}
        data = self._template_data
        if data is None or self.template_path is None:
            return None
        try:  # named in messages as the user would write it
            self.template = str(self.template_path.relative_to(Path.cwd().resolve()))
        except ValueError:
            self.template = str(self.template_path)
        return {
            logical_id
            for logical_id, body in data["Resources"].items()
            if isinstance(body, dict) and body.get("Type") in FUNCTION_TYPES
        }

    def tool_names(self, wanted: Collection[str]) -> Collection[str] | None:
        if set(wanted) <= BUILTIN_TOOLS:
            return BUILTIN_TOOLS  # modules only add tools: every name wanted is known
        from loopline.runtime import tools
        from loopline.settings import settings

        shell = settings().tool_module_list
        if not self._import(shell):
            return None
        if set(wanted) <= set(tools.TOOLS) or shell:
            return set(tools.TOOLS)
        # Not set in the shell: ``loopline run`` sets the template's value.
        if not self._import(self._template_tool_modules()):
            return None
        return set(tools.TOOLS)

    def _template_tool_modules(self) -> list[str]:
        if self._template_data is None:
            return []
        from loopline.local.executor import LocalStackError
        from loopline.local.template import LocalStack

        assert self.template_path is not None
        try:
            value = (
                LocalStack(self.template_path)
                .function_environment()
                .get("LOOPLINE_TOOL_MODULES", "")
            )
        except LocalStackError as exc:
            self.warn(f"{exc}; its tool modules are not checked")
            return []
        return [m.strip() for m in value.split(",") if m.strip()]

    def _import(self, modules: list[str]) -> bool:
        """Import ``modules`` (they register their tools); warn about one that fails."""
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception as exc:  # any error of a user's module
                self.warn(
                    f'the tool module "{name}" (LOOPLINE_TOOL_MODULES) cannot be imported '
                    f"({exc}); tool names are not checked"
                )
                return False
        return True


def check_context(
    workflow: str | Path, warn: Callable[[str], None], *, running: bool = False
) -> CheckContext:
    """The checks' context for the workflow file ``workflow``; ``warn`` prints warnings.
    ``running``: for ``loopline run``, which knows the stack it runs on even without a
    template (the built-in one)."""
    return LocalContext(workflow, warn, running=running)
