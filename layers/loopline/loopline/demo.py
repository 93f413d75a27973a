"""``make demo``: compile every example, then run the research brief end to end through
the task service on the local stack, with the scripted model.

The service is what ``loopline serve`` runs (the template's API, authorizer and functions
on moto). The demo submits the brief over HTTP; the brief forks into parallel research,
fact-checks claims with an adversarial vote and waits for an editor's approval, which is
emailed (to the outbox folder) with a link. The demo prints the link, decides through it
(with a terminal attached you may open it and decide yourself) and prints the result.
"""

from __future__ import annotations

import re
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from loopline.compiler import compile_workflow
from loopline.dsl import WorkflowInvalid, load_workflow

ROOT = Path.cwd()
SHOWCASE = "research_brief"
#: Its name as the stack deploys it.
STACK_NAME = "research-brief"


def _say(text: str = "") -> None:
    print(text, flush=True)


def compile_examples(root: Path) -> None:
    _say("== Compiling workflows/ to statemachines/")
    out_dir = root / "statemachines"
    out_dir.mkdir(exist_ok=True)
    for path in sorted((root / "workflows").glob("*.yaml")):
        result = compile_workflow(load_workflow(path))
        (out_dir / f"{path.stem}.asl.json").write_text(result.text, encoding="utf-8")
        r = result.report
        _say(
            f"   {path.name:<26} {r.states:>3} states, {r.lambda_tasks:>2} Lambda tasks, "
            f"{r.native_conditions} native conditions ({r.seconds * 1000:.1f} ms)"
        )


def _wait_email(outbox: Path, timeout: float = 60) -> Path | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sorted((outbox / "mail").glob("*.eml"))
        if found:
            return found[0]
        time.sleep(0.1)
    return None


def _link_of(path: Path) -> str | None:
    from email import message_from_bytes, policy

    message = message_from_bytes(path.read_bytes(), policy=policy.default)
    text = message.get_body(preferencelist=("plain",))
    found = re.search(r"https?://\S+/a/[A-Za-z0-9_-]+", text.get_content() if text else "")
    return found.group(0) if found else None


def _decide_yourself(client: httpx.Client, task_id: str, link: str) -> None:
    """With a terminal: the person may open the link; Enter approves through it."""
    _say(f"   open {link} in a browser to decide, or press Enter to approve it here")
    pressed = threading.Event()

    def read() -> None:
        sys.stdin.readline()
        pressed.set()

    threading.Thread(target=read, daemon=True).start()
    while not pressed.wait(0.5):
        if client.get(f"/v1/tasks/{task_id}").json()["status"] != "WAITING":
            return  # decided in the browser


def run_showcase(root: Path) -> int:
    from loopline.local.serve import LocalService
    from loopline.runtime.scripted import ScriptedModel

    interactive = sys.stdin.isatty()
    inputs = {"topic": "ocean tides", "audience": "engineers"}
    outbox = Path(tempfile.mkdtemp(prefix="loopline-demo-"))
    _say()
    _say("== Starting the task service on the local stack (template.yaml on moto)")
    model = ScriptedModel.from_file(root / "workflows" / "scripts" / f"{SHOWCASE}.yaml")
    service = LocalService(root / "template.yaml", port=0, outbox=outbox, model=model)
    started = time.perf_counter()
    service.start()
    try:
        key = service.keys[0].key
        _say(f"   API at {service.url}; emails go to {outbox / 'mail'}")
        with httpx.Client(
            base_url=service.url, headers={"Authorization": f"Bearer {key}"}, timeout=60
        ) as client:
            _say(f"== POST /v1/tasks  workflow={STACK_NAME}  inputs={inputs}")
            r = client.post("/v1/tasks", json={"workflow": STACK_NAME, "inputs": inputs})
            if r.status_code != 202:
                _say(f"   {r.status_code}: {r.text}")
                return 1
            task_id = r.json()["id"]
            _say(f"   202 task {task_id}")
            email = _wait_email(outbox)
            link = _link_of(email) if email is not None else None
            if link is None:
                _say("   no approval email arrived")
                return 1
            _say(f"== The editor's approval email: {email}")
            _say(f"   link: {link}")
            page = httpx.get(link, timeout=30)
            status = client.get(f"/v1/tasks/{task_id}").json()["status"]
            _say(f"   GET the link: {page.status_code} (a page; the task is still {status})")
            if interactive:
                _decide_yourself(client, task_id, link)
            if client.get(f"/v1/tasks/{task_id}").json()["status"] == "WAITING":
                done = httpx.post(
                    link, data={"action": "approve", "comment": "approved by the demo"}, timeout=30
                )
                _say(f"   POST approve through the link: {done.status_code}")
            view = _follow(client, task_id)
    finally:
        service.stop()
    _say()
    out = view.get("output") or {}
    if view["status"] == "SUCCEEDED":
        _say(f"   brief:       {out.get('brief')}")
        _say(f"   kept claims: {out.get('kept_claims')}")
        _say(f"   approved by: {out.get('approved_by')}")
    else:
        _say(f"   {view.get('error')}: {view.get('cause')}")
    _say(f"{view['status']} in {time.perf_counter() - started:.1f} s")
    return 0 if view["status"] == "SUCCEEDED" else 1


def _follow(client: httpx.Client, task_id: str, timeout: float = 120) -> dict[str, Any]:
    """Print the task's events until it ends; its view."""
    after, deadline, ended = 0, time.monotonic() + timeout, False
    while time.monotonic() < deadline:
        page = client.get(f"/v1/tasks/{task_id}/events", params={"after": after, "wait": 5})
        items = page.json()["items"]
        for event in items:
            after = event["seq"]
            step = f" {event['step']}" if event.get("step") else ""
            _say(f"   {event['seq']:>3} {event['type']}{step}")
        view: dict[str, Any] = client.get(f"/v1/tasks/{task_id}").json()
        if ended and not items:
            return view  # every event of the ended task was printed
        ended = view["status"] not in ("QUEUED", "RUNNING", "WAITING", "PAUSED")
    final: dict[str, Any] = client.get(f"/v1/tasks/{task_id}").json()
    return final


def main() -> int:
    try:
        compile_examples(ROOT)
        return run_showcase(ROOT)
    except WorkflowInvalid as exc:
        print(exc.render(), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
