"""The catalog of the stack's workflows that the layer ships: up to date with workflows/,
byte for byte, as the compiled state machines are."""

from __future__ import annotations

from loopline.service import catalog

from tests.conftest import example_workflows


def test_the_packaged_catalog_is_what_make_compile_writes_from_workflows() -> None:
    expected = catalog.dumps(catalog.build(example_workflows()))
    assert catalog.PACKAGED.read_text(encoding="utf-8") == expected, (
        "the catalog is stale: run make compile"
    )


def test_every_stack_workflow_is_in_the_catalog_with_its_source() -> None:
    entries = catalog.entries()
    assert {"ticket-triage", "research-brief"} <= set(entries)
    for entry in entries.values():
        assert entry["source"].startswith("name:") or "name:" in entry["source"]
