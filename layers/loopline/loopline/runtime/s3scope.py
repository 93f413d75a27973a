"""Where a workflow's S3 tools (``s3_get``, ``s3_put``) may read and write.

One workflow must not read or overwrite another's objects, whatever the functions' role
allows. So a tool call addresses:

- a **key** such as ``reports/today.json``: the object ``s3://<bucket>/<prefix>reports/
  today.json``, where ``<bucket>`` is the artifacts bucket (``LOOPLINE_BUCKET``, locally the
  local stack's) and ``<prefix>`` the workflow's own, ``object_prefix(tenant, workflow)``:
  ``_tenants/<tenant>/<workflow>/`` for a task of the task service (``tenant_of``: the
  tenant of the task the execution runs, read once from the tasks table), else
  ``<workflow>/`` (``loopline run``, an execution started by hand). A workflow name
  starts with a letter, so no workflow's prefix holds a tenant's, and two tenants that
  run workflows of the same name (the stack's, or their own) never share objects;
- or a full **URI** ``s3://bucket/key``: allowed when it lies under that same prefix of the
  artifacts bucket, or in a location ``LOOPLINE_S3_ALLOW`` lists (comma-separated
  ``bucket`` for a whole bucket, ``bucket/prefix`` for the keys under ``prefix/``).

Keys must already be in normal form, nothing is rewritten: no empty, ``.`` or ``..``
segment (so no leading, trailing or doubled ``/``), no backslash, no control character,
no percent-encoded sequence (``%2e%2e``), at most 1024 bytes; a URI has no ``?`` or ``#``
part. Anything else fails the step with ``Loopline.Failed`` saying why.

Large values (``loopline.runtime.largevalues``) live under the same prefix, so a tool may
read its own workflow's stored values.

The call context (``CallContext``: workflow, step, execution, artifacts bucket, tenant) is
set by ``dispatch`` for the duration of an action (``calling``); tools read it with
``current()``, so a tool's function keeps its ``fn(args)`` signature. Its tenant is looked
up the first time its prefix is needed, so a step that touches no S3 object reads nothing;
a lookup that fails fails the step (``Loopline.Transient`` when the table is busy or
down): no step ever falls back to a prefix it may not own.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

from loopline.runtime.errors import FAILED, StepError

#: S3's limit on a key's length (bytes of UTF-8).
MAX_KEY_BYTES = 1024
_WORKFLOW = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")


@dataclass(frozen=True)
class CallContext:
    """What a tool call runs for: the step of an execution of a workflow."""

    workflow: str
    step: str = ""
    execution: str = ""
    #: The artifacts bucket (None when none is configured).
    bucket: str | None = None
    #: The tenant of the task the execution runs ("" for none); None: looked up from the
    #: execution (``tenant_of``) when first needed.
    tenant: str | None = None

    @classmethod
    def of(cls, payload: dict[str, Any], bucket: str | None) -> CallContext:
        return cls(
            workflow=str(payload.get("workflow") or ""),
            step=str(payload.get("step") or ""),
            execution=str(payload.get("execution") or ""),
            bucket=bucket,
        )

    @cached_property
    def prefix(self) -> str:
        """The workflow's own key prefix for this execution (``object_prefix``)."""
        tenant = self.tenant if self.tenant is not None else tenant_of(self.execution)
        return object_prefix(tenant, self.workflow)


_current: ContextVar[CallContext | None] = ContextVar("loopline_call_context", default=None)


@contextmanager
def calling(context: CallContext) -> Iterator[CallContext]:
    """Make ``context`` the current call context inside the ``with`` block."""
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)


def current() -> CallContext | None:
    """The call context of the running action (None outside one)."""
    return _current.get()


# --------------------------------------------------------------------------- keys


def key_problem(key: str) -> str | None:
    """Why ``key`` is not an S3 key in normal form (None when it is one)."""
    if not key:
        return "the key is empty"
    if len(key.encode()) > MAX_KEY_BYTES:
        return f"the key is longer than {MAX_KEY_BYTES} bytes"
    if "\\" in key:
        return "the key contains a backslash"
    if any(ord(c) < 32 or ord(c) == 127 for c in key):
        return "the key contains a control character"
    if _PERCENT.search(key):
        return "the key contains a percent-encoded sequence"
    for segment in key.split("/"):
        if segment == "":
            return "the key has an empty segment (a leading, trailing or doubled /)"
        if segment in (".", ".."):
            return f"the key has a {segment!r} segment"
    return None


#: The first segment of every tenant's objects (no workflow name starts with "_").
TENANTS_PART = "_tenants"


def object_prefix(tenant: str, workflow: str) -> str:
    """The key prefix of a workflow's objects: ``_tenants/<tenant>/<workflow>/`` for a
    tenant's task, ``<workflow>/`` for an execution that is no task (``tenant`` empty)."""
    if not _WORKFLOW.match(workflow):
        raise StepError(
            FAILED,
            f"the workflow name {workflow!r} cannot name an S3 prefix "
            "(letters, digits, _ and -, starting with a letter)",
        )
    if tenant and not _TENANT.match(tenant):
        raise StepError(FAILED, f"the tenant {tenant!r} cannot name an S3 prefix")
    return f"{TENANTS_PART}/{tenant}/{workflow}/" if tenant else f"{workflow}/"


# --------------------------------------------------------------------------- tenants

#: How many executions' tenants a process remembers (a task's tenant never changes).
_TENANT_CACHE_SIZE = 4096
_tenants: OrderedDict[tuple[str, str], str] = OrderedDict()
_tenants_lock = threading.Lock()


def tenant_of(execution: str) -> str:
    """The tenant of the task an execution runs (its name is the task's id, in a split
    child too: payloads carry the parent's execution); "" when no tasks table is
    configured or the execution is no task. A read that fails raises (the caller's step
    fails with a cause named by ``errors.classify``): there is no default to fall back
    to."""
    from loopline.settings import settings

    table = settings().table
    task_id = str(execution or "").rsplit(":", 1)[-1]
    if not table or not task_id:
        return ""
    key = (table, task_id)
    with _tenants_lock:
        if key in _tenants:
            _tenants.move_to_end(key)
            return _tenants[key]
    from loopline import store

    task = store.get_task_record(task_id)
    tenant = str(task.get("tenant") or "") if task is not None else ""
    with _tenants_lock:
        _tenants[key] = tenant
        while len(_tenants) > _TENANT_CACHE_SIZE:
            _tenants.popitem(last=False)
    return tenant


def parse_allow_entry(entry: str) -> tuple[str, str]:
    """``bucket`` or ``bucket/prefix`` (an ``s3://`` in front is allowed) → ``(bucket,
    prefix)``; raise ValueError saying what is wrong (``LOOPLINE_S3_ALLOW``)."""
    from loopline.settings import check_bucket

    text = entry.strip()
    if text.lower().startswith("s3://"):
        text = text[5:]
    bucket, _, prefix = text.partition("/")
    prefix = prefix.rstrip("/")
    need = "must be bucket or bucket/prefix entries separated by commas"
    try:
        check_bucket(bucket or "-")
    except ValueError:
        raise ValueError(f"{need}; {entry.strip()!r} does not start with a bucket name") from None
    problem = key_problem(prefix) if prefix else None
    if problem:
        raise ValueError(f"{need}; the prefix of {entry.strip()!r} is not usable: {problem}")
    return bucket, prefix


def _under(key: str, prefix: str) -> bool:
    return not prefix or key.startswith(prefix if prefix.endswith("/") else prefix + "/")


def within(bucket: str, key: str, allowed_bucket: str, prefix: str) -> bool:
    """True when ``s3://bucket/key`` is a normal-form key under ``prefix`` of
    ``allowed_bucket``."""
    return bucket == allowed_bucket and key_problem(key) is None and _under(key, prefix)


def locate(
    ref: str, context: CallContext | None, allow: Sequence[str], what: str
) -> tuple[str, str]:
    """The ``(bucket, key)`` a tool's ``ref`` (a key or an ``s3://`` URI) addresses, once
    checked against the rules above; raise ``StepError`` (``Loopline.Failed``) otherwise.
    ``what`` starts the messages (``"tool s3_get"``)."""
    if context is None:
        raise StepError(
            FAILED, f"{what}: S3 objects can only be reached from a running step (no workflow)"
        )
    # ``context.prefix`` may read the task's tenant from the table: only once the
    # reference has passed the checks that need no prefix.
    if ref[:5].lower() == "s3://":
        if "?" in ref or "#" in ref:
            raise StepError(FAILED, f"{what}: {ref} has a ? or # part; an S3 URI has none")
        parts = urlsplit(ref)
        bucket, key = parts.netloc, parts.path[1:]
        if not bucket:
            raise StepError(FAILED, f"{what}: {ref} names no bucket (s3://bucket/key)")
    elif "://" in ref or ref.startswith("/"):
        raise StepError(
            FAILED,
            f"{what}: {ref!r} is neither a key (reports/x.json, under this workflow's prefix) "
            "nor an s3://bucket/key URI",
        )
    else:
        bucket, key = context.bucket or "", ref
        if not bucket:
            raise StepError(
                FAILED,
                f"{what}: no artifacts bucket is configured (LOOPLINE_BUCKET) for the key {ref!r}",
            )
        problem = key_problem(key)
        if problem:
            raise StepError(FAILED, f"{what}: {ref!r} is not a usable key: {problem}")
        return bucket, context.prefix + key
    problem = key_problem(key)
    if problem:
        raise StepError(FAILED, f"{what}: {ref} is not a usable S3 URI: {problem}")
    if context.bucket and within(bucket, key, context.bucket, context.prefix):
        return bucket, key
    for entry in allow:
        allowed_bucket, prefix = parse_allow_entry(entry)
        if within(bucket, key, allowed_bucket, prefix):
            return bucket, key
    own = f"s3://{context.bucket}/{context.prefix}" if context.bucket else "no artifacts bucket"
    listed = ", ".join(allow) or "nothing"
    raise StepError(
        FAILED,
        f"{what}: {ref} is outside what this workflow may reach: its own prefix ({own}) "
        f"and the locations LOOPLINE_S3_ALLOW lists ({listed})",
    )
