"""Workflows a tenant can start: the stack's (``loopline.service.catalog``, every tenant)
and those the tenant registered at run time (``register_workflow``).

Registering compiles the file as ``loopline compile`` does, with the checks told what the
deployed stack has (``DeployedContext``: the functions of ``LOOPLINE_FUNCTION_ARNS``, the
runtime's tools), then creates or updates the tenant's state machine
``<LOOPLINE_STATE_MACHINE_PREFIX>t-<tenant>-<name>`` with the definition's placeholders
(``${LlmFunctionArn}``…) replaced by those ARNs, run by
``LOOPLINE_STATE_MACHINE_ROLE_ARN``. The prefix is the stack's, so the stack's
status-events rule sees these executions too. A name the stack deploys cannot be
registered (409): a tenant never shadows a stack workflow. A workflow over Step
Functions' 1 MB is split (``loopline.compiler.split``): its children are created or
updated first, as ``<parent's name>--part-N`` (the parent starts them by that name), and a
parent's name leaves room for that suffix.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from loopline import ids, store
from loopline.dsl.checks import CheckContext
from loopline.service import catalog
from loopline.service.errors import (
    Conflict,
    FieldError,
    Invalid,
    NotFound,
    Unavailable,
    UnsupportedMediaType,
)
from loopline.service.keys import Caller
from loopline.settings import settings

log = logging.getLogger("loopline.service")

#: Step Functions' longest state machine name.
NAME_LIMIT = 80
_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]")
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_.:-]+)\}")
_STATES_ARN = re.compile(r"arn:aws[a-z-]*:states:[^'\"\s]+")
#: Content types of a workflow file: YAML, or JSON (with JSON's syntax errors).
YAML_TYPES = ("application/yaml", "text/yaml", "application/x-yaml", "text/x-yaml")
JSON_TYPES = ("application/json",)


@dataclass(frozen=True)
class Workflow:
    """A workflow a task can run: its description (``catalog.describe``) and where."""

    record: dict[str, Any]
    state_machine_arn: str
    origin: str  # "stack" or "tenant"

    @property
    def name(self) -> str:
        return str(self.record["name"])

    @property
    def version(self) -> str:
        return str(self.record["version"])


def view(wf: Workflow, *, graph: bool = True) -> dict[str, Any]:
    """``{name, version, description, origin, inputs_schema, steps, graph}``."""
    r = wf.record
    out = {
        "name": r["name"],
        "version": r["version"],
        "description": r.get("description"),
        "origin": wf.origin,
        "inputs_schema": r["inputs_schema"],
        "steps": r["steps"],
    }
    if graph:
        out["graph"] = r["graph"]
    return out


# --------------------------------------------------------------------------- reading


def _stack(name: str) -> Workflow | None:
    arn = settings().stack_workflows.get(name)
    entry = catalog.entries().get(name)
    if arn is None or entry is None:
        return None
    return Workflow(entry, arn, "stack")


def find(tenant: str, name: str) -> Workflow | None:
    """The workflow ``name`` the tenant can start, or None."""
    found = _stack(name)
    if found is not None:
        return found
    record = store.get_workflow(tenant, name)
    if record is None:
        return None
    return Workflow(record, str(record["state_machine_arn"]), "tenant")


def list_workflows(caller: Caller) -> list[dict[str, Any]]:
    """The stack's workflows and the tenant's, by name (views without ``graph``)."""
    found: dict[str, Workflow] = {}
    for record in store.list_workflows(caller.tenant):
        found[record["name"]] = Workflow(record, str(record["state_machine_arn"]), "tenant")
    for name in catalog.entries():
        stack = _stack(name)
        if stack is not None:
            found[name] = stack
    return [view(found[n], graph=False) for n in sorted(found)]


def get_workflow(caller: Caller, name: str) -> dict[str, Any]:
    wf = find(caller.tenant, name)
    if wf is None:
        raise NotFound(f"there is no workflow named {name}")
    return view(wf)


# --------------------------------------------------------------------------- registering


class DeployedContext(CheckContext):
    """What the checks know of the deployed stack: its functions are the keys of
    ``LOOPLINE_FUNCTION_ARNS`` (``LlmFunctionArn`` → ``LlmFunction``), its tools the
    runtime's registry with ``LOOPLINE_TOOL_MODULES`` imported."""

    def __init__(self) -> None:
        super().__init__(template="the stack")

    def function_names(self) -> Collection[str] | None:
        return {k[: -len("Arn")] for k in settings().function_arns if k.endswith("Arn")}

    def tool_names(self, wanted: Collection[str]) -> Collection[str] | None:
        from loopline.environment import BUILTIN_TOOLS

        if set(wanted) <= BUILTIN_TOOLS:
            return BUILTIN_TOOLS
        import importlib

        from loopline.runtime import tools

        for module in settings().tool_module_list:
            importlib.import_module(module)
        return set(tools.TOOLS)


def state_machine_name(tenant: str, name: str, reserve: int = 0) -> str:
    """``<prefix>t-<tenant>-<name>``; past 80 characters (less ``reserve``, the longest
    suffix of a split workflow's children), or with characters a state machine name
    cannot hold, shortened and made unique by a hash of tenant and name."""
    prefix = settings().state_machine_prefix
    plain = f"{prefix}t-{tenant}-{name}"
    if len(plain) + reserve <= NAME_LIMIT and not _NAME_CHARS.search(plain):
        return plain
    digest = hashlib.sha256(f"{tenant}\n{name}".encode()).hexdigest()[:12]
    head = _NAME_CHARS.sub("-", plain)[: NAME_LIMIT - reserve - len(digest) - 1]
    return f"{head}-{digest}"


def _problems(exc: Any) -> list[FieldError]:
    return [
        FieldError(p.path, "workflow", p.message, line=p.line, column=p.column)
        for p in exc.problems
    ]


def _definition(text: str) -> str:
    """The compiled definition with the stack's function ARNs in place."""
    arns = settings().function_arns
    unknown = sorted({m.group(1) for m in _PLACEHOLDER.finditer(text)} - set(arns))
    if unknown:
        raise Unavailable(
            "the stack does not say where these functions are (LOOPLINE_FUNCTION_ARNS): "
            + ", ".join(unknown)
        )
    return _PLACEHOLDER.sub(lambda m: arns[m.group(1)], text)


def _media(content_type: str | None) -> str:
    base = (content_type or "").split(";")[0].strip().lower()
    if base in JSON_TYPES:
        return "json"
    if base in YAML_TYPES or base == "":
        return "yaml"
    raise UnsupportedMediaType(
        f"a workflow file is sent as application/yaml, text/yaml or application/json, not {base}",
        [FieldError("Content-Type", "media_type", "unsupported media type", base)],
    )


def register_workflow(
    caller: Caller, name: str, body: str, content_type: str | None
) -> tuple[dict[str, Any], bool]:
    """Compile ``body`` and create or update the tenant's state machine ``name``.

    Returns the workflow's view and whether it was created. Raise ``Invalid`` with the
    file's located problems (``field`` = the workflow path, ``line``, ``column``), or when
    the file's ``name`` is not ``name``; ``Conflict`` for a stack workflow's name.
    """
    from loopline.compiler import compile_workflow
    from loopline.dsl import WorkflowInvalid, load_workflow_text
    from loopline.dsl.api import locate

    suffix = _media(content_type)
    if not body.strip():
        raise Invalid(
            "the request has no workflow file",
            [FieldError("body", "required", "send the workflow file as the body")],
        )
    if _stack(name) is not None:
        raise Conflict(f"{name} is a workflow of the stack; register it under another name")
    try:
        wf = load_workflow_text(body, f"{name}.{suffix}", DeployedContext())
        compiled = compile_workflow(wf)
    except WorkflowInvalid as exc:
        raise Invalid(
            f"the workflow file has {len(exc.problems)} problem"
            f"{'s' if len(exc.problems) != 1 else ''}",
            _problems(exc),
        ) from None
    if wf.name != name:
        problem, _ = locate(wf, "", path=("name",))
        raise Invalid(
            f"the file's name is {wf.name}, the URL's {name}: they must be the same",
            [
                FieldError(
                    "name",
                    "match",
                    f"must be {name}, the name in the URL",
                    wf.name,
                    line=problem.line,
                    column=problem.column,
                )
            ],
        )
    existing = store.get_workflow(caller.tenant, name)
    existing_arn = str(existing["state_machine_arn"]) if existing else None
    # A split workflow: the children first (the parent starts them by name).
    reserve = max((len(part.suffix) for part in compiled.children), default=0)
    sm_name = state_machine_name(caller.tenant, name, reserve)
    if existing_arn is not None:
        if len(existing_arn.rsplit(":", 1)[-1]) + reserve <= NAME_LIMIT:
            sm_name = existing_arn.rsplit(":", 1)[-1]
        else:  # its children's names would be too long: a new parent replaces it
            existing_arn = None
    definitions = [
        (sm_name + part.suffix, _definition(part.deployed)) for part in compiled.children
    ]
    definition = _definition(compiled.deployed)
    for child_name, child in definitions:
        _deploy(child_name, child, None)
    arn = _deploy(sm_name, definition, existing_arn)
    now = ids.now()
    record = {
        **catalog.describe(wf, body),
        "state_machine_arn": arn,
        "created_at": existing["created_at"] if existing else now,
        "updated_at": now,
    }
    created = store.put_workflow(caller.tenant, record)
    return view(Workflow(record, arn, "tenant")), created


def _deploy(sm_name: str, definition: str, existing_arn: str | None) -> str:
    """Create state machine ``sm_name``, or update it when it exists already (the tenant's
    ``existing_arn``); returns its ARN."""
    from botocore.exceptions import BotoCoreError, ClientError

    from loopline import aws

    role = settings().state_machine_role_arn
    if not role:
        raise Unavailable("the stack sets no LOOPLINE_STATE_MACHINE_ROLE_ARN")
    sfn = aws.client("stepfunctions")
    try:
        arn = existing_arn
        if arn is None:
            try:
                resp = sfn.create_state_machine(
                    name=sm_name, definition=definition, roleArn=role, type="STANDARD"
                )
                return str(resp["stateMachineArn"])
            except ClientError as exc:
                # Made by an earlier request whose record was not written.
                error = exc.response.get("Error", {})
                found = _STATES_ARN.search(str(error.get("Message", "")))
                if error.get("Code") != "StateMachineAlreadyExists" or found is None:
                    raise
                arn = found.group(0).rstrip(".'\"")
        sfn.update_state_machine(stateMachineArn=arn, definition=definition, roleArn=role)
        return arn
    except ClientError as exc:
        log.exception("could not create or update state machine %s", sm_name)
        message = exc.response.get("Error", {}).get("Message") or "no reason given"
        raise Unavailable(f"Step Functions did not accept the state machine: {message}") from None
    except BotoCoreError:
        log.exception("could not create or update state machine %s", sm_name)
        raise Unavailable("Step Functions could not be reached") from None
