"""Which addresses an ``http`` step (or the ``http_get`` tool) may connect to.

A workflow's URLs are often templates filled from inputs or model answers, so a request
must not reach what sits next to the function: the cloud metadata service
(169.254.169.254, fd00:ec2::254), link-local, loopback, private and other non-global
addresses. ``vet`` resolves a URL's host (``getaddrinfo``), refuses it when *any* address
it resolves to is one of those, and returns the address to connect to; the HTTP client
then connects to exactly that address (``loopline.runtime.http``), so a second DNS answer
(rebinding) cannot change where the request goes.

A host named in ``allow_hosts`` (the step's field, or ``LOOPLINE_HTTP_ALLOW_HOSTS``) is
exempt: an exact host name or address, or ``*.example.internal`` for any subdomain.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from loopline.runtime.errors import StepError, readable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Instance metadata services (AWS IPv4 and IPv6; the IPv4 one is link-local too).
METADATA = {
    ipaddress.ip_address("169.254.169.254"),
    ipaddress.ip_address("fd00:ec2::254"),
}
PRIVATE = [
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
]
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


@dataclass(frozen=True)
class Target:
    """Where a request for ``url`` goes: its ``host`` and the vetted ``addresses`` (every
    address the host resolved to, in order; connections go to these and nowhere else)."""

    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...]


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (mapped, NAT64, 6to4, Teredo), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    return None


def address_problem(address: str | IPAddress) -> str | None:
    """Why ``address`` must not be connected to (``"loopback address"``), or None."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return "link-local address"
        v4 = _embedded_v4(ip)
        if v4 is not None:
            inner = address_problem(v4)
            return f"{inner} embedded in IPv6" if inner else None
    if ip in METADATA:
        return "link-local/metadata address" if ip.version == 4 else "metadata address"
    if ip.is_unspecified:
        return "unspecified address"
    if ip.is_loopback:
        return "loopback address"
    if ip.is_link_local:
        return "link-local address"
    if ip.is_multicast:
        return "multicast address"
    if any(ip in net for net in PRIVATE):
        return "private address"
    if not ip.is_global or ip.is_reserved:
        return "non-global address"
    return None


def normalize_host(host: str) -> str:
    """A host as ``allow_hosts`` compares it: lower case, no brackets, addresses compressed."""
    host = host.strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


def host_allowed(host: str, allow_hosts: Iterable[str]) -> bool:
    """True when ``host`` is listed in ``allow_hosts`` (``*.domain`` matches subdomains)."""
    host = normalize_host(host)
    for entry in allow_hosts:
        allowed = normalize_host(entry)
        if allowed == host or (
            allowed.startswith("*.") and host.endswith(allowed[1:]) and host != allowed[2:]
        ):
            return True
    return False


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, in ``getaddrinfo``'s order, without duplicates."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: list[str] = []
    for info in infos:
        addr = str(info[4][0])
        if addr not in seen:
            seen.append(addr)
    return seen


def vet(url: str, allow_hosts: Iterable[str] = (), *, what: str = "") -> Target:
    """Check ``url`` and the addresses of its host; return where to connect.

    Raise ``StepError``: ``Loopline.HTTPError`` for a refused address or a URL that is not
    http(s), ``Loopline.Transient`` when the host does not resolve. ``what`` prefixes the
    messages (``"GET http://…"``).
    """
    prefix = f"{what}: " if what else ""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise StepError(
            "Loopline.HTTPError", f"{prefix}only http:// and https:// URLs are allowed: {url}"
        )
    host = parts.hostname or ""
    if not host:
        raise StepError("Loopline.HTTPError", f"{prefix}the URL has no host: {url}")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise StepError("Loopline.HTTPError", f"{prefix}invalid port in {url}") from None
    allowed = host_allowed(host, allow_hosts)
    try:
        literal: IPAddress | None = ipaddress.ip_address(normalize_host(host))
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [str(literal)]  # checked before anything touches the network
    else:
        try:
            addresses = resolve(host, port)
        except (OSError, UnicodeError) as exc:
            raise StepError(
                "Loopline.Transient", f"{prefix}could not resolve host {host}: {readable(exc)}"
            ) from None
        if not addresses:  # pragma: no cover - getaddrinfo raises instead
            raise StepError("Loopline.Transient", f"{prefix}host {host} has no address")
    if not allowed:
        for addr in addresses:
            problem = address_problem(addr)
            if problem:
                via = "" if literal is not None else f", which {host} resolves to"
                raise StepError(
                    "Loopline.HTTPError",
                    f"refused to connect to {addr} ({problem}{via}) for {url}; "
                    "allow the host with allow_hosts if it is intended",
                )
    return Target(url=url, scheme=scheme, host=host, port=port, addresses=tuple(addresses))
