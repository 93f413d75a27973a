"""What `sam build` produced (``make test`` builds before it tests): the layer that Lambda
runs on arm64 must hold arm64 code only."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from tests.conftest import ROOT

LAYER = ROOT / ".aws-sam" / "build" / "LooplineLayer" / "python"
#: ELF ``e_machine`` values.
EM_AARCH64, EM_X86_64 = 183, 62

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
