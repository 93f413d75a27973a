"""``ConfigError``: a setting is wrong (``loopline.settings``). Its own module, so the
command line can catch it without loading the settings machinery."""

from __future__ import annotations


class ConfigError(Exception):
    """One or more settings are wrong; ``problems`` says which and what they need, each
    naming its variable (``LOOPLINE_LLM_TIMEOUT must be …``)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems
