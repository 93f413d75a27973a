"""Shared fixtures. Paths are relative to the repository root."""

from __future__ import annotations

from pathlib import Path

import pytest

# A real browser (Debian's chromium through playwright), one per test process: its
# session fixture is declared here once (two conftests declaring it made two playwright
# sessions in a process that ran tests of both, and the second refused to start).
from tests.support.browser import artifacts, browser_log, browser_page, chromium

__all__ = ["artifacts", "browser_log", "browser_page", "chromium"]

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / "workflows"
STATEMACHINES = ROOT / "statemachines"
GOLDEN_COMPILE = ROOT / "tests" / "golden" / "compile"


def example_workflows() -> list[Path]:
    return sorted(WORKFLOWS.glob("*.yaml"))


@pytest.fixture(autouse=True)
def _aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may reach real AWS: fake credentials and a fixed region."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
