"""A 5 MB model answer flows through a workflow in moto: the state machine only ever
carries references to S3 (moto), far below Step Functions' 256 KB state limit."""

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
from loopline.runtime.actions import Env
from loopline.runtime.largevalues import REF_KEY
from loopline.runtime.scripted import ScriptedModel

pytestmark = pytest.mark.moto

SIZE = 5 * 1024 * 1024
WORKFLOW = """
name: large-values
steps:
  - id: draft
    llm: "Write the full tide tables."
  - id: measure
    tool: json_query
    args:
      data: {text: "{{ steps.draft.output }}"}
      query: "length(text)"
  - id: summary
    llm: "The tables have {{ steps.measure.output }} characters. Summarise them."
output:
  length: "{{ steps.measure.output }}"
  summary: "{{ steps.summary.output }}"
  tables: "{{ steps.draft.output }}"
"""


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Any, Any, str, str]:
    tables = ("high 06:12 low 12:30 " * (SIZE // 20 + 1))[:SIZE]
    script = tmp_path / "script.json"
    script.write_text(
        json.dumps(
            {
                "responses": [
                    {"step": "draft", "answer": tables},
                    {"step": "summary", "when": f"have {SIZE} characters", "answer": "Two tides."},
                ]
            }
        )
    )
    wf = load_workflow_text(WORKFLOW, "large.yaml")
    return wf, compile_workflow(wf).definition, str(script), tables


def _detail_sizes(event: dict[str, Any]) -> list[int]:
    sizes = []
    for key, value in event.items():
        if key.endswith("EventDetails") and isinstance(value, dict):
            sizes += [len(v) for k, v in value.items() if k in ("input", "output", "result")]
    return sizes


def test_a_5mb_answer_never_enters_the_state_machine(setup: tuple[Any, Any, str, str]) -> None:
    _, definition, script, tables = setup
    with LocalExecutor(env=Env(model=ScriptedModel.from_file(script))) as ex:
        arn = ex.start_execution(ex.create_state_machine("large-values", definition), {})
        desc = ex.wait(arn, timeout=120)
        assert desc["status"] == "SUCCEEDED", desc
        history = ex.history(arn)
        assert ex.env.bucket == LOCAL_BUCKET
        s3 = boto3.client("s3", region_name="us-east-1")
        stored = s3.list_objects_v2(Bucket=LOCAL_BUCKET)["Contents"]
        keys = {o["Key"].split("/")[2]: o["Size"] for o in stored}
        run_id = arn.rsplit(":", 1)[-1]
        assert all(o["Key"].startswith(f"large-values/{run_id}/") for o in stored)
    sizes = [s for ev in history for s in _detail_sizes(ev)]
    assert sizes and max(sizes) < 8 * 1024, max(sizes)  # references, not 5 MB
    assert list(keys) == ["draft"] and keys["draft"] >= SIZE  # only the draft is large
    final = json.loads(desc["output"])  # the output state copies the draft's reference
    assert final["length"] == SIZE and final["summary"] == "Two tides."
    assert set(final["tables"]) == {REF_KEY, "size", "preview"}
    assert final["tables"]["preview"] == tables[:200]


def test_loopline_run_shows_the_resolved_output(setup: tuple[Any, Any, str, str]) -> None:
    wf, definition, script, tables = setup
    result = run_workflow(definition, wf, resolve_inputs(wf, {}), llm_script=script)
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    assert result.output == {"length": SIZE, "summary": "Two tides.", "tables": tables}
    assert result.steps["summary"]["status"] == "succeeded"
