"""What the local stack supplies that moto lacks (loopline.local.fidelity): execution status
change events delivered to a rule's Lambda target, and DynamoDB writes serialised."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from loopline.local.executor import ACCOUNT_ID, LocalExecutor
from loopline.local.template import LocalStack

HERE = Path(__file__).parent
TEMPLATE = HERE / "template.yaml"
PREFIX = f"arn:aws:states:us-east-1:{ACCOUNT_ID}:stateMachine:loopline-local-"

PASS = {"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": {"ok": 1}, "End": True}}}
FAIL = {"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "Oops", "Cause": "broken"}}}
WAIT = {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 30, "End": True}}}


class Stack:
    def __init__(self, ex: LocalExecutor, events: Path) -> None:
        self.ex = ex
        self.events_file = events

    def events(self) -> list[dict[str, Any]]:
        if not self.events_file.exists():
            return []
        return [json.loads(line) for line in self.events_file.read_text().splitlines()]

    def statuses(self, name: str) -> list[str]:
        return [e["detail"]["status"] for e in self.events() if e["detail"]["name"] == name]


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    events = tmp_path / "events.jsonl"
    monkeypatch.setenv("FIXTURE_EVENTS_FILE", str(events))
    local = LocalStack.load(TEMPLATE)
    with LocalExecutor(loopline_functions=False) as ex:
        try:
            local.provision(ex)
            yield Stack(ex, events)
        finally:
            local.restore_environment()


def _run(stack: Stack, definition: dict[str, Any], name: str, sm: str = "loopline-local-m") -> str:
    arn = stack.ex.create_state_machine(sm, definition)
    execution = stack.ex.start_execution(arn, {"topic": "tides"}, name=name)
    stack.ex.wait(execution, timeout=5)
    assert stack.ex.drain(5)
    return execution


def test_a_succeeded_execution_sends_running_then_succeeded_in_the_aws_shape(
    stack: Stack,
) -> None:
    execution = _run(stack, PASS, "run-1")

    events = stack.events()
    assert [e["detail"]["status"] for e in events] == ["RUNNING", "SUCCEEDED"]
    started, ended = events
    for event in events:
        assert event["version"] == "0"
        assert event["source"] == "aws.states"
        assert event["detail-type"] == "Step Functions Execution Status Change"
        assert event["account"] == ACCOUNT_ID
        assert event["region"] == "us-east-1"
        assert event["resources"] == [execution]
        assert event["time"].endswith("Z")
        assert "ingestion-time" not in event
        detail = event["detail"]
        assert detail["executionArn"] == execution
        assert detail["stateMachineArn"] == PREFIX + "m"
        assert detail["name"] == "run-1"
        assert json.loads(detail["input"]) == {"topic": "tides"}
        assert detail["inputDetails"] == {"included": True}
        assert isinstance(detail["startDate"], int)
        assert detail["redriveCount"] == 0
    assert started["detail"]["stopDate"] is None
    assert started["detail"]["output"] is None
    assert ended["detail"]["stopDate"] >= ended["detail"]["startDate"]
    assert json.loads(ended["detail"]["output"]) == {"ok": 1}
    assert ended["detail"]["outputDetails"] == {"included": True}
    assert ended["detail"]["error"] is None


def test_a_failed_execution_sends_its_error_and_cause(stack: Stack) -> None:
    _run(stack, FAIL, "run-2")

    assert stack.statuses("run-2") == ["RUNNING", "FAILED"]
    ended = stack.events()[-1]["detail"]
    assert (ended["error"], ended["cause"]) == ("Oops", "broken")
    assert ended["output"] is None
    assert ended["redriveStatus"] == "REDRIVABLE"


def test_a_stopped_execution_sends_aborted(stack: Stack) -> None:
    arn = stack.ex.create_state_machine("loopline-local-w", WAIT)
    execution = stack.ex.start_execution(arn, {}, name="run-3")
    stack.ex.sfn.stop_execution(executionArn=execution)
    stack.ex.wait(execution, timeout=5)
    assert stack.ex.drain(5)

    assert stack.statuses("run-3") == ["RUNNING", "ABORTED"]


def test_stopping_an_execution_waiting_for_a_task_token_aborts_it_at_once(
    stack: Stack,
) -> None:
    stack.ex.register_function("noop", lambda event, context: {})
    waits = {
        "StartAt": "T",
        "States": {
            "T": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                "Parameters": {"FunctionName": "noop", "Payload": {"token.$": "$$.Task.Token"}},
                "End": True,
            }
        },
    }
    arn = stack.ex.create_state_machine("loopline-local-t", waits)
    execution = stack.ex.start_execution(arn, {}, name="run-4")
    deadline = time.monotonic() + 5
    while "TaskSubmitted" not in [e["type"] for e in stack.ex.history(execution)]:
        assert time.monotonic() < deadline, "the task never started"
        time.sleep(0.02)
    stack.ex.sfn.stop_execution(executionArn=execution)

    assert stack.ex.status(execution) == "ABORTED"
    assert stack.ex.history(execution)[-1]["type"] == "ExecutionAborted"
    assert stack.ex.drain(5)
    assert stack.statuses("run-4") == ["RUNNING", "ABORTED"]


def test_events_of_state_machines_the_rule_does_not_match_are_not_delivered(
    stack: Stack,
) -> None:
    _run(stack, PASS, "run-5", sm="elsewhere")

    assert stack.events() == []


def test_a_failing_target_is_retried_twice_as_lambda_retries_async_invocations(
    stack: Stack,
) -> None:
    _run(stack, PASS, "fail-1")  # the first attempt of each event fails
    assert stack.statuses("fail-1") == ["RUNNING", "RUNNING", "SUCCEEDED", "SUCCEEDED"]
    assert stack.ex.fidelity is not None and stack.ex.fidelity.failed == []


def test_a_target_failing_every_time_is_dropped_after_three_attempts(stack: Stack) -> None:
    _run(stack, PASS, "fail-9")

    assert stack.statuses("fail-9") == ["RUNNING"] * 3 + ["SUCCEEDED"] * 3
    assert stack.ex.fidelity is not None
    assert [f[0] for f in stack.ex.fidelity.failed] == ["loopline-local-RecorderFunction"] * 2
    # Not lost: each is kept in the function's OnFailure queue, with why, as Lambda does.
    sqs = boto3.client("sqs", region_name="us-east-1")
    url = sqs.get_queue_url(QueueName="loopline-local-FailedEventsQueue")["QueueUrl"]
    kept = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    records = [json.loads(m["Body"]) for m in kept]
    assert sorted(r["requestPayload"]["detail"]["status"] for r in records) == [
        "RUNNING",
        "SUCCEEDED",
    ]
    assert {r["requestContext"]["condition"] for r in records} == {"RetriesExhausted"}


def test_the_template_rule_is_created_with_the_function_as_target(stack: Stack) -> None:
    events = boto3.client("events", region_name="us-east-1")
    rules = events.list_rules()["Rules"]
    assert [r["Name"] for r in rules] == ["loopline-local-RecorderFunction-ExecutionStatusChange"]
    pattern = json.loads(rules[0]["EventPattern"])
    assert pattern["detail"]["stateMachineArn"] == [{"prefix": PREFIX}]
    targets = events.list_targets_by_rule(Rule=rules[0]["Name"])["Targets"]
    assert [t["Arn"] for t in targets] == [
        f"arn:aws:lambda:us-east-1:{ACCOUNT_ID}:function:loopline-local-RecorderFunction"
    ]


def test_conditional_increments_from_eight_threads_never_lose_an_update() -> None:
    # Threads switch often, as they may on a busy machine: moto's check-then-write races.
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        _increments()
    finally:
        sys.setswitchinterval(previous)


def _hash_table(name: str) -> Any:
    """A DynamoDB client and a new table ``name`` keyed by ``pk`` alone."""
    ddb = boto3.client("dynamodb", region_name="us-east-1")
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return ddb


def _increments() -> None:
    with LocalExecutor(loopline_functions=False):
        ddb = _hash_table("counters")
        ddb.put_item(TableName="counters", Item={"pk": {"S": "c"}, "n": {"N": "0"}})
        won = []

        def bump() -> None:
            client = boto3.client("dynamodb", region_name="us-east-1")
            for _ in range(25):
                while True:
                    n = int(
                        client.get_item(TableName="counters", Key={"pk": {"S": "c"}})["Item"]["n"][
                            "N"
                        ]
                    )
                    try:
                        client.put_item(
                            TableName="counters",
                            Item={"pk": {"S": "c"}, "n": {"N": str(n + 1)}},
                            ConditionExpression="n = :n",
                            ExpressionAttributeValues={":n": {"N": str(n)}},
                        )
                        won.append(n + 1)
                        break
                    except client.exceptions.ConditionalCheckFailedException:
                        continue

        threads = [threading.Thread(target=bump) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        final = ddb.get_item(TableName="counters", Key={"pk": {"S": "c"}})["Item"]["n"]["N"]

    assert int(final) == 200
    assert sorted(won) == list(range(1, 201))  # every successful write saw its own value


def _items(ddb: Any) -> dict[str, dict[str, Any]]:
    return {i["pk"]["S"]: i for i in ddb.scan(TableName="items")["Items"]}


def test_a_cancelled_transaction_puts_back_every_item_it_wrote_without_copying_the_table() -> None:
    from moto.dynamodb.models import dynamodb_backends

    with LocalExecutor(loopline_functions=False):
        ddb = _hash_table("items")
        for pk in ("kept", "gone", "counted"):
            ddb.put_item(TableName="items", Item={"pk": {"S": pk}, "n": {"N": "1"}})
        before = _items(ddb)
        table = dynamodb_backends[ACCOUNT_ID]["us-east-1"].tables["items"]

        with pytest.raises(ddb.exceptions.TransactionCanceledException) as refused:
            ddb.transact_write_items(
                TransactItems=[
                    {"Put": {"TableName": "items", "Item": {"pk": {"S": "new"}}}},
                    {"Delete": {"TableName": "items", "Key": {"pk": {"S": "gone"}}}},
                    {
                        "Update": {  # moto changes an item in place: the copy kept is put back
                            "TableName": "items",
                            "Key": {"pk": {"S": "counted"}},
                            "UpdateExpression": "ADD n :one",
                            "ExpressionAttributeValues": {":one": {"N": "1"}},
                        }
                    },
                    {
                        "ConditionCheck": {
                            "TableName": "items",
                            "Key": {"pk": {"S": "kept"}},
                            "ConditionExpression": "n = :two",
                            "ExpressionAttributeValues": {":two": {"N": "2"}},
                            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                        }
                    },
                ]
            )

        reasons = refused.value.response["CancellationReasons"]
        assert [r["Code"] for r in reasons] == ["None", "None", "None", "ConditionalCheckFailed"]
        assert reasons[3]["Item"] == before["kept"]
        assert _items(ddb) == before
        # The same table object: nothing was copied to undo the transaction.
        assert dynamodb_backends[ACCOUNT_ID]["us-east-1"].tables["items"] is table

        ddb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": "items", "Item": {"pk": {"S": "new"}}}},
                {"Delete": {"TableName": "items", "Key": {"pk": {"S": "gone"}}}},
            ]
        )
        assert sorted(_items(ddb)) == ["counted", "kept", "new"]


def test_a_transaction_naming_one_item_twice_or_two_operations_in_one_entry_writes_nothing() -> (
    None
):
    with LocalExecutor(loopline_functions=False):
        ddb = _hash_table("items")
        with pytest.raises(ddb.exceptions.ClientError, match="ValidationException"):
            ddb.transact_write_items(
                TransactItems=[
                    {"Put": {"TableName": "items", "Item": {"pk": {"S": "a"}}}},
                    {"Put": {"TableName": "items", "Item": {"pk": {"S": "b"}}}},
                    {"Delete": {"TableName": "items", "Key": {"pk": {"S": "a"}}}},
                ]
            )
        assert _items(ddb) == {}
        with pytest.raises(ddb.exceptions.ClientError, match="only contain one of"):
            ddb.transact_write_items(
                TransactItems=[
                    {"Put": {"TableName": "items", "Item": {"pk": {"S": "a"}}}},
                    {
                        "Put": {"TableName": "items", "Item": {"pk": {"S": "b"}}},
                        "Delete": {"TableName": "items", "Key": {"pk": {"S": "c"}}},
                    },
                ]
            )
        assert _items(ddb) == {}
