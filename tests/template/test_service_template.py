"""template.yaml's task service: the REST API (authorizer, gateway responses, throttling,
access logs, CORS), the stack workflows the API function knows, alarms, retained stores,
and each function's permissions."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml
from loopline.local.template import LocalStack

from tests.conftest import ROOT, example_workflows
from tests.template.cfn_yaml import load_template

TEMPLATE = load_template(ROOT / "template.yaml")
RESOURCES: dict[str, dict[str, Any]] = TEMPLATE["Resources"]
API = RESOURCES["Api"]["Properties"]
FUNCTIONS = {k: r for k, r in RESOURCES.items() if r["Type"] == "AWS::Serverless::Function"}


def _state_machine_id(workflow_file: str) -> str:
    return "".join(p.capitalize() for p in workflow_file.split("_")) + "StateMachine"


# --------------------------------------------------------------------------- the API


def test_the_api_is_a_rest_api_whose_default_authorizer_is_the_token_authorizer() -> None:
    assert RESOURCES["Api"]["Type"] == "AWS::Serverless::Api"
    assert API["StageName"] == {"Ref": "Stage"}
    auth = API["Auth"]
    assert auth["DefaultAuthorizer"] == "KeyAuthorizer"
    assert auth["AddDefaultAuthorizerToCorsPreflight"] is False
    authorizer = auth["Authorizers"]["KeyAuthorizer"]
    assert authorizer == {
        "FunctionArn": {"Fn::GetAtt": ["AuthorizerFunction", "Arn"]},
        "FunctionPayloadType": "TOKEN",
        "Identity": {"Header": "Authorization", "ReauthorizeEvery": 300},
    }
    props = FUNCTIONS["AuthorizerFunction"]["Properties"]
    assert props["CodeUri"] == "functions/authorizer/"


def test_the_api_function_serves_every_path_and_the_openapi_document_without_a_key() -> None:
    events = FUNCTIONS["ApiFunction"]["Properties"]["Events"]
    assert events["Proxy"] == {
        "Type": "Api",
        "Properties": {"RestApiId": {"Ref": "Api"}, "Path": "/{proxy+}", "Method": "ANY"},
    }
    assert events["OpenApi"] == {
        "Type": "Api",
        "Properties": {
            "RestApiId": {"Ref": "Api"},
            "Path": "/v1/openapi.json",
            "Method": "GET",
            "Auth": {"Authorizer": "NONE"},
        },
    }
    # No other function is reachable through the API.
    for logical_id, fn in FUNCTIONS.items():
        if logical_id != "ApiFunction":
            kinds = {e["Type"] for e in (fn["Properties"].get("Events") or {}).values()}
            assert "Api" not in kinds, logical_id


#: The answers API Gateway gives itself that a client of the contract meets.
GATEWAY_RESPONSES = {
    "UNAUTHORIZED": 401,
    "ACCESS_DENIED": 403,
    "MISSING_AUTHENTICATION_TOKEN": 404,
    "THROTTLED": 429,
    "QUOTA_EXCEEDED": 429,
    "REQUEST_TOO_LARGE": 413,
    "AUTHORIZER_FAILURE": 500,
    "AUTHORIZER_CONFIGURATION_ERROR": 500,
    "INTEGRATION_FAILURE": 502,
    "INTEGRATION_TIMEOUT": 504,
    "DEFAULT_4XX": 400,
    "DEFAULT_5XX": 500,
}


def _problem(template: str) -> dict[str, Any]:
    """The body a gateway response's template renders, with API Gateway's message."""
    assert template.count("$context.error.messageString") == 1
    rendered = template.replace("$context.error.messageString", json.dumps("the message"))
    body: dict[str, Any] = json.loads(rendered)
    return body


def test_the_gateway_responses_the_contract_needs_are_customised() -> None:
    responses = API["GatewayResponses"]
    assert set(GATEWAY_RESPONSES) <= set(responses)
    for kind, status in GATEWAY_RESPONSES.items():
        assert responses[kind]["StatusCode"] == status, kind


@pytest.mark.parametrize("kind", sorted(API["GatewayResponses"]))
def test_every_gateway_response_is_a_problem_json_with_its_own_status(kind: str) -> None:
    response = API["GatewayResponses"][kind]
    headers = response["ResponseParameters"]["Headers"]
    assert headers["Content-Type"] == "'application/problem+json'"
    body = _problem(response["ResponseTemplates"]["application/json"])
    assert body == {
        "type": "about:blank",
        "title": body["title"],
        "status": response["StatusCode"],
        "detail": "the message",
        "errors": [],
    }
    assert body["title"] and body["title"][0].isupper()
    assert 400 <= body["status"] < 600
    # CORS headers only when CorsOrigin is set.
    assert headers["Access-Control-Allow-Origin"] == {
        "Fn::If": ["HasCorsOrigin", {"Fn::Sub": "'${CorsOrigin}'"}, {"Ref": "AWS::NoValue"}]
    }


def test_a_401_asks_for_a_bearer_key() -> None:
    headers = API["GatewayResponses"]["UNAUTHORIZED"]["ResponseParameters"]["Headers"]
    assert headers["WWW-Authenticate"] == "'Bearer'"


def test_every_route_is_throttled_by_the_stack_parameters() -> None:
    [setting] = API["MethodSettings"]
    assert (setting["ResourcePath"], setting["HttpMethod"]) == ("/*", "*")
    assert setting["ThrottlingRateLimit"] == {"Ref": "ApiThrottlingRateLimit"}
    assert setting["ThrottlingBurstLimit"] == {"Ref": "ApiThrottlingBurstLimit"}
    params = TEMPLATE["Parameters"]
    assert params["ApiThrottlingRateLimit"]["Type"] == "Number"
    assert params["ApiThrottlingBurstLimit"]["Type"] == "Number"


def test_access_logs_are_json_lines_in_their_own_log_group() -> None:
    logs = API["AccessLogSetting"]
    assert logs["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}
    fields = json.loads(logs["Format"])
    assert fields["request_id"] == "$context.requestId"
    assert fields["status"] == "$context.status"
    assert fields["tenant"] == "$context.authorizer.tenant"
    assert not any("authorization" in str(v).lower() for v in fields.values())
    group = RESOURCES["ApiAccessLogGroup"]["Properties"]
    assert group["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_the_account_role_api_gateway_logs_with_is_created_on_request_and_kept() -> None:
    assert TEMPLATE["Parameters"]["ApiGatewayAccountRole"]["AllowedValues"] == [
        "create",
        "existing",
    ]
    for logical_id in ("ApiGatewayCloudWatchRole", "ApiGatewayAccount"):
        resource = RESOURCES[logical_id]
        assert resource["Condition"] == "CreatesApiGatewayAccountRole"
        assert resource["DeletionPolicy"] == resource["UpdateReplacePolicy"] == "Retain"
    # The API's stage waits for the account setting when this stack makes it.
    assert RESOURCES["Api"]["DependsOn"] == "ApiGatewayAccountReady"
    ready = RESOURCES["ApiGatewayAccountReady"]["Metadata"]
    assert ready["AccountSettings"]["Fn::If"][:2] == [
        "CreatesApiGatewayAccountRole",
        {"Ref": "ApiGatewayAccount"},
    ]


def _local_api(**parameters: str) -> dict[str, Any]:
    return LocalStack.load(ROOT / "template.yaml", parameters=parameters).properties("Api")


def test_cors_is_off_unless_an_origin_is_given() -> None:
    off = _local_api()
    assert "AllowOrigin" not in off["Cors"]
    assert all(
        "Access-Control-Allow-Origin" not in r["ResponseParameters"]["Headers"]
        for r in off["GatewayResponses"].values()
    )
    on = _local_api(CorsOrigin="https://app.example.com")
    assert on["Cors"]["AllowOrigin"] == "'https://app.example.com'"
    assert "Idempotency-Key" in on["Cors"]["AllowHeaders"]
    unauthorized = on["GatewayResponses"]["UNAUTHORIZED"]["ResponseParameters"]["Headers"]
    assert unauthorized["Access-Control-Allow-Origin"] == "'https://app.example.com'"


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("", True),
        ("https://app.example.com", True),
        ("http://localhost:3000", True),
        ("https://app.example.com/", False),
        ("https://app.example.com/x", False),
        ("*", False),
    ],
)
def test_the_cors_origin_parameter_takes_one_origin(origin: str, allowed: bool) -> None:
    pattern = TEMPLATE["Parameters"]["CorsOrigin"]["AllowedPattern"]
    assert bool(re.fullmatch(pattern, origin)) is allowed


def test_the_api_url_output_is_the_stage_base_url() -> None:
    assert TEMPLATE["Outputs"]["ApiUrl"]["Value"] == {
        "Fn::Sub": "https://${Api}.execute-api.${AWS::Region}.amazonaws.com/${Stage}"
    }


# --------------------------------------------------------------------------- stack workflows


def test_the_api_function_knows_every_stack_workflow_by_name_with_its_state_machine() -> None:
    env = FUNCTIONS["ApiFunction"]["Properties"]["Environment"]["Variables"]
    text = env["LOOPLINE_STACK_WORKFLOWS"]["Fn::Sub"]
    mapping = json.loads(text)
    expected = {
        yaml.safe_load(wf.read_text(encoding="utf-8"))["name"]: f"${{{_state_machine_id(wf.stem)}}}"
        for wf in example_workflows()
    }
    assert mapping == expected
    for ref in mapping.values():
        assert RESOURCES[ref[2:-1]]["Type"] == "AWS::Serverless::StateMachine"


def test_the_local_stack_resolves_the_stack_workflows_to_state_machine_arns() -> None:
    stack = LocalStack.load(ROOT / "template.yaml")
    env = stack.properties("ApiFunction")["Environment"]["Variables"]
    workflows = json.loads(env["LOOPLINE_STACK_WORKFLOWS"])
    assert workflows["ticket-triage"] == stack.resources["TriageStateMachine"].ref
    assert all(arn.startswith("arn:aws:states:") for arn in workflows.values())


# --------------------------------------------------------------------------- alarms


def _alarms() -> dict[str, dict[str, Any]]:
    return {
        k: r["Properties"] for k, r in RESOURCES.items() if r["Type"] == "AWS::CloudWatch::Alarm"
    }


def test_every_alarm_notifies_the_alarm_topic() -> None:
    assert _alarms()
    for logical_id, alarm in _alarms().items():
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}], logical_id
        assert alarm["OKActions"] == [{"Ref": "AlarmTopic"}], logical_id
        assert alarm["TreatMissingData"] == "notBreaching", logical_id
    subscription = RESOURCES["AlarmEmailSubscription"]
    assert subscription["Condition"] == "HasAlarmEmail"
    assert subscription["Properties"]["Endpoint"] == {"Ref": "AlarmEmail"}


def test_every_function_has_an_errors_alarm() -> None:
    watched = {
        alarm["Dimensions"][0]["Value"]["Ref"]
        for alarm in _alarms().values()
        if (alarm["Namespace"], alarm["MetricName"]) == ("AWS/Lambda", "Errors")
    }
    assert watched == set(FUNCTIONS)


def test_failed_tasks_and_dead_letters_are_alarmed() -> None:
    metrics = {(a["Namespace"], a["MetricName"]): a for a in _alarms().values()}
    failed = metrics["Loopline", "TasksFailed"]
    # Powertools Metrics' one default dimension: the service name of every function.
    service = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    assert failed["Dimensions"] == [
        {"Name": "service", "Value": service["POWERTOOLS_SERVICE_NAME"]}
    ]
    assert service["POWERTOOLS_METRICS_NAMESPACE"] == "Loopline"
    dead_letter_queues = {
        a["Dimensions"][0]["Value"]["Fn::GetAtt"][0]
        for a in _alarms().values()
        if (a["Namespace"], a["MetricName"]) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible")
    }
    assert dead_letter_queues == {
        "WebhookDeadLetterQueue",
        "WebhookFanoutDeadLetterQueue",
        "StatusEventsDeadLetterQueue",
        "OutboxDeadLetterQueue",
    }


def test_a_status_event_that_cannot_be_recorded_is_kept_not_dropped() -> None:
    fn = RESOURCES["StatusEventsFunction"]["Properties"]
    rule = fn["Events"]["ExecutionStatusChange"]["Properties"]
    queue = {"Fn::GetAtt": ["StatusEventsDeadLetterQueue", "Arn"]}
    assert rule["DeadLetterConfig"] == {"Arn": queue}
    assert rule["RetryPolicy"]["MaximumEventAgeInSeconds"] == 86400
    on_failure = fn["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]
    assert on_failure == {"Type": "SQS", "Destination": queue}
    policy = RESOURCES["StatusEventsDeadLetterQueuePolicy"]["Properties"]["PolicyDocument"]
    assert policy["Statement"][0]["Principal"] == {"Service": "events.amazonaws.com"}


def test_the_table_and_the_bucket_outlive_the_stack() -> None:
    for logical_id in ("TasksTable", "ArtifactsBucket"):
        assert RESOURCES[logical_id]["DeletionPolicy"] == "Retain", logical_id
        assert RESOURCES[logical_id]["UpdateReplacePolicy"] == "Retain", logical_id


# --------------------------------------------------------------------------- permissions

#: SAM policy templates the functions use → the actions they grant.
POLICY_TEMPLATES = {
    "LambdaInvokePolicy": {"lambda:InvokeFunction"},
    "AWSSecretsManagerGetSecretValuePolicy": {"secretsmanager:GetSecretValue"},
}

#: Each step function's work with the stores (StepFunctionPolicy).
STEP = {
    "s3:GetObject",
    "s3:PutObject",
    "s3:ListBucket",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:ConditionCheckItem",
    "dynamodb:Query",
}

#: What each function's code calls, and nothing more (the comments in template.yaml say
#: which code needs each).
NEEDS: dict[str, set[str]] = {
    "LlmFunction": STEP
    | {
        "secretsmanager:GetSecretValue",
        "bedrock:InvokeModel",
        "bedrock:InvokeModelWithResponseStream",
    },
    "ToolFunction": STEP,
    "HttpFunction": STEP,
    "TaskFunction": STEP | {"lambda:InvokeFunction"},
    "HumanFunction": STEP | {"sqs:SendMessage"},
    "HelperFunction": STEP,
    "WordCountFunction": set(),
    "AuthorizerFunction": {"dynamodb:GetItem"},
    "ApiFunction": {
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:ConditionCheckItem",
        "dynamodb:Query",
        "s3:GetObject",
        "s3:PutObject",
        "states:CreateStateMachine",
        "states:UpdateStateMachine",
        "states:StartExecution",
        "states:StopExecution",
        "states:SendTaskSuccess",
        "states:SendTaskFailure",
        "iam:PassRole",
        "sqs:SendMessage",
        "secretsmanager:GetSecretValue",
    },
    "OutboxFunction": {
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:ConditionCheckItem",
        "dynamodb:Query",
        "ses:SendRawEmail",
        "sqs:ChangeMessageVisibility",
        "sqs:SendMessage",
        "secretsmanager:GetSecretValue",
        "states:SendTaskSuccess",
        "states:SendTaskFailure",
    },
    "WebhookFanoutFunction": {
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:Query",
        "sqs:SendMessage",
    },
    "WebhookFunction": {
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:ConditionCheckItem",
        "sqs:ChangeMessageVisibility",
        "sqs:SendMessage",
    },
    "StatusEventsFunction": {
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:ConditionCheckItem",
        "dynamodb:Query",
        "states:DescribeExecution",
        "states:DescribeStateMachineForExecution",
        "states:GetExecutionHistory",
    },
}


def _branches(policy: Any) -> list[Any]:
    """A policy entry, or both sides of an ``!If`` (``AWS::NoValue`` dropped)."""
    if isinstance(policy, dict) and "Fn::If" in policy:
        _, yes, no = policy["Fn::If"]
        return [p for side in (yes, no) for p in _branches(side)]
    if policy == {"Ref": "AWS::NoValue"}:
        return []
    return [policy]


def _statements(policy: Any) -> list[dict[str, Any]]:
    if isinstance(policy, dict) and set(policy) == {"Ref"}:
        managed = RESOURCES[policy["Ref"]]
        assert managed["Type"] == "AWS::IAM::ManagedPolicy"
        return list(managed["Properties"]["PolicyDocument"]["Statement"])
    if isinstance(policy, dict) and "Statement" in policy:
        return list(policy["Statement"])
    [(name, _)] = policy.items()
    assert name in POLICY_TEMPLATES, f"unexpected policy {name}: grant actions by name"
    return [{"Effect": "Allow", "Action": sorted(POLICY_TEMPLATES[name])}]


def _actions(logical_id: str) -> set[str]:
    found: set[str] = set()
    for entry in FUNCTIONS[logical_id]["Properties"].get("Policies") or []:
        for policy in _branches(entry):
            for statement in _statements(policy):
                assert statement["Effect"] == "Allow"
                action = statement["Action"]
                found |= {action} if isinstance(action, str) else set(action)
    return found


@pytest.mark.parametrize("logical_id", sorted(FUNCTIONS))
def test_a_function_may_do_exactly_what_its_code_does(logical_id: str) -> None:
    assert _actions(logical_id) == NEEDS[logical_id]


def test_no_function_is_granted_a_wildcard_action() -> None:
    for logical_id in FUNCTIONS:
        assert not any("*" in action for action in _actions(logical_id)), logical_id


def _statement(logical_id: str, sid: str) -> dict[str, Any]:
    for entry in FUNCTIONS[logical_id]["Properties"].get("Policies") or []:
        for policy in _branches(entry):
            for statement in _statements(policy):
                if statement.get("Sid") == sid:
                    return statement
    raise AssertionError(f"{logical_id} has no statement {sid}")


def test_the_human_function_publishes_nothing_and_sends_only_to_the_outbox() -> None:
    actions = _actions("HumanFunction")
    assert not any(a.startswith("sns:") for a in actions)
    assert {a for a in actions if a.startswith("sqs:")} == {"sqs:SendMessage"}
    for logical_id in ("HumanFunction", "ApiFunction", "OutboxFunction"):
        env = FUNCTIONS[logical_id]["Properties"]["Environment"]["Variables"]
        assert env["LOOPLINE_OUTBOX_QUEUE"] == {"Ref": "OutboxQueue"}, logical_id
    for logical_id, sid in [
        ("HumanFunction", "SendOutboxMessages"),
        ("ApiFunction", "SendOutboxMessages"),
        ("OutboxFunction", "RetryOutboxMessages"),
    ]:
        statement = _statement(logical_id, sid)
        assert statement["Resource"] == {"Fn::GetAtt": ["OutboxQueue", "Arn"]}, logical_id
    # The webhook deliveries of notify: [{webhook}] (and the API's retries) go on their own
    # queue, by a statement of their own.
    for logical_id in ("HumanFunction", "ApiFunction"):
        statement = _statement(logical_id, "QueueWebhookDeliveries")
        assert statement["Resource"] == {"Fn::GetAtt": ["WebhookQueue", "Arn"]}, logical_id


# --------------------------------------------------------------------------- the outbox


def test_the_outbox_function_takes_batches_of_ten_and_reports_failed_items() -> None:
    props = FUNCTIONS["OutboxFunction"]["Properties"]
    assert props["CodeUri"] == "functions/outbox/"
    event = props["Events"]["Outbox"]
    assert event["Type"] == "SQS"
    assert event["Properties"]["Queue"] == {"Fn::GetAtt": ["OutboxQueue", "Arn"]}
    assert event["Properties"]["BatchSize"] == 10
    assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    # Lambda wants the queue's visibility timeout at least the function's timeout.
    queue = RESOURCES["OutboxQueue"]["Properties"]
    assert queue["VisibilityTimeout"] >= 6 * props["Timeout"]


def test_the_outbox_keeps_what_failed_every_attempt_for_14_days_encrypted() -> None:
    queue = RESOURCES["OutboxQueue"]["Properties"]
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["OutboxDeadLetterQueue", "Arn"]},
        "maxReceiveCount": 10,
    }
    dead = RESOURCES["OutboxDeadLetterQueue"]["Properties"]
    assert dead["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert queue["SqsManagedSseEnabled"] is True and dead["SqsManagedSseEnabled"] is True


def test_the_outbox_function_sends_email_only_from_the_sender_parameter() -> None:
    statement = _statement("OutboxFunction", "SendEmail")
    assert statement["Action"] == "ses:SendRawEmail"
    assert statement["Condition"] == {"StringEquals": {"ses:FromAddress": {"Ref": "SenderEmail"}}}
    env = FUNCTIONS["OutboxFunction"]["Properties"]["Environment"]["Variables"]
    assert env["LOOPLINE_SENDER_EMAIL"] == {"Ref": "SenderEmail"}
    assert env["LOOPLINE_SLACK_API_URL"] == {"Ref": "SlackApiUrl"}
    assert TEMPLATE["Parameters"]["SlackApiUrl"]["Default"] == "https://slack.com/api"
    pattern = TEMPLATE["Parameters"]["SenderEmail"]["AllowedPattern"]
    assert re.fullmatch(pattern, TEMPLATE["Parameters"]["SenderEmail"]["Default"])
    assert not re.fullmatch(pattern, "not an address")


def test_the_slack_secret_is_read_by_the_functions_that_need_it_only() -> None:
    secret = RESOURCES["SlackSecret"]
    assert secret["Type"] == "AWS::SecretsManager::Secret"
    assert json.loads(secret["Properties"]["SecretString"]) == {
        "bot_token": "",
        "signing_secret": "",
    }
    readers = {
        logical_id
        for logical_id in FUNCTIONS
        if "secretsmanager:GetSecretValue" in _actions(logical_id) and logical_id != "LlmFunction"
    }
    assert readers == {"ApiFunction", "OutboxFunction"}
    for logical_id in readers:
        assert _statement(logical_id, "ReadSlackSecret")["Resource"] == {"Ref": "SlackSecret"}
        env = FUNCTIONS[logical_id]["Properties"]["Environment"]["Variables"]
        assert env["LOOPLINE_SLACK_SECRET_ARN"] == {"Ref": "SlackSecret"}


def test_step_functions_touch_only_the_artifact_objects_and_the_table_itself() -> None:
    statements = RESOURCES["StepFunctionPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    resources = {s["Sid"]: s["Resource"] for s in statements}
    assert resources == {
        "ArtifactObjects": {"Fn::Sub": "${ArtifactsBucket.Arn}/*"},
        "ArtifactMissingObjects": {"Fn::GetAtt": ["ArtifactsBucket", "Arn"]},
        "RecordStepRuns": {"Fn::GetAtt": ["TasksTable", "Arn"]},
        "HumanTasks": [
            {"Fn::GetAtt": ["TasksTable", "Arn"]},
            {"Fn::Sub": "${TasksTable.Arn}/index/GSI1"},
        ],
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", None),
        ("https://app.example.com", "https://app.example.com"),
        ("http://localhost:3000", "http://localhost:3000"),
        ("https://app.example.com/", 'no path), got "https://app.example.com/"'),
        ("app.example.com", "URL with a host"),
    ],
)
def test_the_api_function_reads_cors_origin_as_one_origin(
    value: str, expected: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loopline.settings import ConfigError, Settings

    env = FUNCTIONS["ApiFunction"]["Properties"]["Environment"]["Variables"]
    assert env["LOOPLINE_CORS_ORIGIN"] == {"Ref": "CorsOrigin"}
    monkeypatch.setenv("LOOPLINE_CORS_ORIGIN", value)
    if expected is None or expected.startswith("http"):
        assert Settings().cors_origin == expected
    else:
        with pytest.raises(ConfigError, match=re.escape(expected)):
            Settings()


# --------------------------------------------------------------------------- webhooks


def test_new_task_and_human_events_of_the_table_reach_the_fan_out_and_nothing_else() -> None:
    table = RESOURCES["TasksTable"]["Properties"]
    assert table["StreamSpecification"] == {"StreamViewType": "NEW_IMAGE"}
    event = FUNCTIONS["WebhookFanoutFunction"]["Properties"]["Events"]["Events"]
    assert event["Type"] == "DynamoDB"
    props = event["Properties"]
    assert props["Stream"] == {"Fn::GetAtt": ["TasksTable", "StreamArn"]}
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert props["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": ["WebhookFanoutDeadLetterQueue", "Arn"]
    }
    (only,) = props["FilterCriteria"]["Filters"]
    pattern = json.loads(only["Pattern"])
    assert pattern["eventName"] == ["INSERT"]
    image = pattern["dynamodb"]["NewImage"]
    assert image["sk"] == {"S": [{"prefix": "EVENT#"}]}
    assert image["type"] == {"S": [{"prefix": "task."}, {"prefix": "human."}]}


def test_webhook_deliveries_are_retried_past_a_day_and_kept_when_they_fail() -> None:
    fn = FUNCTIONS["WebhookFunction"]["Properties"]
    event = fn["Events"]["Deliveries"]["Properties"]
    assert event["Queue"] == {"Fn::GetAtt": ["WebhookQueue", "Arn"]}
    assert event["BatchSize"] == 10
    assert event["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    queue = RESOURCES["WebhookQueue"]["Properties"]
    assert queue["VisibilityTimeout"] >= 6 * fn["Timeout"]
    assert queue["MessageRetentionPeriod"] == 14 * 24 * 3600
    env = fn["Environment"]["Variables"]
    assert env["LOOPLINE_WEBHOOK_DLQ_URL"] == {"Ref": "WebhookDeadLetterQueue"}
    assert env["LOOPLINE_WEBHOOK_RETRY_DELAYS"] == {"Ref": "WebhookRetryDelays"}
    default = TEMPLATE["Parameters"]["WebhookRetryDelays"]["Default"]
    assert sum(float(d) for d in default.split(",")) >= 24 * 3600
    dead = RESOURCES["WebhookDeadLetterQueue"]["Properties"]
    assert dead["MessageRetentionPeriod"] == 14 * 24 * 3600
