"""Logger, Tracer and Metrics shared by every Lambda function (Powertools for AWS Lambda).

They are configured by ``POWERTOOLS_*`` variables in the template's Globals. The local
stack turns tracing and metrics off and keeps logs to warnings, so a terminal shows
progress, not JSON.
"""

from __future__ import annotations

import logging
import sys

from aws_lambda_powertools import Logger, Metrics, Tracer

# Logs go to stderr: in Lambda both streams reach CloudWatch, and locally stdout stays
# free for what a command prints (``loopline run --json``).
logger = Logger(service="loopline", logger_handler=logging.StreamHandler(sys.stderr))
tracer = Tracer(service="loopline")
metrics = Metrics(namespace="Loopline", service="loopline")
