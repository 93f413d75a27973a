"""The step actions of docs/internals.md, called the way a Lambda payload calls them."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

import pytest
from loopline import store
from loopline.runtime import actions
from loopline.runtime.actions import Env, dispatch, parse_verdict
from loopline.runtime.errors import StepError
from loopline.runtime.scripted import ScriptedModel
from loopline.service import humans

from tests.tasktable import tasks_table

__all__ = ["tasks_table"]


def payload(action: str, config: dict[str, Any], **values: Any) -> dict[str, Any]:
    return {
        "action": action,
        "workflow": "wf",
        "step": "s",
        "execution": "arn:exec",
        "attempt": 0,
        "config": config,
        "values": values,
    }


def scripted(*rules: dict[str, Any]) -> Env:
    return Env(model=ScriptedModel.from_data({"responses": list(rules)}))


# --------------------------------------------------------------------------- llm


def test_llm_renders_the_prompt_and_returns_the_text_with_usage() -> None:
    env = scripted({"step": "s", "when": "about tides", "answer": "Tides rise."})
    out = dispatch(
        payload("llm", {"prompt": "Write about {{ inputs.topic }}"}, inputs={"topic": "tides"}),
        env,
    )
    assert out["output"] == "Tides rise."
    assert out["usage"]["input_tokens"] > 0 and out["usage"]["output_tokens"] > 0


def test_llm_with_output_schema_returns_the_parsed_object() -> None:
    env = scripted({"answer": '```json\n{"severity": 2}\n```'})
    schema = {"type": "object", "properties": {"severity": {"type": "integer", "maximum": 3}}}
    out = dispatch(payload("llm", {"prompt": "p", "output_schema": schema}), env)
    assert out["output"] == {"severity": 2}


def test_llm_answer_breaking_output_schema_is_invalid_output_naming_the_rule() -> None:
    env = scripted({"answer": {"severity": 5}})
    schema = {"type": "object", "properties": {"severity": {"type": "integer", "maximum": 3}}}
    with pytest.raises(StepError) as err:
        dispatch(payload("llm", {"prompt": "p", "output_schema": schema}), env)
    assert err.value.name == "Loopline.InvalidOutput"
    assert "severity" in err.value.message and "rule maximum" in err.value.message


def test_llm_answer_that_is_not_json_is_invalid_output() -> None:
    env = scripted({"answer": "sure! here it is"})
    with pytest.raises(StepError) as err:
        dispatch(payload("llm", {"prompt": "p", "output_schema": {"type": "object"}}), env)
    assert err.value.name == "Loopline.InvalidOutput"
    assert "not JSON" in err.value.message


def test_llm_without_a_model_says_a_model_must_be_configured() -> None:
    with pytest.raises(StepError) as err:
        dispatch(payload("llm", {"prompt": "p"}), Env())
    assert err.value.name == "Loopline.LLMError"
    assert "no model is configured" in err.value.message
    assert "--llm-script" in err.value.message


def test_llm_prompt_reading_a_missing_value_fails_clearly() -> None:
    env = scripted({"answer": "x"})
    with pytest.raises(StepError, match=r"steps\.draft\.output\.title, which has no value"):
        dispatch(payload("llm", {"prompt": "{{ steps.draft.output.title }}"}, steps={}), env)


# --------------------------------------------------------------------------- vote


@pytest.mark.parametrize(
    ("text", "refuted", "reason"),
    [
        ('{"refuted": true, "reason": "wrong"}', True, "wrong"),
        ('```json\n{"refuted": false, "reason": "fine"}\n```', False, "fine"),
        ("REFUTED: the date is wrong", True, "the date is wrong"),
        ("upheld - matches the rules", False, "matches the rules"),
    ],
)
def test_parse_verdict(text: str, refuted: bool, reason: str) -> None:
    assert parse_verdict(text) == (refuted, reason)


def test_an_unparseable_verdict_is_null() -> None:
    refuted, reason = parse_verdict("I am not sure")
    assert refuted is None and "unparseable" in reason


def test_vote_voter_judges_the_item_against_the_rules() -> None:
    env = scripted({"step": "s", "when": "claim 42", "answer": {"refuted": True, "reason": "no"}})
    p = payload(
        "vote_voter",
        {"rules": "Claims must be sourced.", "voters": 3, "voter": 1},
        vars={"item": "claim 42"},
    )
    assert dispatch(p, env) == {"output": {"refuted": True, "reason": "no", "voter": 1}}
    prompt = env.model.calls[0].prompt  # type: ignore[union-attr]
    assert "Claims must be sourced." in prompt


def test_vote_aggregate_drops_items_refuted_by_at_least_threshold_voters() -> None:
    def v(r: bool | None) -> dict[str, Any]:
        return {"refuted": r, "reason": "", "voter": 0}

    results = [
        {"item": "a", "verdicts": [v(True), v(True), v(False)]},
        {"item": "b", "verdicts": [v(True), v(None), v(None)]},
        {"vars": {"item": "c"}, "verdicts": [{"output": v(True)}, v(False), v(True)]},
    ]
    p = payload("vote_aggregate", {"threshold": 2, "voters": 3})
    p["results"] = results
    out = dispatch(p, Env())["output"]
    assert out["survived"] == ["b"]
    assert out["dropped"] == ["a", "c"]
    assert (out["total"], out["kept"]) == (3, 1)
    assert [x["refuted"] for x in out["verdicts"][1]] == [True, None, None]


# --------------------------------------------------------------------------- tools


def test_tool_now_returns_an_iso_time() -> None:
    out = dispatch(payload("tool", {"tool": "now", "args": {}}), Env())["output"]
    assert datetime.fromisoformat(out.replace("Z", "+00:00")).tzinfo is not None


def test_tool_json_query_runs_jmespath_over_rendered_args() -> None:
    p = payload(
        "tool",
        {
            "tool": "json_query",
            "args": {"data": "{{ steps.a.output }}", "query": "items[?n > `1`].n"},
        },
        steps={"a": {"output": {"items": [{"n": 1}, {"n": 2}, {"n": 3}]}}},
    )
    assert dispatch(p, Env())["output"] == [2, 3]


def test_tool_render_returns_the_rendered_template() -> None:
    p = payload(
        "tool",
        {"tool": "render", "args": {"template": {"t": "hi {{ inputs.n }}"}}},
        inputs={"n": "x"},
    )
    assert dispatch(p, Env())["output"] == {"t": "hi x"}


def test_tool_args_are_validated_before_the_call() -> None:
    with pytest.raises(StepError, match=r"tool now: invalid args: format: 'week' is not one of"):
        dispatch(payload("tool", {"tool": "now", "args": {"format": "week"}}), Env())
    with pytest.raises(StepError, match=r"'query' is a required property"):
        dispatch(payload("tool", {"tool": "json_query", "args": {"data": 1}}), Env())


def test_an_unknown_tool_names_the_known_ones() -> None:
    with pytest.raises(StepError) as err:
        dispatch(payload("tool", {"tool": "web_search", "args": {}}), Env())
    assert "unknown tool 'web_search'" in err.value.message and "json_query" in err.value.message


def test_a_bad_jmespath_query_is_a_clear_error() -> None:
    with pytest.raises(StepError, match="invalid query"):
        dispatch(
            payload("tool", {"tool": "json_query", "args": {"data": {}, "query": "a[?"}}), Env()
        )


# The http action: tests/unit/test_http.py.


# --------------------------------------------------------------------------- task, eval, render, human


def test_task_invokes_the_function_with_rendered_args_and_returns_its_result() -> None:
    seen: list[tuple[str, Any]] = []

    def invoke(function: str, event: dict[str, Any]) -> Any:
        seen.append((function, event))
        return {"sum": sum(event["args"]["xs"])}

    p = payload(
        "task",
        {"type": "adder", "function": "adder-fn", "args": {"xs": "{{ inputs.xs }}"}},
        inputs={"xs": [1, 2]},
    )
    assert dispatch(p, Env(invoke=invoke)) == {"output": {"sum": 3}}
    assert seen == [
        (
            "adder-fn",
            {"workflow": "wf", "step": "s", "execution": "arn:exec", "args": {"xs": [1, 2]}},
        )
    ]


def test_eval_returns_the_value_of_the_expression() -> None:
    p = payload("eval", {"expr": "len(steps.a.output) > 1"}, steps={"a": {"output": [1, 2]}})
    assert dispatch(p, Env()) == {"output": True}
    assert dispatch(payload("eval", {"expr": "inputs.nope"}), Env()) == {"output": None}


def test_render_renders_a_json_value() -> None:
    p = payload(
        "render", {"template": {"a": "{{ inputs.x }}", "b": ["x={{ inputs.x }}"]}}, inputs={"x": 1}
    )
    assert dispatch(p, Env()) == {"output": {"a": 1, "b": ["x=1"]}}


def test_human_records_a_human_task_with_rendered_values_and_returns_nothing(
    tasks_table: str,
) -> None:
    p = payload(
        "human",
        {
            "kind": "approval",
            "instruction": "Review {{ inputs.topic }}",
            "context": {"draft": "{{ steps.d.output }}"},
            "rollback_to": ["d"],
            "timeout": 60,
        },
        inputs={"topic": "tides"},
        steps={"d": {"output": "text"}},
    )
    p["token"] = "tok-1"
    p["execution"] = "arn:aws:states:us-east-1:123456789012:execution:wf:run-1"
    assert dispatch(p, Env()) == {}
    [record] = store.list_task_human_tasks("run-1")
    assert (record["task_token"], record["step"], record["kind"]) == ("tok-1", "s", "approval")
    assert record["instruction"] == "Review tides" and record["context"] == {"draft": "text"}
    assert record["rollback_to"] == ["d"] and record["status"] == "open"
    assert "tok-1" not in json.dumps(humans.view(record))


def test_human_without_the_tasks_table_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from loopline.settings import settings

    monkeypatch.delenv("LOOPLINE_TABLE", raising=False)
    settings.cache_clear()
    p = payload("human", {"kind": "pause", "timeout": 60})
    p["token"] = "tok-1"
    try:
        with pytest.raises(StepError, match="human steps need the tasks table"):
            dispatch(p, Env())
    finally:
        monkeypatch.undo()
        settings.cache_clear()


# --------------------------------------------------------------------------- dispatch


def test_an_unknown_action_is_a_step_error() -> None:
    with pytest.raises(StepError, match="unknown action 'dance'"):
        dispatch(payload("dance", {}), Env())


def _client_error(code: str, status: int) -> Exception:
    import botocore.exceptions

    return botocore.exceptions.ClientError(
        {
            "Error": {"Code": code, "Message": "said the service"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        "GetObject",
    )


class _Opaque:
    pass


class ToolBroke(Exception):
    pass


def _causes() -> list[tuple[str, Any, str, str]]:
    import botocore.exceptions
    import httpx

    return [
        ("key error", KeyError("config"), "Loopline.Failed", 'missing key "config"'),
        ("value error", ValueError("bad value"), "Loopline.Failed", "bad value"),
        (
            "regex",
            re.error("missing ), unterminated subpattern", "(", 0),
            "Loopline.Failed",
            "missing ), unterminated subpattern at position 0",
        ),
        ("no message", RuntimeError(), "Loopline.Failed", "no details were given"),
        (
            "repr in message",
            ToolBroke(f"cannot use {_Opaque()}"),
            "Loopline.Failed",
            "cannot use an object",
        ),
        ("class name in message", ValueError("TypeError: nested"), "Loopline.Failed", "nested"),
        (
            "nonetype",
            AttributeError("'NoneType' object has no attribute 'get'"),
            "Loopline.Failed",
            "a null value has no attribute 'get'",
        ),
        ("timeout", TimeoutError(), "Loopline.Transient", "timed out"),
        (
            "refused",
            ConnectionRefusedError(111, "Connection refused"),
            "Loopline.Transient",
            "connection refused",
        ),
        (
            "httpx connect",
            httpx.ConnectError("[Errno 111] Connection refused"),
            "Loopline.Transient",
            "Connection refused",
        ),
        (
            "httpx read timeout",
            httpx.ReadTimeout("The read operation timed out"),
            "Loopline.Transient",
            "timed out",
        ),
        (
            "crlf header",
            httpx.LocalProtocolError("Illegal header value b'a\\r\\nb'"),
            "Loopline.Failed",
            'Illegal header value "a\\r\\nb"',
        ),
        (
            "invalid url",
            httpx.InvalidURL("Invalid non-printable ASCII character in URL"),
            "Loopline.Failed",
            "Invalid non-printable ASCII character in URL",
        ),
        (
            "bad bucket name",
            botocore.exceptions.ParamValidationError(report='Invalid bucket name "a_b!"'),
            "Loopline.Failed",
            'Parameter validation failed: Invalid bucket name "a_b!"',
        ),
        (
            "no region",
            botocore.exceptions.NoRegionError(),
            "Loopline.Failed",
            "You must specify a region.",
        ),
        (
            "no credentials",
            botocore.exceptions.NoCredentialsError(),
            "Loopline.Failed",
            "Unable to locate credentials",
        ),
        (
            "endpoint down",
            botocore.exceptions.EndpointConnectionError(endpoint_url="https://s3"),
            "Loopline.Transient",
            'Could not connect to the endpoint URL: "https://s3"',
        ),
        (
            "s3 throttled",
            _client_error("SlowDown", 503),
            "Loopline.Transient",
            "slow down: said the service",
        ),
        (
            "s3 5xx",
            _client_error("InternalError", 500),
            "Loopline.Transient",
            "internal: said the service",
        ),
        (
            "s3 missing",
            _client_error("NoSuchBucket", 404),
            "Loopline.Failed",
            "no such bucket: said the service",
        ),
        (
            "access denied",
            _client_error("AccessDenied", 403),
            "Loopline.Failed",
            "access denied: said the service",
        ),
        (
            "aws text",
            Exception(
                "An error occurred (ResourceNotFoundException) when calling the GetSecretValue "
                "operation: Secrets Manager can't find the specified secret."
            ),
            "Loopline.Failed",
            "resource not found: Secrets Manager can't find the specified secret.",
        ),
    ]


@pytest.mark.parametrize(
    ("exc", "name", "says"),
    [c[1:] for c in _causes()],
    ids=[c[0] for c in _causes()],
)
def test_an_unexpected_exception_becomes_a_readable_cause_named_by_its_cause(
    monkeypatch: pytest.MonkeyPatch, exc: Exception, name: str, says: str
) -> None:
    def explode(p: Any, env: Env) -> Any:
        raise exc

    monkeypatch.setitem(actions.ACTIONS, "eval", explode)
    with pytest.raises(StepError) as err:
        dispatch(payload("eval", {}), Env())
    assert err.value.name == name
    assert err.value.message == f"step s: eval failed unexpectedly: {says}"
    assert_readable(err.value.message)
    assert err.value.__cause__ is exc  # kept for the operator's log


def assert_readable(message: str) -> None:
    """No Python class name, repr or traceback in a cause."""
    assert not re.search(r"\b[A-Z]\w*(Error|Exception|Warning)\b", message), message
    assert not re.search(r"<[^>]* at 0x[0-9a-f]+>|\bb'|Traceback|^error:", message), message


def test_an_invalid_expression_in_eval_is_a_readable_failure() -> None:
    with pytest.raises(StepError) as err:
        dispatch(payload("eval", {"expr": "inputs.a =="}), Env())
    assert err.value.name == "Loopline.Failed"
    assert err.value.message.startswith('step s: invalid expression "inputs.a ==": ')
    assert_readable(err.value.message)


def test_an_output_schema_the_validator_cannot_apply_is_a_readable_failure() -> None:
    env = scripted({"answer": '"x"'})
    p = payload("llm", {"prompt": "p", "output_schema": {"type": "string", "pattern": "("}})
    with pytest.raises(StepError) as err:
        dispatch(p, env)
    assert err.value.name == "Loopline.Failed"
    assert err.value.message.startswith("step s: output_schema cannot be checked: ")
    assert "missing )" in err.value.message
    assert_readable(err.value.message)


@pytest.mark.parametrize(
    ("raised", "name", "message"),
    [
        (
            StepError("ValueError", "bad text"),
            "Loopline.Failed",
            "step s: function f failed: bad text",
        ),
        (StepError("KeyError", "'text'"), "Loopline.Failed", "step s: function f failed: 'text'"),
        (
            StepError("WordCount.TooLong", "too long"),
            "WordCount.TooLong",
            "step s: function f failed: too long",
        ),
        (
            StepError("Loopline.Transient", "busy"),
            "Loopline.Transient",
            "step s: function f failed: busy",
        ),
    ],
)
def test_a_custom_functions_error_keeps_only_a_chosen_name(
    raised: StepError, name: str, message: str
) -> None:
    def invoke(function: str, event: dict[str, Any]) -> Any:
        raise raised

    with pytest.raises(StepError) as err:
        dispatch(payload("task", {"function": "f"}), Env(invoke=invoke))
    assert (err.value.name, err.value.message) == (name, message)


@pytest.mark.moto
def test_a_custom_function_raising_in_the_local_stack_gives_a_readable_cause() -> None:
    from loopline.local.executor import LocalExecutor

    def broken(event: Any, context: Any) -> Any:
        raise ValueError()

    def missing_key(event: Any, context: Any) -> Any:
        return event["args"]["text"]

    with LocalExecutor(loopline_functions=False) as ex:
        ex.register_function("broken", broken)
        ex.register_function("missing-key", missing_key)
        causes = []
        for function in ("broken", "missing-key"):
            with pytest.raises(StepError) as err:
                dispatch(payload("task", {"function": function}), Env(invoke=ex.invoke))
            causes.append((err.value.name, err.value.message))
    assert causes == [
        ("Loopline.Failed", "step s: function broken failed: no details were given"),
        ("Loopline.Failed", 'step s: function missing-key failed: missing key "text"'),
    ]


def test_a_custom_function_returning_something_that_is_not_json_fails_readably() -> None:
    with pytest.raises(StepError) as err:
        dispatch(payload("task", {"function": "f"}), Env(invoke=lambda f, e: {1, 2}))
    assert err.value.message == "step s: function f returned a value that is not JSON"


def test_an_invalid_setting_fails_the_step_with_the_settings_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from loopline.settings import settings

    monkeypatch.setenv("LOOPLINE_LARGE_VALUE_BYTES", "lots")
    settings.cache_clear()
    try:
        with pytest.raises(StepError) as err:
            dispatch(payload("eval", {"expr": "1"}), Env())
    finally:
        settings.cache_clear()
    assert err.value.name == "Loopline.Failed"
    assert err.value.message == (
        "step s: the configuration is invalid: LOOPLINE_LARGE_VALUE_BYTES must be a whole "
        'number of bytes at least 1 and at most 262144, got "lots"'
    )
