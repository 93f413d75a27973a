"""The test webhook receiver itself (``tests/support/webhook_receiver.py``): it verifies
what Standard Webhooks signs, tells which secret did, and its modes answer as they say."""

from __future__ import annotations

import base64
import json
import os
from datetime import UTC, datetime

import httpx
import pytest
from standardwebhooks import Webhook

from tests.support.webhook_receiver import WebhookReceiver

OLD = "whsec_" + base64.b64encode(os.urandom(24)).decode()
NEW = "whsec_" + base64.b64encode(os.urandom(24)).decode()


def _post(url: str, body: dict, secrets: list[str], msg_id: str = "msg_1") -> httpx.Response:
    data = json.dumps(body)
    now = datetime.now(UTC)
    signature = " ".join(Webhook(s).sign(msg_id, now, data) for s in secrets)
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }
    return httpx.post(url, content=data, headers=headers, timeout=5)


def test_it_records_which_secret_verified_a_request_and_why_none_did() -> None:
    with WebhookReceiver(secrets=[OLD]) as receiver:
        body = {"type": "task.succeeded", "timestamp": "t", "data": {"id": "tsk_1"}}
        assert _post(receiver.url, body, [OLD]).status_code == 200
        assert _post(receiver.url, body, [NEW], msg_id="msg_2").status_code == 200
        receiver.secrets = [NEW]
        both = _post(receiver.url, body, [OLD, NEW], msg_id="msg_3")
        assert both.status_code == 200
        first, second, third = receiver.received(type="task.succeeded", task="tsk_1")
        assert (first.secret, first.error) == (OLD, None)
        assert second.secret is None and "No matching signature" in (second.error or "")
        assert third.secret == NEW and len(third.signatures) == 2
        assert receiver.counts() == {"msg_1": 1, "msg_2": 1, "msg_3": 1}


def test_down_refuses_connections_and_up_listens_again_on_the_same_port() -> None:
    with WebhookReceiver() as receiver, httpx.Client(timeout=5) as client:
        url = receiver.url
        # A kept-alive connection does not outlive down() either.
        assert client.post(url, json={"type": "x"}).status_code == 200
        receiver.down()
        with pytest.raises(httpx.TransportError):
            client.post(url, json={"type": "x"})
        with pytest.raises(httpx.ConnectError):
            _post(url, {"type": "x"}, [OLD])
        receiver.up()
        assert receiver.url == url
        assert _post(url, {"type": "x"}, [OLD]).status_code == 200
        receiver.status(503)
        assert client.post(url, json={"type": "x"}).status_code == 503
        assert [r.status for r in receiver.received()] == [200, 200, 503]


def test_fail_first_fails_each_webhook_id_that_many_times_then_answers_200() -> None:
    with WebhookReceiver() as receiver:
        receiver.fail_first(2, 500)
        codes = [_post(receiver.url, {"type": "x"}, [OLD], msg_id=m).status_code for m in "aabab"]
        assert codes == [500, 500, 500, 200, 500]
        assert _post(receiver.url, {"type": "x"}, [OLD], msg_id="b").status_code == 200


def test_wait_for_returns_once_the_predicate_holds_and_times_out_saying_what_came() -> None:
    with WebhookReceiver() as receiver:
        receiver.slow(0.3)
        _post(receiver.url, {"type": "task.started"}, [OLD])
        got = receiver.wait_for(lambda r: r.received(type="task.started"), timeout=2)
        assert len(got) == 1
        with pytest.raises(AssertionError, match=r"task\.started"):
            receiver.wait_for(lambda r: r.received(type="task.failed"), timeout=0.3)
