"""``loopline keys create|revoke``: in a keys file, and in a stack's table (moto's
CloudFormation, with a stack whose ``TasksTableName`` output names a moto table)."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from loopline import aws, cli
from loopline.local.template import LocalStack
from loopline.service import keys
from loopline.settings import settings
from moto import mock_aws

from tests.tasktable import TEMPLATE, task_table


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as done:
        cli.main(["keys", *argv])
    out, err = capsys.readouterr()
    return int(done.value.code or 0), out, err


# ---------------------------------------------------------------------- file


def test_create_prints_only_the_key_and_appends_it_to_a_new_private_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "keys.yaml"

    code, out, err = _run(capsys, "create", "--tenant", "acme", "--user", "ann",
                          "--role", "admin", "--file", str(path))  # fmt: skip
    code2, out2, _ = _run(capsys, "create", "--tenant", "globex", "--file", str(path))

    assert (code, code2) == (0, 0)
    key = out.strip()
    assert out == f"{key}\n" and keys.check_key_text(key) == key
    assert "created key key_" in err and "acme/ann" in err and key not in err
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    entries = keys.load_keys_file(path)
    assert [(e["key"], e["tenant"], e["user"], e["roles"]) for e in entries] == [
        (key, "acme", "ann", ["admin"]),
        (out2.strip(), "globex", None, []),
    ]


def test_revoke_removes_a_key_from_the_file_by_text_or_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "keys.yaml"
    made = [_run(capsys, "create", "--tenant", "acme", "--file", str(path))[1].strip()
            for _ in range(3)]  # fmt: skip
    by_id = keys.load_keys_file(path)[1]["id"]

    assert _run(capsys, "revoke", made[0], "--file", str(path))[0] == 0
    assert _run(capsys, "revoke", "--id", by_id, "--file", str(path))[0] == 0

    assert [e["key"] for e in keys.load_keys_file(path)] == [made[2]]
    code, out, err = _run(capsys, "revoke", made[0], "--file", str(path))
    assert (code, out) == (2, "")
    assert err == f"error: {path}: no such key\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["create", "--tenant", "Acme"], "error: --tenant: a tenant is 1 to 32 lower-case"),
        (["create", "--tenant", "acme", "--role", "a,b"], "error: --role: a role is"),
        (["revoke", "sk_live_123"], "error: KEY: a key is llk_ followed by 43"),
        (["revoke", "--id", "nope"], "error: --id: a key id is key_"),
    ],
)
def test_wrong_arguments_are_one_error_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = _run(capsys, *argv, "--file", str(tmp_path / "keys.yaml"))
    assert (code, out) == (2, "")
    assert err.startswith(message) and err.count("\n") == 1
    assert not (tmp_path / "keys.yaml").exists()


def test_a_broken_keys_file_is_reported_located_and_left_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text("keys:\n  - {key: nope, tenant: acme}\n")
    code, out, err = _run(capsys, "create", "--tenant", "acme", "--file", str(path))
    assert (code, out) == (2, "")
    assert (
        err
        == f"error: {path}: keys[0].key: a key is llk_ followed by 43 letters, digits, - and _\n"
    )
    assert path.read_text() == "keys:\n  - {key: nope, tenant: acme}\n"


def test_target_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "create", "--tenant", "acme")
    assert code == 2 and "one of the arguments --file --stack is required" in err


# ---------------------------------------------------------------------- stack


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A CloudFormation stack in moto with the template's TasksTable and its output."""
    # ``--stack`` points the process at the stack's table (os.environ, as the command
    # does for the rest of its life): restored to absent after the test.
    monkeypatch.setenv("LOOPLINE_TABLE", "unset")
    monkeypatch.delenv("LOOPLINE_TABLE")
    with mock_aws():
        local = LocalStack.load(TEMPLATE, region="eu-west-1")
        properties = {**local.properties("TasksTable"), "TableName": "prod-tasks"}
        body = {
            "Resources": {"TasksTable": {"Type": "AWS::DynamoDB::Table", "Properties": properties}},
            "Outputs": {"TasksTableName": {"Value": {"Ref": "TasksTable"}}},
        }
        boto3.client("cloudformation", region_name="eu-west-1").create_stack(
            StackName="loopline-prod", TemplateBody=json.dumps(body)
        )
        try:
            yield "loopline-prod"
        finally:  # the command pointed the process at the stack's table
            settings.cache_clear()
            aws.reset()


def test_stack_mode_writes_the_key_to_the_stacks_table(
    stack: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = _run(capsys, "create", "--tenant", "acme", "--role", "ops",
                          "--stack", stack, "--region", "eu-west-1")  # fmt: skip

    assert code == 0, err
    assert "stack loopline-prod (table prod-tasks)" in err
    caller = keys.authenticate(out.strip())
    assert caller is not None and (caller.tenant, caller.roles) == ("acme", ("ops",))
    items = boto3.client("dynamodb", region_name="eu-west-1").scan(TableName="prod-tasks")
    assert items["Count"] == 1

    code, _, err = _run(capsys, "revoke", "--id", caller.key_id, "--stack", stack,
                        "--region", "eu-west-1")  # fmt: skip
    assert code == 0, err
    assert keys.authenticate(out.strip()) is None


def test_stack_mode_names_a_missing_stack_or_output(
    stack: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(capsys, "create", "--tenant", "acme", "--stack", "nope",
                          "--region", "eu-west-1")  # fmt: skip
    assert (code, out, err) == (2, "", "error: no stack named nope\n")
    boto3.client("cloudformation", region_name="eu-west-1").create_stack(
        StackName="other",
        TemplateBody=json.dumps({"Resources": {"Q": {"Type": "AWS::SQS::Queue"}}}),
    )
    code, _, err = _run(capsys, "revoke", keys.new_key(), "--stack", "other",
                        "--region", "eu-west-1")  # fmt: skip
    assert code == 2
    assert err == "error: stack other has no TasksTableName output: is it a Loopline stack?\n"


def test_revoking_an_unknown_key_in_a_stack(stack: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "revoke", keys.new_key(), "--stack", stack,
                        "--region", "eu-west-1")  # fmt: skip
    assert code == 2 and err.endswith("no such key\n")


def test_an_existing_table_fixture_is_left_to_the_caller() -> None:
    """task_table() inside an active mock reuses it (no second mock, no reset)."""
    with mock_aws(), task_table() as name:
        boto3.client("dynamodb").put_item(TableName=name, Item={"pk": {"S": "x"}, "sk": {"S": "y"}})
        with task_table() as again:
            assert again == name
            assert boto3.client("dynamodb").scan(TableName=name)["Count"] == 1
