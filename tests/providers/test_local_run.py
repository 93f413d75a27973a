"""The providers in a whole run: the state machine in moto, the real Lambda handlers, and the
model at the chat server on 127.0.0.1 (or the scripted model)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from loopline.compiler import compile_workflow
from loopline.dsl import load_workflow_text, resolve_inputs
from loopline.local.run import run_workflow

from tests.conftest import ROOT
from tests.providers.chat_server import ChatServer
from tests.providers.conftest import SetEnv

pytestmark = pytest.mark.moto

WORKFLOW = """
name: summarize
inputs:
  topic: {type: string, required: true}
steps:
  - id: count
    llm: "How many letters has {{ inputs.topic }}?"
    tools: [json_query]
    output_schema:
      type: object
      properties: {letters: {type: integer}}
      required: [letters]
  - id: summary
    llm: "Summarize {{ inputs.topic }} ({{ steps.count.output.letters }} letters)."
"""


def test_a_429_then_a_good_answer_completes_the_workflow(chat: ChatServer, set_env: SetEnv) -> None:
    set_env(llm_base_url=chat.base_url, llm_model="test-model", llm_max_retry_after=5)
    chat.tool_calls(("json_query", {"data": "tides", "query": "length(@)"}))
    chat.rate_limited("1")
    chat.answer_json({"letters": 5})
    chat.answer("Tides: 5 letters of sea.")
    wf = load_workflow_text(WORKFLOW, "summarize.yaml")
    result = run_workflow(
        compile_workflow(wf).definition, wf, resolve_inputs(wf, {"topic": "tides"})
    )
    assert (result.status, result.error) == ("SUCCEEDED", None), result.cause
    assert result.output == "Tides: 5 letters of sea."
    # Waited out in the handler: one start of each step, no Step Functions retry.
    assert result.steps["count"] == {"status": "succeeded", "starts": 1}
    assert len(chat.requests) == 4
    assert chat.bodies[1]["messages"][-1] == {
        "role": "tool",
        "tool_call_id": "call_0",
        "content": "5",
    }
    assert "response_format" in chat.bodies[1]
    assert chat.bodies[3]["messages"][-1]["content"] == "Summarize tides (5 letters)."


def _cli(workflow: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LOOPLINE_")}
    return subprocess.run(
        [sys.executable, "-m", "loopline.cli", "run", str(workflow), *args, "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        env={**clean, **env},
    )


def test_loopline_run_talks_to_the_configured_chat_server(chat: ChatServer, tmp_path: Path) -> None:
    workflow = tmp_path / "summarize.yaml"
    workflow.write_text(WORKFLOW)
    chat.answer_json({"letters": 5}).answer("A summary.")
    proc = _cli(
        workflow,
        "--input",
        '{"topic": "tides"}',
        env={
            "LOOPLINE_LLM_BASE_URL": chat.base_url,
            "LOOPLINE_LLM_MODEL": "cli-model",
            "LOOPLINE_LLM_API_KEY": "sk-cli",
        },
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    out = json.loads(proc.stdout)
    assert (out["status"], out["output"]) == ("SUCCEEDED", "A summary.")
    assert [b["model"] for b in chat.bodies] == ["cli-model", "cli-model"]
    assert chat.requests[0].headers["authorization"] == "Bearer sk-cli"


def test_loopline_run_with_llm_script_uses_the_scripted_model(
    chat: ChatServer, tmp_path: Path
) -> None:
    workflow = tmp_path / "summarize.yaml"
    workflow.write_text(WORKFLOW)
    script = tmp_path / "script.yaml"
    script.write_text(
        "responses:\n"
        "  - step: count\n"
        "    answers:\n"
        "      - {tool_call: {name: json_query, args: {data: tides, query: 'length(@)'}}}\n"
        "      - {letters: 5}\n"
        "  - step: summary\n"
        "    answer: Scripted summary.\n"
    )
    proc = _cli(
        workflow,
        "--input",
        '{"topic": "tides"}',
        "--llm-script",
        str(script),
        env={"LOOPLINE_LLM_BASE_URL": chat.base_url, "LOOPLINE_LLM_MODEL": "unused"},
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["output"] == "Scripted summary."
    assert chat.requests == []


def test_loopline_run_reports_a_provider_failure_without_a_traceback(
    chat: ChatServer, tmp_path: Path
) -> None:
    workflow = tmp_path / "summarize.yaml"
    workflow.write_text(WORKFLOW)
    for _ in range(3):
        chat.error(401, "Incorrect API key provided")
    proc = _cli(
        workflow,
        "--input",
        '{"topic": "tides"}',
        env={"LOOPLINE_LLM_BASE_URL": chat.base_url, "LOOPLINE_LLM_MODEL": "m"},
    )
    assert proc.returncode == 1
    out = json.loads(proc.stdout)
    assert out["error"] == "Loopline.LLMError"
    assert "Incorrect API key provided" in out["cause"]
    assert "Traceback" not in proc.stderr


# --------------------------------------------------------------------------- configuration


def _no_region(tmp_path: Path) -> dict[str, str]:
    env = {"AWS_CONFIG_FILE": str(tmp_path / "no-aws-config")}
    return env


@pytest.mark.parametrize(
    ("env", "args", "says"),
    [
        (
            {"LOOPLINE_LLM_MODEL": "amazon.nova-lite-v1:0"},
            (),
            "error: LOOPLINE_LLM_MODEL is set without LOOPLINE_LLM_BASE_URL, which means Amazon "
            "Bedrock, and Bedrock needs an AWS region: set LOOPLINE_BEDROCK_REGION (or "
            "AWS_REGION / AWS_DEFAULT_REGION), or set LOOPLINE_LLM_BASE_URL to use an "
            "OpenAI-compatible API",
        ),
        (
            {"LOOPLINE_LLM_BASE_URL": "api.example.com/v1", "LOOPLINE_LLM_TIMEOUT": "soon"},
            (),
            "error: LOOPLINE_LLM_BASE_URL must be an http:// or https:// URL with a host, got "
            '"api.example.com/v1"; LOOPLINE_LLM_TIMEOUT must be a number of seconds greater '
            'than 0 and at most 900, got "soon"',
        ),
        (
            {"LOOPLINE_LARGE_VALUE_BYTES": "-1"},
            ("--llm-script", "SCRIPT"),
            "error: LOOPLINE_LARGE_VALUE_BYTES must be a whole number of bytes at least 1 and "
            'at most 262144, got "-1"',
        ),
    ],
)
def test_loopline_run_reports_a_configuration_mistake_as_an_error_not_a_traceback(
    tmp_path: Path, env: dict[str, str], args: tuple[str, ...], says: str
) -> None:
    workflow = tmp_path / "summarize.yaml"
    workflow.write_text(WORKFLOW)
    script = tmp_path / "script.yaml"
    script.write_text("responses:\n  - answer: '{\"letters\": 1}'\n")
    clean = {k: v for k, v in os.environ.items() if k not in ("AWS_REGION", "AWS_DEFAULT_REGION")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "loopline.cli",
            "run",
            str(workflow),
            "--input",
            '{"topic": "tides"}',
            "-q",
            *(str(script) if a == "SCRIPT" else a for a in args),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # no template.yaml: the built-in functions
        timeout=120,
        env={
            **{k: v for k, v in clean.items() if not k.startswith("LOOPLINE_")},
            **_no_region(tmp_path),
            **env,
        },
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == says
    assert proc.stdout == ""
