"""The tool registry and the built-in tools (S3 in moto, HTTP against a local server)."""

from __future__ import annotations

import json
import re
import sys
import threading
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from loopline.runtime import tools
from loopline.runtime.actions import Env, dispatch
from loopline.runtime.errors import StepError
from loopline.runtime.tools import TOOLS, call_tool, get_tool, tool_specs
from loopline.settings import settings
from moto import mock_aws


def run_tool(name: str, args: dict[str, Any], **values: Any) -> Any:
    payload = {
        "action": "tool",
        "workflow": "wf",
        "step": "s",
        "execution": "arn:exec",
        "attempt": 0,
        "config": {"tool": name, "args": args},
        "values": values,
    }
    return dispatch(payload, Env())["output"]


def failure(name: str, args: dict[str, Any]) -> StepError:
    with pytest.raises(StepError) as err:
        run_tool(name, args)
    return err.value


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    settings.cache_clear()
    yield
    settings.cache_clear()


# --------------------------------------------------------------------------- registry


def test_the_built_in_tools_are_registered() -> None:
    assert {"now", "render", "json_query", "http_get", "s3_get", "s3_put"} <= set(TOOLS)
    specs = tool_specs(["json_query", "now"])
    assert [t.name for t in specs] == ["json_query", "now"]
    assert specs[0].schema["required"] == ["data", "query"] and specs[0].description


def test_an_unknown_tool_suggests_the_closest_name() -> None:
    with pytest.raises(StepError) as err:
        get_tool("json_qeury")
    assert err.value.name == "Loopline.Failed"
    assert "unknown tool 'json_qeury' (did you mean 'json_query'?)" in err.value.message
    assert "http_get" in err.value.message
    with pytest.raises(StepError, match="unknown tool 'web_search'"):
        tool_specs(["now", "web_search"])


@pytest.mark.parametrize(
    ("name", "args", "says"),
    [
        ("now", {"format": "week"}, "tool now: invalid args: format: 'week' is not one of"),
        ("now", {"zone": "UTC"}, "Additional properties are not allowed ('zone' was unexpected)"),
        ("json_query", {"data": 1}, "'query' is a required property"),
        ("json_query", {"data": 1, "query": "a", "language": "xpath"}, "language: 'xpath'"),
        ("render", {}, "'template' is a required property"),
        ("http_get", {"url": "ftp://example.com"}, "url: 'ftp://example.com' does not match"),
        ("http_get", {"url": "http://x", "timeout": 0}, "timeout: 0 is less than or equal"),
        ("s3_get", {"uri": ""}, "uri: '' should be non-empty"),
        ("s3_put", {"uri": "k"}, "'body' is a required property"),
    ],
)
def test_args_are_validated_against_the_schema_before_the_call(
    name: str, args: dict[str, Any], says: str
) -> None:
    err = failure(name, args)
    assert err.name == "Loopline.Failed"
    assert f"tool {name}: invalid args: " in err.message and says in err.message


# --------------------------------------------------------------------------- now, render, json_query


def test_now_in_each_format() -> None:
    iso = run_tool("now", {})
    assert iso.endswith("Z") and datetime.fromisoformat(iso.replace("Z", "+00:00")).tzinfo
    assert isinstance(run_tool("now", {"format": "unix"}), int)
    assert len(run_tool("now", {"format": "date", "timezone": "Asia/Tokyo"})) == 10
    assert "+09:00" in run_tool("now", {"timezone": "Asia/Tokyo"})
    assert "unknown timezone 'Mars/Base'" in failure("now", {"timezone": "Mars/Base"}).message


def test_render_returns_the_rendered_template() -> None:
    out = run_tool("render", {"template": {"t": "hi {{ inputs.n }}", "n": [1]}}, inputs={"n": "x"})
    assert out == {"t": "hi x", "n": [1]}


DATA = {"items": [{"n": 1, "tag": "a"}, {"n": 2, "tag": "b"}, {"n": 3, "tag": "b"}]}


def test_json_query_uses_jmespath_by_default() -> None:
    assert run_tool("json_query", {"data": DATA, "query": "items[?n > `1`].n"}) == [2, 3]
    assert run_tool("json_query", {"data": DATA, "query": "length(items)"}) == 3


def test_json_query_with_jsonpath_returns_the_matches() -> None:
    args = {"data": DATA, "query": "$.items[?(@.tag == 'b')].n", "language": "jsonpath"}
    assert run_tool("json_query", args) == [2, 3]
    assert run_tool("json_query", {**args, "query": "$.items[0].tag"}) == ["a"]
    assert run_tool("json_query", {**args, "query": "$.nothing"}) == []


def test_json_query_reads_rendered_args() -> None:
    out = run_tool(
        "json_query",
        {"data": "{{ steps.a.output }}", "query": "items[-1].n"},
        steps={"a": {"output": DATA}},
    )
    assert out == 3


def test_invalid_queries_are_clear_errors() -> None:
    assert "invalid query 'a[?'" in failure("json_query", {"data": {}, "query": "a[?"}).message
    err = failure("json_query", {"data": {}, "query": "$.[[", "language": "jsonpath"})
    assert err.name == "Loopline.Failed" and "invalid JSONPath '$.[['" in err.message


# --------------------------------------------------------------------------- http_get


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"path": self.path, "h": self.headers.get("X-Key")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_http_get_goes_through_the_safe_client(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    err = failure("http_get", {"url": server + "/x"})
    assert err.name == "Loopline.HTTPError"
    assert "refused to connect to 127.0.0.1 (loopback address)" in err.message
    monkeypatch.setenv("LOOPLINE_HTTP_ALLOW_HOSTS", "127.0.0.1")
    settings.cache_clear()
    out = run_tool("http_get", {"url": server + "/x", "query": {"n": 2}, "headers": {"X-Key": "k"}})
    assert out["status"] == 200 and out["body"] == {"path": "/x?n=2", "h": "k"}


def test_http_get_cannot_reach_the_metadata_service() -> None:
    err = failure("http_get", {"url": "http://169.254.169.254/latest/meta-data/iam/"})
    assert "169.254.169.254 (link-local/metadata address)" in err.message


# --------------------------------------------------------------------------- s3

BUCKET = "tool-bucket"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The artifacts bucket (LOOPLINE_BUCKET) and a second bucket, in moto."""
    monkeypatch.setenv("LOOPLINE_BUCKET", BUCKET)
    # No tasks table unless a test makes one (tests.tasktable): with one, a step's S3
    # prefix depends on the tenant of its task, read from the table.
    monkeypatch.delenv("LOOPLINE_TABLE", raising=False)
    settings.cache_clear()
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        client.create_bucket(Bucket="shared-bucket")
        yield client


def stored(client: Any, key: str, bucket: str = BUCKET) -> Any:
    return client.get_object(Bucket=bucket, Key=key)["Body"].read().decode()


def test_s3_put_then_get_json_and_text_under_the_workflows_prefix(s3: Any) -> None:
    out = run_tool("s3_put", {"uri": "a/data.json", "body": {"k": [1, 2]}})
    assert out == {"uri": f"s3://{BUCKET}/wf/a/data.json", "size": len('{"k": [1, 2]}')}
    assert json.loads(stored(s3, "wf/a/data.json")) == {"k": [1, 2]}
    assert run_tool("s3_get", {"uri": "a/data.json"}) == {"k": [1, 2]}
    assert run_tool("s3_get", {"uri": out["uri"]}) == {"k": [1, 2]}  # the full URI too

    run_tool("s3_put", {"uri": "notes.txt", "body": "héllo"})
    assert run_tool("s3_get", {"uri": "notes.txt"}) == "héllo"
    head = s3.head_object(Bucket=BUCKET, Key="wf/notes.txt")
    assert head["ContentType"].startswith("text/plain")


def test_s3_put_takes_a_content_type_and_s3_get_parses_json_by_type(s3: Any) -> None:
    run_tool(
        "s3_put", {"uri": "report", "body": '{"ok": true}', "content_type": "application/json"}
    )
    assert run_tool("s3_get", {"uri": "report"}) == {"ok": True}


def test_s3_get_of_a_missing_object_names_it_in_words(s3: Any) -> None:
    err = failure("s3_get", {"uri": "nope.json"})
    assert err.name == "Loopline.Failed"
    assert f"could not read s3://{BUCKET}/wf/nope.json: no such key" in err.message
    assert "NoSuchKey" not in err.message and "ClientError" not in err.message


def test_s3_tools_cannot_read_or_overwrite_another_workflows_objects(s3: Any) -> None:
    s3.put_object(Bucket=BUCKET, Key="other/secret.json", Body=b'{"secret": 1}')
    for name, args in [
        ("s3_get", {"uri": f"s3://{BUCKET}/other/secret.json"}),
        ("s3_put", {"uri": f"s3://{BUCKET}/other/secret.json", "body": "overwritten"}),
    ]:
        err = failure(name, args)
        assert err.name == "Loopline.Failed"
        assert f"s3://{BUCKET}/other/secret.json is outside what this workflow may reach" in (
            err.message
        )
        assert f"its own prefix (s3://{BUCKET}/wf/)" in err.message
    assert stored(s3, "other/secret.json") == '{"secret": 1}'


@pytest.mark.parametrize(
    "ref",
    [
        "../other/secret.json",
        "a/../../other/secret.json",
        "./x.json",
        "a//b.json",
        "a/",
        "/other/secret.json",
        "a\\..\\..\\other\\secret.json",
        "%2e%2e/other/secret.json",
        "..%2fother%2fsecret.json",
        "a\nb",
        f"s3://{BUCKET}/wf/../other/secret.json",
        f"s3://{BUCKET}/wf/%2E%2E/other/secret.json",
        f"s3://{BUCKET}//other/secret.json",
        f"s3://{BUCKET}/wfx/y.json",  # a prefix of the name is not the prefix
        f"s3://{BUCKET}/wf",
        f"s3://{BUCKET}/wf/x.json?versionId=1",
        f"s3://{BUCKET}/wf/x.json#frag",
        "s3://shared-bucket/reports/x.json",  # not listed in LOOPLINE_S3_ALLOW
        "s3:///wf/x.json",
        "https://example.com/wf/x.json",
    ],
)
def test_s3_keys_may_not_climb_out_of_their_prefix(s3: Any, ref: str) -> None:
    s3.put_object(Bucket=BUCKET, Key="other/secret.json", Body=b"secret")
    for name, args in [("s3_get", {"uri": ref}), ("s3_put", {"uri": ref, "body": "x"})]:
        err = failure(name, args)
        assert err.name == "Loopline.Failed", err.message
        assert err.message.startswith(f"tool {name}: ")
    assert stored(s3, "other/secret.json") == "secret"
    listed = s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    assert [o["Key"] for o in listed] == ["other/secret.json"]
    assert s3.list_objects_v2(Bucket="shared-bucket").get("KeyCount") == 0


def test_s3_allow_lists_other_buckets_and_prefixes(
    s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOOPLINE_S3_ALLOW", "shared-bucket/reports, s3://another-bucket")
    settings.cache_clear()
    s3.create_bucket(Bucket="another-bucket")
    out = run_tool("s3_put", {"uri": "s3://shared-bucket/reports/q1.json", "body": [1]})
    assert out["uri"] == "s3://shared-bucket/reports/q1.json"
    assert run_tool("s3_get", {"uri": "s3://shared-bucket/reports/q1.json"}) == [1]
    run_tool("s3_put", {"uri": "s3://another-bucket/any/key.txt", "body": "ok"})
    assert stored(s3, "any/key.txt", "another-bucket") == "ok"
    for ref in [
        "s3://shared-bucket/reports-old/x",
        "s3://shared-bucket/x",
        "s3://shared-bucket/reports",
    ]:
        err = failure("s3_get", {"uri": ref})
        assert "outside what this workflow may reach" in err.message
        assert "shared-bucket/reports, s3://another-bucket" in err.message
    # the allowed prefix is no way around the key rules
    err = failure("s3_get", {"uri": "s3://shared-bucket/reports/../secret"})
    assert "'..' segment" in err.message


def test_s3_tools_need_a_running_step_and_the_artifacts_bucket(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(StepError, match="only be reached from a running step"):
        call_tool("s3_get", {"uri": "x.json"})
    monkeypatch.delenv("LOOPLINE_BUCKET", raising=False)
    # A tasks table named but missing: with no bucket there is nothing to look up in it.
    monkeypatch.setenv("LOOPLINE_TABLE", "no-such-table")
    settings.cache_clear()
    with mock_aws():
        err = failure("s3_put", {"uri": "x.json", "body": 1})
    assert "no artifacts bucket is configured (LOOPLINE_BUCKET)" in err.message


def test_a_bucket_name_s3_refuses_is_a_failure_not_worth_a_retry(s3: Any) -> None:
    p = {
        "action": "tool",
        "workflow": "wf",
        "step": "s",
        "execution": "arn:exec",
        "config": {"tool": "s3_put", "args": {"uri": "s3://Bad_Bucket!/wf/x.json", "body": 1}},
        "values": {},
    }
    with pytest.raises(StepError) as err:
        dispatch(p, Env(bucket="Bad_Bucket!"))
    assert err.value.name == "Loopline.Failed"
    assert err.value.message.startswith(
        "could not write s3://Bad_Bucket!/wf/x.json: Parameter validation failed: "
        'Invalid bucket name "Bad_Bucket!"'
    )


# --------------------------------------------------------------------------- s3: tenants


@pytest.fixture
def tenant_tasks(s3: Any) -> Iterator[dict[str, str]]:
    """A running task of workflow ``wf`` for each of two tenants: tenant → its execution ARN."""
    from tests.tasktable import tenant_task_executions

    with tenant_task_executions() as arns:
        yield arns


def run_task_tool(execution: str, name: str, args: dict[str, Any]) -> Any:
    payload = {
        "action": "tool",
        "workflow": "wf",
        "step": "s",
        "execution": execution,
        "attempt": 0,
        "config": {"tool": name, "args": args},
        "values": {},
    }
    return dispatch(payload, Env())["output"]


def task_tool_failure(execution: str, name: str, args: dict[str, Any]) -> StepError:
    with pytest.raises(StepError) as err:
        run_task_tool(execution, name, args)
    return err.value


def test_a_tasks_s3_tools_reach_only_its_tenants_prefix(
    s3: Any, tenant_tasks: dict[str, str]
) -> None:
    # Two tenants run workflows of the same name: neither reads nor overwrites the other's.
    acme, globex = tenant_tasks["acme"], tenant_tasks["globex"]
    out = run_task_tool(acme, "s3_put", {"uri": "notes.txt", "body": "acme only"})
    assert out["uri"] == f"s3://{BUCKET}/_tenants/acme/wf/notes.txt"
    assert stored(s3, "_tenants/acme/wf/notes.txt") == "acme only"
    assert run_task_tool(acme, "s3_get", {"uri": "notes.txt"}) == "acme only"

    err = task_tool_failure(globex, "s3_get", {"uri": "notes.txt"})
    assert f"could not read s3://{BUCKET}/_tenants/globex/wf/notes.txt: no such key" in (
        err.message
    )
    for uri in (f"s3://{BUCKET}/_tenants/acme/wf/notes.txt", f"s3://{BUCKET}/wf/notes.txt"):
        for name, args in [("s3_get", {"uri": uri}), ("s3_put", {"uri": uri, "body": "x"})]:
            err = task_tool_failure(globex, name, args)
            assert err.name == "Loopline.Failed"
            assert f"{uri} is outside what this workflow may reach: its own prefix " in err.message
            assert f"(s3://{BUCKET}/_tenants/globex/wf/)" in err.message
    run_task_tool(globex, "s3_put", {"uri": "notes.txt", "body": "globex's"})
    assert stored(s3, "_tenants/acme/wf/notes.txt") == "acme only"
    assert run_task_tool(globex, "s3_get", {"uri": "notes.txt"}) == "globex's"


def test_an_execution_that_is_no_task_cannot_reach_a_tenants_objects(
    s3: Any, tenant_tasks: dict[str, str]
) -> None:
    run_task_tool(tenant_tasks["acme"], "s3_put", {"uri": "notes.txt", "body": "acme only"})
    # The same workflow run by hand (loopline run, a console start): its own prefix holds
    # no tenant's objects, and a tenant's are outside it.
    assert "no such key" in failure("s3_get", {"uri": "notes.txt"}).message
    assert run_tool("s3_put", {"uri": "x.json", "body": 1})["uri"] == f"s3://{BUCKET}/wf/x.json"
    err = failure("s3_get", {"uri": f"s3://{BUCKET}/_tenants/acme/wf/notes.txt"})
    assert "is outside what this workflow may reach" in err.message
    assert stored(s3, "_tenants/acme/wf/notes.txt") == "acme only"


def test_a_tenant_that_cannot_be_looked_up_fails_the_step_rather_than_guess(
    s3: Any, tenant_tasks: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from loopline import store

    def unavailable(task_id: str) -> Any:
        raise ConnectionError("the table cannot be reached")

    monkeypatch.setattr(store, "get_task_record", unavailable)
    # A new task (no lookup remembered yet) whose table cannot be read.
    execution = tenant_tasks["acme"].rsplit(":", 1)[0] + ":task_0000000000000000000000000X"
    err = task_tool_failure(execution, "s3_put", {"uri": "notes.txt", "body": "x"})
    assert err.name == "Loopline.Transient"  # tried again later, never under another prefix
    assert s3.list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0
    # A step that touches no S3 object looks nothing up.
    assert isinstance(run_task_tool(execution, "now", {"format": "unix"}), int)


# A tool called by a model is confined too: tests/providers/test_tool_loop.py.


# --------------------------------------------------------------------------- user tool modules


@pytest.fixture
def tool_modules(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    def use(modules: str) -> None:
        monkeypatch.setenv("LOOPLINE_TOOL_MODULES", modules)
        settings.cache_clear()

    forget_user_tools()  # another test in this process may have loaded them
    yield use
    forget_user_tools()


def forget_user_tools() -> None:
    """Unregister the test tool modules, so the next import registers them again."""
    TOOLS.pop("word_count", None)
    TOOLS.pop("raise_it", None)
    for name in ("tests.unit.user_tools", "tests.unit.broken_tools", "tests.unit.raising_tools"):
        tools._loaded_modules.discard(name)
        sys.modules.pop(name, None)


def test_a_user_tool_module_registers_its_tools_on_first_use(tool_modules: Any) -> None:
    tool_modules("tests.unit.user_tools")
    assert "word_count" not in TOOLS  # nothing imported before the registry is used
    out = run_tool("word_count", {"text": "{{ inputs.t }}"}, inputs={"t": "a tidal bore"})
    assert out == {"words": 3, "longest": "tidal"}
    assert get_tool("word_count").description.startswith("Counts the words")
    assert [t.name for t in tool_specs(["word_count"])] == ["word_count"]
    assert call_tool("word_count", {"text": ""}) == {"words": 0, "longest": ""}
    err = failure("word_count", {"text": "x", "max": -1})
    assert "tool word_count: invalid args: max: -1 is less than the minimum of 0" in err.message
    assert "more than 1" in failure("word_count", {"text": "a b", "max": 1}).message


def test_a_tool_module_that_fails_to_import_is_named(tool_modules: Any) -> None:
    tool_modules("tests.unit.user_tools, tests.unit.broken_tools")
    err = failure("now", {})
    assert err.name == "Loopline.Failed"
    assert "the tool module 'tests.unit.broken_tools' (LOOPLINE_TOOL_MODULES)" in err.message
    assert err.message.endswith("could not be imported: this tool module is broken on purpose")
    assert "RuntimeError" not in err.message


def test_a_missing_tool_module_is_named(tool_modules: Any) -> None:
    tool_modules("tests.unit.no_such_tools")
    err = failure("now", {})
    assert "the tool module 'tests.unit.no_such_tools'" in err.message
    assert "No module named 'tests.unit.no_such_tools'" in err.message
    assert "ModuleNotFoundError" not in err.message


@pytest.mark.parametrize(
    ("kind", "name", "message"),
    [
        ("key", "Loopline.Failed", 'tool raise_it failed: missing key "missing"'),
        ("type", "Loopline.Failed", "tool raise_it failed: a null value has no len()"),
        (
            "attribute",
            "Loopline.Failed",
            "tool raise_it failed: a null value has no attribute 'strip'",
        ),
        ("zero", "Loopline.Failed", "tool raise_it failed: division by zero"),
        ("custom", "Loopline.Failed", "tool raise_it failed: quota blown for an object"),
        ("silent", "Loopline.Failed", "tool raise_it failed: no details were given"),
        (
            "os",
            "Loopline.Failed",
            "tool raise_it failed: no such file or directory (/nonexistent/loopline/file.txt)",
        ),
        ("timeout", "Loopline.Transient", "tool raise_it failed: the backend did not answer"),
        ("other", "Loopline.Failed", "tool raise_it failed: unknown kind other"),
    ],
)
def test_a_user_tool_raising_any_exception_gives_a_readable_cause(
    tool_modules: Any, kind: str, name: str, message: str
) -> None:
    tool_modules("tests.unit.raising_tools")
    err = failure("raise_it", {"kind": kind})
    assert (err.name, err.message) == (name, message)
    assert not re.search(r"\b[A-Z]\w*(Error|Exception)\b|QuotaBlown|NoneType|<|0x", err.message)


def test_the_checks_know_the_builtin_tools_by_name_without_importing_the_registry() -> None:
    from loopline.environment import BUILTIN_TOOLS
    from loopline.runtime.tools import BUILTINS

    assert {t.name for t in BUILTINS} == BUILTIN_TOOLS
