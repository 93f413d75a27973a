"""Large outputs go to S3 (moto) as references; references are resolved before actions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from loopline.runtime import largevalues
from loopline.runtime.actions import Env, dispatch
from loopline.runtime.errors import StepError
from loopline.runtime.largevalues import REF_KEY, is_ref, offload, resolve
from loopline.runtime.scripted import ScriptedModel
from loopline.settings import settings
from moto import mock_aws

BUCKET = "values-bucket"


def payload(action: str, config: dict[str, Any], **values: Any) -> dict[str, Any]:
    return {
        "action": action,
        "workflow": "wf",
        "step": "s",
        "execution": "arn:aws:states:us-east-1:123456789012:execution:wf:run-1",
        "attempt": 0,
        "config": config,
        "values": values,
    }


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("LOOPLINE_LARGE_VALUE_BYTES", "1000")
    # No tasks table unless a test makes one (tests.tasktable): with one, a step's S3
    # prefix depends on the tenant of its task, read from the table.
    monkeypatch.delenv("LOOPLINE_TABLE", raising=False)
    settings.cache_clear()
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client
    settings.cache_clear()


def env(*rules: dict[str, Any]) -> Env:
    return Env(model=ScriptedModel.from_data({"responses": list(rules)}), bucket=BUCKET)


def test_a_large_output_is_stored_and_replaced_by_a_reference(s3: Any) -> None:
    text = "tide " * 1000
    out = dispatch(payload("llm", {"prompt": "p"}), env({"answer": text}))
    ref = out["output"]
    assert is_ref(ref) and set(ref) == {REF_KEY, "size", "preview"}
    assert ref["size"] == len(json.dumps(text)) and ref["preview"] == text[:200]
    assert ref[REF_KEY].startswith(f"s3://{BUCKET}/wf/run-1/s/") and ref[REF_KEY].endswith(".json")
    assert out["usage"]["output_tokens"] > 0  # only the output moves
    key = ref[REF_KEY].split("/", 3)[3]
    assert json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()) == text


def test_a_small_output_stays_inline(s3: Any) -> None:
    out = dispatch(payload("llm", {"prompt": "p"}), env({"answer": "short"}))
    assert out["output"] == "short"


def test_without_a_bucket_a_large_output_stays_inline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPLINE_LARGE_VALUE_BYTES", "10")
    monkeypatch.delenv("LOOPLINE_BUCKET", raising=False)
    settings.cache_clear()
    try:
        e = Env(model=ScriptedModel.from_data({"responses": [{"answer": "x" * 100}]}))
        assert dispatch(payload("llm", {"prompt": "p"}), e)["output"] == "x" * 100
    finally:
        settings.cache_clear()


def test_the_bucket_comes_from_the_settings_when_the_env_has_none(
    s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOOPLINE_BUCKET", BUCKET)
    settings.cache_clear()
    out = dispatch(payload("render", {"template": "y" * 2000}), Env())
    assert is_ref(out["output"]) and out["output"]["preview"].startswith("yyy")


def test_references_are_resolved_before_every_action(s3: Any) -> None:
    e = env({"when": "has 5000", "answer": "ok"})
    big = dispatch(payload("render", {"template": "z" * 5000}), e)["output"]
    assert is_ref(big)
    steps = {"big": {"output": big}}
    # tool, eval, render, llm and task all see the value itself
    tool = payload(
        "tool",
        {"tool": "json_query", "args": {"data": "{{ steps.big.output }}", "query": "length(@)"}},
        steps=steps,
    )
    assert dispatch(tool, e)["output"] == 5000
    assert (
        dispatch(payload("eval", {"expr": "len(steps.big.output)"}, steps=steps), e)["output"]
        == 5000
    )
    small = dispatch(payload("render", {"template": "{{ len(steps.big.output) }}"}, steps=steps), e)
    assert small["output"] == 5000
    assert (
        dispatch(payload("llm", {"prompt": "has {{ len(steps.big.output) }}"}, steps=steps), e)[
            "output"
        ]
        == "ok"
    )
    seen: list[Any] = []
    e.invoke = lambda fn, event: seen.append(event["args"]["text"]) or 1
    dispatch(
        payload("task", {"function": "f", "args": {"text": "{{ steps.big.output }}"}}, steps=steps),
        e,
    )
    assert seen == ["z" * 5000]


def test_vote_aggregate_results_are_resolved(s3: Any) -> None:
    e = env()
    items = dispatch(payload("render", {"template": ["item"] * 300}), e)["output"]
    assert is_ref(items)
    p = payload("vote_aggregate", {"voters": 1})
    p["results"] = [{"item": items, "verdicts": [{"refuted": False}]}]
    out = dispatch(p, e)["output"]
    assert is_ref(out["survived"])  # the aggregate holds the item: large again
    assert resolve(out, BUCKET)["survived"] == [["item"] * 300]


def test_a_large_object_keeps_its_keys_and_stores_its_largest_values(s3: Any) -> None:
    output = {"verdict": "ok", "notes": "n" * 3000, "table": ["row"] * 400, "count": 2}
    out = dispatch(payload("render", {"template": output}), env())["output"]
    assert list(out) == ["verdict", "notes", "table", "count"]
    assert (out["verdict"], out["count"]) == ("ok", 2)
    assert is_ref(out["notes"]) and is_ref(out["table"])
    assert out["notes"][REF_KEY].startswith(f"s3://{BUCKET}/wf/run-1/s/")
    assert resolve(out, BUCKET, "wf") == output


def test_a_large_object_stores_only_what_it_must(s3: Any) -> None:
    output = {"small": "s" * 400, "big": "b" * 1500}
    out = dispatch(payload("render", {"template": output}), env())["output"]
    assert out["small"] == "s" * 400 and is_ref(out["big"])


def test_an_object_of_many_small_values_is_stored_whole(s3: Any) -> None:
    # After "big", 2.6 KB of values too small to be worth a reference: still too large.
    output = {"big": "b" * 1500, **{f"k{i}": "v" * 50 for i in range(40)}}
    out = dispatch(payload("render", {"template": output}), env())["output"]
    assert is_ref(out)
    stored = s3.list_objects_v2(Bucket=BUCKET)["Contents"]
    assert len(stored) == 1  # the whole object; nothing for "big" on its own
    assert resolve(out, BUCKET) == output


def test_references_outside_the_bucket_or_workflow_are_left_alone(s3: Any) -> None:
    foreign = {REF_KEY: "s3://someone-else/wf/secret.json", "size": 1, "preview": ""}
    other_wf = {REF_KEY: f"s3://{BUCKET}/other/x.json", "size": 1, "preview": ""}
    p = payload("eval", {"expr": "inputs"}, inputs={"a": foreign, "b": other_wf})
    assert dispatch(p, env())["output"] == {"a": foreign, "b": other_wf}


def test_resolve_walks_nested_values_and_reads_each_object_once(s3: Any) -> None:
    e = env()
    ref = dispatch(payload("render", {"template": list(range(500))}), e)["output"]
    calls: list[str] = []
    real = largevalues.get_object

    def counting(uri: str) -> tuple[bytes, str]:
        calls.append(uri)
        return real(uri)

    largevalues.get_object = counting  # type: ignore[assignment]
    try:
        out = resolve({"a": [ref, {"b": ref}], "n": 1}, BUCKET)
    finally:
        largevalues.get_object = real  # type: ignore[assignment]
    assert out == {"a": [list(range(500)), {"b": list(range(500))}], "n": 1}
    assert len(calls) == 1


def test_offload_leaves_results_without_output_alone() -> None:
    assert offload({}, payload("human", {}), BUCKET) == {}
    assert offload({"output": "x"}, payload("eval", {}), None) == {"output": "x"}


def test_references_that_climb_out_of_the_workflows_prefix_are_left_alone(s3: Any) -> None:
    s3.put_object(Bucket=BUCKET, Key="other/secret.json", Body=b'"secret"')
    s3.put_object(Bucket=BUCKET, Key="wf/../other/secret.json", Body=b'"secret"')
    refs = [
        {REF_KEY: f"s3://{BUCKET}/wf/../other/secret.json", "size": 1, "preview": ""},
        {REF_KEY: f"s3://{BUCKET}/wf/%2e%2e/other/secret.json", "size": 1, "preview": ""},
        {REF_KEY: f"s3://{BUCKET}/wf//other/secret.json", "size": 1, "preview": ""},
        {REF_KEY: f"s3://{BUCKET}/wfx/secret.json", "size": 1, "preview": ""},
        {REF_KEY: "s3://", "size": 1, "preview": ""},
        {REF_KEY: f"s3://{BUCKET}/wf/x.json?versionId=1", "size": 1, "preview": ""},
    ]
    p = payload("eval", {"expr": "inputs.refs"}, inputs={"refs": refs})
    assert dispatch(p, env())["output"] == refs


@pytest.fixture
def tenant_runs(s3: Any) -> Iterator[dict[str, str]]:
    """A running task of workflow ``wf`` for each of two tenants: tenant → its execution ARN."""
    from tests.tasktable import tenant_task_executions

    with tenant_task_executions() as arns:
        yield arns


def test_a_tasks_large_values_live_under_its_tenants_prefix_and_no_other_tenant_reads_them(
    s3: Any, tenant_runs: dict[str, str]
) -> None:
    e = env()
    acme = {**payload("render", {"template": "secret " * 500}), "execution": tenant_runs["acme"]}
    ref = dispatch(acme, e)["output"]
    task_id = tenant_runs["acme"].rsplit(":", 1)[1]
    assert ref[REF_KEY].startswith(f"s3://{BUCKET}/_tenants/acme/wf/{task_id}/s/")
    read = payload("eval", {"expr": "len(inputs.v)"}, inputs={"v": ref})
    assert dispatch({**read, "execution": tenant_runs["acme"]}, e)["output"] == 3500
    # The same reference in another tenant's task of a workflow of the same name, or in an
    # execution that is no task, is left as it is (an object of 3 keys): never read.
    assert dispatch({**read, "execution": tenant_runs["globex"]}, e)["output"] == 3
    assert dispatch(read, e)["output"] == 3


def test_a_task_view_shows_only_its_own_tenants_large_values(
    s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loopline.service import views

    monkeypatch.setenv("LOOPLINE_BUCKET", BUCKET)
    settings.cache_clear()
    own = largevalues.store_value("acme's", BUCKET, ["_tenants", "acme", "wf", "task_1", "s"])
    other = largevalues.store_value("globex's", BUCKET, ["_tenants", "globex", "wf", "t", "s"])
    untenanted = largevalues.store_value("by hand", BUCKET, ["wf", "run-1", "s"])
    task = {
        "id": "task_1",
        "tenant": "acme",
        "workflow": "wf",
        "status": "SUCCEEDED",
        "created_at": "2026-01-01T00:00:00Z",
        "steps": {},
        "output": {"own": own, "other": other, "untenanted": untenanted},
    }
    shown = views.task_view(task)["output"]
    assert shown == {"own": "acme's", "other": other, "untenanted": untenanted}
    run = {"step": "s", "attempt": 0, "status": "SUCCEEDED", "output": [own, other]}
    assert views.step_view(task, "s", [run], None)["runs"][0]["output"] == ["acme's", other]


def test_a_tasks_large_inputs_are_stored_under_its_tenants_prefix(s3: Any) -> None:
    sent = largevalues.offload_inputs(
        {"doc": "x" * 5000}, workflow="wf", execution="task_1", bucket=BUCKET, tenant="acme"
    )
    assert sent["doc"][REF_KEY].startswith(f"s3://{BUCKET}/_tenants/acme/wf/task_1/_inputs/doc/")


def test_a_bucket_s3_refuses_fails_the_step_without_a_retry(
    s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    e = Env(bucket="Not_A_Bucket!")
    with pytest.raises(StepError) as err:
        dispatch(payload("render", {"template": "z" * 5000}), e)
    assert err.value.name == "Loopline.Failed"  # retrying cannot make the name valid
    assert err.value.message.startswith("could not write s3://Not_A_Bucket!/wf/run-1/s/")
    assert 'Invalid bucket name "Not_A_Bucket!"' in err.value.message
    assert "ParamValidationError" not in err.value.message
