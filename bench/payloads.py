"""``make bench`` section: what reaches each Lambda, beside what the Lambda reads.

Each example's sample run (``tests/examples/cases.py``) runs in moto with the real
handlers; every payload a Loopline function receives is kept as it arrived. For each
one:

- **sent** is the JSON (compact, UTF-8) of the state data the payload carries: its
  ``values``, and for a vote's tally its ``results``. The rest of a payload (``action``,
  ``config``...) is the step's static configuration, the same whatever the run, and is
  read whole.
- **read** (the floor) is the JSON of the smallest document holding the values the
  Lambda reads, at the same places: the value of every path its templates and
  expressions name (found here from the payload's own ``config``, independently of the
  compiler), a voter's item, and a tally's items and verdicts. A path that holds no value
  adds nothing. The floor keeps the envelope (``{"steps": {"draft": {"output": ...}}}``)
  because a value cannot reach a Lambda without its place, so sending exactly what is
  read gives a ratio of 1.0, and the goal is 1.0 with no tolerance.

A path whose prefix may hold nothing where the step runs is sent from the longest prefix
that always holds a value (docs/internals.md, "Lambda payloads"); that is where a ratio
above 1.0 comes from. The byte counts do not vary between runs: each example is one
pair (spread 0).

Runnable alone::

    PYTHONPATH=layers/loopline:. .venv/bin/python -c "import sys; sys.path.insert(0,'bench'); \
from payloads import bench_payloads; from ratio import table; table('x', bench_payloads())"
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from loopline.dsl.expr import Path as ExprPath  # noqa: E402
from loopline.dsl.expr import parse_expression, paths  # noqa: E402
from loopline.dsl.template import template_tree_paths  # noqa: E402
from loopline.runtime.evaluate import MISSING, context_from_payload, lookup  # noqa: E402
from loopline.runtime.payload import config_of, expanded  # noqa: E402
from ratio import Ratio  # noqa: E402


def size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


# --------------------------------------------------------------------------- what is read


def read_paths(event: dict[str, Any]) -> Iterator[ExprPath]:
    """The paths a Loopline function reads from ``values``, from its ``config`` (the
    fields each action renders: docs/internals.md, "Lambda payloads")."""
    action, cfg = event.get("action"), config_of(event)
    if action == "llm":
        yield from template_tree_paths([cfg.get("prompt"), cfg.get("system")])
    elif action == "vote_voter":
        yield ExprPath("item")
    elif action in ("tool", "task"):
        yield from template_tree_paths(cfg.get("args"))
    elif action == "http":
        fields = [cfg.get("url"), cfg.get("headers"), cfg.get("query"), cfg.get("body")]
        yield from template_tree_paths(fields)
    elif action == "human":
        yield from template_tree_paths([cfg.get("instruction"), cfg.get("context")])
    elif action == "eval":
        yield from paths(parse_expression(str(cfg.get("expr"))))
    elif action == "render":
        yield from template_tree_paths(cfg.get("template"))


def _place(doc: dict[Any, Any], where: tuple[Any, ...], value: Any) -> None:
    """Put ``value`` at ``where`` in the sparse document (a value covers what is below)."""
    node = doc
    for part in where[:-1]:
        child = node.get(part)
        if isinstance(child, tuple):  # a value placed above covers this one
            return
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[where[-1]] = (_LEAF, value)


_LEAF = object()


def _json(doc: Any) -> Any:
    """The sparse document as JSON: leaves are their values, int keys become lists."""
    if isinstance(doc, tuple):
        return doc[1]
    if isinstance(doc, dict):
        if doc and all(isinstance(k, int) for k in doc):
            return [_json(doc[k]) for k in sorted(doc)]
        return {k: _json(v) for k, v in doc.items()}
    return doc


def floor(event: dict[str, Any]) -> int:
    """Bytes of the smallest document holding what the function reads (see above)."""
    ctx = context_from_payload(event)
    doc: dict[Any, Any] = {}
    for p in read_paths(event):
        value = lookup(p, ctx)
        if value is MISSING:
            continue
        section = ("inputs",) if p.root == "inputs" else ("steps",) if p.root == "steps" else ()
        where = (*section, *p.parts) if section else ("vars", p.root, *p.parts)
        if not where[1:] and section:  # the whole of inputs or steps
            doc[where[0]] = (_LEAF, value)
        else:
            _place(doc, where, value)
    total = size(_json(doc))
    if event.get("action") == "vote_aggregate":
        results = event.get("results") or []
        total += size(
            [
                {"vars": {"item": (r.get("vars") or {}).get("item")}, "verdicts": r.get("verdicts")}
                for r in results
                if isinstance(r, dict)
            ]
        )
    return total


def sent(event: dict[str, Any]) -> int:
    total = size(event.get("values") or {})
    if "results" in event:
        total += size(event["results"])
    return total


# --------------------------------------------------------------------------- the runs


def capture(name: str, health_url: str) -> list[dict[str, Any]]:
    """Every payload a Loopline function received in the sample run of ``name``."""
    from loopline.local.executor import LocalExecutor

    from tests.examples.cases import run_sample

    events: list[dict[str, Any]] = []
    original = LocalExecutor.invoke

    def invoke(self: Any, name_or_arn: str, event: Any) -> Any:
        if isinstance(event, dict) and "action" in event:
            events.append(expanded(json.loads(json.dumps(event))))
        return original(self, name_or_arn, event)

    LocalExecutor.invoke = invoke  # type: ignore[method-assign]
    try:
        result = run_sample(name, health_url)
    finally:
        LocalExecutor.invoke = original  # type: ignore[method-assign]
    if result.status != "SUCCEEDED":
        raise SystemExit(f"{name}: {result.status} {result.error}: {result.cause}")
    if not events:
        raise SystemExit(f"{name}: no payload seen (LocalExecutor.invoke no longer runs them?)")
    return events


def bench_payloads() -> list[Ratio]:
    from tests.examples.cases import SAMPLES, health_server

    print()
    print("Payloads: where the bytes that reach each Lambda go (sample runs of the examples)")
    print("payload: the whole event; data: its state data (values, a tally's results);")
    print("read: the smallest document holding what the function reads; unread: of payload")
    head = (
        f"{'workflow':<19} {'step':<13} {'action':<14} {'calls':>5} {'payload':>8} "
        f"{'data':>6} {'read':>6} {'unread':>6}"
    )
    print(head)
    print("-" * len(head))
    ratios: list[Ratio] = []

    def line(name: str, step: str, action: str, calls: str, row: list[int]) -> None:
        whole, data, read = row
        unread = f"{(data - read) / whole:.0%}" if whole else "-"
        print(
            f"{name:<19} {step:<13} {action:<14} {calls:>5} {whole:>8} {data:>6} {read:>6} "
            f"{unread:>6}"
        )

    with health_server() as url:
        for name in SAMPLES:
            rows: dict[tuple[str, str], list[int]] = {}
            calls: dict[tuple[str, str], int] = {}
            for event in capture(name, url):
                key = (str(event.get("step") or "(output)"), str(event.get("action")))
                calls[key] = calls.get(key, 0) + 1
                row = rows.setdefault(key, [0, 0, 0])
                row[0] += size(event)
                row[1] += sent(event)
                row[2] += floor(event)
            for (step, action), row in rows.items():
                line(name, step, action, str(calls[(step, action)]), row)
            total = [sum(row[i] for row in rows.values()) for i in range(3)]
            line(name, "(all)", "", str(sum(calls.values())), total)
            ratio = Ratio(f"payload data: {name}", "bytes the Lambdas read (floor)", 1.0)
            ratio.subject_times.append(float(total[1]))
            ratio.reference_times.append(float(total[2]))
            ratios.append(ratio)
    return ratios


if __name__ == "__main__":
    from ratio import table

    table("Payloads", bench_payloads())
