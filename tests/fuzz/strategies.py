"""Hypothesis strategies of hostile inputs: mutated workflow files, expressions, input
specs and values."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st
from loopline.dsl import WorkflowInvalid
from loopline.dsl.loader import parse_text

ROOT = Path(__file__).resolve().parents[2]
SEED_FILES = sorted(
    [
        *ROOT.glob("workflows/*.yaml"),
        *ROOT.glob("tests/golden/compile/*.yaml"),
        *ROOT.glob("tests/golden/invalid/*.yaml"),
        *ROOT.glob("tests/golden/invalid/*.json"),
    ]
)
SEEDS: list[tuple[str, str]] = [(p.name, p.read_text(encoding="utf-8")) for p in SEED_FILES]


def _plain(name: str, text: str) -> Any:
    try:
        return parse_text(text, name).data
    except WorkflowInvalid:
        return None


#: Seeds whose data the loader reads, for structure-aware mutations.
DATA_SEEDS: list[Any] = [d for n, t in SEEDS if isinstance(d := _plain(n, t), dict)]
#: Seeds that are valid workflows (the examples and the compile cases).
VALID_SEEDS: list[tuple[str, str]] = [
    (p.name, p.read_text(encoding="utf-8"))
    for p in sorted([*ROOT.glob("workflows/*.yaml"), *ROOT.glob("tests/golden/compile/*.yaml")])
]
VALID_DATA: list[Any] = [parse_text(t, n).data for n, t in VALID_SEEDS]


def _keys(value: Any, out: set[str]) -> set[str]:
    if isinstance(value, dict):
        for k, v in value.items():
            out.add(str(k))
            _keys(v, out)
    elif isinstance(value, list):
        for v in value:
            _keys(v, out)
    return out


KEYS = sorted(_keys(DATA_SEEDS, set()))

# --------------------------------------------------------------------------- expressions

NAMES = ["inputs", "steps", "item", "index", "doc", "vars", "output", "x", "and", "not", "a1"]
COMPARISONS = ["==", "!=", "<", "<=", ">", ">=", "=", "===", "<>"]


def numbers() -> st.SearchStrategy[str]:
    return st.one_of(
        st.integers(-(2**70), 2**70).map(str),
        st.floats(allow_nan=False, allow_infinity=False).map(repr),
        st.sampled_from(["1e999", "-1e999", "1e-999", "0.0", "-0", "01", "1.", ".5", "9" * 400]),
    )


def strings() -> st.SearchStrategy[str]:
    quote = st.sampled_from(["'", '"'])
    piece = st.characters(codec="utf-8") | st.sampled_from(["\\", "'", '"', "\\'", "\n"])
    body = st.lists(piece, max_size=12).map("".join)
    return st.builds(lambda q, b, close: q + b + (q if close else ""), quote, body, st.booleans())


def paths(roots: list[str], valid: bool = False) -> st.SearchStrategy[str]:
    parts = [
        st.sampled_from([*NAMES, "output", "ok", "0"]).map(lambda n: "." + n),
        st.integers(0, 3).map(lambda i: f"[{i}]"),
    ]
    if not valid:
        parts.append(st.sampled_from(["[-1]", "[99999999999999999999999]", "[", "]", "..", "[x]"]))
    return st.builds(
        lambda root, parts: root + "".join(parts),
        st.sampled_from(roots),
        st.lists(st.one_of(*parts), max_size=3),
    )


def expressions(roots: list[str] | None = None, valid: bool = False) -> st.SearchStrategy[str]:
    """Expression texts. ``valid``: grammatical, mostly within the nesting bound; else
    also bad tokens, nesting far beyond the bound and random noise."""
    path = paths(roots or NAMES, valid)
    comparisons = COMPARISONS[:6] if valid else COMPARISONS
    booleans = ["and", "or", "&&", "||"] if valid else ["and", "or", "&&", "||", "&", "|"]
    functions = ["exists", "len"] if valid else ["exists", "len", "size"]
    atom = st.one_of(
        path,
        numbers() if not valid else st.integers(-(2**63), 2**63).map(str),
        strings() if not valid else st.text(max_size=8).map(json.dumps),
        st.sampled_from(["true", "false", "null"] if valid else ["true", "null", "True", "NULL"]),
        st.builds(lambda f, p: f"{f}({p})", st.sampled_from(functions), paths(roots or NAMES)),
    )

    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            st.builds(lambda a: f"({a})", inner),
            st.builds(lambda n, a: f"{n}{a}", st.sampled_from(["not ", "!", "! "]), inner),
            st.builds(lambda a, op, b: f"{a} {op} {b}", inner, st.sampled_from(comparisons), inner),
            st.builds(lambda a, op, b: f"{a} {op} {b}", inner, st.sampled_from(booleans), inner),
        )

    grammatical = st.recursive(atom, extend, max_leaves=10)
    deep = st.builds(
        lambda wrap, n, a: wrap[0] * n + a + wrap[1] * n,
        st.sampled_from([("(", ")"), ("not ", ""), ("!", ""), ("(not ", ")")]),
        st.integers(0, 18 if valid else 400),
        grammatical,
    )
    if valid:
        return st.one_of(grammatical, grammatical, grammatical, deep)
    noise = st.builds(
        lambda text, at, junk: text[:at] + junk + text[at:],
        grammatical,
        st.integers(0, 60),
        st.one_of(st.text(max_size=3), st.sampled_from(["{{", "}}", "'", '"', "\\", "\x00"])),
    )
    return st.one_of(grammatical, grammatical, grammatical, deep, noise, st.text(max_size=30))


# --------------------------------------------------------------------------- JSON values

_FINITE_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
_HOSTILE_LEAVES = st.one_of(
    _FINITE_LEAVES,
    st.sampled_from([math.nan, math.inf, -math.inf, 2**80, -(2**70), "\ud800"]),
    st.integers(100, 5000).map(lambda n: "a" * n),
    st.text(alphabet=st.characters(codec=None), max_size=10),
)


def json_values(hostile: bool = True, keys: list[str] | None = None) -> st.SearchStrategy[Any]:
    leaves = _HOSTILE_LEAVES if hostile else _FINITE_LEAVES
    key = st.sampled_from(keys) | st.text(max_size=6) if keys else st.text(max_size=6)
    return st.recursive(
        leaves,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(key, inner, max_size=4),
        max_leaves=12,
    )


def nested(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


# --------------------------------------------------------------------------- workflow files

TOKENS = [
    ": ", "- ", "\n", "  ", "    ", "[", "]", "{", "}", ",", "'", '"', "#", "|", ">", "? ",
    "&a ", "*a", "*b", "<<: *a", "<<: [*a, *a]", "&a [*a]", "!!int ", "!!float ", "!!bool ",
    "!!null ", "!!str ", "!!timestamp ", "!!binary ", "!!set ", "!!omap ", "!!pairs ",
    "!!merge ", "!!value ", "!!map ", "!!seq ", "!foo ", "!<tag:x> ", "! ", "!!python/name:os ",
    "---\n", "...\n", "%YAML 1.1\n", "%TAG ! tag:x,\n", "\t", "\\", "{{ ", " }}", "{{", "}}",
    "steps.", "inputs.", "output", "not ", " and ", " or ", "==", "(", ")", "9" * 30, "1e999",
    ".nan", ".inf", "-.inf", "0x", "0b", "0o7", "1:30", "~", "null", "yes", "2024-01-01", "=",
    "\ufeff", "\x00", "\x85", "\u2028", "é", "\U0001f600", "\ud800", "id: ", "if: ",
    "assert: ", "steps:\n", "group:\n", "parallel:\n", "loop:\n", "pattern: ", "(a+)+$",
    "output_schema: {pattern: '(?=x)'}", "timeout: ", "retry: ", "goto: ", "-1", "1000000",
]  # fmt: skip


@st.composite
def _text_mutation(draw: st.DrawFn, text: str) -> str:
    kind = draw(st.integers(0, 9))
    at = draw(st.integers(0, len(text)))
    if kind <= 2:  # insert a token or random text
        junk = draw(st.sampled_from(TOKENS) | st.text(max_size=4))
        return text[:at] + junk + text[at:]
    if kind == 3:  # delete a span
        return text[:at] + text[at + draw(st.integers(1, 40)) :]
    if kind == 4:  # replace one character
        return text[:at] + draw(st.characters()) + text[at + 1 :]
    lines = text.split("\n")
    i = draw(st.integers(0, max(len(lines) - 1, 0)))
    if kind == 5:  # re-indent a line
        lines[i] = " " * draw(st.integers(0, 12)) + lines[i].lstrip(" ")
    elif kind == 6:  # delete or duplicate a line
        if draw(st.booleans()):
            del lines[i]
        else:
            lines.insert(i, lines[i] if lines else "")
    elif kind == 7:  # swap two lines
        j = draw(st.integers(0, max(len(lines) - 1, 0)))
        if lines:
            lines[i], lines[j] = lines[j], lines[i]
    elif kind == 8:  # a tag, an anchor or an alias before a value
        line = lines[i] if lines else ""
        cut = line.find(": ") + 2 if ": " in line else len(line) - len(line.lstrip(" -"))
        tag = draw(st.sampled_from([t for t in TOKENS if t[:1] in "!&*<"]))
        if lines:
            lines[i] = line[:cut] + tag + line[cut:]
    else:  # repeat a block of lines (a larger file)
        j = draw(st.integers(i, min(i + 8, len(lines))))
        lines[i:i] = lines[i:j] * draw(st.integers(1, 200))
    return "\n".join(lines)


def _paths_in(value: Any, loc: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [loc]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths_in(v, (*loc, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths_in(v, (*loc, i))
    return out


def _replace(value: Any, loc: tuple[Any, ...], new: Any) -> Any:
    if not loc:
        return new
    head, rest = loc[0], loc[1:]
    if isinstance(value, dict):
        return {k: (_replace(v, rest, new) if k == head else v) for k, v in value.items()}
    return [(_replace(v, rest, new) if i == head else v) for i, v in enumerate(value)]


_EXPRESSION_KEYS = ("if", "assert", "while", "for_each", "input")


@st.composite
def _data_mutation(draw: st.DrawFn, data: Any) -> Any:
    locs = _paths_in(data)
    loc = draw(st.sampled_from(locs))
    kind = draw(st.integers(0, 5))
    if kind == 0 and loc:  # drop a key or an item
        parent_loc, last = loc[:-1], loc[-1]
        parent = data
        for part in parent_loc:
            parent = parent[part]
        if isinstance(parent, dict):
            smaller = {k: v for k, v in parent.items() if k != last}
        else:
            smaller = [v for i, v in enumerate(parent) if i != last]
        return _replace(data, parent_loc, smaller)
    if kind == 1:  # an expression where the language reads one
        key = draw(st.sampled_from(_EXPRESSION_KEYS))
        new = draw(expressions(valid=draw(st.booleans())))
        target = data
        for part in loc:
            target = target[part]
        if isinstance(target, dict):
            return _replace(data, loc, {**target, key: new})
        return _replace(data, loc, new)
    if kind == 2:  # a template
        return _replace(data, loc, "x {{ " + draw(expressions(valid=True)) + " }} y")
    if kind == 3:  # a known key with any value
        target = data
        for part in loc:
            target = target[part]
        if isinstance(target, dict):
            return _replace(
                data, loc, {**target, draw(st.sampled_from(KEYS)): draw(json_values(keys=KEYS))}
            )
    if kind == 4:  # deep nesting
        return _replace(data, loc, nested(draw(st.integers(1, 150))))
    return _replace(data, loc, draw(json_values(keys=KEYS)))


def _dump(data: Any, as_json: bool) -> str:
    if as_json:
        return json.dumps(data, ensure_ascii=False)
    try:
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    except (yaml.YAMLError, RecursionError):
        return json.dumps(data)


@st.composite
def workflow_files(draw: st.DrawFn) -> tuple[str, str]:
    """``(filename, text)``: a seed file mutated as text, or its data mutated and dumped."""
    if draw(st.booleans()):
        data = draw(st.sampled_from(VALID_DATA) | st.sampled_from(DATA_SEEDS))
        for _ in range(draw(st.sampled_from([1, 1, 1, 2, 4]))):
            data = draw(_data_mutation(data))
        as_json = draw(st.integers(0, 3)) == 0
        return ("fuzz.json" if as_json else "fuzz.yaml"), _dump(data, as_json)
    name, text = draw(st.sampled_from(VALID_SEEDS) | st.sampled_from(SEEDS))
    for _ in range(draw(st.sampled_from([1, 1, 1, 2, 2, 3, 6]))):
        text = draw(_text_mutation(text))
    if draw(st.integers(0, 9)) == 0:
        name = name.rsplit(".", 1)[0] + (".yaml" if name.endswith(".json") else ".json")
    return name, text


# --------------------------------------------------------------------------- input specs

EVIL_PATTERNS = [
    "^(a+)+$",
    "^(a|aa)+$",
    "^(a|a?)+$",
    "(x+x+)+y",
    "^(\\w+\\s?)*$",
    "(.*a){12}",
    "^[A-Z]+-[0-9]+$",
    "\\p{L}+",
    "(a)\\1",
    "(?=a)",
    "[",
    "a{1001}",
    "",
    "^$",
]


def patterns() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(EVIL_PATTERNS),
        st.text(alphabet="a()+*?|[]{}^$\\.-0123456789dwsSpL,=!<", max_size=16),
    )


def input_specs() -> st.SearchStrategy[dict[str, Any]]:
    """Input specs: consistent ones (each option where its type takes it), and any mix."""
    types = ["string", "number", "integer", "boolean", "json", "enum", "file"]
    consistent = st.one_of(
        st.fixed_dictionaries(
            {"type": st.just("string")},
            optional={"pattern": patterns(), "default": st.text(max_size=10)},
        ),
        st.fixed_dictionaries(
            {"type": st.sampled_from(["string", "json"]), "min_length": st.integers(0, 5)},
            optional={"max_length": st.integers(5, 40)},
        ),
        st.fixed_dictionaries(
            {"type": st.just("enum"), "values": st.lists(json_values(hostile=False), min_size=1)}
        ),
        st.fixed_dictionaries(
            {"type": st.sampled_from(types)},
            optional={"required": st.booleans(), "description": st.text(max_size=10)},
        ),
    )
    optional = {
        "required": st.booleans(),
        "default": json_values(hostile=False),
        "pattern": patterns(),
        "values": st.lists(json_values(hostile=False), max_size=4),
        "min_length": st.integers(-2, 40),
        "max_length": st.integers(-2, 40),
        "description": st.text(max_size=10),
    }
    anything = st.builds(
        lambda t, extra: {"type": t, **extra},
        st.sampled_from([*types, "x"]),
        st.fixed_dictionaries({}, optional=optional),
    )
    return st.one_of(consistent, consistent, anything)


def input_values() -> st.SearchStrategy[Any]:
    return st.one_of(
        json_values(),
        st.sampled_from(["a" * 30 + "!", "a" * 100_000, "s3://bucket/key", "x" * 31 + "\ud800"]),
        st.integers(0, 300).map(nested),
        st.builds(lambda c, n: c * n, st.sampled_from(["a", "ab", "é", " "]), st.integers(0, 5000)),
    )
