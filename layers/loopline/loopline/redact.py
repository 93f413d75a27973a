"""Credentials never reach a step's cause or a log line: ``redact`` removes them from text.

Every place that makes an error message or a log line goes through here: a ``StepError``
redacts its message when it is made (``loopline.runtime.errors``), and the Powertools
logger (``loopline.observability``) redacts every record it writes. What is removed:

- the values of headers and fields named like a credential (``Authorization``,
  ``Proxy-Authorization``, ``X-Api-Key``, ``api_key``, ``token``, ``secret``,
  ``password``, ``signature``, ``cookie``, ...) written as ``name: value``,
  ``name=value`` or ``"name": "value"``; ``Bearer`` tokens anywhere;
- the userinfo of a URL (``https://user:pass@host`` → ``https://***@host``);
- query parameters named like a credential (``?api_key=…``, ``&X-Amz-Signature=…``);
- every value registered with ``remember_secret`` (the model API key, the values of an
  http step's credential headers and query parameters, a URL's userinfo and the Basic
  credentials an HTTP client makes of it), wherever and however it appears, e.g. echoed
  by a provider in an error body.

``MASK`` replaces what is removed; the name stays so a message still says what was sent.
"""

from __future__ import annotations

import base64
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit, urlunsplit

MASK = "***"
#: Values shorter than this are not remembered (they would mask ordinary words).
MIN_SECRET_LENGTH = 6
#: How many remembered values are kept (the oldest are forgotten first).
MAX_SECRETS = 512

# A name is sensitive when one of its words (split on anything but letters and digits) is
# a credential word, or it ends in one after a known qualifier (``apikey``, ``accesstoken``).
_WORDS = (
    "key|apikey|token|secret|signature|sig|password|passwd|pwd|passphrase|auth|"
    "authorization|credential|credentials|cookie|session"
)
_QUALIFIED = (
    r"(?:api|access|secret|private|auth|refresh|session|client|security|id|bearer|"
    r"subscription|master)(?:key|token|secret|signature|password)"
)
_SENSITIVE_NAME = re.compile(rf"(?:^|[^a-z0-9])(?:{_WORDS}|{_QUALIFIED})(?:[^a-z0-9]|$)")

#: Names masked in the bare ``name: value`` form (prose uses "key:" and "secret:" freely;
#: headers are written this way). Quoted (``"name": …``) and ``name=value`` forms mask
#: every sensitive name.
_HEADER_NAMES = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "api-key",
        "api_key",
        "apikey",
        "access_token",
        "client_secret",
        "token",
        "password",
    }
)
_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
# ``name: value``, ``name=value``, ``"name": "value"`` (also inside JSON-escaped text); the
# value may start with an auth scheme (``Bearer …``).
_FIELD = re.compile(
    rf"(?P<name>{_NAME})(?P<sep>\\?[\"']?\s*[:=]\s*\\?[\"']?)"
    r"(?P<value>(?:(?:Bearer|Basic|Token|Digest|Negotiate|AWS4-HMAC-SHA256)\s+)?"
    r"[^\s\"'\\,;&<>()\[\]{}]+)"
)
_SCHEME_CREDENTIAL = re.compile(r"\b(Bearer)\s+[A-Za-z0-9._~+/=:-]{4,}")
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)[^/\s@?#\"'<>]+@")
_QUERY_PARAM = re.compile(r"(?P<lead>[?&;])(?P<name>[^=&#\s\"'<>]+)=(?P<value>[^&#\s\"'\\<>]*)")

_lock = threading.Lock()
_secrets: OrderedDict[str, None] = OrderedDict()
_secret_pattern: re.Pattern[str] | None = None


def is_sensitive(name: str) -> bool:
    """True for a header, field or query parameter name that carries a credential."""
    return bool(_SENSITIVE_NAME.search(name.lower()))


def remember_secret(value: str | None) -> None:
    """Mask ``value`` wherever it appears in a message or log line from now on."""
    if not isinstance(value, str):
        return
    value = value.strip()
    if len(value) < MIN_SECRET_LENGTH:
        return
    global _secret_pattern
    with _lock:
        if value in _secrets:
            _secrets.move_to_end(value)
            return
        _secrets[value] = None
        while len(_secrets) > MAX_SECRETS:
            _secrets.popitem(last=False)
        # Longest first, so a secret that contains another is masked whole.
        ordered = sorted(_secrets, key=len, reverse=True)
        _secret_pattern = re.compile("|".join(re.escape(s) for s in ordered))


def remember_secrets(headers: Mapping[str, Any] | None = None, url: str | None = None) -> None:
    """Remember the credential values of ``headers`` and of ``url``'s userinfo and query."""
    for name, value in (headers or {}).items():
        if is_sensitive(str(name)) and isinstance(value, str):
            remember_secret(value)
            scheme, _, rest = value.partition(" ")
            if rest and scheme.isalpha():  # "Bearer sk-…": the token alone too
                remember_secret(rest)
    if url:
        parts = _split(url)
        if parts is not None:
            _remember_userinfo(parts)
            for m in _QUERY_PARAM.finditer("?" + parts.query):
                if is_sensitive(m.group("name")):
                    remember_secret(m.group("value"))


def _remember_userinfo(parts: SplitResult) -> None:
    """The password of a URL's userinfo (the user too when there is no password: a token
    written as the user), as written and decoded, and the ``Authorization: Basic`` value
    an HTTP client sends for it (httpx does), which a server may echo."""
    if "@" not in parts.netloc:
        return
    user, password = unquote(parts.username or ""), unquote(parts.password or "")
    for value in (parts.password, password) if password else (parts.username, user):
        remember_secret(value)
    basic = base64.b64encode(f"{user}:{password}".encode()).decode()
    remember_secret(basic)
    remember_secret(basic.rstrip("="))  # an echo that drops the padding


def forget_secrets() -> None:
    """Forget every remembered value (tests)."""
    global _secret_pattern
    with _lock:
        _secrets.clear()
        _secret_pattern = None


def _split(url: str) -> SplitResult | None:
    try:
        return urlsplit(url)
    except ValueError:
        return None


def _field(m: re.Match[str]) -> str:
    name, sep = m.group("name"), m.group("sep")
    if "=" in sep or '"' in sep or "'" in sep:
        masked = is_sensitive(name)
    else:  # a bare ``name: value``: header names only
        lower = name.lower()
        masked = lower in _HEADER_NAMES or (lower.startswith("x-") and is_sensitive(lower))
    if not masked:
        return m.group(0)
    value = m.group("value")
    scheme, space, _ = value.partition(" ")
    shown = f"{scheme} {MASK}" if space else MASK
    return f"{name}{sep}{shown}"


def _query(m: re.Match[str]) -> str:
    if not is_sensitive(m.group("name")) or not m.group("value"):
        return m.group(0)
    return f"{m.group('lead')}{m.group('name')}={MASK}"


def redact(text: str) -> str:
    """``text`` without the credentials described in the module's docstring."""
    if not text:
        return text
    pattern = _secret_pattern
    if pattern is not None:
        text = pattern.sub(MASK, text)
    text = _USERINFO.sub(lambda m: f"{m.group('scheme')}{MASK}@", text)
    text = _QUERY_PARAM.sub(_query, text)
    text = _FIELD.sub(_field, text)
    return _SCHEME_CREDENTIAL.sub(lambda m: f"{m.group(1)} {MASK}", text)


def redact_url(url: str) -> str:
    """``url`` without userinfo and with credential query parameters masked."""
    parts = _split(url)
    if parts is None or not parts.netloc:
        return redact(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rsplit('@', 1)[1]}"
    query = _QUERY_PARAM.sub(_query, "?" + parts.query)[1:] if parts.query else ""
    return redact(urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment)))


def redact_headers(headers: Mapping[str, Any]) -> dict[str, Any]:
    """``headers`` with the values of credential headers masked."""
    return {k: MASK if is_sensitive(str(k)) else v for k, v in headers.items()}


def redact_value(value: Any) -> Any:
    """A JSON-like value with every string in it redacted (keys named like a credential
    have their values masked); exceptions become their redacted text."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {
            k: MASK
            if isinstance(k, str) and is_sensitive(k) and isinstance(v, str) and v
            else redact_value(v)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [redact_value(v) for v in value]
    if isinstance(value, BaseException):
        return redact(str(value))
    return value
