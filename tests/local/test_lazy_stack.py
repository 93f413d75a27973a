"""A local run pays for what it uses: the template's state machines are created in moto
when first named (not when the stack is provisioned), moto's backends and the functions'
handlers are imported when first used, and a run reads its execution's history from the
last event it saw (loopline.local.executor)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import loopline
import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from loopline import cli
from loopline.compiler import compile_workflow
from loopline.dsl import load_workflow_text, resolve_inputs
from loopline.local.executor import ACCOUNT_ID, LocalExecutor
from loopline.local.run import run_workflow
from loopline.local.template import LocalStack

from tests.conftest import ROOT

ONE_STEP = """\
name: one-step
version: 1.0.0
inputs:
  n: {type: integer, required: true}
steps:
  - id: first
    tool: render
    args: {template: "task {{ inputs.n }}"}
"""
FIVE_STEPS = """\
name: five-steps
steps:
  - id: a
    tool: render
    args: {template: "a"}
  - id: b
    tool: render
    args: {template: "{{ steps.a.output }}b"}
  - id: c
    tool: render
    args: {template: "{{ steps.b.output }}c"}
  - id: d
    tool: render
    args: {template: "{{ steps.c.output }}d"}
  - id: e
    tool: render
    args: {template: "{{ steps.d.output }}e"}
"""
PASS = {"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": {"ok": 1}, "End": True}}}
ARN = f"arn:aws:states:us-east-1:{ACCOUNT_ID}:stateMachine:"
TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Resources:
  GoodMachine:
    Type: AWS::Serverless::StateMachine
    Properties:
      Name: good
      Definition: {definition}
  BrokenMachine:
    Type: AWS::Serverless::StateMachine
    Properties:
      Name: broken
      Definition: {{"StartAt": "Nowhere", "States": {{}}}}
"""


def _sfn() -> Any:
    return boto3.client(
        "stepfunctions",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def created(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the state machines moto creates (its ASL parsed)."""
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    names: list[str] = []
    original = StepFunctionsParserBackend.create_state_machine

    def spy(backend: Any, name: str, *args: Any, **kwargs: Any) -> Any:
        names.append(name)
        return original(backend, name, *args, **kwargs)

    monkeypatch.setattr(StepFunctionsParserBackend, "create_state_machine", spy)
    return names


@pytest.fixture
def small_stack(tmp_path: Path) -> Iterator[LocalExecutor]:
    path = tmp_path / "template.yaml"
    path.write_text(TEMPLATE.format(definition=json.dumps(PASS)), encoding="utf-8")
    stack = LocalStack.load(path)
    with LocalExecutor(loopline_functions=False) as ex:
        try:
            stack.provision(ex)
            yield ex
        finally:
            stack.restore_environment()


def test_loopline_run_of_one_step_creates_only_its_own_state_machine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, created: list[str]
) -> None:
    src = tmp_path / "one.yaml"
    src.write_text(ONE_STEP, encoding="utf-8")
    monkeypatch.chdir(ROOT)  # the local stack is template.yaml's, with its six examples
    with pytest.raises(SystemExit) as ended:
        cli.main(["run", "-q", str(src), "--input", '{"n": 3}'])
    assert ended.value.code == 0
    assert created == ["loopline-local-one-step"]


def test_a_declared_state_machine_is_created_when_first_named(
    small_stack: LocalExecutor, created: list[str]
) -> None:
    assert created == []  # provisioned: declared, nothing parsed yet
    sfn = _sfn()
    # Started by ARN from any client, as the service starts a stack workflow.
    run = sfn.start_execution(stateMachineArn=ARN + "good", input="{}")["executionArn"]
    assert small_stack.wait(run, timeout=5)["status"] == "SUCCEEDED"
    assert created == ["good"]
    assert json.loads(sfn.describe_state_machine(stateMachineArn=ARN + "good")["definition"]) == (
        PASS
    )
    assert created == ["good"]  # once


def test_listing_state_machines_shows_the_declared_ones_moto_accepts(
    small_stack: LocalExecutor, created: list[str]
) -> None:
    names = {m["name"] for m in _sfn().list_state_machines()["stateMachines"]}
    assert names == {"good"}  # "broken" is refused, as a deploy of it would be
    assert sorted(created) == ["broken", "good"]


def test_an_invalid_declared_definition_fails_each_time_it_is_named(
    small_stack: LocalExecutor,
) -> None:
    for _ in range(2):
        with pytest.raises(ClientError) as failed:
            _sfn().start_execution(stateMachineArn=ARN + "broken", input="{}")
        # moto's refusal of the definition (not "does not exist": it was declared)
        assert "ASLParserException" in failed.value.response["Error"]["Message"]


def test_a_state_machine_made_over_a_declared_one_takes_its_own_definition(
    small_stack: LocalExecutor, created: list[str]
) -> None:
    mine = {"StartAt": "M", "States": {"M": {"Type": "Pass", "Result": "mine", "End": True}}}
    arn = small_stack.create_state_machine("good", mine)
    assert arn == ARN + "good"
    assert created == ["good"]  # the declared definition was never parsed
    definition = _sfn().describe_state_machine(stateMachineArn=arn)["definition"]
    assert json.loads(definition) == mine


def test_a_run_reads_each_history_event_about_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from loopline.local.executor import HISTORY_PAGE_MIN

    returned: list[int] = []
    newest = 0
    original = BaseClient._make_api_call

    def spy(client: Any, operation: str, params: dict[str, Any]) -> Any:
        nonlocal newest
        answer = original(client, operation, params)
        if operation == "GetExecutionHistory":
            returned.append(len(answer["events"]))
            newest = max([newest, *(int(e["id"]) for e in answer["events"])])
        return answer

    monkeypatch.setattr(BaseClient, "_make_api_call", spy)
    wf = load_workflow_text(FIVE_STEPS, "five.yaml")
    result = run_workflow(compile_workflow(wf).definition, wf, resolve_inputs(wf, {}), poll=0.005)
    assert result.status == "SUCCEEDED" and result.output == "abcde"
    assert {s: v["status"] for s, v in result.steps.items()} == dict.fromkeys("abcde", "succeeded")
    assert len(returned) >= 3  # polled while it ran
    # Every event once, plus at most a page or two per poll of events already seen (the
    # page read newest first overlaps what the last poll saw; a busy machine makes the
    # pages larger): reading the whole history on every poll returns it again and again.
    assert sum(returned) <= newest + 2 * HISTORY_PAGE_MIN * len(returned)


def test_a_run_imports_no_moto_backend_or_handler_it_does_not_use(tmp_path: Path) -> None:
    src = tmp_path / "one.yaml"
    src.write_text(ONE_STEP, encoding="utf-8")
    script = f"""
import json, sys
from loopline import cli
try:
    cli.main(["run", "-q", {str(src)!r}, "--input", '{{"n": 3}}'])
except SystemExit as exc:
    assert not exc.code, exc.code
handlers = sorted(
    m.__file__.split("/functions/")[1] for k, m in sys.modules.items()
    if k.startswith("loopline_function_")
)
print(json.dumps({{
    "ec2": "moto.ec2" in sys.modules,
    "batch": "moto.batch.models" in sys.modules,
    "handlers": handlers,
}}))
"""
    env = {**os.environ, "PYTHONPATH": str(Path(loopline.__file__).parents[1])}
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["ec2"] is False and seen["batch"] is False
    # The tool step's function, and the status events' rule target; none of the other 11.
    assert seen["handlers"] == ["status_events/app.py", "tool/app.py"]
