"""The Lambda payload every action receives (docs/internals.md) and what it returns."""

from __future__ import annotations

from typing import Any

Payload = dict[str, Any]
Result = dict[str, Any]


def config_of(payload: Payload) -> dict[str, Any]:
    """The step's static configuration (``{}`` when absent)."""
    cfg = payload.get("config")
    return cfg if isinstance(cfg, dict) else {}


def step_of(payload: Payload) -> str:
    """The step id, for messages."""
    return str(payload.get("step") or "?")
