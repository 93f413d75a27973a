"""Expressions and templates: parsing, the tree, and the helpers the checks rely on."""

from __future__ import annotations

import json

import pytest
from loopline.dsl.expr import (
    MAX_NESTING,
    And,
    Call,
    Compare,
    ExpressionError,
    Literal,
    Not,
    Or,
    Path,
    guarded_steps,
    parse_expression,
    paths,
)
from loopline.dsl.template import parse_template


def test_given_a_comparison_when_parsed_then_it_is_a_compare_of_a_path_and_a_literal() -> None:
    e = parse_expression("steps.classify.output.severity >= 3")

    assert e == Compare(">=", Path("steps", ("classify", "output", "severity")), Literal(3))


def test_given_symbolic_operators_when_parsed_then_they_mean_and_or_not() -> None:
    assert parse_expression("a && b || !c") == parse_expression("a and b or not c")


def test_given_and_binding_tighter_than_or_when_parsed_then_or_is_on_top() -> None:
    e = parse_expression("a or b and c")

    assert isinstance(e, Or)
    assert isinstance(e.items[1], And)


def test_given_literals_when_parsed_then_each_has_its_json_value() -> None:
    values = [
        parse_expression(t) for t in ("1", "2.5", "-3", "'it\\'s'", '"x"', "true", "false", "null")
    ]

    assert values == [
        Literal(1),
        Literal(2.5),
        Literal(-3),
        Literal("it's"),
        Literal("x"),
        Literal(True),
        Literal(False),
        Literal(None),
    ]


def test_given_an_index_in_a_path_when_parsed_then_it_is_an_int_part() -> None:
    e = parse_expression("steps.search.output.items[0].url")

    assert e == Path("steps", ("search", "output", "items", 0, "url"))
    assert isinstance(e, Path) and e.step_id == "search"


def test_given_an_expression_when_rendered_then_it_parses_back_to_the_same_tree() -> None:
    text = "not exists(steps.a) or (steps.a.output.done == false and len(inputs.items) > 2)"
    e = parse_expression(text)

    assert parse_expression(e.source()) == e


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty expression"),
        ("a ==", "the expression ends too early"),
        ("a = 1", "unexpected '=' (compare with ==)"),
        ("size(a)", "unknown function size()"),
        ("exists(1)", "exists() takes a path"),
        ("(a", "expected ')'"),
    ],
)
def test_given_bad_syntax_when_parsed_then_expression_error_says_what_is_wrong(
    text: str, message: str
) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse_expression(text)

    assert message in str(caught.value)


def test_given_nested_calls_when_walked_then_paths_lists_every_path_read() -> None:
    e = parse_expression("exists(steps.a) and len(steps.b.output) > index")

    assert [p.source() for p in paths(e)] == ["steps.a", "steps.b.output", "index"]


def test_given_exists_in_the_top_level_conjunction_then_the_step_is_guarded() -> None:
    e = parse_expression("exists(steps.fix) and steps.fix.output.ok")

    assert guarded_steps(e) == {"fix"}


def test_given_exists_under_or_then_guarded_steps_does_not_count_it() -> None:
    e = parse_expression("exists(steps.fix) or steps.other.output")

    assert guarded_steps(e) == set()


def test_given_not_exists_when_parsed_then_it_is_not_of_a_call() -> None:
    assert parse_expression("!exists(steps.a)") == Not(Call("exists", Path("steps", ("a",))))


def test_given_a_template_with_one_hole_only_then_it_yields_the_expression_itself() -> None:
    t = parse_template("{{ steps.search.output }}")

    assert t.single == Path("steps", ("search", "output"))


def test_given_a_template_with_text_around_holes_then_parts_keep_the_text() -> None:
    t = parse_template("Hello {{ inputs.name }}, you have {{ len(inputs.items) }} items")

    assert t.single is None
    assert [p.source() for p in t.paths()] == ["inputs.name", "inputs.items"]
    assert t.parts[0] == "Hello "


def test_given_an_unclosed_hole_when_parsed_then_the_error_says_so() -> None:
    with pytest.raises(ExpressionError, match="not closed"):
        parse_template("Hello {{ inputs.name")


def test_given_a_bad_expression_in_a_hole_then_the_error_names_the_hole() -> None:
    with pytest.raises(ExpressionError, match=r"in \{\{ inputs\.name == \}\}"):
        parse_template("Hello {{ inputs.name == }}")


# --------------------------------------------------------------------------- hostile input


@pytest.mark.parametrize(
    ("text", "column"),
    [
        ("(" * 246 + "a" + ")" * 246, MAX_NESTING + 1),
        ("not " * 250 + "a", 4 * MAX_NESTING + 1),
        ("!" * 5000 + "a", MAX_NESTING + 1),
        ("len(" * 300 + "a" + ")" * 300, 4 * MAX_NESTING + 4),
        ("a and (" * 40 + "b" + ")" * 40, 7 * MAX_NESTING + 7),
    ],
    ids=["parentheses", "not", "!", "calls", "and-parentheses"],
)
def test_given_nesting_beyond_the_bound_when_parsed_then_a_located_error_not_a_recursion(
    text: str, column: int
) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse_expression(text)

    assert caught.value.message == (
        f"nested more than {MAX_NESTING} levels deep (parentheses, 'not' and function calls)"
    )
    assert caught.value.column == column


def test_given_nesting_beyond_the_bound_in_a_template_then_an_error_that_quotes_the_hole_cut() -> (
    None
):
    hole = " " + "not " * 250 + "inputs.a "

    with pytest.raises(ExpressionError) as caught:
        parse_template("Hello {{" + hole + "}}")

    assert caught.value.message == (
        "in {{" + hole[:57] + "...}}: nested more than "
        f"{MAX_NESTING} levels deep (parentheses, 'not' and function calls)"
    )


def _deepest() -> str:
    """An expression at the nesting bound whose tree is as deep as the bound allows:
    alternating and/or in parentheses, with some ``not`` in between."""
    text, budget, i = "len(inputs.x) > 1", MAX_NESTING - 1, 0
    while budget:
        op = "and" if i % 2 else "or"
        if budget >= 2 and i % 3 == 0:
            text, budget = f"not (inputs.y{i} {op} {text})", budget - 2
        else:
            text, budget = f"(inputs.y{i} {op} {text})", budget - 1
        i += 1
    return text


def test_given_the_deepest_expression_allowed_then_checks_compile_json_and_runtime_take_it() -> (
    None
):
    from loopline.compiler import compile_workflow
    from loopline.dsl import load_workflow_text
    from loopline.runtime.evaluate import evaluate

    text = _deepest()
    e = parse_expression(text)
    group = {"id": "g0", "group": [{"id": "a", "llm": "hi", "if": text}]}
    for i in range(1, 30):
        group = {"id": f"g{i}", "group": [group]}
    wf = load_workflow_text(
        json.dumps({"name": "deep", "steps": [{"id": "s", "if": text, "llm": "x"}, group]}),
        "deep.json",
    )

    result = compile_workflow(wf)

    assert json.loads(result.text)["States"]
    assert evaluate(e, {"inputs": {"x": 2}}) in (True, False)
    assert parse_expression(e.source()) == e


@pytest.mark.parametrize(
    "text",
    ["1e999", "-1e999", "1" + "0" * 20, "99999999999999999999999", "9" * 5000],
)
def test_given_a_number_no_json_tool_takes_when_parsed_then_it_is_refused(text: str) -> None:
    with pytest.raises(ExpressionError, match="too large") as caught:
        parse_expression(f"inputs.a == {text}")

    assert caught.value.column == 13


def test_given_numbers_at_the_64_bit_bounds_when_parsed_then_they_are_literals() -> None:
    assert parse_expression(str(2**64 - 1)) == Literal(2**64 - 1)
    assert parse_expression(str(-(2**63))) == Literal(-(2**63))


def test_given_digits_that_are_not_ascii_when_parsed_then_they_are_not_numbers() -> None:
    with pytest.raises(ExpressionError, match="unexpected character"):
        parse_expression("inputs.a == \u0663")


@pytest.mark.parametrize(
    "text",
    [
        "(not a) == b",
        "not a == b",
        "a and b or c",
        "(a or b) or c",
        "(a == b) == c",
        "not (a or b)",
    ],
)
def test_given_an_expression_when_rendered_then_the_source_means_the_same_tree(text: str) -> None:
    e = parse_expression(text)

    assert parse_expression(e.source()) == e


def test_given_not_as_a_comparison_operand_then_the_helper_lambda_evaluates_the_same() -> None:
    from loopline.runtime.evaluate import evaluate

    e = parse_expression("(not inputs.a) == inputs.b")
    ctx = {"inputs": {"a": "x", "b": 5}}

    assert evaluate(parse_expression(e.source()), ctx) is evaluate(e, ctx) is False
