"""The tasks table: the only module that reads or writes it (single-table design).

One function per access pattern; the key formats live here and only here, and the access
patterns are written next to the table in ``template.yaml``. Records go in and out as
plain JSON-ready dicts: user data (inputs, labels, outputs, event data, step outputs) is
kept as JSON text, so any JSON value round-trips whatever its depth, floats included, and
numbers come back as ``int``/``float``, never ``Decimal``.

Every function that reads or writes a tenant's things takes the tenant first; another
tenant's item is ``None``, exactly as a missing one. Functions for the service's own
writers (the step functions, the status events function) take a task id alone: task ids
are unique across tenants.

Conditional writes encode the invariants:

- an event's ``seq`` is one more than the task's last (``append_event``, ``update_task``):
  the task item's ``seq`` and the event item are written in one transaction, so events are
  gapless and never duplicated, whoever writes them;
- a status change names the statuses it may come from (``update_task(expect_status=…)``),
  so a late or repeated status event never undoes a later one;
- an idempotency key is claimed once (``claim_idempotency``).

**Interface under construction**: signatures and docstrings are the contract other
modules code against.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

#: Statuses a task never leaves.
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT"})


class InvalidCursor(ValueError):
    """A ``cursor`` that is not one this store handed out for this tenant and query."""


@dataclass(frozen=True)
class NewEvent:
    """An event to append: ``type`` (``step.started``…), the step id or None, and data."""

    type: str
    step: str | None = None
    data: dict[str, Any] | None = None
    at: str | None = None  # default: now


# --------------------------------------------------------------------------- API keys


def put_api_key(
    *,
    key_hash: str,
    key_id: str,
    tenant: str,
    user: str | None,
    roles: list[str],
    created_at: str,
) -> None:
    """Record an API key by the SHA-256 hex digest of its text (never the text)."""
    raise NotImplementedError


def get_api_key(key_hash: str) -> dict[str, Any] | None:
    """``{key_id, tenant, user, roles, created_at, revoked_at}`` of a key, or None."""
    raise NotImplementedError


def find_api_key(key_id: str) -> dict[str, Any] | None:
    """The key record of ``key_id`` (with its ``key_hash``), or None."""
    raise NotImplementedError


def revoke_api_key(key_hash: str, at: str) -> bool:
    """Mark the key revoked; False when there is no such key."""
    raise NotImplementedError


# --------------------------------------------------------------------------- workflows


def put_workflow(tenant: str, record: dict[str, Any]) -> bool:
    """Create or replace the tenant's registered workflow ``record["name"]``.

    ``record``: ``{name, version, description, source, inputs_schema, steps, graph,
    state_machine_arn, created_at, updated_at}``. Returns True when it was created.
    """
    raise NotImplementedError


def get_workflow(tenant: str, name: str) -> dict[str, Any] | None:
    raise NotImplementedError


def list_workflows(tenant: str) -> list[dict[str, Any]]:
    """The tenant's registered workflows, by name."""
    raise NotImplementedError


# --------------------------------------------------------------------------- tasks


def create_task(tenant: str, task: dict[str, Any]) -> None:
    """Write a new task item (``task["id"]`` must be new; ``seq`` starts at 0).

    ``task``: ``{id, workflow, version, status, run, inputs, labels, webhook, output,
    error, cause, created_at, started_at, finished_at, steps, execution_arn,
    state_machine_arn}``; ``input_tokens``/``output_tokens`` start at 0.
    """
    raise NotImplementedError


def get_task(tenant: str, task_id: str) -> dict[str, Any] | None:
    """The task (with ``seq``, ``input_tokens``, ``output_tokens``), or None when it does
    not exist or belongs to another tenant."""
    raise NotImplementedError


def get_task_record(task_id: str) -> dict[str, Any] | None:
    """The task whatever its tenant (``tenant`` included): for the service's own writers."""
    raise NotImplementedError


def list_tasks(
    tenant: str,
    *,
    status: str | None = None,
    workflow: str | None = None,
    limit: int = 20,
    cursor: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """The tenant's tasks, newest first, and the cursor of the next page (None at the end).

    Raise ``InvalidCursor`` for a cursor this store did not hand out for this query.
    """
    raise NotImplementedError


def update_task(
    task_id: str,
    *,
    set: dict[str, Any] | None = None,
    expect_status: Collection[str] | None = None,
    require_unset: str | None = None,
    event: NewEvent | None = None,
) -> int | None:
    """Change a task in one conditional write.

    ``set`` assigns fields (``status`` among them); with ``expect_status`` the write
    happens only while the task's status is one of them; with ``require_unset`` only while
    that field is absent or null; with ``event`` the event is appended in the same
    transaction. Returns the event's ``seq`` (0 without an event), or None when there is
    no such task or a condition did not hold (nothing was written).
    """
    raise NotImplementedError


def add_usage(task_id: str, input_tokens: int, output_tokens: int) -> None:
    """Add a model call's tokens to the task's totals (atomic counters)."""
    raise NotImplementedError


def append_event(task_id: str, event: NewEvent) -> int | None:
    """Append an event with the next ``seq``; None when there is no such task."""
    raise NotImplementedError


def list_events(task_id: str, *, after: int = 0, limit: int = 100) -> list[dict[str, Any]]:
    """``[{seq, at, type, step, data}]`` with ``seq > after``, in order.

    The caller has checked the task's tenant with ``get_task`` first.
    """
    raise NotImplementedError


# --------------------------------------------------------------------------- step runs


def put_step_run(task_id: str, record: dict[str, Any]) -> None:
    """Record one start of a step: ``{step, run_id, attempt, started_at, finished_at,
    status, output, error, cause}`` (``run_id`` from ``ids.new_id("run")``)."""
    raise NotImplementedError


def update_step_run(task_id: str, step: str, run_id: str, fields: dict[str, Any]) -> None:
    """Set fields of a step run (``status``, ``finished_at``, ``output``, ``error``…)."""
    raise NotImplementedError


def list_step_runs(task_id: str, step: str | None = None) -> list[dict[str, Any]]:
    """The runs of one step (or of every step), oldest first."""
    raise NotImplementedError


# --------------------------------------------------------------------------- idempotency


def claim_idempotency(
    tenant: str, key: str, body_hash: str, *, now: str, ttl_seconds: int = 86400
) -> dict[str, Any] | None:
    """Claim ``key`` for a request whose body hashes to ``body_hash``.

    None: the claim is this caller's (go on, then ``complete_idempotency``). Otherwise the
    live record of an earlier request: ``{body_hash, task_id (None while in flight),
    created_at}``. A record older than ``ttl_seconds`` counts as absent.
    """
    raise NotImplementedError


def complete_idempotency(tenant: str, key: str, task_id: str) -> None:
    """Attach the task the claimed request started."""
    raise NotImplementedError


def release_idempotency(tenant: str, key: str) -> None:
    """Drop a claim whose request started nothing (invalid inputs, a failed start)."""
    raise NotImplementedError
