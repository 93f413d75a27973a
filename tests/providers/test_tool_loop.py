"""The llm step's tool-calling loop, provider-agnostic: through the Chat Completions server
and through the scripted model."""

from __future__ import annotations

import json
from typing import Any

import pytest
from loopline.runtime.actions import Env, dispatch
from loopline.runtime.errors import StepError
from loopline.runtime.providers.openai import OpenAIModel
from loopline.runtime.scripted import ScriptedModel
from loopline.runtime.tools import Tool, get_tool, register_tool

from tests.providers.chat_server import ChatServer

CALLS: list[dict[str, Any]] = []


def _add(args: dict[str, Any]) -> Any:
    CALLS.append(args)
    if args["a"] < 0:
        raise StepError("Loopline.Failed", "test_add: negative numbers are not allowed")
    return {"sum": args["a"] + args["b"]}


register_tool(
    Tool(
        "test_add",
        "Adds two numbers.",
        {
            "type": "object",
            "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
            "required": ["a", "b"],
            "additionalProperties": False,
        },
        _add,
    )
)


def payload(config: dict[str, Any]) -> dict[str, Any]:
    return {
        "action": "llm",
        "workflow": "wf",
        "step": "research",
        "execution": "arn:exec",
        "attempt": 0,
        "config": {"prompt": "What is 2 + 3?", **config},
        "values": {},
    }


def chat_env(chat: ChatServer) -> Env:
    return Env(model=OpenAIModel(base_url=chat.base_url, default_model="m", timeout=2))


def scripted(*answers: Any) -> Env:
    return Env(model=ScriptedModel.from_data({"responses": [{"answers": list(answers)}]}))


def fails(p: dict[str, Any], env: Env) -> StepError:
    with pytest.raises(StepError) as err:
        dispatch(p, env)
    return err.value


# --------------------------------------------------------------------------- chat server


def test_multi_turn_tool_calls_through_the_chat_server(chat: ChatServer) -> None:
    chat.tool_calls(("test_add", {"a": 2, "b": 3}), text="Adding.")
    chat.tool_calls(("test_add", {"a": 5, "b": 10}), ("json_query", {"data": [1], "query": "@"}))
    chat.answer("The sum is 5.")
    out = dispatch(payload({"tools": ["test_add", "json_query"]}), chat_env(chat))
    assert out["output"] == "The sum is 5."
    assert out["usage"] == {"input_tokens": 33, "output_tokens": 21, "turns": 3, "tool_calls": 3}

    first, second, third = chat.bodies
    # Only the step's tools are offered, with the registry's descriptions and schemas.
    assert first["tools"] == [
        {
            "type": "function",
            "function": {
                "name": name,
                "description": get_tool(name).description,
                "parameters": get_tool(name).schema,
            },
        }
        for name in ("test_add", "json_query")
    ]
    assert [m["role"] for m in second["messages"]] == ["user", "assistant", "tool"]
    assistant, result = second["messages"][1:]
    assert assistant["content"] == "Adding."
    assert assistant["tool_calls"][0]["function"] == {
        "name": "test_add",
        "arguments": json.dumps({"a": 2, "b": 3}),
    }
    assert result == {
        "role": "tool",
        "tool_call_id": assistant["tool_calls"][0]["id"],
        "content": '{"sum": 5}',
    }
    assert [m["role"] for m in third["messages"]] == [
        "user",
        "assistant",
        "tool",
        "assistant",
        "tool",
        "tool",
    ]
    assert third["messages"][-2]["content"] == '{"sum": 15}'
    assert third["messages"][-1]["content"] == "[1]"


def test_a_tool_error_is_fed_back_to_the_model(chat: ChatServer) -> None:
    chat.tool_calls(("test_add", {"a": -1, "b": 3}))
    chat.tool_calls(("test_add", {"a": "two", "b": 3}))
    chat.tool_calls(("test_add", "{not json"))
    chat.tool_calls(("http_get_everything", {}))
    chat.answer("I could not add them.")
    out = dispatch(payload({"tools": ["test_add"]}), chat_env(chat))
    assert out["output"] == "I could not add them."
    results = [b["messages"][-1]["content"] for b in chat.bodies[1:]]
    assert "negative numbers are not allowed" in results[0]
    assert "invalid args" in results[1] and "a" in results[1]
    assert "must be a JSON object" in results[2]
    assert "no tool 'http_get_everything'" in results[3] and "test_add" in results[3]


def test_tools_with_an_output_schema(chat: ChatServer) -> None:
    schema = {"type": "object", "properties": {"sum": {"type": "number"}}, "required": ["sum"]}
    chat.tool_calls(("test_add", {"a": 2, "b": 3}))
    chat.answer_json({"sum": 5})
    out = dispatch(payload({"tools": ["test_add"], "output_schema": schema}), chat_env(chat))
    assert out["output"] == {"sum": 5}
    assert all("response_format" in b and "tools" in b for b in chat.bodies)


def test_tool_loop_through_the_chat_server(chat: ChatServer) -> None:
    for _ in range(3):
        chat.tool_calls(("test_add", {"b": 3, "a": 2}))
    err = fails(payload({"tools": ["test_add"]}), chat_env(chat))
    assert err.name == "Loopline.ToolLoop"
    assert "test_add" in err.message
    assert len(chat.requests) == 3


# --------------------------------------------------------------------------- scripted model


def test_multi_turn_tool_calls_through_the_scripted_model() -> None:
    CALLS.clear()
    env = scripted(
        {"tool_call": {"name": "test_add", "args": {"a": 2, "b": 3}}},
        {"tool_calls": [{"name": "test_add", "args": {"a": 1, "b": 1}}, {"name": "now"}]},
        "Done: 5.",
    )
    out = dispatch(payload({"tools": ["test_add", "now"]}), env)
    assert out["output"] == "Done: 5."
    assert out["usage"]["turns"] == 3 and out["usage"]["tool_calls"] == 3
    assert CALLS == [{"a": 2, "b": 3}, {"a": 1, "b": 1}]


def test_the_same_call_a_third_time_is_a_tool_loop() -> None:
    CALLS.clear()
    env = scripted({"tool_call": {"name": "test_add", "args": {"a": 1, "b": 2}}})
    err = fails(payload({"tools": ["test_add"]}), env)
    assert err.name == "Loopline.ToolLoop"
    assert len(CALLS) == 2  # the third identical call is not run


def test_using_up_max_turns_still_calling_tools_is_max_turns() -> None:
    env = scripted(
        {"tool_call": {"name": "test_add", "args": {"a": 1, "b": 1}}},
        {"tool_call": {"name": "test_add", "args": {"a": 1, "b": 2}}},
        {"tool_call": {"name": "test_add", "args": {"a": 1, "b": 3}}},
        "too late",
    )
    err = fails(payload({"tools": ["test_add"], "max_turns": 3}), env)
    assert err.name == "Loopline.MaxTurns"
    assert "max_turns (3)" in err.message


def test_the_last_allowed_turn_may_answer() -> None:
    env = scripted({"tool_call": {"name": "test_add", "args": {"a": 1, "b": 1}}}, "2")
    assert dispatch(payload({"tools": ["test_add"], "max_turns": 2}), env)["output"] == "2"


def test_an_unknown_tool_in_the_step_fails_before_any_model_call() -> None:
    model = ScriptedModel.from_data({"responses": [{"answer": "x"}]})
    err = fails(payload({"tools": ["no_such_tool"]}), Env(model=model))
    assert err.name == "Loopline.Failed"
    assert "no_such_tool" in err.message
    assert model.calls == []


@pytest.mark.parametrize(
    "answer",
    [
        {"tool_call": {"args": {}}},
        {"tool_call": {"name": "x", "args": [1]}},
        {"tool_calls": []},
        {"tool_call": {"name": "x", "extra": 1}},
    ],
)
def test_bad_tool_call_answers_are_script_problems(answer: Any) -> None:
    from loopline.runtime.scripted import ScriptInvalid

    with pytest.raises(ScriptInvalid):
        ScriptedModel.from_data({"responses": [{"answer": answer}]})


# --------------------------------------------------------------------------- S3 scope


def test_s3_tools_called_by_a_model_are_confined_to_the_workflows_prefix(
    chat: ChatServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3
    from loopline.settings import settings
    from moto import mock_aws

    monkeypatch.setenv("LOOPLINE_BUCKET", "artifacts")
    settings.cache_clear()
    try:
        with mock_aws():
            s3 = boto3.client("s3", region_name="us-east-1")
            s3.create_bucket(Bucket="artifacts")
            s3.put_object(Bucket="artifacts", Key="other/secret.json", Body=b"secret")
            chat.tool_calls(("s3_get", {"uri": "s3://artifacts/other/secret.json"}))
            chat.tool_calls(("s3_put", {"uri": "s3://artifacts/other/secret.json", "body": "x"}))
            chat.tool_calls(("s3_put", {"uri": "notes/mine.txt", "body": "mine"}))
            chat.answer("done")
            out = dispatch(payload({"tools": ["s3_get", "s3_put"]}), chat_env(chat))
            assert out["output"] == "done"
            assert s3.get_object(Bucket="artifacts", Key="other/secret.json")["Body"].read() == (
                b"secret"
            )
            assert s3.get_object(Bucket="artifacts", Key="wf/notes/mine.txt")["Body"].read() == (
                b"mine"
            )
    finally:
        settings.cache_clear()
    results = [b["messages"][-1]["content"] for b in chat.bodies[1:]]
    assert "outside what this workflow may reach" in results[0]
    assert "outside what this workflow may reach" in results[1]
    assert json.loads(results[2]) == {"uri": "s3://artifacts/wf/notes/mine.txt", "size": 4}
