"""What `sam build` produced (``make test`` builds before it tests): the layer that Lambda
runs on arm64 must hold arm64 code only, stay under its size limit without shipping what
the python3.13 runtime already has, and import, with only the runtime's packages beside
it, everything the functions import."""

from __future__ import annotations

import ast
import importlib.util
import json
import struct
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import ROOT

BUILD = ROOT / ".aws-sam" / "build"
LAYER = BUILD / "LooplineLayer" / "python"
#: ELF ``e_machine`` values.
EM_AARCH64, EM_X86_64 = 183, 62
#: The layer's limit: the bytes of its files, as Lambda counts a layer's unzipped size, in
#: MB of 10**6 bytes (stricter than the MB of 2**20 bytes Lambda's quotas count in).
LAYER_LIMIT = 15_000_000

pytestmark = pytest.mark.skipif(
    not LAYER.is_dir(), reason="no sam build output (make build, or make test, creates it)"
)


def _elf_machine(path: Path) -> int | None:
    """The ``e_machine`` of an ELF file, None for any other file."""
    with path.open("rb") as f:
        head = f.read(20)
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    little = head[5] == 1
    return int(struct.unpack("<H" if little else ">H", head[18:20])[0])


def test_every_native_library_in_the_built_layer_is_aarch64() -> None:
    machines = {
        str(p.relative_to(LAYER)): m
        for p in LAYER.rglob("*")
        if p.is_file() and (m := _elf_machine(p)) is not None
    }
    assert machines, "the layer holds no native code at all: was it built?"
    wrong = {p: m for p, m in machines.items() if m != EM_AARCH64}
    assert not wrong, f"not aarch64: {wrong}"


def test_every_wheel_in_the_built_layer_is_pure_python_or_aarch64() -> None:
    tags = {
        wheel.parent.name: [
            line.split(":", 1)[1].strip()
            for line in wheel.read_text(encoding="utf-8").splitlines()
            if line.startswith("Tag:")
        ]
        for wheel in LAYER.glob("*.dist-info/WHEEL")
    }
    assert tags
    wrong = {
        dist: ts
        for dist, ts in tags.items()
        if not all(t.endswith("-any") or "aarch64" in t for t in ts)
    }
    assert not wrong, f"wheels for another platform: {wrong}"


def test_the_built_layer_ships_the_stack_workflow_catalog() -> None:
    # Every function that needs it (the API, the status events function) reads it there.
    built = LAYER / "loopline" / "catalog.json"
    assert built.is_file()
    assert built.read_bytes() == (ROOT / "layers/loopline/loopline/catalog.json").read_bytes()


def test_the_outbox_function_and_the_slack_sdk_it_uses_are_built() -> None:
    assert (ROOT / ".aws-sam" / "build" / "OutboxFunction" / "app.py").is_file()
    assert (LAYER / "slack_sdk" / "signature" / "__init__.py").is_file()


def _build_layer() -> ModuleType:
    """``layers/loopline/build_layer.py``, which finishes the layer (what it removes)."""
    spec = importlib.util.spec_from_file_location(
        "build_layer", ROOT / "layers" / "loopline" / "build_layer.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def test_the_built_layer_is_at_most_15_mb_unzipped() -> None:
    size = _size(LAYER.parent)
    heaviest = sorted(
        ((_size(p) if p.is_dir() else p.stat().st_size, p.name) for p in LAYER.iterdir()),
        reverse=True,
    )
    shown = ", ".join(f"{name} {n / 1e6:.1f}" for n, name in heaviest[:8])
    assert size <= LAYER_LIMIT, f"the layer holds {size / 1e6:.2f} MB: {shown}"


def _distributions(site: Path) -> dict[str, Path]:
    """The distributions installed in ``site``: normalized name → dist-info directory."""
    found = {}
    for info in site.glob("*.dist-info"):
        name = info.name.removesuffix(".dist-info").rsplit("-", 1)[0]
        found[name.lower().replace("-", "_")] = info
    return found


def test_the_built_layer_ships_nothing_the_python_runtime_has_nor_the_xray_sdk() -> None:
    # The runtime's boto3 and its dependencies would be shadowed by a copy (a second
    # botocore); tracing is Lambda's own (docs/internals.md, "Cold start and tracing");
    # settings are plain Python.
    runtime = [n.replace("-", "_") for n in _build_layer().RUNTIME_DISTRIBUTIONS]
    unwanted = [*runtime, "aws_xray_sdk", "wrapt", "pydantic_settings", "python_dotenv"]
    shipped = _distributions(LAYER)
    assert not [n for n in unwanted if n in shipped]
    packages = {
        "boto3",
        "botocore",
        "s3transfer",
        "jmespath",
        "dateutil",
        "urllib3",
        "aws_xray_sdk",
    }
    assert not [p for p in packages if (LAYER / p).exists()]
    assert not (LAYER / "six.py").exists()


def _elf_dynamic_symbols(path: Path) -> set[str]:
    """The names an ELF64 little-endian shared library defines in its dynamic symbol table
    (what the loader sees: stripping must leave it whole)."""
    data = path.read_bytes()
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [
        struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)
    ]
    names: set[str] = set()
    for _, kind, _, _, offset, size, link, _, _, entsize in sections:
        if kind != 11:  # SHT_DYNSYM
            continue
        strtab_offset = sections[link][4]
        for at in range(offset, offset + size, entsize):
            name, _, _, shndx = struct.unpack_from("<IBBH", data, at)
            if shndx:  # defined here
                end = data.index(b"\0", strtab_offset + name)
                names.add(data[strtab_offset + name : end].decode())
    return names


def test_every_native_extension_in_the_built_layer_still_exports_its_init_function() -> None:
    # The build strips symbols and debug information (build_layer.strip_native): what
    # Python's import needs, PyInit_<module> in the dynamic symbol table, must remain.
    extensions = [p for p in LAYER.rglob("*.so") if _elf_machine(p) == EM_AARCH64]
    assert extensions
    for ext in extensions:
        init = "PyInit_" + ext.name.split(".", 1)[0]
        assert init in _elf_dynamic_symbols(ext), f"{ext.relative_to(LAYER)} lost {init}"


# --------------------------------------------------------------------------- imports


def _imports(path: Path) -> set[str]:
    """The absolute import statements of ``path``, anywhere (in functions too), each as
    ``import a.b`` or ``from a.b import c``; not those under ``if TYPE_CHECKING:`` or in
    ``try: ... except ImportError`` (optional imports)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Try) and any(
            "ImportError" in ast.unparse(h.type) for h in node.handlers if h.type is not None
        ):
            return
        if isinstance(node, ast.Import):
            found.update(f"import {a.name}" for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.update(f"from {node.module} import {a.name}" for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


def _links(target_dir: Path, dist: metadata.Distribution) -> None:
    """Link each top-level file and directory of ``dist`` (installed here) into
    ``target_dir``."""
    for top in {f.parts[0] for f in dist.files or [] if f.parts[0] not in ("..", "__pycache__")}:
        source = Path(str(dist.locate_file(top)))
        if source.exists() and not (target_dir / top).exists():
            (target_dir / top).symlink_to(source)


def _wheel_tags(info: Path) -> list[str]:
    lines = (info / "WHEEL").read_text(encoding="utf-8").splitlines()
    return [line.split(":", 1)[1].strip() for line in lines if line.startswith("Tag:")]


_CHILD = """
import importlib, importlib.util, json, sys
args = json.loads(sys.argv[1])
sys.path[:0] = args["path"]
failures = []
for name in args["modules"]:
    try:
        importlib.import_module(name)
    except Exception as exc:
        failures.append(f"import {name}: {type(exc).__name__}: {exc}")
for statement in args["statements"]:
    try:
        exec(statement, {})
    except Exception as exc:
        failures.append(f"{statement}: {type(exc).__name__}: {exc}")
for n, app in enumerate(args["apps"]):
    try:
        spec = importlib.util.spec_from_file_location(f"function_app_{n}", app)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        assert callable(module.handler), "no handler"
    except Exception as exc:
        failures.append(f"{app}: {type(exc).__name__}: {exc}")
allowed = tuple(args["path"]) + tuple(args["stdlib"]) + tuple(args["apps"])
strays = sorted(
    f"{name} from {m.__file__}"
    for name, m in list(sys.modules.items())
    if getattr(m, "__file__", None) and not m.__file__.startswith(allowed)
)
print(json.dumps({"failures": failures, "strays": strays, "count": len(sys.modules)}))
"""


def test_the_built_layer_imports_in_a_clean_python_with_only_the_runtimes_packages(
    tmp_path: Path,
) -> None:
    """Every module of the layer's ``loopline`` package, every module those import
    anywhere (in functions too), and every function's built ``app.py``, imported by a
    python3.13 that sees nothing but its standard library (``-I -S``; ``-B``: it writes no
    bytecode into the build), the layer and a
    directory of the runtime's packages (boto3 and its dependencies, linked from this
    virtualenv, as the python3.13 runtime has them in /var/runtime).

    This machine cannot load the layer's aarch64 extensions, so the distributions with
    native code (a wheel tag other than ``*-any``: pydantic-core, PyYAML, google-re2,
    rpds-py, orjson, MarkupSafe) are taken, ahead of the layer on ``sys.path``, from this
    virtualenv's host wheels of the exact versions the layer's ``*.dist-info`` name (a
    different version fails the test: the tests would not be testing what deploys). Every
    other file, the pure-Python distributions and the loopline package, is the layer's.
    """
    host, runtime = tmp_path / "host", tmp_path / "runtime"
    host.mkdir()
    runtime.mkdir()
    native = {
        name: info
        for name, info in _distributions(LAYER).items()
        if not all(t.endswith("-any") for t in _wheel_tags(info))
    }
    assert native, "no distribution with native code: was the layer built?"
    for name, info in native.items():
        version = info.name.removesuffix(".dist-info").rsplit("-", 1)[1]
        installed = metadata.distribution(name)
        assert installed.version == version, (
            f"the layer has {name} {version}, this virtualenv {installed.version}: "
            f"pip install {name}=={version}"
        )
        _links(host, installed)
    for name in _build_layer().RUNTIME_DISTRIBUTIONS:
        _links(runtime, metadata.distribution(name))

    package = LAYER / "loopline"
    modules = {
        ".".join(p.relative_to(LAYER).with_suffix("").parts).removesuffix(".__init__")
        for p in package.rglob("*.py")
    }
    excluded = tuple(f"loopline.{e.removesuffix('.py')}" for e in _build_layer().LOOPLINE_EXCLUDED)
    statements = set().union(*(_imports(p) for p in package.rglob("*.py")))
    top = {s: s.split()[1].split(".")[0] for s in statements}
    third_party = {s for s, t in top.items() if t not in sys.stdlib_module_names | {"loopline"}}
    missing = sorted(
        s
        for s, t in top.items()
        if t == "loopline"
        and s.split()[1] not in modules
        and f"{s.split()[1]}.{s.split()[-1]}" not in modules
        and not s.split()[1].startswith(excluded)
    )
    assert not missing, f"modules the layer's code imports but the layer lacks: {missing}"
    apps = sorted(str(p) for p in BUILD.glob("*/app.py"))
    assert len(apps) == len(list((ROOT / "functions").glob("*/app.py")))

    stdlib = sorted({str(Path(p)) for p in (sys.base_prefix, sys.base_exec_prefix)})
    args = {
        "path": [str(host), str(LAYER), str(runtime)],
        "modules": sorted(modules),
        "statements": sorted(third_party),
        "apps": apps,
        "stdlib": stdlib,
    }
    env = {
        "PATH": "/usr/bin:/bin",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": "loopline",
        "POWERTOOLS_METRICS_NAMESPACE": "Loopline",
    }
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-B", "-c", _CHILD, json.dumps(args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not result["failures"], "\n".join(result["failures"])
    assert not result["strays"], result["strays"]
