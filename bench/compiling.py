"""``loopline compile FILE -o OUT`` beside the floor of its work, at 10, 1,000 and 5,000
generated steps (``generate.write``).

Each ratio is the CPU time (user + system) of the whole command in a fresh interpreter, as
a user runs it (the ``loopline`` entry point), over that of
``bench/reference/compile_floor.py`` on the same file: a script that parses the same YAML
with the same C parser and writes the same ASL bytes with orjson (its docstring says
exactly what it does). Rounds are paired and alternate which goes first.

Both run with bytecode caches written (``PYTHONDONTWRITEBYTECODE`` dropped, one untimed
run each first), as an installed package or a second run has them.

A definition over Step Functions' 1 MiB is compiled in full and then refused (exit 2,
nothing written): that run is timed all the same, and the reference writes the text the
compiler made.

"Where the time goes" runs the command once per size in a child that times each phase of
``loopline.cli`` with ``time.process_time`` (and the garbage collector's passes with
``gc.callbacks``): ``python bench/compiling.py --phases FILE OUT`` prints them as JSON.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

# The rest is imported where it is used: ``--phases`` runs in a child whose start-up
# should be the interpreter's and little more.
if TYPE_CHECKING:
    from ratio import Ratio

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "bench") not in sys.path:
    sys.path.insert(0, str(ROOT / "bench"))

SIZES = (10, 1000, 5000)
GOAL = 3.0
ROUNDS = 7
REFERENCE = ROOT / "bench" / "reference" / "compile_floor.py"
REFUSED = "Step Functions accepts at most"


def _definition_text(src: Path, out: Path, env: dict[str, str]) -> tuple[str, bool]:
    """The ASL the compiler makes for ``src`` (running the command once, untimed), and
    whether the command refused it for its size."""
    import subprocess

    from ratio import cli

    proc = subprocess.run(
        [cli(), "compile", "-q", str(src), "-o", str(out)],
        env=env,
        capture_output=True,
        text=True,
    )
    if proc.returncode == 0:
        return out.read_text(encoding="utf-8"), False
    if proc.returncode == 2 and REFUSED in proc.stderr:
        code = (
            "import sys; from loopline.compiler.compile import Compiler, dumps; "
            "from loopline.dsl import load_workflow; "
            "sys.stdout.write(dumps(Compiler(load_workflow(sys.argv[1])).compile()))"
        )
        text = subprocess.run(
            [sys.executable, "-c", code, str(src)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return text, True
    raise SystemExit(f"loopline compile {src} exited {proc.returncode}:\n{proc.stderr[-2000:]}")


def bench_compiling() -> list[Ratio]:
    import marshal
    import subprocess
    import tempfile

    from generate import write
    from ratio import Ratio, child_cpu, child_env, cli, paired

    env = child_env()
    rows: list[Ratio] = []
    phases: dict[int, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in SIZES:
            src, out = Path(tmp, f"gen{n}.yaml"), Path(tmp, f"gen{n}.asl.json")
            ref_in, ref_dir = Path(tmp, f"ref{n}.marshal"), Path(tmp, f"ref{n}")
            ref_dir.mkdir()
            write(n, str(src))
            text, refused = _definition_text(src, out, env)
            # Every file the command writes: the parent, and a split workflow's children.
            written = {out.name: text} | {
                p.name: p.read_text(encoding="utf-8")
                for p in sorted(out.parent.glob(f"{out.name.removesuffix('.asl.json')}--part-*"))
            }
            machines = [
                (str(ref_dir / name), json.loads(t), not t.startswith("{\n"))
                for name, t in written.items()
            ]
            ref_in.write_bytes(marshal.dumps(machines))
            reference = [sys.executable, str(REFERENCE), str(src), str(ref_in)]
            subprocess.run(reference, env=env, check=True)
            for name, t in written.items():
                if (ref_dir / name).read_text(encoding="utf-8") != t:
                    raise SystemExit(
                        f"{REFERENCE.name} does not write the compiler's ASL for {n} steps"
                    )
            subject = [cli(), "compile", "-q", str(src), "-o", str(out)]
            what = f"compile {n:,} steps" + (" (refused >1MiB)" if refused else "")
            rows.append(
                paired(
                    Ratio(what, "parse YAML + write ASL (orjson)", GOAL),
                    lambda s=subject, c=not refused: child_cpu(s, env=env, check=c),
                    lambda r=reference: child_cpu(r, env=env),
                    rounds=ROUNDS,
                )
            )
            phases[n] = _phases(src, out, env)
    _print_phases(phases)
    return rows


# --------------------------------------------------------------------------- phases

#: (label, module, attribute) of each function timed, in the order they run.
_TIMED = (
    ("read + parse YAML", "loopline.dsl.api", "parse_document"),
    ("validate (pydantic-core)", "loopline.dsl.api", "validate_document"),
    ("checks", "loopline.dsl.api", "check_workflow"),
    ("compile", "loopline.compiler.compile", "Compiler.compile"),
    ("dump (orjson)", "loopline.compiler.compile", "dumps"),
    ("write", "loopline.cli", "_write_output"),
)


def _phases(src: Path, out: Path, env: dict[str, str]) -> dict[str, Any]:
    import subprocess

    proc = subprocess.run(
        [sys.executable, __file__, "--phases", str(src), str(out)],
        env=env,
        capture_output=True,
        text=True,
    )
    if not proc.stdout.strip():
        raise SystemExit(f"phases of {src}: {proc.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def _print_phases(phases: dict[int, dict[str, Any]]) -> None:
    print()
    print("Compile: where the time goes (CPU ms of one `loopline compile -q FILE -o OUT`,")
    print("each phase timed in the command's own process; GC: the collector's passes within)")
    sizes = sorted(phases)
    labels = list(next(iter(phases.values()))["ms"])
    labels.insert(2, labels.pop(labels.index("imports on first use")))
    head = f"{'phase':<28}" + "".join(f" {f'{n:,} steps':>16}" for n in sizes)
    print(head)
    print("-" * len(head))
    for label in labels:
        cells = []
        for n in sizes:
            ms = phases[n]["ms"][label]
            total = phases[n]["ms"]["total"]
            cells.append(f"{ms:>8.1f} {100 * ms / total:>5.1f} %" if total else f"{ms:>16.1f}")
        print(f"{label:<28}" + "".join(f" {c:>16}" for c in cells))
    late = phases[sizes[0]]["late_imports"]
    print(
        f"imported on first use ({len(late)} top-level modules, "
        f"{phases[sizes[0]]['modules']} modules in all): {', '.join(late)}"
    )


def _run_phases(src: str, out: str) -> None:  # pragma: no cover - runs in a child
    """Run ``loopline compile -q src -o out`` here, timing each phase; print JSON.

    A phase's time leaves out the modules imported during it (the command imports
    most of what it needs on first use): those are one row of their own."""
    import builtins
    import gc
    import importlib

    start = time.process_time()  # the interpreter's own start-up, before this line
    ms: dict[str, float] = {"interpreter start (+ probe)": start * 1000}
    t0 = time.process_time()
    import loopline.cli as cli

    ms["import loopline.cli"] = (time.process_time() - t0) * 1000
    imported = set(sys.modules)
    importing = [0.0, 0]  # ms spent in imports, nesting depth
    real_import = builtins.__import__

    def timed_import(*a: Any, **kw: Any) -> Any:
        if importing[1]:
            return real_import(*a, **kw)
        importing[1] += 1
        t = time.process_time()
        try:
            return real_import(*a, **kw)
        finally:
            importing[1] -= 1
            importing[0] += (time.process_time() - t) * 1000

    builtins.__import__ = timed_import
    gc_ms = [0.0, 0.0]  # ms, start of the current pass

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_ms[1] = time.process_time()
        else:
            gc_ms[0] += (time.process_time() - gc_ms[1]) * 1000

    gc.callbacks.append(on_gc)
    # The modules of the phases are imported here to wrap their functions: the command
    # would have imported them on first use, so they count as such.
    t0 = time.process_time()
    importing[1] += 1
    owners = [importlib.import_module(module) for _, module, _ in _TIMED]
    importing[1] -= 1
    importing[0] += (time.process_time() - t0) * 1000
    for (label, _, attr), owner in zip(_TIMED, owners, strict=True):
        name = attr
        if "." in attr:
            cls, name = attr.split(".")
            owner = getattr(owner, cls)
        inner = getattr(owner, name)
        ms[label] = 0.0

        def timed(*a: Any, _inner: Any = inner, _label: str = label, **kw: Any) -> Any:
            t, before = time.process_time(), importing[0]
            try:
                return _inner(*a, **kw)
            finally:
                ms[_label] += (time.process_time() - t) * 1000 - (importing[0] - before)

        setattr(owner, name, timed)
    # ``compile_workflow`` calls ``dumps`` by its module's global: patched above.
    before = importing[0]
    t0 = time.process_time()
    with contextlib.suppress(SystemExit):
        cli.main(["compile", "-q", src, "-o", out])
    run = (time.process_time() - t0) * 1000 - (importing[0] - before)
    ms["other (arguments, report)"] = run - sum(ms[label] for label, _, _ in _TIMED)
    ms["imports on first use"] = importing[0]
    ms["GC (within the above)"] = gc_ms[0]
    ms["total"] = time.process_time() * 1000
    late = sorted(m for m in set(sys.modules) - imported if "." not in m)
    print(json.dumps({"ms": ms, "modules": len(sys.modules), "late_imports": late}))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--phases"]:
        _run_phases(sys.argv[2], sys.argv[3])
    else:
        from ratio import table

        table("Compile: `loopline compile` beside parse YAML + write ASL", bench_compiling())
