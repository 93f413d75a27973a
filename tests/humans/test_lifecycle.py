"""Human tasks through the task service in this process (``LocalService``, what
``loopline serve`` runs), where the test can also make Step Functions fail: a decision
whose delivery fails is retried until it is sent; a human task past its deadline expires;
a cancelled task's human tasks close and their links answer 410.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from loopline import store
from loopline.local.serve import LocalService
from loopline.runtime.scripted import ScriptedModel

from tests.e2e.conftest import LINK, ROOT
from tests.support.waiting import until

pytestmark = pytest.mark.moto

WAITS = """
name: {name}
steps:
  - id: review
    approval:
      instruction: "Look at it."
      notify: [{{email: someone@example.com}}]
      timeout: {timeout}
      on_timeout: {on_timeout}
  - id: after
    tool: render
    args: {{template: "done"}}
output:
  review: "{{{{ steps.review.output }}}}"
"""


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[httpx.Client, Path]]:
    monkeypatch.setenv("LOOPLINE_OUTBOX_RETRY_DELAYS", "1,1,1,1")
    outbox = tmp_path / "outbox"
    model = ScriptedModel.from_data({"responses": [{"answer": "text"}]})
    service = LocalService(ROOT / "template.yaml", port=0, outbox=outbox, model=model)
    service.start()
    key = service.keys[0].key
    try:
        with httpx.Client(
            base_url=service.url, headers={"Authorization": f"Bearer {key}"}, timeout=60
        ) as client:
            yield client, outbox
    finally:
        service.stop()


def _task(client: httpx.Client, name: str, timeout: str, on_timeout: str) -> str:
    body = WAITS.format(name=name, timeout=timeout, on_timeout=on_timeout)
    r = client.put(f"/v1/workflows/{name}", content=body, headers={"Content-Type": "text/yaml"})
    assert r.status_code in (200, 201), r.text
    r = client.post("/v1/tasks", json={"workflow": name, "inputs": {}})
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def _waiting(client: httpx.Client, task_id: str) -> str:
    view = until(lambda: client.get(f"/v1/tasks/{task_id}").json().get("waiting"))
    return str(view[0]["human_task"])


def _done(client: httpx.Client, task_id: str) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        view = client.get(f"/v1/tasks/{task_id}").json()
        return view if view["status"] not in ("RUNNING", "WAITING", "QUEUED") else None

    return dict(until(ended, 60))


def test_a_decision_step_functions_refuses_for_a_while_is_retried_until_sent(
    served: tuple[httpx.Client, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    client, _ = served
    task_id = _task(client, "flaky_sfn", "1h", "fail")
    human = _waiting(client, task_id)
    calls: list[str] = []
    real = StepFunctionsParserBackend.send_task_success

    @functools.wraps(real)
    def unavailable_four_times(backend: Any, token: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(token)
        if len(calls) <= 4:
            from moto.core.exceptions import JsonRESTError

            raise JsonRESTError("ServiceUnavailable", "Step Functions is unavailable")
        return real(backend, token, *args, **kwargs)

    monkeypatch.setattr(StepFunctionsParserBackend, "send_task_success", unavailable_four_times)
    r = client.post(f"/v1/human-tasks/{human}/approve", json={"comment": "go"})
    assert r.status_code == 200, r.text
    # Three tries in the request, then the record says so and the outbox retries.
    assert r.json()["decision"]["delivery"] == "retrying"
    assert "unavailable" in r.json()["decision"]["delivery_error"]
    assert _done(client, task_id)["status"] == "SUCCEEDED"
    sent = until(
        lambda: client.get(f"/v1/human-tasks/{human}").json()["decision"]["delivery"] == "sent"
    )
    assert sent and len(calls) == 5
    # A second decision is refused by the record, not sent again.
    assert client.post(f"/v1/human-tasks/{human}/approve", json={}).status_code == 409
    assert len(calls) == 5


def test_a_rejection_through_the_service_fails_the_task_with_where_and_the_comment(
    served: tuple[httpx.Client, Path],
) -> None:
    client, _ = served
    task_id = _task(client, "rejected", "1h", "fail")
    human = _waiting(client, task_id)
    r = client.post(f"/v1/human-tasks/{human}/reject", json={"comment": "needs sources"})
    assert r.status_code == 200, r.text
    by = r.json()["decision"]["by"]  # the key's user (a tenant key has none)
    cause = f"rejected{f' by {by}' if by else ''} at step review: needs sources"
    view = _done(client, task_id)
    assert (view["status"], view["error"], view["cause"]) == ("FAILED", "Loopline.Rejected", cause)
    events = client.get(f"/v1/tasks/{task_id}/events").json()["items"]
    failed = [e["data"] for e in events if e["type"] == "step.failed"]
    assert [(d["error"], d["cause"]) for d in failed] == [("Loopline.Rejected", cause)]


def test_a_human_task_past_its_deadline_is_expired_when_the_task_goes_on(
    served: tuple[httpx.Client, Path],
) -> None:
    client, _ = served
    task_id = _task(client, "auto_approve", "1s", "approve")
    human = _waiting(client, task_id)
    view = _done(client, task_id)
    assert view["status"] == "SUCCEEDED" and view["output"]["review"]["timed_out"] is True
    record = client.get(f"/v1/human-tasks/{human}").json()
    assert record["status"] == "expired" and record["decision"] is None
    events = client.get(f"/v1/tasks/{task_id}/events").json()["items"]
    types = [e["type"] for e in events]
    assert types.count("human.expired") == 1
    assert types.index("human.expired") < types.index("task.succeeded")
    late = client.post(f"/v1/human-tasks/{human}/approve", json={})
    assert late.status_code == 410


def test_cancelling_a_task_closes_its_human_tasks_and_their_links_answer_410(
    served: tuple[httpx.Client, Path],
) -> None:
    client, outbox = served
    task_id = _task(client, "cancelled", "1h", "fail")
    human = _waiting(client, task_id)
    mail = outbox / "mail"
    [path] = until(lambda: list(mail.glob("*.eml")))
    [link] = set(LINK.findall(path.read_text("utf-8", "replace")))
    assert httpx.get(link).status_code == 200
    assert client.post(f"/v1/tasks/{task_id}/cancel").status_code == 200
    assert client.get(f"/v1/human-tasks/{human}").json()["status"] == "closed"
    assert httpx.get(link).status_code == 410
    assert httpx.post(link, data={"action": "approve"}).status_code == 410
    # Through the API: no longer open (not expired) is 409, as the contract says.
    assert client.post(f"/v1/human-tasks/{human}/approve", json={}).status_code == 409
    assert [r["status"] for r in store.list_task_human_tasks(task_id)] == ["closed"]
