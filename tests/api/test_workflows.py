"""Workflows through the API function: register (compile, create or update the tenant's
state machine in moto), list, get; invalid files answered with located problems."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from loopline.local.executor import LocalExecutor
from loopline.settings import settings

from tests.api.conftest import GREET, Caller

pytestmark = pytest.mark.moto

BROKEN = """\
name: greet
steps:
  - id: a
    tool: render
    args: {template: "x"}
  - id: a
    tool: nope_tool
"""


def test_registering_a_new_workflow_is_201_and_creates_its_state_machine(
    caller: Caller, executor: LocalExecutor
) -> None:
    reply = caller.register(GREET)

    assert reply.status == 201, reply.text
    assert reply.body["name"] == "greet" and reply.body["version"] == "1.2.0"
    machines = {m["name"] for m in executor.sfn.list_state_machines()["stateMachines"]}
    assert f"loopline-local-t-{caller.tenant}-greet" in machines


def test_registering_it_again_is_200_and_updates_the_state_machine(
    caller: Caller, executor: LocalExecutor
) -> None:
    assert caller.register(GREET).status == 201
    reply = caller.register(GREET.replace("version: 1.2.0", "version: 1.3.0"))

    assert reply.status == 200, reply.text
    assert caller("GET", "/v1/workflows/greet").body["version"] == "1.3.0"


def test_an_invalid_file_is_422_with_every_problem_located(caller: Caller) -> None:
    reply = caller.register(BROKEN)

    assert reply.status == 422
    assert reply.headers["Content-Type"] == "application/problem+json"
    errors = reply.body["errors"]
    assert len(errors) >= 2
    by_field = {e["field"]: e for e in errors}
    assert by_field["steps[1].id"]["line"] == 6 and by_field["steps[1].id"]["column"] > 0
    assert "steps[1].tool" in by_field
    assert all(e["rule"] and e["message"] for e in errors)
    assert caller("GET", "/v1/workflows/greet").status == 404


def test_a_file_whose_name_is_not_the_urls_is_422(caller: Caller) -> None:
    reply = caller.register(GREET, name="hello")

    assert reply.status == 422
    assert reply.body["errors"] == [
        {
            "field": "name",
            "rule": "match",
            "message": "must be hello, the name in the URL",
            "value": "greet",
            "line": 1,
            "column": 7,
        }
    ]


def test_a_json_file_is_accepted_and_json_syntax_errors_are_located(caller: Caller) -> None:
    import yaml

    as_json = json.dumps(yaml.safe_load(GREET))
    headers = {"Content-Type": "application/json"}
    assert caller("PUT", "/v1/workflows/greet", raw=as_json, headers=headers).status == 201
    bad = caller("PUT", "/v1/workflows/greet", raw='{"name": "greet",', headers=headers)
    assert bad.status == 422 and bad.body["errors"][0]["line"] == 1


def test_a_body_in_another_format_is_415(caller: Caller) -> None:
    reply = caller("PUT", "/v1/workflows/greet", raw="<xml/>", headers={"Content-Type": "text/xml"})
    assert reply.status == 415 and reply.body["title"] == "Unsupported Media Type"


def test_get_shows_the_inputs_schema_steps_and_mermaid_graph(caller: Caller) -> None:
    caller.register(GREET)

    body = caller("GET", "/v1/workflows/greet").body

    assert body["inputs_schema"] == {
        "type": "object",
        "properties": {
            "who": {"type": "string", "minLength": 2},
            "times": {"type": "integer"},
            "tone": {"enum": ["warm", "dry"]},
        },
        "required": ["who"],
        "additionalProperties": False,
    }
    assert body["steps"] == [{"id": "hello", "kind": "tool"}]
    assert body["graph"].startswith("flowchart TD\n") and "hello" in body["graph"]


@pytest.fixture
def stack_workflows(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    arn = "arn:aws:states:us-east-1:123456789012:stateMachine:loopline-local-ticket-triage"
    monkeypatch.setenv("LOOPLINE_STACK_WORKFLOWS", json.dumps({"ticket-triage": arn}))
    settings.cache_clear()
    yield
    monkeypatch.delenv("LOOPLINE_STACK_WORKFLOWS")
    settings.cache_clear()


@pytest.mark.usefixtures("stack_workflows")
def test_list_shows_the_stacks_workflows_and_the_tenants_own(caller: Caller, other: Caller) -> None:
    caller.register(GREET)

    mine = caller("GET", "/v1/workflows").body
    theirs = other("GET", "/v1/workflows").body

    assert [(w["name"], w["origin"]) for w in mine["items"]] == [
        ("greet", "tenant"),
        ("ticket-triage", "stack"),
    ]
    assert mine["next_cursor"] is None
    assert [w["name"] for w in theirs["items"]] == ["ticket-triage"]
    triage = caller("GET", "/v1/workflows/ticket-triage").body
    assert triage["inputs_schema"]["required"] == ["ticket"]


@pytest.mark.usefixtures("stack_workflows")
def test_a_stack_workflows_name_cannot_be_registered(caller: Caller) -> None:
    text = GREET.replace("name: greet", "name: ticket-triage")
    assert caller.register(text).status == 409


def test_another_tenants_workflow_is_404(caller: Caller, other: Caller) -> None:
    caller.register(GREET)

    reply = other("GET", "/v1/workflows/greet")

    assert reply.status == 404 and reply.body["status"] == 404
    assert other("POST", "/v1/tasks", {"workflow": "greet", "inputs": {"who": "bo"}}).status == 404


#: Twelve steps, each reading the one before it and the first.
SPLIT = (
    "name: relay\nversion: 1.0.0\ninputs:\n  who: {type: string, default: ana}\nsteps:\n"
    + "".join(
        f"  - id: s{i}\n    tool: render\n"
        f'    args: {{template: "{i} after {{{{ {"inputs.who" if i == 0 else f"steps.s{i - 1}.output"} }}}}'
        f'{"" if i == 0 else " from {{ steps.s0.output }}"}"}}\n'
        for i in range(12)
    )
    + 'output:\n  text: "{{ steps.s11.output }}"\n'
)


def test_a_workflow_over_the_limit_registers_a_parent_and_its_children_that_run(
    caller: Caller, executor: LocalExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a Step Functions limit the workflow passes
    from loopline.compiler import compile as compile_module

    monkeypatch.setattr(compile_module, "DEFINITION_LIMIT", 6_000)

    # When the tenant registers it
    reply = caller.register(SPLIT)

    # Then the parent is the tenant's state machine and its children are named after it
    assert reply.status == 201, reply.text
    parent = f"loopline-local-t-{caller.tenant}-relay"
    machines = {
        m["name"]: m["stateMachineArn"] for m in executor.sfn.list_state_machines()["stateMachines"]
    }
    children = sorted(n for n in machines if n.startswith(f"{parent}--part-"))
    assert children == [f"{parent}--part-{n}" for n in range(2, len(children) + 2)]
    assert len(children) >= 2
    # And the parent runs them all, to the workflow's output
    arn = executor.start_execution(machines[parent], {"who": "bo"})
    desc = executor.wait(arn, timeout=60)
    assert desc["status"] == "SUCCEEDED", desc
    text = "0 after bo"
    for i in range(1, 12):
        text = f"{i} after {text} from 0 after bo"
    assert json.loads(desc["output"]) == {"text": text}
    # Registered again (unchanged), the same machines are updated
    assert caller.register(SPLIT).status == 200
    names = {m["name"] for m in executor.sfn.list_state_machines()["stateMachines"]}
    assert {parent, *children} <= names
