"""Large step outputs live in S3; the state document carries a reference to them.

Step Functions caps a state's input and output at 256 KB, and a model answer or an HTTP
body can be far larger. So ``dispatch`` (``loopline.runtime.actions``) passes every
action's result through ``offload``: an ``output`` whose JSON is larger than
``LOOPLINE_LARGE_VALUE_BYTES`` (64 KB) is written to ``LOOPLINE_BUCKET`` under
``<prefix><execution name>/<step>/<uuid>.json`` (``<prefix>``: the workflow's own,
``loopline.runtime.s3scope.object_prefix``, the tenant's for a task) and replaced by a
reference::

    {"$loopline_ref": "s3://bucket/key", "size": 5242880, "preview": "first 200 chars"}

and, before any action runs, ``resolve_payload`` replaces every reference found in the
payload's ``values`` (and a vote's ``results``) by the stored value, so templates,
expressions, tools and custom functions never see one. With no bucket configured a large
output stays inline. Only references into the configured bucket, under the execution's
own prefix (the call context's, ``loopline.runtime.s3scope.CallContext.prefix``: another
tenant's objects are never read) and with a key in normal form, are resolved: anything
else that looks like one (say, in an input, or ``wf/../other/x.json``) is left as it is.

``get_object`` and ``put_object`` are the bare S3 calls: they check nothing. What a tool
may reach is decided before, by ``loopline.runtime.s3scope.locate``.

An object output keeps its keys (its largest values are stored instead, one by one), so
that the paths the compiler passes to later steps (``steps.<id>.output.<key>``,
``loopline.compiler.payloads``) still hold values.
"""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import urlsplit

from loopline.runtime.errors import StepError, unexpected
from loopline.runtime.s3scope import CallContext, object_prefix, within
from loopline.settings import settings

#: The key that marks a reference object.
REF_KEY = "$loopline_ref"
PREVIEW_CHARS = 200
_REF_KEYS = {REF_KEY, "size", "preview"}


# --------------------------------------------------------------------------- S3


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` → ``(bucket, key)``; raise ``StepError`` for anything else."""
    parts = urlsplit(uri)
    key = parts.path[1:]
    if parts.scheme != "s3" or not parts.netloc or not key or "?" in uri or "#" in uri:
        raise StepError("Loopline.Failed", f"not an S3 object URI (s3://bucket/key): {uri}")
    return parts.netloc, key


def s3_client() -> Any:
    from loopline import aws

    return aws.client("s3")


def _s3_error(what: str, exc: Exception) -> StepError:
    """Throttling, 5xx, timeouts and lost connections are ``Loopline.Transient``; a
    missing object, a refused access or an invalid bucket name ``Loopline.Failed``."""
    return unexpected(exc, what)


def get_object(uri: str) -> tuple[bytes, str]:
    """The body and content type of the object at ``uri``."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = parse_s3_uri(uri)
    try:
        obj = s3_client().get_object(Bucket=bucket, Key=key)
        return obj["Body"].read(), str(obj.get("ContentType") or "")
    except (BotoCoreError, ClientError) as exc:
        raise _s3_error(f"could not read {uri}", exc) from None


def put_object(uri: str, body: bytes, content_type: str) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = parse_s3_uri(uri)
    try:
        s3_client().put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)
    except (BotoCoreError, ClientError) as exc:
        raise _s3_error(f"could not write {uri}", exc) from None


# --------------------------------------------------------------------------- references


def is_ref(value: Any) -> bool:
    """True for a reference object (``{"$loopline_ref": "s3://…", "size", "preview"}``)."""
    return (
        isinstance(value, dict)
        and isinstance(value.get(REF_KEY), str)
        and set(value) <= _REF_KEYS
        and value[REF_KEY].startswith("s3://")
    )


def _execution_name(execution: Any) -> str:
    text = str(execution or "local")
    return text.rsplit(":", 1)[-1] or "local"


def offload(
    result: Any, payload: dict[str, Any], bucket: str | None, scope: CallContext | None = None
) -> Any:
    """``result`` with a large ``output`` stored in ``bucket`` and replaced by references,
    under ``scope``'s prefix (without one, the payload's workflow's with no tenant).

    An object keeps its keys, so that a path to one of them still names a value in the
    state document (the compiler passes ``steps.<id>.output.<key>`` to later steps, and
    Choice rules read such paths): its largest values (1 KB or more) are stored one by
    one until it fits. Any other output, or an object made of so many small values that
    it would still not fit, is stored whole.
    """
    if not bucket or not isinstance(result, dict) or "output" not in result:
        return result
    output = result["output"]
    if is_ref(output):
        return result
    limit = settings().large_value_bytes
    data = _json_bytes(output)
    if len(data) <= limit:
        return result
    prefix = (
        scope.prefix
        if scope is not None
        else object_prefix("", str(payload.get("workflow") or "workflow"))
    )
    parts = [
        prefix.rstrip("/"),
        _execution_name(payload.get("execution")),
        str(payload.get("step") or "step"),
    ]
    if isinstance(output, dict):
        kept = _offload_values(output, len(data), limit, bucket, parts)
        if kept is not None:
            return {**result, "output": kept}
    return {**result, "output": _store(output, data, bucket, parts)}


def _offload_values(
    obj: dict[str, Any], size: int, limit: int, bucket: str, parts: list[str]
) -> dict[str, Any] | None:
    """``obj`` (``size`` bytes of JSON) with its largest values stored and replaced by
    references until its JSON is at most ``limit`` bytes; ``None`` (nothing stored) when
    that cannot be done."""
    encoded = {k: _json_bytes(v) for k, v in obj.items() if not is_ref(v)}
    planned: dict[str, dict[str, Any]] = {}
    for k in sorted(encoded, key=lambda k: -len(encoded[k])):
        if size <= limit or len(encoded[k]) < _MIN_OFFLOAD_BYTES:
            break
        planned[k] = _reference(obj[k], encoded[k], _new_uri(bucket, parts))
        size += _json_size(planned[k]) - len(encoded[k])
    if size > limit:
        return None
    for k, ref in planned.items():
        put_object(ref[REF_KEY], encoded[k], "application/json")
    return {k: planned.get(k, v) for k, v in obj.items()}


def _contains_ref(value: Any) -> bool:
    if isinstance(value, dict):
        return is_ref(value) or any(_contains_ref(v) for v in value.values())
    if isinstance(value, list):
        return any(_contains_ref(v) for v in value)
    return False


def resolve(
    value: Any,
    bucket: str | None,
    workflow: str | None = None,
    *,
    scope: CallContext | None = None,
) -> Any:
    """``value`` with every reference into ``bucket`` replaced by the stored value: those
    under ``scope``'s prefix when given, else under ``workflow``'s with no tenant when
    given, else all. Returns ``value`` itself when it holds no reference."""
    if not bucket or not _contains_ref(value):
        return value
    if scope is not None:
        prefix = scope.prefix
    else:
        prefix = object_prefix("", workflow) if workflow is not None else ""
    cache: dict[str, Any] = {}

    def load(uri: str) -> Any:
        if uri not in cache:
            data, _ = get_object(uri)
            try:
                cache[uri] = json.loads(data)
            except ValueError:
                raise StepError(
                    "Loopline.Failed", f"the large value at {uri} is not valid JSON"
                ) from None
        return cache[uri]

    def walk(v: Any) -> Any:
        if is_ref(v):
            try:
                ref_bucket, key = parse_s3_uri(v[REF_KEY])
            except StepError:
                return v  # not a reference of ours
            if within(ref_bucket, key, bucket, prefix):
                return load(v[REF_KEY])
            return v
        if isinstance(v, dict):
            return {k: walk(x) for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x) for x in v]
        return v

    return walk(value)


def resolve_payload(
    payload: dict[str, Any], bucket: str | None, scope: CallContext | None = None
) -> dict[str, Any]:
    """The payload with the references in ``values`` and ``results`` resolved (those under
    ``scope``'s prefix; without one, under the payload's workflow's with no tenant)."""
    if not bucket:
        return payload
    workflow = str(payload["workflow"]) if payload.get("workflow") else None
    out = dict(payload)
    for key in ("values", "results"):
        if key in out:
            out[key] = resolve(out[key], bucket, workflow, scope=scope)
    cfg = out.get("config")
    if isinstance(cfg, dict) and "results" in cfg:
        out["config"] = {
            **cfg,
            "results": resolve(cfg["results"], bucket, workflow, scope=scope),
        }
    return out


# --------------------------------------------------------------------------- inputs

#: The part of a key that holds input values (step ids cannot start with "_").
INPUTS_PART = "_inputs"
#: A value this small is never worth a reference (one is about 300 bytes).
_MIN_OFFLOAD_BYTES = 1024


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _json_size(value: Any) -> int:
    return len(_json_bytes(value))


def _new_uri(bucket: str, key_parts: list[str]) -> str:
    return f"s3://{bucket}/{'/'.join([*key_parts, uuid.uuid4().hex])}.json"


def _reference(value: Any, data: bytes, uri: str) -> dict[str, Any]:
    """The reference to ``value`` (``data``, its JSON) stored at ``uri``."""
    if isinstance(value, str):
        preview = value[:PREVIEW_CHARS]
    else:  # the JSON's first characters (a character is at most 4 bytes)
        preview = data[: 4 * PREVIEW_CHARS].decode(errors="ignore")[:PREVIEW_CHARS]
    return {REF_KEY: uri, "size": len(data), "preview": preview}


def _store(value: Any, data: bytes, bucket: str, key_parts: list[str]) -> dict[str, Any]:
    ref = _reference(value, data, _new_uri(bucket, key_parts))
    put_object(ref[REF_KEY], data, "application/json")
    return ref


def store_value(value: Any, bucket: str, key_parts: list[str]) -> dict[str, Any]:
    """Write ``value`` as JSON to ``s3://bucket/<key_parts...>/<uuid>.json``; returns its
    reference (``{"$loopline_ref", "size", "preview"}``)."""
    return _store(value, _json_bytes(value), bucket, key_parts)


def offload_inputs(
    inputs: dict[str, Any],
    *,
    workflow: str,
    execution: str,
    bucket: str | None,
    tenant: str = "",
) -> dict[str, Any]:
    """The execution input for ``inputs``, with large values stored in ``bucket``.

    Each input value whose JSON is larger than ``LOOPLINE_LARGE_VALUE_BYTES`` is written
    under ``<prefix><execution>/_inputs/<name>/`` (``<prefix>``: ``object_prefix(tenant,
    workflow)``, the task's tenant's when it has one) and replaced by a reference, as a
    large step output is; if the inputs together are still larger than that, the largest
    remaining values follow (values under 1 KB stay). The runtime resolves the
    references wherever a step reads the value. ``execution`` is the name the execution
    will be started with. With no bucket, the inputs are returned as they are.
    """
    if not bucket:
        return inputs
    limit = settings().large_value_bytes
    sizes = {name: _json_size(v) for name, v in inputs.items() if not is_ref(v)}
    out = dict(inputs)
    prefix = object_prefix(tenant, workflow).rstrip("/")

    def store(name: str) -> None:
        out[name] = store_value(
            inputs[name], bucket, [prefix, _execution_name(execution), INPUTS_PART, name]
        )
        del sizes[name]

    for name in [n for n, size in sizes.items() if size > limit]:
        store(name)
    while sizes and _json_size(out) > limit:
        name = max(sizes, key=lambda n: sizes[n])
        if sizes[name] < _MIN_OFFLOAD_BYTES:
            break
        store(name)
    return out
