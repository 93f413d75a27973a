"""Telling people about human tasks: the senders (docs/internals.md, "Notifications").

Each module composes one kind of message from a human task's view (pure functions) and
makes the one AWS or HTTP call that sends it: ``email`` (Amazon SES), ``slack`` (Slack's
Web API, and the verification of Slack's signed button clicks), ``outbox`` (the SQS queue
the domain puts messages on for the outbox function to deliver). Nothing here reads or
writes the task store: the domain (``loopline.service.humans``) decides what to send and
records what happened.

A sender that fails raises ``NotifyError``: ``permanent`` when sending the same message
again cannot succeed (an address SES refuses, a Slack channel that does not exist),
``retry_after`` when the service named how long to wait.
"""

from __future__ import annotations


class NotifyError(Exception):
    """A message could not be sent; the text says why, in the reader's words."""

    def __init__(
        self, message: str, *, permanent: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after


__all__ = ["NotifyError"]
