"""The address guard: the rules, and the check at connection time (DNS rebinding)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import replace

import httpx
import pytest

from archiver import retry
from archiver.config import FetchSettings
from archiver.fetch import Fetcher, _GuardedTransport
from archiver.guard import (
    AddressGuard,
    AddressRefused,
    NameNotResolved,
    forbidden_reason,
    refusal_without_dns,
)
from archiver.models import Capture, FetchFailure, Verdict
from tests.webserver import Reply, WebServer

# Every test runs on both transports under httpx (see conftest.fetch_transport).
pytestmark = pytest.mark.usefixtures("fetch_transport")


@pytest.mark.parametrize(("address", "word"), [
    ("127.0.0.1", "loopback"), ("127.8.9.10", "loopback"), ("::1", "loopback"),
    ("169.254.169.254", "link-local"), ("fe80::1", "link-local"),
    ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("192.168.1.1", "private"),
    ("fc00::1", "private"), ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("224.0.0.1", "multicast"), ("ff02::1", "multicast"), ("240.0.0.1", "reserved"),
    ("::ffff:127.0.0.1", "loopback"), ("100.64.0.1", "not globally routable"),
])
def test_forbidden_addresses(address: str, word: str) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) == word


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:4700::1111", "8.8.8.8"])
def test_public_addresses_pass(address: str) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(("address", "word"), [
    ("192.0.0.9", "IETF protocol assignment"), ("192.0.0.170", "IETF protocol assignment"),
    ("0.1.2.3", "this-network"), ("198.18.0.1", "benchmarking"), ("198.19.255.1", "benchmarking"),
    ("255.255.255.255", "broadcast"), ("192.0.2.1", "documentation"),
    ("100.127.255.254", "not globally routable"),
    # IPv6 forms that carry an IPv4 address are judged by it
    ("::ffff:169.254.169.254", "link-local"),
    ("64:ff9b::7f00:1", "NAT64 form of a loopback"),
    ("64:ff9b::a9fe:a9fe", "NAT64 form of a link-local"),
    ("2002:7f00:1::", "6to4 form of a loopback"), ("2002:a00:1::1", "6to4 form of a private"),
    ("2002:c0a8:101::", "6to4 form of a private"),
    # and these are refused outright
    ("::7f00:1", "IPv4-compatible"), ("::808:808", "IPv4-compatible"),
    ("64:ff9b:1::a00:1", "local-use NAT64"), ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
    ("fd12:3456::1", "private"), ("fec0::1", "site-local"), ("2001:db8::1", "documentation"),
    ("100::1", "discard-only"),
])
def test_special_purpose_ranges(address: str, word: str) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) == word


@pytest.mark.parametrize("address", ["64:ff9b::808:808", "2002:808:808::1", "::ffff:8.8.8.8",
                                     "192.0.1.1", "100.128.0.1"])
def test_embedded_public_addresses_pass(address: str) -> None:
    """NAT64 of a public address is how an IPv6-only network reaches IPv4 sites."""
    assert forbidden_reason(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(("host", "shown"), [
    ("2130706433", "2130706433 (that is 127.0.0.1): loopback"),
    ("0xa9fea9fe", "0xa9fea9fe (that is 169.254.169.254): link-local"),
    ("127.0.0.1.", "127.0.0.1. (that is 127.0.0.1): loopback"),
    ("[::ffff:10.0.0.1]", "(that is ::ffff:a00:1): private"),
    ("localhost.", "localhost.: loopback name"),
    ("ip6-localhost", "loopback name"),
    ("1.2.3.4.5", "not a valid host name"),
])
def test_refusal_without_dns_reads_every_notation(host: str, shown: str) -> None:
    why = refusal_without_dns(AddressGuard(), host, 80)
    assert why is not None and shown in why
    assert refusal_without_dns(AddressGuard(allow_private=True), host, 80) is None


@pytest.mark.parametrize("host", ["134744072", "example.org", "example.org.", "8.8.8.8"])
def test_refusal_without_dns_lets_public_hosts_through(host: str) -> None:
    assert refusal_without_dns(AddressGuard(), host, 80) is None


def test_resolve_reads_other_notations_without_dns(monkeypatch) -> None:
    async def no_dns(*args, **kw):  # the check must not depend on the resolver's reading
        raise AssertionError("getaddrinfo called for an address literal")

    async def go() -> None:
        monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", no_dns)
        with pytest.raises(AddressRefused, match=r"0x7f\.1 \(that is 127\.0\.0\.1\)"):
            await AddressGuard().resolve("0x7f.1", 80)
        assert await AddressGuard().resolve("134744072", 80) == ["8.8.8.8"]

    asyncio.run(go())


def test_refusal_reason_names_host_and_address() -> None:
    guard = AddressGuard()
    assert guard.refusal("intranet.example", "10.0.0.7", 80) == \
        "intranet.example resolves to 10.0.0.7: private address refused"
    assert guard.refusal("8.8.8.8", "8.8.8.8", 443) is None
    assert AddressGuard(allow_private=True).refusal("x", "127.0.0.1", 80) is None
    allowing = AddressGuard.allowing([("127.0.0.1", 8080)])
    assert allowing.refusal("127.0.0.1", "127.0.0.1", 8080) is None
    assert allowing.refusal("127.0.0.1", "127.0.0.1", 8081) is not None


def test_resolve_refuses_a_name_with_any_private_address(monkeypatch) -> None:
    async def fake_getaddrinfo(host, port, **kw):  # pure decision logic: a fixed DNS answer
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.1", port))]

    async def go() -> None:
        monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", fake_getaddrinfo)
        with pytest.raises(AddressRefused, match=r"10\.0\.0\.1"):
            await AddressGuard().resolve("mixed.example", 80)

    asyncio.run(go())


def test_resolve_reports_names_that_do_not_resolve() -> None:
    with pytest.raises(NameNotResolved, match=r"nothing\.invalid"):
        asyncio.run(AddressGuard().resolve("nothing.invalid", 80))


def test_transport_refuses_at_connection_time(web: WebServer) -> None:
    """The connection itself is guarded, not only the pre-check: a client on the guarded
    transport cannot reach a loopback port that is not allowed."""
    web.route("/", Reply(200, b"allowed"))

    async def go() -> None:
        with WebServer() as other:
            other.route("/", Reply(200, b"secret"))
            guard = AddressGuard.allowing([("127.0.0.1", web.port)])
            transport = _GuardedTransport(guard, ssl_context=httpx.create_ssl_context(),
                                          http2=False, limits=httpx.Limits())
            async with httpx.AsyncClient(transport=transport) as client:
                assert (await client.get(web.url("/"))).content == b"allowed"
                with pytest.raises(AddressRefused, match="loopback"):
                    await client.get(other.url("/"))
                assert other.hits["/"] == 0

    asyncio.run(go())


def test_dns_rebinding_is_caught_at_connection_time(web: WebServer, monkeypatch) -> None:
    """A name that resolves to a public address for the pre-check and to loopback when the
    connection is made (DNS rebinding) is refused, and the server is never reached."""
    web.route("/", Reply(200, b"internal"))
    answers = iter(["93.184.216.34", "127.0.0.1"])

    async def rebinding_getaddrinfo(host, port, **kw):  # the attacker's DNS, not the network
        if host != "rebind.example":
            raise socket.gaierror(socket.EAI_NONAME, "unknown")
        address = next(answers, "127.0.0.1")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    settings = FetchSettings(allow_private_networks=False, retries=0, timeout=2, deadline=5)

    async def go():
        monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", rebinding_getaddrinfo)
        async with Fetcher(settings) as fetcher:
            return await fetcher.fetch(f"http://rebind.example:{web.port}/")

    with retry.testing():
        result = asyncio.run(go())
    assert isinstance(result, FetchFailure) and result.verdict is Verdict.PRIVATE_ADDRESS
    assert "rebind.example resolves to 127.0.0.1" in result.reason
    assert web.hits["/"] == 0


def test_a_name_is_resolved_once_for_its_urls_and_checked_at_every_connection(
        web: WebServer, monkeypatch) -> None:
    """Consecutive URLs of one host share the pre-check's resolution (no lookup per URL),
    while every new connection still resolves and checks: when the name turns to a refused
    address, the next connection is refused and the server is not reached again."""
    for path in ("/a", "/b", "/c", "/d"):
        web.route(path, Reply(200, b"page", {"Connection": "close"}))
    lookups: list[str] = []
    answer = {"address": "127.0.0.1"}

    async def counting_getaddrinfo(host, port, **kw):  # a fixed DNS answer, counted
        if host != "cached.example":
            raise socket.gaierror(socket.EAI_NONAME, "unknown")
        lookups.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answer["address"], port))]

    guard = AddressGuard.allowing([("127.0.0.1", web.port)])
    settings = FetchSettings(retries=0, timeout=2, deadline=5, host_interval=0)

    async def go():
        monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", counting_getaddrinfo)
        async with Fetcher(settings, guard=guard) as fetcher:
            first = [await fetcher.fetch(f"http://cached.example:{web.port}{path}")
                     for path in ("/a", "/b", "/c")]
            answer["address"] = "127.0.0.2"  # the name now leads somewhere refused
            return first, await fetcher.fetch(f"http://cached.example:{web.port}/d")

    with retry.testing():
        first, last = asyncio.run(go())
    assert [r.status for r in first if isinstance(r, Capture)] == [200, 200, 200]
    # One pre-check lookup, then one per connection (the server closes each one).
    assert len(lookups) == 1 + 3 + 1
    assert isinstance(last, FetchFailure) and last.verdict is Verdict.PRIVATE_ADDRESS
    assert "cached.example resolves to 127.0.0.2" in last.reason
    assert web.hits["/d"] == 0


def test_allow_private_networks_turns_the_rules_off(web: WebServer) -> None:
    web.route("/", Reply(200, b"intranet page"))
    settings = replace(FetchSettings(), allow_private_networks=True, timeout=2)

    async def go():
        async with Fetcher(settings) as fetcher:
            return await fetcher.fetch(web.url("/"))

    result = asyncio.run(go())
    assert isinstance(result, Capture) and result.content == b"intranet page"
