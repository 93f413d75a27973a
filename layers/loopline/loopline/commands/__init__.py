"""``loopline`` subcommands that talk to the task service (one module each)."""
