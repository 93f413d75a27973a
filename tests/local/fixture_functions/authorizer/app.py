"""A TOKEN authorizer for the API Gateway emulation tests: the token names the answer."""

import os
from typing import Any


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    log = os.environ.get("FIXTURE_AUTH_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as f:
            f.write(event["authorizationToken"] + "\n")
    token = event["authorizationToken"].removeprefix("Bearer ")
    arn = event["methodArn"]
    base = arn.split("/")[0]  # arn:aws:execute-api:region:acct:api
    stage = arn.split("/")[1]
    if token == "boom":
        raise ValueError("the key store is down")
    if token == "odd":
        return {"nothing": "useful"}
    if token == "good":
        effect, resource = "Allow", f"{base}/{stage}/*/*"
    elif token == "deny":
        effect, resource = "Deny", f"{base}/{stage}/*/*"
    elif token == "narrow":
        effect, resource = "Allow", f"{base}/{stage}/GET/v1/things/*"
    else:
        raise Exception("Unauthorized")
    return {
        "principalId": "key_1",
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Effect": effect, "Action": "execute-api:Invoke", "Resource": resource}],
        },
        "context": {"tenant": "acme", "roles": "a,b", "count": 2, "admin": True},
    }
