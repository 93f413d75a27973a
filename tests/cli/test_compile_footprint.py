"""``loopline compile`` does the work of a compile and no other: it imports what compiling
needs (no pydantic schema generation, no JSON Schema, no AWS or HTTP clients, no
settings), and the garbage collector does not scan what loading and compiling build.
Each check runs the command in a fresh interpreter, as a user's shell does."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import ROOT

#: Packages a compile has no use for (pydantic itself: the models validate with
#: pydantic-core, without generating a schema on every run).
NOT_FOR_COMPILING = ("pydantic", "pydantic_settings", "jsonschema", "boto3", "botocore", "httpx")


def _workflow(path: Path, steps: int) -> Path:
    """A workflow of ``steps`` llm and tool steps with typed inputs that have defaults."""
    body = []
    for i in range(steps):
        prev = f"steps.s{i - 1}.output" if i else "inputs.topic"
        if i % 2:
            body.append(
                {"id": f"s{i}", "tool": "render", "args": {"template": f"{{{{ {prev} }}}}"}}
            )
        else:
            body.append({"id": f"s{i}", "llm": f"improve {{{{ {prev} }}}}", "timeout": 60})
    doc = {
        "name": "footprint",
        "inputs": {
            "topic": {"type": "string", "default": "x", "max_length": 100},
            "count": {"type": "integer", "default": 3},
            "force": {"type": "boolean", "default": False},
            "tone": {"type": "enum", "values": ["dry", "warm"], "default": "dry"},
        },
        "steps": body,
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def _in_fresh_interpreter(code: str) -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, object] = json.loads(proc.stdout.splitlines()[-1])
    return result


def _compile_and_report(src: Path, out: Path, report: str) -> str:
    """Code that runs ``loopline compile -q src -o out`` and prints ``report`` as JSON."""
    return (
        "import json, sys\n"
        "from loopline import cli\n"
        "try:\n"
        f"    cli.main(['compile', '-q', {str(src)!r}, '-o', {str(out)!r}])\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 0, exc.code\n"
        f"print(json.dumps({report}))\n"
    )


def test_importing_the_cli_loads_no_command_s_machinery() -> None:
    found = _in_fresh_interpreter(
        "import json, sys\n"
        "import loopline.cli\n"
        "print(json.dumps({'modules': sorted(sys.modules)}))\n"
    )
    modules = set(found["modules"])  # type: ignore[call-overload]
    heavy = {"loopline.compiler", "loopline.dsl.models", "loopline.settings", "yaml"}
    heavy |= set(NOT_FOR_COMPILING)
    assert modules & heavy == set()


def test_compiling_imports_no_pydantic_json_schema_settings_or_clients(tmp_path: Path) -> None:
    src, out = _workflow(tmp_path / "flow.yaml", 20), tmp_path / "flow.asl.json"

    found = _in_fresh_interpreter(_compile_and_report(src, out, "{'modules': sorted(sys.modules)}"))

    assert json.loads(out.read_text())["StartAt"]
    tops = {name.split(".")[0] for name in found["modules"]}  # type: ignore[attr-defined]
    assert tops & set(NOT_FOR_COMPILING) == set()
    assert "loopline.settings" not in found["modules"]  # type: ignore[operator]


def test_the_collector_makes_no_pass_while_a_workflow_loads_and_compiles(tmp_path: Path) -> None:
    src = _workflow(tmp_path / "flow.yaml", 400)

    # The passes made while the file loads and while it compiles, and whether the
    # collector is back on after.
    found = _in_fresh_interpreter(
        "import gc, json\n"
        "import loopline.compiler.compile, loopline.dsl.api\n"
        "from loopline import cli\n"
        "passes, inside = [], []\n"
        "gc.callbacks.append(lambda phase, info: phase == 'start' and inside and passes.append(1))\n"
        "def counted(function):\n"
        "    def run(*args, **kwargs):\n"
        "        inside.append(1)\n"
        "        try:\n"
        "            return function(*args, **kwargs)\n"
        "        finally:\n"
        "            inside.pop()\n"
        "    return run\n"
        "for owner, name in ((loopline.dsl.api, 'load_workflow_text'),\n"
        "                    (loopline.compiler.compile.Compiler, 'compile')):\n"
        "    setattr(owner, name, counted(getattr(owner, name)))\n"
        f"wf, result = cli._load({str(src)!r})\n"
        "print(json.dumps({'states': result.report.states, 'passes': len(passes),\n"
        "                  'enabled': gc.isenabled()}))\n"
    )

    assert found["states"] > 400
    assert found["passes"] == 0
    assert found["enabled"]  # collection resumes once the workflow is compiled
