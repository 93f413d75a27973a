"""Generated requests against the served OpenAPI document (a bounded number per route):
no answer is a 5xx, and every answer matches the document (status code, content type,
body schema).

The schema is loaded from the running server inside the test and each operation's
strategy is drawn with Hypothesis here (schemathesis' pytest loader needs the schema at
collection time, before the session's server exists)."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.e2e.conftest import KEYS, Service

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES = 12


def test_generated_requests_get_documented_answers_and_never_a_5xx(
    service: Service, brief: str
) -> None:
    schema = schemathesis.openapi.from_url(f"{service.url}/v1/openapi.json")
    headers = {"Authorization": f"Bearer {KEYS['acme']}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 9
    answered: dict[int, int] = {}

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Any) -> None:
            response = case.call_and_validate(headers=headers, checks=CHECKS, timeout=60)
            answered[response.status_code] = answered.get(response.status_code, 0) + 1

        check()
    assert sum(answered.values()) >= len(operations), answered
    assert not [code for code in answered if code >= 500], answered
