"""The tasks table's access patterns and invariants, against moto's DynamoDB with the
table made from template.yaml (tests/tasktable.py)."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
from loopline import ids, store
from loopline.settings import ConfigError, settings
from loopline.store import NewEvent


def _task(status: str = "RUNNING", workflow: str = "triage", **extra: Any) -> dict[str, Any]:
    return {
        "id": ids.new_id("task"),
        "workflow": workflow,
        "version": "1.0.0",
        "status": status,
        "run": 1,
        "inputs": {"ticket": "x", "score": 0.25, "deep": {"a": [1, 2.5, None, {"b": True}]}},
        "labels": {"team": "support"},
        "webhook": None,
        "output": None,
        "error": None,
        "cause": None,
        "created_at": ids.now(),
        "started_at": None,
        "finished_at": None,
        "steps": None,
        "execution_arn": None,
        "state_machine_arn": "arn:aws:states:us-east-1:123456789012:stateMachine:x",
        **extra,
    }


def _new(tenant: str = "acme", **kwargs: Any) -> str:
    task = _task(**kwargs)
    store.create_task(tenant, task)
    return str(task["id"])


def _threads(n: int, work: Callable[[int], Any]) -> list[Any]:
    results: list[Any] = [None] * n
    barrier = threading.Barrier(n)

    def run(i: int) -> None:
        barrier.wait()
        results[i] = work(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


pytestmark = pytest.mark.usefixtures("tasks_table")


# ---------------------------------------------------------------------- configuration


def test_an_unset_table_is_a_config_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LOOPLINE_TABLE")
    settings.cache_clear()
    assert not store.configured()
    with pytest.raises(ConfigError, match="LOOPLINE_TABLE is not set"):
        store.get_task_record("tsk_x")


# ---------------------------------------------------------------------- tasks


def test_a_task_round_trips_with_json_values_whatever_their_depth_and_no_decimal() -> None:
    task = _task()
    store.create_task("acme", task)

    got = store.get_task("acme", task["id"])

    assert got is not None
    assert got["inputs"] == task["inputs"]
    assert isinstance(got["inputs"]["score"], float)
    assert got["labels"] == {"team": "support"}
    assert (got["tenant"], got["status"], got["run"], got["seq"]) == ("acme", "RUNNING", 1, 0)
    assert (got["input_tokens"], got["output_tokens"]) == (0, 0)
    assert type(got["run"]) is int
    assert got["output"] is None and got["started_at"] is None


def test_another_tenants_task_is_none_exactly_as_a_missing_one() -> None:
    task_id = _new("acme")

    assert store.get_task("globex", task_id) is None
    assert store.get_task("acme", "tsk_missing") is None
    assert store.get_task_record(task_id) is not None


def test_creating_a_task_twice_with_one_id_is_refused() -> None:
    task = _task()
    store.create_task("acme", task)
    with pytest.raises(ValueError, match="already exists"):
        store.create_task("acme", task)


def test_update_task_sets_and_removes_fields_and_keeps_json_text() -> None:
    task_id = _new(error="Boom")

    seq = store.update_task(
        task_id, set={"status": "SUCCEEDED", "output": {"answer": [1.5, "x"]}, "error": None}
    )

    got = store.get_task("acme", task_id)
    assert seq == 0
    assert got is not None
    assert got["status"] == "SUCCEEDED"
    assert got["output"] == {"answer": [1.5, "x"]}
    assert got["error"] is None
    assert got["updated_at"] is not None


def test_update_task_of_a_missing_task_is_none() -> None:
    assert store.update_task("tsk_missing", set={"status": "FAILED"}) is None
    assert store.append_event("tsk_missing", NewEvent("step.started", "a")) is None


def test_expect_status_refuses_a_change_out_of_order() -> None:
    task_id = _new()
    cancelled = store.update_task(
        task_id,
        set={"status": "CANCELLED"},
        expect_status={"RUNNING", "WAITING"},
        event=NewEvent("task.cancelled", data={"status": "CANCELLED"}),
    )

    late = store.update_task(
        task_id,
        set={"status": "SUCCEEDED", "output": {"x": 1}},
        expect_status={"RUNNING", "WAITING"},
        event=NewEvent("task.succeeded", data={"status": "SUCCEEDED"}),
    )

    got = store.get_task("acme", task_id)
    assert cancelled == 1
    assert late is None
    assert got is not None and got["status"] == "CANCELLED" and got["output"] is None
    assert [e["type"] for e in store.list_events(task_id)] == ["task.cancelled"]


def test_expect_status_without_an_event_refuses_too() -> None:
    task_id = _new(status="SUCCEEDED")
    assert store.update_task(task_id, set={"status": "FAILED"}, expect_status={"RUNNING"}) is None
    got = store.get_task("acme", task_id)
    assert got is not None and got["status"] == "SUCCEEDED"


def test_require_unset_lets_one_started_write_through() -> None:
    task_id = _new()

    def start(_: int) -> int | None:
        return store.update_task(
            task_id,
            set={"started_at": ids.now()},
            require_unset="started_at",
            event=NewEvent("task.started"),
        )

    results = _threads(6, start)

    assert sorted(results, key=lambda r: r or 0) == [None] * 5 + [1]
    assert [e["type"] for e in store.list_events(task_id)] == ["task.started"]


def test_concurrent_append_event_from_8_threads_is_gapless_without_duplicates() -> None:
    task_id = _new()
    per_thread = 6

    def append(i: int) -> list[int | None]:
        return [
            store.append_event(task_id, NewEvent("step.started", f"s{i}", {"attempt": n}))
            for n in range(per_thread)
        ]

    results = _threads(8, append)

    seqs = sorted(s for r in results for s in r if s is not None)
    events = store.list_events(task_id, limit=1000)
    total = 8 * per_thread
    assert seqs == list(range(1, total + 1))
    assert [e["seq"] for e in events] == list(range(1, total + 1))
    assert len({(e["step"], e["data"]["attempt"]) for e in events}) == total
    got = store.get_task("acme", task_id)
    assert got is not None and got["seq"] == total


def test_events_come_in_order_after_a_sequence_number_with_a_limit() -> None:
    task_id = _new()
    for n in range(5):
        store.append_event(task_id, NewEvent("step.started", "a", {"attempt": n}, at=f"t{n}"))

    events = store.list_events(task_id, after=2, limit=2)

    assert events == [
        {"seq": 3, "at": "t2", "type": "step.started", "step": "a", "data": {"attempt": 2}},
        {"seq": 4, "at": "t3", "type": "step.started", "step": "a", "data": {"attempt": 3}},
    ]
    assert store.list_events(task_id, after=5) == []


def test_add_usage_adds_to_the_totals() -> None:
    task_id = _new()
    _threads(4, lambda _: store.add_usage(task_id, 10, 3))
    got = store.get_task("acme", task_id)
    assert got is not None and (got["input_tokens"], got["output_tokens"]) == (40, 12)
    store.add_usage("tsk_missing", 1, 1)  # nothing, no error
    assert store.get_task_record("tsk_missing") is None


# ---------------------------------------------------------------------- listing tasks


def test_list_tasks_is_newest_first_in_pages_with_a_cursor() -> None:
    made = [_new() for _ in range(5)]
    _new("globex")

    first, cursor = store.list_tasks("acme", limit=2)
    second, cursor2 = store.list_tasks("acme", limit=2, cursor=cursor)
    third, cursor3 = store.list_tasks("acme", limit=2, cursor=cursor2)

    ids_seen = [t["id"] for t in first + second + third]
    assert ids_seen == list(reversed(made))
    assert cursor and cursor2 and cursor3 is None


def test_a_full_last_page_has_no_next_cursor() -> None:
    for _ in range(2):
        _new()
    items, cursor = store.list_tasks("acme", limit=2)
    assert len(items) == 2 and cursor is None


def test_list_tasks_by_status_follows_status_changes() -> None:
    a, b, c = _new(), _new(), _new()
    store.update_task(b, set={"status": "SUCCEEDED"})

    running, _ = store.list_tasks("acme", status="RUNNING")
    done, _ = store.list_tasks("acme", status="SUCCEEDED")

    assert [t["id"] for t in running] == [c, a]
    assert [t["id"] for t in done] == [b]
    assert store.list_tasks("globex", status="RUNNING") == ([], None)


def test_a_workflow_filter_fills_each_page_until_the_end() -> None:
    wanted = []
    for i in range(12):
        task_id = _new(workflow="triage" if i % 4 == 0 else "other")
        if i % 4 == 0:
            wanted.append(task_id)

    first, cursor = store.list_tasks("acme", workflow="triage", limit=2)
    second, cursor2 = store.list_tasks("acme", workflow="triage", limit=2, cursor=cursor)

    assert [t["id"] for t in first] == [wanted[2], wanted[1]]
    assert [t["id"] for t in second] == [wanted[0]]
    assert cursor2 is None


def test_a_status_and_workflow_filter_combine() -> None:
    a = _new(workflow="triage")
    _new(workflow="other")
    b = _new(workflow="triage", status="FAILED")
    items, _ = store.list_tasks("acme", status="RUNNING", workflow="triage")
    assert [t["id"] for t in items] == [a]
    assert b not in [t["id"] for t in items]


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda c: c[:-3] + "xyz", id="changed-bytes"),
        pytest.param(lambda c: "not base64 !!", id="garbage"),
        pytest.param(
            lambda c: base64.urlsafe_b64encode(b'{"q": "x", "k": {}}').decode(), id="forged"
        ),
    ],
)
def test_a_tampered_cursor_is_invalid(tamper: Callable[[str], str]) -> None:
    for _ in range(3):
        _new()
    _, cursor = store.list_tasks("acme", limit=1)
    assert cursor is not None
    with pytest.raises(store.InvalidCursor):
        store.list_tasks("acme", limit=1, cursor=tamper(cursor))


def test_a_cursor_of_another_tenant_or_query_is_invalid() -> None:
    for _ in range(3):
        _new()
    _, cursor = store.list_tasks("acme", limit=1)
    assert cursor is not None
    with pytest.raises(store.InvalidCursor):
        store.list_tasks("globex", limit=1, cursor=cursor)
    with pytest.raises(store.InvalidCursor):
        store.list_tasks("acme", status="RUNNING", limit=1, cursor=cursor)
    with pytest.raises(store.InvalidCursor):
        store.list_tasks("acme", workflow="triage", limit=1, cursor=cursor)


def test_a_cursor_naming_another_tenants_partition_is_invalid() -> None:
    """A client who recomputes the tag still cannot start inside another tenant's tasks."""
    for _ in range(3):
        _new("globex")
    _, cursor = store.list_tasks("globex", limit=1)
    _new("acme")
    _, mine = store.list_tasks("acme", limit=1)
    assert cursor is not None
    data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    data["q"] = store._cursor_tag("acme", "GSI1", None, None)
    forged = base64.urlsafe_b64encode(json.dumps(data).encode()).decode()
    with pytest.raises(store.InvalidCursor):
        store.list_tasks("acme", limit=1, cursor=forged)
    assert mine is None


# ---------------------------------------------------------------------- step runs


def test_step_runs_are_recorded_updated_and_listed_oldest_first() -> None:
    task_id = _new()
    runs = [ids.new_id("run") for _ in range(3)]
    for attempt, run_id in enumerate(runs[:2]):
        store.put_step_run(
            task_id,
            {"step": "classify", "run_id": run_id, "attempt": attempt, "started_at": "t",
             "finished_at": None, "status": "RUNNING", "output": None, "error": None,
             "cause": None},
        )  # fmt: skip
    store.put_step_run(task_id, {"step": "reply", "run_id": runs[2], "attempt": 0,
                                 "status": "RUNNING"})  # fmt: skip

    assert store.update_step_run(
        task_id, "classify", runs[0], {"status": "SUCCEEDED", "output": {"label": 0.5}}
    )
    assert not store.update_step_run(task_id, "classify", "run_missing", {"status": "FAILED"})

    classify = store.list_step_runs(task_id, "classify")
    assert [r["run_id"] for r in classify] == runs[:2]
    assert classify[0]["status"] == "SUCCEEDED" and classify[0]["output"] == {"label": 0.5}
    assert classify[1]["attempt"] == 1 and type(classify[1]["attempt"]) is int
    assert [r["step"] for r in store.list_step_runs(task_id)] == ["classify", "classify", "reply"]
    assert store.list_step_runs(task_id, "class") == []


# ---------------------------------------------------------------------- workflows


def test_workflows_are_per_tenant_created_then_replaced() -> None:
    record = {
        "name": "triage", "version": "1", "description": "d", "source": "name: triage\n",
        "inputs_schema": {"type": "object", "properties": {"n": {"maximum": 2.5}}},
        "steps": [{"id": "a"}], "graph": "flowchart TD", "state_machine_arn": "arn:x",
        "created_at": "t0", "updated_at": "t0",
    }  # fmt: skip
    assert store.put_workflow("acme", record) is True
    assert store.put_workflow("acme", {**record, "version": "2"}) is False
    store.put_workflow("acme", {**record, "name": "alpha"})

    got = store.get_workflow("acme", "triage")
    assert (
        got is not None
        and got["version"] == "2"
        and got["inputs_schema"] == record["inputs_schema"]
    )
    assert store.get_workflow("globex", "triage") is None
    assert [w["name"] for w in store.list_workflows("acme")] == ["alpha", "triage"]
    assert store.list_workflows("globex") == []


# ---------------------------------------------------------------------- API keys


def test_api_keys_by_hash_and_by_id_and_revoked() -> None:
    store.put_api_key(
        key_hash="ab" * 32, key_id="key_1", tenant="acme", user="ann", roles=["admin"],
        created_at="t0",
    )  # fmt: skip

    got = store.get_api_key("ab" * 32)
    assert got is not None
    assert (got["tenant"], got["user"], got["roles"], got["revoked_at"]) == (
        "acme", "ann", ["admin"], None,
    )  # fmt: skip
    found = store.find_api_key("key_1")
    assert found is not None and found["key_hash"] == "ab" * 32
    assert store.revoke_api_key("ab" * 32, "t1") is True
    assert store.revoke_api_key("ab" * 32, "t2") is True
    revoked = store.get_api_key("ab" * 32)
    assert revoked is not None and revoked["revoked_at"] == "t1"
    assert store.revoke_api_key("cd" * 32, "t1") is False
    assert store.get_api_key("cd" * 32) is None and store.find_api_key("key_2") is None


# ---------------------------------------------------------------------- idempotency


def test_an_idempotency_key_claimed_by_20_threads_has_exactly_one_winner() -> None:
    now = ids.now()
    results = _threads(20, lambda _: store.claim_idempotency("acme", "k1", "h", now=now))

    assert results.count(None) == 1
    assert all(r == {"body_hash": "h", "task_id": None, "created_at": now} for r in results if r)


def test_an_idempotency_record_carries_its_task_then_expires() -> None:
    assert store.claim_idempotency("acme", "k", "h", now="2026-01-01T00:00:00.000Z") is None
    store.complete_idempotency("acme", "k", "tsk_1")

    again = store.claim_idempotency("acme", "k", "h2", now="2026-01-01T23:00:00.000Z")
    other_tenant = store.claim_idempotency("globex", "k", "h", now="2026-01-01T23:00:00.000Z")
    later = store.claim_idempotency("acme", "k", "h3", now="2026-01-02T00:00:01.000Z")

    assert again == {"body_hash": "h", "task_id": "tsk_1", "created_at": "2026-01-01T00:00:00.000Z"}
    assert other_tenant is None
    assert later is None


def test_an_idempotency_record_has_a_ttl_in_epoch_seconds() -> None:
    from loopline import aws

    store.claim_idempotency("acme", "k", "h", now="2026-01-01T00:00:00.000Z", ttl_seconds=60)
    item = aws.client("dynamodb").get_item(
        TableName=store.table_name(),
        Key=store._key(store._idempotency_pk("acme", "k"), "IDEMPOTENCY"),
    )["Item"]
    assert item["expires_at"] == {"N": str(1767225600 + 60)}


def test_a_released_claim_can_be_claimed_again_but_a_completed_one_stays() -> None:
    now = ids.now()
    assert store.claim_idempotency("acme", "k", "h", now=now) is None
    store.release_idempotency("acme", "k")
    assert store.claim_idempotency("acme", "k", "h", now=now) is None
    store.complete_idempotency("acme", "k", "tsk_1")
    store.release_idempotency("acme", "k")
    again = store.claim_idempotency("acme", "k", "h", now=now)
    assert again is not None and again["task_id"] == "tsk_1"
