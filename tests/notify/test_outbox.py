"""The outbox: messages put on the SQS queue in batches, and the outbox function that hands
each to the domain's ``deliver``, reporting and delaying the ones that fail (moto's SQS;
``humans.deliver`` replaced by a recorder: the domain's own tests cover what it does)."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from loopline import aws
from loopline.local.executor import ACCOUNT_ID, LocalExecutor, load_handler
from loopline.local.sqs_events import record
from loopline.local.template import LocalStack
from loopline.notify import NotifyError, outbox
from loopline.service import humans
from loopline.settings import settings
from moto import mock_aws

from tests.conftest import ROOT

#: The outbox function records no metric of its own; Powertools warns about that.
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")


@dataclass
class Context:
    function_name: str = "loopline-outbox"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = f"arn:aws:lambda:us-east-1:{ACCOUNT_ID}:function:loopline-outbox"
    aws_request_id: str = "req-1"


@pytest.fixture
def queue(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    with mock_aws():
        url = boto3.client("sqs").create_queue(
            QueueName="outbox", Attributes={"VisibilityTimeout": "360"}
        )["QueueUrl"]
        monkeypatch.setenv("LOOPLINE_OUTBOX_QUEUE", url)
        settings.cache_clear()
        aws.reset()
        yield url
    aws.reset()


def _receive(url: str, count: int = 10) -> list[dict[str, Any]]:
    answer = boto3.client("sqs").receive_message(
        QueueUrl=url, MaxNumberOfMessages=count, MessageSystemAttributeNames=["All"]
    )
    return list(answer.get("Messages") or [])


def _backend_message(url: str, message_id: str) -> Any:
    from moto.sqs.models import sqs_backends

    queue = sqs_backends[ACCOUNT_ID]["us-east-1"].get_queue(url.rsplit("/", 1)[-1])
    return next(m for m in queue._messages if m.id == message_id)


# --------------------------------------------------------------------------- sending


def test_send_puts_each_message_on_the_queue_as_json_ten_per_call(
    queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = aws.client("sqs")
    calls: list[int] = []
    original = client.send_message_batch

    def counting(**kwargs: Any) -> Any:
        calls.append(len(kwargs["Entries"]))
        return original(**kwargs)

    monkeypatch.setattr(client, "send_message_batch", counting)
    messages = [
        {"kind": "email", "human_task": f"hum_{i}", "notification": f"n{i}"} for i in range(23)
    ]

    outbox.send(messages)

    assert calls == [10, 10, 3]
    got = []
    while batch := _receive(queue):
        got += [json.loads(m["Body"]) for m in batch]
        for m in batch:
            boto3.client("sqs").delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
    assert sorted(got, key=lambda m: int(m["human_task"][4:])) == messages


def test_send_of_nothing_calls_nothing() -> None:
    outbox.send([])  # no queue, no mock: nothing to do


def test_send_names_every_message_sqs_refused_after_sending_the_rest(
    queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.sqs.exceptions import InvalidParameterValue
    from moto.sqs.models import SQSBackend

    original = SQSBackend.send_message

    def refusing(self: Any, queue_name: str, body: str, *args: Any, **kwargs: Any) -> Any:
        if "refuse" in body:  # what moto reports as a failed entry
            raise InvalidParameterValue("Value 1000 for parameter DelaySeconds is invalid.")
        return original(self, queue_name, body, *args, **kwargs)

    monkeypatch.setattr(SQSBackend, "send_message", refusing)
    messages = [{"kind": "slack", "n": i, "x": "refuse" if i in (3, 12) else ""} for i in range(14)]

    with pytest.raises(outbox.OutboxError, match="2 of 14 outbox messages were not queued") as info:
        outbox.send(messages)

    assert info.value.failed == [3, 12]
    assert len(_receive(queue)) + len(_receive(queue)) == 12


def test_send_without_a_queue_says_which_setting_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LOOPLINE_OUTBOX_QUEUE", raising=False)
    settings.cache_clear()
    with pytest.raises(outbox.OutboxError, match="LOOPLINE_OUTBOX_QUEUE is not set"):
        outbox.send([{"kind": "decision", "human_task": "hum_1"}])


def test_a_queue_that_does_not_exist_fails_every_message(queue: str) -> None:
    boto3.client("sqs").delete_queue(QueueUrl=queue)
    with pytest.raises(outbox.OutboxError) as info:
        outbox.send([{"kind": "decision"}, {"kind": "decision"}])
    assert info.value.failed == [0, 1]


# --------------------------------------------------------------------------- retry delays


def test_the_retry_delay_follows_the_setting_by_attempt_the_last_repeating() -> None:
    delays = (5, 30, 120)
    rng = random.Random(7)
    for count, base in [(1, 5), (2, 30), (3, 120), (4, 120), (9, 120)]:
        for _ in range(20):
            delay = outbox.retry_delay(count, delays, rng=rng)
            assert base * 0.9 <= delay <= base * 1.1 + 1, (count, delay)


def test_retry_delays_are_whole_seconds_at_least_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPLINE_OUTBOX_RETRY_DELAYS", "0.2, 43200")
    settings.cache_clear()
    assert outbox.retry_delay(1) == 1
    assert outbox.retry_delay(2) <= 43200


def test_the_default_delays_are_five_thirty_then_minutes() -> None:
    assert settings().outbox_retry_delays == (5, 30, 120, 600, 1800)


# --------------------------------------------------------------------------- the function


def _outbox_handler() -> Callable[[dict[str, Any], Any], Any]:
    return load_handler(ROOT / "functions" / "outbox", "app.handler")


def _event(url: str, messages: list[dict[str, Any]]) -> dict[str, Any]:
    arn = f"arn:aws:sqs:us-east-1:{ACCOUNT_ID}:{url.rsplit('/', 1)[-1]}"
    return {"Records": [record(m, arn, "us-east-1") for m in messages]}


def test_the_function_delivers_each_message_and_reports_the_failed_one_delayed(
    queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    delivered: list[dict[str, Any]] = []

    def deliver(message: dict[str, Any]) -> None:
        if message["human_task"] == "hum_2":
            raise NotifyError("Slack's chat.postMessage failed: internal_error")
        delivered.append(message)

    monkeypatch.setattr(humans, "deliver", deliver)
    monkeypatch.setenv("LOOPLINE_OUTBOX_RETRY_DELAYS", "30,60")
    settings.cache_clear()
    outbox.send(
        [{"kind": "slack", "human_task": f"hum_{i}", "notification": f"n{i}"} for i in range(3)]
    )
    messages = _receive(queue)
    failing = next(m for m in messages if json.loads(m["Body"])["human_task"] == "hum_2")

    answer = _outbox_handler()(_event(queue, messages), Context())

    assert answer == {"batchItemFailures": [{"itemIdentifier": failing["MessageId"]}]}
    assert sorted(m["human_task"] for m in delivered) == ["hum_0", "hum_1"]
    # Hidden for the first delay (30 s, with jitter), not the queue's 360 s.
    hidden = _backend_message(queue, failing["MessageId"]).visible_at / 1000 - time.time()
    assert 25 <= hidden <= 34


def test_a_retry_after_longer_than_the_delay_is_waited_out(
    queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def deliver(message: dict[str, Any]) -> None:
        raise NotifyError("Slack's chat.postMessage failed: ratelimited", retry_after=90)

    monkeypatch.setattr(humans, "deliver", deliver)
    outbox.send([{"kind": "slack", "human_task": "hum_1"}])
    [message] = _receive(queue)

    answer = _outbox_handler()(_event(queue, [message]), Context())

    assert answer["batchItemFailures"] == [{"itemIdentifier": message["MessageId"]}]
    hidden = _backend_message(queue, message["MessageId"]).visible_at / 1000 - time.time()
    assert 85 <= hidden <= 91


def test_a_body_that_is_not_a_json_object_fails_without_calling_deliver(
    queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    called: list[Any] = []
    monkeypatch.setattr(humans, "deliver", called.append)
    boto3.client("sqs").send_message(QueueUrl=queue, MessageBody="[1, 2]")
    [message] = _receive(queue)

    answer = _outbox_handler()(_event(queue, [message]), Context())

    assert answer["batchItemFailures"] == [{"itemIdentifier": message["MessageId"]}]
    assert called == []


# --------------------------------------------------------------------------- on the local stack


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalExecutor]:
    monkeypatch.setenv("LOOPLINE_OUTBOX_RETRY_DELAYS", "1")
    local = LocalStack.load(ROOT / "template.yaml")
    with LocalExecutor(loopline_functions=False) as ex:
        try:
            local.provision(ex)
            yield ex
        finally:
            local.restore_environment()


def test_on_the_local_stack_a_failed_message_is_retried_and_the_others_deleted(
    stack: LocalExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts: dict[str, int] = {}

    def deliver(message: dict[str, Any]) -> None:
        key = message["human_task"]
        attempts[key] = attempts.get(key, 0) + 1
        if key == "hum_1" and attempts[key] == 1:
            raise NotifyError("SES could not be reached")

    monkeypatch.setattr(humans, "deliver", deliver)

    outbox.send([{"kind": "email", "human_task": f"hum_{i}"} for i in range(3)])
    assert stack.drain(5)
    assert attempts == {"hum_0": 1, "hum_1": 1, "hum_2": 1}
    queue = settings().outbox_queue
    depth = boto3.client("sqs").get_queue_attributes(
        QueueUrl=queue,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    assert depth == {
        "ApproximateNumberOfMessages": "0",
        "ApproximateNumberOfMessagesNotVisible": "1",
    }

    deadline = time.monotonic() + 5
    while attempts["hum_1"] < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stack.drain(5)
    assert attempts == {"hum_0": 1, "hum_1": 2, "hum_2": 1}
    depth = boto3.client("sqs").get_queue_attributes(
        QueueUrl=queue,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    assert depth == {
        "ApproximateNumberOfMessages": "0",
        "ApproximateNumberOfMessagesNotVisible": "0",
    }


def test_a_message_failing_every_time_ends_in_the_dead_letter_queue(
    stack: LocalExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts: list[int] = []

    def deliver(message: dict[str, Any]) -> None:
        attempts.append(1)
        raise NotifyError("Slack's chat.postMessage failed: internal_error")

    monkeypatch.setattr(humans, "deliver", deliver)
    sqs = boto3.client("sqs")
    queue = settings().outbox_queue
    assert queue is not None
    dead = queue.replace("OutboxQueue", "OutboxDeadLetterQueue")
    dead_arn = sqs.get_queue_attributes(QueueUrl=dead, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    # Two receives instead of the template's ten, to keep the test short.
    sqs.set_queue_attributes(
        QueueUrl=queue,
        Attributes={
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dead_arn, "maxReceiveCount": 2})
        },
    )

    outbox.send([{"kind": "slack", "human_task": "hum_9", "notification": "n9"}])

    moved: list[dict[str, Any]] = []
    deadline = time.monotonic() + 8
    while not moved and time.monotonic() < deadline:
        moved = sqs.receive_message(QueueUrl=dead).get("Messages") or []
        time.sleep(0.1)
    assert [json.loads(m["Body"]) for m in moved] == [
        {"kind": "slack", "human_task": "hum_9", "notification": "n9"}
    ]
    assert len(attempts) == 2


def test_the_local_stack_has_the_outbox_queue_with_its_dead_letter_queue(
    stack: LocalExecutor,
) -> None:
    sqs = boto3.client("sqs")
    queue = settings().outbox_queue
    assert queue is not None
    attributes = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["maxReceiveCount"] == 10
    assert redrive["deadLetterTargetArn"].endswith(":loopline-local-OutboxDeadLetterQueue")
    assert attributes["VisibilityTimeout"] == "360"


def test_the_local_stack_verifies_the_sender_and_holds_the_slack_secret(
    stack: LocalExecutor,
) -> None:
    assert settings().sender_email == "loopline@example.com"
    identities = boto3.client("ses").list_identities()["Identities"]
    assert "loopline@example.com" in identities
    arn = settings().slack_secret_arn
    assert arn is not None
    secret = boto3.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"]
    assert json.loads(secret) == {"bot_token": "", "signing_secret": ""}


def test_outbox_messages_are_never_logged_whole(tmp_path: Path) -> None:
    # What a log line may say of a message: never its link (a capability).
    message = {
        "kind": "email",
        "human_task": "hum_1",
        "notification": "n1",
        "to": "a@x.com",
        "link": "https://x/a/secret",
    }
    assert outbox._describe(message) == {
        "kind": "email",
        "human_task": "hum_1",
        "notification": "n1",
    }
