"""Every compiled example and golden case passes both ASL linters: cfn-lint (rule E3601,
the definition embedded in a CloudFormation template) and statelint."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from loopline.compiler import compile_workflow
from loopline.dsl import load_workflow

from tests.compiler.test_compiled_examples import golden_cases

BIN = Path(sys.executable).parent


def _compiled() -> dict[str, dict]:
    return {src.stem: compile_workflow(load_workflow(src)).definition for src, _ in golden_cases()}


def _placeholders(definition: dict) -> list[str]:
    return sorted(set(re.findall(r"\$\{(\w+)\}", json.dumps(definition))))


def test_compiled_definitions_pass_cfn_lint_e3601(tmp_path: Path) -> None:
    # Given one template embedding every compiled definition with its substitutions
    resources: dict[str, dict] = {
        "Role": {
            "Type": "AWS::IAM::Role",
            "Properties": {"AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": []}},
        }
    }
    for i, (name, definition) in enumerate(sorted(_compiled().items())):
        resources[f"Machine{i}"] = {
            "Type": "AWS::StepFunctions::StateMachine",
            "Metadata": {"workflow": name},
            "Properties": {
                "RoleArn": {"Fn::GetAtt": ["Role", "Arn"]},
                "Definition": definition,
                "DefinitionSubstitutions": {
                    p: f"arn:aws:lambda:us-east-1:123456789012:function:{p}"
                    for p in _placeholders(definition)
                },
            },
        }
    template = tmp_path / "template.json"
    template.write_text(
        json.dumps({"AWSTemplateFormatVersion": "2010-09-09", "Resources": resources})
    )
    # When cfn-lint checks it
    proc = subprocess.run([str(BIN / "cfn-lint"), str(template)], capture_output=True, text=True)
    # Then it reports nothing
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_cfn_lint_does_catch_a_broken_definition(tmp_path: Path) -> None:
    definition = {"StartAt": "A", "States": {"A": {"Type": "Pass", "Bogus": 1, "End": True}}}
    template = tmp_path / "t.json"
    template.write_text(
        json.dumps(
            {
                "Resources": {
                    "M": {
                        "Type": "AWS::StepFunctions::StateMachine",
                        "Properties": {
                            "RoleArn": "arn:aws:iam::123456789012:role/x",
                            "Definition": definition,
                        },
                    }
                }
            }
        )
    )
    proc = subprocess.run([str(BIN / "cfn-lint"), str(template)], capture_output=True, text=True)
    assert "E3601" in proc.stdout


@pytest.mark.skipif(
    shutil.which("statelint", path=str(BIN)) is None, reason="statelint not installed"
)
def test_compiled_definitions_pass_statelint(tmp_path: Path) -> None:
    files = []
    for name, definition in sorted(_compiled().items()):
        f = tmp_path / f"{name}.asl.json"
        # As deployed: each ${Placeholder} (a function's ARN as a Task's Resource) an ARN
        text = re.sub(
            r"\$\{(\w+)\}",
            lambda m: f"arn:aws:lambda:us-east-1:123456789012:function:{m.group(1)}",
            json.dumps(definition),
        )
        f.write_text(text)
        files.append(str(f))
    proc = subprocess.run([str(BIN / "statelint"), *files], capture_output=True, text=True)
    assert proc.returncode == 0 and "error" not in proc.stdout.lower(), proc.stdout + proc.stderr


def test_statelint_does_catch_a_broken_definition(tmp_path: Path) -> None:
    f = tmp_path / "bad.asl.json"
    f.write_text(
        json.dumps({"StartAt": "A", "States": {"A": {"Type": "Pass", "Bogus": 1, "End": True}}})
    )
    proc = subprocess.run([str(BIN / "statelint"), str(f)], capture_output=True, text=True)
    assert proc.returncode != 0 or "Bogus" in proc.stdout
