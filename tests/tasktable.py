"""The tasks table in moto, made from template.yaml: a context manager and a fixture.

``task_table()`` starts ``moto.mock_aws()`` (unless a mock is already active), creates
``TasksTable`` exactly as template.yaml declares it (through the local stack's own reading
of the template: keys, indexes and TTL are never restated here), points ``LOOPLINE_TABLE``
at it and forgets cached settings and AWS clients, on the way in and on the way out.

    from tests.tasktable import tasks_table  # noqa: F401  (the fixture)

    def test_something(tasks_table: str) -> None:
        store.create_task("acme", {...})
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import boto3
import pytest
from loopline import aws
from loopline.local.template import LocalStack
from loopline.settings import settings
from moto import mock_aws
from moto.core.models import MockAWS

TEMPLATE = Path(__file__).resolve().parents[1] / "template.yaml"
TABLE_RESOURCE = "TasksTable"


def _forget() -> None:
    settings.cache_clear()
    aws.reset()


@contextmanager
def task_table(template: Path = TEMPLATE, region: str = "us-east-1") -> Iterator[str]:
    """The table's name, with the table created in moto and ``LOOPLINE_TABLE`` set."""
    saved = {k: os.environ.get(k) for k in ("LOOPLINE_TABLE", "AWS_DEFAULT_REGION")}
    with ExitStack() as stack:
        if not MockAWS._mocks_active:
            stack.enter_context(mock_aws())
        local = LocalStack.load(template, region=region)
        resource = local.resources[TABLE_RESOURCE]
        session = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=region
        )
        if resource.name not in session.client("dynamodb").list_tables()["TableNames"]:
            local._table(session, resource)
        os.environ["LOOPLINE_TABLE"] = resource.name
        os.environ["AWS_DEFAULT_REGION"] = region
        _forget()
        try:
            yield resource.name
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            _forget()


@pytest.fixture
def tasks_table() -> Iterator[str]:
    """A fresh tasks table for one test (its name)."""
    with task_table() as name:
        yield name


@contextmanager
def tenant_task_executions(
    tenants: tuple[str, ...] = ("acme", "globex"), workflow: str = "wf"
) -> Iterator[dict[str, str]]:
    """The tasks table with a running task of ``workflow`` for each tenant: tenant → the
    execution ARN its steps' payloads carry (an execution is named after its task)."""
    from loopline import ids, store

    with task_table():
        arns = {}
        for tenant in tenants:
            task_id = ids.new_id("task")
            store.create_task(
                tenant,
                {
                    "id": task_id,
                    "workflow": workflow,
                    "version": "1",
                    "status": "RUNNING",
                    "run": 1,
                    "inputs": {},
                    "labels": {},
                    "created_at": ids.now(),
                },
            )
            arns[tenant] = f"arn:aws:states:us-east-1:123456789012:execution:{workflow}:{task_id}"
        yield arns
