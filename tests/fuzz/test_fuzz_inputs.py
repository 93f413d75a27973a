"""Fuzz: input specs and submitted values through ``resolve_inputs``.

A spec is either refused when the workflow loads (located problems) or validates any value
in bounded time: the resolved inputs, or ``InputsInvalid`` listing ``inputs.<name>:``
problems. What is accepted is JSON (no NaN, no infinity).
"""

from __future__ import annotations

import json
from typing import Any

import yaml
from hypothesis import event, given
from hypothesis import strategies as st
from loopline.dsl import InputsInvalid, WorkflowInvalid, load_workflow_text, resolve_inputs

from tests.fuzz.strategies import input_specs, input_values

NAMES = st.sampled_from(["a", "b", "topic", "n_1", "A", "x"])


@given(
    st.dictionaries(NAMES, input_specs(), max_size=4),
    st.one_of(
        st.dictionaries(NAMES | st.text(max_size=5), input_values(), max_size=5),
        input_values(),
    ),
)
def test_given_input_specs_and_values_then_inputs_resolve_or_every_problem_is_listed(
    specs: dict[str, Any], given_inputs: Any
) -> None:
    text = yaml.safe_dump({"name": "fuzz", "inputs": specs, "steps": [{"id": "a", "llm": "hi"}]})
    try:
        wf = load_workflow_text(text, "fuzz.yaml")
    except WorkflowInvalid as exc:
        event("specs refused")
        assert all(line.startswith("fuzz.yaml:") for line in exc.render().splitlines())
        return
    try:
        resolved = resolve_inputs(wf, given_inputs)
    except InputsInvalid as exc:
        event("inputs refused")
        assert exc.problems
        assert all(p.startswith("inputs") for p in exc.problems), exc.problems
        return
    event("inputs resolved")
    json.dumps(resolved, allow_nan=False)
