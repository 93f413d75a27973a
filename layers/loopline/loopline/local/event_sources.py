"""What the local stack's event source pollers share (``sqs_events``, ``stream_events``):
one daemon thread per mapping, woken by an ``Event`` when moto gets something new, a
count of batches being handled, and ``drain`` that waits until none is and nothing is
left to hand over. A subclass starts its threads with ``_spawn``, wraps each batch in
``with self._working():`` and says what is left with ``_pending()``."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

#: Invoke a function by name with an event; returns its answer, raises when it fails.
Invoke = Callable[[str, Any], Any]


class InFlight:
    """How much work is under way (a count), and a wait until none is."""

    def __init__(self) -> None:
        self._count = 0
        self._idle = threading.Condition()

    def hold(self) -> None:
        with self._idle:
            self._count += 1

    def release(self) -> None:
        with self._idle:
            self._count -= 1
            if not self._count:
                self._idle.notify_all()

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        self.hold()
        try:
            yield
        finally:
            self.release()

    def wait_idle(self, deadline: float) -> bool:
        """Wait until nothing is under way (False when ``deadline``, a
        ``time.monotonic()``, passes first)."""
        with self._idle:
            while self._count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    @property
    def idle(self) -> bool:
        with self._idle:
            return not self._count


class EventSources:
    """The pollers of a kind of event source; ``stop()`` ends them and undoes the patch
    ``start()`` made (kept in ``_undo``)."""

    def __init__(self, invoke: Invoke, region: str) -> None:
        self._invoke = invoke
        self.region = region
        self._wake: dict[str, list[threading.Event]] = {}
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._in_flight = InFlight()
        self._undo: Callable[[], None] | None = None

    def _spawn(
        self, key: str, wake: threading.Event, name: str, target: Callable[..., None], *args: Any
    ) -> None:
        """Start a poller thread, woken through ``wake`` when ``key`` gets something."""
        wake.set()  # look once at once
        self._wake.setdefault(key, []).append(wake)
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _tell(self, key: str) -> None:
        for event in self._wake.get(key, ()):
            event.set()

    def _working(self) -> contextlib.AbstractContextManager[None]:
        """One batch being handled (``drain`` waits for it)."""
        return self._in_flight.held()

    def _pending(self) -> bool:
        """Whether something is left to hand over."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop polling (a batch being handled finishes first) and undo the patch."""
        self._stopping.set()
        for events in self._wake.values():
            for event in events:
                event.set()
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads = []
        if self._undo is not None:
            self._undo()
            self._undo = None

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until no batch is being handled and nothing is left to hand over; False
        on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            if not self._in_flight.wait_idle(deadline):
                return False
            if not self._pending() and self._in_flight.idle:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
