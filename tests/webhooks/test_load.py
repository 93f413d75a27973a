"""Load, scaled for ``make test``: ``EVENTS`` events to 10 receivers, one of which always
answers 500 (``make bench`` runs 1,000 events and asserts the same). Every event reaches each of
the 9 healthy receivers at least once, every (event, receiver) is in the delivery log
once, and duplicates carry the same ``webhook-id`` (``tests/webhooks/load.py``)."""

from __future__ import annotations

import pytest

from tests.webhooks.load import run_load
from tests.webhooks.stack import Stack

pytestmark = pytest.mark.moto

#: About 50 s on the local stack (about 20 deliveries a second: see
#: ``make bench``).
EVENTS = 100


def test_events_reach_nine_healthy_receivers_beside_one_that_always_fails(
    stack: Stack,
) -> None:
    result = run_load(stack, events=EVENTS, receivers=10, failing=1, tasks=2, timeout=60)
    assert result.problems == [], "\n".join(result.problems[:20])
    assert result.logged == EVENTS * 10
    assert result.requests >= EVENTS * 9
