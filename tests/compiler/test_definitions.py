"""What a compiled definition weighs: the deployed text is compact, no state carries a null
field, retriers leave out what equals the language's defaults, and long workflows fit
Step Functions' 1 MiB."""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
import yaml
from loopline.compiler import compile_workflow
from loopline.compiler.compile import DEFINITION_LIMIT, RETRY_DEFAULTS
from loopline.compiler.split import deployed_size
from loopline.dsl import load_workflow, load_workflow_text
from loopline.history import iter_states
from loopline.local.executor import LocalExecutor
from loopline.runtime.payload import expanded

from tests.compiler.test_compiled_examples import golden_cases
from tests.conftest import ROOT

EVERY_KIND_UNSET = """
name: bare
inputs:
  topic: {type: string}
steps:
  - {id: ask, llm: "About {{ inputs.topic }}"}
  - {id: fetch, http: {url: "https://example.com/{{ steps.ask.output }}"}}
  - {id: check, approval: {timeout: 1h}}
  - {id: form, human_task: {timeout: 1h, form_schema: {type: object}}}
  - {id: wait, pause: Resume when ready., timeout: 1h}
  - {id: votes, vote: {input: steps.ask.output, voters: 2, rules: Refute.}}
output:
  answer: "{{ steps.ask.output }} {{ steps.check.output.by }}"
"""


def linear(n: int) -> str:
    steps = [
        {
            "id": f"s{i}",
            "llm": f"Step {i}: improve {{{{ {f'steps.s{i - 1}.output' if i else 'inputs.topic'} }}}}",
        }
        for i in range(n)
    ]
    return yaml.safe_dump(
        {"name": "linear", "inputs": {"topic": {"type": "string", "default": "x"}}, "steps": steps},
        sort_keys=False,
    )


def _definitions() -> list[Any]:
    out = [
        pytest.param(compile_workflow(load_workflow(source)).definition, id=source.stem)
        for source, _ in golden_cases()
    ]
    bare = compile_workflow(load_workflow_text(EVERY_KIND_UNSET, "bare.yaml")).definition
    return [*out, pytest.param(bare, id="every optional field unset")]


def _fields(state: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """A state's fields, its retriers' and catchers', and its Lambda payload's and
    config's (not data: a ``Result`` or the records a ``Parameters`` writes may hold null
    as a value)."""
    for key, value in state.items():
        yield key, value
    for key in ("Retry", "Catch"):
        for rule in state.get(key) or []:
            yield from ((f"{key}.{k}", v) for k, v in rule.items())
    params = state.get("Parameters") or {}
    payload = params.get("Payload", params) if isinstance(params, dict) else None
    if isinstance(payload, dict):
        yield from ((f"Payload.{k}", v) for k, v in payload.items())
        yield from ((f"config.{k}", v) for k, v in (payload.get("config") or {}).items())


@pytest.mark.parametrize("definition", _definitions())
def test_no_state_carries_a_null_field(definition: dict[str, Any]) -> None:
    nulls = [
        f"{state_name}: {field}"
        for state_name, state in iter_states(definition)
        for field, value in _fields(state)
        if isinstance(field, str) and value is None
    ]
    assert nulls == []


@pytest.mark.parametrize("definition", _definitions())
def test_retriers_leave_out_the_languages_defaults(definition: dict[str, Any]) -> None:
    defaults = [
        f"{state_name}: {key}"
        for state_name, state in iter_states(definition)
        for rule in state.get("Retry") or []
        for key, value in rule.items()
        if RETRY_DEFAULTS.get(key) == value
    ]
    assert defaults == []


def test_the_deployed_text_is_compact_and_the_written_file_readable() -> None:
    result = compile_workflow(load_workflow(ROOT / "workflows" / "research_brief.yaml"))
    assert result.deployed == orjson.dumps(result.definition).decode()
    assert json.loads(result.deployed) == result.definition
    assert result.text.startswith('{\n  "Comment"')
    assert len(result.deployed) < len(result.text) * 0.7


def test_a_file_that_would_pass_the_limit_indented_is_written_compact() -> None:
    # 1,500 linear llm steps: over 1 MiB indented, under it compact.
    result = compile_workflow(load_workflow_text(linear(1500), "linear.yaml"))
    assert len(result.text.encode()) <= DEFINITION_LIMIT
    assert result.text == result.deployed + "\n"


def test_a_linear_llm_workflow_of_1500_steps_deploys_under_1_mib_with_its_arns() -> None:
    # Each ${Placeholder} counted as the longest ARN that replaces it, and in one machine
    result = compile_workflow(load_workflow_text(linear(1500), "linear.yaml"))
    assert result.children == []
    assert deployed_size(result.deployed) < DEFINITION_LIMIT


def test_a_step_function_is_invoked_by_its_arn_and_its_result_is_the_record() -> None:
    definition = compile_workflow(load_workflow_text(linear(3), "linear.yaml")).definition
    state = definition["States"]["s1"]
    # The function's ARN is the Resource: no FunctionName/Payload wrapper to take apart
    assert state["Resource"] == "${LlmFunctionArn}"
    assert "ResultSelector" not in state and "FunctionName" not in state["Parameters"]
    assert state["ResultPath"] == "$.steps.s1"
    # The state is named after its step: the function reads the step and the attempt
    # from $$.State; the function's own default max_turns is left out
    assert state["Parameters"]["state.$"] == "$$.State"
    assert {"step", "attempt.$"}.isdisjoint(state["Parameters"])
    assert state["Parameters"]["config"] == {"prompt": "Step 1: improve {{ steps.s0.output }}"}


def test_the_compilers_max_turns_default_is_the_functions() -> None:
    from loopline.compiler.compile import LLM_MAX_TURNS
    from loopline.dsl.models import LlmStep
    from loopline.runtime.llm import DEFAULT_MAX_TURNS

    assert LLM_MAX_TURNS == DEFAULT_MAX_TURNS == LlmStep.model_fields["max_turns"].default


def test_a_payload_with_the_state_gives_the_step_and_the_attempt() -> None:
    state = {"Name": "draft", "EnteredTime": "2026-01-01T00:00:00Z", "RetryCount": 2}
    payload = {"action": "llm", "state": state, "config": {}}
    assert expanded(payload) == {"action": "llm", "config": {}, "step": "draft", "attempt": 2}
    named = {"action": "llm", "step": "x", "attempt": 0}
    assert expanded(named) is named


def test_loopline_run_sends_the_compact_text() -> None:
    definition = {"StartAt": "a", "States": {"a": {"Type": "Pass", "End": True}}}
    stack = SimpleNamespace(substitutions={})
    assert LocalExecutor.resolve(stack, definition) == orjson.dumps(definition).decode()  # type: ignore[arg-type]
