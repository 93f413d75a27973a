"""``loopline serve`` as a user runs it: a subprocess on a free port, over real HTTP."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
FIXTURE = HERE / "template.yaml"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "layers" / "loopline")
    return env


class Served:
    def __init__(self, proc: subprocess.Popen[str], lines: list[str]) -> None:
        self.proc = proc
        self.lines = lines
        self.port = int(re.search(r":(\d+)$", lines[0]).group(1))  # type: ignore[union-attr]

    def get(self, path: str, key: str | None = None) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.request("GET", path, headers={"Authorization": f"Bearer {key}"} if key else {})
        resp = conn.getresponse()
        return resp.status, resp.read()


def _start(*args: str) -> Served:
    proc = subprocess.Popen(
        [sys.executable, "-m", "loopline.cli", "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        cwd=ROOT,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline().strip()
    if not first:
        proc.wait(10)
        raise AssertionError(f"serve did not start: {proc.stderr.read() if proc.stderr else ''}")
    lines = [first, proc.stdout.readline().strip()]
    return Served(proc, lines)


@pytest.fixture
def served() -> Iterator[Served]:
    s = _start("--template", str(FIXTURE))
    yield s
    if s.proc.poll() is None:
        s.proc.kill()
        s.proc.wait(10)


def test_serve_prints_its_url_and_a_key_for_the_default_tenant(served: Served) -> None:
    assert re.fullmatch(r"Loopline API on http://127\.0\.0\.1:\d+", served.lines[0])
    assert re.fullmatch(r"key default: llk_[A-Za-z0-9_-]{43}", served.lines[1])


def test_serve_answers_through_the_template_api_and_its_authorizer(served: Served) -> None:
    status, body = served.get("/v1/openapi.json")
    assert status == 200
    assert json.loads(body)["event"]["resource"] == "/v1/openapi.json"
    status, body = served.get("/v1/tasks")
    assert status == 401
    assert json.loads(body)["title"] == "Unauthorized"


def test_sigterm_stops_serve_with_exit_0(served: Served) -> None:
    served.proc.send_signal(signal.SIGTERM)
    assert served.proc.wait(15) == 0


def test_the_repository_template_serves_the_real_functions_with_the_printed_key() -> None:
    s = _start()
    try:
        key = s.lines[1].split(": ", 1)[1]
        status, body = s.get("/v1/tasks")
        assert status == 401
        assert json.loads(body)["status"] == 401
        # The real authorizer knows the printed key: the request reaches the API function.
        assert s.get("/v1/tasks", key)[0] != 401
        assert s.get("/v1/tasks", "llk_" + "x" * 43)[0] == 401
        assert s.get("/v1/openapi.json")[0] in (200, 501)  # 501: the placeholder function
    finally:
        s.proc.send_signal(signal.SIGINT)
        assert s.proc.wait(15) == 0


def test_a_port_in_use_is_an_error_exit_2(served: Served) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "loopline.cli",
            "serve",
            "--port",
            str(served.port),
            "--template",
            str(FIXTURE),
        ],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=ROOT,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == f"error: port {served.port} is already in use"
    assert "Traceback" not in proc.stderr


def test_a_bad_keys_file_is_an_error_exit_2(tmp_path: Path) -> None:
    keys = tmp_path / "keys.yaml"
    keys.write_text("keys:\n  - {key: nope, tenant: acme}\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "loopline.cli",
            "serve",
            "--port",
            "0",
            "--keys",
            str(keys),
            "--template",
            str(FIXTURE),
        ],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=ROOT,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"error: {keys}: keys[0].key:")
    assert "Traceback" not in proc.stderr


def test_the_keys_of_a_keys_file_are_printed_and_accepted(tmp_path: Path) -> None:
    key = "llk_" + "k" * 43
    keys = tmp_path / "keys.yaml"
    keys.write_text(f"keys:\n  - {{key: {key}, tenant: acme, user: ann, roles: [admin]}}\n")
    s = _start("--keys", str(keys), "--template", str(FIXTURE))
    try:
        assert s.lines[1] == f"key acme/ann: {key}"
    finally:
        s.proc.send_signal(signal.SIGTERM)
        assert s.proc.wait(15) == 0


def test_a_template_without_an_api_is_an_error_exit_2(tmp_path: Path) -> None:
    bare = tmp_path / "template.yaml"
    bare.write_text("Resources:\n  Topic:\n    Type: AWS::SNS::Topic\n")
    proc = subprocess.run(
        [sys.executable, "-m", "loopline.cli", "serve", "--port", "0", "--template", str(bare)],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=ROOT,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "expected one AWS::Serverless::Api to serve, found none" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_messages_ses_sends_are_written_to_the_outbox(tmp_path: Path) -> None:
    import boto3
    from loopline.local.executor import LocalExecutor
    from loopline.local.serve import Outbox

    with LocalExecutor(loopline_functions=False):
        ses = boto3.client("ses", region_name="us-east-1")
        ses.verify_email_identity(EmailAddress="loopline@example.com")
        outbox = Outbox(tmp_path, "us-east-1", interval=0.05)
        outbox.start()
        for n in (1, 2):
            ses.send_email(
                Source="loopline@example.com",
                Destination={"ToAddresses": ["ann@example.com"]},
                Message={
                    "Subject": {"Data": f"review {n}"},
                    "Body": {"Text": {"Data": f"body {n}"}},
                },
            )
        time.sleep(0.3)
        outbox.stop()

    first = (tmp_path / "mail" / "1.eml").read_text()
    assert "Subject: review 1" in first and "To: ann@example.com" in first and "body 1" in first
    assert "Subject: review 2" in (tmp_path / "mail" / "2.eml").read_text()
