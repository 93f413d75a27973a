"""Lambda TOKEN authorizer of the task API: a placeholder that refuses every key until
the key check (``loopline.api.authorizer``) lands. API Gateway answers 401."""

from typing import Any


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    raise Exception("Unauthorized")
