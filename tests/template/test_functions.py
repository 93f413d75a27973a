"""The functions template.yaml adds beside the step functions: the example custom step
type and the placeholders of later changes."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import boto3
import pytest
import yaml
from loopline.settings import settings

from tests.conftest import ROOT
from tests.tasktable import tasks_table  # noqa: F401 - the fixture
from tests.template.cfn_yaml import load_template


def _function_module(kind: str) -> ModuleType:
    path = ROOT / "functions" / kind / "app.py"
    spec = importlib.util.spec_from_file_location(f"functions_{kind}_app", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Context:
    """The Lambda context attributes Powertools' Logger reads."""

    function_name: str = "test"
    memory_limit_in_mb: int = 128
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:test"
    aws_request_id: str = "req-1"


#: Placeholders emit no metric; Powertools warns about that.
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")


@pytest.fixture(autouse=True)
def _powertools_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")


def test_word_count_returns_the_number_of_words_of_its_text() -> None:
    handler = _function_module("word_count").handler
    event: dict[str, Any] = {"workflow": "release-gate", "step": "notes_words"}
    assert handler({**event, "args": {"text": "ship it\tnow\n"}}, None) == 3
    assert handler({**event, "args": {"text": ""}}, None) == 0


def test_the_api_answers_a_request_without_a_caller_with_a_problem() -> None:
    # Routes and their answers: tests/api and tests/e2e.
    response = _function_module("api").handler(
        {"httpMethod": "GET", "path": "/v1/tasks", "resource": "/{proxy+}"}, Context()
    )
    assert response["statusCode"] == 401
    assert json.loads(response["body"])["status"] == 401


def test_status_events_of_executions_that_are_no_tasks_change_nothing(
    tasks_table: str,  # noqa: F811 - the fixture
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What the function does with a task's events: tests/tracking.
    event = {
        "detail-type": "Step Functions Execution Status Change",
        "detail": {
            "status": "SUCCEEDED",
            "executionArn": "arn:x:tsk_1",
            "stateMachineArn": "arn:y",
        },
    }
    handler = _function_module("status_events").handler
    assert handler(event, Context()) is None
    client = boto3.client("dynamodb")
    assert client.scan(TableName=tasks_table)["Items"] == []
    monkeypatch.delenv("LOOPLINE_TABLE")
    settings.cache_clear()
    assert handler(event, Context()) is None  # no table: nothing to do


def test_the_outbox_function_answers_an_empty_batch_with_no_failures() -> None:
    # What it does with messages: tests/notify/test_outbox.py.
    handler = _function_module("outbox").handler
    assert handler({"Records": []}, Context()) == {"batchItemFailures": []}


def test_the_template_loader_refuses_intrinsics_the_local_stack_cannot_resolve(
    tmp_path: Any,
) -> None:
    bad = tmp_path / "t.yaml"
    bad.write_text("Resources:\n  X:\n    Value: !Join [',', [a, b]]\n", encoding="utf-8")
    with pytest.raises(yaml.constructor.ConstructorError, match="!Join"):
        load_template(bad)
    good = tmp_path / "g.yaml"
    good.write_text("A: !GetAtt Q.QueueName\nB: !If [C, !Ref X, !Ref AWS::NoValue]\n")
    assert load_template(good) == {
        "A": {"Fn::GetAtt": ["Q", "QueueName"]},
        "B": {"Fn::If": ["C", {"Ref": "X"}, {"Ref": "AWS::NoValue"}]},
    }
