"""A tool module that fails to import (tests of LOOPLINE_TOOL_MODULES)."""

raise RuntimeError("this tool module is broken on purpose")
