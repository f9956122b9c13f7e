"""The address guard: which network addresses the fetcher may connect to.

A cited URL is attacker-controlled input (anyone can publish a page that redirects to
``http://169.254.169.254/`` or ``http://localhost:8080/admin``), so by default the fetcher
refuses every address that is loopback, private, link-local, multicast, reserved or
unspecified. The check happens twice:

* before each request (and each redirect hop), on the URL's host, so the refusal is reported
  with a clear reason even when a proxy will do the resolving; and
* at connection time, inside the network backend (``GuardedBackend``): the host is resolved
  once, every address is checked, and the socket connects to the checked address itself. A
  DNS answer that changes between the check and the connection (DNS rebinding) cannot slip
  through, while TLS still uses the host name for SNI and certificate checks.

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
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field

import httpcore

__all__ = [
    "AddressGuard",
    "AddressRefused",
    "GuardedBackend",
    "NameNotResolved",
    "forbidden_reason",
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


def forbidden_reason(address: IPAddress) -> str | None:
    """Why ``address`` must not be reached from a public fetcher, or ``None`` if it may.

    IPv4-mapped IPv6 addresses (``::ffff:127.0.0.1``) are judged as the IPv4 address they
    carry, so they cannot be used to sneak past the rules.
    """
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    # Order matters: the most specific, most useful word first.
    checks = (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("unspecified", address.is_unspecified),
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
        shown = host if host == str(ip) else f"{host} resolves to {ip}"
        return f"{shown}: {why} address refused"

    async def resolve(self, host: str, port: int) -> list[str]:
        """Resolve ``host`` and check every address; return the addresses, in resolver order.

        Raises ``NameNotResolved`` when the name does not resolve and ``AddressRefused`` when
        any of its addresses is refused: a name that points at both a public and a private
        address is refused outright rather than trusting the order of the answer.
        """
        literal = _literal(host)
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


def refusal_without_dns(guard: AddressGuard, host: str, port: int) -> str | None:
    """The guard's verdict on a host that a proxy will resolve: an address literal is checked
    as such and ``localhost`` names are refused; other names cannot be checked here (the
    proxy, not this machine, decides where they lead)."""
    if guard.allow_private:
        return None
    literal = _literal(host)
    if literal is not None:
        return guard.refusal(host, literal, port)
    name = host.rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return f"{host}: loopback name refused"
    return None


def _literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that resolves, checks, then connects to the checked address.

    httpcore hands ``connect_tcp`` the URL's host; the TLS layer later receives the same host
    for SNI, so pinning the address here keeps certificate checks on the name.
    """

    def __init__(self, guard: AddressGuard) -> None:
        self._guard = guard
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._guard.resolve(host, port)
        last: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise AddressRefused(f"{path}: unix sockets are not fetched")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)
