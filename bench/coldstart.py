"""Cold start of every Lambda function (``functions/*/app.py``) beside the floor: a
Powertools handler that imports only Logger (``bench/reference/logger_only``).

Each round runs ``python -c "import app"`` in the function's directory and in the
reference's, one right after the other, and takes the CPU time (user + system) of each
child. Both children see what Lambda gives the function:

- the environment of template.yaml (``Globals`` and the function's own variables, with
  stand-ins for what CloudFormation would resolve) and the variables Lambda itself sets
  (``AWS_LAMBDA_FUNCTION_NAME``, ``AWS_EXECUTION_ENV``, the X-Ray daemon's address, ...);
- on ``sys.path``, the function's directory, then the layer (the ``loopline`` package and
  the distributions ``layers/loopline/requirements.txt`` resolves to) and the packages of
  the python3.13 runtime (boto3 and its dependencies), and nothing else of
  site-packages (``-S``): links to the same distributions in this virtualenv, so the
  versions are those the tests run with.

``bench_coldstart`` prints where the time goes (each function's import under ``-X
importtime``: the heaviest packages it pulls in) and the cost of each way to trace
(docs/internals.md, "Cold start and tracing"), and returns one ratio per function.

Runnable alone: ``PYTHONPATH=layers/loopline:. .venv/bin/python bench/coldstart.py``.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from ratio import Ratio, child_cpu, paired  # noqa: E402

REFERENCE = ROOT / "bench" / "reference" / "logger_only"
REFERENCE_NAME = "Powertools handler importing only Logger"
GOAL = 2.0
ROUNDS = 7
#: What the python3.13 runtime provides besides the standard library (the AWS SDK and
#: its dependencies, in /var/runtime): never shipped in the layer.
RUNTIME_PACKAGES = ("boto3",)
#: Entries of the "where the time goes" table per function.
TOP = 4

_REGION, _ACCOUNT, _STACK = "us-east-1", "123456789012", "loopline"


# --------------------------------------------------------------------------- sys.path


def _closure(requirements: list[str]) -> list[metadata.Distribution]:
    """The installed distributions ``requirements`` need, theirs included (extras and
    markers evaluated as pip would for this interpreter)."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    found: dict[str, metadata.Distribution] = {}
    done: set[tuple[str, str]] = set()
    todo = [(Requirement(r), "") for r in requirements]
    while todo:
        req, extra = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(req.name)
        extras = sorted(req.extras) or [""]
        if all((name, e) in done for e in extras):
            continue
        dist = found.setdefault(name, metadata.distribution(req.name))
        for e in extras:
            done.add((name, e))
            todo.extend((Requirement(r), e) for r in dist.requires or [])
    return list(found.values())


def _requirements(path: Path) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


@contextmanager
def layer_path(root: Path = ROOT) -> Iterator[str]:
    """A ``PYTHONPATH`` holding what the functions find in Lambda: the loopline package,
    the layer's requirements and the runtime's packages (links into this virtualenv)."""
    dists = _closure(_requirements(root / "layers/loopline/requirements.txt"))
    dists += _closure(list(RUNTIME_PACKAGES))
    with tempfile.TemporaryDirectory(prefix="coldstart-") as tmp:
        for dist in dists:
            for top in {
                f.parts[0] for f in dist.files or [] if f.parts[0] not in ("..", "__pycache__")
            }:
                link, target = Path(tmp, top), Path(str(dist.locate_file(top)))
                if target.exists() and not link.exists():
                    link.symlink_to(target)
        yield os.pathsep.join([str(root / "layers/loopline"), tmp])


# --------------------------------------------------------------------------- environment


def _template(root: Path) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from tests.template.cfn_yaml import load_template

    return load_template(root / "template.yaml")


class _StandIns:
    """Plausible values for what CloudFormation resolves in environment variables."""

    def __init__(self, template: Mapping[str, Any]) -> None:
        self.resources = template.get("Resources", {})
        self.parameters = template.get("Parameters", {})

    def _arn(self, logical: str) -> str:
        kind = str(self.resources.get(logical, {}).get("Type", "AWS::X::Y")).split("::")
        service = {"Serverless": "lambda", "StepFunctions": "states"}.get(kind[1], kind[1].lower())
        return f"arn:aws:{service}:{_REGION}:{_ACCOUNT}:{kind[2].lower()}:{_STACK}-{logical}"

    def ref(self, name: str) -> str:
        if name in self.parameters:
            return str(self.parameters[name].get("Default", ""))
        pseudo = {"AWS::Region": _REGION, "AWS::AccountId": _ACCOUNT, "AWS::StackName": _STACK}
        if name in pseudo:
            return pseudo[name]
        kind = self.resources.get(name, {}).get("Type", "")
        if kind == "AWS::SQS::Queue":
            return f"https://sqs.{_REGION}.amazonaws.com/{_ACCOUNT}/{_STACK}-{name}"
        if kind in ("AWS::SNS::Topic", "AWS::SecretsManager::Secret") or "StateMachine" in kind:
            return self._arn(name)
        if kind == "AWS::Serverless::Api":
            return "a1b2c3d4e5"
        return f"{_STACK}-{name.lower()}"

    def get_att(self, logical: str, attribute: str) -> str:
        return self._arn(logical) if attribute == "Arn" else f"{_STACK}-{logical}"

    def value(self, value: Any) -> str:
        if not isinstance(value, dict):
            return str(value)
        ((key, arg),) = value.items()
        if key == "Ref":
            return self.ref(arg)
        if key == "Fn::GetAtt":
            return self.get_att(*arg)
        if key == "Fn::Sub":

            def sub(m: re.Match[str]) -> str:
                logical, _, attribute = m.group(1).partition(".")
                return self.get_att(logical, attribute) if attribute else self.ref(logical)

            return re.sub(r"\$\{([^}]+)\}", sub, arg)
        if key == "Fn::If":  # the branch taken with the parameters' defaults is immaterial
            return self.value(arg[2])
        raise ValueError(f"no stand-in for {key}")


def function_env(logical: str, template: Mapping[str, Any], code_dir: Path) -> dict[str, str]:
    """The environment Lambda gives ``logical``: the template's variables and Lambda's."""
    standins = _StandIns(template)
    function = template["Resources"][logical]["Properties"]
    globals_ = template.get("Globals", {}).get("Function", {})
    variables = {
        **globals_.get("Environment", {}).get("Variables", {}),
        **function.get("Environment", {}).get("Variables", {}),
    }
    memory = function.get("MemorySize", globals_.get("MemorySize", 128))
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "AWS_REGION": _REGION,
        "AWS_DEFAULT_REGION": _REGION,
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
        "AWS_LAMBDA_FUNCTION_NAME": f"{_STACK}-{logical}",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{_STACK}-{logical}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2025/01/01/[$LATEST]0123456789abcdef",
        "AWS_ACCESS_KEY_ID": "ASIAEXAMPLEEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "example",
        "AWS_SESSION_TOKEN": "example",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "AWS_XRAY_DAEMON_ADDRESS": "169.254.79.129:2000",
        "_AWS_XRAY_DAEMON_ADDRESS": "169.254.79.129",
        "_AWS_XRAY_DAEMON_PORT": "2000",
        "LAMBDA_TASK_ROOT": str(code_dir),
        "LAMBDA_RUNTIME_DIR": "/var/runtime",
        "_HANDLER": str(function.get("Handler", "app.handler")),
    }
    env.update({k: standins.value(v) for k, v in variables.items()})
    return env


def functions(template: Mapping[str, Any], root: Path = ROOT) -> dict[str, tuple[str, Path]]:
    """Each function of ``functions/`` by directory name: its logical id and directory."""
    found = {}
    for logical, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        code = root / str(resource["Properties"]["CodeUri"])
        if (code / "app.py").is_file() and code.parent == root / "functions":
            found[code.name] = (logical, code)
    return dict(sorted(found.items()))


# --------------------------------------------------------------------------- measuring


def _import_cpu(code_dir: Path, env: Mapping[str, str], code: str = "import app") -> float:
    return child_cpu([sys.executable, "-S", "-c", code], cwd=code_dir, env=env)


def importtime(code_dir: Path, env: Mapping[str, str]) -> tuple[float, list[tuple[str, float]]]:
    """One ``-X importtime`` import of ``app``: its total ms and, heaviest first, the ms of
    the first import of each package (a top-level package, or a module of loopline),
    everything it pulled in included."""
    proc = subprocess.run(
        [sys.executable, "-S", "-X", "importtime", "-c", "import app"],
        cwd=code_dir,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    rows = []
    for line in proc.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            rows.append((int(parts[1]), parts[2].rstrip()))
    total = next(us for us, name in reversed(rows) if name.strip() == "app") / 1000
    firsts: dict[str, int] = {}
    for us, name in rows:
        module = name.strip()
        pkg = module if module.startswith("loopline.") else module.split(".")[0]
        if pkg in ("app", "loopline") or pkg.startswith("_") or pkg in sys.stdlib_module_names:
            continue
        firsts[pkg] = max(firsts.get(pkg, 0), us)
    heavy = sorted(((pkg, us / 1000) for pkg, us in firsts.items()), key=lambda x: -x[1])
    return total, heavy


def _where_the_time_goes(rows: list[tuple[str, float, list[tuple[str, float]]]]) -> None:
    print()
    print("Cold import: where the time goes (python -X importtime, one run each)")
    print(f"{'function':<16} {'ms':>6}  heaviest packages (ms, what they import included)")
    for name, total, heavy in rows:
        top = ", ".join(f"{pkg} {ms:.0f}" for pkg, ms in heavy[:TOP])
        print(f"{name:<16} {total:>6.0f}  {top}")


#: Ways to trace a function, each as the code its cold import runs (after Logger's).
TRACING = {
    "Lambda active tracing alone (no SDK in the function)": ("", {}),
    "Powertools Tracer, tracing on (X-Ray SDK, patching)": (
        "from aws_lambda_powertools import Tracer; Tracer(service='loopline')",
        {},
    ),
    "Powertools Tracer, POWERTOOLS_TRACE_DISABLED=true": (
        "from aws_lambda_powertools import Tracer; Tracer(service='loopline')",
        {"POWERTOOLS_TRACE_DISABLED": "true"},
    ),
}


def bench_tracing(env: Mapping[str, str], rounds: int = 5) -> list[Ratio]:
    """What each way to trace adds to a cold import of Logger (CPU ms, paired)."""
    base = "from aws_lambda_powertools import Logger; Logger(service='loopline')"
    rows = []
    for what, (code, extra) in TRACING.items():
        ratio = Ratio(what, "Logger only", float("inf"))
        subject = "; ".join(c for c in (base, code) if c)
        paired(
            ratio,
            lambda s=subject, e=extra: _import_cpu(REFERENCE, {**env, **e}, s),  # type: ignore[misc]
            lambda: _import_cpu(REFERENCE, env, base),
            rounds,
        )
        rows.append(ratio)
    print()
    print("Tracing: what each way adds to a cold import of Logger (CPU, paired)")
    print(f"{'way':<54} {'+ms':>6} {'ratio':>6}")
    for row in rows:
        extra_ms = statistics.median(row.subject_times) - statistics.median(row.reference_times)
        print(f"{row.what:<54} {extra_ms * 1000:>6.0f} {row.median:>6.2f}")
    return rows


def bench_coldstart(root: Path = ROOT, rounds: int = ROUNDS) -> list[Ratio]:
    """One ratio per function of ``root``'s ``functions/``: its cold import beside the
    Logger-only handler's, paired; prints where the time goes and the tracing options."""
    template = _template(root)
    ratios, rows = [], []
    with layer_path(root) as pythonpath:
        found = functions(template, root)
        for name, (logical, code_dir) in found.items():
            env = {**function_env(logical, template, code_dir), "PYTHONPATH": pythonpath}
            ref_env = {**env, "LAMBDA_TASK_ROOT": str(REFERENCE)}
            ratio = Ratio(f"cold import: {name}", REFERENCE_NAME, GOAL)
            paired(
                ratio,
                lambda d=code_dir, e=env: _import_cpu(d, e),  # type: ignore[misc]
                lambda e=ref_env: _import_cpu(REFERENCE, e),  # type: ignore[misc]
                rounds,
            )
            ratios.append(ratio)
            rows.append((name, *importtime(code_dir, env)))
        _where_the_time_goes(rows)
        logical, code_dir = found["helper"]
        bench_tracing({**function_env(logical, template, code_dir), "PYTHONPATH": pythonpath})
    return ratios


if __name__ == "__main__":
    from ratio import table

    root = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else ROOT
    table("Cold start (CPU of a fresh `import app`)", bench_coldstart(root))
