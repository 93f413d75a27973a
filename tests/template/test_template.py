"""template.yaml against the repository: one state machine per workflow with exactly the
substitutions and invoke permissions its compiled definition needs, code where every
function points, and only the intrinsics the local stack resolves."""

from __future__ import annotations

import ast
import json
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from loopline.settings import FIELDS

from tests.conftest import ROOT, STATEMACHINES, example_workflows
from tests.template.cfn_yaml import load_template

TEMPLATE = load_template(ROOT / "template.yaml")
RESOURCES: dict[str, dict[str, Any]] = TEMPLATE["Resources"]

#: The step functions the compiler's placeholders name (``${<Id>Arn}``).
STEP_FUNCTIONS = [
    "LlmFunction",
    "ToolFunction",
    "HttpFunction",
    "TaskFunction",
    "HumanFunction",
    "HelperFunction",
]


def _of_type(kind: str) -> dict[str, dict[str, Any]]:
    return {k: r for k, r in RESOURCES.items() if r["Type"] == kind}


def _logical_id(workflow: Path) -> str:
    return "".join(p.capitalize() for p in workflow.stem.split("_")) + "StateMachine"


def _definition(workflow: Path) -> tuple[str, dict[str, Any]]:
    text = (STATEMACHINES / f"{workflow.stem}.asl.json").read_text(encoding="utf-8")
    return text, json.loads(text)


def _task_functions(definition: Any) -> set[str]:
    """Placeholder names (``LlmFunctionArn``) of the functions Task states invoke."""
    found: set[str] = set()
    if isinstance(definition, dict):
        if definition.get("Type") == "Task":
            # A function's ARN as the Resource, or lambda:invoke's FunctionName (a token)
            resource = definition["Resource"]
            is_invoke = resource.startswith("arn:aws:states:::lambda:invoke")
            name = definition["Parameters"]["FunctionName"] if is_invoke else resource
            match = re.fullmatch(r"\$\{(\w+)\}", name)
            assert match, f"a Task invokes {name!r}, not a placeholder"
            found.add(match.group(1))
        for v in definition.values():
            found |= _task_functions(v)
    elif isinstance(definition, list):
        for v in definition:
            found |= _task_functions(v)
    return found


def _invoke_policies(props: dict[str, Any]) -> list[str]:
    return [
        p["LambdaInvokePolicy"]["FunctionName"]["Ref"]
        for p in props.get("Policies", [])
        if isinstance(p, dict) and "LambdaInvokePolicy" in p
    ]


WORKFLOWS = example_workflows()


def test_the_template_sections_come_in_order() -> None:
    keys = list(TEMPLATE)
    order = [keys.index(k) for k in ("Globals", "Parameters", "Resources", "Outputs")]
    assert order == sorted(order), keys


def test_there_is_one_state_machine_per_workflow_and_no_other() -> None:
    assert sorted(_of_type("AWS::Serverless::StateMachine")) == sorted(
        _logical_id(wf) for wf in WORKFLOWS
    )


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.stem)
def test_a_workflows_state_machine_is_named_after_it_and_logs_errors(workflow: Path) -> None:
    name = yaml.safe_load(workflow.read_text(encoding="utf-8"))["name"]
    logical_id = _logical_id(workflow)
    props = RESOURCES[logical_id]["Properties"]
    assert props["Name"] == {"Fn::Sub": f"${{AWS::StackName}}-{name}"}
    assert props["DefinitionUri"] == f"statemachines/{workflow.stem}.asl.json"
    assert props["Type"] == "STANDARD"
    assert props["Tracing"] == {"Enabled": True}
    logging = props["Logging"]
    assert (logging["Level"], logging["IncludeExecutionData"]) == ("ERROR", False)
    group = logging["Destinations"][0]["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"]
    assert group == [f"{logical_id}LogGroup", "Arn"]
    assert RESOURCES[group[0]]["Type"] == "AWS::Logs::LogGroup"
    assert {"Ref": "StateMachineLoggingPolicy"} in props["Policies"]


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.stem)
def test_substitutions_match_the_placeholders_of_the_compiled_definition(
    workflow: Path,
) -> None:
    text, _ = _definition(workflow)
    placeholders = set(re.findall(r"\$\{(\w+)\}", text))
    subs = RESOURCES[_logical_id(workflow)]["Properties"]["DefinitionSubstitutions"]
    assert set(subs) == placeholders
    for placeholder, value in subs.items():
        function = placeholder.removesuffix("Arn")
        assert value == {"Fn::GetAtt": [function, "Arn"]}
        assert RESOURCES[function]["Type"] == "AWS::Serverless::Function"


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.stem)
def test_a_state_machine_may_invoke_exactly_the_functions_its_tasks_call(
    workflow: Path,
) -> None:
    _, definition = _definition(workflow)
    called = {p.removesuffix("Arn") for p in _task_functions(definition)}
    policies = _invoke_policies(RESOURCES[_logical_id(workflow)]["Properties"])
    assert sorted(policies) == sorted(called)


def test_custom_step_type_functions_exist_and_task_function_may_invoke_them() -> None:
    custom = {
        spec["function"]
        for wf in WORKFLOWS
        for spec in (
            yaml.safe_load(wf.read_text(encoding="utf-8")).get("step_types") or {}
        ).values()
    }
    assert custom == {"WordCountFunction"}
    for function in custom:
        assert RESOURCES[function]["Type"] == "AWS::Serverless::Function"
    assert set(_invoke_policies(RESOURCES["TaskFunction"]["Properties"])) == custom


def test_every_function_has_its_code_handler_and_log_group() -> None:
    functions = _of_type("AWS::Serverless::Function")
    assert set(STEP_FUNCTIONS) <= set(functions)
    assert {"ApiFunction", "StatusEventsFunction", "OutboxFunction", "WordCountFunction"} <= set(
        functions
    )
    for logical_id, resource in functions.items():
        props = resource["Properties"]
        code = ROOT / props["CodeUri"]
        module, _, attribute = props["Handler"].rpartition(".")
        source = code / f"{module.replace('.', '/')}.py"
        assert source.is_file(), f"{logical_id}: no {source}"
        tree = ast.parse(source.read_text(encoding="utf-8"))
        defined = {
            n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
        } | {
            t.id
            for n in tree.body
            if isinstance(n, ast.Assign)
            for t in n.targets
            if isinstance(t, ast.Name)
        }
        assert attribute in defined, f"{logical_id}: {source} defines no {attribute}"
        group = RESOURCES[f"{logical_id}LogGroup"]["Properties"]
        assert group["LogGroupName"] == {"Fn::Sub": f"/aws/lambda/${{{logical_id}}}"}
        assert group["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_the_layer_is_built_from_the_loopline_package() -> None:
    layer = RESOURCES["LooplineLayer"]
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert layer["Properties"]["ContentUri"] == "layers/loopline/"
    assert layer["Metadata"] == {"BuildMethod": "makefile", "BuildArchitecture": "arm64"}
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.13"]
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
    assert TEMPLATE["Globals"]["Function"]["Layers"] == [{"Ref": "LooplineLayer"}]


def test_every_function_runs_python_3_13_on_arm64() -> None:
    glob = TEMPLATE["Globals"]["Function"]
    assert glob["Runtime"] == "python3.13"
    assert glob["Architectures"] == ["arm64"]
    for logical_id, fn in _of_type("AWS::Serverless::Function").items():
        props = fn["Properties"]
        assert props.get("Runtime", "python3.13") == "python3.13", logical_id
        assert props.get("Architectures", ["arm64"]) == ["arm64"], logical_id


def test_the_tests_run_on_the_python_the_functions_run_on() -> None:
    # .venv (make test) is made with the functions' Python: what passes here is what runs.
    runtime = TEMPLATE["Globals"]["Function"]["Runtime"]
    assert runtime == f"python{sys.version_info.major}.{sys.version_info.minor}"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["requires-python"] == f">={runtime.removeprefix('python')}"
    assert project["tool"]["mypy"]["python_version"] == runtime.removeprefix("python")
    assert project["tool"]["ruff"]["target-version"] == "py" + runtime.removeprefix(
        "python"
    ).replace(".", "")


def test_every_loopline_variable_the_template_sets_is_a_setting() -> None:
    envs = [TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]] + [
        r["Properties"].get("Environment", {}).get("Variables", {})
        for r in _of_type("AWS::Serverless::Function").values()
    ]
    names = {k for env in envs for k in env if k.startswith("LOOPLINE_")}
    assert {"LOOPLINE_BUCKET", "LOOPLINE_TABLE", "LOOPLINE_STAGE"} <= names
    fields = {f"LOOPLINE_{f.upper()}" for f in FIELDS}
    assert names <= fields, names - fields


def test_outputs_name_every_state_machine_and_store() -> None:
    outputs = {k: v["Value"] for k, v in TEMPLATE["Outputs"].items()}
    for wf in WORKFLOWS:
        assert outputs[f"{_logical_id(wf)}Arn"] == {"Ref": _logical_id(wf)}
    assert outputs["TasksTableName"] == {"Ref": "TasksTable"}
    assert outputs["ArtifactsBucketName"] == {"Ref": "ArtifactsBucket"}
    assert outputs["WebhookQueueUrl"] == {"Ref": "WebhookQueue"}
    assert outputs["ApprovalTopicArn"] == {"Ref": "ApprovalTopic"}
    assert outputs["StateMachineRoleArn"] == {"Fn::GetAtt": ["StateMachineRole", "Arn"]}


PSEUDO = {"AWS::StackName", "AWS::Region", "AWS::AccountId"}


def _intrinsics(value: Any, path: str = "") -> list[tuple[str, str, Any]]:
    found: list[tuple[str, str, Any]] = []
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "Ref" or k.startswith("Fn::"):
                found.append((path, k, v))
            found += _intrinsics(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += _intrinsics(v, f"{path}[{i}]")
    return found


def test_only_intrinsics_the_local_stack_resolves_are_used() -> None:
    names = set(RESOURCES) | set(TEMPLATE["Parameters"])
    conditions = set(TEMPLATE.get("Conditions", {}))
    for path, key, value in _intrinsics(TEMPLATE):
        if key == "Ref":
            assert value in names | PSEUDO | {"AWS::NoValue"}, (path, value)
        elif key == "Fn::GetAtt":
            assert value[0] in RESOURCES, (path, value)
        elif key == "Fn::Sub":
            assert isinstance(value, str), f"{path}: !Sub takes the string form only"
            for ref in re.findall(r"\$\{([^}!]+)\}", value):
                base = ref.split(".")[0]
                assert ref in PSEUDO or base in names, (path, ref)
        elif key == "Fn::If":
            assert value[0] in conditions, (path, value)
        else:
            assert key in {"Fn::Equals", "Fn::Not"}, (path, key)
    for name, condition in TEMPLATE.get("Conditions", {}).items():
        assert set(condition) <= {"Fn::Equals", "Fn::Not"}, name
