"""Run small workflows for real: compiled, executed by moto's Step Functions interpreter,
with every Lambda invocation handled in-process by the step runtime."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from loopline.compiler import compile_workflow
from loopline.dsl import load_workflow_text, resolve_inputs
from loopline.local.run import RunResult, parse_decision, run_workflow


class Runner:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path

    def __call__(
        self,
        workflow: str,
        *,
        inputs: dict[str, Any] | None = None,
        script: list[dict[str, Any]] | None = None,
        decisions: Sequence[str] = (),
        functions: dict[str, Callable[[Any, Any], Any]] | None = None,
    ) -> RunResult:
        wf = load_workflow_text(workflow, "test.yaml")
        definition = compile_workflow(wf).definition
        script_path = None
        if script is not None:
            script_path = self.tmp_path / "script.yaml"
            script_path.write_text(yaml.safe_dump({"responses": script}))
        return run_workflow(
            definition,
            wf,
            resolve_inputs(wf, inputs or {}),
            llm_script=str(script_path) if script_path else None,
            decisions=[parse_decision(d) for d in decisions],
            functions=functions,
        )


@pytest.fixture
def run(tmp_path: Path) -> Runner:
    return Runner(tmp_path)
