"""The examples' sample runs: inputs, reviewer decisions and the local functions they need.
Shared by the example tests and ``make bench``."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from loopline.compiler import compile_workflow
from loopline.dsl import load_workflow, resolve_inputs
from loopline.local.run import RunResult, parse_decision, run_workflow
from loopline.settings import settings

from tests.conftest import ROOT, WORKFLOWS


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"ok": True, "release": self.headers.get("X-Release")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def health_server() -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 answering the release gate's health check.

    http steps refuse loopback addresses unless allowed, so while it runs 127.0.0.1 is in
    ``LOOPLINE_HTTP_ALLOW_HOSTS``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    previous = os.environ.get("LOOPLINE_HTTP_ALLOW_HOSTS")
    os.environ["LOOPLINE_HTTP_ALLOW_HOSTS"] = "127.0.0.1"
    settings.cache_clear()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/health"
    finally:
        if previous is None:
            os.environ.pop("LOOPLINE_HTTP_ALLOW_HOSTS", None)
        else:
            os.environ["LOOPLINE_HTTP_ALLOW_HOSTS"] = previous
        settings.cache_clear()
        server.shutdown()


def run_example(name: str, inputs: dict[str, Any], decisions: Sequence[str] = ()) -> RunResult:
    wf = load_workflow(WORKFLOWS / f"{name}.yaml")
    script = WORKFLOWS / "scripts" / f"{name}.yaml"
    return run_workflow(
        compile_workflow(wf).definition,
        wf,
        resolve_inputs(wf, inputs),
        llm_script=str(script) if script.exists() else None,
        decisions=[parse_decision(d) for d in decisions],
        # The local stack from template.yaml, with its real handlers (WordCountFunction,
        # the custom step type of release_gate.yaml, included).
        template=ROOT / "template.yaml",
    )


#: name → (inputs, decisions) of each example's successful sample run. ``{health_url}``
#: is replaced by the URL of ``health_server()``.
SAMPLES: dict[str, tuple[dict[str, Any], list[str]]] = {
    "triage": ({"ticket": "I was charged twice for billing"}, []),
    "research_brief": ({"topic": "tides"}, ["review=reject:draft", "review=approve"]),
    "batch_review": ({"documents": ["doc a", "", "doc c"]}, []),
    "release_gate": (
        {"health_url": "{health_url}", "version": "v1.2.3"},
        ['notes={"notes": "Faster startup and fewer bugs"}'],
    ),
    "incident_response": ({"alert": "disk 95% on db-1"}, ["on_call=approve", "hold={}"]),
    "content_moderation": ({"comments": ["great post", "buy spam now"]}, []),
}


def run_sample(name: str, health_url: str) -> RunResult:
    inputs, decisions = SAMPLES[name]
    inputs = {k: (health_url if v == "{health_url}" else v) for k, v in inputs.items()}
    return run_example(name, inputs, decisions)
