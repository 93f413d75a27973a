"""The ``loopline`` command: compile, validate, graph and run workflows.

Exit codes (``run``): 0 SUCCEEDED, 1 FAILED, 2 invalid file or inputs (nothing ran),
3 waiting for a person with no decision left. ``compile``, ``validate`` and ``graph``
exit 0 or 2. No input, however broken, produces a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

# The command uses no pydantic plugins; looking them up scans every installed package's
# entry points, a large part of a short command's start-up time.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from loopline.compiler import CompileResult, compile_workflow
from loopline.compiler.compile import CompileError
from loopline.config_error import ConfigError
from loopline.dsl import InputsInvalid, Workflow, WorkflowInvalid, load_workflow, resolve_inputs

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_WAITING = 0, 1, 2, 3


class UsageError(Exception):
    """A bad command line or input value: printed, exit 2."""


def _err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _load(path: str) -> tuple[Workflow, CompileResult]:
    """Load, check (knowing the tools and the template's functions) and compile."""
    from loopline.environment import check_context

    wf = load_workflow(path, check_context(path, lambda w: _err(f"warning: {w}")))
    return wf, compile_workflow(wf)


def cmd_compile(args: argparse.Namespace) -> int:
    _, result = _load(args.file)
    text = result.text
    if args.output:
        out = Path(args.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    if not args.quiet:
        for line in result.report.lines():
            _err(line)
    return EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    wf, result = _load(args.file)
    n = sum(1 for _ in wf.all_steps())
    print(f"{args.file}: valid ({n} steps, {result.report.states} states)")
    for w in result.report.warnings:
        _err(f"warning: {w}")
    return EXIT_OK


def cmd_graph(args: argparse.Namespace) -> int:
    from loopline.compiler import graph

    wf = load_workflow(args.file)
    sys.stdout.write(graph.dot(wf) if args.format == "dot" else graph.mermaid(wf))
    return EXIT_OK


def _parse_json_arg(text: str, what: str) -> Any:
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"{what}: cannot read {text[1:]}: {exc.strerror}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{what}: not valid JSON: {exc.msg} (column {exc.colno})") from None


def cmd_run(args: argparse.Namespace) -> int:
    from loopline.local import run as local_run

    wf, result = _load(args.file)
    given = _parse_json_arg(args.input, "--input")
    if not isinstance(given, dict):
        raise UsageError("--input: expected a JSON object of input values")
    inputs = resolve_inputs(wf, given)
    from loopline.local.executor import LocalStackError
    from loopline.local.template import find_template

    # The local stack is the SAM template's (the nearest template.yaml), else the
    # Loopline functions alone.
    template = find_template(Path.cwd(), Path(args.file).parent)
    if not args.quiet:
        _err(f"local stack: {template or 'built-in functions (no template.yaml found)'}")

    ask = local_run.terminal_ask if sys.stdin.isatty() and not args.json else None
    progress = None if args.quiet else local_run.print_progress
    try:
        decisions = [local_run.parse_decision(d) for d in args.decision]
        outcome = local_run.run_workflow(
            result.definition,
            wf,
            inputs,
            llm_script=args.llm_script,
            decisions=decisions,
            ask=ask,
            on_progress=progress,
            template=template,
        )
    except (local_run.DecisionError, LocalStackError) as exc:
        raise UsageError(str(exc)) from None
    if args.json:
        print(json.dumps(outcome.to_json(), indent=2, ensure_ascii=False, default=str))
    else:
        _err(outcome.status)
        if outcome.status == "SUCCEEDED":
            out = outcome.output
            print(out if isinstance(out, str) else json.dumps(out, indent=2, ensure_ascii=False))
        elif outcome.error:
            _err(f"{outcome.error}: {outcome.cause}")
    if outcome.status == "SUCCEEDED":
        return EXIT_OK
    if outcome.status == "WAITING":
        return EXIT_WAITING
    return EXIT_FAILED


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="loopline",
        description="Compile agent workflows to AWS Step Functions and run them locally.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    c = sub.add_parser("compile", help="write the Amazon States Language of a workflow")
    c.add_argument("file")
    c.add_argument("-o", "--output", help="write here instead of standard output")
    c.add_argument("-q", "--quiet", action="store_true", help="do not print the compile report")
    c.set_defaults(func=cmd_compile)

    v = sub.add_parser("validate", help="run every check and write nothing")
    v.add_argument("file")
    v.set_defaults(func=cmd_validate)

    g = sub.add_parser("graph", help="draw the workflow's steps")
    g.add_argument("file")
    g.add_argument("--format", choices=("mermaid", "dot"), default="mermaid")
    g.set_defaults(func=cmd_graph)

    r = sub.add_parser("run", help="run a workflow on the local stack")
    r.add_argument("file")
    r.add_argument("--input", default="{}", help="input values as a JSON object (or @file)")
    r.add_argument("--llm-script", help="answer model calls from this scripted-model file")
    r.add_argument(
        "--decision",
        action="append",
        default=[],
        metavar="STEP=VALUE",
        help="answer the next wait of STEP: approve, reject, reject:<step>, or a JSON object",
    )
    r.add_argument("--json", action="store_true", help="print the outcome as JSON on stdout")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    r.set_defaults(func=cmd_run)
    return p


def main(argv: Sequence[str] | None = None) -> NoReturn:
    args = _parser().parse_args(argv)
    try:
        code = args.func(args)
    except WorkflowInvalid as exc:
        _err(exc.render())
        n = len(exc.problems)
        _err(f"{n} problem{'s' if n != 1 else ''} found")
        code = EXIT_INVALID
    except InputsInvalid as exc:
        for line in exc.problems:
            _err(line)
        _err("the inputs do not match the workflow's inputs; nothing ran")
        code = EXIT_INVALID
    except (UsageError, CompileError, ConfigError) as exc:
        _err(f"error: {exc}")
        code = EXIT_INVALID
    except KeyboardInterrupt:
        _err("interrupted")
        code = 130
    sys.exit(code)


if __name__ == "__main__":
    main()
