"""What AWS does and moto does not: the one place the local stack supplies it.

Each item, and why the local stack needs it:

- **Execution status change events.** Step Functions puts a "Step Functions Execution
  Status Change" event on the account's default event bus when a STANDARD execution starts
  (``RUNNING``) and when it ends (``SUCCEEDED``, ``FAILED``, ``TIMED_OUT``, ``ABORTED``);
  moto's executions emit none. Loopline's task status is driven by these events, so the
  local stack emits them, in the shape AWS documents, from moto's own execution lifecycle
  (``Execution.start``, the worker's ``terminated``, ``stop_execution``).
- **Stopping an execution that waits for a task token.** moto's ``StopExecution`` leaves
  such an execution ``RUNNING`` until its token is answered; in AWS it is ``ABORTED`` at
  once. After a short grace (an execution in a ``Wait`` or between states stops by
  itself), the execution is marked ``ABORTED`` with an ``ExecutionAborted`` history event.
- **History in pages.** moto's ``GetExecutionHistory`` ignores ``maxResults``,
  ``reverseOrder`` and ``nextToken``: every call answers the whole history, oldest first
  (a copy of all of it). AWS answers a page (100 events by default, at most 1000), newest
  first on request, with a token for the next: a client that follows an execution reads
  the new events from the end, and one that reads it all must follow the tokens. The
  local stack answers in pages, as AWS does (``history_page``).
- **Lambda targets of EventBridge rules.** moto's ``PutEvents`` delivers to SQS queues
  and log groups only (a Lambda target raises). Events are still put on moto's bus and
  matched by moto's own rule patterns; the Lambda targets of each matching rule are
  invoked here, asynchronously like EventBridge (one delivery thread, in order, which AWS
  does not promise), with Lambda's asynchronous semantics (a failing invocation is retried
  twice, then logged and dropped). ``drain`` waits until every event was delivered.
- **SQS event sources of functions.** moto polls no queue for the local stack's
  functions (they run in-process, not in moto's Lambda): each function's ``SQS`` event
  gets a poller thread (``loopline.local.sqs_events``) that receives batches, invokes the
  function with Lambda's SQS event, deletes what it handled (all of the batch, or with
  ``ReportBatchItemFailures`` all but the ``batchItemFailures`` it answers) and leaves the
  rest to come back after its visibility timeout, and to the dead-letter queue after
  ``maxReceiveCount`` receives (moto's redrive). ``drain`` waits for them too.
- **DynamoDB stream event sources of functions.** moto keeps a table's stream but reads
  it for no function of the local stack: each function's ``DynamoDB`` event gets a poller
  thread (``loopline.local.stream_events``) that reads the stream in order from its
  starting position, drops the records no ``FilterCriteria`` pattern matches, invokes the
  function with Lambda's DynamoDB stream event in batches of at most ``BatchSize``, and
  checkpoints as Lambda does: past a handled batch, before the lowest of the
  ``batchItemFailures`` it answers, nowhere when it raises (the batch is retried, halved
  with ``BisectBatchOnFunctionError``); after ``MaximumRetryAttempts`` retries the batch
  is recorded at its ``OnFailure`` destination and passed. One shard, one batch at a
  time. The stream is read under the DynamoDB lock (below: moto puts a copy of the table
  back to undo a cancelled transaction; the copy shares the stream's records), an
  ``UpdateItem`` that creates its item adds one
  record (moto adds two), and the records every poller has passed are trimmed from moto's
  stream. ``drain`` waits until every poller has passed the end of its stream.
- **A verified sender.** SES sends only from an identity verified in the account (the
  operator verifies ``SenderEmail`` once, in AWS); the local stack verifies the sender
  the settings name (``LOOPLINE_SENDER_EMAIL``) in moto when it provisions.
- **DynamoDB writes serialised.** DynamoDB applies writes to an item one at a time, so a
  condition expression is checked and the write made atomically. moto's backend does the
  check and the write as separate Python steps, and its item dictionaries are not safe to
  read while another thread writes: every backend operation on items, and each DynamoDB
  request whole (moto builds a read's answer from the live items after the operation),
  runs under one lock.
- **A cancelled transaction undone item by item.** moto deep-copies every table a
  ``TransactWriteItems`` names, to put it back if the transaction is cancelled: time and
  memory grow with the table. The local stack keeps only the items the transaction writes
  (``_transact_write_items``).
- **A task token answers once.** Step Functions refuses ``SendTaskSuccess`` /
  ``SendTaskFailure`` with a token already answered (``TaskTimedOut``); moto accepts it
  again. The local stack refuses it. And moto's ``SendTaskFailure`` API drops the
  ``cause``, which AWS keeps in the history and the execution's failure: it is passed on.
- **The region of the functions.** Lambda sets ``AWS_REGION`` and ``AWS_DEFAULT_REGION``
  for its functions, which make their clients with no region named: the local stack sets
  them (to its region) when the shell did not.
- **A field after an index.** moto reads a path whose last field follows an index
  (``$[0].steps``, ``$.list[2].name``) as a one-element list; Step Functions reads the
  value, as it does for every path that names one node. The compiled Parallel states read
  their branches' results so (``$[0].steps``): a path made only of names and indexes is
  read as AWS reads it (``_patch_json_paths``); any other path is moto's.
- **Nested executions.** Step Functions runs another state machine from a task
  (``arn:aws:states:::states:startExecution.sync:2``, how a split workflow's parent runs
  its children); moto's interpreter has the integration but passes the task's parameters
  to the API unnamed (every such task failed with ``States.Runtime``), answers in
  boto3's casing, names a child started without a name ``None`` and cannot read a child
  whose output is a string. ``nested_executions`` names the parameters, names the child,
  reads its input and output from moto's record and answers in Step Functions' shape
  (``Output`` as JSON; a failed child: ``States.TaskFailed`` with its description, its
  ``Error`` and ``Cause``, as the cause); a parent stopped while it waits stops its child.
- **Cached AWS clients.** ``loopline.aws`` keeps one boto3 client per service and process;
  clients made before or after a mock must not be reused across it: ``reset()`` on start
  and stop.

``Fidelity.start()`` patches moto and ``stop()`` undoes every patch; only one is active at
a time (moto's mock is process-wide), owned by the active ``LocalExecutor``.
"""

from __future__ import annotations

import base64
import copy
import functools
import json
import logging
import os
import queue
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from loopline.local.event_sources import InFlight
from loopline.local.sqs_events import SqsEventSources, SqsMapping
from loopline.local.stream_events import StreamEventSources, StreamMapping

log = logging.getLogger("loopline.local")

DETAIL_TYPE = "Step Functions Execution Status Change"
SOURCE = "aws.states"
#: Retries of a failing asynchronous Lambda invocation (Lambda's default).
ASYNC_RETRIES = 2
#: Seconds between those retries locally (AWS waits about a minute, then two).
RETRY_DELAYS = (0.05, 0.1)
#: Seconds a stopped execution gets to end by itself before it is marked ABORTED.
STOP_GRACE = 0.25

#: moto's DynamoDB backend operations on items (run one at a time).
_DYNAMODB_OPERATIONS = (
    "put_item",
    "update_item",
    "delete_item",
    "transact_write_items",
    "batch_write_item",
    "get_item",
    "query",
    "scan",
    "batch_get_item",
    "transact_get_items",
    "execute_statement",
    "batch_execute_statement",
)

#: A JSONPath naming one node: names and indexes only (``$.a[0].b``), and its parts.
_DEFINITE_PATH = re.compile(r"\$(?:\.[A-Za-z_][A-Za-z0-9_]*|\[[0-9]+\])*")
_PATH_PART = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[([0-9]+)\]")

#: Invoke a function by name with an event; raises when the function fails.
Invoke = Callable[[str, Any], Any]


def _epoch_ms(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return int(value.timestamp() * 1000)
    return int(float(value) * 1000)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


#: ``GetExecutionHistory``'s page when ``maxResults`` is not given (or 0), and its largest.
HISTORY_PAGE_DEFAULT = 100
HISTORY_PAGE_MAX = 1000


def _event_manager(execution: Any) -> Any:
    """moto's event list of an execution (None before its worker started)."""
    worker = getattr(execution, "exec_worker", None)
    env = getattr(worker, "env", None)
    return getattr(env, "event_manager", None)


def history_page(
    manager: Any, arn: str, *, max_results: int = 0, reverse: bool = False, token: Any = None
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of an execution's history and the token of the next (None at the end),
    as ``GetExecutionHistory`` gives them: at most ``max_results`` events (100 when 0,
    at most 1000), oldest first or, with ``reverse``, newest first. A token names the
    event its page starts at, so pages stay right while the execution adds events (read
    newest first, page after page, down to an event already seen: what a client that
    follows an execution does). Only the page's events are copied (moto copies the whole
    history on every call). Raise ``ValueError`` for a token of another execution or
    order."""
    size = min(max_results or HISTORY_PAGE_DEFAULT, HISTORY_PAGE_MAX)
    with manager._mutex:
        events = manager._history_event_list
        count = len(events)
        if token:
            token_arn, token_reverse, start = _read_token(str(token))
            if token_arn != arn or token_reverse != reverse:
                raise ValueError("token of another request")
        else:
            start = count if reverse else 1
        # Event ids count from 1 in the order events are added: event n is at index n - 1.
        if reverse:
            lo = max(0, start - size)
            page = events[lo:start][::-1]
            following = lo  # the newest event of the next page
        else:
            page = events[start - 1 : start - 1 + size]
            following = start + size if start - 1 + size < count else 0
        page = copy.deepcopy(page)
    return page, _token(arn, reverse, following) if following > 0 else None


def _token(arn: str, reverse: bool, start: int) -> str:
    raw = json.dumps([arn, reverse, start], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _read_token(token: str) -> tuple[str, bool, int]:
    try:
        arn, reverse, start = json.loads(base64.urlsafe_b64decode(token.encode()))
        return str(arn), bool(reverse), int(start)
    except (ValueError, TypeError) as exc:
        raise ValueError("not a token") from exc


def status_detail(execution: Any, status: str) -> dict[str, Any]:
    """The ``detail`` of a status change event of moto's ``execution`` (AWS's shape)."""
    ended = status != "RUNNING"
    output = None
    if status == "SUCCEEDED" and execution.output is not None:
        output = json.dumps(execution.output, separators=(",", ":"))
    redrivable = status in ("FAILED", "TIMED_OUT", "ABORTED")
    state_machine = execution.state_machine
    state_machine_arn = getattr(state_machine, "source_arn", None) or state_machine.arn
    return {
        "executionArn": execution.exec_arn,
        "stateMachineArn": state_machine_arn,
        "name": execution.name,
        "status": status,
        "startDate": _epoch_ms(execution.start_date),
        "stopDate": _epoch_ms(execution.stop_date) if ended else None,
        "input": json.dumps(execution.input_data, separators=(",", ":")),
        "inputDetails": {"included": True},
        "output": output,
        "outputDetails": {"included": True} if output is not None else None,
        "error": execution.error if ended else None,
        "cause": execution.cause if ended else None,
        "redriveCount": 0,
        "redriveStatus": "REDRIVABLE" if redrivable else "NOT_REDRIVABLE",
        "redriveStatusReason": (
            f"Execution is {status} and can be redriven"
            if redrivable
            else f"Execution is {status} and cannot be redriven"
        ),
        "stateMachineVersionArn": None,
        "stateMachineAliasArn": None,
    }


class Fidelity:
    """Patches moto while active: see the module docstring for each thing it supplies."""

    def __init__(self, invoke: Invoke, region: str = "us-east-1") -> None:
        self._invoke = invoke
        self.region = region
        self._saved_env: dict[str, str | None] = {}
        self._queue: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue()
        #: Events being delivered (``drain`` waits for them).
        self._in_flight = InFlight()
        self._ended: set[str] = set()
        self._ended_lock = threading.Lock()
        self._worker: threading.Thread | None = None
        self._undo: list[Callable[[], None]] = []
        self._emitting = False
        self._stopping = False
        self.dynamodb_lock = threading.RLock()
        #: Function name → SQS queue URL of its ``EventInvokeConfig`` ``OnFailure``
        #: destination: where an event that failed every attempt is kept, as in AWS.
        self.on_failure: dict[str, str] = {}
        #: Deliveries that failed three times: (function name, event, error text).
        self.failed: list[tuple[str, dict[str, Any], str]] = []
        #: The functions' SQS event sources (``add_sqs_source``).
        self.sqs = SqsEventSources(invoke, region)
        #: The functions' DynamoDB stream event sources (``add_stream_source``); they read
        #: the streams under the DynamoDB lock.
        self.streams = StreamEventSources(invoke, region, self.dynamodb_lock)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        from loopline import aws

        aws.reset()
        for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
            if not os.environ.get(name):
                self._saved_env[name] = os.environ.get(name)
                os.environ[name] = self.region
        self._patch_stepfunctions()
        self._undo.append(nested_executions())
        self._patch_events()
        self._patch_dynamodb()
        self.sqs.start()
        self.streams.start()
        self._emitting = True
        self._worker = threading.Thread(
            target=self._deliver_loop, name="loopline-eventbridge", daemon=True
        )
        self._worker.start()

    def quiesce(self) -> None:
        """Emit no more events (executions stopped while the stack shuts down are not news)."""
        self._emitting = False

    def stop(self) -> None:
        """Stop delivering (what is still queued is dropped) and undo every patch."""
        from loopline import aws

        self._emitting = False
        self._stopping = True
        self.sqs.stop()
        self.streams.stop()
        if self._worker is not None:
            self._queue.put(None)
            self._worker.join(timeout=5)
            self._worker = None
        while self._undo:
            self._undo.pop()()
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env = {}
        aws.reset()

    def add_sqs_source(self, mapping: SqsMapping) -> None:
        """Poll ``mapping``'s queue for its function, as Lambda's event source mapping."""
        self.sqs.add(mapping)

    def add_stream_source(self, mapping: StreamMapping) -> None:
        """Read ``mapping``'s table stream for its function, as Lambda's event source
        mapping."""
        self.streams.add(mapping)

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every event emitted so far was delivered, every visible message of
        a function's queue was handled and every stream record written so far was passed
        (one may lead to the others); False on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            if not self._in_flight.wait_idle(deadline):
                return False
            for source in (self.sqs, self.streams):
                if not source.drain(max(0.0, deadline - time.monotonic())):
                    return False
            # Idle all at once: nothing handled since led to more work anywhere.
            if self.sqs.drain(0) and self.streams.drain(0) and self._in_flight.idle:
                return True

    def _patch(self, owner: Any, name: str, make: Callable[[Any], Any]) -> None:
        original = owner.__dict__[name]
        setattr(owner, name, make(original))
        self._undo.append(lambda: setattr(owner, name, original))

    def _hold(self) -> None:
        self._in_flight.hold()

    def _release(self) -> None:
        self._in_flight.release()

    # ------------------------------------------------------------------ Step Functions

    def _patch_stepfunctions(self) -> None:
        from moto.stepfunctions.models import StepFunctionBackend
        from moto.stepfunctions.parser.backend import execution as sfn_execution

        fidelity = self

        def start(original: Any) -> Any:
            @functools.wraps(original)
            def wrapper(execution: Any) -> None:
                # Emitted before the worker starts, so RUNNING always comes first.
                fidelity._status_changed(execution, "RUNNING")
                original(execution)

            return wrapper

        def terminated(original: Any) -> Any:
            @functools.wraps(original)
            def wrapper(comm: Any) -> None:
                execution = comm.execution
                with fidelity._ended_lock:
                    if execution.exec_arn in fidelity._ended:
                        return  # already marked ABORTED by stop_execution
                    fidelity._ended.add(execution.exec_arn)
                fidelity._hold()  # drain() waits for the event about to be put
                try:
                    original(comm)
                    fidelity._status_changed(execution, str(execution.exec_status.value))
                finally:
                    fidelity._release()

            return wrapper

        def stop_execution(original: Any) -> Any:
            @functools.wraps(original)
            def wrapper(backend: Any, execution_arn: str) -> Any:
                execution = original(backend, execution_arn)
                if fidelity._emitting:
                    fidelity._abort_if_stuck(execution)
                return execution

            return wrapper

        self._patch(sfn_execution.Execution, "start", start)
        self._patch(sfn_execution.BaseExecutionWorkerCommunication, "terminated", terminated)
        self._patch(StepFunctionBackend, "stop_execution", stop_execution)
        self._patch_task_tokens()
        self._patch_history_pages()
        self._patch_json_paths()

    def _patch_history_pages(self) -> None:
        """``GetExecutionHistory`` in pages, as AWS gives it (see ``history_page``)."""
        from moto.core.responses import ActionResult
        from moto.stepfunctions.exceptions import InvalidToken
        from moto.stepfunctions.responses import StepFunctionResponse

        def paged(original: Any) -> Any:
            @functools.wraps(original)
            def wrapper(response: Any) -> Any:
                arn = response._get_param("executionArn")
                execution = response.stepfunction_backend.describe_execution(arn)
                manager = _event_manager(execution)
                if manager is None:  # not started: moto's answer (no events)
                    return original(response)
                try:
                    events, token = history_page(
                        manager,
                        arn,
                        max_results=int(response._get_param("maxResults") or 0),
                        reverse=bool(response._get_param("reverseOrder")),
                        token=response._get_param("nextToken"),
                    )
                except ValueError:
                    raise InvalidToken("the token is not one this history gave") from None
                out: dict[str, Any] = {"events": events}
                if token:
                    out["nextToken"] = token
                return ActionResult(out)

            return wrapper

        self._patch(StepFunctionResponse, "get_execution_history", paged)

    def _patch_json_paths(self) -> None:
        """A path of names and indexes (``$[0].steps``) reads the node it names, as in AWS
        (moto gives a one-element list when its last field follows an index)."""
        import sys

        from moto.stepfunctions.parser.asl.utils import json_path

        original = json_path.extract_json

        @functools.wraps(original)
        def extract_json(path: str, data: Any) -> Any:
            if not _DEFINITE_PATH.fullmatch(path):
                return original(path, data)
            value = data
            for name, index in _PATH_PART.findall(path):
                if name and isinstance(value, dict) and name in value:
                    value = value[name]
                elif index and isinstance(value, list) and int(index) < len(value):
                    value = value[int(index)]
                else:
                    return original(path, data)  # no such node: moto's error
            return value

        # Modules that import it later get the patched one; those that did already
        # hold the original under their own name.
        for module in [json_path, *list(sys.modules.values())]:
            if (
                getattr(module, "__name__", "").startswith("moto.stepfunctions.parser")
                and module.__dict__.get("extract_json") is original
            ):
                self._patch(module, "extract_json", lambda _: extract_json)

    def _patch_task_tokens(self) -> None:
        """A task token answers once, and ``SendTaskFailure`` keeps its cause."""
        from moto.stepfunctions.parser.api import TaskTimedOut
        from moto.stepfunctions.parser.models import StepFunctionsParserBackend
        from moto.stepfunctions.responses import StepFunctionResponse

        used: set[str] = set()
        lock = threading.Lock()

        def once(original: Any) -> Any:
            @functools.wraps(original)
            def wrapper(backend: Any, task_token: str, *args: Any, **kwargs: Any) -> Any:
                with lock:
                    if task_token in used:
                        # What Step Functions answers for a token already answered.
                        raise TaskTimedOut("Task Timed Out: 'Provided task does not exist anymore'")
                    used.add(task_token)
                try:
                    return original(backend, task_token, *args, **kwargs)
                except BaseException:
                    with lock:
                        used.discard(task_token)  # refused: it was not answered
                    raise

            return wrapper

        def failure_with_cause(original: Any) -> Any:
            @functools.wraps(original)
            def wrapper(response: Any) -> Any:
                response.stepfunction_backend.send_task_failure(
                    response._get_param("taskToken"),
                    error=response._get_param("error"),
                    cause=response._get_param("cause"),
                )
                from moto.core.responses import EmptyResult

                return EmptyResult()

            return wrapper

        self._patch(StepFunctionsParserBackend, "send_task_success", once)
        self._patch(StepFunctionsParserBackend, "send_task_failure", once)
        self._patch(StepFunctionResponse, "send_task_failure", failure_with_cause)

    def _abort_if_stuck(self, execution: Any) -> None:
        """End a stopped execution that moto leaves RUNNING (it waits for a task token)."""
        from moto.stepfunctions.parser.api import (
            ExecutionAbortedEventDetails,
            ExecutionStatus,
            HistoryEventType,
        )
        from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

        deadline = time.monotonic() + STOP_GRACE
        while time.monotonic() < deadline:
            if getattr(execution, "exec_status", None) != ExecutionStatus.RUNNING:
                return
            time.sleep(0.01)
        with self._ended_lock:
            if execution.exec_arn in self._ended:
                return
            self._ended.add(execution.exec_arn)
        env = execution.exec_worker.env if execution.exec_worker else None
        if env is not None:
            env.event_manager.add_event(
                context=env.event_history_context,
                event_type=HistoryEventType.ExecutionAborted,
                event_details=EventDetails(  # type: ignore[typeddict-item]
                    executionAbortedEventDetails=ExecutionAbortedEventDetails()
                ),
            )
        execution.stop_date = datetime.now(UTC)
        execution.exec_status = ExecutionStatus.ABORTED
        self._status_changed(execution, "ABORTED")

    def _status_changed(self, execution: Any, status: str) -> None:
        """Put the status change event of ``execution`` on moto's default bus."""
        if not self._emitting:
            return
        from moto.stepfunctions.parser.backend.execution import SyncExecution

        # Express workflows (and synchronous executions) emit no status events in AWS.
        if isinstance(execution, SyncExecution) or (
            getattr(execution.sm_type, "value", execution.sm_type) == "EXPRESS"
        ):
            return
        detail = status_detail(execution, status)
        self.put_event(
            execution.account_id,
            execution.region_name,
            source=SOURCE,
            detail_type=DETAIL_TYPE,
            detail=detail,
            resources=[execution.exec_arn],
        )

    # ------------------------------------------------------------------ EventBridge

    def put_event(
        self,
        account_id: str,
        region: str,
        *,
        source: str,
        detail_type: str,
        detail: dict[str, Any],
        resources: list[str] | None = None,
    ) -> None:
        """Put one event on moto's default bus (its rules' Lambda targets get it here)."""
        from moto.events.models import events_backends

        backend = events_backends[account_id][region]
        self._hold()
        try:
            backend.put_events(
                [
                    {
                        "Source": source,
                        "DetailType": detail_type,
                        "Detail": json.dumps(detail),
                        "Resources": resources or [],
                        "Time": _iso(datetime.now(UTC)),
                    }
                ]
            )
        except Exception:
            log.warning("could not put a %s event", detail_type, exc_info=True)
        finally:
            self._release()

    def _patch_events(self) -> None:
        from moto.events.models import EventTemplateParser, Rule
        from moto.utilities.arns import parse_arn

        fidelity = self

        def send_to_targets(original: Any) -> Any:
            @functools.wraps(original)
            def wrapper(rule: Any, event: Any, transform_input: bool = True) -> None:
                if rule.state != "ENABLED" or not rule.event_pattern.matches_event(event):
                    return
                others = []
                for target in rule.targets:
                    arn = parse_arn(target["Arn"])
                    if arn.service != "lambda":
                        others.append(target)
                        continue
                    payload: Any = {k: v for k, v in event.items() if k != "ingestion-time"}
                    if "Input" in target:
                        payload = json.loads(target["Input"])
                    elif "InputTransformer" in target:
                        transformer = target["InputTransformer"]
                        payload = EventTemplateParser.parse(
                            input_template=transformer.get("InputTemplate"),
                            input_paths_map=transformer.get("InputPathsMap", {}),
                            event=event,
                        )
                    fidelity._enqueue(arn.resource_id.split(":")[0], payload)
                if others:
                    rest = copy.copy(rule)
                    rest.targets = others
                    original(rest, event, transform_input)

            return wrapper

        self._patch(Rule, "send_to_targets", send_to_targets)

    def _enqueue(self, function: str, event: Any) -> None:
        self._hold()
        self._queue.put((function, copy.deepcopy(event)))

    def _deliver_loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            function, event = item
            try:
                if not self._stopping:
                    self._deliver(function, event)
            finally:
                self._release()

    def _deliver(self, function: str, event: Any) -> None:
        """Invoke ``function`` as Lambda does an asynchronous invocation: retried twice."""
        error = ""
        for attempt in range(ASYNC_RETRIES + 1):
            if attempt:
                time.sleep(RETRY_DELAYS[min(attempt - 1, len(RETRY_DELAYS) - 1)])
            if self._stopping:
                return
            try:
                self._invoke(function, event)
                return
            except Exception as exc:
                error = str(exc) or type(exc).__name__
                log.debug("%s failed on attempt %d: %s", function, attempt + 1, error)
        log.error(
            "event %s to function %s dropped after %d attempts: %s",
            event.get("id") if isinstance(event, dict) else "?",
            function,
            ASYNC_RETRIES + 1,
            error,
        )
        self.failed.append((function, event, error))
        queue = self.on_failure.get(function)
        if queue is not None:
            self._send_on_failure(queue, function, event, error)

    def _send_on_failure(self, queue_url: str, function: str, event: Any, error: str) -> None:
        """What Lambda sends to an ``OnFailure`` SQS destination: the request and why."""
        import boto3

        record = {
            "version": "1.0",
            "timestamp": datetime.now(UTC).isoformat(),
            "requestContext": {
                "functionArn": function,
                "condition": "RetriesExhausted",
                "approximateInvokeCount": ASYNC_RETRIES + 1,
            },
            "requestPayload": event,
            "responseContext": {"statusCode": 200, "functionError": "Unhandled"},
            "responsePayload": {"errorMessage": error},
        }
        try:
            boto3.client("sqs", region_name=self.region).send_message(
                QueueUrl=queue_url, MessageBody=json.dumps(record, default=str)
            )
        except Exception:  # pragma: no cover - the mock is gone
            log.exception("could not keep the failed event of %s", function)

    # ------------------------------------------------------------------ DynamoDB

    def _patch_dynamodb(self) -> None:
        self._undo.append(serialise_dynamodb(self.dynamodb_lock))


def serialise_dynamodb(lock: Any = None) -> Callable[[], None]:
    """Run moto's DynamoDB item operations one at a time (under ``lock``, a new RLock when
    none is given), as DynamoDB serialises conditional writes on an item; the reads too,
    because moto's item dictionaries cannot be read while another thread writes them; and
    each request whole, because moto turns the items a read returned into its answer
    after the operation, from the table's own objects, which an update changes in place
    (a query answered while an update ran failed with "dictionary changed size during
    iteration", a 500). ``TransactWriteItems`` keeps only the items it writes to undo a cancelled transaction
    (``_transact_write_items``). Returns the function that undoes it."""
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.responses import DynamoHandler

    guard = lock if lock is not None else threading.RLock()
    moto_transact = DynamoDBBackend.__dict__["transact_write_items"]
    DynamoDBBackend.transact_write_items = _transact_write_items  # type: ignore[method-assign,assignment]
    saved = {
        n: DynamoDBBackend.__dict__[n]
        for n in _DYNAMODB_OPERATIONS
        if n in DynamoDBBackend.__dict__
    }

    def serialised(original: Any) -> Any:
        @functools.wraps(original)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with guard:
                return original(*args, **kwargs)

        return wrapper

    for name, original in saved.items():
        setattr(DynamoDBBackend, name, serialised(original))
    moto_call_action = DynamoHandler.__dict__["call_action"]
    DynamoHandler.call_action = serialised(moto_call_action)  # type: ignore[method-assign]

    def undo() -> None:
        for name, original in saved.items():
            setattr(DynamoDBBackend, name, original)
        DynamoDBBackend.transact_write_items = moto_transact  # type: ignore[method-assign]
        DynamoHandler.call_action = moto_call_action  # type: ignore[method-assign]

    return undo


def _transact_write_items(backend: Any, transact_items: list[dict[str, Any]]) -> None:
    """moto's ``TransactWriteItems`` (same checks, same cancellation reasons, in order),
    undone item by item when cancelled: moto deep-copies every table a transaction names
    before applying it, which costs time and memory in proportion to the table (measured on
    a 5,000-item table: 500 ms and tens of MB per transaction, the copies kept alive; with
    this, well under a millisecond). Before each write the item it replaces is kept (a copy:
    moto updates items in place); a cancelled transaction puts those back, last first, and
    removes the stream records it added. Runs under the DynamoDB lock, so nothing reads the
    items or the stream in between."""
    from moto.dynamodb.comparisons import get_filter_expression
    from moto.dynamodb.exceptions import (
        ConditionalCheckFailed,
        MockValidationException,
        MultipleTransactionsException,
        TooManyTransactionsException,
        TransactionCanceledException,
        TransactWriteSingleOpException,
    )

    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    kept: list[tuple[Any, Any, Any, Any]] = []  # (table, hash, range, item before or None)
    stream_ends: dict[str, tuple[Any, int]] = {}  # table name → (shard, records before)
    targets: set[tuple[str, str]] = set()

    def keep(table_name: str, key: dict[str, Any]) -> None:
        table = backend.get_table(table_name)
        hash_value, range_value = backend.get_keys_value(table, key)
        before = table.get_item(hash_value, range_value)
        kept.append((table, hash_value, range_value, copy.deepcopy(before)))
        shard = table.stream_shard
        if shard is not None and table_name not in stream_ends:
            stream_ends[table_name] = (shard, len(shard.items))

    def put_back() -> None:
        for table, hash_value, range_value, before in reversed(kept):
            if range_value is None:
                if before is None:
                    table.items.pop(hash_value, None)
                else:
                    table.items[hash_value] = before
            elif before is None:
                table.items[hash_value].pop(range_value, None)
            else:
                table.items[hash_value][range_value] = before
        for shard, count in stream_ends.values():
            del shard.items[count:]

    errors: list[tuple[str | None, str | None, dict[str, Any] | None]] = []
    for item in transact_items:
        original_item: dict[str, Any] | None = None
        if len(item) > 1:
            put_back()
            raise TransactWriteSingleOpException
        try:
            op_type, op = next(iter(item.items()))
            if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
                raise ValueError("Unsupported transaction operation")
            table_name = op["TableName"]
            condition = op.get("ConditionExpression")
            names = op.get("ExpressionAttributeNames")
            values = op.get("ExpressionAttributeValues")
            if op_type == "Put":
                attrs = op["Item"]
                table = backend.get_table(table_name)
                key = {table.hash_key_attr: attrs[table.hash_key_attr]}
                if table.range_key_attr is not None:
                    key[table.range_key_attr] = attrs[table.range_key_attr]
            else:
                key = op["Key"]
            target = (str(table_name), str(dict(sorted(key.items()))))
            if target in targets:
                raise MultipleTransactionsException()
            targets.add(target)
            current = backend.get_item(table_name, key)
            check = get_filter_expression(condition, names, values)
            if condition is not None and not check.expr(current):
                if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                    original_item = current.to_json()["Attributes"]
                raise ConditionalCheckFailed(item=original_item)
            if op_type != "ConditionCheck":
                keep(table_name, key)
            common = {
                "condition_expression": condition,
                "expression_attribute_names": names,
                "expression_attribute_values": values,
            }
            if op_type == "Put":
                backend.put_item(table_name, op["Item"], **common)
            elif op_type == "Delete":
                backend.delete_item(table_name, key, **common)
            elif op_type == "Update":
                backend.update_item(
                    table_name, key, update_expression=op["UpdateExpression"], **common
                )
            errors.append((None, None, None))
        except (MultipleTransactionsException, MockValidationException):
            put_back()
            raise
        except ConditionalCheckFailed as e:
            errors.append(("ConditionalCheckFailed", str(e.message), original_item))
        except Exception as e:
            errors.append((type(e).__name__, str(e), original_item))
    if any(code is not None for code, _, _ in errors):
        put_back()
        raise TransactionCanceledException(errors)


# ---------------------------------------------------------------- nested executions

#: Seconds between two looks at the child execution a ``startExecution.sync`` task waits
#: for (moto looks every 0.5 s).
NESTED_POLL = 0.05


def nested_executions() -> Callable[[], None]:
    """``arn:aws:states:::states:startExecution.sync`` (and ``.sync:2``) as Step Functions
    runs them: a parent starts a child execution and waits for its end. moto's interpreter
    has the integration but skips the step that turns the task's parameters into API
    arguments (``StateMachineArn`` → ``stateMachineArn``), so every such task failed with
    ``States.Runtime`` (cause ``'StateMachineArn'``); its answers kept boto3's casing and
    dates; a child started without ``Name`` was named ``None`` (AWS names it with a UUID);
    and moto's ``DescribeExecution`` gives an output that is a string as bare text, which
    the integration then fails to read as JSON. Here the parameters are named as the API
    names them, a child without a name gets a UUID, the child's input and output are read
    as JSON from moto's own record of it, and the answers get Step Functions' casing
    (``ExecutionArn``, ``Output``, ``Status``…) with dates in epoch milliseconds: a
    ``.sync:2`` task's result is ``{"ExecutionArn", "Input", "Output", "Status", …}`` with
    ``Input``/``Output`` as JSON, and a child that does not succeed fails the task with
    ``States.TaskFailed`` whose cause is that description as JSON text (the child's
    ``Error`` and ``Cause`` in it). A parent stopped while it waits stops its child, as AWS
    does. The child is looked at every ``NESTED_POLL`` seconds. Returns the function that
    undoes it."""
    import uuid

    import boto3
    from botocore import xform_name
    from botocore.session import get_session
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_callback as callback_module,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_sfn as sfn_module,
    )

    task_class: Any = sfn_module.StateTaskServiceSfn
    model = get_session().get_service_model("stepfunctions")
    operations = {xform_name(name): name for name in model.operation_names}
    saved = {
        name: task_class.__dict__.get(name)
        for name in (
            "_normalise_parameters",
            "_normalise_response",
            "_build_sync_resolver",
            "_build_sync2_resolver",
            "_eval_sync",
        )
    }
    saved_delay = callback_module._DELAY_SECONDS_SYNC_CONDITION_CHECK
    saved_client_for = sfn_module.boto_client_for
    waiting = threading.local()

    class Client:
        """The Step Functions client the integration calls, as AWS answers."""

        def __init__(self, client: Any) -> None:
            self._client = client

        def __getattr__(self, name: str) -> Any:
            return getattr(self._client, name)

        def start_execution(self, **kwargs: Any) -> Any:
            if not kwargs.get("name"):
                kwargs["name"] = str(uuid.uuid4())
            return self._client.start_execution(**kwargs)

        def describe_execution(self, executionArn: str) -> Any:
            from moto.stepfunctions.responses import get_backend

            answer = self._client.describe_execution(executionArn=executionArn)
            _, _, _, region, account, *_ = executionArn.split(":")
            execution = get_backend(account, region).describe_execution(executionArn)
            data = execution.execution_input
            if not isinstance(data, str):
                answer["input"] = json.dumps(data)
            if "output" in answer:
                answer["output"] = json.dumps(execution.output)
            return answer

    def client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        client = saved_client_for(
            region=region, service=service, state_credentials=state_credentials
        )
        return Client(client) if service == "stepfunctions" else client

    def operation(task: Any, action: str | None) -> Any:
        name = operations.get(task._get_boto_service_action(action))
        return model.operation_model(name) if name else None

    def normalise_parameters(
        task: Any,
        parameters: dict[str, Any],
        boto_service_name: str | None = None,
        service_action_name: str | None = None,
    ) -> None:
        saved["_normalise_parameters"](task, parameters, boto_service_name, service_action_name)
        op = operation(task, service_action_name)
        if op is not None and op.input_shape is not None:
            task._to_boto_request(parameters, op.input_shape)

    def normalise_response(
        task: Any,
        response: Any,
        boto_service_name: str | None = None,
        service_action_name: str | None = None,
    ) -> None:
        op = operation(task, service_action_name)
        if not isinstance(response, dict) or op is None or op.output_shape is None:
            return
        response.pop("ResponseMetadata", None)
        task._from_boto_response(response, op.output_shape)
        for key, value in response.items():
            if isinstance(value, datetime):
                response[key] = _epoch_ms(value)

    def remembering(name: str) -> Callable[..., Any]:
        original = saved[name]

        def wrapper(task: Any, env: Any, *args: Any, **kwargs: Any) -> Any:
            submitted = env.stack[-1] if env.stack else None
            waiting.arn = submitted.get("ExecutionArn") if isinstance(submitted, dict) else None
            return original(task, env, *args, **kwargs)

        return wrapper

    base_eval_sync = task_class._eval_sync

    def eval_sync(task: Any, env: Any, *args: Any, **kwargs: Any) -> Any:
        result = base_eval_sync(task, env, *args, **kwargs)
        arn = getattr(waiting, "arn", None)
        waiting.arn = None
        if arn and not env.is_running():
            # The parent was stopped while it waited: its child is stopped too.
            try:
                region = arn.split(":")[3]
                sfn = boto3.client(
                    "stepfunctions",
                    region_name=region,
                    aws_access_key_id="testing",
                    aws_secret_access_key="testing",
                )
                if sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
                    sfn.stop_execution(executionArn=arn)
            except Exception:  # pragma: no cover - the mock is going away
                log.debug("could not stop child execution %s", arn, exc_info=True)
        return result

    task_class._normalise_parameters = normalise_parameters
    task_class._normalise_response = normalise_response
    task_class._build_sync_resolver = remembering("_build_sync_resolver")
    task_class._build_sync2_resolver = remembering("_build_sync2_resolver")
    task_class._eval_sync = eval_sync
    callback_module._DELAY_SECONDS_SYNC_CONDITION_CHECK = NESTED_POLL  # type: ignore[misc]
    sfn_module.boto_client_for = client_for

    def undo() -> None:
        for name, original in saved.items():
            if original is None:
                delattr(task_class, name)
            else:
                setattr(task_class, name, original)
        callback_module._DELAY_SECONDS_SYNC_CONDITION_CHECK = saved_delay  # type: ignore[misc]
        sfn_module.boto_client_for = saved_client_for

    return undo
