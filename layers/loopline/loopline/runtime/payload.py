"""The Lambda payload every action receives (docs/internals.md) and what it returns.

Step Functions evaluates every key that ends in ``.$`` inside a state's ``Parameters``,
however deep. A workflow's own data (tool args, an HTTP body, a JSON Schema, a human
step's context...) travels in ``config``, so the compiler escapes its keys
(``escape_keys``) and ``config_of`` gives them back as written (``unescape_keys``): a
key that ends in ``.$`` followed by any number of ``~`` gets one more ``~``. The mapping
is one to one, so every key, ``"ctx.$~"`` included, comes back unchanged.
"""

from __future__ import annotations

import re
from typing import Any

Payload = dict[str, Any]
Result = dict[str, Any]

#: Keys that end in ".$", ".$~", ".$~~"...: the ones the escaping changes.
_ESCAPED = re.compile(r"\.\$~*\Z")


def escape_key(key: str) -> str:
    """``key`` as it may appear in ``Parameters`` (never ending in ``.$``)."""
    return key + "~" if _ESCAPED.search(key) else key


def unescape_key(key: str) -> str:
    """The key ``escape_key`` was given."""
    return key[:-1] if key.endswith("~") and _ESCAPED.search(key) else key


def escape_keys(value: Any) -> Any:
    """``value`` with every object key escaped, at any depth."""
    if isinstance(value, dict):
        return {escape_key(str(k)): escape_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [escape_keys(v) for v in value]
    return value


def unescape_keys(value: Any) -> Any:
    """``value`` with every object key unescaped, at any depth."""
    if isinstance(value, dict):
        return {unescape_key(str(k)): unescape_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unescape_keys(v) for v in value]
    return value


def has_path_key(value: Any) -> bool:
    """Does ``value`` hold an object key Step Functions would evaluate (ending in ``.$``)?"""
    if isinstance(value, dict):
        return any(str(k).endswith(".$") or has_path_key(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_path_key(v) for v in value)
    return False


def expanded(payload: Any) -> Any:
    """``payload`` with its ``step`` and ``attempt``: a Task named after its step passes
    its state instead (``"state.$": "$$.State"``, docs/internals.md), whose ``Name`` is
    the step and ``RetryCount`` the attempt. Any other payload is returned as it is."""
    if not isinstance(payload, dict) or not isinstance(payload.get("state"), dict):
        return payload
    state = payload["state"]
    out = {k: v for k, v in payload.items() if k != "state"}
    out.setdefault("step", state.get("Name"))
    out.setdefault("attempt", state.get("RetryCount", 0))
    return out


def config_of(payload: Payload) -> dict[str, Any]:
    """The step's static configuration (``{}`` when absent), keys as the workflow wrote them."""
    cfg = payload.get("config")
    return unescape_keys(cfg) if isinstance(cfg, dict) else {}


def step_of(payload: Payload) -> str:
    """The step id, for messages."""
    return str(payload.get("step") or "?")
