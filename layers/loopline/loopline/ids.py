"""Ids and times of the task service.

Ids are opaque strings sortable by creation time: a short kind prefix and a ULID in lower
case (``tsk_01jd8v…``), 30 characters at most, so a task id is also a valid Step
Functions execution name. Times are RFC 3339 UTC strings with milliseconds
(``2026-11-23T10:15:00.123Z``), which sort as they compare.
"""

from __future__ import annotations

from datetime import UTC, datetime

#: The prefix of each kind of id.
PREFIXES = {
    "task": "tsk",
    "key": "key",
    "human_task": "hum",
    "webhook": "whk",
    "delivery": "dlv",
    "run": "run",
    "notification": "ntf",
}


def new_id(kind: str) -> str:
    """A new id of ``kind`` (a key of ``PREFIXES``)."""
    from ulid import ULID  # imported when first needed: it reads its own metadata (~30 ms)

    return f"{PREFIXES[kind]}_{str(ULID()).lower()}"


def derived_id(kind: str, at: str, seed: str) -> str:
    """An id of ``kind`` that is the same every time for the same ``seed`` (a fan-out done
    twice records one delivery): the ULID's time is ``at`` (an RFC 3339 time), its
    random part the first 80 bits of the seed's SHA-256."""
    import hashlib

    from ulid import ULID

    millis = int(parse_time(at).timestamp() * 1000)
    entropy = hashlib.sha256(seed.encode("utf-8")).digest()[:10]
    return f"{PREFIXES[kind]}_{str(ULID.from_bytes(millis.to_bytes(6, 'big') + entropy)).lower()}"


def format_time(moment: datetime) -> str:
    """``moment`` as an RFC 3339 UTC string with milliseconds."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def now() -> str:
    """The current time as an RFC 3339 UTC string with milliseconds."""
    return format_time(datetime.now(UTC))


def parse_time(text: str) -> datetime:
    """The moment of an RFC 3339 string (``Z`` or an offset)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
