"""Every example in workflows/ runs to its expected outcome in moto, with the scripted
model from workflows/scripts/ and the decisions a reviewer would give."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import example_workflows
from tests.examples.cases import SAMPLES, health_server, run_example, run_sample


@pytest.fixture(scope="module")
def health_url() -> Iterator[str]:
    with health_server() as url:
        yield url


def test_every_example_has_a_sample_run() -> None:
    assert sorted(SAMPLES) == sorted(p.stem for p in example_workflows())


def test_triage_routes_billing_ticket() -> None:
    r = run_sample("triage", "")
    assert r.status == "SUCCEEDED", (r.error, r.cause)
    assert r.output == {
        "severity": 2,
        "category": "billing",
        "reply": "Billing team will reply by email within a day.",
    }


def test_research_brief_rolls_back_then_publishes() -> None:
    r = run_sample("research_brief", "")
    assert r.status == "SUCCEEDED", (r.error, r.cause)
    assert r.output["brief"].startswith("Draft two")
    assert r.output["kept_claims"] == 1
    assert r.steps["draft"]["starts"] == 2 and r.steps["review"]["starts"] == 2


def test_batch_review_summarises_and_refines() -> None:
    r = run_sample("batch_review", "")
    assert r.status == "SUCCEEDED", (r.error, r.cause)
    assert r.output["summaries"] == ["A short summary.", None, "A short summary."]
    assert r.output["rounds"] == {"done": True}
    assert r.steps["critique"]["starts"] == 2


def test_release_gate_collects_notes_and_counts_words(health_url: str) -> None:
    r = run_sample("release_gate", health_url)
    assert r.status == "SUCCEEDED", (r.error, r.cause)
    assert r.output == {"version": "v1.2.3", "words": 5}


def test_release_gate_stops_when_the_service_is_down() -> None:
    r = run_example(
        "release_gate", {"health_url": "http://127.0.0.1:9/health", "version": "v1.2.3"}
    )
    assert (r.status, r.error) == ("FAILED", "Loopline.HTTPError")


def test_incident_response_retries_then_waits_for_on_call() -> None:
    r = run_sample("incident_response", "")
    assert r.status == "SUCCEEDED", (r.error, r.cause)
    assert r.output["plan"] == "Rotate logs and grow the volume."
    assert r.output["fallback"] is None
    assert r.output["decision"]["approved"] is True
    assert r.steps["diagnose"]["starts"] == 2


def test_content_moderation_keeps_on_topic_comments() -> None:
    r = run_sample("content_moderation", "")
    assert r.status == "SUCCEEDED", (r.error, r.cause)
    assert r.output == {"published": 1, "kept": ["great post"]}


def test_content_moderation_strict_mode_fails_on_dropped_comment() -> None:
    r = run_example(
        "content_moderation", {"comments": ["great post", "buy spam now"], "strict": True}
    )
    assert (r.status, r.error) == ("FAILED", "Loopline.Failed")
