"""Paired ratios for ``make bench``: a subject measured beside its reference, in one run.

Absolute times on a shared machine move by up to 1.7x between calls, so every goal is a
ratio: each round measures the subject and its reference one right after the other (the
order alternating), and the ratio of the round is subject / reference. A ``Ratio`` keeps
the rounds; ``table`` prints each with its reference, the medians and the spread of the
round ratios. Times are CPU seconds (user + system) of a child process where the work runs
in one (``child_cpu``), else wall seconds of an in-process call (``wall``)."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Ratio:
    #: What is measured, e.g. "cold import: llm".
    what: str
    #: What it is measured against, e.g. "Powertools handler importing only Logger".
    reference: str
    #: The goal: the median ratio must be at most this.
    goal: float
    subject_times: list[float] = field(default_factory=list)
    reference_times: list[float] = field(default_factory=list)

    @property
    def ratios(self) -> list[float]:
        return [s / r for s, r in zip(self.subject_times, self.reference_times, strict=True) if r]

    @property
    def median(self) -> float:
        return statistics.median(self.ratios)

    @property
    def met(self) -> bool:
        return self.median <= self.goal


def child_cpu(
    argv: Sequence[str],
    *,
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
) -> float:
    """CPU seconds (user + system) one run of ``argv`` took, its children included."""
    proc = subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=dict(env) if env is not None else None,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if check and proc.returncode:
        raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}:\n{err.decode()[-2000:]}")
    return usage.ru_utime + usage.ru_stime


def child_env() -> dict[str, str]:
    """The environment of a measured child: this one, with the layer's ``loopline`` first
    on ``PYTHONPATH`` and bytecode caches written (as a user's runs have them)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    layer = str(Path(__file__).resolve().parents[1] / "layers" / "loopline")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (layer, env.get("PYTHONPATH")) if p)
    return env


def cli() -> str:
    """The ``loopline`` command of this interpreter's environment."""
    return str(Path(sys.executable).parent / "loopline")


def wall(call: Callable[[], object]) -> float:
    """Wall seconds of one ``call()``."""
    t0 = time.perf_counter()
    call()
    return time.perf_counter() - t0


def paired(
    ratio: Ratio,
    subject: Callable[[], float],
    reference: Callable[[], float],
    rounds: int = 7,
) -> Ratio:
    """Measure ``rounds`` pairs into ``ratio`` (each callable returns the seconds of one
    run), alternating which goes first; returns ``ratio``."""
    for i in range(rounds):
        if i % 2:
            r = reference()
            s = subject()
        else:
            s = subject()
            r = reference()
        ratio.subject_times.append(s)
        ratio.reference_times.append(r)
    return ratio


def table(title: str, rows: Sequence[Ratio]) -> None:
    """Print ``rows``: each ratio with its reference, medians, spread and goal."""
    print()
    print(title)
    head = (
        f"{'what':<46} {'subject':>8} {'reference':>9} {'ratio':>6} {'spread':>11} "
        f"{'goal':>6}  reference"
    )
    print(head)
    print("-" * len(head))
    for row in rows:
        ratios = row.ratios
        spread = f"{min(ratios):.2f}-{max(ratios):.2f}"
        print(
            f"{row.what:<46} {statistics.median(row.subject_times):>8.3f} "
            f"{statistics.median(row.reference_times):>9.3f} {row.median:>6.2f} {spread:>11} "
            f"{'<=' + format(row.goal, 'g'):>6} {'met' if row.met else 'NOT MET':<7} "
            f"{row.reference}"
        )
