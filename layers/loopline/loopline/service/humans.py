"""People in the loop: human tasks, their links and decisions (docs/internals.md, "Human
tasks").

A human step (``approval``, ``human_task``, ``pause``) that starts records a **human
task** (``open_human_task``, called by the human function) with its Step Functions task
token. The token never leaves the server: no view, link, message or log line holds it.
Then the step's people are told: each email or webhook recipient gets a link of their own
(a random token of which only the hash is stored), a Slack channel gets a message with
buttons; the messages go through the outbox queue, after the human task is recorded, and
are retried there without holding up the step.

Every decision — through the API, a link, Slack or ``loopline run`` — goes through
``_decide``: it checks the action, the assignment and the data, records the decision with
one conditional write (the human task must still be ``open``, of the same generation and
not past its deadline), appends ``human.decided``, and only then tells Step Functions. Of
any number of concurrent decisions exactly one write succeeds; the others are ``409``
naming it. Telling Step Functions is retried (then handed to the outbox queue) until it
succeeds, and the decision's ``delivery`` says where it is meanwhile; since the decision
is recorded once, Step Functions is told once even where a used token is accepted.

Escalation (``on_timeout: escalate``) keeps the human task: the escalation state's
function call gives it a new token, the ``escalate_to`` assignee and deadline, and a new
generation, which revokes every link already sent (they answer ``410``); fresh links go to
``escalate_to.notify`` (else the step's ``notify``) and ``human.escalated`` is appended.
A human task whose deadline passed is ``expired`` (with ``human.expired``) when the task
goes on past it or ends; one still open when the task ends is ``closed``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from loopline import aws, ids, store
from loopline.service import forms
from loopline.service.errors import (
    Conflict,
    FieldError,
    Forbidden,
    Gone,
    Invalid,
    NotFound,
    ServiceError,
    bad_cursor,
)
from loopline.service.keys import Caller
from loopline.settings import settings

log = logging.getLogger("loopline.humans")

OPEN, DECIDED, EXPIRED, CLOSED = "open", "decided", "expired", "closed"
STATUSES = (OPEN, DECIDED, EXPIRED, CLOSED)
#: What each kind of human step may be answered with.
ACTIONS = {
    "approval": ("approve", "reject"),
    "human_task": ("complete", "reject"),
    "pause": ("complete",),
}
#: Executions that are not tasks (``loopline run``) keep their human tasks here.
RUN_TENANT = "local"
#: Step Functions' answers to a token that no longer waits (answered, timed out, ended).
_TOKEN_GONE = frozenset({"TaskTimedOut", "InvalidToken", "TaskDoesNotExist"})
#: Immediate attempts at telling Step Functions before the outbox queue takes over.
_SEND_ATTEMPTS = 3
#: Seconds a replayed Slack request is remembered (Slack's window is 5 minutes).
_SLACK_REPLAY_SECONDS = 600


@dataclass(frozen=True)
class Actor:
    """Who decides: a key's holder, a link's recipient, a Slack user or the local user."""

    tenant: str
    user: str | None
    roles: tuple[str, ...] = ()
    #: May decide whatever the assignee (a link's recipient, a Slack channel, the CLI).
    admin: bool = False

    @classmethod
    def of_caller(cls, caller: Caller) -> Actor:
        return cls(caller.tenant, caller.user, tuple(caller.roles), "admin" in caller.roles)


@dataclass
class LinkView:
    """What an approval link shows: the human task, its recipient and the task."""

    human: dict[str, Any]
    recipient: str
    task: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- views


def view(record: dict[str, Any], now: str | None = None) -> dict[str, Any]:
    """The human task as the API shows it (never its task token). An ``open`` one whose
    deadline has passed shows as ``expired``."""
    status = str(record.get("status") or OPEN)
    if status == OPEN and str(record.get("due_at") or "") <= (now or ids.now()):
        status = EXPIRED
    assignee = record.get("assignee")
    if isinstance(assignee, dict):
        assignee = {k: v for k, v in assignee.items() if k in ("role", "user") and v}
    return {
        "id": record["id"],
        "task": record.get("task"),
        "workflow": record.get("workflow"),
        "step": record.get("step"),
        "kind": record.get("kind"),
        "status": status,
        "instruction": record.get("instruction"),
        "context": record.get("context") or {},
        "form_schema": record.get("form_schema"),
        "rollback_to": list(record.get("rollback_to") or []),
        "assignee": assignee or None,
        "escalated": bool(record.get("escalated")),
        "created_at": record.get("created_at"),
        "expires_at": record.get("due_at"),
        "decision": record.get("decision"),
        "links": {
            "self": f"/v1/human-tasks/{record['id']}",
            "task": f"/v1/tasks/{record.get('task')}",
        },
    }


def waiting_of(task_id: str) -> list[dict[str, Any]]:
    """The task view's ``waiting``: its open human tasks."""
    now = ids.now()
    return [
        {
            "human_task": r["id"],
            "step": r.get("step"),
            "kind": r.get("kind"),
            "expires_at": r.get("due_at"),
        }
        for r in store.list_task_human_tasks(task_id)
        if r.get("status") == OPEN and str(r.get("due_at") or "") > now
    ]


def _record_of(tenant: str, human_task_id: str) -> dict[str, Any]:
    record = store.get_human_task(human_task_id) if human_task_id.startswith("hum_") else None
    if record is None or record.get("tenant") != tenant:
        raise NotFound(f"there is no human task {human_task_id}")
    return record


def get_human_task(caller: Caller, human_task_id: str) -> dict[str, Any]:
    return view(_record_of(caller.tenant, human_task_id))


def list_human_tasks(
    caller: Caller,
    *,
    status: str = OPEN,
    role: str | None = None,
    user: str | None = None,
    task: str | None = None,
    limit: int = 20,
    cursor: str | None = None,
) -> dict[str, Any]:
    """The inbox: ``{items, next_cursor}``, newest first. With neither ``role`` nor
    ``user``, the caller's own: assigned to its user, to one of its roles, or to nobody
    (anyone may decide those); an ``admin`` key sees every one."""
    roles: tuple[str, ...] = (role,) if role else ()
    users: tuple[str, ...] = (user,) if user else ()
    unassigned = False
    if not role and not user and "admin" not in caller.roles:
        roles, users, unassigned = tuple(caller.roles), (caller.user,) if caller.user else (), True
    # An open human task past its deadline is expired: the store lists it as open until
    # the task goes on, so the two lists are corrected here.
    query: dict[str, Any] = {
        "task": task,
        "roles": roles,
        "users": users,
        "unassigned": unassigned,
    }
    try:
        if status != EXPIRED:
            records, next_cursor = store.list_human_tasks(
                caller.tenant, status=status, limit=limit, cursor=cursor, **query
            )
        else:
            # Past their deadline but not yet marked (the store has them as open), then
            # those marked; the cursor follows the marked ones.
            due = [
                r
                for r in store.list_human_tasks(caller.tenant, status=OPEN, limit=limit, **query)[0]
                if view(r)["status"] == EXPIRED
            ]
            stored, next_cursor = store.list_human_tasks(
                caller.tenant, status=EXPIRED, limit=limit, cursor=cursor, **query
            )
            records = sorted(due + stored, key=lambda r: str(r["id"]), reverse=True)[:limit]
    except store.InvalidCursor:
        raise bad_cursor(cursor, filters=False) from None
    now = ids.now()
    items = [view(r, now) for r in records]
    if status == OPEN:
        items = [v for v in items if v["status"] == OPEN]
    return {"items": items, "next_cursor": next_cursor}


# --------------------------------------------------------------------------- opening


def _tenant_of(task_id: str) -> tuple[str, dict[str, Any] | None]:
    task = store.get_task_record(task_id) if task_id else None
    return (str(task["tenant"]), task) if task is not None else (RUN_TENANT, None)


def _due(timeout: Any, start: str) -> str:
    seconds = timeout if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) else 0
    seconds = seconds or 7 * 86400
    return ids.format_time(ids.parse_time(start) + timedelta(seconds=seconds))


def _event(
    task: dict[str, Any] | None,
    type_: str,
    step: str,
    data: dict[str, Any],
    at: str | None = None,
) -> None:
    """Append an event to the task (nothing for an execution that is not a task, or a
    task that has ended)."""
    if task is None:
        return
    store.update_task(
        str(task["id"]),
        expect_status={"QUEUED", "RUNNING", "WAITING", "PAUSED"},
        event=store.NewEvent(type_, step, data, at),
    )


def _summary(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "human_task": record["id"],
        "kind": record.get("kind"),
        "assignee": view(record)["assignee"],
        "expires_at": record.get("due_at"),
    }


def open_human_task(wait: dict[str, Any]) -> str:
    """Record the human task of a human step that started (or, for its escalation state,
    escalate the one it has), tell its people, and return its id.

    ``wait``: ``token, execution, workflow, step, kind, instruction, context,
    form_schema, rollback_to, assignee, notify, timeout, escalated`` (rendered values)."""
    task_id = str(wait.get("execution") or "").rsplit(":", 1)[-1]
    tenant, task = _tenant_of(task_id)
    step = str(wait["step"])
    if wait.get("escalated"):
        for record in reversed(store.list_task_human_tasks(task_id)):
            if record.get("step") == step and record.get("status") in (OPEN, EXPIRED):
                return _escalate(record, wait, task)
    now = ids.now()
    record = {
        "id": ids.new_id("human_task"),
        "tenant": tenant,
        "task": task_id,
        "execution": wait.get("execution"),
        "workflow": (task or {}).get("workflow") or wait.get("workflow"),
        "step": step,
        "kind": wait.get("kind") or "approval",
        "status": OPEN,
        "instruction": wait.get("instruction"),
        "context": wait.get("context") or {},
        "form_schema": wait.get("form_schema"),
        "rollback_to": list(wait.get("rollback_to") or []),
        "assignee": wait.get("assignee") or None,
        "notify": list(wait.get("notify") or []),
        "escalated": bool(wait.get("escalated")),
        "created_at": now,
        "due_at": _due(wait.get("timeout"), now),
        "timeout": wait.get("timeout"),
        "task_token": str(wait["token"]),
        "generation": 1,
    }
    store.put_human_task(record)
    if task is not None:
        # The task waits from now (before anyone is told, so a quick decision finds it so).
        store.update_task(
            task_id,
            set={"status": "WAITING"},
            expect_status={"RUNNING"},
        )
        _event(task, "human.waiting", step, _summary(record), now)
    _notify(record, list(record["notify"]), now)
    return str(record["id"])


def _escalate(record: dict[str, Any], wait: dict[str, Any], task: dict[str, Any] | None) -> str:
    """Reassign ``record`` to the escalation's assignee with the new token and deadline;
    a new generation revokes the links already sent."""
    now = ids.now()
    assignee = wait.get("assignee") if isinstance(wait.get("assignee"), dict) else {}
    targets = list((assignee or {}).get("notify") or []) or list(record.get("notify") or [])
    generation = int(record.get("generation") or 1) + 1
    changes = {
        "status": OPEN,
        "task_token": str(wait["token"]),
        "assignee": {k: v for k, v in (assignee or {}).items() if k in ("role", "user")} or None,
        "escalated": True,
        "due_at": _due(wait.get("timeout"), now),
        "generation": generation,
    }
    if not store.update_human_task(
        str(record["tenant"]),
        str(record["id"]),
        changes,
        expect_status=str(record.get("status")),
        expect_generation=int(record.get("generation") or 1),
    ):
        raise RuntimeError(f"human task {record['id']} changed while being escalated")
    record = {**record, **changes}
    _event(
        task,
        "human.escalated",
        str(record["step"]),
        {**_summary(record), "reason": "timeout"},
        now,
    )
    _notify(record, targets, now)
    return str(record["id"])


# --------------------------------------------------------------------------- telling people


def _link_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _new_link(record: dict[str, Any], recipient: str, channel: str) -> tuple[str, str]:
    """A fresh link for ``recipient``: ``(url, token hash)``; only the hash is stored."""
    token = secrets.token_urlsafe(32)  # 256 bits
    digest = _link_hash(token)
    store.put_link(
        digest,
        {
            "human_task": record["id"],
            "tenant": record["tenant"],
            "recipient": recipient,
            "channel": channel,
            "generation": record["generation"],
            "created_at": ids.now(),
            "due_at": record["due_at"],
            "status": "active",
        },
    )
    base = (settings().public_url or "").rstrip("/")
    return f"{base}/a/{token}", digest


def _notify(record: dict[str, Any], targets: list[Any], at: str) -> None:
    """Record one notification per target and hand them to the outbox queue (a webhook
    target: the webhook queue, as the event of ``at``). Never fails the step: a problem
    is logged and left on the notification."""
    messages: list[dict[str, Any]] = []
    for target in targets:
        if not isinstance(target, dict):
            continue
        try:
            note: dict[str, Any] = {
                "id": ids.new_id("notification"),
                "created_at": ids.now(),
                "attempts": 0,
                "status": "pending",
                "generation": record["generation"],
            }
            message: dict[str, Any] = {"human_task": record["id"], "notification": note["id"]}
            if target.get("email"):
                url, digest = _new_link(record, str(target["email"]), "email")
                note.update(channel="email", to=str(target["email"]), link_hash=digest)
                message.update(kind="email", to=note["to"], link=url)
            elif target.get("slack"):
                note.update(channel="slack", to=str(target["slack"]))
                message.update(kind="slack", channel=note["to"])
            elif target.get("webhook"):
                from loopline.service import webhooks

                url, digest = _new_link(record, str(target["webhook"]), "webhook")
                note.update(channel="webhook", to=str(target["webhook"]), link_hash=digest)
                store.put_notification(str(record["id"]), note)
                # A webhook delivery of its own: recorded, queued, retried and logged
                # (GET /v1/webhook-deliveries); the notification only points at it.
                kind = (
                    "human.escalated" if int(record.get("generation") or 1) > 1 else "human.waiting"
                )
                delivery = webhooks.notify(record, note["to"], url, kind, at)
                store.update_notification(
                    str(record["id"]),
                    str(note["id"]),
                    {"status": "queued" if delivery else "skipped", "delivery": delivery},
                )
                continue
            else:
                continue
            store.put_notification(str(record["id"]), note)
            messages.append(message)
        except Exception:
            log.exception("could not record a notification of human task %s", record["id"])
    if messages:
        _enqueue(messages)


def _enqueue(messages: list[dict[str, Any]]) -> None:
    """Hand messages to the outbox queue; without one (a local stack with no template),
    deliver them here, once."""
    if settings().outbox_queue:
        from loopline.notify import outbox

        try:
            outbox.send(messages)
            return
        except outbox.OutboxError as exc:
            # The refused ones are delivered here, once (the others are queued).
            messages = [messages[i] for i in exc.failed]
            log.warning("could not queue %d outbox messages; delivering them now", len(messages))
        except Exception:
            log.exception("could not queue %d outbox messages; delivering them now", len(messages))
    for message in messages:
        try:
            deliver(message)
        except Exception:
            log.warning("could not deliver a %s message", message.get("kind"), exc_info=True)


# --------------------------------------------------------------------------- deciding


def _allowed(actor: Actor, record: dict[str, Any]) -> bool:
    if actor.admin or "admin" in actor.roles:
        return True
    assignee = record.get("assignee") if isinstance(record.get("assignee"), dict) else {}
    role, user = (assignee or {}).get("role"), (assignee or {}).get("user")
    if not role and not user:
        return True
    return bool((user and actor.user == user) or (role and role in actor.roles))


def _who(assignee: Any) -> str:
    if not isinstance(assignee, dict):
        return "its assignee"
    parts = [f"user {assignee['user']}" if assignee.get("user") else ""]
    parts.append(f"role {assignee['role']}" if assignee.get("role") else "")
    return " or ".join(p for p in parts if p) or "its assignee"


def _check(
    record: dict[str, Any],
    action: str,
    actor: Actor,
    rollback_to: str | None,
    data: Any,
) -> Any:
    """Raise what the decision breaks; return the data to record."""
    kind = str(record.get("kind"))
    allowed = ACTIONS.get(kind, ())
    if action not in allowed:
        raise Invalid(
            f"a {kind} step is answered with {' or '.join(allowed)}, not {action}",
            [FieldError("action", "enum", f"must be one of {', '.join(allowed)}", action)],
        )
    if not _allowed(actor, record):
        raise Forbidden(
            f"human task {record['id']} is assigned to {_who(record.get('assignee'))}: "
            "only they (or an admin) may decide it"
        )
    if rollback_to is not None:
        targets = list(record.get("rollback_to") or [])
        if action != "reject" or rollback_to not in targets:
            shown = ", ".join(targets) or "none"
            raise Invalid(
                f"rollback_to {rollback_to!r} is not one of the step's targets ({shown})",
                [
                    FieldError(
                        "rollback_to",
                        "enum",
                        f"must be one of the step's rollback targets ({shown})",
                        rollback_to,
                    )
                ],
            )
    if action == "complete" and kind == "human_task":
        if data is None:
            data = {}
        schema = record.get("form_schema")
        if schema:
            problems = forms.violations(schema, data)
            if problems:
                count = len(problems)
                raise Invalid(
                    f"the form data has {count} problem{'s' if count != 1 else ''}; "
                    "the task keeps waiting",
                    problems,
                )
        return data
    return None


def _refusal(record: dict[str, Any], now: str) -> ServiceError:
    """Why ``record`` can no longer be decided."""
    decision = record.get("decision")
    if record.get("status") == DECIDED and isinstance(decision, dict):
        err = Conflict(
            f"human task {record['id']} was already decided: {decision.get('action')} by "
            f"{decision.get('by') or 'someone'} at {decision.get('at')} (via "
            f"{decision.get('via')})",
            [
                FieldError(
                    "decision", "once", "a human task is decided once", decision.get("action")
                )
            ],
        )
        err.decision = decision  # type: ignore[attr-defined]
        return err
    if record.get("status") == OPEN and str(record.get("due_at") or "") > now:
        return Conflict(
            f"human task {record['id']} is being decided by another request",
            [FieldError("decision", "once", "a human task is decided once")],
        )
    if record.get("status") == CLOSED:
        # No longer open (its task ended), and not expired: 409 (its links answer 410).
        return Conflict(
            f"human task {record['id']} was closed: its task ended before a decision",
            [FieldError("status", "open", "only an open human task can be decided", CLOSED)],
        )
    return Gone(f"human task {record['id']} expired at {record.get('due_at')}")


def _decide(
    record: dict[str, Any],
    action: str,
    *,
    actor: Actor,
    by: str | None,
    via: str,
    comment: str | None,
    rollback_to: str | None,
    data: Any,
    generation: int | None = None,
) -> dict[str, Any]:
    """The one way a human task is decided (docstring of the module)."""
    now = ids.now()
    if record.get("status") != OPEN or str(record.get("due_at") or "") <= now:
        raise _refusal(_expire_if_due(record, now), now)
    if generation is not None and int(record.get("generation") or 1) != generation:
        raise Gone("this link was replaced when the human task was escalated")
    data = _check(record, action, actor, rollback_to, data)
    if comment is not None and not isinstance(comment, str):
        raise Invalid("comment must be text", [FieldError("comment", "type", "must be text")])
    decision = {
        "action": action,
        "by": by,
        "at": now,
        "comment": comment or None,
        "via": via,
        "rollback_to": rollback_to,
        "data": data,
        "delivery": "pending",
    }
    won = store.update_human_task(
        str(record["tenant"]),
        str(record["id"]),
        {"status": DECIDED, "decision": decision},
        expect_status=OPEN,
        expect_generation=int(record.get("generation") or 1),
        due_after=now,
    )
    if not won:
        latest = store.get_human_task(str(record["id"])) or record
        raise _refusal(_expire_if_due(latest, ids.now()), now)
    record = {**record, "status": DECIDED, "decision": decision}
    task_id = str(record["task"])
    _, task = _tenant_of(task_id) if record["tenant"] != RUN_TENANT else (None, None)
    _event(
        task,
        "human.decided",
        str(record["step"]),
        {
            "human_task": record["id"],
            "action": action,
            "by": by,
            "via": via,
            "comment": decision["comment"],
            "rollback_to": rollback_to,
        },
    )
    if task is not None:
        # Before Step Functions hears of it: the execution's end (which closes the runs
        # still open from the history) can only come after.
        _close_run(task_id, str(record["step"]), decision)
        _resume_if_none_open(task_id)
    _tell_step_functions(record)
    _update_slack_messages(record)
    return view(store.get_human_task(str(record["id"])) or record)


def _rejection(d: dict[str, Any], step: Any) -> str:
    """The cause of a rejection: who (when known), where, the rollback, the comment."""
    who = f" by {d['by']}" if d.get("by") else ""
    target = d.get("rollback_to")
    back = f", rolling back to {target}" if target else ""
    said = f": {d['comment']}" if d.get("comment") else ""
    return f"rejected{who} at step {step}{back}{said}"


def _answer(record: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """``("success", {output})`` or ``("failure", {error, cause})`` for the decision."""
    d = record["decision"]
    kind, step = record.get("kind"), record.get("step")
    if d["action"] == "approve":
        output = {"approved": True, "by": d.get("by"), "comment": d.get("comment"), "at": d["at"]}
        return "success", {"output": output}
    if d["action"] == "complete":
        return "success", {"output": d.get("data") if kind == "human_task" else {}}
    target = d.get("rollback_to")
    error = f"Loopline.Rollback.{target}" if target else "Loopline.Rejected"
    return "failure", {"error": error, "cause": _rejection(d, step)}


def _send(record: dict[str, Any]) -> str:
    """Tell Step Functions the decision once: ``sent``, ``refused`` (the token no longer
    waits), or raise (to be retried)."""
    from botocore.exceptions import ClientError

    outcome, answer = _answer(record)
    sfn = aws.client("stepfunctions")
    token = str(record["task_token"])
    try:
        if outcome == "success":
            sfn.send_task_success(taskToken=token, output=json.dumps(answer, ensure_ascii=False))
        else:
            sfn.send_task_failure(
                taskToken=token, error=answer["error"], cause=answer["cause"][:32768]
            )
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in _TOKEN_GONE:
            log.warning("the decision of human task %s was refused: %s", record["id"], code)
            return "refused"
        raise
    return "sent"


def _set_delivery(record: dict[str, Any], delivery: str, error: str | None = None) -> None:
    decision = {**record["decision"], "delivery": delivery}
    if error:
        decision["delivery_error"] = error
    else:
        decision.pop("delivery_error", None)
    store.update_human_task(str(record["tenant"]), str(record["id"]), {"decision": decision})
    record["decision"] = decision


def _tell_step_functions(record: dict[str, Any]) -> None:
    """Send the recorded decision, retrying; after a few failures the outbox queue
    retries it (``delivery: retrying`` meanwhile)."""
    error = ""
    for attempt in range(_SEND_ATTEMPTS):
        try:
            _set_delivery(record, _send(record))
            return
        except Exception as exc:  # throttled, unavailable: try again
            error = _short(exc)
            log.warning("telling Step Functions the decision of %s failed: %s", record["id"], error)
            time.sleep(0.2 * 2**attempt)
    _set_delivery(record, "retrying", error)
    _enqueue_decision(record)


def _enqueue_decision(record: dict[str, Any]) -> None:
    if not settings().outbox_queue:
        return  # nothing else can retry it: the record says retrying, the log why
    from loopline.notify import outbox

    outbox.send([{"kind": "decision", "human_task": record["id"]}])


def _short(exc: Exception) -> str:
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return f"{err.get('Code')}: {err.get('Message')}"
    return str(exc) or type(exc).__name__


def _close_run(task_id: str, step: str, decision: dict[str, Any]) -> None:
    """Close the step's open run with the decision's outcome (``step.succeeded`` or
    ``step.failed``), once: each write is conditional on the status it read (the human
    function may be marking it ``WAITING`` at the same moment)."""
    if decision["action"] == "reject":
        target = decision.get("rollback_to")
        error = f"Loopline.Rollback.{target}" if target else "Loopline.Rejected"
        fields: dict[str, Any] = {
            "status": "FAILED",
            "error": error,
            "cause": _rejection(decision, step),
        }
    else:
        fields = {"status": "SUCCEEDED"}
    try:
        for _ in range(3):
            runs = [
                r
                for r in store.list_step_runs(task_id, step)
                if r.get("status") in ("RUNNING", "WAITING")
            ]
            if not runs:
                return
            run = runs[-1]
            if store.update_step_run(
                task_id,
                step,
                str(run["run_id"]),
                {**fields, "finished_at": ids.now()},
                expect_status=str(run["status"]),
            ):
                attempt = int(run.get("attempt") or 0)
                data = {"attempt": attempt}
                if fields["status"] == "FAILED":
                    data.update(error=fields["error"], cause=fields["cause"])
                type_ = "step.failed" if fields["status"] == "FAILED" else "step.succeeded"
                store.update_task(
                    task_id,
                    expect_status={"RUNNING", "WAITING", "PAUSED", "QUEUED"},
                    event=store.NewEvent(type_, step, data),
                )
                return
    except Exception:
        log.exception("could not close the run of step %s of task %s", step, task_id)


def _resume_if_none_open(task_id: str) -> None:
    now = ids.now()
    still = [
        r
        for r in store.list_task_human_tasks(task_id)
        if r.get("status") == OPEN and str(r.get("due_at") or "") > now
    ]
    if not still:
        store.update_task(task_id, set={"status": "RUNNING"}, expect_status={"WAITING"})


def decide(
    human_task_id: str,
    action: str,
    *,
    actor: Actor,
    via: str,
    comment: str | None = None,
    rollback_to: str | None = None,
    data: Any = None,
) -> dict[str, Any]:
    """Decide a human task as ``actor`` (``by`` is its user); the view with ``decision``.

    Raise ``NotFound`` (not the actor's tenant's), ``Forbidden`` (not the assignee),
    ``Conflict`` (decided: names the decision; or closed), ``Gone`` (expired),
    ``Invalid`` (a wrong action, rollback target or form data: every violation)."""
    record = _record_of(actor.tenant, human_task_id)
    return _decide(
        record,
        action,
        actor=actor,
        by=actor.user,
        via=via,
        comment=comment,
        rollback_to=rollback_to,
        data=data,
    )


# --------------------------------------------------------------------------- links


def _link(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    """``(link, human task, hash)`` of a link token; ``Gone`` when unknown, revoked or
    expired; ``Conflict`` (naming the decision) when used."""
    if not isinstance(token, str) or not 16 <= len(token) <= 128:
        raise Gone("this link is not valid (or no longer is)")
    digest = _link_hash(token)
    link = store.get_link(digest)
    record = store.get_human_task(str(link["human_task"])) if link is not None else None
    if link is None or record is None:
        raise Gone("this link is not valid (or no longer is)")
    if link.get("status") == "used":
        raise (
            _refusal(record, ids.now())
            if record.get("status") == DECIDED
            else Gone("this link was already used")
        )
    if link.get("status") != "active" or int(link.get("generation") or 0) != int(
        record.get("generation") or 1
    ):
        raise Gone("this link was replaced: the human task was escalated to someone else")
    if record.get("status") == DECIDED:
        raise _refusal(record, ids.now())
    now = ids.now()
    if record.get("status") != OPEN or str(record.get("due_at") or "") <= now:
        raise Gone(f"this link expired at {record.get('due_at')}")
    return link, record, digest


def link_page(token: str) -> LinkView:
    """What the link of ``token`` shows; changes nothing (mail scanners follow links)."""
    link, record, _ = _link(token)
    task = store.get_task_record(str(record["task"])) if record["tenant"] != RUN_TENANT else None
    return LinkView(
        human=view(record),
        recipient=str(link.get("recipient") or ""),
        task={
            "id": record.get("task"),
            "workflow": record.get("workflow"),
            "status": (task or {}).get("status"),
        },
    )


def decide_by_link(
    token: str,
    action: str,
    *,
    comment: str | None = None,
    rollback_to: str | None = None,
    data: Any = None,
) -> dict[str, Any]:
    """Decide through an approval link, as its recipient; the link is used once."""
    link, record, digest = _link(token)
    actor = Actor(str(record["tenant"]), str(link.get("recipient")), admin=True)
    # Checked before the link is spent, so invalid data leaves it usable.
    _check(record, action, actor, rollback_to, data)
    if not store.use_link(digest, ids.now()):
        latest = store.get_human_task(str(record["id"])) or record
        raise _refusal(latest, ids.now())
    try:
        return _decide(
            record,
            action,
            actor=actor,
            by=actor.user,
            via="link",
            comment=comment,
            rollback_to=rollback_to,
            data=data,
            generation=int(link.get("generation") or 0),
        )
    except (Gone, Invalid, Forbidden):
        store.release_link(digest)
        raise


# --------------------------------------------------------------------------- Slack


def slack_decide(
    human_task_id: str, action: str, *, slack_user: str, team: str | None = None
) -> dict[str, Any]:
    """Decide through a Slack button, as ``slack:<user>`` (the workflow chose the channel,
    so its members may decide)."""
    record = store.get_human_task(human_task_id) if human_task_id.startswith("hum_") else None
    if record is None:
        raise NotFound(f"there is no human task {human_task_id}")
    channels = [n for n in store.list_notifications(human_task_id) if n.get("channel") == "slack"]
    if not channels:
        raise NotFound(f"human task {human_task_id} was not sent to Slack")
    by = f"slack:{slack_user}"
    actor = Actor(str(record["tenant"]), by, admin=True)
    return _decide(
        record,
        action,
        actor=actor,
        by=by,
        via="slack",
        comment=None,
        rollback_to=None,
        data=None,
    )


def claim_slack_request(signature: str, timestamp: str) -> bool:
    """True the first time a signed Slack request is seen; False for a replay."""
    return store.claim_once(
        "slack", f"{timestamp}:{signature}", now=ids.now(), ttl_seconds=_SLACK_REPLAY_SECONDS
    )


def _update_slack_messages(record: dict[str, Any]) -> None:
    try:
        notes = [
            n
            for n in store.list_notifications(str(record["id"]))
            if n.get("channel") == "slack" and n.get("slack_ts")
        ]
    except Exception:
        log.exception("could not read the Slack messages of %s", record["id"])
        return
    if notes:
        _enqueue(
            [
                {"kind": "slack_update", "human_task": record["id"], "notification": n["id"]}
                for n in notes
            ]
        )


# --------------------------------------------------------------------------- ending


def _expire_if_due(record: dict[str, Any], now: str) -> dict[str, Any]:
    """Mark an open human task past its deadline ``expired`` (``human.expired``), once."""
    if record.get("status") != OPEN or str(record.get("due_at") or "") > now:
        return record
    if store.update_human_task(
        str(record["tenant"]),
        str(record["id"]),
        {"status": EXPIRED},
        expect_status=OPEN,
        expect_generation=int(record.get("generation") or 1),
    ):
        if record["tenant"] != RUN_TENANT:
            _, task = _tenant_of(str(record["task"]))
            _event(task, "human.expired", str(record["step"]), _summary(record))
        return {**record, "status": EXPIRED}
    return store.get_human_task(str(record["id"])) or record


def expire_overdue(task_id: str) -> bool:
    """Expire the task's human tasks past their deadline; True when one is still open."""
    now = ids.now()
    still_open = False
    for record in store.list_task_human_tasks(task_id):
        if record.get("status") != OPEN:
            continue
        if _expire_if_due(record, now).get("status") == OPEN:
            still_open = True
    return still_open


def close_for_task(task_id: str) -> None:
    """The task ended: its human tasks past their deadline are ``expired``, the others
    still open ``closed`` (their links answer ``410``)."""
    now = ids.now()
    for record in store.list_task_human_tasks(task_id):
        if record.get("status") != OPEN:
            continue
        record = _expire_if_due(record, now)
        if record.get("status") == OPEN:
            store.update_human_task(
                str(record["tenant"]),
                str(record["id"]),
                {"status": CLOSED},
                expect_status=OPEN,
            )


# --------------------------------------------------------------------------- the outbox


def deliver(message: dict[str, Any]) -> None:
    """Send one outbox message (email, Slack post or update, a decision to Step
    Functions); raise when it must be retried. A message whose human task no longer wants
    it (decided, escalated since) is dropped, with its notification saying so."""
    kind = message.get("kind")
    human_id = str(message.get("human_task") or "")
    record = store.get_human_task(human_id)
    if record is None:
        log.warning("outbox message for unknown human task %s dropped", human_id)
        return
    if kind == "decision":
        if (record.get("decision") or {}).get("delivery") in ("retrying", "pending"):
            _set_delivery(record, _send(record))
        return
    note_id = str(message.get("notification") or "")
    note = store.get_notification(human_id, note_id)
    if note is None:
        log.warning("outbox message for unknown notification %s dropped", note_id)
        return
    attempts = int(note.get("attempts") or 0) + 1
    if kind in ("email", "slack") and (
        record.get("status") != OPEN
        or int(note.get("generation") or 0) != int(record.get("generation") or 1)
    ):
        store.update_notification(human_id, note_id, {"status": "skipped"})
        return
    try:
        if kind == "email":
            from loopline.notify import email

            sender = settings().sender_email or "loopline@example.com"
            msg = email.compose(
                view(record), link=str(message["link"]), sender=sender, recipient=note["to"]
            )
            email.send(msg)
            store.update_notification(
                human_id, note_id, {"status": "sent", "attempts": attempts, "sent_at": ids.now()}
            )
        elif kind == "slack":
            from loopline.notify import slack

            text, blocks = slack.blocks(view(record))
            channel_id, ts = slack.post(str(message.get("channel") or note["to"]), text, blocks)
            store.update_notification(
                human_id,
                note_id,
                {
                    "status": "sent",
                    "attempts": attempts,
                    "sent_at": ids.now(),
                    "slack_channel": channel_id,
                    "slack_ts": ts,
                },
            )
            if record.get("status") != OPEN:  # decided while the message was on its way
                _update_slack_messages(record)
        elif kind == "slack_update":
            from loopline.notify import slack

            if note.get("slack_ts"):
                text, blocks = slack.outcome_blocks(view(record))
                slack.update(str(note["slack_channel"]), str(note["slack_ts"]), text, blocks)
        else:
            log.warning("outbox message of unknown kind %r dropped", kind)
    except Exception as exc:
        from loopline.notify import NotifyError

        permanent = isinstance(exc, NotifyError) and exc.permanent
        store.update_notification(
            human_id,
            note_id,
            {
                "status": "failed" if permanent else "retrying",
                "attempts": attempts,
                "error": _short(exc),
            },
        )
        if permanent:
            # Sending again cannot help (an unknown channel, a refused address): the
            # notification says why; the human task can still be decided otherwise.
            log.warning("a %s notification of %s failed for good: %s", kind, human_id, exc)
            return
        raise
