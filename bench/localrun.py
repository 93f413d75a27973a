"""``loopline run`` of a one-step workflow beside the floor of its work.

The ratio is the CPU time (user + system) of the whole command in a fresh interpreter, as
a user runs it (the ``loopline`` entry point), over that of
``bench/reference/moto_one_task.py``: a bare moto script that runs one Lambda Task (its
docstring says exactly what it does). The command runs from the repository's root, so
the local stack is ``template.yaml``'s (the goal's case), and again from a folder with no
template (Loopline's own functions only). Rounds are paired and alternate which goes
first; both run with bytecode caches written (one untimed run each first), as an
installed package or a second run has them.

"Where the time goes" runs the command once more in a child that times each phase with
``time.process_time`` (``python bench/localrun.py --phases FILE``, JSON on stdout) under
``-X importtime`` (moto's packages: what each first import cost, all it pulled in), and
counts the state machines moto created and the history the run read.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "bench") not in sys.path:
    sys.path.insert(0, str(ROOT / "bench"))

from ratio import Ratio, child_cpu, child_env, cli, paired  # noqa: E402

GOAL = 1.3
ROUNDS = 7
REFERENCE = ROOT / "bench" / "reference" / "moto_one_task.py"
INPUT = '{"n": 3}'
WORKFLOW = """\
name: one-step
version: 1.0.0
inputs:
  n: {type: integer, required: true}
steps:
  - id: first
    tool: render
    args: {template: "task {{ inputs.n }}"}
"""


def bench_localrun() -> list[Ratio]:
    env = child_env()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp, "one_step.yaml")
        src.write_text(WORKFLOW, encoding="utf-8")
        run = [cli(), "run", "-q", str(src), "--input", INPUT]
        ref = [sys.executable, str(REFERENCE)]
        for argv in (run, ref):  # bytecode caches written, untimed
            child_cpu(argv, cwd=ROOT, env=env)
        reference = "bare moto script, one Lambda Task"
        ratios = [
            # From the repository: the local stack is template.yaml's (the case).
            paired(
                Ratio("loopline run: one step", reference, GOAL),
                lambda: child_cpu(run, cwd=ROOT, env=env),
                lambda: child_cpu(ref, cwd=ROOT, env=env),
                ROUNDS,
            ),
            # Where no template.yaml is found: Loopline's own functions only.
            paired(
                Ratio("loopline run: one step, no template", reference, GOAL),
                lambda: child_cpu(run, cwd=tmp, env=env),
                lambda: child_cpu(ref, cwd=tmp, env=env),
                ROUNDS,
            ),
        ]
        _where_the_time_goes(src, env)
    return ratios


def _where_the_time_goes(src: Path, env: dict[str, str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", __file__, "--phases", str(src)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if proc.returncode:
        raise SystemExit(f"bench/localrun.py --phases failed:\n{proc.stderr[-3000:]}")
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    print()
    print("loopline run, one step: where the time goes (CPU s of the process while each ran;")
    print("the execution's worker threads count in the phase they overlap)")
    print(f"{'phase':<46} {'CPU s':>6}")
    for name, seconds in data["phases"]:
        print(f"{name:<46} {seconds:>6.3f}")
    print(f"{'whole process':<46} {data['total']:>6.3f}")
    print()
    print("imports (-X importtime: the modules of each package, their own time; moto by service)")
    print(f"{'package':<46} {'ms':>6}")
    for name, ms in _imports(proc.stderr):
        print(f"{name:<46} {ms:>6.0f}")
    print()
    counts = data["counts"]
    print(
        f"state machines created in moto: {counts['machines']} ({', '.join(counts['names'])}); "
        f"declared by the template, not needed: {counts['declared']}"
    )
    print(
        f"history: {counts['history_calls']} GetExecutionHistory calls returned "
        f"{counts['events_read']} events for a history of {counts['events']}; "
        f"{counts['describe_calls']} DescribeExecution calls"
    )


def _imports(stderr: str) -> list[tuple[str, float]]:
    """The heaviest packages by the import time of their own modules (``moto.<service>``
    for moto, ``loopline.<package>``, else the top-level package), and moto in all."""
    out: dict[str, float] = {}
    for line in stderr.splitlines():
        parts = line.split("|")
        if len(parts) != 3 or not parts[1].strip().isdigit():
            continue
        name = parts[2].strip()
        own = int(parts[0].rsplit(":", 1)[-1]) / 1000
        top = name.split(".")
        key = ".".join(top[:2]) if top[0] in ("moto", "loopline") else top[0]
        out[key] = out.get(key, 0.0) + own
        if top[0] == "moto":
            out["moto (all)"] = out.get("moto (all)", 0.0) + own
    return sorted(out.items(), key=lambda kv: -kv[1])[:16]


# --------------------------------------------------------------------------- --phases


def _phases(src: str) -> None:
    """Run ``loopline run -q SRC`` in this process with a timer around each phase."""
    t_start = time.process_time()
    phases: dict[str, float] = {}

    def timed(owner: Any, name: str, label: str) -> None:
        original = getattr(owner, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0 = time.process_time()
            try:
                return original(*args, **kwargs)
            finally:
                phases[label] = phases.get(label, 0.0) + time.process_time() - t0

        setattr(owner, name, wrapper)

    t0 = time.process_time()
    from loopline import cli
    from loopline.local import executor, run, template

    phases["import Loopline (cli, local stack)"] = time.process_time() - t0
    counts: dict[str, Any] = {"history_calls": 0, "events_read": 0, "describe_calls": 0}

    original_enter = executor.LocalExecutor.__enter__

    created: list[str] = []

    def enter(ex: Any) -> Any:
        out = original_enter(ex)
        # moto is imported by now (importing it here sooner would change what it imports).
        from moto.stepfunctions.parser.models import StepFunctionsParserBackend

        original_create = StepFunctionsParserBackend.create_state_machine

        def create(backend: Any, name: str, *args: Any, **kwargs: Any) -> Any:
            created.append(name)
            return original_create(backend, name, *args, **kwargs)

        StepFunctionsParserBackend.create_state_machine = create  # type: ignore[method-assign]
        ex.sfn.meta.events.register("after-call.sfn.GetExecutionHistory", count_history)
        ex.sfn.meta.events.register("after-call.sfn.DescribeExecution", count_describe)
        return out

    def count_history(parsed: dict[str, Any], **_: Any) -> None:
        counts["history_calls"] += 1
        counts["events_read"] += len(parsed.get("events") or [])

    def count_describe(**_: Any) -> None:
        counts["describe_calls"] += 1

    executor.LocalExecutor.__enter__ = enter  # type: ignore[method-assign]
    timed(cli, "_load", "load and compile the workflow")
    timed(template.LocalStack, "__init__", "read template.yaml")
    timed(executor.LocalExecutor, "__enter__", "start moto (imports, patches, bucket)")
    timed(template.LocalStack, "provision", "provision the template's resources")
    timed(executor.LocalExecutor, "create_state_machine", "create the run's state machine")
    timed(executor.LocalExecutor, "start_execution", "start the execution")
    if hasattr(run, "_Follow"):
        timed(run._Follow, "__call__", "follow the execution (history, status)")
    else:  # the code before history was read from the last event seen
        timed(executor.LocalExecutor, "history", "follow the execution (history)")
        timed(executor.LocalExecutor, "describe", "follow the execution (status)")
    timed(template, "load_handler", "  of which: import handlers (first invocation)")
    timed(executor.LocalExecutor, "drain", "drain the status events")
    timed(executor.LocalExecutor, "_teardown", "stop moto")

    original_teardown = executor.LocalExecutor._teardown

    def teardown(ex: Any) -> None:
        if ex._sfn is not None and ex._executions:
            read = dict(counts)
            counts["events"] = len(ex.history(ex._executions[-1]))
            counts.update(read)
            declared = getattr(ex, "declared", None)
            counts["declared"] = len(declared.pending) if declared is not None else 0
        original_teardown(ex)

    executor.LocalExecutor._teardown = teardown  # type: ignore[method-assign]
    try:
        cli.main(["run", "-q", src, "--input", INPUT])
    except SystemExit as exc:
        if exc.code:
            raise
    counts["machines"] = len(created)
    counts["names"] = created
    total = time.process_time() - t_start
    print(json.dumps({"phases": list(phases.items()), "total": total, "counts": counts}))


def main(argv: list[str]) -> None:
    if argv[:1] == ["--phases"]:
        _phases(argv[1])
        return
    from ratio import table

    table("loopline run", bench_localrun())


if __name__ == "__main__":
    main(sys.argv[1:])
