"""A Lambda's error type is the Loopline error name, so Step Functions can route on it."""

from __future__ import annotations

import pytest
from loopline.runtime.lambda_entry import error_class, handle


def test_step_error_becomes_an_exception_named_after_the_error() -> None:
    with pytest.raises(Exception) as info:
        handle({"action": "eval", "step": "x", "config": {}, "values": {}})
    assert type(info.value).__name__ == "Loopline.Failed"
    assert "eval needs an expr" in str(info.value)


def test_error_classes_are_reused() -> None:
    assert error_class("Loopline.Transient") is error_class("Loopline.Transient")


def test_a_good_payload_returns_the_output() -> None:
    out = handle(
        {
            "action": "eval",
            "step": "x",
            "config": {"expr": "inputs.n > 1"},
            "values": {"inputs": {"n": 2}},
        }
    )
    assert out == {"output": True}
