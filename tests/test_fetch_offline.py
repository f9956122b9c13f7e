"""``Fetcher.decided_offline`` (asked for every URL of a run before its first fetch) reads
the common spelling of a URL without httpx (``fetch.plain_host_port``): for every URL it
reads, httpx's own parse must agree (valid, same host, same port), and so must the answer."""

from __future__ import annotations

import random

import pytest

from archiver.config import FetchSettings
from archiver.fetch import Fetcher, _parsed, plain_host_port
from archiver.guard import refusal_without_dns

EDGES = [
    "http://127.0.0.1:8080/news/00001-world-story.html",
    "https://Example.COM:443/a?b=c#d", "http://example.com", "http://example.com:8443",
    "http://999.1.1.1/", "http://01.2.3.4/", "http://1.2.3/", "http://0x7f.1/",
    "http://2130706433/", "http://localhost/", "http://LOCALHOST:80/x", "http://a.localhost/",
    "http://a..b/", "http://./", "http://h./", "http://.h/", "http://-h-/",
    "http://xn--localhost/", "http://a.xn--80ak6aa92e.com/", "http://XN--80AK6AA92E.com/",
    "http://host:65535/", "http://host:65536/", "http://host:99999/", "http://host:0/",
    "http://host:080/", "http://host:00443/", "https://host:80/", "http://host:/x",
    "http://h/%zz", "http://h/%41", "http://h/a b", "http://h/a\tb", "HTTP://h/", "Http://h/",
    "ftp://h/", "http://[::1]/", "http://[::1]:80/", "http://user@h/", "http://u:p@h:1/",
    "http://h/#a#b", "http://h/?q=a'b(c)!*,;:@$&+=~", "http://h?x", "http://h#x",
    "http://h/é", "http://hé/", "http://h/\x00", "http:/h/", "http:///h", "http://",
    "https://10.0.0.1/", "http://169.254.169.254/latest", "http://192.168.1.1:8080/",
    "http://0.0.0.0/", "http://255.255.255.255/", "http://256.1.1.1/", "http://1.2.3.4.5/",
    "http://a" + "b" * 5000 + ".com/",
]

HOST_CHARS = "abcdefghXYZ0123456789.-"
SAFE_PATH_CHARS = "abcXYZ019-._~!$&'()*+,;=%:@/?#"
PATH_CHARS = SAFE_PATH_CHARS + "[]\\^`{|}\"<> é\u00a0"


def generated(count: int) -> list[str]:
    rng = random.Random(14)
    urls = []
    for _ in range(count):
        scheme = rng.choice(["http", "https", "http", "https", "HTTP", "ftp"])
        kind = rng.random()
        if kind < 0.3:
            host = ".".join(str(rng.choice([0, 1, 10, 127, 169, 192, 254, 255, 256, 999, 7]))
                            for _ in range(rng.choice([3, 4, 4, 4, 5])))
        elif kind < 0.35:
            host = rng.choice(["xn--", "a.xn--", "XN--"]) + "80ak6aa92e"
        else:
            host = "".join(rng.choice(HOST_CHARS) for _ in range(rng.randint(0, 12)))
        port = rng.choice(["", "", "", ":", ":0", ":80", ":443", ":65535", ":65536",
                           f":{rng.randint(0, 99999)}", ":0080"])
        chars = rng.choice([SAFE_PATH_CHARS, PATH_CHARS])
        path = "".join(rng.choice(chars) for _ in range(rng.randint(0, 16)))
        path = rng.choice(["/", "", "?", "#"]) + path if path else path
        urls.append(f"{scheme}://{host}{port}{path}")
    return urls


def httpx_host_port(url: str) -> tuple[str, int] | None:
    parsed, problem = _parsed(url)
    if problem is not None:
        return None
    assert parsed is not None
    return parsed.host, parsed.port or (443 if parsed.scheme == "https" else 80)


def offline_by_httpx(fetcher: Fetcher, url: str) -> bool:
    """``decided_offline`` as it was, every URL through httpx."""
    plain = httpx_host_port(url)
    if plain is None:
        return True
    if fetcher.guard.allow_private:
        return False
    return refusal_without_dns(fetcher.guard, *plain) is not None


@pytest.mark.parametrize("allow_private", [False, True])
def test_plain_urls_read_as_httpx_reads_them(allow_private: bool) -> None:
    fetcher = Fetcher(FetchSettings(allow_private_networks=allow_private), None)
    urls = EDGES + generated(8000)
    read = 0
    for url in urls:
        plain = plain_host_port(url)
        if plain is not None:
            read += 1
            assert httpx_host_port(url) == plain, url
        assert fetcher.decided_offline(url) == offline_by_httpx(fetcher, url), url
    # The fast path is taken for the common spelling, and for a good share of the rest.
    assert plain_host_port(EDGES[0]) == ("127.0.0.1", 8080)
    assert plain_host_port("https://Example.COM:443/a?b=c#d") == ("example.com", 443)
    assert read > len(urls) // 10, read
