"""Fixtures of the provider tests: a chat server, and settings set through the environment."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from loopline.settings import settings

from tests.providers.chat_server import ChatServer


@pytest.fixture
def chat() -> Iterator[ChatServer]:
    with ChatServer() as server:
        yield server


class SetEnv:
    """Set ``LOOPLINE_*`` variables for one test; the settings are read again."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.monkeypatch = monkeypatch

    def __call__(self, **values: Any) -> None:
        for key, value in values.items():
            self.monkeypatch.setenv(f"LOOPLINE_{key.upper()}", str(value))
        settings.cache_clear()


@pytest.fixture
def set_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[SetEnv]:
    for key in (
        "LLM_PROVIDER",
        "LLM_BASE_URL",
        "LLM_MODEL",
        "LLM_API_KEY",
        "LLM_API_KEY_SECRET",
        "LLM_API_KEY_PARAMETER",
        "LLM_SCRIPT",
        "LLM_MAX_RETRY_AFTER",
        "LLM_TIMEOUT",
    ):
        monkeypatch.delenv(f"LOOPLINE_{key}", raising=False)
    settings.cache_clear()
    yield SetEnv(monkeypatch)
    settings.cache_clear()


class LogCapture:
    """Every line the Loopline logger writes, through its real handler and formatter, at
    every level (``loopline.*`` loggers propagate to it)."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    @property
    def text(self) -> str:
        return self.stream.getvalue()


@pytest.fixture
def log_lines() -> Iterator[LogCapture]:
    from loopline.observability import logger

    capture = LogCapture()
    handler = logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    old_stream = handler.setStream(capture.stream)
    old_level = logger.log_level
    logger.setLevel("DEBUG")
    try:
        yield capture
    finally:
        logger.setLevel(old_level)
        if old_stream is not None:
            handler.setStream(old_stream)
