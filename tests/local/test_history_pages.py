"""GetExecutionHistory answers in pages, as AWS does (loopline.local.fidelity): 100 events
by default, at most 1000, oldest first or newest first, each page with the token of the
next; a token of another request is refused."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.exceptions import ClientError
from loopline.local.executor import LocalExecutor

#: A Map over 60 items: over 200 history events.
MAP = {
    "StartAt": "Each",
    "States": {
        "Each": {
            "Type": "Map",
            "ItemsPath": "$.items",
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "INLINE"},
                "StartAt": "P",
                "States": {"P": {"Type": "Pass", "End": True}},
            },
            "End": True,
        }
    },
}


@pytest.fixture
def ended() -> Iterator[tuple[LocalExecutor, str]]:
    with LocalExecutor() as ex:
        arn = ex.start_execution(ex.create_state_machine("pages", MAP), {"items": list(range(60))})
        assert ex.wait(arn, timeout=30)["status"] == "SUCCEEDED"
        yield ex, arn


def _pages(ex: LocalExecutor, **kwargs: Any) -> list[list[int]]:
    pages = []
    while True:
        page = ex.sfn.get_execution_history(**kwargs)
        pages.append([int(e["id"]) for e in page["events"]])
        if "nextToken" not in page:
            return pages
        kwargs["nextToken"] = page["nextToken"]


def test_history_comes_in_pages_of_100_oldest_first(ended: tuple[LocalExecutor, str]) -> None:
    ex, arn = ended
    pages = _pages(ex, executionArn=arn)
    total = sum(len(p) for p in pages)
    assert total > 200 and len(pages) == (total + 99) // 100
    assert [len(p) for p in pages[:-1]] == [100] * (len(pages) - 1)
    assert [i for p in pages for i in p] == list(range(1, total + 1))
    assert pages == _pages(ex, executionArn=arn, maxResults=0)  # 0 is the default


def test_newest_first_pages_read_back_to_the_start(ended: tuple[LocalExecutor, str]) -> None:
    ex, arn = ended
    pages = _pages(ex, executionArn=arn, reverseOrder=True, maxResults=30)
    ids = [i for p in pages for i in p]
    assert ids == sorted(ids, reverse=True) and ids[-1] == 1
    assert all(len(p) == 30 for p in pages[:-1])
    assert (
        ex.sfn.get_execution_history(executionArn=arn, reverseOrder=True, maxResults=1)["events"][
            0
        ]["type"]
        == "ExecutionSucceeded"
    )


def test_a_page_holds_at_most_1000_events_and_tokens_hold_while_events_are_added() -> None:
    from loopline.local.fidelity import history_page

    manager = SimpleNamespace(
        _mutex=threading.Lock(), _history_event_list=[{"id": i} for i in range(1, 1501)]
    )
    page, token = history_page(manager, "arn", max_results=5000)
    assert [e["id"] for e in page] == list(range(1, 1001)) and token
    newest, older = history_page(manager, "arn", max_results=10, reverse=True)
    assert [e["id"] for e in newest] == list(range(1500, 1490, -1))
    # Events added meanwhile: the next pages go on where the first ones ended.
    manager._history_event_list += [{"id": i} for i in range(1501, 1511)]
    page, _ = history_page(manager, "arn", max_results=5000, token=token)
    assert [e["id"] for e in page] == list(range(1001, 1511))
    page, _ = history_page(manager, "arn", max_results=10, reverse=True, token=older)
    assert [e["id"] for e in page] == list(range(1490, 1480, -1))


def test_a_token_of_another_request_is_refused(ended: tuple[LocalExecutor, str]) -> None:
    ex, arn = ended
    token = ex.sfn.get_execution_history(executionArn=arn, maxResults=10)["nextToken"]
    for kwargs in ({"reverseOrder": True, "nextToken": token}, {"nextToken": "not-a-token"}):
        with pytest.raises(ClientError) as refused:
            ex.sfn.get_execution_history(executionArn=arn, maxResults=10, **kwargs)
        assert refused.value.response["Error"]["Code"] == "InvalidToken"


def test_reading_from_the_last_event_seen_returns_only_what_is_new(
    ended: tuple[LocalExecutor, str],
) -> None:
    ex, arn = ended
    everything = ex.history(arn)
    assert ex.history_after(arn, 0) == everything
    assert ex.history_after(arn, len(everything) - 3) == everything[-3:]
    assert ex.history_after(arn, len(everything)) == []
