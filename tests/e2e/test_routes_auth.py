"""Every route of the served OpenAPI document: no key is ``401`` (problem+json with
``WWW-Authenticate: Bearer``), and another tenant's ids are ``404``, as if they did not
exist. The routes come from the document itself, so a new route is covered when added."""

from __future__ import annotations

import re
import time

import pytest

from tests.e2e.conftest import Service

PUBLIC = {("GET", "/v1/openapi.json")}
#: Routes that create the caller's own thing named in the path (not a lookup of an id).
CREATES = {("PUT", "/v1/workflows/{name}")}


@pytest.fixture(scope="module")
def acme_things(service: Service, brief: str) -> dict[str, str]:
    """Ids of things only tenant acme has, by path parameter name."""
    with service.client("acme") as c:
        private = (
            "name: acme-private\nsteps:\n  - id: only\n    tool: render\n    args: {template: x}\n"
        )
        r = c.put(
            "/v1/workflows/acme-private", content=private, headers={"Content-Type": "text/yaml"}
        )
        assert r.status_code in (200, 201), r.text
        # Its webhook refuses connections: the task has a delivery (pending, retried).
        task = c.post(
            "/v1/tasks",
            json={"workflow": "acme-private", "inputs": {}, "webhook": "http://127.0.0.1:9/x"},
        ).json()
        service.wait_done(c, task["id"])
        hook = c.post(
            "/v1/webhooks", json={"url": "https://hooks.example.com/acme", "events": ["*"]}
        ).json()
        # A human task of acme's, waiting.
        hold = "name: acme-hold\nsteps:\n  - id: wait\n    pause: Later\n    timeout: 1h\n"
        r = c.put("/v1/workflows/acme-hold", content=hold, headers={"Content-Type": "text/yaml"})
        assert r.status_code in (200, 201), r.text
        held = c.post("/v1/tasks", json={"workflow": "acme-hold", "inputs": {}}).json()
        deadline = time.monotonic() + 30
        waiting: list[dict[str, str]] = []
        while not waiting and time.monotonic() < deadline:
            waiting = c.get(f"/v1/tasks/{held['id']}").json()["waiting"]
            time.sleep(0.1)
        assert waiting, "acme's pause never waited"
        deliveries: list[dict[str, str]] = []
        while not deliveries and time.monotonic() < deadline:
            deliveries = c.get("/v1/webhook-deliveries", params={"task": task["id"]}).json()[
                "items"
            ]
            time.sleep(0.1)
        assert deliveries, "acme's task webhook has no delivery"
    return {
        "webhook_id": hook["id"],
        "delivery_id": deliveries[0]["id"],
        "name": "acme-private",
        "task_id": task["id"],
        "step": "only",
        "human_task_id": waiting[0]["human_task"],
    }


def _routes(service: Service) -> list[tuple[str, str]]:
    with service.client(None) as c:
        doc = c.get("/v1/openapi.json")
    assert doc.status_code == 200, doc.text
    paths = doc.json()["paths"]
    return sorted(
        (method.upper(), path)
        for path, ops in paths.items()
        for method in ops
        if method in ("get", "post", "put", "patch", "delete")
    )


def _fill(path: str, things: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name in things, f"no test id for path parameter {{{name}}} of {path}"
        return things[name]

    return re.sub(r"\{(\w+)\}", value, path)


def test_the_document_lists_the_task_routes(service: Service) -> None:
    routes = set(_routes(service))
    for route in [
        ("GET", "/v1/workflows"),
        ("GET", "/v1/workflows/{name}"),
        ("PUT", "/v1/workflows/{name}"),
        ("POST", "/v1/tasks"),
        ("GET", "/v1/tasks"),
        ("GET", "/v1/tasks/{task_id}"),
        ("GET", "/v1/tasks/{task_id}/steps/{step}"),
        ("GET", "/v1/tasks/{task_id}/events"),
        ("POST", "/v1/tasks/{task_id}/cancel"),
        ("GET", "/v1/human-tasks"),
        ("GET", "/v1/human-tasks/{human_task_id}"),
        ("POST", "/v1/human-tasks/{human_task_id}/approve"),
        ("POST", "/v1/human-tasks/{human_task_id}/reject"),
        ("POST", "/v1/human-tasks/{human_task_id}/complete"),
    ]:
        assert route in routes


def test_every_route_without_a_key_is_401(service: Service, acme_things: dict[str, str]) -> None:
    with service.client(None) as c:
        for method, path in _routes(service):
            if (method, path) in PUBLIC:
                continue
            r = c.request(method, _fill(path, acme_things), json={})
            assert r.status_code == 401, (method, path, r.status_code, r.text)
            assert r.headers.get("WWW-Authenticate", "").startswith("Bearer"), (method, path)
            assert r.headers["content-type"].startswith("application/problem+json"), path
            assert r.json()["status"] == 401
        wrong = c.get("/v1/tasks", headers={"Authorization": "Bearer llk_not_a_key"})
        assert wrong.status_code == 401


def test_another_tenants_ids_are_404_on_every_route(
    service: Service, acme_things: dict[str, str]
) -> None:
    with service.client("globex") as c:
        for method, path in _routes(service):
            if (method, path) in PUBLIC | CREATES or "{" not in path:
                continue
            r = c.request(method, _fill(path, acme_things), json={})
            assert r.status_code == 404, (method, path, r.status_code, r.text)
            assert r.headers["content-type"].startswith("application/problem+json"), path
    with service.client("acme") as c:  # still there, untouched
        view = c.get(f"/v1/tasks/{acme_things['task_id']}").json()
        assert view["status"] == "SUCCEEDED"
        human = c.get(f"/v1/human-tasks/{acme_things['human_task_id']}").json()
        assert human["status"] == "open" and human["decision"] is None
