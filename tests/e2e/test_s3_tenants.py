"""The S3 tools over the served task API: two tenants that register a workflow of the same
name each reach only their own objects (``loopline.runtime.s3scope``)."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import Service, register

BUCKET_PREFIX = "s3://loopline-local-artifactsbucket/"


def _run(service: Service, tenant: str, inputs: dict[str, Any]) -> dict[str, Any]:
    with service.client(tenant) as c:
        r = c.post("/v1/tasks", json={"workflow": "notes", "inputs": inputs})
        assert r.status_code == 202, r.text
        return service.wait_done(c, str(r.json()["id"]))


def test_tenants_running_workflows_of_the_same_name_never_reach_each_others_objects(
    service: Service,
) -> None:
    register(service, "notes", tenants=("acme", "globex"))
    put = _run(service, "acme", {"op": "put", "key": "plan.txt", "body": "acme's plan"})
    assert put["status"] == "SUCCEEDED", put
    assert put["output"] == {
        "out": {"uri": f"{BUCKET_PREFIX}_tenants/acme/notes/plan.txt", "size": 11}
    }
    assert _run(service, "acme", {"op": "get", "key": "plan.txt"})["output"] == {
        "out": "acme's plan"
    }

    # globex's key is its own object, which does not exist.
    own = _run(service, "globex", {"op": "get", "key": "plan.txt"})
    assert own["status"] == "FAILED" and own["error"] == "Loopline.Failed"
    assert (
        f"could not read {BUCKET_PREFIX}_tenants/globex/notes/plan.txt: no such key"
        in (own["cause"])
    )
    # acme's object by its URI, or the prefix of a workflow that is no tenant's: refused.
    for uri in (f"{BUCKET_PREFIX}_tenants/acme/notes/plan.txt", f"{BUCKET_PREFIX}notes/plan.txt"):
        for inputs in ({"op": "get", "key": uri}, {"op": "put", "key": uri, "body": "mine"}):
            view = _run(service, "globex", inputs)
            assert view["status"] == "FAILED" and view["error"] == "Loopline.Failed", view
            assert f"{uri} is outside what this workflow may reach" in view["cause"]
    assert _run(service, "acme", {"op": "get", "key": "plan.txt"})["output"] == {
        "out": "acme's plan"
    }


def test_a_tasks_2mb_input_travels_under_its_tenants_prefix_and_reaches_its_steps(
    service: Service,
) -> None:
    register(service, "notes", tenants=("acme",))
    body = "tide " * (2 * 1024 * 1024 // 5)
    view = _run(service, "acme", {"op": "put", "key": "big.txt", "body": body})
    assert view["status"] == "SUCCEEDED", view
    assert view["output"] == {
        "out": {"uri": f"{BUCKET_PREFIX}_tenants/acme/notes/big.txt", "size": len(body)}
    }
    # The input was stored under the task's own prefix, so the view shows it (by link).
    shown = view["inputs"]["body"]
    assert isinstance(shown, dict) and shown["size"] == len(body) + 2, shown
    assert "/_tenants/acme/notes/" + view["id"] + "/_inputs/body/" in shown["link"]
