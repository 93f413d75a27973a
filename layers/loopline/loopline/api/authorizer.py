"""The API's TOKEN authorizer: ``Authorization: Bearer <key>`` → an IAM policy.

A known, unrevoked key gets ``Allow execute-api:Invoke`` on every route of the API's stage
(``arn:aws:execute-api:<region>:<account>:<api id>/<stage>/*/*``): API Gateway caches the
answer per token (``ReauthorizeEvery``), and a policy naming only the first route called
would refuse the others while cached. ``principalId`` is the key's id; ``context`` carries
``tenant``, ``user`` (empty when none), ``roles`` (comma-joined) and ``key_id`` to the API
function (``requestContext.authorizer``). Anything else raises ``Exception("Unauthorized")``,
which API Gateway answers with 401 (its UNAUTHORIZED gateway response). Nothing is cached
here.
"""

from __future__ import annotations

from typing import Any

from loopline.service.keys import authenticate

UNAUTHORIZED = "Unauthorized"


def _resource(method_arn: str) -> str:
    """Every route of the stage of ``method_arn``
    (``arn:aws:execute-api:r:a:api/stage/GET/v1/x`` → ``…:api/stage/*/*``)."""
    parts = method_arn.split(":", 5)
    if len(parts) != 6 or parts[:3] != ["arn", parts[1], "execute-api"]:
        raise Exception(UNAUTHORIZED)
    path = parts[5].split("/")
    if len(path) < 2 or not path[0] or not path[1]:
        raise Exception(UNAUTHORIZED)
    return ":".join(parts[:5]) + f":{path[0]}/{path[1]}/*/*"


def _token(event: dict[str, Any]) -> str | None:
    header = event.get("authorizationToken")
    if not isinstance(header, str):
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def authorize(event: dict[str, Any]) -> dict[str, Any]:
    """The policy for a TOKEN authorizer event; ``Exception("Unauthorized")`` when the
    token is missing, malformed, unknown or revoked."""
    token = _token(event)
    caller = authenticate(token) if token else None
    if caller is None:
        raise Exception(UNAUTHORIZED)
    return {
        "principalId": caller.key_id,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Action": "execute-api:Invoke",
                    "Effect": "Allow",
                    "Resource": _resource(str(event.get("methodArn") or "")),
                }
            ],
        },
        "context": {
            "tenant": caller.tenant,
            "user": caller.user or "",
            "roles": ",".join(caller.roles),
            "key_id": caller.key_id,
        },
    }
