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
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.providers.chat_server import ChatServer

ROOT = Path(__file__).resolve().parents[2]
BRIEF = Path(__file__).with_name("brief.yaml")
KEYS = {
    "acme": "llk_" + "acme-e2e-".ljust(43, "a"),
    "globex": "llk_" + "globex-e2e-".ljust(43, "g"),
}
TERMINAL = {"SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT"}


@dataclass
class Service:
    url: str
    process: subprocess.Popen[str]
    chat: ChatServer

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


def _read_until_url(process: subprocess.Popen[str], timeout: float) -> str:
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
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
            f"  - {{key: {key}, tenant: {tenant}, user: {tenant}-ops, roles: [admin]}}\n"
            for tenant, key in KEYS.items()
        ),
        encoding="utf-8",
    )
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
        "PYTHONUNBUFFERED": "1",
    }
    cli = Path(sys.executable).parent / "loopline"
    process = subprocess.Popen(
        [str(cli), "serve", "--port", "0", "--keys", str(keys), "--allow-hosts", "127.0.0.1"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = _read_until_url(process, timeout=90)
        yield Service(url=url, process=process, chat=chat)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        chat.stop()


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
