"""``loopline serve``: the task service on the local stack (``loopline.local.serve``)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType


def add_parser(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser(
        "serve",
        help="serve the task API on the local stack (template.yaml) on 127.0.0.1",
        description=(
            "Provision the local stack from template.yaml and serve its REST API on "
            "http://127.0.0.1:PORT through the real authorizer and API function, until "
            "interrupted (Ctrl-C or SIGTERM). The deployed API's URL has the stage as its "
            "first path segment; the local one serves at its root."
        ),
    )
    s.add_argument("--port", type=int, default=8000, help="port (0: a free one; default 8000)")
    s.add_argument(
        "--keys", metavar="FILE", help="API keys to accept (keys: [{key, tenant, user, roles}])"
    )
    s.add_argument("--outbox", metavar="DIR", help="write each email sent as DIR/mail/<n>.eml")
    s.add_argument(
        "--allow-hosts",
        metavar="H,...",
        help="hosts webhook URLs may name although they resolve to loopback or private addresses",
    )
    s.add_argument(
        "--public-url",
        metavar="URL",
        help="base URL of links in messages (default: the served URL)",
    )
    s.add_argument(
        "--template", metavar="PATH", help="the SAM template (default: the nearest template.yaml)"
    )
    s.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    from loopline.config_error import ConfigError  # printed as error: ..., exit 2
    from loopline.local.executor import LocalStackError
    from loopline.local.serve import LocalService
    from loopline.local.template import find_template

    if not 0 <= args.port <= 65535:
        raise ConfigError([f"--port {args.port}: expected 0..65535"])
    template = Path(args.template) if args.template else find_template(Path.cwd())
    if template is None:
        raise ConfigError(["no template.yaml here or in a parent folder: pass --template PATH"])
    service = LocalService(
        template,
        port=args.port,
        keys_file=Path(args.keys) if args.keys else None,
        outbox=Path(args.outbox) if args.outbox else None,
        allow_hosts=args.allow_hosts,
        public_url=args.public_url,
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}

    def started() -> None:
        print(f"Loopline API on {service.url}", flush=True)
        for key in service.keys:
            print(key.line(), flush=True)

    try:
        service.serve_until(stop, started)
    except (LocalStackError, ValueError) as exc:
        raise ConfigError(str(exc).splitlines()) from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("stopped", file=sys.stderr, flush=True)
    return 0
