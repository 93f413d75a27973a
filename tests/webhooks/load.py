"""Many events to many receivers, for ``tests/webhooks/test_load.py`` (scaled down) and
``make bench`` (1,000 events to 10 receivers).

The path under test starts at the table's stream: events are appended to a few real
tasks straight through ``loopline.store.append_event`` (as the status events function
does), each with its own ``at`` so a body tells which event it carries. Each receiver
has a subscription to ``task.succeeded``; the last ``failing`` receivers answer 500 to
everything. ``run_load`` returns what it measured and every property that did not hold:

- each event reaches each healthy receiver at least once, verified with its
  subscription's secret;
- each (event, receiver) is in the delivery log exactly once (recorded once, however
  often the stream handed it over);
- a receiver that got an event twice got it with the same ``webhook-id``, which is the
  delivery's id.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from loopline import ids, store

from tests.support.webhook_receiver import WebhookReceiver, task_of
from tests.webhooks.stack import Stack


@dataclass
class LoadResult:
    events: int
    receivers: int
    failing: int
    #: Seconds from the first append to the last event's arrival at the last healthy
    #: receiver (its first arrival there).
    seconds: float
    #: (event, healthy receiver) pairs that arrived.
    arrived: int
    #: Requests each healthy receiver got (retries and duplicates included).
    requests: int
    #: Deliveries of the appended events in the log.
    logged: int
    problems: list[str] = field(default_factory=list)

    @property
    def deliveries_per_second(self) -> float:
        """Events delivered to a healthy receiver per second."""
        return self.arrived / self.seconds if self.seconds else 0.0

    @property
    def events_per_second(self) -> float:
        """Events delivered to every healthy receiver per second."""
        return self.deliveries_per_second / max(1, self.receivers - self.failing)


def append_events(task_ids: list[str], count: int) -> tuple[float, list[tuple[str, int, str]]]:
    """Append ``count`` ``task.succeeded`` events over the tasks (one thread per task, as
    appends to one task are serialised by its ``seq``); when the first was appended
    (``time.monotonic()``) and each event's (task, seq, at)."""
    base = datetime.now(UTC)
    share: dict[str, list[int]] = defaultdict(list)
    for i in range(count):
        share[task_ids[i % len(task_ids)]].append(i)
    appended: list[tuple[str, int, str]] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def append(task_id: str, numbers: list[int]) -> None:
        try:
            for i in numbers:
                at = ids.format_time(base + timedelta(milliseconds=i))
                seq = store.append_event(
                    task_id, store.NewEvent("task.succeeded", data={"n": i}, at=at)
                )
                assert seq, f"no task {task_id}"
                with lock:
                    appended.append((task_id, seq, at))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=append, args=item) for item in share.items()]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return started, appended


def _arrivals(receiver: WebhookReceiver) -> dict[tuple[str | None, Any], float]:
    """(task, body timestamp) → first arrival (monotonic) of each event received."""
    first: dict[tuple[str | None, Any], float] = {}
    for r in receiver.received("task.succeeded"):
        key = (task_of(r), r.json.get("timestamp"))
        first.setdefault(key, r.monotonic)
    return first


def run_load(
    stack: Stack,
    events: int,
    receivers: int = 10,
    failing: int = 1,
    tasks: int = 4,
    timeout: float = 120,
    hooks: list[WebhookReceiver] | None = None,
    watch: Callable[[int, int], str | None] | None = None,
) -> LoadResult:
    """Run the scenario (with ``hooks``, receivers the caller started and stops; by
    default new ones) and check it. ``watch(arrived, expected)`` is called while it waits
    for the (event, healthy receiver) pairs; a reason it returns stops the run there."""
    task_ids = [stack.run(n=i) for i in range(tasks)]
    owned = hooks is None
    if hooks is None:
        hooks = [WebhookReceiver().__enter__() for _ in range(receivers)]
    assert len(hooks) == receivers
    subs: list[dict[str, Any]] = []
    try:
        for n, receiver in enumerate(hooks):
            sub = stack.subscribe(receiver.url, ["task.succeeded"])
            subs.append(sub)
            receiver.secrets = [sub["secret"]]
            if n >= receivers - failing:
                receiver.status(500)
        healthy = hooks[: receivers - failing]
        started, appended = append_events(task_ids, events)
        expected = {(task, at) for task, _, at in appended}

        deadline = time.monotonic() + timeout
        stopped = None
        while True:
            missing = sum(len(expected - _arrivals(r).keys()) for r in healthy)
            if not missing or time.monotonic() > deadline:
                break
            if watch is not None:
                stopped = watch(
                    len(expected) * len(healthy) - missing, len(expected) * len(healthy)
                )
                if stopped:
                    break
            time.sleep(0.2)
        last = max(
            (t for r in healthy for key, t in _arrivals(r).items() if key in expected),
            default=started,
        )
        problems: list[str] = []
        if stopped:
            problems.append(f"stopped with {missing} (event, receiver) pairs to go: {stopped}")
            arrived = len(expected) * len(healthy) - missing
            elapsed = time.monotonic() - started
            return LoadResult(events, receivers, failing, elapsed, arrived, 0, 0, problems)
        if missing:
            problems.append(f"{missing} (event, receiver) pairs never arrived in {timeout}s")

        # The delivery log: each (event, subscription) exactly once.
        wanted = {(task, seq) for task, seq, _ in appended}
        logged: dict[tuple[str, int, str], list[dict[str, Any]]] = defaultdict(list)
        for task_id in task_ids:
            for d in stack.deliveries(task_id):
                key = (task_id, int(d["event"]["seq"]))
                if key in wanted and d["target"].get("kind") == "subscription":
                    logged[(*key, str(d["target"].get("subscription")))].append(d)
        for task_id, seq, at in appended:
            for sub, receiver in zip(subs, hooks, strict=True):
                found = logged.get((task_id, seq, sub["id"]), [])
                if len(found) != 1:
                    problems.append(f"{task_id} #{seq} → {sub['id']}: {len(found)} in the log")
                    continue
                d = found[0]
                if d["event"]["at"] != at or d["url"] != receiver.url:
                    problems.append(f"{d['id']}: event or url differs: {d}")
                if receiver in healthy and d["id"] not in receiver.counts():
                    problems.append(f"{d['id']} never reached {receiver.url}")

        # Duplicates carry the same webhook-id; every request is verified.
        for receiver in hooks:
            by_event: dict[tuple[str | None, Any], set[str | None]] = defaultdict(set)
            for r in receiver.received("task.succeeded"):
                if (task_of(r), r.json.get("timestamp")) in expected:
                    by_event[(task_of(r), r.json.get("timestamp"))].add(r.webhook_id)
                    if not r.verified:
                        problems.append(f"{r.webhook_id} at {receiver.url}: {r.error}")
            for key, webhook_ids in by_event.items():
                if len(webhook_ids) != 1:
                    problems.append(f"{key} reached {receiver.url} as {sorted(webhook_ids)}")
        return LoadResult(
            events=events,
            receivers=receivers,
            failing=failing,
            seconds=last - started,
            arrived=len(expected) * len(healthy) - missing,
            requests=sum(len(r.received()) for r in healthy),
            logged=sum(len(v) for v in logged.values()),
            problems=problems,
        )
    finally:
        for sub in subs:
            stack.client.delete(f"/v1/webhooks/{sub['id']}")
        for receiver in hooks if owned else []:
            receiver.__exit__(None, None, None)
