"""The floor of ``loopline compile FILE -o OUT``: parse the same YAML, write the same ASL.

Usage: ``python compile_floor.py FILE ASL OUT``

``FILE`` is the workflow file the command compiles; ``ASL`` is the definition the compiler
produced for it (its exact output text, made once by the benchmark before any timing);
``OUT`` is where to write. The script does, in a fresh interpreter, the two parts of the
command's work that no compiler could skip, with the same libraries the command uses:

1. **parse the YAML**: read ``FILE`` as UTF-8 and build its values with
   ``yaml.load(text, Loader=yaml.CSafeLoader)``: libyaml's C parser, the one the command's
   loader reads (the command builds the values from that parser's events itself, with the
   line and column of each; this builds them with PyYAML's own safe constructor and keeps
   no positions);
2. **serialize the ASL**: read the definition from ``ASL`` (``orjson.loads``: the dict
   the compiler would have built in memory, a few milliseconds at 5,000 steps) and write
   ``orjson.dumps(definition, option=OPT_INDENT_2) + "\\n"`` to ``OUT`` when the definition
   text is indented as the compiler's is (``compact`` text: no option), which gives back
   the compiler's bytes exactly (the benchmark checks that once).

No validation, no checks, no compiling: the command's time over this is what Loopline adds.
"""

from __future__ import annotations

import sys

import orjson
import yaml


def main(source: str, asl: str, out: str) -> None:
    with open(source, encoding="utf-8") as f:
        data = yaml.load(f.read(), Loader=yaml.CSafeLoader)
    assert isinstance(data, dict)
    with open(asl, "rb") as f:
        raw = f.read()
    definition = orjson.loads(raw)
    option = orjson.OPT_INDENT_2 if raw.startswith(b"{\n") else 0
    with open(out, "wb") as f:
        f.write(orjson.dumps(definition, option=option) + b"\n")


if __name__ == "__main__":
    main(*sys.argv[1:4])
