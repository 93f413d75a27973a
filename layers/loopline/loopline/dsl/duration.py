"""Durations: an integer of seconds, or ``30s``, ``5m``, ``48h``, ``2d``."""

from __future__ import annotations

import re
from typing import Any

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_RE = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")

#: Step Functions accepts TimeoutSeconds up to one year.
MAX_SECONDS = 365 * 86400


def parse_duration(value: Any) -> int:
    """Seconds in ``value``; raise ``ValueError`` with the accepted forms."""
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}: use seconds or 30s, 5m, 48h, 2d")
    if isinstance(value, int):
        seconds = value
    elif isinstance(value, str) and (m := _RE.match(value)):
        seconds = int(m.group(1)) * _UNITS[m.group(2) or "s"]
    else:
        raise ValueError(f"invalid duration {value!r}: use seconds or 30s, 5m, 48h, 2d")
    if seconds < 1:
        raise ValueError(f"duration {value!r} must be at least 1 second")
    if seconds > MAX_SECONDS:
        raise ValueError(f"duration {value!r} is longer than one year")
    return seconds
