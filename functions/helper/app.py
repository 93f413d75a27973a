"""Lambda entry point for Loopline helper steps; the work is in the loopline layer."""

from loopline.runtime.lambda_entry import handle


def handler(event, context):  # type: ignore[no-untyped-def]
    return handle(event, context)
