"""The local stack, made from ``template.yaml``: what the SAM template declares is what
moto gets, so what is tested is what is deployed.

``LocalStack.load(path)`` reads the template (CloudFormation short tags included) and
resolves its parameters, conditions and intrinsic functions; ``provision(executor)``
creates in moto the DynamoDB tables (keys, indexes, TTL), S3 buckets, SQS queues (with
their redrive policies), SNS topics, Secrets Manager secrets (``SecretString``, or a
generated one), Lambda functions (each dispatched in-process to the handler its
``CodeUri`` and ``Handler`` name, with its environment variables; the handler imported at
the first invocation) and state machines (``DefinitionUri`` with
``DefinitionSubstitutions`` resolved; created in moto when first named, see
``loopline.local.executor``), EventBridge rules
(functions' ``EventBridgeRule`` events and ``AWS::Events::Rule``, their Lambda targets
delivered by ``loopline.local.fidelity``), the functions' ``SQS`` event sources
(polled by ``loopline.local.sqs_events``) and their ``DynamoDB`` event sources on the
tables' streams (read by ``loopline.local.stream_events``); it verifies the SES sender of
the settings (``LOOPLINE_SENDER_EMAIL``). No resource is
described a second time anywhere else: change the template and the local stack follows.

Supported intrinsics: ``Ref``, ``Fn::GetAtt``, ``Fn::Sub``, ``Fn::If``, ``Fn::Equals``,
``Fn::Not``, ``Fn::And``, ``Fn::Or``, ``Fn::Join``, ``Fn::Select``, ``Fn::Split``,
``Condition`` and ``AWS::NoValue``. Resources of other types (roles, log groups, layers,
alarms) need nothing locally and are skipped; the REST API (``AWS::Serverless::Api``) is
read, not provisioned, by ``loopline.local.apigateway``, which serves it.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from loopline.local.executor import (
    ACCOUNT_ID,
    LOCAL_FUNCTION_ENV,
    LocalContext,
    LocalExecutor,
    LocalStackError,
    load_handler,
)
from loopline.local.sqs_events import SqsMapping
from loopline.local.stream_events import StreamMapping, compile_filters
from loopline.settings import settings

STACK_NAME = "loopline-local"
_NO_VALUE = object()


# --------------------------------------------------------------------------- reading


#: libyaml's parser when PyYAML has it (eight times faster on template.yaml), else PyYAML's.
_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _CfnLoader(_SafeLoader):  # type: ignore[valid-type,misc]
    """YAML with CloudFormation's short tags turned into their long forms."""


def _tag(name: str) -> Any:
    long = "Ref" if name == "Ref" else ("Condition" if name == "Condition" else f"Fn::{name}")

    def construct(loader: Any, node: yaml.Node) -> Any:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if name == "GetAtt":
                value = str(value).split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            assert isinstance(node, yaml.MappingNode)
            value = loader.construct_mapping(node, deep=True)
        return {long: value}

    return construct


for _name in (
    "Ref", "GetAtt", "Sub", "If", "Equals", "Not", "And", "Or", "Join", "Select", "Split",
    "Condition", "Base64", "GetAZs", "ImportValue", "FindInMap", "Cidr", "Transform",
):  # fmt: skip
    _CfnLoader.add_constructor(f"!{_name}", _tag(_name))


#: Templates read in this process: (path, modification time, size) → parsed data.
_read: dict[tuple[str, int, int], dict[str, Any]] = {}


def read_template(path: Path) -> dict[str, Any]:
    """The template at ``path``, parsed (a copy of the one read before in this process
    when the file has not changed since: ``loopline run`` reads it to check the workflow,
    then to make the local stack)."""
    try:
        stat = path.stat()
        key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
        if key in _read:
            return copy.deepcopy(_read[key])
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_CfnLoader)
    except FileNotFoundError:
        raise LocalStackError(f"{path}: no such template") from None
    except yaml.YAMLError as exc:
        raise LocalStackError(f"{path}: not a valid template: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("Resources"), dict):
        raise LocalStackError(f"{path}: a template needs a Resources mapping")
    if len(_read) >= 8:  # a process reads one template, tests a few
        _read.clear()
    _read[key] = copy.deepcopy(data)
    return data


# --------------------------------------------------------------------------- resources


@dataclass
class Resource:
    logical_id: str
    type: str
    properties: dict[str, Any]
    #: The physical name (table, bucket, queue, topic, function or state machine name).
    name: str = ""
    #: What ``Ref`` gives.
    ref: str = ""
    #: What ``Fn::GetAtt`` gives, by attribute.
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass
class FunctionSpec:
    logical_id: str
    name: str
    arn: str
    code_uri: Path
    handler: str
    environment: dict[str, str]


class LocalStack:
    """A template, resolved: its resources with local names, ARNs and properties."""

    def __init__(
        self,
        path: Path,
        *,
        parameters: dict[str, str] | None = None,
        stack_name: str = STACK_NAME,
        region: str = "us-east-1",
    ) -> None:
        self.path = path.resolve()
        self.root = self.path.parent
        self.data = read_template(self.path)
        self.stack_name = stack_name
        self.region = region
        self.parameters = self._parameters(parameters or {})
        self.conditions: dict[str, bool] = {}
        for name, expr in (self.data.get("Conditions") or {}).items():
            self.conditions[name] = bool(self._resolve(expr, f"Conditions.{name}"))
        self.resources: dict[str, Resource] = {}
        for logical_id, body in self.data["Resources"].items():
            self.resources[logical_id] = self._declare(logical_id, body or {})
        self.globals_function: dict[str, Any] = (self.data.get("Globals") or {}).get(
            "Function"
        ) or {}

    @classmethod
    def load(cls, path: str | Path, **kwargs: Any) -> LocalStack:
        return cls(Path(path), **kwargs)

    # ------------------------------------------------------------------ resolution

    def _parameters(self, overrides: dict[str, str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for name, spec in (self.data.get("Parameters") or {}).items():
            if name in overrides:
                out[name] = str(overrides[name])
            elif "Default" in (spec or {}):
                out[name] = str(spec["Default"])
            else:
                raise LocalStackError(f"template parameter {name} has no Default: pass a value")
        unknown = sorted(set(overrides) - set(out))
        if unknown:
            raise LocalStackError(f"unknown template parameters: {', '.join(unknown)}")
        return out

    def _declare(self, logical_id: str, body: dict[str, Any]) -> Resource:
        rtype = str(body.get("Type", ""))
        props = body.get("Properties") or {}
        r = Resource(logical_id, rtype, props)
        default = f"{self.stack_name}-{logical_id}"
        arn = f"arn:aws:{{}}:{self.region}:{ACCOUNT_ID}:{{}}"
        if rtype == "AWS::DynamoDB::Table":
            r.name = self._name(props, "TableName", default)
            r.ref = r.name
            r.attributes["Arn"] = arn.format("dynamodb", f"table/{r.name}")
            if props.get("StreamSpecification"):
                # The stream's label is the time its table is created: provisioning puts
                # the ARN moto gives in its place (until then, the time of reading).
                label = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
                r.attributes["StreamArn"] = f"{r.attributes['Arn']}/stream/{label}"
        elif rtype == "AWS::S3::Bucket":
            r.name = (self._name(props, "BucketName", default)).lower()
            r.ref = r.name
            r.attributes.update(
                Arn=f"arn:aws:s3:::{r.name}", DomainName=f"{r.name}.s3.amazonaws.com"
            )
        elif rtype == "AWS::SQS::Queue":
            r.name = self._name(props, "QueueName", default)
            r.ref = f"https://sqs.{self.region}.amazonaws.com/{ACCOUNT_ID}/{r.name}"
            r.attributes.update(Arn=arn.format("sqs", r.name), QueueName=r.name, QueueUrl=r.ref)
        elif rtype == "AWS::SecretsManager::Secret":
            r.name = self._name(props, "Name", default)
            # A partial ARN (no random suffix): Secrets Manager takes it as the secret's id.
            r.ref = arn.format("secretsmanager", f"secret:{r.name}")
            r.attributes["Id"] = r.ref
        elif rtype == "AWS::SNS::Topic":
            r.name = self._name(props, "TopicName", default)
            r.ref = arn.format("sns", r.name)
            r.attributes.update(TopicArn=r.ref, TopicName=r.name)
        elif rtype in ("AWS::Serverless::Function", "AWS::Lambda::Function"):
            r.name = (
                props.get("FunctionName") and self._str(props["FunctionName"], logical_id)
            ) or default
            r.ref = r.name
            r.attributes["Arn"] = arn.format("lambda", f"function:{r.name}")
        elif rtype in ("AWS::Serverless::StateMachine", "AWS::StepFunctions::StateMachine"):
            r.name = self._name(props, "Name", default)
            r.ref = arn.format("states", f"stateMachine:{r.name}")
            r.attributes.update(Arn=r.ref, Name=r.name)
        elif rtype == "AWS::IAM::Role":
            # Not created locally, but named where an ARN of one is passed on (a
            # function's environment, a state machine made at run time).
            r.name = self._name(props, "RoleName", default)
            r.ref = r.name
            r.attributes.update(Arn=f"arn:aws:iam::{ACCOUNT_ID}:role/{r.name}", RoleId=r.name)
        else:
            r.name = default
            r.ref = default
            r.attributes["Arn"] = arn.format("local", default)
        return r

    def _name(self, props: dict[str, Any], key: str, default: str) -> str:
        """The physical name a resource's properties give it, else ``default``."""
        return self._str(props[key], key) if props.get(key) else default

    def _str(self, value: Any, where: str) -> str:
        out = self._resolve(value, where)
        if not isinstance(out, (str, int, float)):
            raise LocalStackError(f"{where}: expected text, got {out!r}")
        return str(out)

    def _pseudo(self, name: str) -> str | None:
        return {
            "AWS::StackName": self.stack_name,
            "AWS::Region": self.region,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackId": f"arn:aws:cloudformation:{self.region}:{ACCOUNT_ID}:stack/{self.stack_name}/local",
        }.get(name)

    def _ref(self, name: str, where: str) -> Any:
        if name == "AWS::NoValue":
            return _NO_VALUE
        pseudo = self._pseudo(name)
        if pseudo is not None:
            return pseudo
        if name in self.parameters:
            return self.parameters[name]
        if name in getattr(self, "resources", {}):
            return self.resources[name].ref
        raise LocalStackError(f"{where}: Ref to unknown {name!r}")

    def _getatt(self, logical_id: str, attribute: str, where: str) -> str:
        r = getattr(self, "resources", {}).get(logical_id)
        if r is None:
            raise LocalStackError(f"{where}: GetAtt of unknown resource {logical_id!r}")
        if attribute not in r.attributes:
            raise LocalStackError(
                f"{where}: {logical_id} ({r.type}) has no attribute {attribute!r} locally"
            )
        return r.attributes[attribute]

    def _sub(self, template: str, variables: dict[str, Any], where: str) -> str:
        out, i = [], 0
        while i < len(template):
            if template.startswith("${!", i):
                out.append("${")
                i += 3
                continue
            if template.startswith("${", i):
                end = template.index("}", i)
                name = template[i + 2 : end]
                if name in variables:
                    value: Any = self._resolve(variables[name], where)
                elif "." in name and not name.startswith("AWS::"):
                    res, attr = name.split(".", 1)
                    value = self._getatt(res, attr, where)
                else:
                    value = self._ref(name, where)
                out.append(str(value))
                i = end + 1
                continue
            out.append(template[i])
            i += 1
        return "".join(out)

    def _resolve(self, value: Any, where: str) -> Any:
        """``value`` with every intrinsic function evaluated (``AWS::NoValue`` removed)."""
        if isinstance(value, list):
            items = [self._resolve(v, where) for v in value]
            return [v for v in items if v is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self._ref(str(arg), where)
            if key == "Fn::GetAtt":
                parts = arg if isinstance(arg, list) else str(arg).split(".", 1)
                return self._getatt(str(parts[0]), str(parts[1]), where)
            if key == "Fn::Sub":
                if isinstance(arg, list):
                    return self._sub(str(arg[0]), dict(arg[1]), where)
                return self._sub(str(arg), {}, where)
            if key == "Fn::If":
                name, yes, no = arg
                if name not in self.conditions:
                    raise LocalStackError(f"{where}: unknown condition {name!r}")
                return self._resolve(yes if self.conditions[name] else no, where)
            if key == "Condition":
                return self.conditions[str(arg)]
            if key == "Fn::Equals":
                a, b = (self._resolve(x, where) for x in arg)
                return str(a) == str(b)
            if key == "Fn::Not":
                return not self._resolve(arg[0], where)
            if key == "Fn::And":
                return all(self._resolve(x, where) for x in arg)
            if key == "Fn::Or":
                return any(self._resolve(x, where) for x in arg)
            if key == "Fn::Join":
                sep, items = arg
                return str(sep).join(str(x) for x in self._resolve(items, where))
            if key == "Fn::Select":
                index, items = arg
                return self._resolve(items, where)[int(self._resolve(index, where))]
            if key == "Fn::Split":
                sep, text = arg
                return str(self._resolve(text, where)).split(str(sep))
            if key.startswith("Fn::"):
                raise LocalStackError(f"{where}: {key} is not supported by the local stack")
        out = {}
        for k, v in value.items():
            rv = self._resolve(v, f"{where}.{k}")
            if rv is not _NO_VALUE:
                out[k] = rv
        return out

    def properties(self, logical_id: str) -> dict[str, Any]:
        r = self.resources[logical_id]
        return self._resolve(r.properties, f"Resources.{logical_id}.Properties")

    # ------------------------------------------------------------------ views

    def of_type(self, *types: str) -> list[Resource]:
        return [r for r in self.resources.values() if r.type in types]

    def functions(self) -> list[FunctionSpec]:
        out = []
        global_env = self._resolve(
            ((self.globals_function.get("Environment") or {}).get("Variables") or {}), "Globals"
        )
        for r in self.of_type("AWS::Serverless::Function"):
            props = self.properties(r.logical_id)
            env = {**global_env, **((props.get("Environment") or {}).get("Variables") or {})}
            code_uri = props.get("CodeUri") or self.globals_function.get("CodeUri") or "."
            handler = props.get("Handler") or self.globals_function.get("Handler")
            if not handler:
                raise LocalStackError(f"{r.logical_id}: a function needs a Handler")
            out.append(
                FunctionSpec(
                    r.logical_id,
                    r.name,
                    r.attributes["Arn"],
                    (self.root / str(code_uri)).resolve(),
                    str(handler),
                    {k: str(v) for k, v in env.items()},
                )
            )
        return out

    def function_environment(self) -> dict[str, str]:
        """The variables every function sets, merged; a variable two functions set to
        different values is an error (all handlers share this one process)."""
        merged: dict[str, str] = {}
        owner: dict[str, str] = {}
        for fn in self.functions():
            for key, value in fn.environment.items():
                if key in merged and merged[key] != value:
                    raise LocalStackError(
                        f"{fn.logical_id} and {owner[key]} set {key} to different values "
                        f"({value!r}, {merged[key]!r}); the local stack runs every function in "
                        "one process, so give each its own variable"
                    )
                merged[key], owner[key] = value, fn.logical_id
        return merged

    # ------------------------------------------------------------------ provisioning

    def provision(self, executor: LocalExecutor) -> None:
        """Create every resource in moto (the executor must be active).

        Two kinds are made when first used rather than here: a state machine when
        something first names it (``LocalExecutor.create_state_machine(lazy=True)``: moto
        parses an ASL definition when it is created), and a function's handler module when
        the function is first invoked (``_LazyHandler``). A run of one workflow pays for
        neither the template's other state machines nor the handlers it never calls."""
        session = executor  # its clients: one boto3 session for the whole local stack
        for r in self.of_type("AWS::DynamoDB::Table"):
            self._table(session, r)
        for r in self.of_type("AWS::S3::Bucket"):
            session.client("s3").create_bucket(Bucket=r.name)
        for r in sorted(
            self.of_type("AWS::SQS::Queue"), key=lambda q: "RedrivePolicy" in q.properties
        ):
            self._queue(session, r)
        for r in self.of_type("AWS::SNS::Topic"):
            session.client("sns").create_topic(Name=r.name)
        for r in self.of_type("AWS::SecretsManager::Secret"):
            self._secret(session, r)
        env = self.function_environment()
        # Locally: no X-Ray, no metrics output, quiet logs, whatever the template says.
        self._apply_environment({**env, **LOCAL_FUNCTION_ENV})
        for fn in self.functions():
            executor.register_function(
                fn.name, _LazyHandler(fn.code_uri, fn.handler), placeholder=f"{fn.logical_id}Arn"
            )
        bucket = env.get("LOOPLINE_BUCKET")
        if bucket:
            executor.env.bucket = bucket
        for r in self.of_type("AWS::Serverless::StateMachine"):
            self._state_machine(executor, r)
        self._rules(session)
        self._verify_sender(session)
        if executor.fidelity is not None:
            executor.fidelity.on_failure.update(self.failure_destinations())
            for mapping in self.sqs_mappings():
                executor.fidelity.add_sqs_source(mapping)
            for stream in self.stream_mappings():
                executor.fidelity.add_stream_source(stream)

    def sqs_mappings(self) -> list[SqsMapping]:
        """The functions' ``SQS`` events: queue, batch size, partial batch responses."""
        queues = {q.attributes.get("Arn"): q.ref for q in self.of_type("AWS::SQS::Queue")}
        out = []
        for fn in self.functions():
            events = self.properties(fn.logical_id).get("Events") or {}
            for event_name, event in events.items():
                if (event or {}).get("Type") != "SQS":
                    continue
                p = event.get("Properties") or {}
                arn = str(p.get("Queue") or "")
                if arn not in queues:
                    raise LocalStackError(
                        f"{fn.logical_id}.Events.{event_name}: Queue must be the Arn of a "
                        "queue of the template"
                    )
                if p.get("Enabled", True) is False:
                    continue
                out.append(
                    SqsMapping(
                        function=fn.name,
                        queue_url=str(queues[arn]),
                        queue_arn=arn,
                        batch_size=int(p.get("BatchSize") or 10),
                        report_item_failures="ReportBatchItemFailures"
                        in (p.get("FunctionResponseTypes") or []),
                    )
                )
        return out

    def stream_mappings(self) -> list[StreamMapping]:
        """The functions' ``DynamoDB`` events: the table's stream, where to start, batch
        size and window, partial batch responses, bisection, retries, record age, the
        ``OnFailure`` destination and the ``FilterCriteria`` patterns."""
        streams = {
            t.attributes["StreamArn"]
            for t in self.of_type("AWS::DynamoDB::Table")
            if "StreamArn" in t.attributes
        }
        destinations = {q.attributes.get("Arn"): q.ref for q in self.of_type("AWS::SQS::Queue")}
        destinations.update({t.ref: t.ref for t in self.of_type("AWS::SNS::Topic")})
        out = []
        for fn in self.functions():
            events = self.properties(fn.logical_id).get("Events") or {}
            for event_name, event in events.items():
                if (event or {}).get("Type") != "DynamoDB":
                    continue
                where = f"{fn.logical_id}.Events.{event_name}"
                p = event.get("Properties") or {}
                arn = str(p.get("Stream") or "")
                if arn not in streams:
                    raise LocalStackError(
                        f"{where}: Stream must be the StreamArn of a table of the template "
                        "that has a StreamSpecification"
                    )
                position = p.get("StartingPosition")
                if position not in ("TRIM_HORIZON", "LATEST"):
                    raise LocalStackError(
                        f"{where}.StartingPosition: a DynamoDB stream is read from "
                        f"TRIM_HORIZON or LATEST, not {position!r}"
                    )
                if "TumblingWindowInSeconds" in p:
                    raise LocalStackError(
                        f"{where}.TumblingWindowInSeconds: tumbling windows are not "
                        "supported by the local stack"
                    )
                on_failure = (p.get("DestinationConfig") or {}).get("OnFailure") or {}
                destination = None
                if on_failure:
                    destination = destinations.get(on_failure.get("Destination"))
                    if destination is None:
                        raise LocalStackError(
                            f"{where}.DestinationConfig.OnFailure.Destination: must be the "
                            "Arn of a queue or topic of the template"
                        )
                filters = tuple(
                    f["Pattern"]
                    if isinstance(f.get("Pattern"), str)
                    else json.dumps(f.get("Pattern"))
                    for f in ((p.get("FilterCriteria") or {}).get("Filters") or [])
                )
                try:
                    compile_filters(filters)
                except ValueError as exc:
                    index, reason = exc.args
                    raise LocalStackError(
                        f"{where}.FilterCriteria.Filters[{index}].Pattern: not a valid "
                        f"filter pattern: {reason}"
                    ) from None
                if p.get("Enabled", True) is False:
                    continue
                out.append(
                    StreamMapping(
                        function=fn.name,
                        function_arn=fn.arn,
                        stream_arn=arn,
                        starting_position=str(position),
                        batch_size=int(p.get("BatchSize") or 100),
                        batching_window=float(p.get("MaximumBatchingWindowInSeconds") or 0),
                        report_item_failures="ReportBatchItemFailures"
                        in (p.get("FunctionResponseTypes") or []),
                        bisect_on_error=bool(p.get("BisectBatchOnFunctionError", False)),
                        max_retries=int(p.get("MaximumRetryAttempts", -1)),
                        max_record_age=int(p.get("MaximumRecordAgeInSeconds", -1)),
                        on_failure=None if destination is None else str(destination),
                        filters=filters,
                    )
                )
        return out

    def _secret(self, session: Any, r: Resource) -> None:
        p = self.properties(r.logical_id)
        text = p.get("SecretString")
        if text is None:
            generate = p.get("GenerateSecretString") or {}
            value = secrets.token_urlsafe(int(generate.get("PasswordLength") or 32))
            key = generate.get("GenerateStringKey")
            if key:
                template = json.loads(str(generate.get("SecretStringTemplate") or "{}"))
                text = json.dumps({**template, str(key): value})
            else:
                text = value
        session.client("secretsmanager").create_secret(Name=r.name, SecretString=str(text))

    def _verify_sender(self, session: Any) -> None:
        """The SES identity of ``LOOPLINE_SENDER_EMAIL`` (verified by the operator in AWS)."""
        sender = settings().sender_email
        if sender:
            session.client("ses").verify_email_identity(EmailAddress=sender)

    def failure_destinations(self) -> dict[str, str]:
        """Function name → the queue URL of its ``EventInvokeConfig`` ``OnFailure`` SQS
        destination (where an asynchronous event that failed every attempt is kept)."""
        queues = {q.attributes.get("Arn"): q.ref for q in self.of_type("AWS::SQS::Queue")}
        out: dict[str, str] = {}
        for fn in self.functions():
            config = self.properties(fn.logical_id).get("EventInvokeConfig") or {}
            on_failure = (config.get("DestinationConfig") or {}).get("OnFailure") or {}
            url = queues.get(on_failure.get("Destination"))
            if on_failure.get("Type") == "SQS" and url:
                out[fn.name] = str(url)
        return out

    def rules(self) -> list[dict[str, Any]]:
        """The EventBridge rules the template declares: each function's ``EventBridgeRule``
        events (SAM, the function as target) and ``AWS::Events::Rule`` resources, as
        ``{Name, EventBusName, EventPattern, State, Targets}``."""
        out: list[dict[str, Any]] = []
        for fn in self.functions():
            events = self.properties(fn.logical_id).get("Events") or {}
            for event_name, event in events.items():
                if (event or {}).get("Type") != "EventBridgeRule":
                    continue
                p = event.get("Properties") or {}
                target: dict[str, Any] = {
                    "Id": str((p.get("Target") or {}).get("Id") or f"{fn.logical_id}{event_name}"),
                    "Arn": fn.arn,
                }
                for key in ("Input", "InputPath", "InputTransformer"):
                    if key in p:
                        target[key] = p[key]
                out.append(
                    {
                        "Name": str(p.get("RuleName") or f"{fn.name}-{event_name}")[:64],
                        "EventBusName": str(p.get("EventBusName") or "default"),
                        "EventPattern": p.get("Pattern") or {},
                        "State": str(p.get("State") or "ENABLED"),
                        "Targets": [target],
                    }
                )
        for r in self.of_type("AWS::Events::Rule"):
            p = self.properties(r.logical_id)
            if "EventPattern" not in p:
                continue  # schedules: nothing triggers them locally
            out.append(
                {
                    "Name": str(p.get("Name") or r.name)[:64],
                    "EventBusName": str(p.get("EventBusName") or "default"),
                    "EventPattern": p["EventPattern"],
                    "State": str(p.get("State") or "ENABLED"),
                    "Targets": [
                        {
                            k: v
                            for k, v in t.items()
                            if k in ("Id", "Arn", "Input", "InputPath", "InputTransformer")
                        }
                        for t in p.get("Targets") or []
                    ],
                }
            )
        return out

    def _rules(self, session: Any) -> None:
        events = session.client("events")
        for rule in self.rules():
            bus = rule["EventBusName"]
            if bus != "default":
                with contextlib.suppress(events.exceptions.ResourceAlreadyExistsException):
                    events.create_event_bus(Name=bus)
            events.put_rule(
                Name=rule["Name"],
                EventBusName=bus,
                EventPattern=json.dumps(rule["EventPattern"]),
                State=rule["State"],
            )
            targets = []
            for t in rule["Targets"]:
                target = dict(t)
                if isinstance(target.get("Input"), (dict, list)):
                    target["Input"] = json.dumps(target["Input"])
                targets.append(target)
            if targets:
                events.put_targets(Rule=rule["Name"], EventBusName=bus, Targets=targets)

    def _apply_environment(self, env: dict[str, str]) -> None:
        """Set the functions' variables in this process. The shell's own value wins (as a
        local override of a deployed setting), and an empty value is left unset."""
        self._saved_env: dict[str, str | None] = getattr(self, "_saved_env", {})
        for key, value in env.items():
            if value == "" or key in os.environ:
                continue
            self._saved_env.setdefault(key, os.environ.get(key))
            os.environ[key] = value
        settings.cache_clear()

    def restore_environment(self) -> None:
        """Undo what ``provision`` set in the process environment."""
        for key, value in getattr(self, "_saved_env", {}).items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env = {}
        settings.cache_clear()

    def _table(self, session: Any, r: Resource) -> None:
        p = self.properties(r.logical_id)
        args: dict[str, Any] = {
            "TableName": r.name,
            "KeySchema": p["KeySchema"],
            "AttributeDefinitions": p["AttributeDefinitions"],
            "BillingMode": p.get("BillingMode", "PROVISIONED"),
        }
        if args["BillingMode"] != "PAY_PER_REQUEST":
            args["ProvisionedThroughput"] = p.get(
                "ProvisionedThroughput", {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
            )
        for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            if p.get(key):
                args[key] = p[key]
        stream = p.get("StreamSpecification")
        if stream and not stream.get("StreamViewType"):
            raise LocalStackError(
                f"Resources.{r.logical_id}.Properties.StreamSpecification: needs a StreamViewType"
            )
        if stream:
            # CloudFormation's StreamSpecification is the view type; the API's also enables.
            args["StreamSpecification"] = {
                "StreamEnabled": True,
                "StreamViewType": stream["StreamViewType"],
            }
        client = session.client("dynamodb")
        created = client.create_table(**args)["TableDescription"]
        if stream:
            r.attributes["StreamArn"] = created["LatestStreamArn"]
        ttl = p.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            client.update_time_to_live(
                TableName=r.name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
            )

    def _queue(self, session: Any, r: Resource) -> None:
        p = self.properties(r.logical_id)
        attributes: dict[str, str] = {}
        for key, value in p.items():
            if key in ("QueueName", "Tags"):
                continue
            attributes[key] = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
        session.client("sqs").create_queue(QueueName=r.name, Attributes=attributes)

    def _state_machine(self, executor: LocalExecutor, r: Resource) -> None:
        p = self.properties(r.logical_id)
        if "DefinitionUri" in p:
            path = self.root / str(p["DefinitionUri"])
            try:
                definition: Any = path.read_text(encoding="utf-8")
            except FileNotFoundError:
                raise LocalStackError(f"{r.logical_id}: {path} does not exist") from None
        elif "Definition" in p:
            definition = json.dumps(p["Definition"])
        else:
            raise LocalStackError(
                f"{r.logical_id}: a state machine needs DefinitionUri or Definition"
            )
        subs = {k: str(v) for k, v in (p.get("DefinitionSubstitutions") or {}).items()}
        executor.create_state_machine(
            r.name, definition, substitutions=subs, type=str(p.get("Type", "STANDARD")), lazy=True
        )


class _LazyHandler:
    """A function's handler, imported when the function is first invoked (the file is
    checked now, so a template naming a missing one fails when provisioned)."""

    def __init__(self, code_dir: Path, handler: str) -> None:
        module_name = handler.rpartition(".")[0]
        path = code_dir / f"{module_name.replace('.', '/')}.py"
        if not path.is_file():
            raise LocalStackError(f"handler {handler!r}: {path} does not exist")
        self.code_dir = code_dir
        self.handler = handler
        self._loaded: Any = None

    def __call__(self, event: Any, context: LocalContext) -> Any:
        if self._loaded is None:
            self._loaded = load_handler(self.code_dir, self.handler)
        return self._loaded(event, context)


def find_template(*starts: Path) -> Path | None:
    """``template.yaml`` in the first of ``starts`` (or a parent of it) that has one."""
    for start in starts:
        for d in [start.resolve(), *start.resolve().parents]:
            candidate = d / "template.yaml"
            if candidate.is_file():
                return candidate
    return None
