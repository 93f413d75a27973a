"""Logger, Tracer and Metrics shared by every Lambda function (Powertools for AWS Lambda).

They are configured by ``POWERTOOLS_*`` variables in the template's Globals. The local
stack turns tracing and metrics off and keeps logs to errors, so a terminal shows
progress, not JSON.

No log line carries a credential: the logger's formatter (``RedactingFormatter``) passes
every field of every record, the message, extra keys, exception and stack trace included,
through ``loopline.redact`` before writing it. It formats the records of the ``loopline.*``
loggers too (``loopline.runtime``, ``loopline.local``), which propagate to this one.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

from loopline.redact import redact, redact_value


class RedactingFormatter(LambdaPowertoolsFormatter):
    """Powertools' JSON formatter, with credentials removed from everything it writes."""

    def serialize(self, log: Any) -> str:
        text = super().serialize(redact_value(log))
        return redact(text)  # what the JSON encoder made of other objects, too


# Logs go to stderr: in Lambda both streams reach CloudWatch, and locally stdout stays
# free for what a command prints (``loopline run --json``).
logger = Logger(
    service="loopline",
    logger_handler=logging.StreamHandler(sys.stderr),
    logger_formatter=RedactingFormatter(),
)
tracer = Tracer(service="loopline")
metrics = Metrics(namespace="Loopline", service="loopline")
