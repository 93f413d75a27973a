"""State transitions and definition size: what each construct costs when it runs, beside
its floor, and how large the definition of a long workflow is.

**Transitions** are moto's ``StateEntered`` events of one execution (what Step Functions
bills). Each construct runs in a small workflow of its own (``llm`` steps answered by the
scripted model); its cost is the execution's count minus what the rest of the workflow
takes, and a per-item figure is the difference between two sizes of the same construct.
Its **floor** is the number of states that must be entered to keep the state document of
docs/internals.md (every step's record at ``$.steps.<id>``) and the language's semantics:

- fixed overhead: 1, the state that builds the state document from the execution input
  (the inputs merged over their defaults; no state of a step can do it, since every step
  reads the document). The workflow's output is picked by the last state itself.
- an action step (``llm``, ``tool``, ``http``, ``task``), a human wait: 1, its Task.
- ``if``: 1 more, the Choice (a skipped step: the Choice and the Pass recording the skip).
- ``group``: 1 more, the Pass recording the group's output (a Task writes one path only).
- ``branch``: 2 more, the Choice and the Pass recording the arm's output.
- ``for_each``: 2 more (the Choice that tells a list from a missing or wrong value, and
  the Map), then the body per item: its last state gives the iteration's output.
- ``parallel``: 2 more, the Parallel (its ``ResultSelector`` merges the entries' records
  back) and the Pass recording the step's output ``{<entry>: output}`` (``States.JsonMerge``
  merges shallowly and no intrinsic builds an object, so the Parallel cannot put that
  record inside the merged ``steps``), then each entry.
- ``while``: 3 more (the Pass starting the counter, the last test, the Pass recording
  the output), then per iteration the body, the Choice testing the condition and the
  cap together, and the Pass counting the iteration (a Choice cannot count).
- ``vote``: 3 more (the Choice on the items, the Map over items, the tally), then per
  item the Map over its voters and one Task per voter.
- ``assert``: the Choice and the Pass recording ``true``; ``succeed``: 1, its output
  ending the run.
- ``output``: 0 when the last state can build it (it reads only what a last Task writes,
  or the last state is a Pass); else 1, the state building it.

**Definition size** is the compact text that is deployed (``CompileResult.deployed``),
as compiled and with its placeholders replaced by ARNs as long as real ones, for a
linear workflow of ``llm`` steps, against Step Functions' 1 MiB limit.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ratio import Ratio  # noqa: E402

#: Step Functions' largest definition.
LIMIT = 1_048_576
#: A function ARN as long as a deployed one (stack name, function name, suffix).
ARN = "arn:aws:lambda:us-east-1:123456789012:function:loopline-LlmFunction-AbCdEfGh1234"
#: Transitions of the example runs and definition sizes before this work (measured on
#: the compiler before compact definitions and folded states), for reference.
BEFORE_EXAMPLES = {
    "batch_review": 30,
    "content_moderation": 17,
    "incident_response": 9,
    "release_gate": 10,
    "research_brief": 29,
    "triage": 9,
}
BEFORE_BYTES = {704: 1_049_281, 1500: 2_240_615}


@dataclass
class Case:
    """A construct measured in a workflow of its own: ``count(n)`` transitions for size
    ``n``; the construct's cost is ``count - base``, its floor ``floor(n)``."""

    name: str
    workflow: Callable[[int], dict[str, Any]]
    floor: Callable[[int], int]
    sizes: tuple[int, ...] = (1,)
    #: What the workflow takes around the construct (the fixed overhead included).
    base: int = 1
    inputs: Callable[[int], dict[str, Any]] = lambda n: {}
    script: Callable[[int], list[dict[str, Any]]] = lambda n: [{"answer": "ok"}]
    decisions: Callable[[int], list[str]] = lambda n: []
    #: Transitions of the same workflow before this work, by size (for reference).
    before: dict[int, int] = field(default_factory=dict)
    counts: dict[int, int] = field(default_factory=dict)


def _wf(steps: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"name": "bench", "steps": steps, **extra}


def _llm(sid: str, prompt: str = "p") -> dict[str, Any]:
    return {"id": sid, "llm": prompt}


CASES = [
    Case("fixed overhead", lambda n: _wf([_llm("a")]), lambda n: 1, base=1),
    Case(
        "fixed overhead, declared inputs",
        lambda n: _wf(
            [_llm("a", "{{ inputs.x }}")],
            inputs={"x": {"type": "string", "default": "d"}, "y": {"type": "integer"}},
        ),
        lambda n: 1,
        base=1,
    ),
    Case(
        "llm step (per step)",
        lambda n: _wf([_llm(f"s{i}") for i in range(n)]),
        lambda n: n,
        sizes=(1, 3),
    ),
    Case(
        "for_each (per item)",
        lambda n: _wf(
            [{"id": "each", "loop": {"for_each": "inputs.xs", "steps": [_llm("body")]}}],
            inputs={"xs": {"type": "json"}},
        ),
        lambda n: 2 + n,
        sizes=(1, 3),
        inputs=lambda n: {"xs": list(range(n))},
    ),
    Case(
        "parallel (per entry)",
        lambda n: _wf([{"id": "par", "parallel": [_llm(f"e{i}") for i in range(n)]}]),
        lambda n: 2 + n,
        sizes=(2, 3),
    ),
    Case(
        "parallel of groups (per entry)",
        lambda n: _wf(
            [
                {
                    "id": "par",
                    "parallel": [
                        {"id": f"g{i}", "group": [_llm(f"a{i}"), _llm(f"b{i}")]} for i in range(n)
                    ],
                }
            ]
        ),
        lambda n: 2 + 3 * n,
        sizes=(2, 3),
    ),
    Case(
        "while (per iteration)",
        lambda n: _wf(
            [
                {
                    "id": "w",
                    "loop": {
                        "while": "not exists(steps.c.output) or steps.c.output.done == false",
                        "max_iterations": 5,
                        "steps": [
                            {
                                "id": "c",
                                "llm": "critique",
                                "output_schema": {
                                    "type": "object",
                                    "properties": {"done": {"type": "boolean"}},
                                },
                            }
                        ],
                    },
                }
            ]
        ),
        lambda n: 3 + 3 * n,
        sizes=(1, 3),
        script=lambda n: [{"step": "c", "answers": [{"done": False}] * (n - 1) + [{"done": True}]}],
    ),
    Case(
        "vote (per item, 3 voters)",
        lambda n: _wf(
            [{"id": "v", "vote": {"input": "inputs.xs", "voters": 3, "rules": "r"}}],
            inputs={"xs": {"type": "json"}},
        ),
        lambda n: 3 + 4 * n,
        sizes=(1, 2),
        inputs=lambda n: {"xs": [f"claim {i}" for i in range(n)]},
        script=lambda n: [{"answer": {"refuted": False, "reason": "fine"}}],
    ),
    Case(
        "approval (approved)",
        lambda n: _wf([_llm("a"), {"id": "ok", "approval": {"instruction": "i", "timeout": "1h"}}]),
        lambda n: 1,
        base=2,
        decisions=lambda n: ["ok=approve"],
    ),
    Case(
        "if (runs)",
        lambda n: _wf(
            [{"id": "a", "if": "inputs.go == true", "llm": "p"}], inputs={"go": {"type": "boolean"}}
        ),
        lambda n: 2,
        base=1,
        inputs=lambda n: {"go": True},
    ),
    Case(
        "if (skipped)",
        lambda n: _wf(
            [_llm("z"), {"id": "a", "if": "inputs.go == true", "llm": "p"}],
            inputs={"go": {"type": "boolean"}},
        ),
        lambda n: 2,
        base=2,
        inputs=lambda n: {"go": False},
    ),
    Case(
        "branch",
        lambda n: _wf(
            [
                {
                    "id": "b",
                    "branch": {
                        "if": "inputs.go == true",
                        "then": [_llm("t")],
                        "else": [_llm("e")],
                    },
                }
            ],
            inputs={"go": {"type": "boolean"}},
        ),
        lambda n: 3,
        base=1,
        inputs=lambda n: {"go": True},
    ),
    Case(
        "group",
        lambda n: _wf([{"id": "g", "group": [_llm("a"), _llm("b")]}]),
        lambda n: 3,
        base=1,
    ),
    Case(
        "group with retry (wrapped)",
        lambda n: _wf([{"id": "g", "retry": {"max_attempts": 2}, "group": [_llm("a"), _llm("b")]}]),
        lambda n: 4,
        base=1,
    ),
    Case(
        "assert",
        lambda n: _wf([_llm("a"), {"id": "t", "assert": "exists(steps.a.output)"}]),
        lambda n: 2,
        base=2,
    ),
    Case(
        "succeed",
        lambda n: _wf([_llm("a"), {"id": "s", "succeed": "{{ steps.a.output }}"}]),
        lambda n: 1,
        base=2,
    ),
    Case(
        "output of the last Task",
        lambda n: _wf([_llm("a")], output={"x": "{{ steps.a.output }}", "k": "v"}),
        lambda n: 0,
        base=2,
    ),
    Case(
        "output of earlier steps",
        lambda n: _wf([_llm("a"), _llm("b")], output={"x": "{{ steps.a.output }}"}),
        lambda n: 1,
        base=3,
    ),
]


#: Each case's counts before this work (the compiler with ``_start``, ``_output``,
#: ``.result``, ``.export``, ``.merge`` and a separate ``while`` cap).
_BEFORE = {
    "fixed overhead": {1: 3},
    "fixed overhead, declared inputs": {1: 4},
    "llm step (per step)": {1: 3, 3: 5},
    "for_each (per item)": {1: 7, 3: 11},
    "parallel (per entry)": {2: 9, 3: 11},
    "parallel of groups (per entry)": {2: 13, 3: 17},
    "while (per iteration)": {1: 9, 3: 17},
    "vote (per item, 3 voters)": {1: 10, 2: 14},
    "approval (approved)": {1: 4},
    "if (runs)": {1: 5},
    "if (skipped)": {1: 6},
    "branch": {1: 6},
    "group": {1: 5},
    "group with retry (wrapped)": {1: 8},
    "assert": {1: 5},
    "succeed": {1: 4},
    "output of the last Task": {1: 3},
    "output of earlier steps": {1: 4},
}
for _case in CASES:
    _case.before = _BEFORE[_case.name]


def _run(case: Case, n: int) -> int:
    from loopline.compiler import compile_workflow
    from loopline.dsl import load_workflow_text, resolve_inputs
    from loopline.local.run import parse_decision, run_workflow

    wf = load_workflow_text(yaml.safe_dump(case.workflow(n), sort_keys=False), "bench.yaml")
    result = run_workflow(
        compile_workflow(wf).definition,
        wf,
        resolve_inputs(wf, case.inputs(n)),
        llm_script={"responses": case.script(n)},
        decisions=[parse_decision(d) for d in case.decisions(n)],
    )
    if result.status != "SUCCEEDED":
        raise SystemExit(f"{case.name} (n={n}): {result.status} {result.error} {result.cause}")
    return result.transitions


def _linear(n: int) -> dict[str, Any]:
    steps = []
    for i in range(n):
        prev = f"steps.s{i - 1}.output" if i else "inputs.topic"
        steps.append({"id": f"s{i}", "llm": f"Step {i}: improve {{{{ {prev} }}}}"})
    return {
        "name": "linear",
        "inputs": {"topic": {"type": "string", "default": "x"}},
        "steps": steps,
    }


def deployed_bytes(n: int) -> tuple[int, int]:
    """Bytes of the deployed definition of ``n`` linear llm steps: as compiled
    (``CompileResult.deployed``, with ``${...}`` placeholders) and with the placeholders
    replaced by ARNs as long as deployed ones."""
    import re

    from loopline.compiler.compile import Compiler, compact
    from loopline.dsl import load_workflow_text

    wf = load_workflow_text(yaml.safe_dump(_linear(n), sort_keys=False), "linear.yaml")
    text = compact(Compiler(wf).compile())
    return len(text.encode()), len(re.sub(r"\$\{\w+\}", ARN, text).encode())


def bench_transitions() -> list[Ratio]:
    from tests.examples.cases import SAMPLES, health_server, run_sample

    rows: list[Ratio] = []
    print()
    print("State transitions per construct (StateEntered per execution in moto; the floor in")
    print("parentheses; a sized construct is fixed part + per item x n; the whole small")
    print("workflow's count at its largest size before this work and now)")
    print(f"{'construct':<32} {'fixed':>8} {'per item':>9} {'before':>7} {'now':>5}")
    for case in CASES:
        for n in case.sizes:
            case.counts[n] = _run(case, n)
        hi = case.sizes[-1]
        if len(case.sizes) == 1:
            fixed, floor_fixed = case.counts[hi] - case.base, case.floor(hi)
            per = floor_per = None
        else:
            lo = case.sizes[0]
            per = (case.counts[hi] - case.counts[lo]) // (hi - lo)
            floor_per = (case.floor(hi) - case.floor(lo)) // (hi - lo)
            fixed = case.counts[lo] - case.base - per * lo
            floor_fixed = case.floor(lo) - floor_per * lo
        per_text = f"{per} ({floor_per})" if per is not None else ""
        print(
            f"{case.name:<32} {f'{fixed} ({floor_fixed})':>8} {per_text:>9} "
            f"{case.before.get(hi, 0):>7} {case.counts[hi]:>5}"
        )
        rows.append(
            Ratio(
                f"transitions: {case.name}" + (f", n={hi}" if len(case.sizes) > 1 else ""),
                "its floor",
                1.0,
                [case.counts[hi]],
                [case.base + case.floor(hi)],
            )
        )

    print()
    print("State transitions per example (sample runs of tests/examples/cases.py)")
    print(f"{'workflow':<22} {'before':>6} {'now':>6} {'wall s':>7}")
    total_before = total_now = 0
    with health_server() as url:
        for name in sorted(SAMPLES):
            t0 = time.perf_counter()
            result = run_sample(name, url)
            if result.status != "SUCCEEDED":
                raise SystemExit(f"{name}: {result.status} {result.error} {result.cause}")
            before = BEFORE_EXAMPLES[name]
            total_before += before
            total_now += result.transitions
            print(
                f"{name:<22} {before:>6} {result.transitions:>6} {time.perf_counter() - t0:>7.2f}"
            )
            rows.append(
                Ratio(f"transitions: example {name}", "before", 1.0, [result.transitions], [before])
            )
    print(f"{'all six':<22} {total_before:>6} {total_now:>6}")
    rows.append(Ratio("transitions: the six examples", "before", 1.0, [total_now], [total_before]))

    print()
    print("Deployed definition of a linear llm workflow (compact; before: indented)")
    print(f"{'steps':>6} {'before':>10} {'compiled':>10} {'ARNs in':>10} {'/ 1 MiB':>8}")
    for n in (704, 1500):
        size, with_arns = deployed_bytes(n)
        print(f"{n:>6} {BEFORE_BYTES[n]:>10,} {size:>10,} {with_arns:>10,} {size / LIMIT:>8.2f}")
        rows.append(Ratio(f"definition: {n} llm steps", "1 MiB", 1.0, [size], [LIMIT]))
        rows.append(
            Ratio(f"definition: {n} llm steps, ARNs in", "1 MiB", 1.0, [with_arns], [LIMIT])
        )
    return rows


if __name__ == "__main__":
    from ratio import table

    table("Transitions and definition size", bench_transitions())
