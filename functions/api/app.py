"""Lambda function of the Loopline task API (API Gateway REST API, proxy integration):
the routes are ``loopline.api.app``; the stack's workflows are the catalog beside this
file (``workflows.json``, written by ``make compile``)."""

from pathlib import Path
from typing import Any

from loopline.api.app import handle
from loopline.observability import logger, metrics, tracer
from loopline.service import catalog

catalog.use(Path(__file__).with_name("workflows.json"))


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle(event, context)
