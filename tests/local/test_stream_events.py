"""The local stack's DynamoDB stream event sources (loopline.local.stream_events): what
Lambda's stream pollers do for a function's ``DynamoDB`` event, on moto's table streams,
with the template's batch sizes, filters, partial batch responses, bisection, retries and
``OnFailure`` destinations."""

from __future__ import annotations

import json
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.data_classes import DynamoDBStreamEvent
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import (
    DynamoDBRecordEventName,
    StreamViewType,
)
from loopline.local.executor import ACCOUNT_ID, LocalExecutor, LocalStackError
from loopline.local.stream_events import StreamMapping, compile_filters, matches
from loopline.local.template import LocalStack

from tests.conftest import ROOT

HERE = Path(__file__).parent
TEMPLATE = HERE / "stream_template.yaml"
QUEUES = f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT_ID}/loopline-local-"


class Stack:
    def __init__(self, local: LocalStack, ex: LocalExecutor, log: Path) -> None:
        self.local = local
        self.ex = ex
        self.log = log
        self.dynamodb = boto3.client("dynamodb")
        self.sqs = boto3.client("sqs")

    def table(self, logical_id: str) -> str:
        return self.local.resources[logical_id].name

    def invocations(self, function: str) -> list[list[dict[str, Any]]]:
        """The records of each invocation of ``function``, in order."""
        if not self.log.exists():
            return []
        lines = [json.loads(line) for line in self.log.read_text().splitlines()]
        return [i["records"] for i in lines if i["function"] == function]

    def keys(self, function: str) -> list[list[str]]:
        """The ``pk`` of each record of each invocation of ``function``."""
        return [[r["dynamodb"]["Keys"]["pk"]["S"] for r in i] for i in self.invocations(function)]

    def put(self, table: str, pk: str, **attributes: str) -> None:
        item = {"pk": {"S": pk}, **{k: {"S": v} for k, v in attributes.items()}}
        self.dynamodb.put_item(TableName=self.table(table), Item=item)

    def transact(self, table: str, *items: dict[str, str]) -> None:
        """Put ``items`` in one transaction: their records arrive in one batch."""
        name = self.table(table)
        self.dynamodb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": name, "Item": {k: {"S": v} for k, v in item.items()}}}
                for item in items
            ]
        )

    def failures(self, queue: str) -> list[dict[str, Any]]:
        got = self.sqs.receive_message(QueueUrl=QUEUES + queue, MaxNumberOfMessages=10)
        return [json.loads(m["Body"]) for m in got.get("Messages") or []]


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    log = tmp_path / "stream.jsonl"
    monkeypatch.setenv("FIXTURE_STREAM_FILE", str(log))
    local = LocalStack.load(TEMPLATE)
    with LocalExecutor(loopline_functions=False) as ex:
        try:
            local.provision(ex)
            yield Stack(local, ex, log)
        finally:
            local.restore_environment()


# --------------------------------------------------------------------------- template


def test_a_tables_stream_arn_is_the_one_moto_gives_once_provisioned(stack: Stack) -> None:
    name = stack.table("OrderedTable")
    described = stack.dynamodb.describe_table(TableName=name)["Table"]
    assert described["StreamSpecification"] == {
        "StreamEnabled": True,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    arn = stack.local.resources["OrderedTable"].attributes["StreamArn"]
    assert arn == described["LatestStreamArn"]
    assert "StreamArn" not in stack.local.resources["PlainTable"].attributes


def test_the_template_s_dynamodb_events_are_the_mappings(stack: Stack) -> None:
    mappings = {m.function: m for m in stack.local.stream_mappings()}
    arn = {t: stack.local.resources[t].attributes["StreamArn"] for t in ("WholeTable",)}
    assert mappings["loopline-local-WholeFunction"] == StreamMapping(
        function="loopline-local-WholeFunction",
        function_arn=f"arn:aws:lambda:us-east-1:{ACCOUNT_ID}:function:loopline-local-WholeFunction",
        stream_arn=arn["WholeTable"],
        starting_position="LATEST",
        batch_size=10,
        max_retries=2,
        on_failure=QUEUES + "WholeFailures",
    )
    filtered = mappings["loopline-local-FilteredFunction"]
    assert filtered.batch_size == 100 and filtered.max_retries == -1  # Lambda's defaults
    assert len(filtered.filters) == 2
    partial = mappings["loopline-local-PartialFunction"]
    assert partial.report_item_failures and not partial.bisect_on_error
    assert mappings["loopline-local-BisectFunction"].bisect_on_error
    assert len(mappings) == 5  # the unread stream has no mapping


def test_the_real_template_reads_the_tasks_stream_for_the_webhook_fan_out() -> None:
    local = LocalStack.load(ROOT / "template.yaml")
    [mapping] = local.stream_mappings()
    assert mapping.function == "loopline-local-WebhookFanoutFunction"
    assert mapping.table_name == "loopline-local-TasksTable"
    assert (mapping.starting_position, mapping.batch_size) == ("TRIM_HORIZON", 100)
    assert mapping.report_item_failures and mapping.bisect_on_error
    assert (mapping.max_retries, mapping.max_record_age) == (100, -1)
    assert mapping.on_failure == QUEUES + "WebhookFanoutDeadLetterQueue"


def _template(tmp_path: Path, event: str) -> LocalStack:
    path = tmp_path / "template.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            Resources:
              Table:
                Type: AWS::DynamoDB::Table
                Properties:
                  AttributeDefinitions: [{AttributeName: pk, AttributeType: S}]
                  KeySchema: [{AttributeName: pk, KeyType: HASH}]
                  StreamSpecification: {StreamViewType: NEW_IMAGE}
              Queue:
                Type: AWS::SQS::Queue
              Function:
                Type: AWS::Serverless::Function
                Properties:
                  Handler: app.handler
                  Events:
                    Changes:
                      Type: DynamoDB
                      Properties:
            """
        )
        + textwrap.indent(textwrap.dedent(event), " " * 12)
    )
    return LocalStack.load(path)


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (
            "Stream: !GetAtt Table.Arn\nStartingPosition: LATEST\n",
            "Function.Events.Changes: Stream must be the StreamArn of a table of the template "
            "that has a StreamSpecification",
        ),
        (
            "Stream: !GetAtt Table.StreamArn\nStartingPosition: AT_TIMESTAMP\n",
            "Function.Events.Changes.StartingPosition: a DynamoDB stream is read from "
            "TRIM_HORIZON or LATEST, not 'AT_TIMESTAMP'",
        ),
        (
            "Stream: !GetAtt Table.StreamArn\nStartingPosition: LATEST\n"
            'FilterCriteria:\n  Filters:\n    - Pattern: \'{"eventName": "INSERT"}\'\n',
            "Function.Events.Changes.FilterCriteria.Filters[0].Pattern: not a valid filter "
            "pattern: 'eventName' must be an object or an array",
        ),
        (
            "Stream: !GetAtt Table.StreamArn\nStartingPosition: LATEST\n"
            "FilterCriteria:\n  Filters:\n    - Pattern: '{}'\n    - Pattern: '{oops'\n",
            "Function.Events.Changes.FilterCriteria.Filters[1].Pattern: not a valid filter "
            "pattern: not JSON: Expecting property name enclosed in double quotes: "
            "line 1 column 2 (char 1)",
        ),
        (
            "Stream: !GetAtt Table.StreamArn\nStartingPosition: LATEST\n"
            "DestinationConfig: {OnFailure: {Type: SQS, Destination: arn:aws:sqs:x}}\n",
            "Function.Events.Changes.DestinationConfig.OnFailure.Destination: must be the Arn "
            "of a queue or topic of the template",
        ),
    ],
)
def test_a_dynamodb_event_the_local_stack_cannot_read_is_a_located_error(
    tmp_path: Path, event: str, message: str
) -> None:
    local = _template(tmp_path, event)
    with pytest.raises(LocalStackError) as caught:
        local.stream_mappings()
    assert str(caught.value) == message


# --------------------------------------------------------------------------- filters


RECORD = {
    "eventName": "INSERT",
    "dynamodb": {
        "Keys": {"pk": {"S": "TASK#1"}},
        "NewImage": {"pk": {"S": "TASK#1"}, "type": {"S": "task.succeeded"}, "n": {"N": "5"}},
    },
}


@pytest.mark.parametrize(
    ("pattern", "kept"),
    [
        ('{"eventName": ["INSERT"]}', True),
        ('{"eventName": ["MODIFY", "REMOVE"]}', False),
        ('{"dynamodb": {"NewImage": {"type": {"S": [{"prefix": "task."}]}}}}', True),
        ('{"dynamodb": {"NewImage": {"type": {"S": [{"prefix": "human."}]}}}}', False),
        ('{"dynamodb": {"NewImage": {"type": {"S": [{"anything-but": ["step.started"]}]}}}}', True),
        (
            '{"dynamodb": {"NewImage": {"type": {"S": [{"anything-but": {"prefix": "task."}}]}}}}',
            False,
        ),
        ('{"dynamodb": {"NewImage": {"data": {"S": [{"exists": false}]}}}}', True),
        ('{"dynamodb": {"NewImage": {"type": {"S": [{"exists": true}]}}}}', True),
        ('{"dynamodb": {"NewImage": {"type": [{"exists": true}]}}}', False),  # not a leaf
        ('{"dynamodb": {"Keys": {"pk": {"S": [{"suffix": "#1"}]}}}}', True),
        ('{"dynamodb": {"NewImage": {"n": {"N": ["5"]}}}}', True),
        # N values are JSON strings in the record: a numeric filter matches none.
        ('{"dynamodb": {"NewImage": {"n": {"N": [{"numeric": [">", 1]}]}}}}', False),
        ('{"eventName": ["INSERT"], "dynamodb": {"NewImage": {"type": {"S": ["x"]}}}}', False),
    ],
)
def test_filter_patterns_match_as_lambda_event_filtering_does(pattern: str, kept: bool) -> None:
    assert matches(compile_filters([pattern]), RECORD) is kept


def test_a_record_is_kept_when_any_filter_matches_and_always_without_filters() -> None:
    filters = compile_filters(['{"eventName": ["REMOVE"]}', '{"eventName": ["INSERT"]}'])
    assert matches(filters, RECORD)
    assert matches([], RECORD)


def test_records_no_filter_keeps_never_reach_the_function(stack: Stack) -> None:
    stack.put("FilteredTable", "a", kind="keep.a")
    stack.put("FilteredTable", "b", kind="drop.b")
    stack.put("FilteredTable", "a", kind="keep.a2")  # a MODIFY: not an INSERT
    stack.put("FilteredTable", "c", kind="always")  # the second filter
    stack.put("FilteredTable", "d", kind="keep.d")
    stack.dynamodb.delete_item(TableName=stack.table("FilteredTable"), Key={"pk": {"S": "d"}})

    assert stack.ex.drain(5)

    kinds = [
        r["dynamodb"]["NewImage"]["kind"]["S"] for i in stack.invocations("filtered") for r in i
    ]
    assert kinds == ["keep.a", "always", "keep.d"]


# --------------------------------------------------------------------------- batches


def test_records_arrive_in_order_in_batches_of_the_batch_size_as_lambdas_event(
    stack: Stack,
) -> None:
    name = stack.table("OrderedTable")
    started = time.time()
    stack.dynamodb.batch_write_item(
        RequestItems={
            name: [
                {
                    "PutRequest": {
                        "Item": {"pk": {"S": "p"}, "sk": {"S": str(n)}, "b": {"B": b"\x00"}}
                    }
                }
                for n in range(7)
            ]
        }
    )
    assert stack.ex.drain(5)
    stack.dynamodb.update_item(
        TableName=name,
        Key={"pk": {"S": "p"}, "sk": {"S": "0"}},
        UpdateExpression="SET v = :v",
        ExpressionAttributeValues={":v": {"N": "1"}},
    )
    assert stack.ex.drain(5)

    invocations = stack.invocations("ordered")
    assert [len(i) for i in invocations] == [3, 3, 1, 1]  # one write (of 7 items), then one
    records = [r for i in invocations for r in i]
    numbers = [int(r["dynamodb"]["SequenceNumber"]) for r in records]
    assert numbers == sorted(numbers) and len(set(numbers)) == 8
    assert [r["dynamodb"]["Keys"]["sk"]["S"] for r in records] == [*map(str, range(7)), "0"]
    arn = stack.local.resources["OrderedTable"].attributes["StreamArn"]
    first = records[0]
    assert set(first) == {
        "eventID",
        "eventName",
        "eventVersion",
        "eventSource",
        "awsRegion",
        "dynamodb",
        "eventSourceARN",
    }
    assert (first["eventVersion"], first["eventSource"]) == ("1.1", "aws:dynamodb")
    assert (first["awsRegion"], first["eventSourceARN"]) == ("us-east-1", arn)
    assert first["dynamodb"]["NewImage"]["b"] == {"B": "AA=="}  # binary: base64, as in AWS
    assert abs(first["dynamodb"]["ApproximateCreationDateTime"] - started) < 10

    # Powertools' data class reads the event.
    event = DynamoDBStreamEvent({"Records": invocations[-2] + invocations[-1]})
    insert, modify = event.records
    assert insert.event_name == DynamoDBRecordEventName.INSERT
    assert modify.event_name == DynamoDBRecordEventName.MODIFY
    assert modify.event_source_arn == arn and modify.aws_region == "us-east-1"
    assert modify.dynamodb is not None
    assert modify.dynamodb.keys == {"pk": "p", "sk": "0"}
    assert modify.dynamodb.new_image["v"] == 1 and "v" not in modify.dynamodb.old_image
    assert modify.dynamodb.stream_view_type == StreamViewType.NEW_AND_OLD_IMAGES
    assert modify.dynamodb.sequence_number == str(numbers[-1])
    assert modify.dynamodb.size_bytes and modify.dynamodb.approximate_creation_date_time


def test_each_write_arrives_once_and_a_cancelled_transaction_s_never_do(stack: Stack) -> None:
    name = stack.table("OrderedTable")
    stack.dynamodb.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": name, "Item": {"pk": {"S": "t"}, "sk": {"S": "1"}}}},
            {
                "Update": {
                    "TableName": name,
                    "Key": {"pk": {"S": "t"}, "sk": {"S": "2"}},
                    "UpdateExpression": "SET v = :v",
                    "ExpressionAttributeValues": {":v": {"S": "x"}},
                }
            },
        ]
    )
    # The first write is made, the condition of the second fails: the first is undone.
    with pytest.raises(stack.dynamodb.exceptions.TransactionCanceledException):
        stack.dynamodb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": name, "Item": {"pk": {"S": "t"}, "sk": {"S": "3"}}}},
                {
                    "Put": {
                        "TableName": name,
                        "Item": {"pk": {"S": "t"}, "sk": {"S": "1"}},
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            ]
        )
    stack.dynamodb.put_item(TableName=name, Item={"pk": {"S": "t"}, "sk": {"S": "4"}})
    stack.dynamodb.update_item(  # creates its item: one record, as in AWS
        TableName=name,
        Key={"pk": {"S": "t"}, "sk": {"S": "5"}},
        UpdateExpression="SET v = :v",
        ExpressionAttributeValues={":v": {"S": "y"}},
    )

    assert stack.ex.drain(5)

    records = [r for i in stack.invocations("ordered") for r in i]
    assert [(r["eventName"], r["dynamodb"]["Keys"]["sk"]["S"]) for r in records] == [
        ("INSERT", "1"),
        ("INSERT", "2"),
        ("INSERT", "4"),
        ("INSERT", "5"),
    ]
    assert records[-1]["dynamodb"]["NewImage"]["v"] == {"S": "y"}


def test_a_partial_batch_response_retries_from_the_lowest_failed_record_only(
    stack: Stack,
) -> None:
    stack.transact(
        "PartialTable",
        {"pk": "a"},
        {"pk": "b", "fail": "report:1"},
        {"pk": "c"},
        {"pk": "d", "fail": "report:2"},
    )

    assert stack.ex.drain(5)

    # Powertools' batch processor answered b and d the first time, d the second.
    assert stack.keys("partial") == [["a", "b", "c", "d"], ["b", "c", "d"], ["d"]]


def test_a_batch_that_raises_is_retried_then_recorded_at_its_on_failure_destination(
    stack: Stack,
) -> None:
    stack.transact("WholeTable", {"pk": "a"}, {"pk": "b", "fail": "raise:99"})

    assert stack.ex.drain(5)  # retries included

    assert stack.keys("whole") == [["a", "b"]] * 3  # two retries
    stack.put("WholeTable", "c")
    assert stack.ex.drain(5)
    assert stack.keys("whole")[3:] == [["c"]]  # then on
    [failure] = stack.failures("WholeFailures")
    first, second = (r["dynamodb"] for r in stack.invocations("whole")[0])
    assert failure["requestContext"]["functionArn"].endswith(
        ":function:loopline-local-WholeFunction"
    )
    assert failure["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert failure["requestContext"]["approximateInvokeCount"] == 3
    assert failure["responseContext"] == {
        "statusCode": 200,
        "executedVersion": "$LATEST",
        "functionError": "Unhandled",
    }
    assert failure["version"] == "1.0" and failure["timestamp"].endswith("Z")
    info = failure["DDBStreamBatchInfo"]
    assert info["startSequenceNumber"] == first["SequenceNumber"]
    assert info["endSequenceNumber"] == second["SequenceNumber"]
    assert info["batchSize"] == 2
    assert info["streamArn"] == stack.local.resources["WholeTable"].attributes["StreamArn"]
    assert info["shardId"].startswith("shardId-")
    assert info["approximateArrivalOfFirstRecord"].endswith("Z")
    assert info["approximateArrivalOfLastRecord"].endswith("Z")


def test_bisection_halves_a_failing_batch_until_the_failing_record_is_given_up_alone(
    stack: Stack,
) -> None:
    stack.transact(
        "BisectTable", {"pk": "a"}, {"pk": "b", "fail": "raise:99"}, {"pk": "c"}, {"pk": "d"}
    )

    assert stack.ex.drain(5)

    # Splits are not retries: b alone is tried twice (MaximumRetryAttempts 1).
    assert stack.keys("bisect") == [
        ["a", "b", "c", "d"],
        ["a", "b"],
        ["a"],
        ["b"],
        ["b"],
        ["c", "d"],
    ]
    [failure] = stack.failures("BisectFailures")
    info = failure["DDBStreamBatchInfo"]
    b = stack.invocations("bisect")[3][0]["dynamodb"]["SequenceNumber"]
    assert (info["startSequenceNumber"], info["endSequenceNumber"], info["batchSize"]) == (b, b, 1)


def test_records_older_than_the_maximum_age_are_recorded_instead_of_handed_over(
    stack: Stack,
) -> None:
    # Lambda's least age is 60 s; 0 makes every record too old at once.
    queue = stack.sqs.create_queue(QueueName="aged")["QueueUrl"]
    arn = stack.local.resources["UnreadTable"].attributes["StreamArn"]
    assert stack.ex.fidelity is not None
    stack.ex.fidelity.add_stream_source(
        StreamMapping(
            function="loopline-local-OrderedFunction",
            function_arn="arn:aws:lambda:us-east-1:123456789012:function:ordered",
            stream_arn=arn,
            max_record_age=0,
            on_failure=queue,
        )
    )
    stack.put("UnreadTable", "old")
    assert stack.ex.drain(5)

    assert stack.invocations("ordered") == []
    got = stack.sqs.receive_message(QueueUrl=queue)["Messages"]
    [failure] = [json.loads(m["Body"]) for m in got]
    assert failure["requestContext"]["condition"] == "RecordAgeExceeded"
    assert failure["requestContext"]["approximateInvokeCount"] == 0
    assert failure["DDBStreamBatchInfo"]["batchSize"] == 1


def test_drain_waits_for_the_records_written_and_the_passed_ones_are_trimmed(
    stack: Stack,
) -> None:
    from moto.dynamodb.models import dynamodb_backends

    def shard() -> Any:
        table = dynamodb_backends[ACCOUNT_ID]["us-east-1"].get_table(stack.table("OrderedTable"))
        return table.stream_shard

    start = shard().starting_sequence_number
    for n in range(4):
        stack.put("OrderedTable", "q", sk=str(n))
    assert stack.ex.drain(5)  # no sleep: drain waits for the poller
    assert len([r for i in stack.invocations("ordered") for r in i]) == 4
    assert (len(shard().items), shard().starting_sequence_number) == (0, start + 4)

    stack.put("OrderedTable", "q", sk="4")  # numbered on after the trim
    assert stack.ex.drain(5)
    last = stack.invocations("ordered")[-1][-1]["dynamodb"]["SequenceNumber"]
    assert int(last) == start + 4
    # A stream nobody reads keeps its records.
    stack.put("UnreadTable", "u")
    unread = dynamodb_backends[ACCOUNT_ID]["us-east-1"].get_table(stack.table("UnreadTable"))
    assert len(unread.stream_shard.items) == 1


def test_the_pollers_stop_with_the_executor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FIXTURE_STREAM_FILE", str(tmp_path / "stream.jsonl"))
    local = LocalStack.load(TEMPLATE)
    with LocalExecutor(loopline_functions=False) as ex:
        local.provision(ex)
        assert "loopline-stream-loopline-local-OrderedFunction" in {
            t.name for t in threading.enumerate()
        }
    local.restore_environment()
    assert not [t for t in threading.enumerate() if t.name.startswith("loopline-stream-")]


# --------------------------------------------------------------------------- the real stack


def test_a_new_task_event_reaches_the_webhook_fan_out_and_a_step_event_does_not() -> None:
    local = LocalStack.load(ROOT / "template.yaml")
    with LocalExecutor(loopline_functions=False) as ex:
        try:
            local.provision(ex)
            [mapping] = local.stream_mappings()
            got: list[dict[str, Any]] = []
            # The fan-out's own work is loopline.service.webhooks': here, what it gets.
            ex.functions[mapping.function] = lambda event, context: got.append(event)
            table = local.resources["TasksTable"].name
            dynamodb = boto3.client("dynamodb")
            for seq, kind in ((1, "task.succeeded"), (2, "step.started"), (3, "human.waiting")):
                item = {
                    "pk": {"S": "TASK#tsk_1"},
                    "sk": {"S": f"EVENT#{seq:010d}"},
                    "type": {"S": kind},
                    "tenant": {"S": "acme"},
                }
                dynamodb.put_item(TableName=table, Item=item)
            dynamodb.put_item(  # not an event
                TableName=table,
                Item={"pk": {"S": "TASK#tsk_1"}, "sk": {"S": "TASK"}, "type": {"S": "task.x"}},
            )
            assert ex.drain(5)
        finally:
            local.restore_environment()

    records = [r for event in got for r in event["Records"]]
    assert [r["dynamodb"]["NewImage"]["type"]["S"] for r in records] == [
        "task.succeeded",
        "human.waiting",
    ]
    assert all(r["eventSourceARN"] == mapping.stream_arn for r in records)
