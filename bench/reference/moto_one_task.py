"""The floor of ``loopline run`` of a one-step workflow: a bare moto script that runs one
Lambda Task, with nothing of Loopline in it.

What it does, and why that is the floor:

- ``mock_aws`` with moto's Step Functions executing state machines (its ASL interpreter,
  the only way moto runs a definition) and its Lambda without docker
  (``"lambda": {"use_docker": False}``: moto's ``LambdaSimpleBackend``).
- Lambda invocations run a Python function in this process: ``LambdaSimpleBackend.invoke``
  is replaced by a call to ``handler`` (without docker, moto's own invoke only echoes the
  payload; replacing it is how the local stack runs its functions). ``handler`` does the
  one step's work (a rendered text) and nothing else.
- One state machine, one state: a ``Task`` on ``arn:aws:states:::lambda:invoke`` that
  passes a payload built from the input and keeps the function's ``output``
  (``ResultSelector``), as a compiled one-step workflow's step does.
- One execution; ``DescribeExecution`` polled every 50 ms (as ``loopline run`` polls)
  until it ends; its history read once; the output printed.
- At exit, ``gc.freeze()``: the interpreter's shutdown does not walk the objects moto
  leaves alive with the garbage collector (a third of a second here), as ``loopline
  run``'s does not (``loopline.local.executor``).

No workflow file, no compiler, no template, no tables or buckets, no handler modules:
whatever ``loopline run`` spends beyond this is its own overhead. Run it with
``python bench/reference/moto_one_task.py`` (prints ``task 3`` and the event count).
"""

from __future__ import annotations

import gc
import json
import time
from typing import Any

import boto3
from moto import mock_aws
from moto.awslambda_simple.models import LambdaSimpleBackend

DEFINITION = {
    "StartAt": "first",
    "States": {
        "first": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {
                "FunctionName": "arn:aws:lambda:us-east-1:123456789012:function:one",
                "Payload": {"template": "task {}", "n.$": "$.n"},
            },
            "ResultSelector": {"output.$": "$.Payload.output"},
            "OutputPath": "$.output",
            "End": True,
        }
    },
}


def handler(event: dict[str, Any]) -> dict[str, Any]:
    return {"output": event["template"].format(event["n"])}


def _invoke(
    self: Any, function_name: str, qualifier: Any, body: Any, headers: Any, response_headers: Any
) -> bytes:
    return json.dumps(handler(json.loads(body))).encode()


def main() -> None:
    LambdaSimpleBackend.invoke = _invoke  # type: ignore[method-assign,assignment]
    config: Any = {
        "stepfunctions": {"execute_state_machine": True},
        "lambda": {"use_docker": False},
    }
    with mock_aws(config=config):
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        machine = sfn.create_state_machine(
            name="one",
            definition=json.dumps(DEFINITION),
            roleArn="arn:aws:iam::123456789012:role/one",
        )["stateMachineArn"]
        run = sfn.start_execution(stateMachineArn=machine, input=json.dumps({"n": 3}))
        while (desc := sfn.describe_execution(executionArn=run["executionArn"]))[
            "status"
        ] == "RUNNING":
            time.sleep(0.05)
        events = sfn.get_execution_history(executionArn=run["executionArn"])["events"]
        print(desc["status"], desc.get("output"), len(events))


if __name__ == "__main__":
    main()
    gc.freeze()
