"""Fuzz: expressions through the parser, the tree helpers, the runtime, templates, and the
checks and compiler inside a workflow.

Only ``ExpressionError`` may come out of parsing; a parsed expression's source parses back
to the same tree; evaluating never raises; a workflow with the expression loads (or gives
located problems) and compiles, and every expression the compiler leaves to the helper
Lambda parses.
"""

from __future__ import annotations

import json
from typing import Any

import yaml
from hypothesis import event, given
from hypothesis import strategies as st
from loopline.compiler import compile_workflow
from loopline.compiler.compile import CompileError
from loopline.dsl import WorkflowInvalid, load_workflow_text
from loopline.dsl.expr import ExpressionError, guarded_steps, parse_expression, paths, walk
from loopline.dsl.template import parse_template
from loopline.runtime.errors import StepError
from loopline.runtime.evaluate import evaluate, render_text, truthy

from tests.fuzz.strategies import NAMES, expressions, json_values

CONTEXTS = st.fixed_dictionaries(
    {
        "inputs": st.dictionaries(st.sampled_from(NAMES), json_values(), max_size=4),
        "steps": st.dictionaries(
            st.sampled_from(NAMES),
            st.fixed_dictionaries({"output": json_values()}) | json_values(),
            max_size=4,
        ),
        "item": json_values(),
        "x": json_values(),
    }
)


@given(expressions(), CONTEXTS)
def test_given_an_expression_then_it_parses_round_trips_and_evaluates_or_is_an_error(
    text: str, ctx: dict[str, Any]
) -> None:
    try:
        e = parse_expression(text)
    except ExpressionError as exc:
        event("expression error")
        assert exc.message
        assert exc.column is None or 1 <= exc.column <= len(text) + 1
        return
    event("parsed")
    assert parse_expression(e.source()) == e
    list(walk(e))
    list(paths(e))
    guarded_steps(e)
    truthy(evaluate(e, ctx))


@given(expressions(), CONTEXTS)
def test_given_a_template_then_it_parses_and_renders_or_is_an_error(
    text: str, ctx: dict[str, Any]
) -> None:
    try:
        template = parse_template(f"before {{{{ {text} }}}} after")
    except ExpressionError as exc:
        assert exc.message
        return
    try:
        render_text(template, ctx)
    except StepError as exc:
        assert exc.message


VALID_ROOTS = ["inputs.a", "inputs.b", "steps.first.output", "steps.first", "item", "index"]


def _workflow(text: str) -> str:
    return yaml.safe_dump(
        {
            "name": "fuzz",
            "inputs": {"a": {"type": "json"}, "b": {"type": "number"}},
            "steps": [
                {"id": "first", "llm": "hi", "if": text},
                {"id": "check", "assert": text},
                {
                    "id": "route",
                    "branch": {
                        "cases": [{"if": text, "then": [{"id": "t", "llm": "{{ " + text + " }}"}]}],
                        "else": [{"id": "e", "llm": "no"}],
                    },
                },
                {
                    "id": "each",
                    "loop": {
                        "for_each": "inputs.a",
                        "steps": [{"id": "in", "llm": "x", "if": text}],
                    },
                },
                {
                    "id": "again",
                    "loop": {
                        "while": text,
                        "max_iterations": 2,
                        "steps": [{"id": "w", "llm": "y"}],
                    },
                },
            ],
        },
        sort_keys=False,
    )


def _eval_expressions(value: Any) -> list[str]:
    out: list[str] = []
    if isinstance(value, dict):
        if isinstance(value.get("expr"), str):
            out.append(value["expr"])
        for v in value.values():
            out += _eval_expressions(v)
    elif isinstance(value, list):
        for v in value:
            out += _eval_expressions(v)
    return out


@given(expressions(VALID_ROOTS, valid=True))
def test_given_an_expression_in_a_workflow_then_it_is_checked_and_compiled(text: str) -> None:
    try:
        wf = load_workflow_text(_workflow(text), "fuzz.yaml")
    except WorkflowInvalid as exc:
        event("invalid workflow")
        assert all(line.startswith("fuzz.yaml:") for line in exc.render().splitlines())
        return
    try:
        result = compile_workflow(wf)
    except CompileError as exc:
        event("compile error")
        assert str(exc)
        return
    event("compiled")
    for expr in _eval_expressions(json.loads(result.text)):
        parse_expression(expr)
