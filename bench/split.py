"""``make bench``, split state machines: the generated 5,000-step workflow compiles into a
parent and children each under Step Functions' 1 MiB (``loopline compile -o``, the whole
command) and runs to ``SUCCEEDED`` on the local stack (``run_workflow``, as ``loopline
run`` does), beside a 200-step run of the same generator that fits one machine.

Ratios: the largest machine's deployed bytes / 1 MiB (goal ≤ 1), and the run's seconds
per step / those of one machine with as many steps as a part (goal ≤ 1.5: running
through children costs no more per step; moto copies the state document at every state,
so its cost per step grows with a machine's size, and a part is the fair reference).
The table says where the time goes: each machine's size and how long its execution ran.
``LOOPLINE_BENCH_SPLIT_STEPS`` runs another size (the run takes minutes: moto interprets
every state in Python).

Runnable alone: ``PYTHONPATH=layers/loopline:. .venv/bin/python -c "import sys;
sys.path.insert(0,'bench'); from split import bench_split; from ratio import table;
table('split', bench_split())"``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from generate import write  # noqa: E402
from ratio import Ratio  # noqa: E402

LIMIT = 1_048_576
SCRIPT = {"responses": [{"answer": "ok"}]}


def _compile(src: Path, out: Path) -> float:
    """Seconds of ``loopline compile SRC -o OUT`` (its children beside OUT)."""
    cli = Path(sys.executable).parent / "loopline"
    t0 = time.perf_counter()
    proc = subprocess.run(
        [str(cli), "compile", str(src), "-o", str(out)], capture_output=True, text=True
    )
    if proc.returncode:
        raise SystemExit(f"loopline compile {src.name} failed:\n{proc.stderr[-2000:]}")
    return time.perf_counter() - t0


def _run(src: Path, limit: int | None = None) -> tuple[Any, float, list[dict[str, Any]]]:
    """Run the workflow of ``src`` as ``loopline run`` does (split for ``limit`` bytes);
    its result, its seconds and the description of each execution (the parent's and each
    child's)."""
    from loopline.compiler import compile_workflow
    from loopline.dsl import load_workflow, resolve_inputs
    from loopline.local import executor as local_executor
    from loopline.local.run import run_workflow

    wf = load_workflow(src)
    compiled = compile_workflow(wf, limit=limit)
    seen: list[dict[str, Any]] = []
    real_exit = local_executor.LocalExecutor.__exit__

    def describe_all(ex: Any, *args: Any) -> Any:
        for m in ex.sfn.list_state_machines()["stateMachines"]:
            for e in ex.sfn.list_executions(stateMachineArn=m["stateMachineArn"])["executions"]:
                seen.append({"machine": m["name"], **e})
        return real_exit(ex, *args)

    local_executor.LocalExecutor.__exit__ = describe_all  # type: ignore[method-assign]
    try:
        t0 = time.perf_counter()
        result = run_workflow(
            compiled.definition,
            wf,
            resolve_inputs(wf, {}),
            llm_script=SCRIPT,
            children=compiled.children,
            # Read the history once a second: reading it (whole, on every look) competes
            # with the run for the interpreter.
            poll=1.0,
        )
        seconds = time.perf_counter() - t0
    finally:
        local_executor.LocalExecutor.__exit__ = real_exit  # type: ignore[method-assign]
    return result, seconds, seen


def bench_split() -> list[Ratio]:
    from loopline.compiler.split import deployed_size

    n = int(os.environ.get("LOOPLINE_BENCH_SPLIT_STEPS", "5000"))
    print(f"Split: the generated {n}-step workflow as a parent and children")
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp, f"gen{n}.yaml"), Path(tmp, "out", f"gen{n}.asl.json")
        write(n, str(src))
        compile_s = _compile(src, out)
        files = sorted(out.parent.glob("*.asl.json"), key=lambda p: (len(p.name), p.name))
        sizes = {p.name: deployed_size(p.read_text(encoding="utf-8")) for p in files}
        result, run_s, executions = _run(src)
        # One machine with as many steps as a part (however large it is: moto takes it).
        ref_steps = n // max(len(files) - 1, 1)
        ref_src = Path(tmp, f"gen{ref_steps}.yaml")
        write(ref_steps, str(ref_src))
        ref_result, ref_s, _ = _run(ref_src, limit=2**40)

    ran: dict[str, float] = {}
    for e in executions:
        start, stop = e.get("startDate"), e.get("stopDate")
        if isinstance(start, datetime) and isinstance(stop, datetime):
            ran[e["machine"]] = (stop - start).total_seconds()
    print(f"`loopline compile -o`: {compile_s:.2f} s, {len(files)} state machines")
    print(f"{'machine':<26} {'KB deployed':>11} {'of 1 MiB':>8} {'execution s':>11}")
    for name, size in sizes.items():
        machine = f"bench-{n}" + name[len(f"gen{n}") : -len(".asl.json")]
        took = ran.get(machine)
        shown = f"{took:>11.1f}" if took is not None else f"{'-':>11}"
        print(f"{name:<26} {size / 1024:>11,.0f} {size / LIMIT:>8.0%} {shown}")
    steps = len(result.steps)
    print(
        f"run: {result.status} in {run_s:.1f} s ({steps} steps reported, "
        f"{result.transitions} transitions); one machine, {ref_steps} steps: "
        f"{ref_result.status} in {ref_s:.1f} s"
    )
    if result.status != "SUCCEEDED":
        raise SystemExit(f"the {n}-step run ended {result.status}: {result.error}: {result.cause}")
    largest = Ratio(
        f"split: largest of {len(files)} machines",
        "Step Functions' limit, 1 MiB (bytes)",
        1.0,
        [float(max(sizes.values()))],
        [float(LIMIT)],
    )
    per_step = Ratio(
        f"split: {n}-step run, s/step",
        f"one machine, {ref_steps} steps, s/step",
        1.5,
        [run_s / n],
        [ref_s / ref_steps],
    )
    return [largest, per_step]
