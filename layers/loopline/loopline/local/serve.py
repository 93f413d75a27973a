"""``loopline serve``: the local stack from template.yaml, with its REST API on 127.0.0.1.

The same mechanism as ``loopline run`` (``LocalStack`` provisioned in a ``LocalExecutor``,
``loopline.local.fidelity`` for what moto lacks), plus the template's API served by
``loopline.local.apigateway`` through the real authorizer and API function, API keys
recorded in the table, and an outbox where the messages SES was asked to send are written
as ``.eml`` files.
"""

from __future__ import annotations

import email.message
import errno
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loopline.local.apigateway import ApiGateway, ApiServer, api_definition
from loopline.local.executor import ACCOUNT_ID, LocalExecutor, LocalStackError
from loopline.local.run import load_model
from loopline.local.template import LocalStack
from loopline.runtime.actions import Env
from loopline.settings import settings

#: The tenant of the key ``serve`` makes when it is given no keys file.
DEFAULT_TENANT = "default"


@dataclass(frozen=True)
class ServedKey:
    key: str
    tenant: str
    user: str | None = None

    def line(self) -> str:
        who = self.tenant + (f"/{self.user}" if self.user else "")
        return f"key {who}: {self.key}"


class Outbox:
    """Writes each message moto's SES backend was asked to send as ``<dir>/mail/<n>.eml``,
    in order (a poller: moto has no hook for it)."""

    def __init__(self, directory: Path, region: str, *, interval: float = 0.2) -> None:
        self.mail = directory / "mail"
        self.region = region
        self.interval = interval
        self._written = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        try:
            self.mail.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            why = exc.strerror or exc
            raise LocalStackError(f"--outbox: cannot create {self.mail}: {why}") from None
        self._thread = threading.Thread(target=self._loop, name="loopline-outbox", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.flush()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()

    def flush(self) -> int:
        """Write the messages sent since the last call; how many were written."""
        from moto.ses.models import ses_backends

        sent = list(ses_backends[ACCOUNT_ID][self.region].sent_messages)
        new = sent[self._written :]
        for message in new:
            self._written += 1
            path = self.mail / f"{self._written}.eml"
            path.write_bytes(_eml(message))
        return len(new)


def _eml(message: Any) -> bytes:
    """An SES message as RFC 5322 bytes."""
    raw = getattr(message, "raw_data", None)
    if raw is not None:
        return raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
    out = email.message.EmailMessage()
    out["Message-ID"] = f"<{message.id}@local>"
    out["From"] = message.source
    destinations = message.destinations if isinstance(message.destinations, dict) else {}
    for header, field in (("To", "ToAddresses"), ("Cc", "CcAddresses")):
        if destinations.get(field):
            out[header] = ", ".join(destinations[field])
    subject = getattr(message, "subject", None)
    if subject is None and hasattr(message, "template"):
        subject = f"template {message.template}"
    out["Subject"] = subject or ""
    body = getattr(message, "body", None)
    if body is None and hasattr(message, "template_data"):
        body = str(message.template_data)
    text = str(body or "")
    if text.lstrip().lower().startswith(("<!doctype", "<html")):
        out.set_content(text, subtype="html")
    else:
        out.set_content(text)
    return out.as_bytes()


class LocalService:
    """The served local stack. ``start()`` binds, provisions and serves; ``stop()`` ends."""

    def __init__(
        self,
        template: Path,
        *,
        port: int = 8000,
        keys_file: Path | None = None,
        outbox: Path | None = None,
        allow_hosts: str | None = None,
        public_url: str | None = None,
        model: Any = None,
    ) -> None:
        self.template = template
        self.port = port
        self.keys_file = keys_file
        self.outbox_dir = outbox
        self.allow_hosts = allow_hosts
        self.public_url = public_url
        self.model = model
        self.keys: list[ServedKey] = []
        self.server: ApiServer | None = None
        self._executor: LocalExecutor | None = None
        self._stack: LocalStack | None = None
        self._outbox: Outbox | None = None
        self._saved_env: dict[str, str | None] = {}

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    def start(self) -> LocalService:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        from loopline.service import keys as service_keys

        entries = self._read_keys(service_keys)
        stack = LocalStack.load(self.template)
        definition = api_definition(stack)  # a template with no API fails before binding
        try:
            self.server = ApiServer(None, port=self.port)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise LocalStackError(f"port {self.port} is already in use") from None
            raise LocalStackError(f"cannot listen on port {self.port}: {exc.strerror}") from None
        self._set_env("LOOPLINE_PUBLIC_URL", self.public_url or self.server.url)
        if self.allow_hosts is not None:
            self._set_env("LOOPLINE_WEBHOOK_ALLOW_HOSTS", self.allow_hosts)
        settings.cache_clear()
        # The model the settings name (LOOPLINE_LLM_*), as for ``loopline run``.
        model = self.model if self.model is not None else load_model(None)
        self._executor = LocalExecutor(env=Env(model=model), loopline_functions=False)
        self._executor.__enter__()
        self._stack = stack
        stack.provision(self._executor)
        for entry in entries:
            service_keys.create_key(
                entry["tenant"],
                entry.get("user"),
                entry.get("roles") or (),
                key=entry["key"],
                key_id=entry.get("id"),
            )
            self.keys.append(ServedKey(entry["key"], entry["tenant"], entry.get("user")))
        if self.outbox_dir is not None:
            self._outbox = Outbox(self.outbox_dir, stack.region)
            self._outbox.start()
        self.server.gateway = ApiGateway(definition, self._executor)
        self.server.start()

    def _read_keys(self, service_keys: Any) -> list[dict[str, Any]]:
        if self.keys_file is None:
            return [{"key": service_keys.new_key(), "tenant": DEFAULT_TENANT, "roles": []}]
        try:
            entries: list[dict[str, Any]] = service_keys.load_keys_file(self.keys_file)
        except service_keys.KeysFileError as exc:
            raise LocalStackError(str(exc)) from None
        return entries

    def _set_env(self, name: str, value: str) -> None:
        self._saved_env.setdefault(name, os.environ.get(name))
        os.environ[name] = value

    def drain(self, timeout: float = 10.0) -> bool:
        return self._executor.drain(timeout) if self._executor is not None else True

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
        if self._outbox is not None:
            self._outbox.stop()
            self._outbox = None
        if self._executor is not None:
            self._executor.__exit__(None, None, None)
            self._executor = None
        if self._stack is not None:
            self._stack.restore_environment()
            self._stack = None
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env = {}
        settings.cache_clear()

    def serve_until(
        self, stop: threading.Event, on_start: Callable[[], None] | None = None
    ) -> None:
        """Start, call ``on_start``, and serve until ``stop`` is set."""
        self.start()
        try:
            if on_start is not None:
                on_start()
            while not stop.wait(0.5):
                pass
        finally:
            self.stop()
