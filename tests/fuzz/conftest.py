"""Hypothesis profiles of the fuzz tests.

``short`` (the default, part of every test run): a few dozen cases of each kind, the same
ones every run. ``long`` (``make fuzz``, or ``HYPOTHESIS_PROFILE=long``): new cases every
run, ``FUZZ_EXAMPLES`` of each kind (20,000 unless set). In both, any case over 5 s fails.
"""

from __future__ import annotations

import os
from datetime import timedelta

from hypothesis import HealthCheck, settings

_COMMON = {
    "deadline": timedelta(seconds=5),
    "suppress_health_check": [
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.filter_too_much,
    ],
    "print_blob": True,
}

settings.register_profile("short", max_examples=40, derandomize=True, database=None, **_COMMON)
settings.register_profile(
    "long", max_examples=int(os.environ.get("FUZZ_EXAMPLES", "20000")), **_COMMON
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "short"))
