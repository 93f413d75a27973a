"""The ``loopline`` command: compile, validate, graph and run workflows.

Exit codes (``run``): 0 SUCCEEDED, 1 FAILED, 2 invalid file or inputs (nothing ran),
3 waiting for a person with no decision left. ``compile``, ``validate`` and ``graph``
exit 0 or 2. Output cut short by a closed pipe (``| head``) ends the command quietly
with 141, as SIGPIPE would. No input, however broken, produces a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import sys

# The command uses no pydantic plugins; looking them up scans every installed package's
# entry points, a large part of a short command's start-up time.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from loopline import __version__
from loopline.commands import keys as keys_command
from loopline.commands import serve as serve_command
from loopline.commands import task as task_command
from loopline.config_error import ConfigError
from loopline.dsl.problems import InputsInvalid, WorkflowInvalid

# Each command imports what it needs when it runs: ``loopline task`` loads no compiler,
# ``loopline compile`` no local stack, settings or JSON Schema.
if TYPE_CHECKING:
    from loopline.compiler import CompileResult
    from loopline.dsl import Workflow

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_WAITING = 0, 1, 2, 3
#: A write to a pipe whose reader has gone (``loopline ... | head -1``): 128 + SIGPIPE.
EXIT_BROKEN_PIPE = 141


class UsageError(Exception):
    """A bad command line or input value: printed, exit 2."""


def _err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _write_output(text: str, output: str | None) -> None:
    """``text`` to file ``output`` (its folders made), else to standard output."""
    if output:
        out = Path(output)
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write {output}: {exc.strerror or exc}") from None
    else:
        sys.stdout.write(text)


def _print_json(value: Any) -> None:
    """``value`` as JSON on standard output: always valid JSON (no NaN)."""
    from loopline import jsontext

    try:
        text = jsontext.dumps(value, indent=2, ensure_ascii=False, default=str)
        print(text)
    except UnicodeEncodeError:  # a lone surrogate, or a terminal that cannot show it
        print(jsontext.dumps(value, indent=2, default=str))


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """No garbage collection while a workflow is loaded and compiled.

    What loading and compiling build (the file's values, the models, the definition)
    lives until the command has written its output, and makes no reference cycles to
    free: the collector's passes over it found nothing and took a fifth of a 5,000-step
    compile's time (the peak memory is the same without them). The modules imported so
    far, then what was built, are moved out of its view for good (``gc.freeze``: else
    the first pass after would scan all of it); collection resumes after. Objects
    frozen are still freed when nothing refers to them."""
    gc.freeze()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


def _load(
    path: str,
    warn: Callable[[str], None] | None = None,
    limit: int | None = None,
    *,
    running: bool = False,
) -> tuple[Workflow, CompileResult]:
    """Load, check (knowing the tools and the template's functions; ``running``: the
    functions of the stack ``run`` uses, the built-in one without a template) and compile
    (into state machines of at most ``limit`` bytes, by default Step Functions' limit).

    What the checks cannot judge (a tool module that does not import) goes to ``warn``,
    by default a ``warning:`` line on stderr."""
    from loopline.compiler import compile_workflow
    from loopline.dsl.api import load_workflow
    from loopline.environment import check_context

    context = check_context(path, warn or (lambda w: _err(f"warning: {w}")), running=running)
    with _collector_paused():
        wf = load_workflow(path, context)
        return wf, compile_workflow(wf, limit=limit)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of bytes, not {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of bytes, not {value}")
    return value


def cmd_compile(args: argparse.Namespace) -> int:
    _, result = _load(args.file, limit=args.max_bytes)
    if result.children and not args.output:
        raise UsageError(
            f"{args.file} compiles to {1 + len(result.children)} state machines (a parent "
            "and its children): write them to files with -o FILE"
        )
    _write_output(result.text, args.output)
    if result.children:
        from loopline.compiler.split import part_file

        # Each child beside the parent: out.asl.json, out--part-2.asl.json, ...
        for part in result.children:
            _write_output(part.text, part_file(args.output, part.suffix))
    if not args.quiet:
        for line in result.report.lines():
            _err(line)
    return EXIT_OK


# --------------------------------------------------------------------------- validate

#: The rules of ``validate``'s results (``--format json|sarif``).
RULES = {
    "invalid-workflow": (
        "error",
        "The workflow breaks a rule of the language (docs/language.md): it cannot compile.",
    ),
    "compile-error": (
        "error",
        "The checks accept the workflow but Amazon States Language cannot express it.",
    ),
    "compile-warning": (
        "warning",
        "The workflow compiles, but something in it is likely a mistake (a step that never "
        "runs, a state machine near a Step Functions limit).",
    ),
}


@dataclass
class Finding:
    """One result of ``validate``: a problem (error) or a warning, located."""

    file: str
    rule: str
    message: str
    line: int = 0
    column: int = 0
    path: str = ""

    @property
    def level(self) -> str:
        return RULES[self.rule][0]

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "level": self.level,
            "rule": self.rule,
            "line": self.line,
            "column": self.column,
            "path": self.path,
            "message": self.message,
        }


@dataclass
class Checked:
    """What ``validate`` found in one file."""

    file: str
    findings: list[Finding]
    summary: str | None = None  # "N steps, M states" when the file is valid
    problems_text: str | None = None  # the problems as the other commands print them


def _check_file(path: str) -> Checked:
    from loopline.compiler.compile import CompileError

    notes: list[str] = []
    try:
        wf, result = _load(path, notes.append)
    except WorkflowInvalid as exc:
        # A CompileError is a WorkflowInvalid too, located like every other problem.
        rule = "compile-error" if isinstance(exc, CompileError) else "invalid-workflow"
        findings = [Finding(path, rule, p.message, p.line, p.column, p.path) for p in exc.problems]
        findings += [Finding(path, "compile-warning", w) for w in notes]
        return Checked(path, findings, problems_text=exc.render())
    n = sum(1 for _ in wf.all_steps())
    warnings = [Finding(path, "compile-warning", w) for w in [*notes, *result.report.warnings]]
    return Checked(path, warnings, summary=f"{n} steps, {result.report.states} states")


def _sarif(checked: list[Checked]) -> dict[str, Any]:
    """A SARIF 2.1.0 log: one run of the ``loopline`` tool, a result per finding."""
    results = []
    for finding in (f for c in checked for f in c.findings):
        location: dict[str, Any] = {
            "physicalLocation": {
                "artifactLocation": {"uri": Path(finding.file).as_posix()},
                # A finding of the whole file is placed at its start.
                "region": {
                    "startLine": max(finding.line, 1),
                    "startColumn": max(finding.column, 1),
                },
            }
        }
        if finding.path:
            location["logicalLocations"] = [{"fullyQualifiedName": finding.path, "kind": "member"}]
        results.append(
            {
                "ruleId": finding.rule,
                "level": finding.level,
                "message": {"text": finding.message},
                "locations": [location],
            }
        )
    used = sorted({f.rule for c in checked for f in c.findings})
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "loopline",
                        "version": __version__,
                        "rules": [
                            {
                                "id": rule,
                                "shortDescription": {"text": rule.replace("-", " ")},
                                "fullDescription": {"text": RULES[rule][1]},
                                "defaultConfiguration": {"level": RULES[rule][0]},
                            }
                            for rule in used
                        ],
                    }
                },
                "results": results,
            }
        ],
    }


def cmd_validate(args: argparse.Namespace) -> int:
    checked = [_check_file(f) for f in args.files]
    invalid = any(f.level == "error" for c in checked for f in c.findings)
    if args.format == "json":
        _print_json([f.to_json() for c in checked for f in c.findings])
    elif args.format == "sarif":
        _print_json(_sarif(checked))
    else:
        for c in checked:
            if c.summary is not None:
                print(f"{c.file}: valid ({c.summary})", flush=True)
                for w in c.findings:
                    _err(f"warning: {c.file}: {w.message}")
            else:
                # What kept a check from judging (a tool module that does not import)
                # comes first; only the problems are counted.
                for w in c.findings:
                    if w.level == "warning":
                        _err(f"warning: {c.file}: {w.message}")
                _err(c.problems_text or "")
                n = sum(1 for f in c.findings if f.level == "error")
                _err(f"{n} problem{'s' if n != 1 else ''} found")
    return EXIT_INVALID if invalid else EXIT_OK


def cmd_graph(args: argparse.Namespace) -> int:
    from loopline.compiler import graph
    from loopline.dsl.api import load_workflow

    with _collector_paused():
        wf = load_workflow(args.file)
    _write_output(graph.dot(wf) if args.format == "dot" else graph.mermaid(wf), args.output)
    return EXIT_OK


# --------------------------------------------------------------------------- run


def _decision_text(d: Any) -> str:
    value = d.value if isinstance(d.value, str) else json.dumps(d.value, ensure_ascii=False)
    return f"{d.step}={value}" + (f" # {d.comment}" if d.comment else "")


def cmd_run(args: argparse.Namespace) -> int:
    from loopline import jsontext
    from loopline.dsl.inputs import resolve_inputs
    from loopline.local import run as local_run

    wf, result = _load(args.file, running=True)
    try:
        given = jsontext.read_argument(args.input, "--input")
    except jsontext.JsonTextError as exc:
        raise UsageError(str(exc)) from None
    if not isinstance(given, dict):
        raise UsageError("--input: expected a JSON object of input values")
    inputs = resolve_inputs(wf, given)
    try:
        decisions = [local_run.parse_decision(d) for d in args.decision]
        local_run.check_decisions(wf, decisions)
    except local_run.DecisionError as exc:
        raise UsageError(str(exc)) from None
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
        outcome = local_run.run_workflow(
            result.definition,
            wf,
            inputs,
            llm_script=args.llm_script,
            decisions=decisions,
            ask=ask,
            on_progress=progress,
            template=template,
            children=result.children,
        )
    except (local_run.DecisionError, LocalStackError) as exc:
        raise UsageError(str(exc)) from None
    for d in outcome.unused_decisions:
        why = (
            f"the run stopped before {d.step} waited for it"
            if outcome.status == "WAITING"
            else f"{d.step} did not wait for it"
        )
        _err(f"warning: --decision {_decision_text(d)} was not used: {why}")
    if args.json:
        _print_json(outcome.to_json())
    else:
        _err(outcome.status)
        if outcome.status == "SUCCEEDED":
            out = outcome.output
            if isinstance(out, str):
                print(out)
            else:
                _print_json(out)
        elif outcome.error:
            _err(f"{outcome.error}: {outcome.cause}" if outcome.cause else outcome.error)
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
    p.add_argument("--version", action="version", version=f"loopline {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    c = sub.add_parser("compile", help="write the Amazon States Language of a workflow")
    c.add_argument("file")
    c.add_argument(
        "-o",
        "--output",
        help="write here instead of standard output (a split workflow's children beside it, "
        "as NAME--part-N.asl.json)",
    )
    c.add_argument("-q", "--quiet", action="store_true", help="do not print the compile report")
    c.add_argument(
        "--max-bytes",
        type=_positive_int,
        default=None,
        metavar="BYTES",
        help="split into state machines of at most BYTES each once deployed (default: Step "
        "Functions' limit, 1 MiB)",
    )
    c.set_defaults(func=cmd_compile)

    v = sub.add_parser("validate", help="run every check on each file and write nothing")
    v.add_argument("files", nargs="+", metavar="file")
    v.add_argument(
        "--format",
        choices=("text", "json", "sarif"),
        default="text",
        help="text (default), json (a list of findings) or sarif (SARIF 2.1.0) on stdout",
    )
    v.set_defaults(func=cmd_validate)

    g = sub.add_parser("graph", help="draw the workflow's steps")
    g.add_argument("file")
    g.add_argument("--format", choices=("mermaid", "dot"), default="mermaid")
    g.add_argument("-o", "--output", help="write here instead of standard output")
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
        help="answer the next wait of STEP: approve, reject, reject:<step> (each may end "
        "with '# comment'), or a JSON object",
    )
    r.add_argument("--json", action="store_true", help="print the outcome as JSON on stdout")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    r.set_defaults(func=cmd_run)
    keys_command.add_parser(sub)
    serve_command.add_parser(sub)
    task_command.add_parser(sub)
    return p


def _quiet_broken_pipe() -> int:
    """The reader of our output has gone: say nothing more, anywhere."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a stream without a descriptor
            os.dup2(devnull, stream.fileno())
    return EXIT_BROKEN_PIPE


def main(argv: Sequence[str] | None = None) -> NoReturn:
    try:
        code = _main(argv)
        sys.stdout.flush()
    except BrokenPipeError:
        code = _quiet_broken_pipe()
    sys.exit(code)


def _main(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    try:
        code = args.func(args)
    except WorkflowInvalid as exc:  # CompileError included: located like the others
        _err(exc.render())
        n = len(exc.problems)
        _err(f"{n} problem{'s' if n != 1 else ''} found")
        code = EXIT_INVALID
    except InputsInvalid as exc:
        for line in exc.problems:
            _err(line)
        _err("the inputs do not match the workflow's inputs; nothing ran")
        code = EXIT_INVALID
    except (UsageError, ConfigError) as exc:
        _err(f"error: {exc}")
        code = EXIT_INVALID
    except KeyboardInterrupt:
        _err("interrupted")
        code = 130
    return int(code)


if __name__ == "__main__":
    main()
