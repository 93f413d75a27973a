"""The TOKEN authorizer, called as API Gateway calls it (through the function's handler)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from loopline.local.executor import LOCAL_FUNCTION_ENV, load_handler
from loopline.service import keys

from tests.tasktable import task_table

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")
METHOD_ARN = "arn:aws:execute-api:eu-west-1:123456789012:abc123/dev/GET/v1/tasks/tsk_1"


class _Context:
    function_name = "authorizer"
    memory_limit_in_mb = 128
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:authorizer"
    aws_request_id = "req-1"


@pytest.fixture
def authorizer(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in LOCAL_FUNCTION_ENV.items():
        monkeypatch.setenv(name, value)
    with task_table():
        handler = load_handler(ROOT / "functions" / "authorizer", "app.handler")
        yield lambda token: handler(
            {"type": "TOKEN", "authorizationToken": token, "methodArn": METHOD_ARN}, _Context()
        )


def test_a_valid_key_is_allowed_on_every_route_of_the_stage_with_its_caller(
    authorizer: Any,
) -> None:
    text, key_id = keys.create_key("acme", "ann", ["admin", "ops"])

    answer = authorizer(f"Bearer {text}")

    assert answer == {
        "principalId": key_id,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Action": "execute-api:Invoke",
                    "Effect": "Allow",
                    "Resource": "arn:aws:execute-api:eu-west-1:123456789012:abc123/dev/*/*",
                }
            ],
        },
        "context": {"tenant": "acme", "user": "ann", "roles": "admin,ops", "key_id": key_id},
    }


def test_a_key_without_user_or_roles_passes_empty_strings(authorizer: Any) -> None:
    text, _ = keys.create_key("acme")
    context = authorizer(f"bearer {text}")["context"]
    assert (context["user"], context["roles"]) == ("", "")


@pytest.mark.parametrize(
    "token",
    ["", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "llk_" + "a" * 43, "Bearer not-a-key"],
)
def test_a_missing_or_malformed_token_is_unauthorized(authorizer: Any, token: str) -> None:
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorizer(token)


def test_an_unknown_or_revoked_key_is_unauthorized(authorizer: Any) -> None:
    text, _ = keys.create_key("acme")
    keys.revoke_key(text)
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorizer(f"Bearer {text}")
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorizer(f"Bearer {keys.new_key()}")
