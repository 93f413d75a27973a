"""One served stack in this process per module (``tests/webhooks/stack.py``); each test
makes its own tasks and subscriptions."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.webhooks.stack import Stack, served


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with served("1,1,1,1") as s:
        yield s
