"""The YAML/JSON loader on hostile files: tags, aliases, merges, nesting, size, encoding.

Every file, however broken, gives located problems (``WorkflowInvalid``), never a traceback,
and is refused in bounded time and memory.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from loopline.dsl import WorkflowInvalid
from loopline.dsl.loader import MAX_DEPTH, MAX_FILE_BYTES, MAX_NODES, parse_text, read_file


def problems(text: str, filename: str = "t.yaml") -> list[str]:
    with pytest.raises(WorkflowInvalid) as caught:
        parse_text(text, filename)
    return caught.value.render().splitlines()


def value(text: str) -> object:
    return parse_text(f"v: {text}\n", "t.yaml").data["v"]


# --------------------------------------------------------------------------- tags


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("!!str 5", "5"),
        ("!!str true", "true"),
        ("!!int '7'", 7),
        ("!!int 0x1F", 31),
        ("!!int -12", -12),
        ("!!float 1", 1.0),
        ("!!float '2.5'", 2.5),
        ("!!bool 'true'", True),
        ("!!bool False", False),
        ("!!null ''", None),
        ("!!null ~", None),
        ("!!seq [1, a]", [1, "a"]),
        ("!!map {a: 1}", {"a": 1}),
        ("!<tag:yaml.org,2002:int> '3'", 3),
        ("! 5", "5"),
    ],
)
def test_given_a_standard_tag_the_language_takes_when_loaded_then_the_value_has_its_type(
    text: str, expected: object
) -> None:
    assert value(text) == expected
    assert type(value(text)) is type(expected)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("!!int x", "the tag !!int takes an integer, not 'x'"),
        ("!!int 0x", "the tag !!int takes an integer, not '0x'"),
        ("!!int --5", "the tag !!int takes an integer, not '--5'"),
        ("!!float x", "the tag !!float takes a number, not 'x'"),
        ("!!bool x", "the tag !!bool takes true or false, not 'x'"),
        ("!!bool yes", "the tag !!bool takes true or false, not 'yes'"),
        ("!!null x", "the tag !!null takes null, ~ or nothing, not 'x'"),
        ("!!float .nan", "'.nan' is not a finite number (JSON has no infinity or NaN)"),
    ],
)
def test_given_a_tag_its_text_does_not_fit_when_loaded_then_it_is_a_located_problem(
    text: str, message: str
) -> None:
    assert problems(f"a: 1\nv: {text}\n") == [f"t.yaml:2:4: v: {message}"]


ALLOWED = "(a workflow file may use !!str, !!int, !!float, !!bool, !!null, !!seq and !!map)"


@pytest.mark.parametrize(
    ("text", "tag"),
    [
        ("!!timestamp 2024-01-01", "!!timestamp"),
        ("!!binary aGVsbG8=", "!!binary"),
        ("!!set {a, b}", "!!set"),
        ("!!omap [a: 1]", "!!omap"),
        ("!!pairs [a: 1]", "!!pairs"),
        ("!!merge x", "!!merge"),
        ("!!value x", "!!value"),
        ("!!yaml x", "!!yaml"),
        ("!!python/object:os.system x", "!!python/object:os.system"),
    ],
)
def test_given_a_standard_tag_the_language_does_not_take_when_loaded_then_it_is_refused(
    text: str, tag: str
) -> None:
    assert problems(f"v: {text}\n") == [f"t.yaml:1:4: v: the tag {tag} is not supported {ALLOWED}"]


@pytest.mark.parametrize(
    ("text", "tag"),
    [("!foo x", "!foo"), ("!foo [1]", "!foo"), ("!foo {a: 1}", "!foo"), ("!<urn:x> 1", "!<urn:x>")],
)
def test_given_an_unknown_tag_when_loaded_then_it_is_refused_with_its_location(
    text: str, tag: str
) -> None:
    assert problems(f"v: {text}\n") == [f"t.yaml:1:4: v: unknown tag {tag} {ALLOWED}"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("!!map [1]", "the tag !!map is for a mapping, not a list"),
        ("!!seq {a: 1}", "the tag !!seq is for a list, not a mapping"),
        ("!!int [1]", "the tag !!int is for a single value, not a list"),
        ("!!str {a: 1}", "the tag !!str is for a single value, not a mapping"),
        ("!!map x", "the tag !!map is for a mapping, not a single value"),
        ("!!seq x", "the tag !!seq is for a list, not a single value"),
    ],
)
def test_given_a_tag_on_the_wrong_kind_of_node_when_loaded_then_it_is_a_located_problem(
    text: str, message: str
) -> None:
    assert problems(f"v: {text}\n") == [f"t.yaml:1:4: v: {message}"]


def test_given_several_bad_tags_when_loaded_then_every_one_is_reported() -> None:
    assert len(problems("a: !!int x\nb: !!float y\nc: [!!bool z]\nd: {e: !x 1}\n")) == 4


def test_given_a_bad_tag_on_a_key_when_loaded_then_the_key_is_located() -> None:
    assert problems("!!int x: 1\n") == ["t.yaml:1:1: x: the tag !!int takes an integer, not 'x'"]


# --------------------------------------------------------------------------- plain values


def test_given_dates_and_equal_signs_when_loaded_then_they_stay_text() -> None:
    assert value("2024-01-01") == "2024-01-01"
    assert value("=") == "="
    assert value("<<") == "<<"


def test_given_yaml_1_1_booleans_when_loaded_then_they_stay_text() -> None:
    assert [value(w) for w in ("yes", "no", "on", "off", "true", "False")] == [
        "yes",
        "no",
        "on",
        "off",
        True,
        False,
    ]


def test_given_an_integer_of_thousands_of_digits_when_loaded_then_it_is_a_problem() -> None:
    (line,) = problems("v: " + "9" * 5000 + "\n")
    assert line.startswith("t.yaml:1:4: v: the integer '999")
    assert line.endswith("is too large (integers have at most 64 bits)")


def test_given_integers_at_the_64_bit_bounds_when_loaded_then_they_are_values() -> None:
    assert value(str(2**64 - 1)) == 2**64 - 1
    assert value(str(-(2**63))) == -(2**63)
    assert problems(f"v: {2**64}\n")


@pytest.mark.parametrize("text", [".inf", "-.inf", ".nan", "1.0e+999"])
def test_given_a_number_that_is_not_finite_when_loaded_then_it_is_a_problem(text: str) -> None:
    (line,) = problems(f"v: {text}\n")
    assert "is not a finite number" in line


def test_given_a_non_scalar_key_when_loaded_then_it_is_a_problem() -> None:
    assert problems("? [a, b]\n: 1\n") == [
        "t.yaml:1:3: (file): a key must be a single value, not a list"
    ]


def test_given_keys_that_are_numbers_or_null_when_loaded_then_the_key_is_their_text() -> None:
    assert parse_text("1: a\nnull: b\n0x10: c\n", "t.yaml").data == {
        "1": "a",
        "null": "b",
        "0x10": "c",
    }


# --------------------------------------------------------------------------- aliases and merges


def test_given_an_alias_when_loaded_then_it_has_the_anchored_value_and_its_positions() -> None:
    doc = parse_text("a: &x {b: [1, 2]}\nc: *x\n", "t.yaml")

    assert doc.data == {"a": {"b": [1, 2]}, "c": {"b": [1, 2]}}
    assert doc.positions[("c", "b", 1)] == doc.positions[("a", "b", 1)] == (1, 15)


def test_given_merge_keys_when_loaded_then_written_keys_win_and_earlier_mappings_win() -> None:
    text = "a: &a {x: 1, y: 1}\nb: &b {y: 2, z: 2}\nc:\n  <<: [*a, *b]\n  x: 3\n"

    doc = parse_text(text, "t.yaml")

    assert doc.data["c"] == {"x": 3, "y": 1, "z": 2}
    assert doc.positions[("c", "z")] == (2, 17)
    assert doc.positions[("c", "x")] == (5, 6)


def test_given_a_merged_key_also_written_when_loaded_then_it_is_no_duplicate() -> None:
    doc = parse_text("base: &b {x: 1}\nstep:\n  <<: *b\n  x: 2\n", "t.yaml")

    assert doc.data["step"] == {"x": 2}


def test_given_a_merge_of_a_scalar_when_loaded_then_it_is_a_problem() -> None:
    assert problems("a:\n  <<: 5\n") == [
        "t.yaml:2:7: a.<<: a merge key << takes a mapping or a list of mappings"
    ]


def test_given_merges_that_double_at_each_level_when_loaded_then_refused_quickly() -> None:
    lines = ["p0: &p0 {x: 1}"]
    lines += [f"p{k}: &p{k} {{<<: [*p{k - 1}, *p{k - 1}], y{k}: 1}}" for k in range(1, 40)]
    start = time.perf_counter()

    (line,) = problems("\n".join(lines) + "\n")

    assert time.perf_counter() - start < 5
    assert line.endswith(
        f"the file holds more than {MAX_NODES:,} values once its aliases are expanded"
    )


def test_given_an_alias_bomb_when_loaded_then_refused_quickly_naming_the_aliases() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{k}: &a{k} [{', '.join([f'*a{k - 1}'] * 10)}]" for k in range(1, 10)]
    start = time.perf_counter()

    (line,) = problems("\n".join(lines) + "\n")

    assert time.perf_counter() - start < 5
    assert line.endswith("values once its aliases are expanded")


def test_given_many_values_and_no_alias_when_loaded_then_the_message_does_not_blame_aliases() -> (
    None
):
    (line,) = problems("[" + "1," * (MAX_NODES + 1) + "1]\n")

    assert (
        line == f"t.yaml:1:{2 * MAX_NODES}: (file): the file holds more than {MAX_NODES:,} values"
    )


def test_given_an_alias_inside_its_own_anchor_when_loaded_then_it_is_a_problem() -> None:
    assert problems("a: &x [1, *x]\n") == [
        "t.yaml:1:11: (file): the alias *x is inside the value it names"
    ]


def test_given_an_alias_to_no_anchor_when_loaded_then_it_is_a_problem() -> None:
    assert problems("a: *nope\n") == [
        "t.yaml:1:4: (file): the alias *nope names no anchor &nope before it"
    ]


# --------------------------------------------------------------------------- nesting and size


@pytest.mark.parametrize(
    "text",
    [
        "a: " + "[" * 1_000_000 + "]" * 1_000_000,
        "a: " + "{a: " * 200_000 + "}" * 200_000,
        "".join(" " * i + "- \n" for i in range(0, 1200)),
    ],
    ids=["flow lists", "flow mappings", "block lists"],
)
def test_given_nesting_far_beyond_the_limit_when_loaded_then_refused_without_recursing(
    text: str,
) -> None:
    (line,) = problems(text)

    assert line.endswith(f"(file): nested more than {MAX_DEPTH} levels deep")


def test_given_deep_json_when_loaded_then_refused_without_recursing() -> None:
    (line,) = problems("[" * 100_000 + "]" * 100_000, "t.json")

    assert line.endswith(f"nested more than {MAX_DEPTH} levels deep")


def test_given_text_over_the_size_limit_when_parsed_then_refused_at_once_with_the_sizes() -> None:
    text = "name: big\nsteps:\n" + "  - {id: a, llm: hello}\n" * 220_000  # 5 MB
    start = time.perf_counter()

    lines = problems(text, "big.yaml")

    assert time.perf_counter() - start < 1
    size = len(text.encode())
    assert lines == [
        f"big.yaml: (file): the file is too large: {size:,} bytes; a workflow file may be at "
        f"most {MAX_FILE_BYTES:,} bytes (2 MiB)"
    ]


def test_given_multibyte_text_just_over_the_limit_when_parsed_then_bytes_are_counted() -> None:
    text = "a: " + "é" * (MAX_FILE_BYTES // 2)

    (line,) = problems(text)

    assert f"{len(text.encode()):,} bytes" in line


def test_given_a_50_mb_file_when_read_then_refused_without_reading_it(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with big.open("wb") as f:
        f.truncate(50 * 1024 * 1024)
    start = time.perf_counter()

    with pytest.raises(WorkflowInvalid) as caught:
        read_file(big)

    assert time.perf_counter() - start < 1
    assert caught.value.render() == (
        f"{big}: (file): the file is too large: 52,428,800 bytes; a workflow file may be at "
        f"most {MAX_FILE_BYTES:,} bytes (2 MiB)"
    )


def test_given_a_one_megabyte_workflow_when_validated_then_it_takes_well_under_a_second(
    tmp_path: Path,
) -> None:
    from loopline.compiler import compile_workflow
    from loopline.dsl import load_workflow

    prompt = "Read {{ inputs.text }} again and say what {{ inputs.topic }} changes there. " * 45
    lines = ["name: big", "inputs:", "  topic: {type: string}", "  text: {type: string}", "steps:"]
    for i in range(300):
        lines += [f"  - id: s{i}", f"    if: len(inputs.topic) > {i % 9}", f'    llm: "{prompt}"']
    path = tmp_path / "big.yaml"
    path.write_text("\n".join(lines) + "\n")
    assert 1_000_000 < path.stat().st_size < MAX_FILE_BYTES
    start = time.perf_counter()

    result = compile_workflow(load_workflow(path))

    assert time.perf_counter() - start < 1
    assert result.text


def test_given_an_endless_device_when_read_then_reading_stops_at_the_limit() -> None:
    with pytest.raises(WorkflowInvalid) as caught:
        read_file("/dev/zero")

    assert "the file is too large: more than 2,097,152 bytes" in caught.value.render()


def test_given_a_file_that_is_not_utf8_when_read_then_the_bad_byte_is_located(
    tmp_path: Path,
) -> None:
    path = tmp_path / "latin.yaml"
    path.write_bytes(b"name: a\ndescription: caf\xe9\n")

    with pytest.raises(WorkflowInvalid) as caught:
        read_file(path)

    assert caught.value.render() == f"{path}:2:17: (file): not UTF-8 text: invalid byte 0xe9"


def test_given_a_directory_when_read_then_it_cannot_be_read(tmp_path: Path) -> None:
    with pytest.raises(WorkflowInvalid) as caught:
        read_file(tmp_path)

    assert caught.value.render() == f"{tmp_path}: (file): cannot read: Is a directory"


def test_given_a_lone_surrogate_in_text_when_parsed_then_it_is_an_invalid_character() -> None:
    assert problems("a: b\nc: \ud800\n") == ["t.yaml:2:4: (file): invalid character '\\ud800'"]


def test_given_two_documents_when_loaded_then_it_is_a_problem() -> None:
    assert problems("a: 1\n---\nb: 2\n") == [
        "t.yaml:2:1: (file): the file holds more than one YAML document"
    ]


# --------------------------------------------------------------------------- JSON


def test_given_json_when_loaded_then_values_are_json_values() -> None:
    assert parse_text('{"a": 1e5, "b": [true, null]}', "t.json").data == {
        "a": 100000.0,
        "b": [True, None],
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"a": NaN}', "(file): invalid JSON: NaN is not a JSON value"),
        ('{"a": -Infinity}', "(file): invalid JSON: -Infinity is not a JSON value"),
        ('{"a": ' + "9" * 5000 + "}", "(file): invalid JSON: a number has thousands of digits"),
        ('{"a": 1e999}', "a: the number is too large to be finite"),
        ('{"a": [' + "9" * 30 + "]}", "is too large (integers have at most 64 bits)"),
    ],
)
def test_given_json_numbers_no_json_tool_takes_when_loaded_then_they_are_problems(
    text: str, message: str
) -> None:
    (line,) = problems(text, "t.json")
    assert line.endswith(message)


def test_given_no_size_limit_when_parsed_then_large_text_is_read() -> None:
    text = "answer: " + "x" * (MAX_FILE_BYTES + 10) + "\n"

    assert len(parse_text(text, "script.yaml", max_bytes=None).data["answer"]) > MAX_FILE_BYTES
