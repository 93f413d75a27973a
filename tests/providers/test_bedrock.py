"""The Bedrock provider: Converse requests and responses, checked by botocore's Stubber on a
real ``bedrock-runtime`` client (every shape is validated against the service model)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from loopline.runtime.actions import Env, dispatch
from loopline.runtime.errors import StepError, code_words
from loopline.runtime.providers.bedrock import ANSWER_TOOL, BedrockModel
from loopline.runtime.tools import get_tool

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"


def payload(config: dict[str, Any], **values: Any) -> dict[str, Any]:
    return {
        "action": "llm",
        "workflow": "wf",
        "step": "classify",
        "execution": "arn:exec",
        "attempt": 0,
        "config": config,
        "values": values,
    }


def response(*content: dict[str, Any], stop: str = "end_turn", tokens: tuple[int, int] = (30, 9)):
    return {
        "output": {"message": {"role": "assistant", "content": list(content)}},
        "stopReason": stop,
        "usage": {
            "inputTokens": tokens[0],
            "outputTokens": tokens[1],
            "totalTokens": sum(tokens),
        },
        "metrics": {"latencyMs": 12},
    }


@pytest.fixture
def bedrock() -> Iterator[tuple[Stubber, Env]]:
    client = boto3.client("bedrock-runtime", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield stubber, Env(model=BedrockModel(default_model=MODEL, client=client))
        stubber.assert_no_pending_responses()


def test_a_plain_answer(bedrock: tuple[Stubber, Env]) -> None:
    stubber, env = bedrock
    stubber.add_response(
        "converse",
        response({"text": "Tides rise."}),
        {
            "modelId": MODEL,
            "messages": [{"role": "user", "content": [{"text": "Write about tides"}]}],
            "system": [{"text": "Be brief."}],
            "inferenceConfig": {"maxTokens": 50, "temperature": 0.2},
        },
    )
    config = {
        "prompt": "Write about {{ inputs.topic }}",
        "system": "Be brief.",
        "max_tokens": 50,
        "temperature": 0.2,
    }
    out = dispatch(payload(config, inputs={"topic": "tides"}), env)
    assert out == {
        "output": "Tides rise.",
        "usage": {"input_tokens": 30, "output_tokens": 9, "turns": 1, "tool_calls": 0},
    }


def test_output_schema_goes_through_a_forced_tool(bedrock: tuple[Stubber, Env]) -> None:
    stubber, env = bedrock
    schema = {
        "type": "object",
        "properties": {"severity": {"type": "integer", "maximum": 3}},
        "required": ["severity"],
    }
    stubber.add_response(
        "converse",
        response(
            {"toolUse": {"toolUseId": "t1", "name": ANSWER_TOOL, "input": {"severity": 2}}},
            stop="tool_use",
        ),
        {
            "modelId": "other-model",
            "messages": ANY,
            "toolConfig": {
                "tools": [
                    {
                        "toolSpec": {
                            "name": ANSWER_TOOL,
                            "description": ANY,
                            "inputSchema": {"json": schema},
                        }
                    }
                ],
                "toolChoice": {"tool": {"name": ANSWER_TOOL}},
            },
        },
    )
    out = dispatch(payload({"prompt": "p", "output_schema": schema, "model": "other-model"}), env)
    assert out["output"] == {"severity": 2}


def test_an_answer_tool_input_breaking_the_schema_is_invalid_output(
    bedrock: tuple[Stubber, Env],
) -> None:
    stubber, env = bedrock
    schema = {"type": "object", "properties": {"severity": {"type": "integer", "maximum": 3}}}
    stubber.add_response(
        "converse",
        response({"toolUse": {"toolUseId": "t1", "name": ANSWER_TOOL, "input": {"severity": 9}}}),
    )
    with pytest.raises(StepError) as err:
        dispatch(payload({"prompt": "p", "output_schema": schema}), env)
    assert err.value.name == "Loopline.InvalidOutput"
    assert "maximum" in err.value.message


def test_a_tool_use_round_trip(bedrock: tuple[Stubber, Env]) -> None:
    stubber, env = bedrock
    tool = get_tool("json_query")
    args = {"data": {"a": [1, 2, 3]}, "query": "length(a)"}
    spec = {
        "toolSpec": {
            "name": "json_query",
            "description": tool.description,
            "inputSchema": {"json": tool.schema},
        }
    }
    first = [{"role": "user", "content": [{"text": "How many?"}]}]
    stubber.add_response(
        "converse",
        response(
            {"text": "Let me count."},
            {"toolUse": {"toolUseId": "tu-1", "name": "json_query", "input": args}},
            stop="tool_use",
            tokens=(40, 10),
        ),
        {"modelId": MODEL, "messages": first, "toolConfig": {"tools": [spec]}},
    )
    stubber.add_response(
        "converse",
        response({"text": "There are 3."}, tokens=(60, 5)),
        {
            "modelId": MODEL,
            "messages": [
                *first,
                {
                    "role": "assistant",
                    "content": [
                        {"text": "Let me count."},
                        {"toolUse": {"toolUseId": "tu-1", "name": "json_query", "input": args}},
                    ],
                },
                {
                    "role": "user",
                    "content": [{"toolResult": {"toolUseId": "tu-1", "content": [{"text": "3"}]}}],
                },
            ],
            "toolConfig": {"tools": [spec]},
        },
    )
    out = dispatch(payload({"prompt": "How many?", "tools": ["json_query"]}), env)
    assert out == {
        "output": "There are 3.",
        "usage": {"input_tokens": 100, "output_tokens": 15, "turns": 2, "tool_calls": 1},
    }


def test_a_failing_tool_call_goes_back_as_an_error_tool_result(
    bedrock: tuple[Stubber, Env],
) -> None:
    stubber, env = bedrock
    bad = {"data": [], "query": "[[["}
    stubber.add_response(
        "converse",
        response({"toolUse": {"toolUseId": "tu-9", "name": "json_query", "input": bad}}),
    )
    stubber.add_response("converse", response({"text": "Sorry."}))
    out = dispatch(payload({"prompt": "p", "tools": ["json_query"]}), env)
    assert out["output"] == "Sorry."


@pytest.mark.parametrize(
    ("code", "status", "name"),
    [
        ("ThrottlingException", 429, "Loopline.LLMRateLimited"),
        ("ServiceUnavailableException", 503, "Loopline.Transient"),
        ("InternalServerException", 500, "Loopline.Transient"),
        ("ModelTimeoutException", 408, "Loopline.Transient"),
        ("ModelNotReadyException", 429, "Loopline.Transient"),
        ("ValidationException", 400, "Loopline.LLMError"),
        ("AccessDeniedException", 403, "Loopline.LLMError"),
    ],
)
def test_errors_are_classified(
    bedrock: tuple[Stubber, Env], code: str, status: int, name: str
) -> None:
    stubber, env = bedrock
    stubber.add_client_error(
        "converse",
        service_error_code=code,
        service_message="it went wrong",
        http_status_code=status,
    )
    with pytest.raises(StepError) as err:
        dispatch(payload({"prompt": "p"}), env)
    assert err.value.name == name
    assert code_words(code) in err.value.message and "it went wrong" in err.value.message
    assert code not in err.value.message  # a botocore class name; the cause says it in words


def test_no_model_is_an_llm_error() -> None:
    with pytest.raises(StepError) as err:
        dispatch(payload({"prompt": "p"}), Env(model=BedrockModel(client=object())))
    assert err.value.name == "Loopline.LLMError"
    assert "LOOPLINE_LLM_MODEL" in err.value.message


def test_tool_results_join_one_user_message_and_errors_are_marked() -> None:
    from loopline.runtime.model import Message, ToolCall
    from loopline.runtime.providers.bedrock import converse_messages

    a, b = ToolCall("1", "now", {}), ToolCall("2", "now", {"format": "unix"})
    messages = converse_messages(
        (
            Message.user("p"),
            Message.assistant(None, (a, b)),
            Message.tool_result(a, "2024"),
            Message.tool_result(b, "error: no", is_error=True),
        )
    )
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[2]["content"][1]["toolResult"]["status"] == "error"
    assert json.dumps(messages)  # plain JSON, as Converse takes it
