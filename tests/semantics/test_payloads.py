"""Each Lambda receives only the values it reads, executed in moto: one field of a large
output arrives without the rest, an object output stored in S3 keeps its keys (so a path
to one of them still names a value), and a value that is missing fails the step with
the same message as when whole records were passed."""

from __future__ import annotations

import json
import textwrap
from typing import Any

import boto3
import pytest
from loopline.compiler import compile_workflow
from loopline.dsl import load_workflow_text
from loopline.local.executor import LocalExecutor
from loopline.runtime.actions import Env
from loopline.runtime.largevalues import is_ref
from loopline.runtime.payload import expanded
from loopline.runtime.scripted import ScriptedModel

from tests.semantics.conftest import Runner

pytestmark = pytest.mark.moto

READS_ONE_FIELD = """
name: one-field
steps:
  - id: judge
    llm: Judge the draft.
    output_schema:
      type: object
      required: [verdict, notes]
      properties: {verdict: {type: string}, notes: {type: string}}
  - id: route
    branch:
      if: "steps.judge.output.verdict == 'ok'"
      then:
        - {id: publish, tool: render, args: {template: "publish: {{ steps.judge.output.verdict }}"}}
      else:
        - {id: hold, tool: render, args: {template: "hold"}}
  - id: measure
    tool: json_query
    args: {data: {notes: "{{ steps.judge.output.notes }}"}, query: "length(notes)"}
output:
  route: "{{ steps.route.output }}"
  notes: "{{ steps.measure.output }}"
"""


def _execute(notes: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]], list[str]]:
    """Run READS_ONE_FIELD whose judge answers ``notes``: the execution's description,
    each Loopline function's payload by step (as Step Functions scheduled it), and the
    keys of the objects stored in the local bucket."""
    answer = {"verdict": "ok", "notes": notes}
    model = ScriptedModel.from_data({"responses": [{"step": "judge", "answer": answer}]})
    definition = compile_workflow(load_workflow_text(READS_ONE_FIELD, "wf.yaml")).definition
    with LocalExecutor(env=Env(model=model)) as ex:
        arn = ex.start_execution(ex.create_state_machine("one-field", definition), {})
        desc = ex.wait(arn, timeout=60)
        payloads = {}
        for event in ex.history(arn):
            details = event.get("lambdaFunctionScheduledEventDetails")
            if details:
                payload = expanded(json.loads(details["input"]))
                payloads[payload["step"]] = payload
        listed = boto3.client("s3", region_name="us-east-1").list_objects_v2(Bucket=ex.env.bucket)
        stored = [o["Key"] for o in listed.get("Contents", [])]
    return desc, payloads, stored


def test_a_step_reading_one_field_of_a_big_output_receives_only_that_field() -> None:
    desc, payloads, stored = _execute("n" * 20_000)  # 20 KB: it stays in the state
    assert desc["status"] == "SUCCEEDED", desc
    assert json.loads(desc["output"]) == {"route": "publish: ok", "notes": 20_000}
    assert stored == []
    assert payloads["publish"]["values"] == {"steps": {"judge": {"output": {"verdict": "ok"}}}}
    assert len(json.dumps(payloads["publish"])) < 1_000
    notes = payloads["measure"]["values"]["steps"]["judge"]["output"]
    assert list(notes) == ["notes"] and len(notes["notes"]) == 20_000  # no usage, no verdict


def test_an_object_output_stored_in_s3_keeps_its_keys() -> None:
    desc, payloads, stored = _execute("n" * 100_000)  # over the 64 KB threshold
    assert desc["status"] == "SUCCEEDED", desc
    # The Choice rule reads the verdict in the state, and each step gets its field: the
    # verdict as it is, the notes as a reference the function resolves.
    assert json.loads(desc["output"]) == {"route": "publish: ok", "notes": 100_000}
    assert payloads["publish"]["values"] == {"steps": {"judge": {"output": {"verdict": "ok"}}}}
    notes = payloads["measure"]["values"]["steps"]["judge"]["output"]["notes"]
    assert is_ref(notes) and notes["size"] == 100_002
    assert len(stored) == 1 and stored[0].startswith("one-field/")


@pytest.mark.parametrize(
    ("workflow", "cause"),
    [
        (
            """
            name: skipped
            inputs: {go: {type: boolean}}
            steps:
              - {id: a, if: "inputs.go == true", tool: now}
              - {id: b, tool: render, args: {template: "{{ steps.a.output.x }}"}}
            """,
            "template '{{ steps.a.output.x }}' references steps.a.output.x, which has no "
            "value (step a was skipped)",
        ),
        (
            """
            name: passed-over
            steps:
              - {id: a, tool: json_query, args: {data: {}, query: "[["}, on_error: {goto: c}}
              - {id: b, tool: now}
              - {id: c, tool: render, args: {template: "{{ steps.b.output }}"}}
            """,
            "template '{{ steps.b.output }}' references steps.b.output, which has no value "
            "(step b has not run)",
        ),
        (
            """
            name: caught-group
            steps:
              - id: g
                on_error: continue
                group:
                  - {id: g1, tool: json_query, args: {data: {}, query: "[["}}
                  - {id: g2, tool: now}
              - {id: c, tool: render, args: {template: "{{ len(steps.g2.output) }}"}}
            """,
            "template '{{ len(steps.g2.output) }}' references steps.g2.output, which has no "
            "value (step g2 has not run)",
        ),
        (
            """
            name: not-required
            steps:
              - id: a
                llm: Judge.
                output_schema: {type: object, required: [verdict]}
              - {id: b, tool: render, args: {template: "{{ steps.a.output.verdict.why }}"}}
            """,
            "template '{{ steps.a.output.verdict.why }}' references "
            "steps.a.output.verdict.why, which has no value",
        ),
    ],
    ids=["skipped", "passed-over-by-goto", "group-caught-its-error", "below-a-required-key"],
)
def test_a_missing_value_fails_the_step_naming_why(run: Runner, workflow: str, cause: str) -> None:
    result = run(textwrap.dedent(workflow), script=[{"answer": {"verdict": "ok"}}])
    assert (result.status, result.error, result.cause) == ("FAILED", "Loopline.Failed", cause)
