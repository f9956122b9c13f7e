"""Hosts read as browsers read them: the WHATWG URL standard's host parser.

Expected values are the URL standard's own (https://url.spec.whatwg.org/#host-parsing and the
web-platform-tests file ``url/resources/urltestdata.json``), not this module's output.
"""

from __future__ import annotations

import ipaddress
import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from archiver.hosts import (
    Host,
    HostError,
    canonical_url,
    ends_in_a_number,
    parse_host,
    parse_ipv4,
)


@pytest.mark.parametrize(("raw", "expected"), [
    # urltestdata.json
    ("0Xc0.0250.01", "192.168.0.1"),
    ("%30%78%63%30%2e%30%32%35%30.01", "192.168.0.1"),
    ("%30%78%63%30%2e%30%32%35%30.01%2e", "192.168.0.1"),
    ("\uff10\uff38\uff43\uff10\uff0e\uff10\uff12\uff15\uff10\uff0e\uff10\uff11", "192.168.0.1"),
    ("0x.0x.0", "0.0.0.0"),
    ("4294967295", "255.255.255.255"),
    ("0xffffffff", "255.255.255.255"),
    ("10.0.0.255", "10.0.0.255"),
    # the forms an SSRF campaign used (issue 10)
    ("2130706433", "127.0.0.1"),
    ("0x7f000001", "127.0.0.1"),
    ("127.1", "127.0.0.1"),
    ("0", "0.0.0.0"),
    ("0xa9fea9fe", "169.254.169.254"),
    ("0177.0.0.1", "127.0.0.1"),
    ("127.0.0.1.", "127.0.0.1"),
    ("%31%32%37.0.0.1", "127.0.0.1"),
    ("\uff11\uff12\uff17\u3002\uff10\u3002\uff10\u3002\uff11", "127.0.0.1"),
    ("0x7f.1", "127.0.0.1"),
    ("0x7F.0.0X0.01", "127.0.0.1"),
    ("127.0.1", "127.0.0.1"),
])
def test_ipv4_in_every_notation(raw: str, expected: str) -> None:
    host = parse_host(raw)
    assert host == Host(expected, ipaddress.IPv4Address(expected))
    assert host.name == expected


@pytest.mark.parametrize(("raw", "expected"), [
    ("[::127.0.0.1]", "[::7f00:1]"),
    ("[0:0:0:0:0:0:13.1.68.3]", "[::d01:4403]"),
    ("[::ffff:127.0.0.1]", "[::ffff:7f00:1]"),
    ("[2001:DB8::1]", "[2001:db8::1]"),
])
def test_ipv6_literals(raw: str, expected: str) -> None:
    host = parse_host(raw)
    assert host.text == expected
    assert isinstance(host.address, ipaddress.IPv6Address)


@pytest.mark.parametrize(("raw", "expected"), [
    ("Go.com", "go.com"),
    ("\uff27\uff2f.com", "go.com"),  # fullwidth letters
    ("\u4f60\u597d\u4f60\u597d", "xn--6qqa088eba"),
    ("B\u00fccher.de", "xn--bcher-kva.de"),
    ("example.com.", "example.com."),  # a domain keeps its trailing dot (it is a name)
    ("a_b.example", "a_b.example"),  # the URL standard does not apply STD3 rules
    ("foo.0.bar", "foo.0.bar"),  # a number inside is fine; only the last label counts
    ("0.0.0.bar", "0.0.0.bar"),
    ("1.2.3.4.bar", "1.2.3.4.bar"),
    ("ex%41mple.org", "example.org"),
])
def test_domains(raw: str, expected: str) -> None:
    host = parse_host(raw)
    assert host == Host(expected)
    assert host.name == expected.rstrip(".")


@pytest.mark.parametrize("raw", [
    # urltestdata.json: "Last component looks like a number, but not valid IPv4"
    "1.2.3.4.5", "1.2.3.4.5.", "0..0x300", "0..0x300.", "256.256.256.256.256",
    "foo.09", "foo.0x4", "foo.09.", "09.2.3.4", "1.2.3.08", "1.2.3.09.",
    # out of range
    "0x100000000", "4294967296", "256.256.256.256", "192.168.0.257", "0xffffffff1",
    "1.256.0.1",
    # forbidden code points, also when percent-encoded or fullwidth
    "%25", "a%25b", "\uff05\uff14\uff11.com", "exa mple.org", "a<b", "a\\b", "%zz%66%a.com",
    "hello%00",
    # broken IPv6
    "[google.com]", "[::1", "[fe80::1%25eth0]",
    "",
])
def test_what_browsers_refuse(raw: str) -> None:
    with pytest.raises(HostError):
        parse_host(raw)


@pytest.mark.parametrize(("domain", "answer"), [
    ("127.0.0.1", True), ("127.0.0.1.", True), ("example.09", True), ("example.0x", True),
    ("example.0xZZ", False), ("example.com", False), ("example.com.", False), (".", False),
    ("09.example", False), ("", False),
])
def test_ends_in_a_number(domain: str, answer: bool) -> None:
    assert ends_in_a_number(domain) is answer


def test_ipv4_parts_fill_the_remaining_bytes() -> None:
    assert parse_ipv4("1") == ipaddress.IPv4Address("0.0.0.1")
    assert parse_ipv4("1.65536") == ipaddress.IPv4Address("1.1.0.0")
    assert parse_ipv4("1.2.65535") == ipaddress.IPv4Address("1.2.255.255")
    with pytest.raises(HostError):
        parse_ipv4("1.2.65536")
    with pytest.raises(HostError):
        parse_ipv4("1.16777216")


@pytest.mark.parametrize(("url", "expected"), [
    ("http://0x7f.1:8080/a?b=1#c", "http://127.0.0.1:8080/a?b=1#c"),
    ("http://user:pw@2130706433/", "http://user:pw@127.0.0.1/"),
    ("https://Example.COM/Path?", "https://example.com/Path?"),
    ("http://[0:0::1]:81/", "http://[::1]:81/"),
    ("http://example.com/x#", "http://example.com/x#"),
    ("https://\uff27\uff2f.com/p", "https://go.com/p"),
])
def test_canonical_url_replaces_only_the_host(url: str, expected: str) -> None:
    assert canonical_url(url) == expected


def test_canonical_url_refuses_invalid_hosts() -> None:
    with pytest.raises(HostError, match=r"1\.2\.3\.4\.5"):
        canonical_url("http://1.2.3.4.5/")


_PART = st.tuples(st.integers(0, 2**32), st.sampled_from(["dec", "oct", "hex", "HEX"]))


def _spell(value: int, radix: str) -> str:
    if radix == "oct":
        return "0" + format(value, "o")
    if radix == "hex":
        return "0x" + format(value, "x")
    if radix == "HEX":
        return "0X" + format(value, "X")
    return str(value)


@given(st.lists(_PART, min_size=1, max_size=4), st.booleans())
def test_ipv4_reading_agrees_with_the_c_library(parts: list[tuple[int, str]],
                                                trailing_dot: bool) -> None:
    """inet_aton reads numeric hosts as getaddrinfo, curl and most proxies do; the WHATWG
    parser must find the same address, or refuse what inet_aton refuses."""
    text = ".".join(_spell(value, radix) for value, radix in parts)
    try:
        expected = socket.inet_ntoa(socket.inet_aton(text))
    except OSError:
        expected = None
    host = text + ("." if trailing_dot else "")
    if expected is None:
        with pytest.raises(HostError):
            parse_host(host)
    else:
        assert parse_host(host) == Host(expected, ipaddress.IPv4Address(expected))
