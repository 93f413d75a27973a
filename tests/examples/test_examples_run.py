"""Every example in workflows/ runs to its expected outcome in moto, with the scripted
model from workflows/scripts/ and the decisions a reviewer would give."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from loopline.compiler import compile_workflow
from loopline.dsl import load_workflow, resolve_inputs
from loopline.local.run import RunResult, parse_decision, run_workflow
from tests.conftest import WORKFLOWS


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


@pytest.fixture(scope="module")
def health_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/health"
    server.shutdown()


def word_count(event: dict[str, Any], context: Any) -> int:
    """The custom step type of release_gate.yaml, run as a local Lambda function."""
    return len(str(event["args"]["text"]).split())


def run_example(name: str, inputs: dict[str, Any], decisions: list[str] = ()) -> RunResult:  # type: ignore[assignment]
    wf = load_workflow(WORKFLOWS / f"{name}.yaml")
    script = WORKFLOWS / "scripts" / f"{name}.yaml"
    return run_workflow(
        compile_workflow(wf).definition,
        wf,
        resolve_inputs(wf, inputs),
        llm_script=str(script) if script.exists() else None,
        decisions=[parse_decision(d) for d in decisions],
        functions={"WordCountFunction": word_count},
    )


def test_triage_routes_billing_ticket() -> None:
    r = run_example("triage", {"ticket": "I was charged twice for billing"})
    assert r.status == "SUCCEEDED", (r.error, r.cause)
    assert r.output == {
        "severity": 2,
        "category": "billing",
        "reply": "Billing team will reply by email within a day.",
    }


def test_research_brief_rolls_back_then_publishes() -> None:
    r = run_example("research_brief", {"topic": "tides"}, ["review=reject:draft", "review=approve"])
    assert r.status == "SUCCEEDED", (r.error, r.cause)
    assert r.output["brief"].startswith("Draft two")
    assert r.output["kept_claims"] == 1
    assert r.steps["draft"]["starts"] == 2 and r.steps["review"]["starts"] == 2


def test_batch_review_summarises_and_refines() -> None:
    r = run_example("batch_review", {"documents": ["doc a", "", "doc c"]})
    assert r.status == "SUCCEEDED", (r.error, r.cause)
    assert r.output["summaries"] == ["A short summary.", None, "A short summary."]
    assert r.output["rounds"] == {"done": True}
    assert r.steps["critique"]["starts"] == 2


def test_release_gate_collects_notes_and_counts_words(health_url: str) -> None:
    r = run_example(
        "release_gate",
        {"health_url": health_url, "version": "v1.2.3"},
        ['notes={"notes": "Faster startup and fewer bugs"}'],
    )
    assert r.status == "SUCCEEDED", (r.error, r.cause)
    assert r.output == {"version": "v1.2.3", "words": 5}


def test_release_gate_stops_when_the_service_is_down() -> None:
    r = run_example("release_gate", {"health_url": "http://127.0.0.1:9/health", "version": "v1.2.3"})
    assert (r.status, r.error) == ("FAILED", "Loopline.HTTPError")


def test_incident_response_retries_then_waits_for_on_call() -> None:
    r = run_example("incident_response", {"alert": "disk 95% on db-1"}, ["on_call=approve", "hold={}"])
    assert r.status == "SUCCEEDED", (r.error, r.cause)
    assert r.output["plan"] == "Rotate logs and grow the volume."
    assert r.output["fallback"] is None
    assert r.output["decision"]["approved"] is True
    assert r.steps["diagnose"]["starts"] == 2


def test_content_moderation_keeps_on_topic_comments() -> None:
    r = run_example("content_moderation", {"comments": ["great post", "buy spam now"]})
    assert r.status == "SUCCEEDED", (r.error, r.cause)
    assert r.output == {"published": 1, "kept": ["great post"]}


def test_content_moderation_strict_mode_fails_on_dropped_comment() -> None:
    r = run_example("content_moderation", {"comments": ["great post", "buy spam now"], "strict": True})
    assert (r.status, r.error) == ("FAILED", "Loopline.Failed")
