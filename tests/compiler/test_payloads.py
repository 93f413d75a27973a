"""What reaches each Lambda: the compiler passes the values a step's templates and
expressions read, each from the longest prefix of its path that always holds a value
where the step runs (docs/internals.md, "Lambda payloads"), never more."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
from loopline.compiler import compile_workflow
from loopline.dsl import load_workflow_text


def _states(scope: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, state in scope["States"].items():
        yield name, state
        for branch in state.get("Branches", []):
            yield from _states(branch)
        if "ItemProcessor" in state:
            yield from _states(state["ItemProcessor"])


def values_of(text: str, state: str) -> dict[str, Any]:
    """The ``values`` of the Lambda payload of ``state`` in the compiled workflow."""
    wf = load_workflow_text(textwrap.dedent(text), "wf.yaml")
    definition = compile_workflow(wf).definition
    found = dict(_states(definition))[state]
    values: dict[str, Any] = found["Parameters"].get("Payload", found["Parameters"])["values"]
    return values


def test_one_field_of_a_vote_is_passed_not_the_whole_record() -> None:
    values = values_of(
        """
        name: wf
        inputs:
          claims: {type: json}
        steps:
          - id: check
            vote: {input: inputs.claims, voters: 2, rules: Refute.}
          - id: draft
            llm: "Write from {{ steps.check.output.survived }}"
        """,
        "draft",
    )
    assert values == {
        "steps": {"check": {"output": {"survived.$": "$.steps.check.output.survived"}}}
    }


def test_an_llm_output_is_passed_without_its_usage() -> None:
    values = values_of(
        """
        name: wf
        steps:
          - {id: a, llm: Draft.}
          - {id: b, llm: "Improve {{ steps.a.output }} ({{ steps.a.usage.output_tokens }})"}
        """,
        "b",
    )
    assert values == {
        "steps": {"a": {"output.$": "$.steps.a.output", "usage.$": "$.steps.a.usage"}}
    }


OUTPUTS = """
name: wf
steps:
  - id: judge
    llm: Judge.
    output_schema:
      type: object
      required: [verdict]
      properties:
        verdict: {type: object, required: [why], properties: {why: {type: string}}}
        notes: {type: string}
  - id: plain
    llm: Write.
  - id: call
    http: {url: "https://example.com/x"}
  - id: both
    parallel:
      - id: one
        llm: One.
        output_schema: {type: object, required: [k], properties: {k: {type: string}}}
      - id: two
        group:
          - {id: t1, tool: now}
          - {id: t2, http: {url: "https://example.com/y"}}
  - id: nested
    parallel:
      - id: inner
        parallel:
          - {id: deep, http: {url: "https://example.com/z"}}
      - {id: maybe, if: "1 == 1", http: {url: "https://example.com/w"}}
  - id: ok
    approval: {timeout: 60}
  - id: read
    tool: render
    args: {template: "{{ %s }}"}
"""


@pytest.mark.parametrize(
    ("path", "passed"),
    [
        # keys an output_schema requires (one level: a large value may be a reference)
        ("steps.judge.output.verdict", "steps.judge.output.verdict"),
        ("steps.judge.output.verdict.why", "steps.judge.output.verdict"),
        ("steps.judge.output.notes", "steps.judge.output"),
        ("steps.plain.output.anything", "steps.plain.output"),
        ("steps.plain.output[0]", "steps.plain.output"),
        ("len(steps.plain.output)", "steps.plain.output"),
        ("steps.call.output.status", "steps.call.output.status"),
        ("steps.call.output.body.id", "steps.call.output.body"),
        # a parallel's entries, and below them what each entry gives
        ("steps.both.output.one.k", "steps.both.output.one.k"),
        ("steps.both.output.two.status", "steps.both.output.two.status"),
        ("steps.both.output.three", "steps.both.output"),
        ("steps.nested.output.inner.deep.status", "steps.nested.output.inner.deep.status"),
        ("steps.nested.output.maybe.status", "steps.nested.output.maybe"),
        ("steps.ok.output.by", "steps.ok.output.by"),
        ("steps.ok.output.data", "steps.ok.output"),
    ],
)
def test_a_path_is_passed_from_the_longest_prefix_the_output_always_has(
    path: str, passed: str
) -> None:
    values = values_of(OUTPUTS % path, "read")
    node: Any = values
    *parents, leaf = passed.split(".")
    for part in parents:
        node = node[part]
    assert node == {f"{leaf}.$": f"$.{passed}"}


@pytest.mark.parametrize(
    ("step", "passed"),
    [
        # skipped: the record says so, and the message of a missing value names it
        ("if: inputs.go == true", "steps.a"),
        ("on_error: continue", "steps.a.output"),
        ("timeout: 5", "steps.a.output.verdict"),
    ],
)
def test_a_step_that_may_not_give_its_own_output_is_passed_from_higher_up(
    step: str, passed: str
) -> None:
    values = values_of(
        f"""
        name: wf
        inputs:
          go: {{type: boolean}}
        steps:
          - id: a
            {step}
            llm: Judge.
            output_schema: {{type: object, required: [verdict]}}
          - id: b
            llm: "Use {{{{ steps.a.output.verdict }}}}"
        """,
        "b",
    )
    *parents, leaf = passed.split(".")
    node: Any = values
    for part in parents:
        node = node[part]
    assert node == {f"{leaf}.$": f"$.{passed}"}


def test_the_output_of_a_skipped_step_read_whole_is_its_output() -> None:
    values = values_of(
        """
        name: wf
        inputs:
          go: {type: boolean}
        steps:
          - {id: a, if: inputs.go == true, tool: now}
          - {id: b, tool: render, args: {template: "{{ steps.a.output }}"}}
        """,
        "b",
    )
    assert values == {"steps": {"a": {"output.$": "$.steps.a.output"}}}


def test_a_step_a_goto_can_pass_over_is_read_from_its_record() -> None:
    text = """
        name: wf
        steps:
          - {id: a, tool: now, on_error: {goto: c}}
          - {id: b, tool: now}
          - {id: c, tool: render, args: {template: "{{ steps.b.output }} {{ steps.a.output }}"}}
        """
    assert values_of(text, "c") == {
        "steps": {"a": {"output.$": "$.steps.a.output"}, "b.$": "$.steps.b"}
    }


def test_a_step_inside_a_group_that_catches_errors_is_read_from_its_record() -> None:
    text = """
        name: wf
        steps:
          - id: g
            %s
            group:
              - {id: g1, tool: now}
              - {id: g2, tool: now}
          - {id: after, tool: render, args: {template: "{{ steps.g2.output }}"}}
        """
    assert values_of(text % "on_error: continue", "after") == {"steps": {"g2.$": "$.steps.g2"}}
    assert values_of(text % "retry: {max_attempts: 2}", "after") == {
        "steps": {"g2": {"output.$": "$.steps.g2.output"}}
    }


def test_steps_of_a_branch_arm_or_a_loop_body_are_read_from_their_records() -> None:
    values = values_of(
        """
        name: wf
        inputs:
          go: {type: boolean}
        steps:
          - id: route
            branch:
              if: inputs.go == true
              then: [{id: yes, tool: now}]
          - id: rounds
            loop:
              while: "not exists(steps.tick) or len(steps.tick.output) > 50"
              max_iterations: 2
              steps:
                - {id: tick, tool: now}
                - {id: tock, tool: render, args: {template: "{{ steps.tick.output }}"}}
          - id: after
            tool: render
            args:
              template: "{{ exists(steps.yes) and steps.yes.output }} {{ steps.route.output }}"
        """,
        "after",
    )
    assert values == {
        "steps": {"route": {"output.$": "$.steps.route.output"}, "yes.$": "$.steps.yes"}
    }


def test_a_while_condition_reads_its_body_from_the_records_and_the_body_reads_outputs() -> None:
    text = """
        name: wf
        steps:
          - {id: before, tool: now}
          - id: rounds
            loop:
              while: "len(steps.tick.output) > 50 or len(steps.before.output) > 50"
              max_iterations: 2
              steps:
                - {id: tick, tool: now}
                - {id: tock, tool: render, args: {template: "{{ steps.tick.output }}"}}
        """
    assert values_of(text, "rounds.check") == {
        "steps": {"before": {"output.$": "$.steps.before.output"}, "tick.$": "$.steps.tick"}
    }
    assert values_of(text, "tock") == {"steps": {"tick": {"output.$": "$.steps.tick.output"}}}


def test_a_for_each_body_reads_loop_variables_and_earlier_steps() -> None:
    values = values_of(
        """
        name: wf
        inputs:
          items: {type: json}
          cfg: {type: json}
        steps:
          - {id: first, tool: now}
          - id: each
            loop:
              for_each: inputs.items
              as: doc
              steps:
                - id: one
                  tool: render
                  args: {template: "{{ doc.name }} {{ index }} {{ steps.first.output }} {{ inputs.cfg.x }}"}
        """,
        "one",
    )
    assert values == {
        "inputs": {"cfg.$": "$.inputs.cfg"},
        "steps": {"first": {"output.$": "$.steps.first.output"}},
        "vars": {"doc.$": "$.vars.doc", "index.$": "$.vars.index"},
    }


def test_undeclared_inputs_are_passed_whole_and_nothing_read_is_nothing_passed() -> None:
    text = """
        name: wf
        steps:
          - {id: a, tool: render, args: {template: "{{ inputs.topic.name }}"}}
          - {id: b, tool: now}
        """
    assert values_of(text, "a") == {"inputs.$": "$.inputs"}
    assert values_of(text, "b") == {}


def test_the_workflow_output_reads_what_finished_on_every_way_to_the_end() -> None:
    values = values_of(
        """
        name: wf
        steps:
          - {id: a, tool: now, on_error: {goto: c}}
          - {id: b, tool: now}
          - {id: c, approval: {timeout: 60}}
        output:
          who: "{{ steps.c.output.by }}"
          b: "{{ steps.b.output.x }}"
        """,
        "_output",
    )
    assert values == {
        "steps": {"b.$": "$.steps.b", "c": {"output": {"by.$": "$.steps.c.output.by"}}}
    }


def test_a_step_named_output_is_not_the_workflow_output() -> None:
    values = values_of(
        """
        name: wf
        steps:
          - {id: first, tool: now}
          - id: output
            if: "steps.first.output == 'x' or len(steps.first.output) > 3"
            succeed: {v: "{{ steps.first.output.deep }}"}
        """,
        "output.if",
    )
    assert values == {"steps": {"first": {"output.$": "$.steps.first.output"}}}
