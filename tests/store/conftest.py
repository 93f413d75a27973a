"""The store's tests: a fresh tasks table per test, and moto's DynamoDB writes made
atomic under threads.

moto's DynamoDB checks a write's condition and applies the write in two unguarded steps,
so two threads can both pass ``attribute_not_exists(pk)``; DynamoDB itself serialises
conditional writes on an item. The thread tests check the store's invariants, not moto's,
so each write operation of moto's backend runs under one lock here (the local stack does
the same for ``loopline serve``).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from moto.dynamodb.models import DynamoDBBackend

from tests.tasktable import tasks_table

__all__ = ["atomic_moto_writes", "tasks_table"]

_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items")


@pytest.fixture(autouse=True)
def atomic_moto_writes(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    lock = threading.RLock()
    for name in _WRITES:
        original = getattr(DynamoDBBackend, name)

        def locked(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            with lock:
                return _original(*args, **kwargs)

        monkeypatch.setattr(DynamoDBBackend, name, functools.wraps(original)(locked))
    yield
