"""The local stack comes from template.yaml: what the template declares is what moto gets,
and a change to the template alone changes the local stack."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from loopline.compiler import compile_workflow
from loopline.dsl import load_workflow_text, resolve_inputs
from loopline.local.executor import LocalExecutor
from loopline.local.run import run_workflow
from loopline.local.template import LocalStack, read_template

from tests.conftest import ROOT
from tests.unit.test_tools import forget_user_tools

TEMPLATE = ROOT / "template.yaml"


def _client(service: str):  # type: ignore[no-untyped-def]
    return boto3.client(
        service,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def provisioned() -> Iterator[tuple[LocalStack, LocalExecutor]]:
    stack = LocalStack.load(TEMPLATE)
    with LocalExecutor(loopline_functions=False) as ex:
        try:
            stack.provision(ex)
            yield stack, ex
        finally:
            stack.restore_environment()


def test_every_declared_resource_exists_in_moto(
    provisioned: tuple[LocalStack, LocalExecutor],
) -> None:
    stack, ex = provisioned
    tables = _client("dynamodb").list_tables()["TableNames"]
    for r in stack.of_type("AWS::DynamoDB::Table"):
        assert r.name in tables
        desc = _client("dynamodb").describe_table(TableName=r.name)["Table"]
        declared = stack.properties(r.logical_id)
        assert desc["KeySchema"] == declared["KeySchema"]
        assert sorted(i["IndexName"] for i in desc.get("GlobalSecondaryIndexes", [])) == sorted(
            i["IndexName"] for i in declared.get("GlobalSecondaryIndexes", [])
        )
    buckets = [b["Name"] for b in _client("s3").list_buckets()["Buckets"]]
    for r in stack.of_type("AWS::S3::Bucket"):
        assert r.name in buckets
    queues = _client("sqs").list_queues().get("QueueUrls", [])
    for r in stack.of_type("AWS::SQS::Queue"):
        assert any(q.endswith("/" + r.name) for q in queues)
    topics = [t["TopicArn"] for t in _client("sns").list_topics()["Topics"]]
    for r in stack.of_type("AWS::SNS::Topic"):
        assert r.ref in topics
    for fn in stack.functions():
        assert fn.name in ex.functions
    machines = {m["name"] for m in ex.sfn.list_state_machines()["stateMachines"]}
    for r in stack.of_type("AWS::Serverless::StateMachine"):
        assert r.name in machines


def test_functions_get_globals_and_their_own_environment() -> None:
    stack = LocalStack.load(TEMPLATE)
    data = read_template(TEMPLATE)
    global_vars = set(data["Globals"]["Function"].get("Environment", {}).get("Variables", {}))
    for fn in stack.functions():
        assert global_vars <= set(fn.environment)
        assert (fn.code_uri / (fn.handler.rsplit(".", 1)[0] + ".py")).is_file()


@pytest.fixture
def template_copy(tmp_path: Path) -> Path:
    """A copy of template.yaml beside links to the code it names, to edit freely."""
    for name in ("functions", "layers", "statemachines", "workflows"):
        (tmp_path / name).symlink_to(ROOT / name)
    shutil.copy(TEMPLATE, tmp_path / "template.yaml")
    return tmp_path / "template.yaml"


USER_TOOL = """
name: user-tool
steps:
  - id: count
    tool: word_count
    args: {text: "one two three"}
"""


def _run(template: Path, workflow: str) -> object:
    wf = load_workflow_text(workflow, "wf.yaml")
    return run_workflow(
        compile_workflow(wf).definition, wf, resolve_inputs(wf, {}), template=template
    )


def test_an_environment_variable_added_in_the_template_reaches_the_function(
    template_copy: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    monkeypatch.delenv("LOOPLINE_TOOL_MODULES", raising=False)
    monkeypatch.syspath_prepend(str(ROOT))
    forget_user_tools()
    request.addfinalizer(forget_user_tools)
    # Without the variable the tool is unknown...
    before = _run(template_copy, USER_TOOL)
    assert before.status == "FAILED" and "word_count" in (before.cause or "")  # type: ignore[attr-defined]
    # ... and adding it to ToolFunction in the template (nothing else) makes it known.
    text = template_copy.read_text()
    marker = "      CodeUri: functions/tool/\n"
    assert marker in text
    template_copy.write_text(
        text.replace(
            marker,
            marker
            + "      Environment:\n        Variables:\n          LOOPLINE_TOOL_MODULES: tests.unit.user_tools\n",
        )
    )
    after = _run(template_copy, USER_TOOL)
    assert after.status == "SUCCEEDED", (after.error, after.cause)  # type: ignore[attr-defined]


def test_renaming_a_table_in_the_template_renames_it_locally(template_copy: Path) -> None:
    text = template_copy.read_text()
    stack = LocalStack.load(template_copy)
    (table,) = stack.of_type("AWS::DynamoDB::Table")
    # Given a template whose table gets a new logical id (and so a new name)
    template_copy.write_text(text.replace(table.logical_id, "RenamedTable"))
    renamed = LocalStack.load(template_copy)
    with LocalExecutor(loopline_functions=False) as ex:
        try:
            renamed.provision(ex)
            names = _client("dynamodb").list_tables()["TableNames"]
            # Then the table is created under its new name, and the functions are told so
            assert any(n.endswith("RenamedTable") for n in names)
            assert not any(n.endswith(table.logical_id) for n in names)
            envs = {
                v
                for fn in renamed.functions()
                for k, v in fn.environment.items()
                if k == "LOOPLINE_TABLE"
            }
            assert envs and all(v.endswith("RenamedTable") for v in envs)
        finally:
            renamed.restore_environment()


def test_state_machines_get_their_substitutions_resolved(
    provisioned: tuple[LocalStack, LocalExecutor],
) -> None:
    stack, ex = provisioned
    for r in stack.of_type("AWS::Serverless::StateMachine"):
        arn = r.ref
        definition = ex.sfn.describe_state_machine(stateMachineArn=arn)["definition"]
        assert "${" not in definition
        json.loads(definition)
