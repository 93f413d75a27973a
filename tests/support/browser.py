"""A real browser for the tests: Debian's chromium (``/usr/bin/chromium``, installed by
``make browser``, which ``make test`` runs) driven by playwright's Python package, which
does not download browsers of its own here.

The fixtures are declared once, in ``tests/conftest.py`` (one playwright session per test
process):

- ``chromium`` (session): playwright's launcher of the system browser;
- ``browser_page``: a page of a headless chromium launched for the test with a fresh
  profile and without background networking (a test reaches nothing but the 127.0.0.1
  servers it starts); dialogs (``alert``, ``confirm``) are dismissed and recorded, with
  console errors and uncaught page errors, in ``browser_log``;
- ``artifacts``: ``tests/artifacts/`` for screenshots kept after the run.

Without chromium the tests fail, saying how to install it; with
``LOOPLINE_ALLOW_NO_BROWSER=1`` they are skipped instead.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
#: Where Debian puts its chromium (the ``chromium`` package).
CHROMIUM = os.environ.get("LOOPLINE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: A phone's screen (CSS pixels): the pages must be readable there.
PHONE = {"width": 390, "height": 844}


@dataclass
class BrowserLog:
    """What a page did that a test may need to refuse."""

    dialogs: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)


def _missing_browser() -> str | None:
    if Path(CHROMIUM).exists():
        return None
    return (
        f"the browser tests need Debian's chromium at {CHROMIUM}: run `make browser` "
        "(apt-get install chromium), or set LOOPLINE_ALLOW_NO_BROWSER=1 to skip them"
    )


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """Playwright's chromium launcher (``BrowserType``), its driver started once."""
    problem = _missing_browser()
    if problem is not None:
        if os.environ.get("LOOPLINE_ALLOW_NO_BROWSER") == "1":
            pytest.skip(problem)
        pytest.fail(problem)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        yield playwright.chromium


@pytest.fixture
def browser_log() -> BrowserLog:
    return BrowserLog()


@pytest.fixture
def browser_page(chromium: Any, browser_log: BrowserLog) -> Iterator[Any]:
    """A page (a playwright ``Page``) of the system chromium on a phone-sized screen, in a
    browser of its own with a fresh profile (``--user-data-dir``): nothing carries over
    from one test to the next."""
    profile = tempfile.mkdtemp(prefix="loopline-chromium-")
    try:
        context = chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport=PHONE,
        )
        try:
            context.set_default_timeout(10_000)
            page = context.pages[0] if context.pages else context.new_page()

            def on_dialog(dialog: Any) -> None:
                browser_log.dialogs.append(f"{dialog.type}: {dialog.message}")
                dialog.dismiss()

            def on_console(message: Any) -> None:
                if message.type == "error":
                    browser_log.console_errors.append(message.text)

            page.on("dialog", on_dialog)
            page.on("console", on_console)
            page.on("pageerror", lambda error: browser_log.page_errors.append(str(error)))
            yield page
        finally:
            context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def artifacts() -> Path:
    """``tests/artifacts/``: files (screenshots) kept after the run."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
