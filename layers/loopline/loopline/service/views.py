"""What the API shows of a task, a step and an event: the contract's shapes, built from
the table's records alone (Step Functions is never asked on a read).

Large values (inputs, outputs) are kept in S3 and referenced from the records
(``{"$loopline_ref": "s3://…", "size", "preview"}``, ``loopline.runtime.largevalues``). A
view shows each reference into the stack's bucket, under the task's workflow, as the
value itself when it is at most 1 MB, else as a link: ``{"link": <presigned URL>,
"size", "preview", "expires_at"}``. Task lists show references as they are (a page of
tasks reads no S3 object).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from loopline import ids
from loopline.settings import settings

log = logging.getLogger("loopline.service")

#: A stored value larger than this is shown as a link, not inline.
INLINE_LIMIT = 1024 * 1024
#: How long a link to a large value works.
LINK_SECONDS = 3600
#: The run statuses of ``steps`` while a task runs (the step functions record them).
RUN_STATUSES = ("RUNNING", "WAITING", "SUCCEEDED", "FAILED")


# --------------------------------------------------------------------------- large values


def _link(bucket: str, key: str, ref: dict[str, Any]) -> dict[str, Any]:
    from loopline import aws

    url = aws.client("s3").generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=LINK_SECONDS
    )
    expires = ids.format_time(datetime.now(UTC) + timedelta(seconds=LINK_SECONDS))
    return {
        "link": url,
        "size": ref.get("size"),
        "preview": ref.get("preview"),
        "expires_at": expires,
    }


def has_ref(value: Any) -> bool:
    """True when ``value`` holds a large-value reference object anywhere."""
    from loopline.runtime.largevalues import is_ref

    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            if is_ref(v):
                return True
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return False


def resolve_large(value: Any, workflow: str, tenant: str) -> Any:
    """``value`` with each reference into the stack's bucket under the task's own prefix
    (``object_prefix(tenant, workflow)``) replaced by the stored value (at most 1 MB) or a
    link. Anything else (another tenant's objects included) is left as it is."""
    from loopline.runtime import largevalues
    from loopline.runtime.errors import StepError
    from loopline.runtime.s3scope import object_prefix, within

    bucket = settings().bucket
    if not bucket or not has_ref(value):
        return value
    try:
        prefix = object_prefix(tenant, workflow)
    except StepError:
        return value

    def walk(v: Any) -> Any:
        if largevalues.is_ref(v):
            try:
                ref_bucket, key = largevalues.parse_s3_uri(v[largevalues.REF_KEY])
            except StepError:
                return v
            if not within(ref_bucket, key, bucket, prefix):
                return v
            size = v.get("size")
            if isinstance(size, int) and size > INLINE_LIMIT:
                return _link(ref_bucket, key, v)
            try:
                data, _ = largevalues.get_object(v[largevalues.REF_KEY])
                if len(data) > INLINE_LIMIT:
                    return _link(ref_bucket, key, v)
                return json.loads(data)
            except (StepError, ValueError):
                log.warning("could not read the large value %s", v[largevalues.REF_KEY])
                return v
        if isinstance(v, dict):
            return {k: walk(x) for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x) for x in v]
        return v

    return walk(value)


# --------------------------------------------------------------------------- tasks


def derived_steps(
    runs: list[dict[str, Any]], parents: dict[str, str] | None = None
) -> dict[str, dict[str, Any]]:
    """``steps`` of a running task, from its step runs (oldest first): each step's
    status is its latest run's, ``starts`` counts its first attempts (a retry is the same
    start, as in ``loopline run --json``). The control steps that hold a recorded step
    (``parents``: step → enclosing step) are ``RUNNING`` with one start until the task
    ends; then the execution history says exactly what each did (``service.tracking``)."""
    steps: dict[str, dict[str, Any]] = {}
    for run in runs:
        entry = steps.setdefault(run["step"], {"status": "RUNNING", "starts": 0})
        entry["status"] = str(run.get("status") or "RUNNING").upper()
        if not run.get("attempt"):
            entry["starts"] += 1
    for step in list(steps):
        parent = (parents or {}).get(step)
        while parent is not None and parent not in steps:
            steps[parent] = {"status": "RUNNING", "starts": 1}
            parent = (parents or {}).get(parent)
    return dict(sorted(steps.items()))


def task_view(
    task: dict[str, Any], runs: list[dict[str, Any]] | None = None, *, resolve: bool = True
) -> dict[str, Any]:
    """The contract's task view. ``runs`` (every step run, oldest first) gives ``steps``
    while the task runs; once it ended, the recorded summary does."""
    tid = task["id"]
    steps = task.get("steps")
    if steps is None:
        steps = derived_steps(runs or [], task.get("parents"))

    def shown(value: Any) -> Any:
        return resolve_large(value, str(task["workflow"]), _tenant(task)) if resolve else value

    return {
        "id": tid,
        "workflow": task["workflow"],
        "version": task.get("version"),
        "status": task["status"],
        "run": task.get("run", 1),
        "inputs": shown(task.get("inputs") or {}),
        "labels": task.get("labels") or {},
        "output": shown(task.get("output")),
        "error": task.get("error"),
        "cause": task.get("cause"),
        "created_at": task["created_at"],
        "started_at": task.get("started_at"),
        "finished_at": task.get("finished_at"),
        "waiting": task.get("waiting") or [],
        "steps": steps,
        "usage": {
            "input_tokens": int(task.get("input_tokens") or 0),
            "output_tokens": int(task.get("output_tokens") or 0),
        },
        "links": {"self": f"/v1/tasks/{tid}", "events": f"/v1/tasks/{tid}/events"},
    }


def _tenant(task: dict[str, Any]) -> str:
    return str(task.get("tenant") or "")


def run_view(run: dict[str, Any], task: dict[str, Any]) -> dict[str, Any]:
    """One start of one of ``task``'s steps: ``{attempt, started_at, finished_at, status,
    output, error, cause}``."""
    return {
        "attempt": int(run.get("attempt") or 0),
        "started_at": run.get("started_at"),
        "finished_at": run.get("finished_at"),
        "status": str(run.get("status") or "RUNNING").upper(),
        "output": resolve_large(run.get("output"), str(task["workflow"]), _tenant(task)),
        "error": run.get("error"),
        "cause": run.get("cause"),
    }


def step_view(
    task: dict[str, Any], step: str, runs: list[dict[str, Any]], summary: dict[str, Any] | None
) -> dict[str, Any]:
    """``{task, step, status, starts, runs}``: ``runs`` newest last."""
    status = summary.get("status") if summary else None
    starts = summary.get("starts") if summary else None
    if summary is None and runs:
        derived = derived_steps(runs, task.get("parents"))[step]
        status, starts = derived["status"], derived["starts"]
    return {
        "task": task["id"],
        "step": step,
        "status": status,
        "starts": starts or 0,
        "runs": [run_view(r, task) for r in runs],
    }


def event_view(event: dict[str, Any]) -> dict[str, Any]:
    """``{seq, at, type, step?, data}``."""
    out: dict[str, Any] = {"seq": event["seq"], "at": event["at"], "type": event["type"]}
    if event.get("step") is not None:
        out["step"] = event["step"]
    out["data"] = event.get("data") or {}
    return out
