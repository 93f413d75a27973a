"""The workflow language as models (``modeling``): one class per construct of the spec.

Expressions, templates and durations are parsed while the models validate, so every
syntax problem is reported by the validator with its location, all at once. Checks that need
the whole workflow (unique ids, references, rollback targets) live in ``checks.py``.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeGuard, Union

from pydantic_core import InitErrorDetails, PydanticCustomError, ValidationError, core_schema

from loopline.dsl.duration import parse_duration
from loopline.dsl.expr import Expr, ExpressionError, parse_expression
from loopline.dsl.modeling import (
    AfterValidator,
    BeforeValidator,
    Discriminator,
    Field,
    Model,
    Tag,
    field_validator,
    model_validator,
)
from loopline.dsl.problems import did_you_mean
from loopline.dsl.template import Template, check_template_tree, parse_template

if TYPE_CHECKING:
    from pydantic_core.core_schema import ValidationInfo, ValidatorFunctionWrapHandler

STEP_ID = r"^[A-Za-z][A-Za-z0-9_]{0,39}$"
NAME = r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"
SEMVER = (
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)

#: Error names a workflow may name in ``retry.on`` and ``on_error``.
ERROR_NAMES = (
    "Loopline.Timeout",
    "Loopline.Rejected",
    "Loopline.AssertionFailed",
    "Loopline.ToolLoop",
    "Loopline.MaxTurns",
    "Loopline.MaxIterations",
    "Loopline.InvalidOutput",
    "Loopline.LLMRateLimited",
    "Loopline.LLMError",
    "Loopline.HTTPError",
    "Loopline.Transient",
    "Loopline.Failed",
)
#: Errors an action step retries by default (3 attempts in all).
TRANSIENT_ERRORS = ("Loopline.Transient", "Loopline.LLMRateLimited")


def _to_expr(value: Any) -> Expr:
    if isinstance(value, bool):
        value = "true" if value else "false"
    elif value is None:
        value = "null"
    elif isinstance(value, (int, float)):
        value = repr(value)
    if not isinstance(value, str):
        raise ValueError("an expression must be a string")
    try:
        return parse_expression(value)
    except ExpressionError as exc:
        raise ValueError(f"invalid expression: {exc}") from None


def _to_template(value: Any) -> Template:
    if isinstance(value, Template):
        return value
    if not isinstance(value, str):
        raise ValueError("a template must be a string")
    try:
        return parse_template(value)
    except ExpressionError as exc:
        raise ValueError(f"invalid template: {exc}") from None


def _check_tree(value: Any) -> Any:
    try:
        check_template_tree(value)
    except ExpressionError as exc:
        raise ValueError(f"invalid template: {exc}") from None
    return value


def _check_schema(value: dict[str, Any]) -> dict[str, Any]:
    import jsonschema  # imported here: most workflows have no schema, and it is slow to load

    from loopline.patterns import check_schema

    try:
        check_schema(value)  # patterns included: RE2 must compile them
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path)
        message = exc.message
        if exc.absolute_path and exc.absolute_path[-1] == "type" and exc.validator == "anyOf":
            message = (
                f"{exc.instance!r} is not a JSON Schema type "
                "(string, number, integer, boolean, object, array, null)"
            )
        raise ValueError(
            f"not a valid JSON Schema: {message}" + (f" (at {where})" if where else "")
        ) from None
    return value


def _known_error(name: str) -> str:
    """A ``Loopline.`` error name must be one of ``ERROR_NAMES``."""
    if name.startswith("Loopline.") and name not in ERROR_NAMES:
        hint = did_you_mean(name, ERROR_NAMES) or "; Loopline errors are " + ", ".join(ERROR_NAMES)
        raise ValueError(f'unknown error "{name}"{hint}')
    return name


def _check_pattern(value: str) -> str:
    # Imported on use (RE2): most workflows have no pattern.
    from loopline.patterns import PatternError, check_pattern

    try:
        check_pattern(value)
    except PatternError as exc:
        raise ValueError(f"pattern does not compile: {exc}") from None
    return value


Expression = Annotated[Expr, BeforeValidator(_to_expr)]
TemplateStr = Annotated[Template, BeforeValidator(_to_template)]
#: A JSON value whose strings are templates (``args``, ``body``, ``succeed``).
TemplateTree = Annotated[Any, AfterValidator(_check_tree)]
Duration = Annotated[int, BeforeValidator(parse_duration)]
StepId = Annotated[str, Field(pattern=STEP_ID)]
ErrorName = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_.]*$"), AfterValidator(_known_error)]
JsonSchemaObject = Annotated[dict[str, Any], AfterValidator(_check_schema)]


#: A location inside a model's data: keys and list indexes.
RuleLoc = tuple[str | int, ...]
_KNOWN_ERRORS = frozenset(typing.get_args(core_schema.ErrorType))


class Ruled(Model):
    """A model with rules that tie its fields together (``rules``).

    The rules read the raw mapping, so they are judged whether or not the fields
    themselves are valid, and every broken rule is reported together with the field
    errors: fixing one problem never reveals another that was there all along.
    """

    @classmethod
    def rules(cls, data: dict[str, Any]) -> list[tuple[RuleLoc, str]]:
        """The broken rules of ``data``: (location inside the model, message)."""
        return []

    @model_validator(mode="wrap")
    @classmethod
    def _judge_rules(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        broken = cls.rules(data) if isinstance(data, dict) else []
        try:
            value = handler(data)
        except ValidationError as exc:
            if not broken:
                raise
            raise _with_rules(cls.__name__, exc.errors(), broken, data) from None
        if broken:
            raise _with_rules(cls.__name__, [], broken, data)
        return value


def _with_rules(
    title: str, errors: list[Any], broken: list[tuple[RuleLoc, str]], data: dict[str, Any]
) -> ValidationError:
    """One ``ValidationError`` holding the field ``errors`` and the ``broken`` rules."""
    details: list[InitErrorDetails] = []
    for err in errors:
        kind = err["type"]
        detail: dict[str, Any] = {"loc": err["loc"], "input": err.get("input")}
        if kind in _KNOWN_ERRORS:
            detail["type"] = kind
            if "ctx" in err:
                detail["ctx"] = err["ctx"]
        else:  # a custom error type (a step that is not a mapping): keep its message
            detail["type"] = PydanticCustomError(kind, str(err["msg"]))
        details.append(typing.cast(InitErrorDetails, detail))
    for loc, message in broken:
        value: Any = data
        for part in loc:
            value = value.get(part) if isinstance(value, dict) else None
        details.append(
            {
                "type": "value_error",
                "loc": loc,
                "input": value,
                "ctx": {"error": ValueError(message)},
            }
        )
    return ValidationError.from_exception_data(title, details)


def _given(data: dict[str, Any], *names: str) -> bool:
    """Whether ``data`` holds a value (not null) under one of ``names``."""
    return any(data.get(n) is not None for n in names)


# --------------------------------------------------------------------------- common fields


class RetrySpec(Model):
    max_attempts: int = Field(3, ge=1, le=100)
    interval: Duration = 2
    backoff: float = Field(2.0, ge=1.0, le=10.0)
    max_delay: Duration | None = None
    jitter: Literal["full", "none"] = "full"
    on: list[ErrorName] | None = None


class Goto(Model):
    goto: StepId


def _on_error_form(value: Any) -> str | None:
    """The tag of an ``on_error`` value: ``continue`` or a ``{goto: id}`` mapping."""
    if value == "continue":
        return ON_ERROR_CONTINUE
    if isinstance(value, (dict, Goto)):
        return ON_ERROR_GOTO
    return None


ON_ERROR_CONTINUE, ON_ERROR_GOTO = "__continue__", "__goto__"
OnError = Annotated[
    Union[  # noqa: UP007 (a tagged union written out)
        Annotated[Literal["continue"], Tag(ON_ERROR_CONTINUE)],
        Annotated[Goto, Tag(ON_ERROR_GOTO)],
    ],
    Discriminator(
        _on_error_form,
        custom_error_type="on_error_form",
        custom_error_message='expected "continue" or {goto: <step id>}',
    ),
]


class StepCommon(Model):
    id: StepId
    description: str | None = None
    if_: Expression | None = Field(None, alias="if")
    retry: RetrySpec | None = None
    timeout: Duration | None = None
    on_error: OnError | None = None


# --------------------------------------------------------------------------- action steps


class LlmStep(StepCommon):
    kind: Literal["llm"] = Field("llm", exclude=True)
    llm: TemplateStr
    system: TemplateStr | None = None
    model: str | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1, le=200_000)
    output_schema: JsonSchemaObject | None = None
    tools: list[str] | None = None
    max_turns: int = Field(10, ge=1, le=100)


class ToolStep(StepCommon):
    kind: Literal["tool"] = Field("tool", exclude=True)
    tool: str = Field(min_length=1)
    args: dict[str, TemplateTree] = Field(default_factory=dict)


HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]


class HttpSpec(Model):
    method: HttpMethod = "GET"
    url: TemplateStr
    headers: dict[str, TemplateStr] = Field(default_factory=dict)
    query: dict[str, TemplateStr] = Field(default_factory=dict)
    body: TemplateTree = None
    expect_status: list[Annotated[int, Field(ge=100, le=599)]] | None = None
    timeout: Duration = 30
    #: Hosts this step may reach even when they resolve to private, loopback or
    #: link-local addresses (``name``, an address, or ``*.domain``).
    allow_hosts: list[Annotated[str, Field(min_length=1, pattern=r"^[^\s/]+$")]] = Field(
        default_factory=list
    )


class HttpStep(StepCommon):
    kind: Literal["http"] = Field("http", exclude=True)
    http: HttpSpec


class TaskStep(StepCommon):
    kind: Literal["task"] = Field("task", exclude=True)
    task: str = Field(min_length=1)
    args: dict[str, TemplateTree] = Field(default_factory=dict)


# --------------------------------------------------------------------------- control steps


class GroupStep(StepCommon):
    kind: Literal["group"] = Field("group", exclude=True)
    group: list[Step] = Field(min_length=1)


class Case(Model):
    if_: Expression = Field(alias="if")
    then: list[Step] = Field(min_length=1)


class BranchSpec(Ruled):
    if_: Expression | None = Field(None, alias="if")
    then: list[Step] | None = None
    cases: list[Case] | None = None
    else_: list[Step] | None = Field(None, alias="else")

    @classmethod
    def rules(cls, data: dict[str, Any]) -> list[tuple[RuleLoc, str]]:
        if _given(data, "cases"):
            if _given(data, "if", "if_", "then"):
                return [((), "use either if/then/else or cases/else, not both")]
            if data["cases"] == []:
                return [((), "cases must not be empty")]
        elif not (_given(data, "if", "if_") and _given(data, "then")):
            return [((), "a branch needs if and then (or cases)")]
        return []

    def arms(self) -> list[tuple[Expr | None, list[Step]]]:
        """Each arm's condition (``None`` for else) and steps, in order."""
        out: list[tuple[Expr | None, list[Step]]] = []
        if self.cases is not None:
            out.extend((c.if_, c.then) for c in self.cases)
        else:
            assert self.if_ is not None and self.then is not None
            out.append((self.if_, self.then))
        out.append((None, self.else_ or []))
        return out


class BranchStep(StepCommon):
    kind: Literal["branch"] = Field("branch", exclude=True)
    branch: BranchSpec


class LoopSpec(Ruled):
    for_each: Expression | None = None
    as_: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$")] = Field("item", alias="as")
    max_concurrency: int = Field(1, ge=0, le=1000)
    while_: Expression | None = Field(None, alias="while")
    max_iterations: int | None = Field(None, ge=1, le=1000)
    steps: list[Step] = Field(min_length=1)

    @classmethod
    def rules(cls, data: dict[str, Any]) -> list[tuple[RuleLoc, str]]:
        for_each, while_ = _given(data, "for_each"), _given(data, "while", "while_")
        if for_each == while_:
            return [((), "a loop needs exactly one of for_each or while")]
        if while_:
            if not _given(data, "max_iterations"):
                return [((), "a while loop needs max_iterations (1..1000)")]
            if any(k in data for k in ("as", "as_", "max_concurrency")):
                return [((), "as and max_concurrency apply to for_each loops only")]
        elif _given(data, "max_iterations"):
            return [((), "max_iterations applies to while loops only")]
        return []


class LoopStep(StepCommon):
    kind: Literal["loop"] = Field("loop", exclude=True)
    loop: LoopSpec


class ParallelStep(StepCommon):
    kind: Literal["parallel"] = Field("parallel", exclude=True)
    parallel: list[Step] = Field(min_length=1)


#: The most voters a ``vote`` has.
MAX_VOTERS = 10


class VoteSpec(Model):
    input: Expression
    voters: int = Field(ge=2, le=MAX_VOTERS)
    rules: str = Field(min_length=1)
    threshold: int | None = Field(None, ge=1)
    model: str | None = None

    @field_validator("threshold")
    @classmethod
    def _threshold(cls, threshold: int | None, info: ValidationInfo) -> int | None:
        voters = info.data.get("voters")  # validated before threshold (field order)
        if threshold is not None and isinstance(voters, int) and threshold > voters:
            raise ValueError(
                f"threshold {threshold} is more than the {voters} voters (allowed 1..{voters})"
            )
        if threshold is not None and threshold > MAX_VOTERS:  # voters invalid: no count
            raise ValueError(
                f"threshold {threshold} is more than {MAX_VOTERS}, the most voters a vote has"
            )
        return threshold

    @property
    def effective_threshold(self) -> int:
        return self.threshold if self.threshold is not None else math.ceil(self.voters / 2)


class VoteStep(StepCommon):
    kind: Literal["vote"] = Field("vote", exclude=True)
    vote: VoteSpec


class AssertStep(StepCommon):
    kind: Literal["assert"] = Field("assert", exclude=True)
    assert_: Expression = Field(alias="assert")
    message: TemplateStr | None = None


class FailStep(StepCommon):
    kind: Literal["fail"] = Field("fail", exclude=True)
    fail: TemplateStr
    error: ErrorName = "Loopline.Failed"


class SucceedStep(StepCommon):
    kind: Literal["succeed"] = Field("succeed", exclude=True)
    succeed: TemplateTree


# --------------------------------------------------------------------------- human steps


class Assignee(Model):
    role: str | None = None
    user: str | None = None


class NotifyTarget(Ruled):
    email: str | None = None
    slack: str | None = None
    webhook: str | None = None

    @classmethod
    def rules(cls, data: dict[str, Any]) -> list[tuple[RuleLoc, str]]:
        if sum(_given(data, k) for k in ("email", "slack", "webhook")) != 1:
            return [((), "each notify entry names exactly one of email, slack, webhook")]
        return []


class EscalateTo(Assignee):
    """Who a human step goes to when its first assignee does not answer in time, and
    whom to tell (the step's ``notify`` when empty)."""

    notify: list[NotifyTarget] = Field(default_factory=list)


OnTimeout = Literal["fail", "approve", "reject", "escalate"]


class HumanSpec(Ruled):
    instruction: TemplateStr | None = None
    assignee: Assignee | None = None
    notify: list[NotifyTarget] = Field(default_factory=list)
    context: dict[str, TemplateStr] = Field(default_factory=dict)
    timeout: Duration
    on_timeout: OnTimeout = "fail"
    escalate_to: EscalateTo | None = None

    @classmethod
    def rules(cls, data: dict[str, Any]) -> list[tuple[RuleLoc, str]]:
        if data.get("on_timeout") == "escalate" and not _given(data, "escalate_to"):
            return [((), "on_timeout: escalate needs escalate_to")]
        return []


class ApprovalSpec(HumanSpec):
    rollback_to: list[StepId] = Field(default_factory=list)


class HumanTaskSpec(HumanSpec):
    form_schema: JsonSchemaObject | None = None

    @classmethod
    def rules(cls, data: dict[str, Any]) -> list[tuple[RuleLoc, str]]:
        on_timeout = data.get("on_timeout")
        if on_timeout in ("approve", "reject"):
            return [
                (
                    (),
                    f"on_timeout: {on_timeout} applies to approval steps; "
                    "a human_task may fail or escalate",
                )
            ]
        return super().rules(data)


class ApprovalStep(StepCommon):
    kind: Literal["approval"] = Field("approval", exclude=True)
    approval: ApprovalSpec


class HumanTaskStep(StepCommon):
    kind: Literal["human_task"] = Field("human_task", exclude=True)
    human_task: HumanTaskSpec


class PauseStep(StepCommon):
    kind: Literal["pause"] = Field("pause", exclude=True)
    pause: TemplateStr


# --------------------------------------------------------------------------- the step union

STEP_MODELS: dict[str, type[StepCommon]] = {
    "llm": LlmStep,
    "tool": ToolStep,
    "http": HttpStep,
    "task": TaskStep,
    "group": GroupStep,
    "branch": BranchStep,
    "loop": LoopStep,
    "parallel": ParallelStep,
    "vote": VoteStep,
    "assert": AssertStep,
    "fail": FailStep,
    "succeed": SucceedStep,
    "approval": ApprovalStep,
    "human_task": HumanTaskStep,
    "pause": PauseStep,
}
STEP_KINDS = tuple(STEP_MODELS)
ACTION_KINDS = ("llm", "tool", "http", "task")
HUMAN_KINDS = ("approval", "human_task", "pause")
NO_KIND = "__none__"
MANY_KINDS = "__many__"
INVALID = "invalid"
#: A loop variable of an ``InvalidStep`` whose ``as`` is not a name: any name may be it.
ANY_NAME = "*"


def step_kind(value: Any) -> str | None:
    """The kind tag of raw step data: its one kind key (``None`` when not a mapping)."""
    if isinstance(value, StepCommon):
        return str(value.kind)  # type: ignore[attr-defined]
    if not isinstance(value, dict):
        return None
    kinds = [k for k in STEP_KINDS if k in value]
    if len(kinds) == 1:
        return kinds[0]
    return MANY_KINDS if kinds else NO_KIND


class _NoKind(StepCommon):
    """Placeholder member: validation of a step without a kind key always fails."""

    @model_validator(mode="before")
    @classmethod
    def _fail(cls, data: Any) -> Any:
        raise ValueError("NO_KIND")


class _ManyKinds(StepCommon):
    @model_validator(mode="before")
    @classmethod
    def _fail(cls, data: Any) -> Any:
        raise ValueError("MANY_KINDS")


class InvalidStep(StepCommon):
    """Stands in for a step whose own fields did not validate, so that the whole-workflow
    checks still run on the rest of the file (never read from a file: the loader builds it
    with ``model_construct``).

    It keeps the step's ``id`` (``None`` when the id itself is invalid) and the step
    sequences found inside it, each as a list of (location, step); ``loop_names`` are the
    loop variables its body may use when it is a ``for_each`` loop (``ANY_NAME`` for one
    that is not a name). ``partial`` is the step as a model of its kind built, unchecked,
    from the fields that validate on their own (``None`` without one kind): the checks
    read its expressions and names, so that an invalid field hides none of them.
    """

    id: str | None = None  # type: ignore[assignment]  # None: the id is invalid too
    kind: Literal["invalid"] = Field("invalid", exclude=True)
    bodies: list[list[tuple[tuple[str | int, ...], Any]]] = Field(default_factory=list)
    loop_names: tuple[str, ...] = ()
    partial: Any = None


Step = Annotated[
    Union[  # noqa: UP007 (a tagged union written out)
        Annotated[LlmStep, Tag("llm")],
        Annotated[ToolStep, Tag("tool")],
        Annotated[HttpStep, Tag("http")],
        Annotated[TaskStep, Tag("task")],
        Annotated[GroupStep, Tag("group")],
        Annotated[BranchStep, Tag("branch")],
        Annotated[LoopStep, Tag("loop")],
        Annotated[ParallelStep, Tag("parallel")],
        Annotated[VoteStep, Tag("vote")],
        Annotated[AssertStep, Tag("assert")],
        Annotated[FailStep, Tag("fail")],
        Annotated[SucceedStep, Tag("succeed")],
        Annotated[ApprovalStep, Tag("approval")],
        Annotated[HumanTaskStep, Tag("human_task")],
        Annotated[PauseStep, Tag("pause")],
        Annotated[_NoKind, Tag(NO_KIND)],
        Annotated[_ManyKinds, Tag(MANY_KINDS)],
        Annotated[InvalidStep, Tag(INVALID)],
    ],
    Discriminator(
        step_kind,
        custom_error_type="step_not_mapping",
        custom_error_message="a step must be a mapping",
    ),
]


def children(step: Any) -> list[list[Any]]:
    """The nested step sequences of ``step`` (each arm, body or entry list)."""
    of = _CHILDREN.get(type(step))
    return of(step) if of is not None else []


#: ``children`` by the type of step; the other kinds have none.
_CHILDREN: dict[type, Callable[[Any], list[list[Any]]]] = {
    GroupStep: lambda s: [s.group],
    ParallelStep: lambda s: [[e] for e in s.parallel],
    LoopStep: lambda s: [s.loop.steps],
    BranchStep: lambda s: [arm for _, arm in s.branch.arms()],
    InvalidStep: lambda s: [[x for _, x in body] for body in s.bodies],
}


def own_scope(step: Any) -> bool:
    """Whether ``step`` runs as a unit of its own: a group, branch, while loop, assert or
    human step with ``retry`` or ``on_error`` runs inside a one-branch Parallel that gives
    it Retry and Catch (a human step's timeout is a Fail state there, retried and caught
    like a rejection), so its steps form a scope of their own (a ``goto`` cannot leave
    it). The compiler wraps exactly these steps."""
    if step.retry is None and step.on_error is None:
        return False
    if isinstance(step, LoopStep):
        return step.loop.for_each is None
    return isinstance(
        step, (GroupStep, BranchStep, AssertStep, ApprovalStep, HumanTaskStep, PauseStep)
    )


def iter_steps(steps: list[Any]) -> Iterator[Any]:
    """Every step in ``steps`` and below, depth first, in file order."""
    stack: list[Iterator[Any]] = [iter(steps)]
    while stack:
        for s in stack[-1]:
            yield s
            of = _CHILDREN.get(type(s))
            if of is not None:
                stack.append(iter([x for seq in of(s) for x in seq]))
                break
        else:
            stack.pop()


# --------------------------------------------------------------------------- top level


InputType = Literal["string", "number", "integer", "boolean", "json", "enum", "file"]


class InputSpec(Ruled):
    type: InputType = "string"
    required: bool = False
    default: Any = None
    pattern: Annotated[str, AfterValidator(_check_pattern)] | None = None
    values: list[Any] | None = None
    min_length: int | None = Field(None, ge=0)
    max_length: int | None = Field(None, ge=0)
    description: str | None = None

    @classmethod
    def rules(cls, data: dict[str, Any]) -> list[tuple[RuleLoc, str]]:
        out: list[tuple[RuleLoc, str]] = []
        kind = data.get("type", "string")
        if kind in typing.get_args(InputType):  # an unknown type is reported on its own
            if kind == "enum" and not data.get("values"):
                out.append(((), "an enum input needs values"))
            if _given(data, "values") and kind != "enum":
                out.append((("values",), "values applies to enum inputs only"))
            if _given(data, "pattern") and kind != "string":
                out.append((("pattern",), "pattern applies to string inputs only"))
        low, high = data.get("min_length"), data.get("max_length")
        if _is_int(low) and _is_int(high) and low > high:
            out.append((("min_length",), "min_length is greater than max_length"))
        return out


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


class Defaults(Model):
    retry: RetrySpec | None = None
    timeout: Duration | None = None
    model: str | None = None


class StepType(Model):
    function: str = Field(min_length=1)
    description: str | None = None


class Workflow(Model):
    name: Annotated[str, Field(pattern=NAME)]
    version: Annotated[str, Field(pattern=SEMVER)] = "0.1.0"
    description: str | None = None
    inputs: dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")], InputSpec] | None = (
        None
    )
    defaults: Defaults = Field(default_factory=Defaults)
    step_types: dict[str, StepType] = Field(default_factory=dict)
    steps: list[Step] = Field(min_length=1)
    output: dict[str, TemplateTree] | None = None

    def all_steps(self) -> Iterator[Any]:
        return iter_steps(self.steps)

    @property
    def has_human_step(self) -> bool:
        return any(s.kind in HUMAN_KINDS for s in self.all_steps())


# Validators are built on first use (``modeling.validator``): importing builds none.
