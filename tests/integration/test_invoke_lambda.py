"""In AWS a task step reaches its custom step type's function through Lambda's Invoke API;
here the same boto3 call lands, through moto, in a locally registered function."""

from __future__ import annotations

from typing import Any

import pytest
from loopline.local.executor import LocalExecutor
from loopline.runtime.actions import invoke_lambda
from loopline.runtime.errors import StepError


def _words(event: dict[str, Any], context: Any) -> int:
    return len(event["args"]["text"].split())


def _broken(event: dict[str, Any], context: Any) -> int:
    raise ValueError("no text")


def test_invoke_lambda_returns_the_functions_result() -> None:
    with LocalExecutor(loopline_functions=False) as ex:
        arn = ex.register_function("words", _words)
        assert invoke_lambda(arn, {"args": {"text": "a b c"}}) == 3


def test_invoke_lambda_turns_a_function_error_into_a_step_error() -> None:
    with LocalExecutor(loopline_functions=False) as ex:
        ex.register_function("broken", _broken)
        with pytest.raises(StepError) as info:
            invoke_lambda("broken", {"args": {}})
        assert info.value.name == "ValueError"
        assert "no text" in info.value.message
