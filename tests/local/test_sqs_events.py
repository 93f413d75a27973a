"""The local stack's SQS event sources (loopline.local.sqs_events): what Lambda's pollers
do for a function's ``SQS`` event, on moto's queues, with the template's batch sizes,
partial batch responses, visibility timeouts and redrive policies."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from loopline.local.executor import ACCOUNT_ID, LocalExecutor
from loopline.local.sqs_events import SqsMapping, failed_ids
from loopline.local.template import LocalStack

HERE = Path(__file__).parent
TEMPLATE = HERE / "sqs_template.yaml"
PREFIX = f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT_ID}/loopline-local-"


class Stack:
    def __init__(self, ex: LocalExecutor, log: Path) -> None:
        self.ex = ex
        self.log = log
        self.sqs = boto3.client("sqs")

    def invocations(self, function: str | None = None) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        lines = [json.loads(line) for line in self.log.read_text().splitlines()]
        return [i for i in lines if function is None or i["function"] == function]

    def bodies(self, function: str) -> list[Any]:
        return [json.loads(r["body"]) for i in self.invocations(function) for r in i["records"]]

    def send(self, queue: str, *bodies: Any, delay: int = 0) -> None:
        entries = [
            {"Id": str(n), "MessageBody": json.dumps(b), "DelaySeconds": delay}
            for n, b in enumerate(bodies)
        ]
        self.sqs.send_message_batch(QueueUrl=PREFIX + queue, Entries=entries)

    def depth(self, queue: str) -> tuple[int, int]:
        """(visible, in flight) messages of ``queue``."""
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        got = self.sqs.get_queue_attributes(QueueUrl=PREFIX + queue, AttributeNames=names)
        return int(got["Attributes"][names[0]]), int(got["Attributes"][names[1]])

    def wait_for(self, function: str, count: int, timeout: float = 5) -> None:
        deadline = time.monotonic() + timeout
        while len(self.bodies(function)) < count:
            assert time.monotonic() < deadline, self.bodies(function)
            time.sleep(0.02)


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    log = tmp_path / "sqs.jsonl"
    monkeypatch.setenv("FIXTURE_SQS_FILE", str(log))
    local = LocalStack.load(TEMPLATE)
    with LocalExecutor(loopline_functions=False) as ex:
        try:
            local.provision(ex)
            yield Stack(ex, log)
        finally:
            local.restore_environment()


def test_the_template_s_sqs_events_are_the_mappings() -> None:
    local = LocalStack.load(TEMPLATE)
    mappings = {m.function: m for m in local.sqs_mappings()}
    assert mappings == {
        "loopline-local-PartialFunction": SqsMapping(
            function="loopline-local-PartialFunction",
            queue_url=PREFIX + "PartialQueue",
            queue_arn=f"arn:aws:sqs:us-east-1:{ACCOUNT_ID}:loopline-local-PartialQueue",
            batch_size=10,
            report_item_failures=True,
        ),
        "loopline-local-WholeFunction": SqsMapping(
            function="loopline-local-WholeFunction",
            queue_url=PREFIX + "WholeQueue",
            queue_arn=f"arn:aws:sqs:us-east-1:{ACCOUNT_ID}:loopline-local-WholeQueue",
            batch_size=3,
            report_item_failures=False,
        ),
    }


def test_a_message_sent_to_the_queue_reaches_the_function_as_lambdas_sqs_event(
    stack: Stack,
) -> None:
    stack.sqs.send_message(
        QueueUrl=PREFIX + "PartialQueue",
        MessageBody='{"n": 1}',
        MessageAttributes={"kind": {"DataType": "String", "StringValue": "email"}},
    )

    assert stack.ex.drain(5)

    [invocation] = stack.invocations("partial")
    [record] = invocation["records"]
    assert record["body"] == '{"n": 1}'
    assert record["md5OfBody"] == hashlib.md5(b'{"n": 1}').hexdigest()
    assert record["eventSource"] == "aws:sqs"
    assert (
        record["eventSourceARN"]
        == f"arn:aws:sqs:us-east-1:{ACCOUNT_ID}:loopline-local-PartialQueue"
    )
    assert record["awsRegion"] == "us-east-1"
    assert record["messageId"] and record["receiptHandle"]
    attributes = record["attributes"]
    assert attributes["ApproximateReceiveCount"] == "1"
    assert abs(int(attributes["SentTimestamp"]) / 1000 - time.time()) < 10
    assert set(attributes) >= {"SenderId", "ApproximateFirstReceiveTimestamp"}
    assert record["messageAttributes"]["kind"]["stringValue"] == "email"
    assert record["messageAttributes"]["kind"]["dataType"] == "String"
    assert stack.depth("PartialQueue") == (0, 0)  # handled: deleted


def test_a_batch_holds_at_most_the_batch_size(stack: Stack) -> None:
    stack.send("WholeQueue", *({"n": n} for n in range(7)), delay=1)

    stack.wait_for("whole", 7)
    assert stack.ex.drain(5)

    sizes = [len(i["records"]) for i in stack.invocations("whole")]
    assert max(sizes) <= 3 and sum(sizes) == 7
    assert sorted(b["n"] for b in stack.bodies("whole")) == list(range(7))
    assert stack.depth("WholeQueue") == (0, 0)


def test_a_reported_failure_comes_back_after_its_visibility_timeout_then_dead_letters(
    stack: Stack,
) -> None:
    # Sent with one delay, so both arrive in one batch.
    stack.send("PartialQueue", {"fail": "report"}, {"ok": 1}, delay=1)
    stack.wait_for("partial", 2)
    assert stack.ex.drain(5)
    [first] = stack.invocations("partial")
    assert len(first["records"]) == 2
    assert stack.depth("PartialQueue") == (0, 1)  # the ok one deleted, the failed one hidden

    stack.wait_for("partial", 3, timeout=5)  # back after the queue's 1 s
    again = stack.invocations("partial")[-1]["records"]
    assert [json.loads(r["body"]) for r in again] == [{"fail": "report"}]
    assert again[0]["attributes"]["ApproximateReceiveCount"] == "2"

    # Received twice (maxReceiveCount 2): the next receive moves it to the dead letters.
    dead = PREFIX + "PartialDeadLetterQueue"
    deadline = time.monotonic() + 5
    moved: list[dict[str, Any]] = []
    while not moved and time.monotonic() < deadline:
        moved = stack.sqs.receive_message(QueueUrl=dead).get("Messages") or []
        time.sleep(0.05)
    assert [json.loads(m["Body"]) for m in moved] == [{"fail": "report"}]
    assert len(stack.bodies("partial")) == 3  # never handed over a third time


def test_a_function_that_raises_gets_its_whole_batch_again(stack: Stack) -> None:
    stack.send("WholeQueue", {"fail": "raise"}, {"ok": 1}, delay=1)
    stack.wait_for("whole", 2)
    assert len(stack.invocations("whole")[0]["records"]) == 2

    stack.wait_for("whole", 4, timeout=5)  # both back after 1 s
    counts = [
        r["attributes"]["ApproximateReceiveCount"] for r in stack.invocations("whole")[1]["records"]
    ]
    assert counts == ["2", "2"]


def test_without_report_batch_item_failures_a_returned_batch_is_deleted(stack: Stack) -> None:
    stack.send("WholeQueue", {"fail": "report"})
    stack.wait_for("whole", 1)
    assert stack.ex.drain(5)
    time.sleep(1.3)  # past the visibility timeout: nothing comes back
    assert stack.ex.drain(5)
    assert len(stack.bodies("whole")) == 1
    assert stack.depth("WholeQueue") == (0, 0)


def test_an_answer_naming_a_message_not_in_the_batch_fails_the_whole_batch(stack: Stack) -> None:
    stack.send("PartialQueue", {"fail": "stranger"}, {"ok": 1}, delay=1)
    stack.wait_for("partial", 2)
    stack.wait_for("partial", 4, timeout=5)
    assert sorted(json.dumps(b) for b in stack.bodies("partial")[2:]) == sorted(
        [json.dumps({"fail": "stranger"}), json.dumps({"ok": 1})]
    )


def test_the_pollers_stop_with_the_executor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FIXTURE_SQS_FILE", str(tmp_path / "sqs.jsonl"))
    local = LocalStack.load(TEMPLATE)
    with LocalExecutor(loopline_functions=False) as ex:
        local.provision(ex)
        assert {t.name for t in threading.enumerate()} >= {
            "loopline-sqs-loopline-local-PartialFunction",
            "loopline-sqs-loopline-local-WholeFunction",
        }
    local.restore_environment()
    assert not [t for t in threading.enumerate() if t.name.startswith("loopline-sqs-")]


@pytest.mark.parametrize(
    ("answer", "failed"),
    [
        (None, set()),
        ({}, set()),
        ({"batchItemFailures": []}, set()),
        ({"batchItemFailures": [{"itemIdentifier": "a"}]}, {"a"}),
        ({"batchItemFailures": [{"itemIdentifier": "z"}]}, None),
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, None),
        ({"batchItemFailures": [{}]}, None),
        ({"batchItemFailures": "a"}, None),
    ],
)
def test_partial_batch_responses_are_read_as_lambda_reads_them(
    answer: Any, failed: set[str] | None
) -> None:
    assert failed_ids(answer, {"a", "b"}) == failed


# --------------------------------------------------------------------------- run and serve


def test_loopline_run_with_a_template_delivers_what_its_execution_queued(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loopline.local.run import run_workflow

    log = tmp_path / "sqs.jsonl"
    monkeypatch.setenv("FIXTURE_SQS_FILE", str(log))
    definition = {
        "StartAt": "Queue",
        "States": {
            "Queue": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sqs:sendMessage",
                "Parameters": {"QueueUrl": PREFIX + "WholeQueue", "MessageBody": {"from": "run"}},
                "End": True,
            }
        },
    }

    result = run_workflow(definition, None, {}, template=TEMPLATE, llm_script={"responses": []})

    assert result.status == "SUCCEEDED"
    # Handed to the function before run_workflow returned (it drains the stack).
    [line] = log.read_text().splitlines()
    [record] = json.loads(line)["records"]
    assert json.loads(record["body"]) == {"from": "run"}


def test_loopline_serve_polls_the_outbox_and_writes_the_email_the_function_sends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import email
    from email.policy import default

    from loopline.local.serve import LocalService
    from loopline.notify import email as notify_email
    from loopline.notify import outbox
    from loopline.service import humans
    from loopline.settings import settings

    from tests.conftest import ROOT

    def deliver(message: dict[str, Any]) -> None:  # the domain's part, in short
        view = {
            "id": message["human_task"],
            "workflow": "triage",
            "step": "review",
            "kind": "approval",
        }
        sender = settings().sender_email
        assert sender is not None
        notify_email.send(
            notify_email.compose(view, link=message["link"], sender=sender, recipient=message["to"])
        )

    monkeypatch.setattr(humans, "deliver", deliver)
    service = LocalService(ROOT / "template.yaml", port=0, outbox=tmp_path).start()
    try:
        link = f"{service.url}/a/abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
        outbox.send(
            [
                {
                    "kind": "email",
                    "human_task": "hum_1",
                    "notification": "n1",
                    "to": "ann@example.com",
                    "link": link,
                }
            ]
        )
        assert service.drain(5)
    finally:
        service.stop()

    written = email.message_from_bytes((tmp_path / "mail" / "1.eml").read_bytes(), policy=default)
    assert written["To"] == "ann@example.com" and written["From"] == "loopline@example.com"
    assert isinstance(written, email.message.EmailMessage)
    text, page = written.get_body(("plain",)), written.get_body(("html",))
    assert text is not None and page is not None
    assert link in text.get_content() and f'href="{link}"' in page.get_content()
