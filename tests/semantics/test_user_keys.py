"""A workflow's own keys that end in ``.$`` are data, never paths Step Functions evaluates:
every place a user value reaches the definition, executed in moto, gives the key back
literally (``{"ctx.$": "$$.Execution"}`` comes back as that object, not the execution)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from loopline.compiler import compile_workflow
from loopline.dsl import load_workflow_text
from loopline.local.run import run_workflow

from tests.semantics.conftest import Runner

#: Keys Step Functions would evaluate (and one that already looks escaped).
TRAP = {"ctx.$": "$$.Execution", "all.$": "$", "tilde.$~": "kept"}
TRAP_YAML = json.dumps(TRAP)


def test_tool_args_keep_keys_ending_in_dollar(run: Runner) -> None:
    result = run(
        f"""
name: keys
steps:
  - {{id: echo, tool: render, args: {{template: {TRAP_YAML}}}}}
"""
    )
    assert (result.status, result.output) == ("SUCCEEDED", TRAP), (result.error, result.cause)


def test_task_args_reach_the_custom_function_as_written(run: Runner) -> None:
    seen: list[Any] = []

    def echo(event: Any, context: Any) -> Any:
        seen.append(event["args"])
        return event["args"]

    result = run(
        f"""
name: keys
step_types:
  echo: {{function: EchoFunction}}
steps:
  - {{id: call, task: echo, args: {{nested: [{TRAP_YAML}]}}}}
""",
        functions={"EchoFunction": echo},
    )
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    assert seen == [{"nested": [TRAP]}]
    assert result.output == {"nested": [TRAP]}


class _Echo(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        answer = json.dumps(
            {
                "body": json.loads(body),
                "path": self.path,
                "header": self.headers.get("X-Trap.$"),
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def echo_url() -> Iterator[str]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/echo"
    finally:
        srv.shutdown()
        srv.server_close()


def test_http_body_headers_and_query_keep_keys_ending_in_dollar(run: Runner, echo_url: str) -> None:
    result = run(
        f"""
name: keys
steps:
  - id: call
    http:
      method: POST
      url: {echo_url}
      headers: {{"X-Trap.$": "$$.Execution.Id"}}
      query: {{"q.$": "$"}}
      body: {TRAP_YAML}
      allow_hosts: [127.0.0.1]
"""
    )
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    body = result.output["body"]
    assert body["body"] == TRAP
    assert body["path"] == "/echo?q.%24=%24"
    assert body["header"] == "$$.Execution.Id"


def test_llm_output_schema_keeps_keys_ending_in_dollar(run: Runner) -> None:
    # "pattern.$" read as a path would make the pattern the execution's name.
    schema = {
        "type": "object",
        "properties": {
            "ctx.$": {"type": "string"},
            "name": {"type": "string", "pattern.$": "$$.Execution.Name"},
        },
        "required": ["ctx.$"],
        "additionalProperties": False,
    }
    result = run(
        f"""
name: keys
steps:
  - id: ask
    llm: answer
    output_schema: {json.dumps(schema)}
""",
        script=[{"step": "ask", "answer": {"ctx.$": "$$.Execution", "name": "x"}}],
    )
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    assert result.output == {"ctx.$": "$$.Execution", "name": "x"}


def test_human_context_and_form_schema_keep_keys_ending_in_dollar(run: Runner) -> None:
    form = {"type": "object", "properties": {"ctx.$": {"type": "string"}}}
    result = run(
        f"""
name: keys
inputs:
  topic: {{type: string, default: tides}}
steps:
  - id: fill
    human_task:
      instruction: Fill it in
      context: {{"ctx.$": "{{{{ inputs.topic }}}}", "all.$": "$"}}
      form_schema: {json.dumps(form)}
      timeout: 1h
"""
    )
    assert result.status == "WAITING", (result.error, result.cause)
    (wait,) = result.waiting
    assert wait.context == {"ctx.$": "tides", "all.$": "$"}
    assert wait.form_schema == form


def test_succeed_with_only_literals_keeps_keys_ending_in_dollar(run: Runner) -> None:
    result = run(
        f"""
name: keys
steps:
  - {{id: done, succeed: {TRAP_YAML}}}
"""
    )
    assert (result.status, result.output) == ("SUCCEEDED", TRAP), (result.error, result.cause)


def test_succeed_with_templates_keeps_keys_ending_in_dollar(run: Runner) -> None:
    result = run(
        """
name: keys
inputs:
  topic: {type: string, default: tides}
steps:
  - id: done
    succeed: {"ctx.$": "$$.Execution", "topic": "{{ inputs.topic }}", "deep": [{"all.$": "$"}]}
"""
    )
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    assert result.output == {"ctx.$": "$$.Execution", "topic": "tides", "deep": [{"all.$": "$"}]}


def test_workflow_output_keeps_keys_ending_in_dollar(run: Runner) -> None:
    result = run(
        """
name: keys
steps:
  - {id: first, tool: render, args: {template: one}}
output:
  "all.$": "$"
  first: "{{ steps.first.output }}"
  list: [{"ctx.$": "$$.Execution"}]
"""
    )
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    assert result.output == {"all.$": "$", "first": "one", "list": [{"ctx.$": "$$.Execution"}]}


def test_input_defaults_keep_keys_ending_in_dollar() -> None:
    wf = load_workflow_text(
        f"""
name: keys
inputs:
  cfg: {{type: json, default: {TRAP_YAML}}}
  given: {{type: json}}
steps:
  - {{id: done, succeed: {{cfg: "{{{{ inputs.cfg }}}}", given: "{{{{ inputs.given }}}}"}}}}
""",
        "t.yaml",
    )
    # Started without cfg (as a caller of StartExecution may), the state machine applies
    # the default itself.
    result = run_workflow(compile_workflow(wf).definition, wf, {"given": {"x.$": "$"}})
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    assert result.output == {"cfg": TRAP, "given": {"x.$": "$"}}


def test_vote_items_keep_keys_ending_in_dollar(run: Runner) -> None:
    claim = {"claim.$": "$$.Execution"}
    result = run(
        """
name: keys
inputs:
  claims: {type: json, required: true}
steps:
  - id: judge
    vote: {input: inputs.claims, voters: 2, rules: "Refute nothing."}
""",
        inputs={"claims": [claim]},
        script=[{"step": "judge", "answer": {"refuted": False, "reason": "fine"}}],
    )
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    assert result.output["survived"] == [claim]


# --------------------------------------------------------------------------- the definition

EVERYWHERE = f"""
name: everywhere
inputs:
  cfg: {{type: json, default: {TRAP_YAML}}}
step_types:
  echo: {{function: EchoFunction}}
steps:
  - {{id: a, tool: render, args: {{template: {TRAP_YAML}}}}}
  - {{id: b, task: echo, args: {TRAP_YAML}}}
  - id: c
    http: {{url: "http://example.com", headers: {{"H.$": "$"}}, query: {{"q.$": "$"}}, body: {TRAP_YAML}}}
  - {{id: d, llm: hi, output_schema: {{type: object, properties: {{"p.$": {{type: string}}}}}}}}
  - id: e
    approval: {{timeout: 1h, context: {{"c.$": "{{{{ inputs.cfg }}}}"}}}}
  - id: f
    human_task: {{timeout: 1h, form_schema: {{type: object, properties: {{"p.$": {{type: string}}}}}}}}
  - {{id: g, succeed: {{"s.$": "$", t: "{{{{ inputs.cfg }}}}"}}}}
output: {{"o.$": "$", t: "{{{{ inputs.cfg }}}}"}}
"""


def _evaluated_keys(value: Any) -> Iterator[tuple[str, Any]]:
    """Every key ending in ``.$`` (a ``Result`` is taken as it is: it is skipped)."""
    if isinstance(value, dict):
        for k, v in value.items():
            if k.endswith(".$"):
                yield k, v
            if k != "Result":
                yield from _evaluated_keys(v)
    elif isinstance(value, list):
        for v in value:
            yield from _evaluated_keys(v)


def test_no_user_key_is_evaluated_anywhere_in_the_definition() -> None:
    definition = compile_workflow(load_workflow_text(EVERYWHERE, "t.yaml")).definition
    user = {"ctx.$", "all.$", "H.$", "q.$", "p.$", "c.$", "s.$", "o.$"}
    found = {k for k, _ in _evaluated_keys(definition)}
    assert not (found & user)
    # What Step Functions does evaluate is the compiler's own paths and functions.
    for key, value in _evaluated_keys(definition):
        assert isinstance(value, str) and value.startswith(("$", "States.")), (key, value)


@pytest.mark.parametrize(
    "value",
    [
        TRAP,
        {"a.$~~": [{"b.$": {"c": "d.$"}}], "plain": "x.$", "e~": 1, "f.$x": 2},
        [{"x.$": 1}, "y.$"],
        "text.$",
    ],
)
def test_escaping_keys_is_undone_exactly(value: Any) -> None:
    from loopline.runtime.payload import escape_keys, unescape_keys

    escaped = escape_keys(value)
    assert not any(True for _ in _evaluated_keys(escaped))
    assert unescape_keys(escaped) == value
