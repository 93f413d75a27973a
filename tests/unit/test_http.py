"""The http action and its safety rules, against real servers on 127.0.0.1.

Addresses that must be refused (169.254.169.254, 10.0.0.1, ...) are refused before any
connection is made, so no test sends traffic anywhere but to its own local servers.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from loopline.runtime import netguard
from loopline.runtime.actions import Env, dispatch
from loopline.runtime.errors import StepError
from loopline.runtime.netguard import address_problem, host_allowed
from loopline.settings import settings

LOCAL = ["127.0.0.1"]


def payload(config: dict[str, Any], **values: Any) -> dict[str, Any]:
    return {
        "action": "http",
        "workflow": "wf",
        "step": "s",
        "execution": "arn:exec",
        "attempt": 0,
        "config": config,
        "values": values,
    }


def call(url: str, *, allow: list[str] | None = None, **config: Any) -> dict[str, Any]:
    cfg = {"url": url, **config}
    if allow is not None:
        cfg["allow_hosts"] = allow
    return dispatch(payload(cfg), Env())["output"]


def error_of(url: str, **kwargs: Any) -> StepError:
    with pytest.raises(StepError) as err:
        call(url, **kwargs)
    return err.value


#: The paths the test server was asked for.
SEEN: list[str] = []


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:  # keep test output clean
        pass

    def _send(
        self, status: int, body: Any, ctype: str = "application/json", **headers: str
    ) -> None:
        data = (json.dumps(body) if ctype == "application/json" else body).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        SEEN.append(self.path)
        url = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        parts = url.path.strip("/").split("/")
        if url.path == "/json":
            self._send(200, {"q": parse_qs(url.query), "auth": self.headers.get("Authorization")})
        elif url.path == "/echo":  # a 401 that repeats what it was sent, as some APIs do
            self._send(
                401,
                {
                    "error": f"bad credentials for {self.path}",
                    "authorization": self.headers.get("Authorization"),
                    "headers": dict(self.headers.items()),
                },
            )
        elif url.path == "/host":
            self._send(200, {"host": self.headers.get("Host")})
        elif url.path == "/text":
            self._send(200, "plain words", "text/plain")
        elif url.path == "/missing":
            self._send(404, {"error": "not here"})
        elif url.path == "/slow":
            time.sleep(1.5)
            self._send(200, {})
        elif url.path == "/redirect":
            self._redirect(q["to"])
        elif parts[0] == "chain":  # /chain/N redirects N times, then answers
            n = int(parts[1])
            if n:
                self._redirect(f"/chain/{n - 1}")
            else:
                self._send(200, {"arrived": True})
        elif url.path == "/big":  # a declared Content-Length
            self._send(200, "x" * int(q["n"]), "text/plain")
        elif url.path == "/endless":  # no Content-Length: the body runs until the close
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            try:
                for _ in range(100_000):  # at most ~100 MB, far past any cap
                    self.wfile.write(b"y" * 1024)
            except OSError:
                pass  # the client stopped reading and hung up
        else:
            self._send(500, "boom", "text/plain")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self._send(201, {"got": json.loads(self.rfile.read(length))})


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield int(srv.server_address[1])
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def server(port: int) -> str:
    return f"http://127.0.0.1:{port}"


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    settings.cache_clear()
    yield
    settings.cache_clear()


# --------------------------------------------------------------------------- requests


def test_get_returns_status_headers_and_the_parsed_json_body(server: str) -> None:
    p = payload(
        {
            "method": "GET",
            "url": server + "/json",
            "query": {"topic": "{{ inputs.topic }}"},
            "headers": {"Authorization": "Bearer {{ inputs.key }}"},
            "allow_hosts": LOCAL,
        },
        inputs={"topic": "tides", "key": "k1"},
    )
    out = dispatch(p, Env())["output"]
    assert out["status"] == 200
    assert out["headers"]["content-type"] == "application/json"
    assert out["body"] == {"q": {"topic": ["tides"]}, "auth": "Bearer k1"}


def test_post_sends_the_rendered_json_body(server: str) -> None:
    p = payload(
        {
            "method": "POST",
            "url": server + "/items",
            "body": {"name": "{{ inputs.n }}", "k": [1]},
            "allow_hosts": LOCAL,
        },
        inputs={"n": 7},
    )
    out = dispatch(p, Env())["output"]
    assert (out["status"], out["body"]) == (201, {"got": {"name": 7, "k": [1]}})


def test_text_body_stays_text(server: str) -> None:
    assert call(server + "/text", allow=LOCAL)["body"] == "plain words"


def test_a_pinned_connection_keeps_the_host_header_and_resolves_once(
    port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    lookups: list[str] = []
    real = socket.getaddrinfo

    def counting(host: Any, *args: Any, **kwargs: Any) -> Any:
        lookups.append(str(host))
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", counting)
    out = call(f"http://localhost:{port}/host", allow=["localhost"])
    assert out["body"] == {"host": f"localhost:{port}"}
    assert lookups.count("localhost") == 1  # vetted once, then connected to that address


def test_status_outside_expect_status_is_an_http_error_with_the_status(server: str) -> None:
    err = error_of(server + "/missing", allow=LOCAL)
    assert err.name == "Loopline.HTTPError"
    assert "returned status 404 (expected 2xx)" in err.message


def test_expect_status_accepts_the_listed_statuses(server: str) -> None:
    assert call(server + "/missing", allow=LOCAL, expect_status=[404])["status"] == 404


def test_expect_status_with_a_3xx_returns_the_redirect_itself(server: str) -> None:
    out = call(server + "/chain/1", allow=LOCAL, expect_status=[302])
    assert out["status"] == 302 and out["headers"]["location"] == "/chain/0"


def test_timeout_is_transient(server: str) -> None:
    err = error_of(server + "/slow", allow=LOCAL, timeout=0.3)
    assert err.name == "Loopline.Transient"
    assert "timed out after 0.3s" in err.message


def test_a_server_that_never_answers_times_out_as_transient() -> None:
    with socket.socket() as s:  # accepts connections (backlog), never reads nor answers
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        started = time.monotonic()
        err = error_of(f"http://127.0.0.1:{s.getsockname()[1]}/", allow=LOCAL, timeout=0.5)
    assert err.name == "Loopline.Transient" and "timed out" in err.message
    assert time.monotonic() - started < 5


def test_connection_refused_is_transient() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    err = error_of(f"http://127.0.0.1:{port}/", allow=LOCAL, timeout=2)
    assert err.name == "Loopline.Transient"


def test_url_must_be_http() -> None:
    with pytest.raises(StepError, match="must start with http"):
        call("file:///etc/passwd")


# --------------------------------------------------------------------------- redirects


def test_up_to_five_redirects_are_followed(server: str) -> None:
    assert call(server + "/chain/5", allow=LOCAL)["body"] == {"arrived": True}


def test_more_than_five_redirects_fail(server: str) -> None:
    err = error_of(server + "/chain/6", allow=LOCAL)
    assert err.name == "Loopline.HTTPError"
    assert "more than 5 redirects" in err.message


def test_a_redirect_to_a_non_http_url_is_refused(server: str) -> None:
    err = error_of(server + "/redirect?to=ftp://example.com/x", allow=LOCAL)
    assert err.name == "Loopline.HTTPError"
    assert "only http:// and https://" in err.message


# --------------------------------------------------------------------------- refused addresses

REFUSED = [
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 (link-local/metadata address)"),
    ("http://127.0.0.1:{port}/json", "127.0.0.1 (loopback address)"),
    ("http://10.0.0.1/", "10.0.0.1 (private address)"),
    ("http://[::1]:{port}/json", "::1 (loopback address)"),
    ("http://localhost:{port}/json", "127.0.0.1 (loopback address, which localhost resolves to)"),
    ("http://[fd00:ec2::254]/", "fd00:ec2::254 (metadata address)"),
    ("http://192.168.1.1/", "192.168.1.1 (private address)"),
    ("http://0.0.0.0:{port}/", "0.0.0.0 (unspecified address)"),
    ("http://[::ffff:127.0.0.1]:{port}/", "::ffff:127.0.0.1 (loopback address embedded in IPv6)"),
]


@pytest.mark.parametrize(("url", "says"), REFUSED)
def test_non_global_addresses_are_refused_before_connecting(url: str, says: str, port: int) -> None:
    url = url.format(port=port)
    err = error_of(url)
    assert err.name == "Loopline.HTTPError"
    assert f"refused to connect to {says}" in err.message
    assert f"for {url}" in err.message
    assert "allow the host with allow_hosts if it is intended" in err.message


@pytest.mark.parametrize(
    ("target", "says"),
    [
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 (link-local/metadata"),
        ("http://10.0.0.1/admin", "10.0.0.1 (private address)"),
        ("http://[::1]:{port}/json", "::1 (loopback address)"),
        ("http://localhost:{port}/json", "127.0.0.1 (loopback address, which localhost"),
    ],
)
def test_a_redirect_from_an_allowed_server_to_a_refused_address_is_refused(
    target: str, says: str, server: str, port: int
) -> None:
    target = target.format(port=port)
    err = error_of(f"{server}/redirect?to={target}", allow=LOCAL)
    assert err.name == "Loopline.HTTPError"
    assert f"refused to connect to {says}" in err.message
    assert f"for {target}" in err.message


def test_a_redirect_to_127_0_0_1_from_an_allowed_host_name_is_refused(port: int) -> None:
    target = f"http://127.0.0.1:{port}/json"
    err = error_of(f"http://localhost:{port}/redirect?to={target}", allow=["localhost"])
    assert err.name == "Loopline.HTTPError"
    assert f"refused to connect to 127.0.0.1 (loopback address) for {target}" in err.message


def test_a_redirect_to_an_allowed_host_is_followed(server: str, port: int) -> None:
    out = call(f"{server}/redirect?to=http://localhost:{port}/host", allow=[*LOCAL, "localhost"])
    assert out["body"] == {"host": f"localhost:{port}"}


def test_a_host_is_refused_when_any_of_its_addresses_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def fake(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        assert host == "mixed.example"
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", port)),
        ]

    monkeypatch.setattr(netguard.socket, "getaddrinfo", fake)
    err = error_of("http://mixed.example/")
    assert "refused to connect to 169.254.169.254 (link-local/metadata address, which " in (
        err.message
    )


def test_allow_hosts_from_the_settings(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPLINE_HTTP_ALLOW_HOSTS", "example.org, 127.0.0.1")
    settings.cache_clear()
    assert call(server + "/text")["body"] == "plain words"


def test_address_classification() -> None:
    assert address_problem("8.8.8.8") is None
    assert address_problem("2606:4700:4700::1111") is None
    assert address_problem("169.254.10.1") == "link-local address"
    assert address_problem("fe80::1") == "link-local address"
    assert address_problem("172.16.5.4") == "private address"
    assert address_problem("fc00::1") == "private address"
    assert address_problem("::") == "unspecified address"
    assert address_problem("100.64.0.1") == "non-global address"
    assert address_problem("224.0.0.1") == "multicast address"
    assert address_problem("64:ff9b::a00:1") == "private address embedded in IPv6"


def test_allow_hosts_matching() -> None:
    assert host_allowed("LocalHost", ["localhost"])
    assert host_allowed("::1", ["[::1]"])
    assert host_allowed("api.corp.example", ["*.corp.example"])
    assert not host_allowed("corp.example", ["*.corp.example"])
    assert not host_allowed("evilcorp.example", ["*.corp.example"])


# --------------------------------------------------------------------------- size cap


@pytest.fixture
def small_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPLINE_HTTP_MAX_BYTES", "1000")
    settings.cache_clear()


@pytest.mark.usefixtures("small_cap")
def test_a_response_within_the_cap_is_read(server: str) -> None:
    assert call(server + "/big?n=1000", allow=LOCAL)["body"] == "x" * 1000


@pytest.mark.usefixtures("small_cap")
def test_a_declared_response_over_the_cap_is_refused(server: str) -> None:
    err = error_of(server + "/big?n=1001", allow=LOCAL)
    assert err.name == "Loopline.HTTPError"
    assert "1000-byte limit (LOOPLINE_HTTP_MAX_BYTES)" in err.message


@pytest.mark.usefixtures("small_cap")
def test_an_endless_response_stops_at_the_cap(server: str) -> None:
    started = time.monotonic()
    err = error_of(server + "/endless", allow=LOCAL, timeout=10)
    assert err.name == "Loopline.HTTPError"
    assert "larger than the 1000-byte limit (LOOPLINE_HTTP_MAX_BYTES); stopped reading" in (
        err.message
    )
    assert time.monotonic() - started < 5


# --------------------------------------------------------------------------- requests the step got wrong


@pytest.mark.parametrize(
    ("headers", "says"),
    [
        ({"X-Note": "a\r\nX-Injected: 1"}, 'header "X-Note": the value contains a line break'),
        ({"X-Note": "a\nb"}, 'header "X-Note": the value contains a line break'),
        ({"X-Note": "a\x00b"}, 'header "X-Note": the value contains a control character'),
        ({"X-Note": "café"}, 'header "X-Note": the value contains characters outside ASCII'),
        ({"X Note": "a"}, 'header "X Note": not a header name'),
        ({"X-Note:": "a"}, 'header "X-Note:": not a header name'),
    ],
)
def test_a_header_that_cannot_be_sent_fails_without_a_retry_before_sending(
    server: str, headers: dict[str, str], says: str
) -> None:
    SEEN.clear()
    err = error_of(server + "/json", allow=LOCAL, headers=headers)
    assert err.name == "Loopline.Failed"  # a mistake in the step: retrying cannot help
    assert says in err.message
    assert SEEN == []


def test_a_header_rendered_from_an_input_with_a_line_break_is_refused(server: str) -> None:
    SEEN.clear()
    p = payload(
        {"url": server + "/json", "headers": {"X-User": "{{ inputs.user }}"}, "allow_hosts": LOCAL},
        inputs={"user": "bob\r\nX-Admin: true"},
    )
    with pytest.raises(StepError) as err:
        dispatch(p, Env())
    assert err.value.name == "Loopline.Failed"
    assert "line break" in err.value.message and "X-Admin" not in err.value.message
    assert SEEN == []


def test_credentials_in_the_url_query_and_headers_never_reach_the_cause(server: str) -> None:
    host = server.removeprefix("http://")
    p = payload(
        {
            "url": f"http://user:pw-4a9e1c77@{host}/echo?api_key=qk-51d0e3aa&page=2",
            "query": {"access_token": "tq-0c6b2f94", "lang": "en"},
            "headers": {"Authorization": "Bearer hk-93e1b7d2", "X-Api-Key": "xk-1f7a3c55"},
            "allow_hosts": LOCAL,
        }
    )
    with pytest.raises(StepError) as err:
        dispatch(p, Env())
    message = err.value.message
    assert err.value.name == "Loopline.HTTPError" and "returned status 401" in message
    for secret in ("pw-4a9e1c77", "qk-51d0e3aa", "tq-0c6b2f94", "hk-93e1b7d2", "xk-1f7a3c55"):
        assert secret not in message
    assert message.startswith(f"GET http://***@{host}/echo?api_key=***&page=2 returned")
    assert " from " not in message  # no redirect happened
    assert SEEN[-1] == "/echo?api_key=qk-51d0e3aa&page=2&access_token=tq-0c6b2f94&lang=en"


def test_the_query_adds_to_the_urls_own_query(server: str) -> None:
    out = call(server + "/json?a=1", allow=LOCAL, query={"b": "2"})
    assert out["body"]["q"] == {"a": ["1"], "b": ["2"]}
