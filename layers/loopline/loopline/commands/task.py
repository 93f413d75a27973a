"""``loopline task start|show|events|cancel``: tasks of a task service (the deployed API
or ``loopline serve``) through its HTTP API (``loopline.client``).

Every subcommand takes ``--api URL`` (else ``LOOPLINE_API_URL``) and ``--key KEY`` (else
``LOOPLINE_API_KEY``). A problem the API answers prints ``error: <status> <title>:
<field>: <message>``, one line per error, and exits 2 for a 4xx (the request was wrong),
1 otherwise; a service that cannot be reached prints what went wrong and exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from loopline import jsontext

if TYPE_CHECKING:
    from loopline.client import Client

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2


class _Usage(Exception):
    """A bad option value: printed as ``error: …``, exit 2."""


def _err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _json_line(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ": "))


# --------------------------------------------------------------------------- arguments


def _pairs(values: list[str], option: str, parse: Callable[[str], Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise _Usage(f"{option} {item!r}: expected NAME=VALUE")
        out[name.strip()] = parse(value)
    return out


def _input_value(text: str) -> Any:
    """``--input k=v``: ``v`` as JSON when it is JSON (``3``, ``true``, ``[1, 2]``,
    ``"3"``), else as the text it is."""
    try:
        return jsontext.loads(text, "--input")
    except jsontext.JsonTextError:
        return text


def _inputs(args: argparse.Namespace) -> dict[str, Any]:
    inputs: dict[str, Any] = {}
    if args.inputs is not None:
        try:
            given = jsontext.read_argument(args.inputs, "--inputs")
        except jsontext.JsonTextError as exc:
            raise _Usage(str(exc)) from None
        if not isinstance(given, dict):
            raise _Usage("--inputs: expected a JSON object of input values")
        inputs.update(given)
    inputs.update(_pairs(args.input, "--input", _input_value))
    return inputs


def _client(args: argparse.Namespace) -> Client:
    from loopline.client import Client
    from loopline.settings import check_http_url  # settings cost a short command's start

    url = args.api or os.environ.get("LOOPLINE_API_URL")
    key = args.key or os.environ.get("LOOPLINE_API_KEY")
    if not url:
        raise _Usage("no API URL: pass --api URL or set LOOPLINE_API_URL")
    if not key:
        raise _Usage("no API key: pass --key KEY or set LOOPLINE_API_KEY")
    try:
        check_http_url(url)
    except ValueError as exc:
        raise _Usage(f"{'--api' if args.api else 'LOOPLINE_API_URL'} {exc}") from None
    return Client(url, key)


# --------------------------------------------------------------------------- output


def _summary(data: Any, width: int = 120) -> str:
    """An event's data on one line: ``attempt=1 error=Loopline.Failed cause="…"``."""
    if not isinstance(data, dict):
        return "" if data is None else _json_line(data)
    parts = []
    for key, value in data.items():
        if isinstance(value, str) and value and not any(c.isspace() for c in value):
            shown = value
        else:
            shown = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        parts.append(f"{key}={shown}")
    text = " ".join(parts)
    return text if len(text) <= width else text[: width - 1] + "…"


def _event_line(event: dict[str, Any]) -> str:
    return "  ".join(
        [
            str(event.get("seq", "")),
            str(event.get("at", "")),
            str(event.get("type", "")),
            str(event.get("step") or "-"),
            _summary(event.get("data")),
        ]
    ).rstrip()


def _show(view: dict[str, Any]) -> None:
    def row(name: str, value: Any) -> None:
        print(f"{name:<10}{'' if value is None else value}")

    row("id", view.get("id"))
    version = view.get("version")
    row("workflow", f"{view.get('workflow')}" + (f" {version}" if version else ""))
    row("status", view.get("status"))
    for name in ("created_at", "started_at", "finished_at"):
        row(name.removesuffix("_at"), view.get(name))
    if view.get("labels"):
        row("labels", " ".join(f"{k}={v}" for k, v in view["labels"].items()))
    if view.get("error"):
        row("error", view["error"])
        if view.get("cause"):
            row("cause", view["cause"])
    usage = view.get("usage") or {}
    if usage.get("input_tokens") or usage.get("output_tokens"):
        row("tokens", f"{usage.get('input_tokens', 0)} in, {usage.get('output_tokens', 0)} out")
    steps = view.get("steps") or {}
    if steps:
        print("steps")
        width = max(len(str(s)) for s in steps)
        for step, info in steps.items():
            starts = info.get("starts", 0)
            print(
                f"  {step:<{width}}  {info.get('status')}  "
                f"{starts} start{'s' if starts != 1 else ''}"
            )
    if view.get("output") is not None:
        print("output")
        print(json.dumps(view["output"], indent=2, ensure_ascii=False))


# --------------------------------------------------------------------------- commands


def cmd_start(args: argparse.Namespace) -> int:
    inputs = _inputs(args)
    labels = _pairs(args.label, "--label", str)
    with _client(args) as client:
        view = client.start_task(
            args.workflow,
            inputs,
            labels=labels or None,
            webhook=args.webhook,
            idempotency_key=args.idempotency_key,
        )
    if args.json:
        print(_json_line(view))
    else:
        print(view.get("id"))
        _err(f"{view.get('workflow')}: {view.get('status')}")
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    with _client(args) as client:
        view = client.get_task(args.id)
    if args.json:
        print(_json_line(view))
    else:
        _show(view)
    return EXIT_OK


def cmd_events(args: argparse.Namespace) -> int:
    with _client(args) as client:
        events = (
            client.events(args.id, after=args.after)
            if args.no_follow
            else client.follow_events(args.id, after=args.after)
        )
        for event in events:
            print(_json_line(event) if args.json else _event_line(event), flush=True)
    return EXIT_OK


def cmd_cancel(args: argparse.Namespace) -> int:
    with _client(args) as client:
        view = client.cancel_task(args.id)
    print(f"{view.get('id')} {view.get('status')}")
    return EXIT_OK


def _run(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """``command`` with the service's problems and a missing service turned into
    messages and exit codes."""

    def run(args: argparse.Namespace) -> int:
        from loopline.client import ServiceProblem, ServiceUnreachable

        try:
            return command(args)
        except _Usage as exc:
            _err(f"error: {exc}")
            return EXIT_INVALID
        except ServiceProblem as problem:
            for line in problem.lines():
                _err(f"error: {line}")
            return EXIT_INVALID if 400 <= problem.status < 500 else EXIT_FAILED
        except ServiceUnreachable as exc:
            _err(f"error: {exc}")
            return EXIT_FAILED

    return run


def add_parser(sub: Any) -> None:
    """``loopline task …`` on the command's subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--api", metavar="URL", help="the API's base URL (LOOPLINE_API_URL)")
    common.add_argument("--key", metavar="KEY", help="an API key (LOOPLINE_API_KEY)")

    task = sub.add_parser("task", help="start, show, follow and cancel tasks of a task service")
    commands = task.add_subparsers(dest="task_command", required=True, metavar="COMMAND")

    s = commands.add_parser("start", parents=[common], help="start a task of a workflow")
    s.add_argument("workflow")
    s.add_argument("--inputs", metavar="JSON", help="input values as a JSON object (or @file)")
    s.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="one input value (JSON when it parses as JSON, else text); wins over --inputs",
    )
    s.add_argument("--label", action="append", default=[], metavar="NAME=VALUE")
    s.add_argument("--webhook", metavar="URL", help="where the task's events are POSTed")
    s.add_argument(
        "--idempotency-key",
        metavar="KEY",
        help="the same key with the same request returns the same task (24 h)",
    )
    s.add_argument("--json", action="store_true", help="print the task view as JSON")
    s.set_defaults(func=_run(cmd_start))

    sh = commands.add_parser("show", parents=[common], help="a task's status, steps and output")
    sh.add_argument("id")
    sh.add_argument("--json", action="store_true", help="print the task view as JSON")
    sh.set_defaults(func=_run(cmd_show))

    e = commands.add_parser(
        "events", parents=[common], help="a task's events, followed until it ends"
    )
    e.add_argument("id")
    e.add_argument("--after", type=int, default=0, metavar="SEQ", help="events after SEQ")
    e.add_argument("--no-follow", action="store_true", help="print what there is and stop")
    e.add_argument("--json", action="store_true", help="one JSON object per event and line")
    e.set_defaults(func=_run(cmd_events))

    c = commands.add_parser("cancel", parents=[common], help="stop a task")
    c.add_argument("id")
    c.set_defaults(func=_run(cmd_cancel))
