"""``loopline serve`` as a user starts it: a subprocess on a free port, with the local stack
from template.yaml, two tenants' keys, and a model provider that is a real OpenAI-compatible
HTTP server on 127.0.0.1 (``tests/providers/chat_server.py``).

One server per test session (per xdist worker): tests make their own tasks and never
depend on another test's.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes
from email import policy as email_policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.providers.chat_server import ChatServer
from tests.support.slack_server import SlackServer

ROOT = Path(__file__).resolve().parents[2]
BRIEF = Path(__file__).with_name("brief.yaml")
KEYS = {
    "acme": "llk_" + "acme-e2e-".ljust(43, "a"),
    "globex": "llk_" + "globex-e2e-".ljust(43, "g"),
    # Two more holders of acme keys: an editor (role editors) and one with no role.
    "acme-editor": "llk_" + "acme-editor-e2e-".ljust(43, "e"),
    "acme-intern": "llk_" + "acme-intern-e2e-".ljust(43, "i"),
}
#: key name → (tenant, user, roles)
HOLDERS = {
    "acme": ("acme", "acme-ops", ["admin"]),
    "globex": ("globex", "globex-ops", ["admin"]),
    "acme-editor": ("acme", "ed", ["editors"]),
    "acme-intern": ("acme", "intern", []),
}
SLACK_BOT_TOKEN = "xoxb-e2e-bot-token"
SLACK_SIGNING_SECRET = "e2e-signing-secret"
WORKFLOWS = Path(__file__).with_name("workflows")
LINK = re.compile(r"https?://[^\s\"'<>]+/a/[A-Za-z0-9_-]+")
TERMINAL = {"SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT"}


@dataclass
class Service:
    url: str
    process: subprocess.Popen[str]
    chat: ChatServer
    slack: SlackServer
    outbox: Path
    #: Every line the server printed (its log), for the scans of what it must never say.
    output: list[str]

    def client(self, tenant: str | None = "acme") -> httpx.Client:
        headers = {"Authorization": f"Bearer {KEYS[tenant]}"} if tenant else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def wait_done(self, client: httpx.Client, task_id: str, timeout: float = 60) -> dict[str, Any]:
        """The task view once the task has ended (following its events with ``wait``)."""
        deadline = time.monotonic() + timeout
        after = 0
        while time.monotonic() < deadline:
            page = client.get(f"/v1/tasks/{task_id}/events", params={"after": after, "wait": 5})
            assert page.status_code == 200, page.text
            for event in page.json()["items"]:
                after = event["seq"]
            view = client.get(f"/v1/tasks/{task_id}").json()
            if view["status"] in TERMINAL:
                return view
        raise AssertionError(f"task {task_id} still running after {timeout}s")

    def emails(self) -> list[EmailMessage]:
        """Every email the stack sent so far (``--outbox``), in the order sent."""
        mail = self.outbox / "mail"
        if not mail.is_dir():
            return []
        paths = sorted(mail.glob("*.eml"), key=lambda p: int(p.stem))
        return [
            message_from_bytes(p.read_bytes(), policy=email_policy.default)  # type: ignore[misc]
            for p in paths
        ]

    def wait_email(
        self, to: str, count: int = 1, timeout: float = 30, saying: str | None = None
    ) -> EmailMessage:
        """The ``count``-th email to ``to`` (whose text says ``saying``, when given) once
        it has arrived."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            mine = [
                m
                for m in self.emails()
                if to in str(m["To"]) and (saying is None or saying in email_text(m)[0])
            ]
            if len(mine) >= count:
                return mine[count - 1]
            time.sleep(0.1)
        raise AssertionError(f"no email #{count} to {to} within {timeout}s")


def email_text(message: EmailMessage) -> tuple[str, str]:
    """The text and HTML parts of an email."""
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None and html is not None, "an email has a text and an HTML part"
    return str(text.get_content()), str(html.get_content())


def link_of(message: EmailMessage) -> str:
    """The approval link of an email (the same in both parts)."""
    text, html = email_text(message)
    found = LINK.findall(text)
    assert found, text
    assert found[0] in html
    return found[0]


def _read_until_url(
    process: subprocess.Popen[str], timeout: float, output: list[str] | None = None
) -> str:
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            if output is not None:
                output.append(line)
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            if process.poll() is not None:
                break
            continue
        seen.append(line)
        match = re.search(r"(http://127\.0\.0\.1:\d+)", line)
        if match and "API" in line:
            return match.group(1)
    raise AssertionError("loopline serve did not print its URL:\n" + "".join(seen))


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("serve")
    keys = tmp / "keys.yaml"
    keys.write_text(
        "keys:\n"
        + "".join(
            f"  - {{key: {KEYS[name]}, tenant: {tenant}, user: {user}, roles: {roles}}}\n"
            for name, (tenant, user, roles) in HOLDERS.items()
        ),
        encoding="utf-8",
    )
    outbox = tmp / "outbox"
    slack = SlackServer(token=SLACK_BOT_TOKEN).__enter__()
    chat = ChatServer().start()
    for _ in range(2000):
        chat.answer("1. Tides 2. The moon")
    # A user's shell: nothing another test of this process left in the environment.
    env = {
        **{
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("LOOPLINE_", "POWERTOOLS_", "AWS_"))
        },
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "LOOPLINE_LLM_PROVIDER": "openai",
        "LOOPLINE_LLM_BASE_URL": chat.base_url,
        "LOOPLINE_LLM_API_KEY": "test-key",
        "LOOPLINE_LLM_MODEL": "small-model",
        "LOOPLINE_SLACK_API_URL": slack.url,
        "LOOPLINE_SLACK_BOT_TOKEN": SLACK_BOT_TOKEN,
        "LOOPLINE_SLACK_SIGNING_SECRET": SLACK_SIGNING_SECRET,
        "LOOPLINE_OUTBOX_RETRY_DELAYS": "1,1,1",
        "LOOPLINE_WEBHOOK_RETRY_DELAYS": "1,1,1,1",
        "PYTHONUNBUFFERED": "1",
    }
    cli = Path(sys.executable).parent / "loopline"
    process = subprocess.Popen(
        [
            str(cli),
            "serve",
            "--port",
            "0",
            "--keys",
            str(keys),
            "--allow-hosts",
            "127.0.0.1",
            "--outbox",
            str(outbox),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    try:
        url = _read_until_url(process, timeout=90, output=output)
        yield Service(
            url=url, process=process, chat=chat, slack=slack, outbox=outbox, output=output
        )
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        chat.stop()
        slack.__exit__(None, None, None)


def register(service: Service, name: str, tenants: tuple[str, ...] = ("acme",)) -> str:
    """Register ``tests/e2e/workflows/<name>.yaml`` for ``tenants``; its name."""
    body = (WORKFLOWS / f"{name}.yaml").read_bytes()
    for tenant in tenants:
        with service.client(tenant) as c:
            r = c.put(
                f"/v1/workflows/{name}", content=body, headers={"Content-Type": "application/yaml"}
            )
            assert r.status_code in (200, 201), r.text
    return name


@pytest.fixture(scope="session")
def brief(service: Service) -> str:
    """The ``brief`` workflow registered for both tenants; its name."""
    body = BRIEF.read_bytes()
    for tenant in KEYS:
        with service.client(tenant) as c:
            r = c.put(
                "/v1/workflows/brief", content=body, headers={"Content-Type": "application/yaml"}
            )
            assert r.status_code in (200, 201), r.text
    return "brief"
