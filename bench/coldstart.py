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
importtime``: the heaviest packages it pulls in), what the first call adds (a fresh
child imports ``app`` and makes one typical call, AWS answered by a fake endpoint on
127.0.0.1, beside the reference handler doing the same: what the function imports on
first use is paid there) and the cost of each way to trace (docs/internals.md, "Cold
start and tracing"), and returns one ratio per function.

Runnable alone: ``PYTHONPATH=layers/loopline:. .venv/bin/python bench/coldstart.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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
def _linked(requirements: list[str]) -> Iterator[str]:
    """A directory of links to the installed distributions ``requirements`` need."""
    with tempfile.TemporaryDirectory(prefix="coldstart-") as tmp:
        for dist in _closure(requirements):
            tops = {f.parts[0] for f in dist.files or [] if f.parts[0] not in ("..", "__pycache__")}
            for top in tops:
                link, target = Path(tmp, top), Path(str(dist.locate_file(top)))
                if target.exists() and not link.exists():
                    link.symlink_to(target)
        yield tmp


@contextmanager
def layer_path(root: Path = ROOT) -> Iterator[str]:
    """A ``PYTHONPATH`` holding what the functions find in Lambda: the loopline package,
    the layer's requirements and the runtime's packages (links into this virtualenv)."""
    requirements = _requirements(root / "layers/loopline/requirements.txt")
    with _linked(requirements + list(RUNTIME_PACKAGES)) as site:
        yield os.pathsep.join([str(root / "layers/loopline"), site])


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
    print("Cold import: where the time goes (python -X importtime, the best of 3 runs)")
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


def bench_tracing(env: Mapping[str, str], rounds: int = 3) -> list[Ratio]:
    """What each way to trace adds to a cold import of Logger (CPU ms, paired). The X-Ray
    SDK, which the layer does not ship, comes from this virtualenv."""
    base = "from aws_lambda_powertools import Logger; Logger(service='loopline')"
    rows = []
    with _linked(["aws-xray-sdk"]) as xray:
        env = {**env, "PYTHONPATH": os.pathsep.join([env["PYTHONPATH"], xray])}
        for what, (code, extra) in TRACING.items():
            rows.append(_tracing_row(what, base, code, {**env, **extra}, env, rounds))
    print()
    print("Tracing: what each way adds to a cold import of Logger (CPU, paired)")
    print(f"{'way':<54} {'+ms':>6} {'ratio':>6}")
    for row in rows:
        extra_ms = statistics.median(row.subject_times) - statistics.median(row.reference_times)
        print(f"{row.what:<54} {extra_ms * 1000:>6.0f} {row.median:>6.2f}")
    return rows


def _tracing_row(
    what: str,
    base: str,
    code: str,
    env: Mapping[str, str],
    ref_env: Mapping[str, str],
    rounds: int,
) -> Ratio:
    ratio = Ratio(what, "Logger only", float("inf"))
    subject = "; ".join(c for c in (base, code) if c)
    return paired(
        ratio,
        lambda: _import_cpu(REFERENCE, env, subject),
        lambda: _import_cpu(REFERENCE, ref_env, base),
        rounds,
    )


# --------------------------------------------------------------------------- first call

_EXECUTION = (
    f"arn:aws:states:{_REGION}:{_ACCOUNT}:execution:{_STACK}-bench:tsk_01jd8v0000000000000000000"
)
_STEP = {"workflow": "bench", "execution": _EXECUTION, "step": "s1", "values": {}}
#: One typical first call per function (the event its handler gets); ``{port}`` is the
#: fake endpoint's.
FIRST_CALLS: dict[str, dict[str, Any]] = {
    "helper": {
        **_STEP,
        "action": "eval",
        "config": {"expr": "inputs.n > 1"},
        "values": {"inputs": {"n": 2}},
    },
    "llm": {**_STEP, "action": "llm", "config": {"prompt": "Say done."}},
    "tool": {**_STEP, "action": "tool", "config": {"tool": "now", "args": {}}},
    "http": {
        **_STEP,
        "action": "http",
        "config": {"method": "GET", "url": "http://127.0.0.1:{port}/ok"},
    },
    "task": {
        **_STEP,
        "action": "task",
        "config": {"function": f"{_STACK}-WordCountFunction", "args": {"text": "a b c"}},
    },
    "human": {
        **_STEP,
        "action": "human",
        "token": "task-token",
        "config": {"kind": "approval", "instruction": "Ship it?", "notify": []},
    },
    "api": {
        "httpMethod": "GET",
        "path": "/v1/tasks",
        "resource": "/{proxy+}",
        "headers": {},
        "requestContext": {
            "authorizer": {"tenant": "acme", "user": "ana", "roles": "admin", "key_id": "key_1"}
        },
    },
}
_TASK_ITEM = {
    "pk": {"S": "TASK#tsk_01jd8v0000000000000000000"},
    "sk": {"S": "TASK"},
    "tenant": {"S": "acme"},
    "workflow": {"S": "bench"},
    "status": {"S": "RUNNING"},
    "seq": {"N": "1"},
    "started_at": {"S": "2025-01-01T00:00:00.000Z"},
}
_CONVERSE = {
    "output": {"message": {"role": "assistant", "content": [{"text": "done"}]}},
    "stopReason": "end_turn",
    "usage": {"inputTokens": 5, "outputTokens": 1, "totalTokens": 6},
    "metrics": {"latencyMs": 1},
}
_CALL = """
import json, sys
import app
class Context:
    function_name = "bench"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    aws_request_id = "req-1"
    def get_remaining_time_in_millis(self):
        return 600000
try:
    app.handler(json.loads(sys.argv[1]), Context())
except Exception as exc:
    sys.stderr.write(f"\\nraised {type(exc).__name__}: {exc}"[:300])
"""


class _FakeAws(BaseHTTPRequestHandler):
    """Answers every AWS call a first call makes (and an http step's GET) with a plausible
    success: a running task for DynamoDB reads, nothing for queries, an answer for
    Bedrock's Converse, 3 for a Lambda invoke, {} for the rest."""

    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        target = self.headers.get("x-amz-target") or ""
        answer: Any = {}
        if target.endswith(".GetItem"):
            answer = {"Item": _TASK_ITEM}
        elif target.endswith((".Query", ".Scan")):
            answer = {"Items": [], "Count": 0, "ScannedCount": 0}
        elif target.endswith(".SendMessage"):
            message = json.loads(body or b"{}").get("MessageBody", "")
            answer = {
                "MessageId": "m-1",
                "MD5OfMessageBody": hashlib.md5(message.encode()).hexdigest(),
            }
        elif self.path.endswith("/converse"):
            answer = _CONVERSE
        elif "/functions/" in self.path and self.path.endswith("/invocations"):
            answer = 3
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header(
            "content-type", "application/x-amz-json-1.0" if target else "application/json"
        )
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = _answer


@contextmanager
def fake_aws() -> Iterator[int]:
    """A fake AWS endpoint on 127.0.0.1 for the length of the block; yields its port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeAws)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _call_cpu(code_dir: Path, env: Mapping[str, str], event: str) -> float:
    return child_cpu([sys.executable, "-S", "-c", _CALL, event], cwd=code_dir, env=env)


def _check_call(code_dir: Path, env: Mapping[str, str], event: str) -> str:
    """What one first call says on stderr when it raised (empty when it did not)."""
    proc = subprocess.run(
        [sys.executable, "-S", "-c", _CALL, event],
        cwd=code_dir,
        env=env,
        capture_output=True,
        text=True,
    )
    raised = [line for line in proc.stderr.splitlines() if line.startswith("raised ")]
    return raised[-1] if raised else ""


def bench_first_calls(
    found: Mapping[str, tuple[str, Path]],
    template: Mapping[str, Any],
    pythonpath: str,
    rounds: int = 3,
) -> list[Ratio]:
    """What import plus one first call costs each function of ``FIRST_CALLS``, beside the
    Logger-only handler doing the same (paired); printed, not a goal of its own."""
    rows = []
    with fake_aws() as port:
        for name, event in FIRST_CALLS.items():
            logical, code_dir = found[name]
            env = {
                **function_env(logical, template, code_dir),
                "PYTHONPATH": pythonpath,
                "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
                "LOOPLINE_HTTP_ALLOW_HOSTS": "127.0.0.1",
                "POWERTOOLS_METRICS_DISABLED": "true",
            }
            text = json.dumps(event).replace("{port}", str(port))
            ratio = Ratio(f"first call: {name}", "the Logger-only handler's", float("inf"))
            paired(
                ratio,
                partial(_call_cpu, code_dir, env, text),
                partial(_call_cpu, REFERENCE, env, text),
                rounds,
            )
            rows.append((ratio, _check_call(code_dir, env, text)))
    print()
    print("First call: import app, then one typical call (AWS answered on 127.0.0.1), CPU")
    print(f"{'function':<10} {'ms':>6} {'ref ms':>7} {'ratio':>6}  the call")
    for ratio, raised in rows:
        print(
            f"{ratio.what.split(': ')[1]:<10} {statistics.median(ratio.subject_times) * 1000:>6.0f} "
            f"{statistics.median(ratio.reference_times) * 1000:>7.0f} {ratio.median:>6.2f}  "
            f"{raised or 'returned'}"
        )
    return [r for r, _ in rows]


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
                partial(_import_cpu, code_dir, env),
                partial(_import_cpu, REFERENCE, ref_env),
                rounds,
            )
            ratios.append(ratio)
            rows.append((name, *min(importtime(code_dir, env) for _ in range(3))))
        _where_the_time_goes(rows)
        bench_first_calls(found, template, pythonpath)
        logical, code_dir = found["helper"]
        bench_tracing({**function_env(logical, template, code_dir), "PYTHONPATH": pythonpath})
    return ratios


if __name__ == "__main__":
    from ratio import table

    root = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else ROOT
    table("Cold start (CPU of a fresh `import app`)", bench_coldstart(root))
