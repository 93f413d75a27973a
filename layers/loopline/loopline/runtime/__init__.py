"""The step runtime: what Loopline's Lambda functions do for each action (see docs/internals.md)."""
