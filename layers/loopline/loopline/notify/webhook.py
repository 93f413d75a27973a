"""Sending one webhook: signed per Standard Webhooks, to a vetted address, and read back
as little as needed (docs/internals.md, "Webhooks").

``signature_headers`` makes ``webhook-id``, ``webhook-timestamp`` and
``webhook-signature`` with the ``standardwebhooks`` package: one ``v1,<base64>`` per
secret, space-separated (two while a rotation's previous secret still signs).

``post`` makes one attempt and says what happened, never raising for the receiver's
sake: the URL must be ``https`` (plain ``http`` only to an allowed host), its host's
addresses pass the HTTP step's guard (``loopline.runtime.netguard``: no loopback,
private, link-local or metadata address unless the host is allowed) and the connection
goes to the vetted address (a second DNS answer cannot move it); redirects are not
followed (a 3xx is a failed attempt); the whole exchange is bounded by ``timeout``; at
most ``MAX_RESPONSE_BYTES`` of the answer are read. Secrets and bodies are never logged.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

#: The most of a receiver's answer that is read (the rest is dropped unread).
MAX_RESPONSE_BYTES = 64 * 1024
#: Seconds a receiver has to answer with a 2xx.
TIMEOUT = 15.0
USER_AGENT = "Loopline-Webhooks/1"


@dataclass(frozen=True)
class Attempt:
    """One attempt: when it started, the status code (None: no answer), how long it took,
    and why it failed (None: delivered)."""

    at: str
    status_code: int | None
    duration_ms: int
    error: str | None

    @property
    def delivered(self) -> bool:
        return self.error is None

    def to_record(self) -> dict[str, object]:
        return {
            "at": self.at,
            "status_code": self.status_code,
            "duration_ms": self.duration_ms,
            "error": self.error,
        }


def signature_headers(
    message_id: str, body: str, secrets: Sequence[str], at: datetime | None = None
) -> dict[str, str]:
    """The Standard Webhooks headers of ``body`` sent as ``message_id`` at ``at`` (now),
    signed with each of ``secrets`` (``whsec_<base64>``)."""
    from standardwebhooks.webhooks import Webhook

    moment = (at or datetime.now(UTC)).replace(microsecond=0)
    signatures = [Webhook(secret).sign(message_id, moment, body) for secret in secrets]
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": " ".join(signatures),
    }


def url_problem(url: str, allow_hosts: Iterable[str]) -> str | None:
    """Why ``url`` may not receive webhooks, or None: it must be ``https`` (or ``http`` to
    an allowed host), hold no credentials, and its host's addresses must pass the guard.
    A host that does not resolve is not a problem here (it may later)."""
    from loopline.runtime import netguard
    from loopline.runtime.errors import StepError

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises for a port that is not a number
    except ValueError:
        return "must be an https:// URL with a valid host and port"
    host = parts.hostname or ""
    scheme = parts.scheme.lower()
    allow = list(allow_hosts)
    if not host:
        return "must be an https:// URL with a host"
    if scheme != "https" and not (scheme == "http" and netguard.host_allowed(host, allow)):
        return "must be an https:// URL (plain http only to hosts the stack allows)"
    if parts.username or parts.password:
        return "must not hold credentials (user:password@)"
    try:
        netguard.vet(url, allow)
    except StepError as exc:
        if exc.name == "Loopline.Transient":
            return None
        return exc.message
    return None


def post(
    url: str,
    body: str,
    headers: dict[str, str],
    *,
    allow_hosts: Iterable[str] = (),
    timeout: float = TIMEOUT,
) -> Attempt:
    """POST ``body`` (JSON text) to ``url`` with ``headers``; the attempt's outcome."""
    import httpx

    from loopline import ids
    from loopline.runtime.errors import StepError, readable
    from loopline.runtime.http import PinnedTransport
    from loopline.runtime.netguard import vet

    at = ids.now()
    started = time.monotonic()

    def outcome(status: int | None, error: str | None) -> Attempt:
        return Attempt(at, status, int((time.monotonic() - started) * 1000), error)

    allow = list(allow_hosts)
    problem = url_problem(url, allow)
    if problem:
        return outcome(None, f"refused: the URL {problem}")
    try:
        target = vet(url, allow)
    except StepError as exc:
        return outcome(None, exc.message)
    request_headers = {
        **headers,
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }
    try:
        with (
            httpx.Client(
                transport=PinnedTransport(target),
                timeout=timeout,
                follow_redirects=False,
                trust_env=False,
            ) as client,
            client.stream(
                "POST", url, content=body.encode("utf-8"), headers=request_headers
            ) as resp,
        ):
            deadline = started + timeout
            size = 0
            for chunk in resp.iter_bytes():
                size += len(chunk)
                if size >= MAX_RESPONSE_BYTES or time.monotonic() > deadline:
                    break  # enough: the status is what counts
            status = resp.status_code
    except httpx.TimeoutException:
        return outcome(None, f"no answer within {timeout:g} s")
    except httpx.HTTPError as exc:
        return outcome(None, f"could not connect: {readable(exc)}")
    except OSError as exc:  # pragma: no cover - httpx maps these
        return outcome(None, f"could not connect: {readable(exc)}")
    if time.monotonic() - started > timeout:
        return outcome(status, f"answered {status} after more than {timeout:g} s")
    if 200 <= status < 300:
        return outcome(status, None)
    if 300 <= status < 400:
        return outcome(status, f"answered {status}: redirects are not followed")
    return outcome(status, f"answered {status}")


__all__ = ["MAX_RESPONSE_BYTES", "TIMEOUT", "Attempt", "post", "signature_headers", "url_problem"]
