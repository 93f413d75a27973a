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

The items, their keys and the indexes they use are described next to ``TasksTable`` in
``template.yaml`` and in docs/internals.md ("Storage"). The table's name is the setting
``LOOPLINE_TABLE``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import random
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from loopline import aws, ids
from loopline.settings import ConfigError, settings

#: Statuses a task never leaves.
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT"})

#: The fields of a task record, as ``get_task`` returns them (missing ones are None).
TASK_FIELDS = (
    "id", "tenant", "workflow", "version", "status", "run", "inputs", "labels", "webhook",
    "output", "error", "cause", "created_at", "started_at", "finished_at", "steps",
    "execution_arn", "state_machine_arn", "seq", "input_tokens", "output_tokens", "updated_at",
    "parents",
)  # fmt: skip
#: Fields holding user data: kept as JSON text, whatever the value.
JSON_FIELDS = frozenset(
    {
        "inputs", "labels", "output", "steps", "data", "inputs_schema", "parents",
        # human tasks
        "context", "form_schema", "assignee", "notify", "escalate_to", "decision",
        "rollback_to",
    }
)  # fmt: skip
#: Attributes that are the store's own (keys), never part of a record.
_KEY_ATTRIBUTES = frozenset({"pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk", "expires_at"})
#: Fields ``update_task`` may not set: they are keys or kept by the store itself.
_NOT_SETTABLE = frozenset({"id", "tenant", "seq", "input_tokens", "output_tokens"})
#: Attempts at an event's ``seq`` before a write gives up (each lost race is one).
_SEQ_ATTEMPTS = 200
_SEQ_DIGITS = 10

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


class InvalidCursor(ValueError):
    """A ``cursor`` that is not one this store handed out for this tenant and query."""


class StoreError(RuntimeError):
    """The table refused a write in a way no caller can act on (too many lost races)."""


@dataclass(frozen=True)
class NewEvent:
    """An event to append: ``type`` (``step.started``…), the step id or None, and data."""

    type: str
    step: str | None = None
    data: dict[str, Any] | None = None
    at: str | None = None  # default: now


# --------------------------------------------------------------------------- plumbing


def configured() -> bool:
    """Whether ``LOOPLINE_TABLE`` names a table (nothing is recorded without one)."""
    return settings().table is not None


def table_name() -> str:
    """The tasks table's name; ``ConfigError`` when ``LOOPLINE_TABLE`` is unset."""
    name = settings().table
    if name is None:
        raise ConfigError(
            ["LOOPLINE_TABLE is not set: it must name the tasks table (TasksTable of the stack)"]
        )
    return name


def _db() -> Any:
    return aws.client("dynamodb")


def _attr(value: Any) -> dict[str, Any]:
    if isinstance(value, float):
        value = Decimal(repr(value))
    return _serializer.serialize(value)


def _item(values: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB item of plain values: None is left out, user data becomes JSON text."""
    return {k: _attr(_encode(k, v)) for k, v in values.items() if v is not None}


def _encode(name: str, value: Any) -> Any:
    if name in JSON_FIELDS:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return sorted(_plain(v) for v in value)
    return value


def _record(item: dict[str, Any]) -> dict[str, Any]:
    """The plain record of a DynamoDB item: keys dropped, JSON text parsed, no Decimal."""
    out: dict[str, Any] = {}
    for name, raw in item.items():
        if name in _KEY_ATTRIBUTES:
            continue
        value = _plain(_deserializer.deserialize(raw))
        if name in JSON_FIELDS and isinstance(value, str):
            value = json.loads(value)
        out[name] = value
    return out


def _key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _get(pk: str, sk: str) -> dict[str, Any] | None:
    found = _db().get_item(TableName=table_name(), Key=_key(pk, sk), ConsistentRead=True)
    item = found.get("Item")
    return item if item else None


def _query(**kwargs: Any) -> Iterator[dict[str, Any]]:
    """Every item of a query, page after page."""
    kwargs["TableName"] = table_name()
    while True:
        page = _db().query(**kwargs)
        yield from page.get("Items", [])
        last = page.get("LastEvaluatedKey")
        if not last:
            return
        kwargs["ExclusiveStartKey"] = last


def _epoch(moment: str) -> int:
    return int(ids.parse_time(moment).timestamp())


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ----- key formats (here and only here)


def _task_pk(task_id: str) -> str:
    return f"TASK#{task_id}"


def _tenant_tasks(tenant: str) -> str:
    return f"TENANT#{tenant}#TASK"


def _tenant_status(tenant: str, status: str) -> str:
    return f"TENANT#{tenant}#STATUS#{status}"


def _event_sk(seq: int) -> str:
    return f"EVENT#{seq:0{_SEQ_DIGITS}d}"


def _step_prefix(step: str | None) -> str:
    return "STEP#" if step is None else f"STEP#{step}#"


def _idempotency_pk(tenant: str, key: str) -> str:
    return f"IDEMPOTENCY#{tenant}#{_sha256(key)}"


# --------------------------------------------------------------------------- API keys


def _key_record(item: dict[str, Any]) -> dict[str, Any]:
    rec = _record(item)
    return {
        "key_id": rec.get("key_id"),
        "key_hash": rec.get("key_hash"),
        "tenant": rec.get("tenant"),
        "user": rec.get("user"),
        "roles": list(rec.get("roles") or []),
        "created_at": rec.get("created_at"),
        "revoked_at": rec.get("revoked_at"),
    }


def put_api_key(
    *,
    key_hash: str,
    key_id: str,
    tenant: str,
    user: str | None,
    roles: list[str],
    created_at: str,
) -> None:
    """Record an API key by the SHA-256 hex digest of its text (never the text).

    A hash already recorded is refused (``ValueError``): a key is created once.
    """
    item = _item(
        {
            "pk": f"KEY#{key_hash}",
            "sk": "KEY",
            "gsi1pk": f"KEYID#{key_id}",
            "gsi1sk": "KEY",
            "key_hash": key_hash,
            "key_id": key_id,
            "tenant": tenant,
            "user": user,
            "roles": list(roles),
            "created_at": created_at,
        }
    )
    try:
        _db().put_item(
            TableName=table_name(), Item=item, ConditionExpression="attribute_not_exists(pk)"
        )
    except ClientError as exc:
        if _code(exc) == "ConditionalCheckFailedException":
            raise ValueError("this key is already recorded") from None
        raise


def get_api_key(key_hash: str) -> dict[str, Any] | None:
    """``{key_id, tenant, user, roles, created_at, revoked_at}`` of a key, or None."""
    item = _get(f"KEY#{key_hash}", "KEY")
    return _key_record(item) if item else None


def find_api_key(key_id: str) -> dict[str, Any] | None:
    """The key record of ``key_id`` (with its ``key_hash``), or None."""
    for item in _query(
        IndexName="GSI1",
        KeyConditionExpression="gsi1pk = :p AND gsi1sk = :s",
        ExpressionAttributeValues={":p": {"S": f"KEYID#{key_id}"}, ":s": {"S": "KEY"}},
    ):
        return _key_record(item)
    return None


def revoke_api_key(key_hash: str, at: str) -> bool:
    """Mark the key revoked (an earlier revocation's time is kept); False when there is
    no such key."""
    try:
        _db().update_item(
            TableName=table_name(),
            Key=_key(f"KEY#{key_hash}", "KEY"),
            UpdateExpression="SET revoked_at = if_not_exists(revoked_at, :at)",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={":at": {"S": at}},
        )
    except ClientError as exc:
        if _code(exc) == "ConditionalCheckFailedException":
            return False
        raise
    return True


# --------------------------------------------------------------------------- workflows


def put_workflow(tenant: str, record: dict[str, Any]) -> bool:
    """Create or replace the tenant's registered workflow ``record["name"]``.

    ``record``: ``{name, version, description, source, inputs_schema, steps, graph,
    state_machine_arn, created_at, updated_at}``. Returns True when it was created.
    """
    values = {k: v for k, v in record.items() if k not in _KEY_ATTRIBUTES and k != "tenant"}
    item = _item(
        {"pk": f"TENANT#{tenant}", "sk": f"WORKFLOW#{record['name']}", "tenant": tenant, **values}
    )
    old = _db().put_item(TableName=table_name(), Item=item, ReturnValues="ALL_OLD")
    return not old.get("Attributes")


def get_workflow(tenant: str, name: str) -> dict[str, Any] | None:
    """The tenant's registered workflow ``name``, or None."""
    item = _get(f"TENANT#{tenant}", f"WORKFLOW#{name}")
    return _record(item) if item else None


def list_workflows(tenant: str) -> list[dict[str, Any]]:
    """The tenant's registered workflows, by name."""
    items = _query(
        KeyConditionExpression="pk = :p AND begins_with(sk, :s)",
        ExpressionAttributeValues={":p": {"S": f"TENANT#{tenant}"}, ":s": {"S": "WORKFLOW#"}},
    )
    return sorted((_record(i) for i in items), key=lambda r: str(r.get("name")))


# --------------------------------------------------------------------------- tasks


def _task_view(item: dict[str, Any]) -> dict[str, Any]:
    rec = _record(item)
    out = {name: rec.get(name) for name in TASK_FIELDS}
    for counter in ("seq", "input_tokens", "output_tokens"):
        out[counter] = out[counter] or 0
    return out


def create_task(tenant: str, task: dict[str, Any]) -> None:
    """Write a new task item (``task["id"]`` must be new; ``seq`` starts at 0).

    ``task``: ``{id, workflow, version, status, run, inputs, labels, webhook, output,
    error, cause, created_at, started_at, finished_at, steps, execution_arn,
    state_machine_arn}``; ``input_tokens``/``output_tokens`` start at 0. An id already
    used is refused (``ValueError``).
    """
    task_id = str(task["id"])
    status = str(task["status"])
    values = {
        k: v for k, v in task.items() if k in TASK_FIELDS and k not in _NOT_SETTABLE and k != "id"
    }
    values.setdefault("updated_at", task.get("created_at") or ids.now())
    item = _item(
        {
            "pk": _task_pk(task_id),
            "sk": "TASK",
            "gsi1pk": _tenant_tasks(tenant),
            "gsi1sk": task_id,
            "gsi2pk": _tenant_status(tenant, status),
            "gsi2sk": task_id,
            **values,
            "id": task_id,
            "tenant": tenant,
            "seq": 0,
            "input_tokens": 0,
            "output_tokens": 0,
        }
    )
    try:
        _db().put_item(
            TableName=table_name(), Item=item, ConditionExpression="attribute_not_exists(pk)"
        )
    except ClientError as exc:
        if _code(exc) == "ConditionalCheckFailedException":
            raise ValueError(f"task {task_id} already exists") from None
        raise


def get_task(tenant: str, task_id: str) -> dict[str, Any] | None:
    """The task (with ``seq``, ``input_tokens``, ``output_tokens``), or None when it does
    not exist or belongs to another tenant."""
    task = get_task_record(task_id)
    if task is None or task.get("tenant") != tenant:
        return None
    return task


def get_task_record(task_id: str) -> dict[str, Any] | None:
    """The task whatever its tenant (``tenant`` included): for the service's own writers."""
    item = _get(_task_pk(task_id), "TASK")
    return _task_view(item) if item else None


def _cursor_tag(tenant: str, index: str, status: str | None, workflow: str | None) -> str:
    return _sha256(json.dumps([tenant, index, status, workflow]))[:16]


def _encode_cursor(tag: str, key: dict[str, str]) -> str:
    text = json.dumps({"q": tag, "k": key}, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, tag: str, key_names: tuple[str, ...]) -> dict[str, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError):
        raise InvalidCursor("not a cursor this list handed out") from None
    key = data.get("k") if isinstance(data, dict) else None
    if (
        not isinstance(data, dict)
        or data.get("q") != tag
        or not isinstance(key, dict)
        or set(key) != set(key_names)
        or not all(isinstance(v, str) for v in key.values())
    ):
        raise InvalidCursor("not a cursor this list handed out (or one of another query)")
    return key


def list_tasks(
    tenant: str,
    *,
    status: str | None = None,
    workflow: str | None = None,
    limit: int = 20,
    cursor: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """The tenant's tasks, newest first, and the cursor of the next page (None at the end).

    Without ``status``: GSI1 (every task of the tenant); with it: GSI2 (the tenant's tasks
    in that status). ``workflow`` filters, and the query goes on until it has ``limit``
    items or reaches the end, so a page is short only when it is the last. The indexes
    are eventually consistent: a task written a moment ago may be missing.

    Raise ``InvalidCursor`` for a cursor this store did not hand out for this query.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    if status is None:
        index, pk_name, sk_name, partition = "GSI1", "gsi1pk", "gsi1sk", _tenant_tasks(tenant)
    else:
        index, pk_name, sk_name = "GSI2", "gsi2pk", "gsi2sk"
        partition = _tenant_status(tenant, status)
    key_names = ("pk", "sk", pk_name, sk_name)
    tag = _cursor_tag(tenant, index, status, workflow)
    kwargs: dict[str, Any] = {
        "TableName": table_name(),
        "IndexName": index,
        "KeyConditionExpression": "#p = :p",
        "ExpressionAttributeNames": {"#p": pk_name},
        "ExpressionAttributeValues": {":p": {"S": partition}},
        "ScanIndexForward": False,
    }
    if workflow is not None:
        kwargs["FilterExpression"] = "#w = :w"
        kwargs["ExpressionAttributeNames"]["#w"] = "workflow"
        kwargs["ExpressionAttributeValues"][":w"] = {"S": workflow}
    if cursor is not None:
        start = _decode_cursor(cursor, tag, key_names)
        if start[pk_name] != partition or start["sk"] != "TASK":
            raise InvalidCursor("not a cursor this list handed out (or one of another query)")
        kwargs["ExclusiveStartKey"] = {k: {"S": v} for k, v in start.items()}
    items, next_cursor = _page(
        kwargs, limit, workflow is not None, tag, key_names, cursor is not None
    )
    return [_task_view(i) for i in items], next_cursor


def _page(
    kwargs: dict[str, Any],
    limit: int,
    filtered: bool,
    tag: str,
    key_names: tuple[str, ...],
    from_cursor: bool,
) -> tuple[list[dict[str, Any]], str | None]:
    """Up to ``limit`` items of a query and the cursor of what follows (None at the end).

    One more item than a page is read, so whether there is a next page is known, never
    guessed; a filtered query reads on until it has them or reaches the end. A cursor's
    start key that DynamoDB refuses is ``InvalidCursor``."""
    items: list[dict[str, Any]] = []
    while len(items) <= limit:
        kwargs["Limit"] = max(limit + 1, 50) if filtered else limit + 1 - len(items)
        try:
            page = _db().query(**kwargs)
        except ClientError as exc:
            if from_cursor and _code(exc) == "ValidationException":
                raise InvalidCursor("not a cursor this list handed out") from None
            raise
        items.extend(page.get("Items", []))
        last = page.get("LastEvaluatedKey")
        if not last:
            break
        kwargs["ExclusiveStartKey"] = last
    next_cursor = None
    if len(items) > limit:
        items = items[:limit]
        end = items[-1]
        next_cursor = _encode_cursor(tag, {k: end[k]["S"] for k in key_names})
    return items, next_cursor


def _assignments(
    fields: dict[str, Any], refused: Collection[str], what: str
) -> tuple[list[str], list[str], dict[str, str], dict[str, Any]]:
    """SET and REMOVE clauses of ``fields`` (None removes), with their names (``#f<i>``)
    and values (``:f<i>``); ``ValueError`` for a field in ``refused`` or a key attribute."""
    sets: list[str] = []
    removes: list[str] = []
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    for i, (name, value) in enumerate(fields.items()):
        if name in refused or name in _KEY_ATTRIBUTES:
            raise ValueError(f"{what} cannot set {name}")
        names[f"#f{i}"] = name
        if value is None:
            removes.append(f"#f{i}")
        else:
            values[f":f{i}"] = _attr(_encode(name, value))
            sets.append(f"#f{i} = :f{i}")
    return sets, removes, names, values


def _expression(sets: list[str], removes: list[str]) -> str:
    return (
        ("SET " + ", ".join(sets) if sets else "")
        + (" REMOVE " + ", ".join(removes) if removes else "")
    ).strip()


def _update_parts(
    fields: dict[str, Any], tenant: str | None
) -> tuple[list[str], list[str], dict[str, str], dict[str, Any]]:
    """SET and REMOVE clauses of a task's ``fields``, its GSI2 key moved with ``status``."""
    sets, removes, names, values = _assignments(fields, _NOT_SETTABLE, "update_task")
    if "status" in fields and fields["status"] is not None and tenant is not None:
        names["#g2"] = "gsi2pk"
        values[":g2"] = {"S": _tenant_status(tenant, str(fields["status"]))}
        sets.append("#g2 = :g2")
    return sets, removes, names, values


def _holds(
    task: dict[str, Any], expect_status: Collection[str] | None, require_unset: str | None
) -> bool:
    if expect_status is not None and task.get("status") not in expect_status:
        return False
    return require_unset is None or task.get(require_unset) is None


def update_task(
    task_id: str,
    *,
    set: dict[str, Any] | None = None,
    expect_status: Collection[str] | None = None,
    require_unset: str | None = None,
    event: NewEvent | None = None,
) -> int | None:
    """Change a task in one conditional write.

    ``set`` assigns fields (``status`` among them; a None value removes the field;
    ``updated_at`` is set to now unless given); with ``expect_status`` the write happens
    only while the task's status is one of them; with ``require_unset`` only while that
    field is absent or null; with ``event`` the event is appended in the same
    transaction. Returns the event's ``seq`` (0 without an event), or None when there is
    no such task or a condition did not hold (nothing was written).
    """
    fields = dict(set or {})
    if fields:
        fields.setdefault("updated_at", ids.now())
    return _write_task(task_id, fields, expect_status, require_unset, event)


def append_event(task_id: str, event: NewEvent) -> int | None:
    """Append an event with the next ``seq``; None when there is no such task."""
    return _write_task(task_id, {}, None, None, event)


def _write_task(
    task_id: str,
    fields: dict[str, Any],
    expect_status: Collection[str] | None,
    require_unset: str | None,
    event: NewEvent | None,
) -> int | None:
    """The one write path of a task item: an UpdateItem, or with an event a transaction
    that moves ``seq`` from the value read to the next and puts the event; a lost race
    (``seq`` moved meanwhile) reads again and retries."""
    if not fields and event is None and expect_status is None and require_unset is None:
        return 0 if get_task_record(task_id) is not None else None
    expect = tuple(expect_status) if expect_status is not None else None
    for attempt in range(_SEQ_ATTEMPTS):
        task = get_task_record(task_id)
        if task is None or not _holds(task, expect, require_unset):
            return None
        sets, removes, names, values = _update_parts(fields, str(task["tenant"]))
        conditions = ["attribute_exists(pk)"]
        if expect is not None:
            names["#st"] = "status"
            options = []
            for i, status in enumerate(expect):
                values[f":x{i}"] = {"S": status}
                options.append(f":x{i}")
            conditions.append(f"#st IN ({', '.join(options)})")  # never empty: _holds
        if require_unset is not None:
            names["#ru"] = require_unset
            conditions.append("attribute_not_exists(#ru)")
        seq = 0
        if event is not None:
            current = int(task["seq"])
            seq = current + 1
            names["#seq"] = "seq"
            values[":cur"] = {"N": str(current)}
            values[":next"] = {"N": str(seq)}
            sets.append("#seq = :next")
            conditions.append("#seq = :cur")
        expression = _expression(sets, removes)
        update: dict[str, Any] = {
            "TableName": table_name(),
            "Key": _key(_task_pk(task_id), "TASK"),
            "ConditionExpression": " AND ".join(conditions),
            "ExpressionAttributeNames": names,
        }
        if expression:
            update["UpdateExpression"] = expression
        if values:
            update["ExpressionAttributeValues"] = values
        try:
            if event is None:
                if "UpdateExpression" not in update:
                    # Only conditions: a conditional no-op check.
                    update["UpdateExpression"] = "SET #pk0 = #pk0"
                    names["#pk0"] = "id"
                _db().update_item(**update)
                return 0
            put = {
                "TableName": update["TableName"],
                "Item": _event_item(task_id, str(task["tenant"]), seq, event),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
            _db().transact_write_items(TransactItems=[{"Update": update}, {"Put": put}])
            return seq
        except ClientError as exc:
            code = _code(exc)
            if code == "ConditionalCheckFailedException":
                return None  # no event: only the caller's conditions (or the task) failed
            if code not in ("TransactionCanceledException", "TransactionConflictException"):
                raise
        # Lost a race or a conflict: the next round reads the task again, and gives up
        # (None) when the caller's conditions no longer hold.
        time.sleep(random.uniform(0, 0.002 * min(attempt + 1, 25)))
    raise StoreError(f"task {task_id}: could not append an event after {_SEQ_ATTEMPTS} tries")


def _event_item(task_id: str, tenant: str, seq: int, event: NewEvent) -> dict[str, Any]:
    return _item(
        {
            "pk": _task_pk(task_id),
            "sk": _event_sk(seq),
            "task_id": task_id,
            "tenant": tenant,
            "seq": seq,
            "at": event.at or ids.now(),
            "type": event.type,
            "step": event.step,
            "data": event.data or {},
        }
    )


def event_of_item(item: dict[str, Any]) -> dict[str, Any] | None:
    """``{task_id, tenant, seq, at, type, step, data}`` of an event item as DynamoDB
    gives it (a stream record's ``NewImage``); None when the item is not an event."""
    sk = (item.get("sk") or {}).get("S", "")
    if not sk.startswith("EVENT#") or "type" not in item:
        return None
    rec = _record(item)
    return {k: rec.get(k) for k in ("task_id", "tenant", "seq", "at", "type", "step", "data")}


def add_usage(task_id: str, input_tokens: int, output_tokens: int) -> None:
    """Add a model call's tokens to the task's totals (atomic counters); nothing when
    there is no such task."""
    try:
        _db().update_item(
            TableName=table_name(),
            Key=_key(_task_pk(task_id), "TASK"),
            UpdateExpression="ADD input_tokens :i, output_tokens :o",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={
                ":i": {"N": str(int(input_tokens))},
                ":o": {"N": str(int(output_tokens))},
            },
        )
    except ClientError as exc:
        if _code(exc) != "ConditionalCheckFailedException":
            raise


def list_events(task_id: str, *, after: int = 0, limit: int = 100) -> list[dict[str, Any]]:
    """``[{seq, at, type, step, data}]`` with ``seq > after``, in order.

    The caller has checked the task's tenant with ``get_task`` first.
    """
    if limit < 1:
        return []
    out: list[dict[str, Any]] = []
    for item in _query(
        KeyConditionExpression="pk = :p AND sk BETWEEN :lo AND :hi",
        ExpressionAttributeValues={
            ":p": {"S": _task_pk(task_id)},
            ":lo": {"S": _event_sk(max(after, 0) + 1)},
            ":hi": {"S": _event_sk(10**_SEQ_DIGITS - 1)},
        },
        ConsistentRead=True,
        Limit=limit,
    ):
        rec = _record(item)
        out.append(
            {
                "seq": rec["seq"],
                "at": rec.get("at"),
                "type": rec.get("type"),
                "step": rec.get("step"),
                "data": rec.get("data") or {},
            }
        )
        if len(out) >= limit:
            break
    return out


# --------------------------------------------------------------------------- step runs

_STEP_RUN_FIELDS = (
    "step", "run_id", "attempt", "started_at", "finished_at", "status", "output", "error",
    "cause",
)  # fmt: skip


def _step_run(item: dict[str, Any]) -> dict[str, Any]:
    rec = _record(item)
    return {name: rec.get(name) for name in _STEP_RUN_FIELDS}


def put_step_run(task_id: str, record: dict[str, Any]) -> None:
    """Record one start of a step: ``{step, run_id, attempt, started_at, finished_at,
    status, output, error, cause}`` (``run_id`` from ``ids.new_id("run")``)."""
    values = {k: v for k, v in record.items() if k in _STEP_RUN_FIELDS}
    item = _item(
        {
            "pk": _task_pk(task_id),
            "sk": f"{_step_prefix(str(record['step']))}{record['run_id']}",
            "task_id": task_id,
            **values,
        }
    )
    _db().put_item(TableName=table_name(), Item=item)


def update_step_run(
    task_id: str,
    step: str,
    run_id: str,
    fields: dict[str, Any],
    *,
    expect_status: str | None = None,
) -> bool:
    """Set fields of a step run (``status``, ``finished_at``, ``output``, ``error``…; None
    removes one), only while its status is ``expect_status`` when given. False when there
    is no such run or the condition did not hold (nothing is written)."""
    sets, removes, names, values = _assignments(fields, ("step", "run_id"), "update_step_run")
    if not sets and not removes:
        return _get(_task_pk(task_id), f"{_step_prefix(step)}{run_id}") is not None
    condition = "attribute_exists(pk)"
    if expect_status is not None:
        names["#rs"] = "status"
        values[":rs"] = {"S": expect_status}
        condition += " AND #rs = :rs"
    update: dict[str, Any] = {
        "TableName": table_name(),
        "Key": _key(_task_pk(task_id), f"{_step_prefix(step)}{run_id}"),
        "UpdateExpression": _expression(sets, removes),
        "ConditionExpression": condition,
        "ExpressionAttributeNames": names,
    }
    if values:
        update["ExpressionAttributeValues"] = values
    try:
        _db().update_item(**update)
    except ClientError as exc:
        if _code(exc) == "ConditionalCheckFailedException":
            return False
        raise
    return True


def list_step_runs(task_id: str, step: str | None = None) -> list[dict[str, Any]]:
    """The runs of one step (or of every step), oldest first."""
    items = _query(
        KeyConditionExpression="pk = :p AND begins_with(sk, :s)",
        ExpressionAttributeValues={
            ":p": {"S": _task_pk(task_id)},
            ":s": {"S": _step_prefix(step)},
        },
        ConsistentRead=True,
    )
    runs = [_step_run(i) for i in items]
    # Run ids are ULIDs: their order is the order the runs started.
    return sorted(runs, key=lambda r: str(r["run_id"]))


# --------------------------------------------------------------------------- idempotency


def claim_idempotency(
    tenant: str, key: str, body_hash: str, *, now: str, ttl_seconds: int = 86400
) -> dict[str, Any] | None:
    """Claim ``key`` for a request whose body hashes to ``body_hash``.

    None: the claim is this caller's (go on, then ``complete_idempotency``). Otherwise the
    live record of an earlier request: ``{body_hash, task_id (None while in flight),
    created_at}``. A record older than ``ttl_seconds`` counts as absent (DynamoDB's TTL
    deletes it later, by ``expires_at``).
    """
    pk = _idempotency_pk(tenant, key)
    now_epoch = _epoch(now)
    item = _item(
        {
            "pk": pk,
            "sk": "IDEMPOTENCY",
            "tenant": tenant,
            "body_hash": body_hash,
            "created_at": now,
            "expires_at": now_epoch + ttl_seconds,
        }
    )
    while True:
        try:
            _db().put_item(
                TableName=table_name(),
                Item=item,
                ConditionExpression="attribute_not_exists(pk) OR #c < :cutoff",
                ExpressionAttributeNames={"#c": "created_at"},
                ExpressionAttributeValues={":cutoff": {"S": _cutoff(now, ttl_seconds)}},
            )
            return None
        except ClientError as exc:
            if _code(exc) != "ConditionalCheckFailedException":
                raise
        found = _get(pk, "IDEMPOTENCY")
        if found is None:
            continue  # released meanwhile: claim again
        rec = _record(found)
        if str(rec.get("created_at", "")) < _cutoff(now, ttl_seconds):
            continue  # expired meanwhile
        return {
            "body_hash": rec.get("body_hash"),
            "task_id": rec.get("task_id"),
            "created_at": rec.get("created_at"),
        }


def _cutoff(now: str, ttl_seconds: int) -> str:
    """The creation time before which a record of ``ttl_seconds`` has lapsed."""
    return ids.format_time(ids.parse_time(now) - timedelta(seconds=ttl_seconds))


def complete_idempotency(tenant: str, key: str, task_id: str) -> None:
    """Attach the task the claimed request started (nothing when the claim is gone)."""
    try:
        _db().update_item(
            TableName=table_name(),
            Key=_key(_idempotency_pk(tenant, key), "IDEMPOTENCY"),
            UpdateExpression="SET task_id = :t",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={":t": {"S": task_id}},
        )
    except ClientError as exc:
        if _code(exc) != "ConditionalCheckFailedException":
            raise


def release_idempotency(tenant: str, key: str) -> None:
    """Drop a claim whose request started nothing (invalid inputs, a failed start); a
    claim that has its task is kept."""
    try:
        _db().delete_item(
            TableName=table_name(),
            Key=_key(_idempotency_pk(tenant, key), "IDEMPOTENCY"),
            ConditionExpression="attribute_not_exists(task_id)",
        )
    except ClientError as exc:
        if _code(exc) != "ConditionalCheckFailedException":
            raise


# --------------------------------------------------------------------------- human tasks

#: The fields of a human task record (``task_token`` is the server's alone: the domain
#: never puts it in a view).
HUMAN_FIELDS = (
    "id", "tenant", "task", "execution", "workflow", "step", "kind", "status",
    "instruction", "context", "form_schema", "rollback_to", "assignee", "notify",
    "escalate_to", "escalated", "created_at", "due_at", "decision", "task_token",
    "generation", "updated_at", "timeout",
)  # fmt: skip
_HUMAN_NOT_SETTABLE = frozenset({"id", "tenant", "task"})


def _human_pk(human_id: str) -> str:
    return f"HUMAN#{human_id}"


def _task_humans(task_id: str) -> str:
    return f"TASK#{task_id}#HUMAN"


def _tenant_humans(tenant: str, status: str) -> str:
    return f"TENANT#{tenant}#HUMAN#{status}"


def _human(item: dict[str, Any]) -> dict[str, Any]:
    rec = _record(item)
    return {name: rec.get(name) for name in HUMAN_FIELDS}


def _assignee_attrs(assignee: Any) -> dict[str, Any]:
    """Plain ``assignee_role``/``assignee_user`` (for the inbox's filters; the JSON
    ``assignee`` is the record's), and ``unassigned`` when it has neither."""
    role = assignee.get("role") if isinstance(assignee, dict) else None
    user = assignee.get("user") if isinstance(assignee, dict) else None
    return {
        "assignee_role": role or None,
        "assignee_user": user or None,
        "unassigned": True if not role and not user else None,
    }


def put_human_task(record: dict[str, Any]) -> None:
    """Record a new human task (``id`` from ``ids.new_id("hum")``; ``status`` ``open``).
    Listed by task (GSI1) and by tenant and status (GSI2)."""
    values = {k: v for k, v in record.items() if k in HUMAN_FIELDS}
    item = _item(
        {
            "pk": _human_pk(str(record["id"])),
            "sk": "HUMAN",
            "gsi1pk": _task_humans(str(record["task"])),
            "gsi1sk": str(record["id"]),
            "gsi2pk": _tenant_humans(str(record["tenant"]), str(record["status"])),
            "gsi2sk": str(record["id"]),
            **values,
            **_assignee_attrs(record.get("assignee")),
        }
    )
    _db().put_item(
        TableName=table_name(), Item=item, ConditionExpression="attribute_not_exists(pk)"
    )


def get_human_task(human_id: str) -> dict[str, Any] | None:
    """A human task by id, whatever its tenant (the domain checks the tenant)."""
    found = _get(_human_pk(human_id), "HUMAN")
    return _human(found) if found is not None else None


def list_task_human_tasks(task_id: str) -> list[dict[str, Any]]:
    """The human tasks of a task (or of an execution that is not a task), oldest first."""
    items = _query(
        IndexName="GSI1",
        KeyConditionExpression="gsi1pk = :p",
        ExpressionAttributeValues={":p": {"S": _task_humans(task_id)}},
    )
    return sorted((_human(i) for i in items), key=lambda r: str(r["id"]))


def update_human_task(
    tenant: str,
    human_id: str,
    set: dict[str, Any],
    *,
    expect_status: str | None = None,
    expect_generation: int | None = None,
    due_after: str | None = None,
) -> bool:
    """Change a human task of ``tenant`` in one conditional write: only while its status
    is ``expect_status``, its ``generation`` is ``expect_generation`` and its ``due_at`` is
    later than ``due_after`` (each when given). A new ``status`` moves it in GSI2; a new
    ``assignee`` updates the inbox's filter attributes. False when a condition did not
    hold or there is no such human task (nothing was written)."""
    fields = dict(set)
    fields.setdefault("updated_at", ids.now())
    if "assignee" in fields:
        fields.update(_assignee_attrs(fields["assignee"]))
    sets, removes, names, values = _assignments(fields, _HUMAN_NOT_SETTABLE, "update_human_task")
    names["#tn"], values[":tn"] = "tenant", {"S": tenant}
    if fields.get("status") is not None:
        names["#g2"] = "gsi2pk"
        values[":g2"] = {"S": _tenant_humans(tenant, str(fields["status"]))}
        sets.append("#g2 = :g2")
    conditions = ["attribute_exists(pk)", "#tn = :tn"]
    if expect_status is not None:
        names["#st"] = "status"
        values[":est"] = {"S": expect_status}
        conditions.append("#st = :est")
    if expect_generation is not None:
        names["#gen"] = "generation"
        values[":egen"] = {"N": str(expect_generation)}
        conditions.append("#gen = :egen")
    if due_after is not None:
        names["#due"] = "due_at"
        values[":due"] = {"S": due_after}
        conditions.append("#due > :due")
    try:
        _db().update_item(
            TableName=table_name(),
            Key=_key(_human_pk(human_id), "HUMAN"),
            UpdateExpression=_expression(sets, removes),
            ConditionExpression=" AND ".join(conditions),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )
    except ClientError as exc:
        if _code(exc) == "ConditionalCheckFailedException":
            return False
        raise
    return True


def list_human_tasks(
    tenant: str,
    *,
    status: str = "open",
    task: str | None = None,
    roles: Collection[str] = (),
    users: Collection[str] = (),
    unassigned: bool = False,
    limit: int = 20,
    cursor: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """The tenant's human tasks in ``status``, newest first, and the next page's cursor.

    Filters: ``task``; and, when any of ``roles``, ``users``, ``unassigned`` is given, only
    those assigned to one of the roles or users (or to nobody, with ``unassigned``). The
    query goes on until it has ``limit`` items or reaches the end.
    Raise ``InvalidCursor`` for a cursor this store did not hand out for this query.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    partition = _tenant_humans(tenant, status)
    key_names = ("pk", "sk", "gsi2pk", "gsi2sk")
    tag = _cursor_tag(
        tenant, "HUMAN", status, json.dumps([task, sorted(roles), sorted(users), unassigned])
    )
    names: dict[str, str] = {"#p": "gsi2pk"}
    values: dict[str, Any] = {":p": {"S": partition}}
    filters: list[str] = []
    if task is not None:
        names["#t"] = "task"
        values[":t"] = {"S": task}
        filters.append("#t = :t")
    who: list[str] = []
    for i, role in enumerate(sorted(roles)):
        values[f":r{i}"] = {"S": role}
        who.append(f"assignee_role = :r{i}")
    for i, user in enumerate(sorted(users)):
        values[f":u{i}"] = {"S": user}
        who.append(f"assignee_user = :u{i}")
    if unassigned:
        who.append("attribute_exists(unassigned)")
    if who:
        filters.append("(" + " OR ".join(who) + ")")
    kwargs: dict[str, Any] = {
        "TableName": table_name(),
        "IndexName": "GSI2",
        "KeyConditionExpression": "#p = :p",
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
        "ScanIndexForward": False,
    }
    if filters:
        kwargs["FilterExpression"] = " AND ".join(filters)
    if cursor is not None:
        start = _decode_cursor(cursor, tag, key_names)
        if start["gsi2pk"] != partition or start["sk"] != "HUMAN":
            raise InvalidCursor("not a cursor this list handed out (or one of another query)")
        kwargs["ExclusiveStartKey"] = {k: {"S": v} for k, v in start.items()}
    items, next_cursor = _page(kwargs, limit, bool(filters), tag, key_names, cursor is not None)
    return [_human(i) for i in items], next_cursor


# ----- approval links (only the token's hash is stored)

LINK_FIELDS = (
    "human_task", "tenant", "recipient", "channel", "generation", "created_at", "due_at",
    "status", "used_at",
)  # fmt: skip


def put_link(token_hash: str, record: dict[str, Any], *, keep_days: int = 30) -> None:
    """Record an approval link by its token's hash; DynamoDB's TTL removes it
    ``keep_days`` after it falls due (a late click then reads as unknown: 410 alike)."""
    values = {k: v for k, v in record.items() if k in LINK_FIELDS}
    due = str(record["due_at"])
    item = _item(
        {
            "pk": f"LINK#{token_hash}",
            "sk": "LINK",
            **values,
            "expires_at": _epoch(due) + keep_days * 86400,
        }
    )
    _db().put_item(
        TableName=table_name(), Item=item, ConditionExpression="attribute_not_exists(pk)"
    )


def get_link(token_hash: str) -> dict[str, Any] | None:
    found = _get(f"LINK#{token_hash}", "LINK")
    if found is None:
        return None
    rec = _record(found)
    return {name: rec.get(name) for name in LINK_FIELDS}


def use_link(token_hash: str, at: str) -> bool:
    """Mark a link used, once: False when it was not ``active``."""
    try:
        _db().update_item(
            TableName=table_name(),
            Key=_key(f"LINK#{token_hash}", "LINK"),
            UpdateExpression="SET #s = :used, used_at = :at",
            ConditionExpression="#s = :active",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={
                ":used": {"S": "used"},
                ":active": {"S": "active"},
                ":at": {"S": at},
            },
        )
    except ClientError as exc:
        if _code(exc) == "ConditionalCheckFailedException":
            return False
        raise
    return True


def release_link(token_hash: str) -> None:
    """Make a used link active again (its decision was refused before being recorded)."""
    try:
        _db().update_item(
            TableName=table_name(),
            Key=_key(f"LINK#{token_hash}", "LINK"),
            UpdateExpression="SET #s = :active REMOVE used_at",
            ConditionExpression="#s = :used",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":used": {"S": "used"}, ":active": {"S": "active"}},
        )
    except ClientError as exc:
        if _code(exc) != "ConditionalCheckFailedException":
            raise


# ----- notifications of a human task (one item each, beside the human task)

NOTIFICATION_FIELDS = (
    "id", "channel", "to", "status", "attempts", "error", "link_hash", "slack_channel",
    "slack_ts", "created_at", "sent_at", "generation", "delivery",
)  # fmt: skip


def put_notification(human_id: str, record: dict[str, Any]) -> None:
    values = {k: v for k, v in record.items() if k in NOTIFICATION_FIELDS}
    item = _item({"pk": _human_pk(human_id), "sk": f"NOTE#{record['id']}", **values})
    _db().put_item(TableName=table_name(), Item=item)


def get_notification(human_id: str, notification_id: str) -> dict[str, Any] | None:
    found = _get(_human_pk(human_id), f"NOTE#{notification_id}")
    if found is None:
        return None
    rec = _record(found)
    return {name: rec.get(name) for name in NOTIFICATION_FIELDS}


def update_notification(human_id: str, notification_id: str, fields: dict[str, Any]) -> None:
    refused = {"id", *(name for name in fields if name not in NOTIFICATION_FIELDS)}
    sets, removes, names, values = _assignments(fields, refused, "update_notification")
    update: dict[str, Any] = {
        "TableName": table_name(),
        "Key": _key(_human_pk(human_id), f"NOTE#{notification_id}"),
        "UpdateExpression": _expression(sets, removes),
        "ExpressionAttributeNames": names,
    }
    if values:
        update["ExpressionAttributeValues"] = values
    _db().update_item(**update)


def list_notifications(human_id: str) -> list[dict[str, Any]]:
    items = _query(
        KeyConditionExpression="pk = :p AND begins_with(sk, :s)",
        ExpressionAttributeValues={":p": {"S": _human_pk(human_id)}, ":s": {"S": "NOTE#"}},
        ConsistentRead=True,
    )
    out = []
    for item in items:
        rec = _record(item)
        out.append({name: rec.get(name) for name in NOTIFICATION_FIELDS})
    return sorted(out, key=lambda r: str(r["id"]))


# --------------------------------------------------------------------------- once


def claim_once(kind: str, key: str, *, now: str, ttl_seconds: int) -> bool:
    """True the first time ``(kind, key)`` is claimed within ``ttl_seconds`` (a replayed
    signed request, say); False after."""
    now_epoch = _epoch(now)
    item = _item(
        {
            "pk": f"ONCE#{kind}#{_sha256(key)}",
            "sk": "ONCE",
            "created_at": now,
            "expires_at": now_epoch + ttl_seconds,
        }
    )
    try:
        _db().put_item(
            TableName=table_name(),
            Item=item,
            ConditionExpression="attribute_not_exists(pk) OR #c < :cutoff",
            ExpressionAttributeNames={"#c": "created_at"},
            ExpressionAttributeValues={":cutoff": {"S": _cutoff(now, ttl_seconds)}},
        )
    except ClientError as exc:
        if _code(exc) == "ConditionalCheckFailedException":
            return False
        raise
    return True


# --------------------------------------------------------------------------- webhooks

#: The fields of a subscription record (its ``secret`` and ``previous`` are the domain's
#: to show once, never logged).
SUBSCRIPTION_FIELDS = (
    "id", "tenant", "url", "events", "secret", "previous", "previous_until", "rotated_at",
    "created_at",
)  # fmt: skip
#: The fields of a tenant's signing secret record.
SECRET_FIELDS = ("tenant", "secret", "previous", "previous_until", "rotated_at", "created_at")
#: The fields of a delivery record. ``body`` is the exact JSON text sent on every attempt.
DELIVERY_FIELDS = (
    "id", "tenant", "task", "event", "url", "target", "body", "status", "attempts",
    "attempt_count", "max_attempts", "next_attempt_at", "created_at", "updated_at",
    "delivered_at", "failed_at", "dead_lettered", "failure_recorded", "manual",
)  # fmt: skip
#: How long a delivery's record is kept after its last change (TTL).
DELIVERY_KEEP_SECONDS = 30 * 86400
_DELIVERY_NOT_SETTABLE = frozenset({"id", "tenant", "task", "event", "target", "body", "url"})
#: User data kept as JSON text in webhook records.
_WEBHOOK_JSON = frozenset({"events", "event", "target", "attempts"})


def _written(
    write: Any, *, refused: str = "ConditionalCheckFailedException", **request: Any
) -> bool:
    """``write(**request)``; False when DynamoDB refused it with ``refused`` (a condition
    did not hold: nothing was written)."""
    try:
        write(**request)
    except ClientError as exc:
        if _code(exc) == refused:
            return False
        raise
    return True


def _tenant_pk(tenant: str) -> str:
    return f"TENANT#{tenant}"


def _delivery_pk(delivery_id: str) -> str:
    return f"DELIVERY#{delivery_id}"


def _task_deliveries(task_id: str) -> str:
    return f"TASK#{task_id}#DELIVERY"


def _tenant_deliveries(tenant: str) -> str:
    return f"TENANT#{tenant}#DELIVERY"


def _webhook_values(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with the webhook records' JSON fields as JSON text."""
    return {
        k: (
            json.dumps(v, ensure_ascii=False, separators=(",", ":"))
            if k in _WEBHOOK_JSON and v is not None
            else v
        )
        for k, v in values.items()
    }


def _webhook_item(values: dict[str, Any]) -> dict[str, Any]:
    return _item(_webhook_values(values))


def _webhook_record(item: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    rec = _record(item)
    for name in _WEBHOOK_JSON:
        if isinstance(rec.get(name), str):
            rec[name] = json.loads(rec[name])
    return {name: rec.get(name) for name in fields}


def put_subscription(tenant: str, record: dict[str, Any], *, max_count: int) -> bool:
    """Record a subscription of ``tenant`` while it has fewer than ``max_count`` (False,
    nothing written, when it has that many already). The count is kept on the tenant's
    signing-secret item's neighbour ``WEBHOOKS`` and moved in the same transaction."""
    values = {k: v for k, v in record.items() if k in SUBSCRIPTION_FIELDS}
    item = _webhook_item(
        {"pk": _tenant_pk(tenant), "sk": f"WEBHOOK#{record['id']}", **values, "tenant": tenant}
    )
    return _written(
        _db().transact_write_items,
        refused="TransactionCanceledException",
        TransactItems=[
            {
                "Update": {
                    "TableName": table_name(),
                    "Key": _key(_tenant_pk(tenant), "WEBHOOKS"),
                    "UpdateExpression": "ADD #n :one",
                    "ConditionExpression": "attribute_not_exists(#n) OR #n < :max",
                    "ExpressionAttributeNames": {"#n": "count"},
                    "ExpressionAttributeValues": {
                        ":one": {"N": "1"},
                        ":max": {"N": str(max_count)},
                    },
                }
            },
            {
                "Put": {
                    "TableName": table_name(),
                    "Item": item,
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
        ],
    )


def list_subscriptions(tenant: str) -> list[dict[str, Any]]:
    """Every subscription of ``tenant``, oldest first (a tenant has a few: one query)."""
    items = _query(
        KeyConditionExpression="pk = :p AND begins_with(sk, :s)",
        ExpressionAttributeValues={":p": {"S": _tenant_pk(tenant)}, ":s": {"S": "WEBHOOK#"}},
    )
    return [_webhook_record(i, SUBSCRIPTION_FIELDS) for i in items]


def get_subscription(tenant: str, subscription_id: str) -> dict[str, Any] | None:
    found = _get(_tenant_pk(tenant), f"WEBHOOK#{subscription_id}")
    return _webhook_record(found, SUBSCRIPTION_FIELDS) if found is not None else None


def delete_subscription(tenant: str, subscription_id: str) -> bool:
    """Remove a subscription (and count it out); False when there is none."""
    return _written(
        _db().transact_write_items,
        refused="TransactionCanceledException",
        TransactItems=[
            {
                "Delete": {
                    "TableName": table_name(),
                    "Key": _key(_tenant_pk(tenant), f"WEBHOOK#{subscription_id}"),
                    "ConditionExpression": "attribute_exists(pk)",
                }
            },
            {
                "Update": {
                    "TableName": table_name(),
                    "Key": _key(_tenant_pk(tenant), "WEBHOOKS"),
                    "UpdateExpression": "ADD #n :minus",
                    "ExpressionAttributeNames": {"#n": "count"},
                    "ExpressionAttributeValues": {":minus": {"N": "-1"}},
                }
            },
        ],
    )


def _swap_secret(
    pk: str, sk: str, current: str, fields: dict[str, Any], *, create: bool = False
) -> bool:
    """Set a secret's ``fields`` while its ``secret`` is still ``current`` (or, with
    ``create``, while there is none): of two concurrent rotations one wins."""
    sets, removes, names, values = _assignments(fields, frozenset(), "a secret")
    names["#sec"] = "secret"
    if create:
        condition = "attribute_not_exists(#sec)"
    else:
        values[":cur"] = {"S": current}
        condition = "#sec = :cur"
    return _written(
        _db().update_item,
        TableName=table_name(),
        Key=_key(pk, sk),
        UpdateExpression=_expression(sets, removes),
        ConditionExpression=condition,
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=values,
    )


def rotate_subscription_secret(
    tenant: str, subscription_id: str, current: str, fields: dict[str, Any]
) -> bool:
    """Replace a subscription's secret (``fields``: ``secret, previous, previous_until,
    rotated_at``) while it is still ``current``."""
    return _swap_secret(_tenant_pk(tenant), f"WEBHOOK#{subscription_id}", current, fields)


def get_signing_secret(tenant: str) -> dict[str, Any] | None:
    """The tenant's signing secret record, or None before its first use."""
    found = _get(_tenant_pk(tenant), "SIGNING_SECRET")
    return _webhook_record(found, SECRET_FIELDS) if found is not None else None


def create_signing_secret(tenant: str, fields: dict[str, Any]) -> bool:
    """Record the tenant's first signing secret; False when one exists already."""
    return _swap_secret(
        _tenant_pk(tenant), "SIGNING_SECRET", "", {**fields, "tenant": tenant}, create=True
    )


def rotate_signing_secret(tenant: str, current: str, fields: dict[str, Any]) -> bool:
    """Replace the tenant's signing secret while it is still ``current``."""
    return _swap_secret(_tenant_pk(tenant), "SIGNING_SECRET", current, fields)


def _delivery_expiry() -> int:
    return int(time.time()) + DELIVERY_KEEP_SECONDS


def put_delivery(record: dict[str, Any]) -> bool:
    """Record a new delivery; False when one with this id exists (a fan-out done twice).
    Listed by task (GSI1) and by tenant (GSI2), newest first."""
    values = {k: v for k, v in record.items() if k in DELIVERY_FIELDS}
    keys: dict[str, Any] = {
        "pk": _delivery_pk(str(record["id"])),
        "sk": "DELIVERY",
        "gsi2pk": _tenant_deliveries(str(record["tenant"])),
        "gsi2sk": str(record["id"]),
        "expires_at": _delivery_expiry(),
    }
    if record.get("task"):
        keys["gsi1pk"] = _task_deliveries(str(record["task"]))
        keys["gsi1sk"] = str(record["id"])
    return _written(
        _db().put_item,
        TableName=table_name(),
        Item=_webhook_item({**keys, **values}),
        ConditionExpression="attribute_not_exists(pk)",
    )


def get_delivery(delivery_id: str) -> dict[str, Any] | None:
    """A delivery by id, whatever its tenant (the domain checks the tenant)."""
    found = _get(_delivery_pk(delivery_id), "DELIVERY")
    return _webhook_record(found, DELIVERY_FIELDS) if found is not None else None


def update_delivery(
    delivery_id: str,
    fields: dict[str, Any],
    *,
    expect_status: Collection[str] | None = None,
    expect_attempts: int | None = None,
) -> bool:
    """Change a delivery in one conditional write: only while its status is one of
    ``expect_status`` and it has had ``expect_attempts`` attempts (each when given).
    False when a condition did not hold or there is no such delivery."""
    fields = _webhook_values({**fields, "updated_at": fields.get("updated_at") or ids.now()})
    sets, removes, names, values = _assignments(fields, _DELIVERY_NOT_SETTABLE, "update_delivery")
    names["#exp"], values[":exp"] = "expires_at", {"N": str(_delivery_expiry())}
    sets.append("#exp = :exp")
    conditions = ["attribute_exists(pk)"]
    if expect_status is not None:
        names["#st"] = "status"
        options = []
        for i, status in enumerate(expect_status):
            values[f":es{i}"] = {"S": status}
            options.append(f":es{i}")
        conditions.append(f"#st IN ({', '.join(options) or ':none'})")
    if expect_attempts is not None:
        names["#ac"] = "attempt_count"
        values[":eac"] = {"N": str(expect_attempts)}
        conditions.append("#ac = :eac")
    return _written(
        _db().update_item,
        TableName=table_name(),
        Key=_key(_delivery_pk(delivery_id), "DELIVERY"),
        UpdateExpression=_expression(sets, removes),
        ConditionExpression=" AND ".join(conditions),
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=values,
    )


def list_deliveries(
    tenant: str,
    *,
    task: str | None = None,
    status: str | None = None,
    limit: int = 20,
    cursor: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """The tenant's deliveries (of one ``task`` when given), newest first, optionally in
    one ``status``, and the next page's cursor. ``InvalidCursor`` for a cursor this store
    did not hand out for this query."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    index, prefix = ("GSI1", "gsi1") if task is not None else ("GSI2", "gsi2")
    partition = _task_deliveries(task) if task is not None else _tenant_deliveries(tenant)
    key_names = ("pk", "sk", f"{prefix}pk", f"{prefix}sk")
    tag = _cursor_tag(tenant, "DELIVERY", status, task)
    names: dict[str, str] = {"#p": f"{prefix}pk", "#tn": "tenant"}
    values: dict[str, Any] = {":p": {"S": partition}, ":tn": {"S": tenant}}
    filters = ["#tn = :tn"]
    if status is not None:
        names["#st"] = "status"
        values[":st"] = {"S": status}
        filters.append("#st = :st")
    kwargs: dict[str, Any] = {
        "TableName": table_name(),
        "IndexName": index,
        "KeyConditionExpression": "#p = :p",
        "FilterExpression": " AND ".join(filters),
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
        "ScanIndexForward": False,
    }
    if cursor is not None:
        start = _decode_cursor(cursor, tag, key_names)
        if start[f"{prefix}pk"] != partition or start["sk"] != "DELIVERY":
            raise InvalidCursor("not a cursor this list handed out (or one of another query)")
        kwargs["ExclusiveStartKey"] = {k: {"S": v} for k, v in start.items()}
    items, next_cursor = _page(kwargs, limit, True, tag, key_names, cursor is not None)
    return [_webhook_record(i, DELIVERY_FIELDS) for i in items], next_cursor


# --------------------------------------------------------------------------- local


def create_table(name: str) -> None:
    """Create a table shaped as the stack's ``TasksTable`` (keys, both indexes), for a
    local stack that has no template to provision it from."""
    attrs = ["pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk"]
    _db().create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in attrs],
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": index,
                "KeySchema": [
                    {"AttributeName": f"{prefix}pk", "KeyType": "HASH"},
                    {"AttributeName": f"{prefix}sk", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
            for index, prefix in (("GSI1", "gsi1"), ("GSI2", "gsi2"))
        ],
    )
