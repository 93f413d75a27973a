"""Step Functions in moto, with Lambda invocations dispatched to Python callables.

``LocalExecutor`` is the local stack's engine: it starts ``mock_aws`` with real state
machine execution, and replaces moto's Lambda ``invoke`` (which would only echo the
payload, there is no docker here) by a call to the callable registered under the
function's name. The dispatch table is generic, ``name → handler(event, context)``, so
the same mechanism runs Loopline's own functions (registered by default, calling
``loopline.runtime.actions`` in-process), custom step type functions, and later the real
Lambda handlers named by a SAM template.

What a run does not use costs it nothing:

- **State machines are created when first needed.** ``create_state_machine(...,
  lazy=True)`` (how a template's state machines are provisioned) checks the definition's
  placeholders and JSON and keeps it; moto gets the state machine (and parses its ASL) the
  first time anything names it: ``StartExecution``, ``DescribeStateMachine``,
  ``UpdateStateMachine``, ``ListStateMachines`` (all of them), a ``CreateStateMachine``
  of the same name, its aliases, the tagging API. ``_DeclaredMachines`` patches moto's
  Step Functions backend for this, so every client (the local stack's, the functions',
  moto's own Step Functions integrations) sees the state machine as existing.
- **moto is imported when the executor starts**, not when this module is, and moto's
  Batch backend (which imports all of moto's EC2, about 0.7 s of CPU) only when a Batch
  API is called: moto's ASL interpreter imports ``moto.batch.utils`` for its Batch
  integration, which no Loopline workflow uses (``_defer_moto_batch``).
- **History is read from the last event seen** (``history_after``): newest first, page
  by page, until an event already read, as a client of Step Functions reads it; moto's
  ``GetExecutionHistory`` pages like AWS's (``loopline.local.fidelity``).

Only one executor can be active in a process at a time (moto's mock is process-wide).
"""

from __future__ import annotations

import atexit
import functools
import gc
import importlib.util
import json
import logging
import os
import re
import sys
import threading
import time
import traceback
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from loopline.local.fidelity import Fidelity
from loopline.runtime.errors import StepError, readable
from loopline.settings import settings

if TYPE_CHECKING:
    from moto.awslambda_simple.models import LambdaSimpleBackend

    from loopline.runtime import actions

log = logging.getLogger("loopline.local")

ACCOUNT_ID = "123456789012"
#: The moto bucket that holds large step outputs when no bucket is configured.
LOCAL_BUCKET = "loopline-local"
#: The tasks table of a local stack with no template (human tasks are recorded there).
LOCAL_TABLE = "loopline-local-tasks"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT_ID}:role/loopline-local"
#: Loopline's functions: placeholder in the ASL → local function name.
#: The function that serves each action (its folder under functions/).
_KIND_OF_ACTION = {
    "llm": "llm",
    "vote_voter": "llm",
    "tool": "tool",
    "http": "http",
    "task": "task",
    "human": "human",
    "eval": "helper",
    "render": "helper",
    "vote_aggregate": "helper",
}
#: What the local stack sets for the handlers: no X-Ray, no metrics output, errors only.
LOCAL_FUNCTION_ENV = {
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_DISABLED": "true",
    "POWERTOOLS_LOG_LEVEL": "ERROR",
    "POWERTOOLS_SERVICE_NAME": "loopline",
    "POWERTOOLS_METRICS_NAMESPACE": "Loopline",
}
FUNCTIONS_DIR = Path(__file__).resolve().parents[3] / "functions"


def _defer_moto_batch() -> None:
    """Make ``import moto.batch.<module>`` leave moto's Batch backend unimported until it
    is used.

    moto's ASL interpreter imports ``moto.batch.utils`` (an enum of job states) for its
    Batch integration; importing the ``moto.batch`` package imports its backend, and with
    it moto's EC2 backend (0.7 s of CPU, three loads of the EC2 service model). The
    package is registered as its own module object without running its ``__init__``
    (whose only line imports the backend); ``batch_backends``, the one name it exports
    and the one moto's mock looks up for a Batch request, imports the backend on first
    access. Nothing else changes: a Batch API call still gets moto's Batch backend."""
    if "moto.batch" in sys.modules:
        return
    spec = importlib.util.find_spec("moto.batch")
    if spec is None or spec.submodule_search_locations is None:  # pragma: no cover
        return
    package = importlib.util.module_from_spec(spec)

    def backends(name: str) -> Any:
        if name == "batch_backends":
            return importlib.import_module("moto.batch.models").batch_backends
        raise AttributeError(f"module 'moto.batch' has no attribute {name!r}")

    package.__getattr__ = backends  # type: ignore[method-assign]
    sys.modules["moto.batch"] = package
    moto = sys.modules.get("moto")
    if moto is not None:
        moto.batch = package  # type: ignore[attr-defined]


class _DeclaredMachines:
    """State machines declared to the executor and created in moto when first needed
    (see the module docstring): while the executor is active, moto's Step Functions
    backend creates a declared state machine before any lookup of its ARN, and every
    declared one before a listing."""

    def __init__(self) -> None:
        #: ARN → (name, definition text, type), not yet in moto.
        self.pending: dict[str, tuple[str, str, str]] = {}
        #: ARNs being created (a lookup from another thread waits for it).
        self._making: set[str] = set()
        self._lock = threading.RLock()
        self._undo: list[Callable[[], None]] = []
        #: Names of the state machines created in moto so far from a declaration.
        self.created: list[str] = []

    def declare(self, arn: str, name: str, definition: str, type: str) -> None:
        with self._lock:
            self.pending[arn] = (name, definition, type)

    def forget(self, arn: str) -> None:
        """``arn`` is being created directly (its declaration no longer applies)."""
        with self._lock:
            self.pending.pop(arn, None)

    def ensure(self, backend: Any, arn: str) -> None:
        """Create ``arn`` in ``backend`` if it is declared and not created yet."""
        parts = arn.split(":")
        if len(parts) > 7 and parts[-1].isdigit():  # a version: name:<n>
            arn = ":".join(parts[:-1])
        if arn not in self._making and arn not in self.pending:
            return
        with self._lock:
            entry = self.pending.get(arn)
            if entry is None or parts[3:5] != [backend.region_name, backend.account_id]:
                return  # created meanwhile (or by this thread, further up), or elsewhere
            self._making.add(arn)
            del self.pending[arn]
            name, definition, sm_type = entry
            try:
                backend.create_state_machine(
                    name=name, definition=definition, roleArn=ROLE_ARN, sm_type=sm_type
                )
            except BaseException:
                self.pending[arn] = entry  # the next lookup fails the same way
                raise
            finally:
                self._making.discard(arn)
            self.created.append(name)

    def ensure_all(self, backend: Any) -> None:
        """Create every declared state machine; one moto refuses is left out (and fails
        again when named), as a deploy would have refused it."""
        for arn in list(self.pending):
            try:
                self.ensure(backend, arn)
            except Exception as exc:
                log.warning("state machine %s: %s", arn.rsplit(":", 1)[-1], exc)

    def start(self) -> None:
        from moto.stepfunctions.models import StepFunctionBackend

        declared = self

        def by_arn(original: Any, alias: bool = False) -> Any:
            @functools.wraps(original)
            def wrapper(backend: Any, arn: str, *args: Any, **kwargs: Any) -> Any:
                declared.ensure(backend, arn.rsplit(":", 1)[0] if alias else arn)
                return original(backend, arn, *args, **kwargs)

            return wrapper

        def every(original: Any) -> Any:
            @functools.wraps(original)
            def wrapper(backend: Any, *args: Any, **kwargs: Any) -> Any:
                declared.ensure_all(backend)
                return original(backend, *args, **kwargs)

            return wrapper

        def forgotten(original: Any) -> Any:
            # Deleting a declared state machine: it is gone without having been made.
            @functools.wraps(original)
            def wrapper(backend: Any, arn: str) -> Any:
                declared.forget(arn)
                return original(backend, arn)

            return wrapper

        patches = {
            "describe_state_machine": by_arn,
            "list_state_machine_aliases": by_arn,
            "describe_state_machine_alias": lambda o: by_arn(o, alias=True),
            "delete_state_machine_alias": lambda o: by_arn(o, alias=True),
            "delete_state_machine": forgotten,
            "list_state_machines": every,
            "iter_tagged_resources": every,
        }
        for name, make in patches.items():
            original = StepFunctionBackend.__dict__[name]
            setattr(StepFunctionBackend, name, make(original))
            self._undo.append(functools.partial(setattr, StepFunctionBackend, name, original))

    def stop(self) -> None:
        while self._undo:
            self._undo.pop()()
        self.pending.clear()


def function_handler(kind: str) -> Handler | None:
    """``handler`` of ``functions/<kind>/app.py``; None without the repository around."""
    if not (FUNCTIONS_DIR / kind / "app.py").is_file():
        return None
    for key, value in LOCAL_FUNCTION_ENV.items():
        os.environ.setdefault(key, value)
    return load_handler(FUNCTIONS_DIR / kind, "app.handler")


_import_lock = threading.Lock()


def load_handler(code_dir: Path, handler: str) -> Handler:
    """Import ``<code_dir>/<module>.py`` and return its ``<function>`` (``app.handler``)."""
    module_name, _, func_name = handler.rpartition(".")
    path = code_dir / f"{module_name.replace('.', '/')}.py"
    if not path.is_file():
        raise LocalStackError(f"handler {handler!r}: {path} does not exist")
    key = f"loopline_function_{abs(hash(str(path)))}"
    with _import_lock:
        module = sys.modules.get(key)
        if module is None:
            spec = importlib.util.spec_from_file_location(key, path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.path.insert(0, str(code_dir))
            try:
                spec.loader.exec_module(module)
            finally:
                sys.path.remove(str(code_dir))
            sys.modules[key] = module
    fn = getattr(module, func_name, None)
    if not callable(fn):
        raise LocalStackError(f"handler {handler!r}: {path} has no function {func_name!r}")
    return fn


LOOPLINE_FUNCTIONS = {
    "LlmFunctionArn": "loopline-llm",
    "ToolFunctionArn": "loopline-tool",
    "HttpFunctionArn": "loopline-http",
    "TaskFunctionArn": "loopline-task",
    "HumanFunctionArn": "loopline-human",
    "HelperFunctionArn": "loopline-helper",
}
#: Loggers that print moto's internal tracebacks during executions (noise for users).
_NOISY_LOGGERS = ("moto", "botocore.credentials")
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_.:-]+)\}")
_TERMINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")
#: The smallest page of a history read from its end (``LocalExecutor.history_after``).
HISTORY_PAGE_MIN = 4

Handler = Callable[[Any, "LocalContext"], Any]

_active_lock = threading.Lock()
_active: LocalExecutor | None = None
_frozen_at_exit = False


def _freeze_at_exit() -> None:
    """Have the garbage collector skip, when the process ends, the objects alive then.

    The local stack leaves a process with some 240,000 objects (moto's backends and
    models, botocore's service models, the handlers' modules) that live until it ends;
    the collections of the interpreter's shutdown walk them all, 0.5 s of CPU after a
    one-step ``loopline run``. ``gc.freeze()`` at exit moves them out of the collector's
    sight: they are freed with the process all the same, ``atexit`` handlers (logging's
    flush among them) still run, and the standard streams are still flushed."""
    global _frozen_at_exit
    if not _frozen_at_exit:
        _frozen_at_exit = True
        atexit.register(gc.freeze)


class LocalStackError(Exception):
    """A problem setting up or driving the local stack (bad definition, unknown placeholder)."""


@dataclass
class LocalContext:
    """The parts of a Lambda context object that handlers (and Powertools) read."""

    function_name: str
    invoked_function_arn: str
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    memory_limit_in_mb: int = 512
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = ""
    timeout_ms: int = 900_000
    started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int(self.timeout_ms - (time.monotonic() - self.started) * 1000))


def function_name_of(name_or_arn: str) -> str:
    """``arn:aws:lambda:r:a:function:NAME[:qualifier]`` or ``NAME[:qualifier]`` → ``NAME``."""
    if name_or_arn.startswith("arn:"):
        parts = name_or_arn.split(":")
        return parts[6] if len(parts) > 6 else name_or_arn
    return name_or_arn.split(":")[0]


def _patched_invoke(
    self: LambdaSimpleBackend,
    function_name: str,
    qualifier: str | None,
    body: Any,
    headers: Any,
    response_headers: Any,
) -> bytes:
    executor = _active
    if executor is None:  # pragma: no cover - only patched while an executor is active
        return body if isinstance(body, bytes) else str(body or "").encode()
    return executor._lambda_invoke(function_name, body, response_headers)


class LocalExecutor:
    """Run ASL definitions in moto with in-process Lambda functions.

    ```python
    with LocalExecutor(env=actions.Env(model=ScriptedModel.from_file("s.yaml"))) as ex:
        arn = ex.create_state_machine("demo", definition)
        run = ex.start_execution(arn, {"topic": "tides"})
        ex.wait(run)
    ```
    """

    def __init__(
        self,
        *,
        env: actions.Env | None = None,
        loopline_functions: bool = True,
        region: str = "us-east-1",
    ) -> None:
        from loopline.runtime import actions

        self.region = region
        self.env = env or actions.Env()
        if self.env.invoke is None:
            self.env.invoke = self.invoke
        self.functions: dict[str, Handler] = {}
        self.substitutions: dict[str, str] = {}
        self._mock: Any = None
        self._clients: dict[str, Any] = {}
        self._sfn: Any = None
        self._executions: list[str] = []
        #: Execution ARN → the page size of its next ``history_after`` read.
        self._history_pace: dict[str, int] = {}
        self.fidelity: Fidelity | None = None
        #: State machines created when first needed (``create_state_machine(lazy=True)``).
        self.declared = _DeclaredMachines()
        self._loopline_functions = loopline_functions
        if loopline_functions:
            for placeholder, name in LOOPLINE_FUNCTIONS.items():
                self.register_function(name, self._loopline_handler, placeholder=placeholder)

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> LocalExecutor:
        global _active
        with _active_lock:
            if _active is not None:
                raise LocalStackError("another LocalExecutor is already running in this process")
            _active = self
        _freeze_at_exit()
        try:
            # Silenced for good: executions left blocked on a person (daemon threads) may
            # still log after the executor is gone.
            for name in _NOISY_LOGGERS:
                logging.getLogger(name).setLevel(logging.CRITICAL + 1)
            # Many handlers share one process here (one per Lambda in AWS): Powertools then
            # warns that concurrent invocations reset each other's metric dimensions.
            warnings.filterwarnings("ignore", message="Dimension .* has already been added")
            # A function that records no metric (the status events one, say) says so.
            warnings.filterwarnings("ignore", message="No application metrics to publish")
            _defer_moto_batch()
            from moto import mock_aws
            from moto.awslambda_simple.models import LambdaSimpleBackend

            from loopline.runtime import actions

            self._mock = mock_aws(
                config={
                    "stepfunctions": {"execute_state_machine": True},
                    "lambda": {"use_docker": False},
                    # Model calls to Bedrock go to the real service (with the client the
                    # provider made, and its credentials, before the mock started).
                    "core": {
                        "mock_credentials": True,
                        "passthrough": {"urls": [], "services": ["bedrockruntime"]},
                        "reset_boto3_session": True,
                        "service_whitelist": None,
                    },
                }
            )
            self._mock.start()
            # What AWS does and moto does not (status events, Lambda rule targets,
            # serialised DynamoDB writes): loopline.local.fidelity.
            self.fidelity = Fidelity(self._async_invoke, self.region)
            self.fidelity.start()
            self.declared.start()
            self._original_invoke = LambdaSimpleBackend.invoke
            LambdaSimpleBackend.invoke = _patched_invoke  # type: ignore[method-assign]
            # The real handlers take their model and inbox from the process's default Env.
            self._previous_env = actions.set_default_env(self.env)
            self._sfn = self.client("stepfunctions")
            self._create_bucket()
            if self._loopline_functions:
                self._create_table()
        except BaseException:
            self._teardown()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._teardown()

    def _teardown(self) -> None:
        global _active
        fidelity = self.fidelity
        if fidelity is not None:
            fidelity.quiesce()
        if self._sfn is not None:
            for arn in self._executions:
                # A run left waiting for a person stays blocked in moto's worker thread
                # (a daemon); stopping it keeps it from going on after the mock is gone.
                try:
                    if self._sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
                        self._sfn.stop_execution(executionArn=arn)
                except Exception:  # pragma: no cover - best effort
                    log.debug("could not stop %s", arn, exc_info=True)
        if hasattr(self, "_previous_table"):
            if self._previous_table is None:
                os.environ.pop("LOOPLINE_TABLE", None)
            else:
                os.environ["LOOPLINE_TABLE"] = self._previous_table
            settings.cache_clear()
            del self._previous_table
        if hasattr(self, "_previous_bucket"):
            self.env.bucket = self._previous_bucket
            del self._previous_bucket
        if hasattr(self, "_previous_env"):
            from loopline.runtime import actions

            actions.set_default_env(self._previous_env)
            del self._previous_env
        if hasattr(self, "_original_invoke"):
            from moto.awslambda_simple.models import LambdaSimpleBackend

            LambdaSimpleBackend.invoke = self._original_invoke  # type: ignore[method-assign]
            del self._original_invoke
        self.declared.stop()
        if fidelity is not None:
            fidelity.stop()
            self.fidelity = None
        if self._mock is not None:
            self._mock.stop()
            self._mock = None
        self._sfn = None
        self._clients = {}
        with _active_lock:
            if _active is self:
                _active = None

    def _create_bucket(self) -> None:
        """The bucket for large step outputs (``loopline.runtime.largevalues``), in moto:
        the env's bucket, else ``LOOPLINE_BUCKET``, else ``LOCAL_BUCKET``."""
        self._previous_bucket = self.env.bucket
        from botocore.exceptions import ClientError

        bucket = self.env.bucket or settings().bucket or LOCAL_BUCKET
        s3 = self.client("s3")
        extra: dict[str, Any] = {}
        if self.region != "us-east-1":
            extra["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        try:
            s3.create_bucket(Bucket=bucket, **extra)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "BucketAlreadyOwnedByYou":
                raise
        self.env.bucket = bucket

    def _create_table(self) -> None:
        """The tasks table (human tasks live there) when no template provisions one:
        ``LOOPLINE_TABLE``'s name, else ``LOCAL_TABLE``."""
        from loopline import store

        self._previous_table = os.environ.get("LOOPLINE_TABLE")
        os.environ["LOOPLINE_TABLE"] = self._previous_table or LOCAL_TABLE
        settings.cache_clear()
        store.create_table(os.environ["LOOPLINE_TABLE"])

    def client(self, service: str) -> Any:
        """The local stack's boto3 client of ``service`` in the mock, made once while the
        executor is active. It comes from boto3's default session, as the functions'
        clients (``loopline.aws``) and moto's own do: each service's model is loaded once
        per session, so once for all of them."""
        found = self._clients.get(service)
        if found is None:
            import boto3

            if self._mock is None:
                raise LocalStackError("the LocalExecutor is not running: use it in a with block")
            found = self._clients[service] = boto3.client(
                service,
                region_name=self.region,
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )
        return found

    @property
    def sfn(self) -> Any:
        """The boto3 Step Functions client (only while the executor is active)."""
        if self._sfn is None:
            raise LocalStackError("the LocalExecutor is not running: use it in a with block")
        return self._sfn

    # ------------------------------------------------------------------ functions

    def function_arn(self, name: str) -> str:
        return f"arn:aws:lambda:{self.region}:{ACCOUNT_ID}:function:{name}"

    def register_function(
        self, name: str, handler: Handler, *, placeholder: str | None = None
    ) -> str:
        """Dispatch invocations of function ``name`` to ``handler(event, context)``.

        With ``placeholder``, ``${placeholder}`` in definitions becomes the function's ARN.
        Returns the ARN.
        """
        self.functions[name] = handler
        arn = self.function_arn(name)
        if placeholder:
            self.substitutions[placeholder] = arn
        return arn

    def _loopline_handler(self, event: Any, context: LocalContext) -> Any:
        """The real Lambda handler of the function (``functions/<kind>/app.py``), or the
        action dispatch itself when the package runs without the repository around it."""
        kind = str(event.get("action") if isinstance(event, dict) else "")
        handler = function_handler(_KIND_OF_ACTION.get(kind, "helper"))
        if handler is None:
            from loopline.runtime import actions

            return actions.dispatch(event, self.env)
        return handler(event, context)

    def invoke(self, name_or_arn: str, event: Any) -> Any:
        """Call a registered function directly (how ``task`` steps reach custom functions).

        A ``StepError`` passes through; any other exception becomes a ``StepError`` named
        after the exception class, as Lambda reports an unhandled error.
        """
        name = function_name_of(name_or_arn)
        handler = self.functions.get(name)
        if handler is None:
            known = ", ".join(sorted(self.functions)) or "none"
            raise StepError(
                "Loopline.Failed",
                f"no local function named {name!r} (registered: {known})",
            )
        context = LocalContext(name, self.function_arn(name))
        try:
            return handler(event, context)
        except StepError:
            raise
        except Exception as exc:
            log.debug("function %s failed", name, exc_info=True)
            raise StepError(type(exc).__name__, readable(exc)) from exc

    def _async_invoke(self, name: str, event: Any) -> Any:
        """An asynchronous invocation (an EventBridge target): the function's own
        exception, as Lambda's retries see it."""
        handler = self.functions.get(function_name_of(name))
        if handler is None:
            raise LocalStackError(f"no local function named {name!r}")
        return handler(event, LocalContext(name, self.function_arn(name)))

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every event put so far reached its rules' functions."""
        return self.fidelity.drain(timeout) if self.fidelity is not None else True

    def _lambda_invoke(self, function_name: str, body: Any, response_headers: Any) -> bytes:
        """What moto's Lambda invoke returns: the handler's JSON result or a function error."""
        try:
            event = json.loads(body) if body else {}
        except (TypeError, ValueError):
            event = body
        try:
            result = self.invoke(function_name, event)
            return json.dumps(result).encode()
        except StepError as exc:
            response_headers["x-amz-function-error"] = "Unhandled"
            return json.dumps(exc.to_payload()).encode()
        except Exception as exc:  # e.g. a result that is not JSON
            log.debug("invoke of %s failed: %s", function_name, traceback.format_exc())
            response_headers["x-amz-function-error"] = "Unhandled"
            return json.dumps({"errorType": type(exc).__name__, "errorMessage": str(exc)}).encode()

    # ------------------------------------------------------------------ state machines

    def resolve(self, definition: dict[str, Any] | str, extra: dict[str, str] | None = None) -> str:
        """The definition as JSON text with every ``${Name}`` replaced.

        Raise ``LocalStackError`` naming any placeholder nobody registered.
        """
        text = (
            definition
            if isinstance(definition, str)
            else json.dumps(definition, separators=(",", ":"))
        )
        subs = {**self.substitutions, **(extra or {})}
        unknown = sorted({m.group(1) for m in _PLACEHOLDER.finditer(text)} - set(subs))
        if unknown:
            known = ", ".join(sorted(subs)) or "none"
            raise LocalStackError(
                f"the definition uses unknown placeholder{'s' if len(unknown) > 1 else ''} "
                f"{', '.join('${' + u + '}' for u in unknown)} (known: {known})"
            )
        return _PLACEHOLDER.sub(lambda m: subs[m.group(1)], text)

    def create_state_machine(
        self,
        name: str,
        definition: dict[str, Any] | str,
        *,
        substitutions: dict[str, str] | None = None,
        type: str = "STANDARD",
        lazy: bool = False,
    ) -> str:
        """Create (or update) state machine ``name``; returns its ARN.

        With ``lazy``, the definition's placeholders and JSON are checked now and the state
        machine is created in moto when first needed (module docstring); moto checks its
        ASL then."""
        from botocore.exceptions import ClientError

        text = self.resolve(definition, substitutions)
        try:
            json.loads(text)
        except ValueError as exc:
            raise LocalStackError(f"the definition is not JSON: {exc}") from None
        arn = f"arn:aws:states:{self.region}:{ACCOUNT_ID}:stateMachine:{name}"
        if lazy:
            self.declared.declare(arn, name, text, type)
            return arn
        # Made now with this definition: a declaration of the same name is not made first.
        self.declared.forget(arn)
        try:
            try:
                self.sfn.describe_state_machine(stateMachineArn=arn)
            except self.sfn.exceptions.StateMachineDoesNotExist:
                resp = self.sfn.create_state_machine(
                    name=name, definition=text, roleArn=ROLE_ARN, type=type
                )
                return str(resp["stateMachineArn"])
            self.sfn.update_state_machine(stateMachineArn=arn, definition=text)
            return arn
        except ClientError as exc:
            message = exc.response.get("Error", {}).get("Message") or str(exc)
            raise LocalStackError(f"invalid state machine definition: {message}") from None

    def start_execution(
        self, state_machine_arn: str, input: Any = None, *, name: str | None = None
    ) -> str:
        """Start an execution with ``input`` (a JSON value); returns the execution ARN."""
        resp = self.sfn.start_execution(
            stateMachineArn=state_machine_arn,
            name=name or uuid.uuid4().hex,
            input=json.dumps({} if input is None else input),
        )
        arn = str(resp["executionArn"])
        self._executions.append(arn)
        return arn

    def describe(self, execution_arn: str) -> dict[str, Any]:
        return dict(self.sfn.describe_execution(executionArn=execution_arn))

    def status(self, execution_arn: str) -> str:
        return str(self.describe(execution_arn)["status"])

    def wait(
        self, execution_arn: str, *, timeout: float = 60.0, poll: float = 0.05
    ) -> dict[str, Any]:
        """Poll until the execution ends; returns ``describe_execution``'s answer.

        Raise ``TimeoutError`` when it still runs after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            desc = self.describe(execution_arn)
            if desc["status"] in _TERMINAL:
                return desc
            if time.monotonic() > deadline:
                raise TimeoutError(f"execution still {desc['status']} after {timeout:g}s")
            time.sleep(poll)

    def history(self, execution_arn: str) -> list[dict[str, Any]]:
        """Every history event so far, oldest first."""
        return list(self._history_pages(execution_arn))

    def history_after(self, execution_arn: str, after: int = 0) -> list[dict[str, Any]]:
        """The history events after event ``after`` (an event id), oldest first.

        Read newest first (``reverseOrder``), a page at a time, down to the first event
        already seen: a poll reads what happened since the last one, not the history
        again (Step Functions' history cannot be read forward from an event id). The page
        is sized on what the previous read of this execution found new (at least
        ``HISTORY_PAGE_MIN``, at most 1000, the API's largest), so a poll asks for about
        what it will find."""
        newer: list[dict[str, Any]] = []
        size = self._history_pace.get(execution_arn, HISTORY_PAGE_MIN)
        kwargs: dict[str, Any] = {
            "executionArn": execution_arn,
            "reverseOrder": True,
            "maxResults": size,
        }
        try:
            while True:
                page = self.sfn.get_execution_history(**kwargs)
                for event in page["events"]:
                    if int(event["id"]) <= after:
                        return newer[::-1]
                    newer.append(event)
                token = page.get("nextToken")
                if not token:
                    return newer[::-1]
                kwargs["nextToken"] = token
        finally:
            self._history_pace[execution_arn] = min(1000, max(HISTORY_PAGE_MIN, 2 * len(newer) + 1))

    def _history_pages(self, execution_arn: str) -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
        while True:
            page = self.sfn.get_execution_history(**kwargs)
            yield from page["events"]
            token = page.get("nextToken")
            if not token:
                return
            kwargs["nextToken"] = token

    def send_task_success(self, token: str, output: Any) -> None:
        """Resume a ``.waitForTaskToken`` task with ``output`` (a JSON value)."""
        self.sfn.send_task_success(taskToken=token, output=json.dumps(output))

    def send_task_failure(self, token: str, error: str, cause: str = "") -> None:
        """Fail a ``.waitForTaskToken`` task with ``error`` (routed by Retry/Catch) and
        ``cause`` (kept by the local stack's fidelity, as in AWS)."""
        self.sfn.send_task_failure(taskToken=token, error=error, cause=cause)
