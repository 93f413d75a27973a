"""API keys and who is calling.

``Caller`` is the caller the authorizer established: the tenant everything is scoped to,
the key's user (None for a tenant-wide key), its roles and the key's id.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Caller:
    tenant: str
    user: str | None
    roles: tuple[str, ...]
    key_id: str
