"""AWS clients of the service code, made once per process (per Lambda container) and only
when first used: a function pays for the clients its work needs, at most once.

``client("stepfunctions")`` is the one way service modules get a boto3 client; the store
gets its DynamoDB client here too. ``reset()`` forgets them (the local stack calls it when
it starts or stops moto, tests between mocks).
"""

from __future__ import annotations

import threading
from typing import Any

_clients: dict[str, Any] = {}
_lock = threading.Lock()


def client(service: str) -> Any:
    """The process's boto3 client of ``service`` (region and credentials from the
    environment, as in Lambda)."""
    found = _clients.get(service)
    if found is not None:
        return found
    with _lock:
        found = _clients.get(service)
        if found is None:
            import boto3

            found = _clients[service] = boto3.client(service)
        return found


def reset() -> None:
    """Forget every client (the next ``client`` call makes a new one)."""
    with _lock:
        _clients.clear()
