"""Expressions and templates: parsing, the tree, and the helpers the checks rely on."""

from __future__ import annotations

import pytest
from loopline.dsl.expr import (
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
