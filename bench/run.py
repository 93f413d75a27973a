"""``make bench``: compile time of large generated workflows (the whole CLI call, as a
user runs it), the state transitions each example takes when it runs in moto, the Lambda
handlers' cold imports, and the task service (``bench/service.py``): request latency with
concurrent clients, AWS calls per request, transitions with and without tracking; and
webhooks (``bench/webhooks.py``): delivery throughput beside a reference, latency from a
task's end to its receiver, and 1,000 events to 10 receivers."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from generate import write  # noqa: E402

SIZES = (100, 1000, 5000)
REPEAT = 5
GOAL_1000 = 0.5


def _definition_text(src: Path) -> str:
    """The definition of ``src`` even when it is over Step Functions' 1 MB (which
    ``loopline compile`` refuses once it has compiled it)."""
    from loopline.compiler.compile import Compiler, dumps
    from loopline.dsl import load_workflow

    return dumps(Compiler(load_workflow(src)).compile())


def bench_compile() -> None:
    cli = Path(sys.executable).parent / "loopline"
    print("Compile: `loopline compile FILE -o OUT`, wall time of the whole command")
    print(f"{'steps':>6} {'median s':>9} {'min s':>7} {'states':>7} {'ASL KB':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in SIZES:
            src, out = Path(tmp, f"gen{n}.yaml"), Path(tmp, f"gen{n}.asl.json")
            write(n, str(src))
            times = []
            refused = False
            for _ in range(REPEAT if n < 5000 else 3):
                t0 = time.perf_counter()
                proc = subprocess.run(
                    [str(cli), "compile", "-q", str(src), "-o", str(out)],
                    capture_output=True,
                    text=True,
                )
                times.append(time.perf_counter() - t0)
                # Over 1 MB: compiled in full, then refused (exit 2).
                refused = proc.returncode == 2 and "Step Functions accepts at most" in proc.stderr
                if proc.returncode and not refused:
                    raise SystemExit(proc.stderr)
            text = _definition_text(src) if refused else out.read_text()
            states = text.count('"Type": ')
            mark = "  (over 1 MB: refused)" if refused else ""
            if n == 1000:
                mark += (
                    "  (goal < 0.5 s: "
                    + ("met" if statistics.median(times) < GOAL_1000 else "NOT met")
                    + ")"
                )
            print(
                f"{n:>6} {statistics.median(times):>9.3f} {min(times):>7.3f} {states:>7} "
                f"{len(text) / 1024:>7.0f}{mark}"
            )


def bench_transitions() -> None:
    from tests.examples.cases import SAMPLES, health_server, run_sample

    print()
    print("State transitions per example (sample runs from tests/examples/cases.py)")
    print(f"{'workflow':<22} {'status':<10} {'transitions':>11} {'wall s':>7}")
    with health_server() as url:
        for name in sorted(SAMPLES):
            t0 = time.perf_counter()
            result = run_sample(name, url)
            print(
                f"{name:<22} {result.status:<10} {result.transitions:>11} {time.perf_counter() - t0:>7.2f}"
            )


def bench_handler_imports() -> None:
    """Cold import time of each Lambda handler module (``python -X importtime``), the
    best of three fresh interpreters, with the environment the template gives them."""
    print()
    print("Lambda handler cold import (python -X importtime, best of 3)")
    print(f"{'function':<10} {'ms':>6}  heaviest imports")
    env = {
        **os.environ,
        "POWERTOOLS_SERVICE_NAME": "loopline",
        "POWERTOOLS_METRICS_NAMESPACE": "Loopline",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    for app in sorted((ROOT / "functions").glob("*/app.py")):
        best: tuple[float, list[tuple[int, str]]] | None = None
        for _ in range(3):
            proc = subprocess.run(
                [sys.executable, "-X", "importtime", "-c", "import app"],
                cwd=app.parent,
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            rows = []
            for line in proc.stderr.splitlines():
                parts = line.split("|")
                if len(parts) == 3 and parts[1].strip().isdigit():
                    rows.append((int(parts[1]), parts[2].rstrip()))
            total = next(us for us, name in reversed(rows) if name.strip() == "app") / 1000
            # The first import of each top-level package, with all it pulled in.
            firsts: dict[str, int] = {}
            for us, name in rows:
                pkg = name.strip().split(".")[0]
                if pkg not in ("app", "loopline") and not pkg.startswith("_"):
                    firsts[pkg] = max(firsts.get(pkg, 0), us)
            top = sorted(((us, pkg) for pkg, us in firsts.items()), reverse=True)[:4]
            if best is None or total < best[0]:
                best = (total, top)
        assert best is not None
        heavy = ", ".join(f"{name} {us / 1000:.0f}" for us, name in best[1])
        print(f"{app.parent.name:<10} {best[0]:>6.0f}  {heavy}")


if __name__ == "__main__":
    from service import bench_requests, bench_tracking_transitions
    from webhooks import bench_webhooks

    bench_compile()
    bench_transitions()
    bench_handler_imports()
    bench_requests()
    bench_tracking_transitions()
    bench_webhooks()
