"""``make demo``: compile every example, then run the research brief end to end on the
local stack with the scripted model.

The brief forks into parallel research, fact-checks claims with an adversarial vote and
waits for an editor's approval. With a terminal attached you are the editor; without one
the demo approves by itself.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from loopline.compiler import compile_workflow
from loopline.dsl import WorkflowInvalid, load_workflow, resolve_inputs

ROOT = Path.cwd()
SHOWCASE = "research_brief"


def _say(text: str = "") -> None:
    print(text, flush=True)


def compile_examples(root: Path) -> None:
    _say("== Compiling workflows/ to statemachines/")
    out_dir = root / "statemachines"
    out_dir.mkdir(exist_ok=True)
    for path in sorted((root / "workflows").glob("*.yaml")):
        result = compile_workflow(load_workflow(path))
        (out_dir / f"{path.stem}.asl.json").write_text(result.text, encoding="utf-8")
        r = result.report
        _say(
            f"   {path.name:<26} {r.states:>3} states, {r.lambda_tasks:>2} Lambda tasks, "
            f"{r.native_conditions} native conditions ({r.seconds * 1000:.1f} ms)"
        )


def run_showcase(root: Path) -> int:
    from loopline.local.run import parse_decision, print_progress, run_workflow, terminal_ask

    path = root / "workflows" / f"{SHOWCASE}.yaml"
    wf = load_workflow(path)
    inputs = resolve_inputs(wf, {"topic": "ocean tides", "audience": "engineers"})
    interactive = sys.stdin.isatty()
    _say()
    _say(f"== Running {path.name} on the local stack from template.yaml (moto), scripted model")
    _say(f"   inputs: {inputs}")
    if not interactive:
        _say("   no terminal: the demo will approve the brief itself")
    started = time.perf_counter()
    result = run_workflow(
        compile_workflow(wf).definition,
        wf,
        inputs,
        llm_script=str(root / "workflows" / "scripts" / f"{SHOWCASE}.yaml"),
        decisions=[] if interactive else [parse_decision("review=approve")],
        ask=terminal_ask if interactive else None,
        on_progress=print_progress,
        template=root / "template.yaml",
    )
    _say()
    if result.status == "SUCCEEDED":
        out = result.output or {}
        _say(f"   brief:       {out.get('brief')}")
        _say(f"   kept claims: {out.get('kept_claims')}")
        _say(f"   approved by: {out.get('approved_by')}")
    else:
        _say(f"   {result.error}: {result.cause}")
    _say(f"{result.status} in {time.perf_counter() - started:.1f} s")
    return 0 if result.status == "SUCCEEDED" else 1


def main() -> int:
    try:
        compile_examples(ROOT)
        return run_showcase(ROOT)
    except WorkflowInvalid as exc:
        print(exc.render(), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
