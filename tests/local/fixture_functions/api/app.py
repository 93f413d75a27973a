"""A proxy function for the API Gateway emulation tests: answers with what it was given."""

import base64
import json
from typing import Any


def handler(event: dict[str, Any], context: Any) -> Any:
    path = event["path"]
    if path == "/v1/boom":
        raise RuntimeError("the function broke")
    if path == "/v1/not-a-response":
        return ["no", "status"]
    if path == "/v1/binary":
        return {
            "statusCode": 200,
            "headers": {"Content-Type": "application/octet-stream"},
            "body": base64.b64encode(b"\x00\x01\xfe\xff").decode(),
            "isBase64Encoded": True,
        }
    if path == "/v1/cookies":
        return {
            "statusCode": 201,
            "headers": {"X-One": "1"},
            "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]},
            "body": "",
        }
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "application/json", "X-Route": event["resource"]},
        "body": json.dumps({"event": event, "function": context.function_name}),
    }
