"""Finish the Lambda layer that ``make build-LooplineLayer`` (``sam build``) installed.

``python build_layer.py SITE`` works on ``SITE`` (the layer's ``python/`` directory, where
pip installed ``requirements.txt`` for arm64): it removes the distributions the Lambda
python3.13 runtime already has, and the files of the others that nothing in Loopline
loads, then copies the ``loopline`` package without what runs only on a developer's
machine. Each removal says why; ``tests/template/test_build.py`` checks that the built
layer stays under its size limit and still imports, with only the runtime's packages
beside it, everything the functions import.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: The python3.13 runtime's own packages: the AWS SDK (boto3) and its dependencies, in
#: /var/runtime on sys.path after the layers. A copy in the layer would shadow them (a
#: second botocore of 25 MB) for nothing: Loopline uses the runtime's.
RUNTIME_DISTRIBUTIONS = (
    "boto3",
    "botocore",
    "s3transfer",
    "jmespath",
    "python-dateutil",
    "six",
    "urllib3",
)

#: Files and directories (relative to SITE) of the installed distributions that Loopline
#: never loads, and why.
UNUSED = {
    # Powertools: the Swagger UI page, served only by ``enable_swagger()`` (the API serves
    # its OpenAPI document itself, GET /v1/openapi.json), and utilities Loopline does
    # not use (nothing in Powertools' logger, metrics, event handler, batch processing,
    # event data classes or parameters imports them).
    "aws_lambda_powertools/event_handler/openapi/swagger_ui": "Swagger UI assets",
    "aws_lambda_powertools/utilities/idempotency": "unused utility",
    "aws_lambda_powertools/utilities/feature_flags": "unused utility",
    "aws_lambda_powertools/utilities/streaming": "unused utility",
    "aws_lambda_powertools/utilities/data_masking": "unused utility",
    "aws_lambda_powertools/utilities/circuit_breaker": "unused utility",
    "aws_lambda_powertools/utilities/auth_alpha": "unused utility",
    "aws_lambda_powertools/utilities/kafka": "unused utility",
    # pydantic: the pydantic 1 API (only ``import pydantic.v1`` loads it) and the plugin
    # of the mypy type checker.
    "pydantic/v1": "pydantic 1 compatibility API",
    "pydantic/mypy.py": "mypy plugin",
    # slack_sdk: the deprecated ``slack`` alias package and the clients Loopline does not
    # use (it uses the synchronous WebClient and the signature verifier).
    "slack": "deprecated alias package",
    "slack_sdk/oauth": "unused client",
    "slack_sdk/socket_mode": "unused client",
    "slack_sdk/audit_logs": "unused client",
    "slack_sdk/scim": "unused client",
    "slack_sdk/rtm": "unused client",
    "slack_sdk/rtm_v2": "unused client",
    "slack_sdk/web/async_client.py": "unused client",
    "slack_sdk/web/async_base_client.py": "unused client",
    "slack_sdk/web/async_chat_stream.py": "unused client",
    "slack_sdk/web/async_internal_utils.py": "unused client",
    "slack_sdk/web/async_slack_response.py": "unused client",
    "slack_sdk/web/legacy_client.py": "unused client",
    "slack_sdk/web/legacy_base_client.py": "unused client",
    "slack_sdk/web/legacy_slack_response.py": "unused client",
    "slack_sdk/webhook/async_client.py": "unused client",
    "slack_sdk/http_retry/async_handler.py": "unused client",
    # Code paths Loopline never takes: the UTS 46 mapping of non-ASCII host names (httpx
    # encodes hosts without it) and the trio event loop (httpx's synchronous client
    # runs none).
    "idna/uts46data.py": "UTS 46 tables",
    "anyio/_backends/_trio.py": "trio backend",
    # MarkupSafe's C escaping: without it MarkupSafe uses its pure-Python twin, and
    # escaping the approval pages is no hot path.
    "markupsafe/_speedups.cpython-313-aarch64-linux-gnu.so": "optional C accelerator",
    # Test suites and benchmarks shipped inside distributions.
    "jsonschema/tests": "test suite",
    "jsonschema/benchmarks": "benchmarks",
    "referencing/tests": "test suite",
    "jsonschema_specifications/tests": "test suite",
}
#: Files of any distribution that nothing loads at run time, by suffix: type stubs and
#: the C sources of extensions shipped compiled.
UNUSED_SUFFIXES = (".pyi", ".c", ".h", ".pyx", ".pxd")
#: What of a ``*.dist-info`` directory nothing reads at run time: pip's list of installed
#: files (Lambda never uninstalls) and software bills of materials. The licenses stay, and
#: METADATA keeps its headers (``importlib.metadata`` reads name, version and requirements
#: there) without the long description after them.
UNUSED_METADATA = ("RECORD", "sboms", "INSTALLER", "REQUESTED")

#: Parts of the loopline package that never run in Lambda: the local stack (moto) and
#: the command line.
LOOPLINE_EXCLUDED = ("local", "cli.py", "commands", "demo.py", "client.py")


def remove_distribution(site: Path, name: str) -> bool:
    """Remove every file ``name``'s RECORD lists (its dist-info too); False when it is
    not installed in ``site``."""
    wanted = name.lower().replace("-", "_")
    for info in site.glob("*.dist-info"):
        if info.name.removesuffix(".dist-info").rsplit("-", 1)[0].lower() != wanted:
            continue
        with (info / "RECORD").open(newline="", encoding="utf-8") as f:
            files = [site / row[0] for row in csv.reader(f) if row]
        for file in files:
            if file.is_file() and site in file.resolve().parents:
                file.unlink()
        for directory in sorted({f.parent for f in files}, key=lambda p: -len(p.parts)):
            if directory != site and directory.is_dir() and not any(directory.iterdir()):
                directory.rmdir()
        shutil.rmtree(info, ignore_errors=True)
        return True
    return False


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def _metadata_headers(path: Path) -> None:
    """Cut METADATA after its headers (the long description follows the first blank line)."""
    text = path.read_text(encoding="utf-8")
    head, blank, _ = text.partition("\n\n")
    if blank:
        path.write_text(head + "\n", encoding="utf-8")


def strip_native(site: Path, strip: str | None) -> None:
    """Remove symbol tables and debug information from the native extensions (what
    ``strip --strip-unneeded`` removes: nothing the loader uses). ``strip`` must read
    aarch64 files (``llvm-strip`` does on any machine); without one, nothing is stripped."""
    if not strip:
        print(
            "build_layer.py: no strip tool that reads aarch64 files (llvm-strip): the native "
            "extensions keep their symbols and debug information (about 3 MB)",
            file=sys.stderr,
        )
        return
    for library in site.rglob("*.so*"):
        if library.is_file():
            subprocess.run([strip, "--strip-unneeded", str(library)], check=True)


def finish(site: Path, strip: str | None = None) -> None:
    for name in RUNTIME_DISTRIBUTIONS:
        remove_distribution(site, name)
    for relative in UNUSED:
        _remove(site / relative)
    for suffix in UNUSED_SUFFIXES:
        for file in site.rglob(f"*{suffix}"):
            file.unlink()
    for info in site.glob("*.dist-info"):
        for name in UNUSED_METADATA:
            _remove(info / name)
        if (info / "METADATA").is_file():
            _metadata_headers(info / "METADATA")
    strip_native(site, strip)
    for cache in list(site.rglob("__pycache__")):
        shutil.rmtree(cache)
    # Console scripts pip wrote for the build machine's interpreter.
    _remove(site / "bin")
    target = site / "loopline"
    _remove(target)
    shutil.copytree(
        HERE / "loopline",
        target,
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    for relative in LOOPLINE_EXCLUDED:
        _remove(target / relative)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: [STRIP=llvm-strip] python build_layer.py SITE")
    finish(Path(sys.argv[1]), os.environ.get("STRIP") or shutil.which("llvm-strip"))
