"""Logger and Metrics shared by every Lambda function (Powertools for AWS Lambda).

They are configured by ``POWERTOOLS_*`` variables in the template's Globals. The local
stack turns metrics off and keeps logs to errors, so a terminal shows progress, not JSON.

Tracing is Lambda's own (``Tracing: Active`` in the template's Globals): no X-Ray SDK is
imported here, because patching it in would cost every function more than Logger's whole
cold import (docs/internals.md, "Cold start and tracing").

No log line carries a credential: the logger's formatter (``RedactingFormatter``) passes
every field of every record, the message, extra keys, exception and stack trace included,
through ``loopline.redact`` before writing it. It formats the records of the ``loopline.*``
loggers too (``loopline.runtime``, ``loopline.local``), which propagate to this one. The
records of other libraries reach the root logger's handlers, which get a
``RedactingFilter`` when this module is imported.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

from loopline.redact import redact, redact_value


class RedactingFormatter(LambdaPowertoolsFormatter):
    """Powertools' JSON formatter, with credentials removed from everything it writes."""

    def serialize(self, log: Any) -> str:
        text = super().serialize(redact_value(log))
        return redact(text)  # what the JSON encoder made of other objects, too


class RedactingFilter(logging.Filter):
    """Removes credentials from a record of any logger (``httpx``, ``botocore``, ...) before
    a handler writes it: the message is rendered and redacted, the traceback too."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # arguments that do not fit the format: leave it to the handler
            return True
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


# The handlers the runtime gave the root logger (in Lambda, the one writing to CloudWatch)
# write the records of other libraries: redacted too.
for _handler in logging.root.handlers:
    if not any(isinstance(f, RedactingFilter) for f in _handler.filters):
        _handler.addFilter(RedactingFilter())

# Logs go to stderr: in Lambda both streams reach CloudWatch, and locally stdout stays
# free for what a command prints (``loopline run --json``).
logger = Logger(
    service="loopline",
    logger_handler=logging.StreamHandler(sys.stderr),
    logger_formatter=RedactingFormatter(),
)
metrics = Metrics(namespace="Loopline", service="loopline")
