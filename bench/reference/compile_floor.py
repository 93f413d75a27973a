"""The floor of ``loopline compile FILE -o OUT``: parse the same YAML, write the same ASL.

Usage: ``python compile_floor.py FILE DEFINITIONS``

``FILE`` is the workflow file the command compiles; ``DEFINITIONS`` holds what the
command wrote for it: a list of ``(path, definition, compact)``, one per state machine
(a split workflow's parent and children), in ``marshal`` form, made once by the
benchmark before any timing. In a fresh interpreter, the script does
the parts of the command's work that no compiler could skip, with the libraries the
command uses:

1. **parse the YAML**: read ``FILE`` as UTF-8 and build its values with
   ``yaml.load(text, Loader=yaml.CSafeLoader)``: libyaml's C parser, the one the command
   reads (the command builds the values from that parser's events itself, with the line
   and column of each; this builds them with PyYAML's safe constructor, no positions);
2. **have the definition's objects**: ``marshal.loads`` of ``DEFINITION``, the quickest
   way Python has to make them (the compiler must build them too): under 0.1 ms at 10
   steps, about 6 ms at 1,000 and 40 ms at 5,000 where this was written;
3. **serialize the ASL**: write ``orjson.dumps(definition, option=OPT_INDENT_2) + "\\n"``
   (``compact``: no option) to each ``path``, which gives back the compiler's bytes
   exactly (the benchmark checks that once).

No validation, no checks, no compiling: the command's time over this is what Loopline
adds.
"""

from __future__ import annotations

import marshal
import sys

import orjson
import yaml


def main(source: str, definitions_file: str) -> None:
    with open(source, encoding="utf-8") as f:
        data = yaml.load(f.read(), Loader=yaml.CSafeLoader)
    assert isinstance(data, dict)
    with open(definitions_file, "rb") as f:
        machines = marshal.loads(f.read())
    for path, definition, compact in machines:
        option = 0 if compact else orjson.OPT_INDENT_2
        with open(path, "wb") as out:
            out.write(orjson.dumps(definition, option=option) + b"\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
