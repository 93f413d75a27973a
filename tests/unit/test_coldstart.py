"""Cold start (docs/internals.md, "Cold start and tracing"): a function's module imports
Powertools' Logger and Metrics and nothing of what its calls may need; a call imports
only what its action uses; settings need no pydantic; AWS clients are made once per
container. Each check runs in a fresh interpreter, as a Lambda container starts."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from loopline import aws
from loopline.runtime import actions, largevalues
from loopline.settings import FIELDS, Settings

from tests.conftest import ROOT

#: What no function's module may import: the runtime, the stores, the AWS SDK (Powertools
#: imports the bare ``botocore`` package itself, to add its user agent), the X-Ray SDK and
#: the heavy libraries of particular actions.
HEAVY = (
    "loopline.runtime.actions",
    "loopline.service.tracking",
    "loopline.settings",
    "loopline.store",
    "boto3",
    "botocore.client",
    "aws_xray_sdk",
    "httpx",
    "jsonschema",
    "pydantic",
    "pydantic_settings",
    "yaml",
)
FUNCTIONS = sorted(p.parent.name for p in (ROOT / "functions").glob("*/app.py"))


def _fresh(code: str, cwd: str | None = None) -> list[str]:
    """The modules a fresh interpreter holds after running ``code``."""
    proc = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        env={
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(ROOT / "layers" / "loopline"),
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_LAMBDA_FUNCTION_NAME": "loopline-test",
            "POWERTOOLS_SERVICE_NAME": "loopline",
        },
        timeout=120,
        check=True,
    )
    return list(json.loads(proc.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("function", FUNCTIONS)
def test_a_function_module_imports_logger_and_metrics_and_nothing_its_calls_need(
    function: str,
) -> None:
    loaded = _fresh("import app", cwd=str(ROOT / "functions" / function))
    heavy = [m for m in HEAVY if m in loaded]
    assert not heavy, f"functions/{function}/app.py imports {heavy}"


def test_an_eval_step_imports_neither_the_aws_sdk_nor_the_libraries_of_other_actions() -> None:
    loaded = _fresh(
        "from loopline.runtime.actions import Env, dispatch\n"
        "out = dispatch({'action': 'eval', 'step': 's', 'config': {'expr': 'inputs.n > 1'},"
        " 'values': {'inputs': {'n': 2}}}, Env())\n"
        "assert out == {'output': True}, out"
    )
    unused = ("boto3", "botocore.client", "httpx", "jsonschema", "pydantic", "yaml")
    assert not [m for m in unused if m in loaded]


def test_settings_are_read_without_pydantic() -> None:
    loaded = _fresh("from loopline.settings import settings\nsettings()")
    assert "pydantic" not in loaded and "pydantic_settings" not in loaded


def test_every_declared_setting_has_its_parser_in_declaration_order() -> None:
    assert tuple(Settings.__annotations__) == FIELDS


def test_settings_are_read_only() -> None:
    with pytest.raises(AttributeError, match="read-only"):
        Settings().bucket = "other"  # type: ignore[misc]


def test_aws_clients_are_made_once_per_container() -> None:
    aws.reset()
    try:
        assert largevalues.s3_client() is largevalues.s3_client() is aws.client("s3")
    finally:
        aws.reset()


def test_a_task_step_takes_its_lambda_client_from_the_containers_clients(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = []

    class Payload:
        def read(self) -> bytes:
            return b"3"

    class Client:
        def invoke(self, **kwargs: object) -> dict[str, object]:
            calls.append(kwargs)
            return {"Payload": Payload()}

    made = []

    def client(service: str) -> Client:
        made.append(service)
        return Client()

    monkeypatch.setattr(aws, "client", client)
    assert actions.invoke_lambda("f", {"args": {}}) == 3
    assert actions.invoke_lambda("f", {"args": {}}) == 3
    assert made == ["lambda", "lambda"] and len(calls) == 2
