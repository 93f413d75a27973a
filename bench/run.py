"""``make bench``: every goal measured as a ratio beside its reference, in one run.

Sections (each prints where its time, bytes or transitions go, and returns its ratios):

- ``compiling``: ``loopline compile`` at 10 / 1,000 / 5,000 steps beside a script that
  parses the same YAML and writes the same ASL;
- ``transitions``: each construct's state transitions beside its floor, the examples'
  totals, definition sizes;
- ``coldstart``: each Lambda function's cold import beside a Powertools handler that
  imports only Logger (and what moved to the first call, and the tracing options);
- ``localrun``: ``loopline run`` of a one-step workflow beside a bare moto script;
- ``payloads``: the bytes that reach each Lambda beside the bytes it reads;
- ``split``: the generated 5,000-step workflow compiled into a parent and children and
  run to its end on the local stack;
- the task service (``service``): request latency, AWS calls per request, transitions with
  and without tracking; webhooks (``webhooks``): delivery throughput beside a signed-POST
  loop, latency from a task's end to its receiver, 1,000 events to 10 receivers.

The table of every ratio, with its reference, medians, spread and goal, comes last.
``LOOPLINE_BENCH_SKIP`` (comma-separated section names) leaves sections out."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from ratio import Ratio, table  # noqa: E402


def _sections() -> list[tuple[str, Callable[[], list[Ratio] | None]]]:
    from coldstart import bench_coldstart
    from compiling import bench_compiling
    from localrun import bench_localrun
    from payloads import bench_payloads
    from service import bench_requests, bench_tracking_transitions
    from split import bench_split
    from transitions import bench_transitions
    from webhooks import bench_webhooks

    return [
        ("compiling", bench_compiling),
        ("transitions", bench_transitions),
        ("coldstart", bench_coldstart),
        ("localrun", bench_localrun),
        ("payloads", bench_payloads),
        ("split", bench_split),
        ("service", bench_requests),
        ("tracking", bench_tracking_transitions),
        ("webhooks", bench_webhooks),
    ]


def main() -> int:
    skip = {s.strip() for s in os.environ.get("LOOPLINE_BENCH_SKIP", "").split(",") if s}
    ratios: list[Ratio] = []
    for name, section in _sections():
        if name in skip:
            continue
        print(flush=True)
        ratios += section() or []
    table("Every ratio, measured in this run (subject and reference in seconds or bytes)", ratios)
    missed = [r.what for r in ratios if not r.met]
    if missed:
        print(f"\n{len(missed)} goal(s) not met: " + "; ".join(missed))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
