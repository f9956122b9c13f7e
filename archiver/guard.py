"""The address guard: which network addresses the fetcher may connect to.

A cited URL is attacker-controlled input (anyone can publish a page that redirects to
``http://169.254.169.254/`` or ``http://localhost:8080/admin``), so by default the fetcher
refuses every address that is loopback, private, link-local, multicast, reserved or
unspecified. The check happens twice:

* before each request (and each redirect hop), on the URL's host, so the refusal is reported
  with a clear reason even when a proxy will do the resolving. The host is read as browsers
  read it (``archiver.hosts``: ``2130706433``, ``0x7f.1``, ``127.0.0.1.`` and fullwidth digits
  are all 127.0.0.1), and the fetcher sends the request to that form, so a proxy is never
  handed a spelling it might read differently; and
* at connection time, inside the network backend (``GuardedBackend``, defined in
  ``archiver.netstream`` so that reading a document, which checks hosts, imports no HTTP
  stack): the host is resolved once, every address is checked, and the socket connects to
  the checked address itself. A DNS answer that changes between the check and the
  connection (DNS rebinding) cannot slip through, while TLS still uses the host name for SNI
  and certificate checks.

``AddressGuard(allow_private=True)`` turns the address rules off (tests, intranets); it still
resolves names so that a name that does not resolve is reported as such. ``allow`` lists exact
``(address, port)`` pairs that are let through even when private: the tests use it to admit
their own loopback server while proving that every other loopback or link-local address is
refused.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from archiver.hosts import HostError, address_of, parse_host

__all__ = [
    "AddressGuard",
    "AddressRefused",
    "GuardedBackend",  # noqa: F822 (from archiver.netstream, by __getattr__)
    "NameNotResolved",
    "forbidden_reason",
    "refusal_without_dns",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class AddressRefused(Exception):
    """The guard refused to connect; ``reason`` names the host and the address."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NameNotResolved(Exception):
    """The host name does not resolve (``getaddrinfo`` failed)."""

    def __init__(self, host: str, detail: str) -> None:
        super().__init__(f"{host}: name does not resolve ({detail})")
        self.host = host
        self.reason = f"{host}: name does not resolve ({detail})"


def _networks(*rules: tuple[str, str]) -> tuple[tuple[ipaddress.IPv4Network
                                                    | ipaddress.IPv6Network, str], ...]:
    return tuple((ipaddress.ip_network(net), word) for net, word in rules)


# The IANA special-purpose registries, spelled out rather than left to ``ipaddress``'s
# ``is_private``/``is_global``, whose answers change between Python versions (3.11 calls
# 192.0.0.9 and ``::7f00:1`` global). Most useful word first; the catch-alls come after.
_V4_RULES = _networks(
    ("0.0.0.0/32", "unspecified"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("0.0.0.0/8", "this-network"),
    ("224.0.0.0/4", "multicast"),
    ("255.255.255.255/32", "broadcast"),
    ("240.0.0.0/4", "reserved"),
    ("10.0.0.0/8", "private"),
    ("172.16.0.0/12", "private"),
    ("192.168.0.0/16", "private"),
    ("100.64.0.0/10", "not globally routable"),  # carrier-grade NAT, shared address space
    ("192.0.0.0/24", "IETF protocol assignment"),
    ("192.0.2.0/24", "documentation"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("198.18.0.0/15", "benchmarking"),
    ("192.88.99.0/24", "reserved"),  # the retired 6to4 relay anycast
)
_V6_RULES = _networks(
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("::/96", "IPv4-compatible"),  # deprecated; stacks may still route it as IPv4
    ("64:ff9b:1::/48", "local-use NAT64"),
    ("100::/64", "discard-only"),
    ("2001::/32", "Teredo"),
    ("2001:db8::/32", "documentation"),
    ("3fff::/20", "documentation"),
    ("5f00::/16", "segment routing"),
    ("fc00::/7", "private"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local"),
    ("ff00::/8", "multicast"),
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def forbidden_reason(address: IPAddress) -> str | None:
    """Why ``address`` must not be reached from a public fetcher, or ``None`` if it may.

    Forms that carry an IPv4 address are judged by the address they lead to: IPv4-mapped
    (``::ffff:127.0.0.1``, judged as that address), NAT64 (``64:ff9b::/96``) and 6to4
    (``2002::/16``) addresses are refused when the IPv4 address inside is ("NAT64 form of a
    loopback"). Teredo, local-use NAT64 and the deprecated IPv4-compatible form are refused
    outright. Besides the ranges listed above, anything ``ipaddress`` calls private, reserved
    or not global is refused.
    """
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return forbidden_reason(address.ipv4_mapped)
        embedded: tuple[str, ipaddress.IPv4Address] | None = None
        if address in _NAT64:
            embedded = ("NAT64", ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        elif address.sixtofour is not None:
            embedded = ("6to4", address.sixtofour)
        if embedded is not None:
            inner = forbidden_reason(embedded[1])
            return None if inner is None else f"{embedded[0]} form of a {inner}"
        rules: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...] = \
            _V6_RULES
    else:
        rules = _V4_RULES
    for network, word in rules:
        if address in network:
            return word
    checks = (
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        ("not globally routable", not address.is_global),
    )
    for word, hit in checks:
        if hit:
            return word
    return None


@dataclass(frozen=True)
class AddressGuard:
    """The rules: ``allow_private`` turns them off; ``allow`` admits exact (address, port)s."""

    allow_private: bool = False
    allow: frozenset[tuple[str, int]] = field(default_factory=frozenset)

    @classmethod
    def allowing(cls, pairs: Iterable[tuple[str, int]]) -> AddressGuard:
        """A guard with the rules on, except for the given (address, port) pairs."""
        return cls(allow_private=False, allow=frozenset((str(ipaddress.ip_address(a)), int(p))
                                                        for a, p in pairs))

    def refusal(self, host: str, address: str, port: int) -> str | None:
        """The reason ``address`` (resolved from ``host``) on ``port`` is refused, or ``None``."""
        if self.allow_private:
            return None
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if (str(ip), port) in self.allow:
            return None
        why = forbidden_reason(ip)
        if why is None:
            return None
        if host == str(ip):
            shown = host
        elif _literal(host) == str(ip):
            shown = f"{host} (that is {ip})"  # an address in another notation
        else:
            shown = f"{host} resolves to {ip}"
        return f"{shown}: {why} address refused"

    async def resolve(self, host: str, port: int) -> list[str]:
        """Resolve ``host`` and check every address; return the addresses, in resolver order.

        Raises ``NameNotResolved`` when the name does not resolve and ``AddressRefused`` when
        any of its addresses is refused: a name that points at both a public and a private
        address is refused outright rather than trusting the order of the answer.
        """
        literal = _literal(host)
        if literal is None and _is_loopback_name(host) \
                and self.refusal(host, "127.0.0.1", port) is not None:
            # RFC 6761: these names are this machine, whatever a resolver says (or fails to).
            raise AddressRefused(f"{host}: loopback name refused")
        if literal is not None:
            addresses = [literal]
        else:
            loop = asyncio.get_running_loop()
            try:
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except (socket.gaierror, UnicodeError) as exc:
                raise NameNotResolved(host, str(exc) or type(exc).__name__) from exc
            addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
            if not addresses:
                raise NameNotResolved(host, "no addresses")
        for address in addresses:
            why = self.refusal(host, address, port)
            if why is not None:
                raise AddressRefused(why)
        return addresses


# Names that mean this machine without asking DNS (RFC 6761 and the usual /etc/hosts).
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost",
                             "ip6-loopback"})


def refusal_without_dns(guard: AddressGuard, host: str, port: int) -> str | None:
    """The guard's verdict on a host that a proxy will resolve.

    The host is first read as a browser reads it (``archiver.hosts.parse_host``): every
    spelling of an address (``2130706433``, ``0x7f.1``, ``127.0.0.1.``, fullwidth digits,
    percent-encoding) is checked as that address, and a host that is not valid is refused
    rather than handed to a proxy that may read it its own way. ``localhost`` names are
    refused. Other names cannot be checked here: the proxy, not this machine, decides where
    they lead."""
    if guard.allow_private:
        return None
    try:
        parsed = parse_host(f"[{host}]" if ":" in host and not host.startswith("[") else host)
    except HostError as exc:
        return f"{host}: not a valid host name, refused ({exc})"
    if parsed.address is not None:
        return guard.refusal(host, str(parsed.address), port)
    if _is_loopback_name(parsed.name):
        return f"{host}: loopback name refused"
    return None


def _is_loopback_name(host: str) -> bool:
    try:
        name = parse_host(host).name
    except HostError:
        return False
    return name in _LOOPBACK_NAMES or name.endswith(".localhost")


def _literal(host: str) -> str | None:
    """The address ``host`` spells, in any notation a resolver would accept, or ``None``."""
    address = address_of(host)
    return None if address is None else str(address)


def __getattr__(name: str) -> Any:
    """``GuardedBackend``, from ``archiver.netstream`` (imported on first use: it brings
    httpcore, which the readers of documents never need)."""
    if name == "GuardedBackend":
        from archiver.netstream import GuardedBackend

        return GuardedBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
