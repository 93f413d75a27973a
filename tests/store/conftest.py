"""The store's tests: a fresh tasks table per test, and moto's DynamoDB writes made
atomic under threads.

moto's DynamoDB checks a write's condition and applies the write in two unguarded steps,
so two threads can both pass ``attribute_not_exists(pk)``; DynamoDB itself serialises
conditional writes on an item. The thread tests check the store's invariants, not moto's,
so moto's item operations run under one lock here, the local stack's own
(``loopline.local.fidelity.serialise_dynamodb``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from loopline.local.fidelity import serialise_dynamodb

from tests.tasktable import tasks_table

__all__ = ["atomic_moto_writes", "tasks_table"]


@pytest.fixture(autouse=True)
def atomic_moto_writes() -> Iterator[None]:
    undo = serialise_dynamodb()
    yield
    undo()
