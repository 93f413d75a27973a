"""A workflow given a 2 MB input runs: large input values go to S3 (moto) and travel by
reference, like large step outputs, far below Step Functions' 256 KB state limit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from loopline.compiler import compile_workflow
from loopline.dsl import load_workflow_text, resolve_inputs
from loopline.local.executor import LOCAL_BUCKET, LocalExecutor
from loopline.local.run import run_workflow
from loopline.runtime import largevalues
from loopline.runtime.largevalues import REF_KEY

from tests.cli.test_cli import loopline

pytestmark = pytest.mark.moto

SIZE = 2 * 1024 * 1024
WORKFLOW = """
name: big-input
inputs:
  doc: {type: string, required: true}
  meta: {type: json, default: {}}
  title: {type: string, default: tides}
steps:
  - id: measure
    tool: json_query
    args:
      data: {text: "{{ inputs.doc }}", parts: "{{ inputs.meta.parts }}"}
      query: "[length(text), length(parts)]"
  - id: summary
    llm: "{{ inputs.title }}: {{ steps.measure.output }}; starts {{ inputs.doc }}"
output:
  sizes: "{{ steps.measure.output }}"
  summary: "{{ steps.summary.output }}"
  doc: "{{ inputs.doc }}"
"""


def _doc() -> str:
    return ("high 06:12 low 12:30 " * (SIZE // 20 + 1))[:SIZE]


def test_a_2mb_input_runs_and_the_result_shows_it_resolved(tmp_path: Path) -> None:
    doc = _doc()
    parts = ["x" * 1000] * 100  # 100 KB: over the threshold too
    wf = load_workflow_text(WORKFLOW, "big.yaml")
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"responses": [{"step": "summary", "answer": "ok"}]}))
    result = run_workflow(
        compile_workflow(wf).definition,
        wf,
        resolve_inputs(wf, {"doc": doc, "meta": {"parts": parts}}),
        llm_script=str(script),
    )
    assert (result.status, result.error) == ("SUCCEEDED", None), result.cause
    assert result.output == {"sizes": [SIZE, 100], "summary": "ok", "doc": doc}
    assert result.steps["measure"] == {"status": "succeeded", "starts": 1}


def test_only_large_inputs_are_stored_under_the_workflow_and_execution() -> None:
    doc = _doc()
    with LocalExecutor() as ex:
        sent = largevalues.offload_inputs(
            {"doc": doc, "title": "tides", "n": 3},
            workflow="big-input",
            execution="arn:aws:states:us-east-1:1:execution:big-input:run1",
            bucket=ex.env.bucket,
        )
        assert ex.env.bucket == LOCAL_BUCKET
        assert (sent["title"], sent["n"]) == ("tides", 3)
        ref = sent["doc"]
        assert set(ref) == {REF_KEY, "size", "preview"}
        assert ref[REF_KEY].startswith(f"s3://{LOCAL_BUCKET}/big-input/run1/_inputs/doc/")
        assert ref["size"] == SIZE + 2 and ref["preview"] == doc[:200]
        body = boto3.client("s3", region_name="us-east-1").get_object(
            Bucket=LOCAL_BUCKET, Key=ref[REF_KEY].split("/", 3)[3]
        )["Body"]
        assert json.loads(body.read()) == doc
        assert largevalues.resolve(sent, ex.env.bucket, "big-input") == {
            "doc": doc,
            "title": "tides",
            "n": 3,
        }


def test_many_medium_inputs_that_are_large_together_travel_by_reference() -> None:
    values: dict[str, Any] = {f"v{i}": "y" * 40_000 for i in range(8)}  # 320 KB in all
    with LocalExecutor() as ex:
        sent = largevalues.offload_inputs(
            values, workflow="w", execution="run2", bucket=ex.env.bucket
        )
    assert len(json.dumps(sent)) <= 65536
    assert any(largevalues.is_ref(v) for v in sent.values())


def test_without_a_bucket_inputs_stay_as_they_are() -> None:
    values = {"doc": "z" * 100_000}
    assert largevalues.offload_inputs(values, workflow="w", execution="e", bucket=None) is values


def test_loopline_run_with_a_2mb_input_file_succeeds(tmp_path: Path) -> None:
    workflow = tmp_path / "big.yaml"
    workflow.write_text(WORKFLOW)
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"responses": [{"step": "summary", "answer": "ok"}]}))
    given = tmp_path / "input.json"
    given.write_text(json.dumps({"doc": _doc(), "meta": {"parts": [1]}}))
    proc = loopline(
        "run", str(workflow), "--input", f"@{given}", "--llm-script", str(script), "--json", "-q"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert out["status"] == "SUCCEEDED"
    assert out["output"]["sizes"][0] == SIZE and len(out["output"]["doc"]) == SIZE
