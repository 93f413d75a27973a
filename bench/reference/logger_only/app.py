"""The floor of a Lambda function's cold import (``bench/coldstart.py``): a Powertools
handler that imports only Logger."""

from typing import Any

from aws_lambda_powertools import Logger

logger = Logger(service="loopline")


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {}
