"""Host names as browsers read them: the WHATWG URL standard's host parser, pure.

A URL's host can spell one address many ways: ``2130706433``, ``0x7f000001``, ``127.1``,
``0177.0.0.1``, ``127.0.0.1.``, ``%31%32%37.0.0.1`` and fullwidth ``１２７．０．０．１`` are all
``127.0.0.1`` to a browser, to ``getaddrinfo`` and to most proxies. Every decision about a host
(the address guard, ``NO_PROXY``, the linter, archive lookups) is taken on the one form this
module gives, and the fetcher sends its requests to that same form, so what is checked is what
is fetched.

:func:`parse_host` follows https://url.spec.whatwg.org/#host-parsing for http(s) URLs:

* ``[...]`` is an IPv6 address (zone identifiers are not allowed);
* otherwise the host is percent-decoded, mapped with UTS #46 (fullwidth forms and other
  compatibility characters folded, lower case, non-transitional) and encoded with IDNA;
* a result containing a forbidden code point (space, ``%``, ``/``, ``\\``, ``@``, ...) fails;
* if its last label is a number (``ends in a number``: decimal digits, or ``0x`` with hex
  digits), it must be an IPv4 address: 1 to 4 dot-separated parts, each decimal, octal
  (leading ``0``) or hex (``0x``), the last part filling the remaining bytes; one trailing dot
  is allowed. Anything else ending in a number fails (``1.2.3.4.5``, ``foo.09``,
  ``0x100000000``), as it does in browsers;
* any other result is a domain, kept as encoded (a trailing dot included: ``example.com.``
  is a different, fully qualified, name to DNS and to the server's ``Host`` header);
  :attr:`Host.name` drops the trailing dot for comparisons.

Failure raises :class:`HostError` (a ``ValueError``) with a short reason.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes, urlsplit

import idna

__all__ = ["Host", "HostError", "address_of", "canonical_url", "ends_in_a_number",
           "parse_host", "parse_ipv4", "url_host"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# https://url.spec.whatwg.org/#forbidden-domain-code-point
_FORBIDDEN_HOST = set("\x00\t\n\r #/:<>?@[\\]^|")
_FORBIDDEN_DOMAIN = _FORBIDDEN_HOST | {chr(c) for c in range(0x20)} | {"%", "\x7f"}


class HostError(ValueError):
    """The host is not a valid host (what a browser would refuse to load)."""


@dataclass(frozen=True)
class Host:
    """A parsed host. ``text`` is its form in a URL (IPv6 in brackets); ``address`` the IP
    address it denotes, or ``None`` for a domain; ``name`` is ``text`` without brackets or a
    trailing dot, the form to compare."""

    text: str
    address: IPAddress | None = None

    @property
    def name(self) -> str:
        if self.address is not None:
            return str(self.address)
        return self.text[:-1] if self.text.endswith(".") else self.text


def parse_host(raw: str) -> Host:
    """Parse the host part of an http(s) URL as a browser does (see the module docstring).

    ``parse_host("0x7F.1")`` is ``Host("127.0.0.1", IPv4Address("127.0.0.1"))``;
    ``parse_host("Bücher.de")`` is ``Host("xn--bcher-kva.de")``. Raises ``HostError``.
    """
    if not raw:
        raise HostError("empty host")
    if raw.startswith("["):
        if not raw.endswith("]"):
            raise HostError(f"{raw!r}: unclosed IPv6 bracket")
        inner = raw[1:-1]
        if "%" in inner:
            raise HostError(f"{raw!r}: zone identifiers are not allowed in URLs")
        try:
            v6 = ipaddress.IPv6Address(inner)
        except ValueError as exc:
            raise HostError(f"{raw!r}: not an IPv6 address ({exc})") from None
        return Host(f"[{v6.compressed}]", v6)
    try:
        domain = unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise HostError(f"{raw!r}: percent-encoding is not UTF-8") from None
    ascii_domain = _domain_to_ascii(domain)
    bad = sorted({c for c in ascii_domain if c in _FORBIDDEN_DOMAIN})
    if bad:
        raise HostError(f"{raw!r}: contains {''.join(bad)!r}")
    if ends_in_a_number(ascii_domain):
        v4 = parse_ipv4(ascii_domain)
        return Host(str(v4), v4)
    return Host(ascii_domain)


def address_of(host: str) -> IPAddress | None:
    """The IP address ``host`` denotes in any notation (``"127.1"``, ``"[::1]"``, and ``"::1"``
    as ``urlsplit().hostname`` and httpx give it), or ``None`` for a domain or an invalid
    host. For "is this host an IP address?" questions; never raises."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    try:
        return parse_host(host).address
    except HostError:
        return None


def ends_in_a_number(domain: str) -> bool:
    """WHATWG "ends in a number": is the last label (after one trailing dot) a number, so
    that the host must be read as IPv4?"""
    parts = domain.split(".")
    if parts[-1] == "":
        if len(parts) == 1:
            return False
        parts.pop()
    last = parts[-1]
    if last and last.isascii() and last.isdigit():
        return True
    try:
        _ipv4_number(last)
    except HostError:
        return False
    return True


def parse_ipv4(text: str) -> ipaddress.IPv4Address:
    """WHATWG IPv4 parser: ``"127.1"``, ``"0x7f000001"``, ``"0177.0.0.1."`` → 127.0.0.1.

    Raises ``HostError`` for more than four parts, a part that is not a number, a part other
    than the last above 255, or a last part too big for the bytes it must fill."""
    parts = text.split(".")
    if parts[-1] == "" and len(parts) > 1:
        parts.pop()
    if len(parts) > 4:
        raise HostError(f"{text!r}: more than four parts in an IPv4 address")
    try:
        numbers = [_ipv4_number(part) for part in parts]
    except HostError as exc:
        raise HostError(f"{text!r}: ends in a number but is not an IPv4 address ({exc})") \
            from None
    if any(n > 255 for n in numbers[:-1]):
        raise HostError(f"{text!r}: an IPv4 part above 255")
    if numbers[-1] >= 256 ** (5 - len(numbers)):
        raise HostError(f"{text!r}: IPv4 address out of range")
    value = numbers[-1]
    for index, number in enumerate(numbers[:-1]):
        value += number * 256 ** (3 - index)
    return ipaddress.IPv4Address(value)


def _ipv4_number(part: str) -> int:
    if part == "":
        raise HostError("empty IPv4 part")
    radix = 10
    if part[:2] in ("0x", "0X"):
        part, radix = part[2:], 16
    elif len(part) >= 2 and part[0] == "0":
        part, radix = part[1:], 8
    if part == "":
        return 0
    digits = "0123456789abcdefABCDEF"[: 10 if radix == 10 else 8 if radix == 8 else 22]
    if not all(c in digits for c in part):
        raise HostError(f"{part!r} is not a base-{radix} number")
    return int(part, radix)


def _domain_to_ascii(domain: str) -> str:
    """UTS #46 ToASCII with the URL standard's flags (non-transitional, no STD3 rules,
    no hyphen or length checks): ASCII labels are only lower-cased, others IDNA-encoded."""
    if domain.isascii():
        return domain.lower()
    try:
        mapped = idna.uts46_remap(domain, std3_rules=False, transitional=False)
    except idna.IDNAError as exc:
        raise HostError(f"{domain!r}: {exc}") from None
    labels = []
    for label in mapped.split("."):
        if label.isascii():
            labels.append(label.lower())
            continue
        try:
            labels.append(idna.alabel(label).decode("ascii"))
        except (idna.IDNAError, UnicodeError) as exc:
            raise HostError(f"{domain!r}: not a valid international name ({exc})") from None
    result = ".".join(labels)
    if not result:
        raise HostError(f"{domain!r}: empty host")
    return result


def url_host(url: str) -> str:
    """The host of ``url`` exactly as written (brackets kept, no user info or port);
    ``""`` when there is none. Raises ``ValueError`` when ``url`` cannot be split."""
    netloc = urlsplit(url).netloc
    hostport = netloc.rpartition("@")[2]
    if hostport.startswith("["):
        return hostport[: hostport.find("]") + 1] if "]" in hostport else hostport
    return hostport.partition(":")[0]


# ``parse_host`` remembered for the hosts of the last URLs: a run's URLs share a few hosts,
# and every URL fetched is made canonical first. ``Host`` values never change; a host that
# raises ``HostError`` is parsed (and raises) again every time.
_parse_host_cached = functools.lru_cache(maxsize=1024)(parse_host)


def canonical_url(url: str) -> str:
    """``url`` with its host replaced by the parsed form (``http://0x7f.1:8080/a`` →
    ``http://127.0.0.1:8080/a``); everything else is left as written. Raises ``HostError``
    when the host is not valid (``ValueError`` when the URL cannot be split)."""
    parts = urlsplit(url)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    raw = url_host(url)
    host = _parse_host_cached(raw)
    netloc = userinfo + at + host.text + hostport[len(raw):]
    if netloc == parts.netloc:
        return url
    # Splice rather than urlunsplit, which would drop an empty "?" or "#".
    start = url.index("//") + 2
    if url[start:start + len(parts.netloc)] != parts.netloc:
        raise HostError(f"{url!r}: the host cannot be located in the URL")
    return url[:start] + netloc + url[start + len(parts.netloc):]
