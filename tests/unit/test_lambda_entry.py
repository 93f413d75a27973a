"""A Lambda's error type is the Loopline error name, so Step Functions can route on it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from loopline.runtime import actions
from loopline.runtime.actions import set_default_env
from loopline.runtime.lambda_entry import error_class, handle
from loopline.settings import settings

from tests.providers.conftest import LogCapture
from tests.providers.conftest import log_lines as log_lines  # the fixture


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


# --------------------------------------------------------------------------- failures


@pytest.fixture
def fresh_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """The handler builds its Env from the settings again; the settings are read again."""
    previous = set_default_env(None)
    settings.cache_clear()
    try:
        yield monkeypatch
    finally:
        set_default_env(previous)
        settings.cache_clear()


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        (
            "LOOPLINE_LLM_TIMEOUT",
            "soon",
            'LOOPLINE_LLM_TIMEOUT must be a number of seconds greater than 0 and at most 900, got "soon"',
        ),
        (
            "LOOPLINE_LLM_PROVIDER",
            "scripted",
            "LOOPLINE_LLM_PROVIDER is scripted, but LOOPLINE_LLM_SCRIPT names no script",
        ),
    ],
)
def test_an_invalid_configuration_fails_the_step_readably_not_with_a_traceback(
    fresh_env: pytest.MonkeyPatch, variable: str, value: str, says: str
) -> None:
    fresh_env.setenv(variable, value)
    with pytest.raises(Exception) as info:
        handle({"action": "eval", "step": "x", "config": {"expr": "1"}, "values": {}})
    assert type(info.value).__name__ == "Loopline.Failed"
    assert str(info.value) == f"step x: the configuration is invalid: {says}"


def test_an_unexpected_failure_logs_its_traceback_for_the_operator_without_credentials(
    fresh_env: pytest.MonkeyPatch, log_lines: LogCapture
) -> None:
    def explode(payload: Any, env: Any) -> Any:
        raise ValueError("upstream said Authorization: Bearer tk-0a1b2c3d4e rejected")

    fresh_env.setitem(actions.ACTIONS, "eval", explode)
    with pytest.raises(Exception) as info:
        handle({"action": "eval", "step": "x", "config": {}, "values": {}})
    assert type(info.value).__name__ == "Loopline.Failed"
    assert str(info.value) == (
        "step x: eval failed unexpectedly: upstream said Authorization: Bearer *** rejected"
    )
    logged = [json.loads(line) for line in log_lines.text.splitlines() if line.startswith("{")]
    failed = next(entry for entry in logged if entry["message"] == "step failed")
    assert failed["error"] == "Loopline.Failed" and failed["cause"] == str(info.value)
    assert "Traceback" in failed["exception"] and failed["exception_name"] == "ValueError"
    assert "tk-0a1b2c3d4e" not in log_lines.text


def test_other_libraries_log_lines_are_redacted_by_the_root_handlers() -> None:
    import subprocess
    import sys

    code = (
        "import logging, sys\n"
        "logging.basicConfig(stream=sys.stdout, level=logging.INFO)\n"
        "import loopline.observability\n"
        "logging.getLogger('httpx').info('HTTP Request: GET https://u:pw-5e6f7a8b@h/x?token=t-91827364')\n"
        "try:\n"
        "    raise ValueError('Authorization: Bearer tk-0f1e2d3c')\n"
        "except ValueError:\n"
        "    logging.getLogger('botocore').exception('failed')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert "HTTP Request: GET https://***@h/x?token=***" in out
    assert "Authorization: Bearer ***" in out and "Traceback" in out
    for secret in ("pw-5e6f7a8b", "t-91827364", "tk-0f1e2d3c"):
        assert secret not in out
