"""The role tenant workflows run with lets a split workflow's parent run its children
(``startExecution.sync:2``: start, describe and stop their executions, and the
EventBridge rule Step Functions manages for it), and nothing else of the kind."""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

from tests.conftest import ROOT
from tests.template.cfn_yaml import load_template

TEMPLATE = load_template(ROOT / "template.yaml")
STACK, REGION, ACCOUNT = "prod", "eu-west-1", "123456789012"


def _sub(value: Any) -> str:
    text = value["Fn::Sub"] if isinstance(value, dict) else value
    for name, real in (
        ("AWS::StackName", STACK),
        ("AWS::Region", REGION),
        ("AWS::AccountId", ACCOUNT),
    ):
        text = text.replace("${" + name + "}", real)
    return str(text)


def _allowed(action: str, resource: str) -> bool:
    role = TEMPLATE["Resources"]["StateMachineRole"]["Properties"]
    for policy in role["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            actions = statement["Action"]
            actions = [actions] if isinstance(actions, str) else actions
            resources = statement["Resource"]
            resources = resources if isinstance(resources, list) else [resources]
            if action not in actions:
                continue
            for r in resources:
                if isinstance(r, dict) and "Fn::Sub" not in r:
                    continue  # another function's ARN (!GetAtt)
                if fnmatchcase(resource, _sub(r)):
                    return True
    return False


def test_a_tenant_workflows_parent_may_start_describe_and_stop_its_children() -> None:
    child = f"{STACK}-t-acme-big--part-2"
    machine = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{child}"
    execution = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:{child}:5f1c"
    assert _allowed("states:StartExecution", machine)
    assert _allowed("states:DescribeExecution", execution)
    assert _allowed("states:StopExecution", execution)


def test_it_may_manage_the_rule_step_functions_waits_for_children_with() -> None:
    rule = f"arn:aws:events:{REGION}:{ACCOUNT}:rule/StepFunctionsGetEventsForStepFunctionsExecutionRule"
    for action in ("events:PutTargets", "events:PutRule", "events:DescribeRule"):
        assert _allowed(action, rule)


def test_it_may_not_start_other_state_machines() -> None:
    other = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{STACK}-t-acme-big"
    assert not _allowed("states:StartExecution", other)
    assert not _allowed(
        "states:StartExecution", f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:x--part-2"
    )
