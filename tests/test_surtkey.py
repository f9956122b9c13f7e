"""The index's SURT keys: ``surtkey.url_key`` against ``surt.surt`` itself (what
``cdxj-indexer`` calls, the URL unchanged when it raises), URL by URL, on the briefing's URLs,
hand-written awkward ones, a large seeded random corpus and hypothesis-generated URLs."""

from __future__ import annotations

import random
import string
from pathlib import Path

import pytest
import surt
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archiver import surtkey
from archiver.parse import read_document
from archiver.warc import url_key

REPO = Path(__file__).resolve().parent.parent
BRIEFING = REPO / "sources" / "kazakhstan-2020.md"


def reference(url: str) -> str:
    """``cdxj_indexer.main.CDXJIndexer.get_url_key`` as it is written."""
    try:
        return str(surt.surt(url))
    except Exception:
        return url


def briefing_urls() -> list[str]:
    doc = read_document(BRIEFING)
    return [url for footnote in doc.footnotes for url in footnote.urls]


HAND_WRITTEN = [
    # plain, upper case, www prefixes, default and other ports
    "http://example.com/", "http://example.com", "https://example.com", "http://EXAMPLE.com/A/B",
    "https://WWW.Example.COM/News/Story.HTML", "http://www.example.com/", "http://www2.example.com/",
    "http://www12.example.com/x", "http://wwwexample.com/", "http://www.www.example.com/",
    "http://www./", "http://www/", "http://www1./x", "http://example.com:80/", "https://example.com:443/",
    "http://example.com:443/", "https://example.com:80/", "http://example.com:8080/",
    "http://example.com:0/", "http://example.com:080/", "http://example.com:65535/",
    "http://example.com:65536/", "http://example.com:99999/", "http://example.com:/x",
    "http://example.com::/x", "http://example.com:8x/", "http://example.com:-1/",
    "http://example.com: 80/", "http://example.com:٣/",
    # user info
    "http://user@example.com/", "http://user:pass@example.com:8080/a", "http://@example.com/",
    "http://user@/x", "http://a@b@example.com/", "http://us%40er:p%3Ass@www.example.com/",
    # IDN and non-ASCII
    "http://пример.рф/путь?ключ=значение", "https://xn--e1afmkfd.xn--p1ai/", "http://BÜCHER.de/",
    "http://bücher.de/Straße", "http://例え.テスト/パス", "http://ex%C3%A4mple.com/",
    "http://\u00e9xample.com/%E9", "http://xn--.com/", "http://a..b/", "http://-a-.com/",
    "http://" + "a" * 64 + ".com/", "http://" + "a" * 300 + "/", "http://\u2024.com/",
    "http://\udcff.com/", "http://example.com/\udcff",
    # IP literals
    "http://127.0.0.1:8080/news/1.html", "http://127.0.0.1/", "http://2130706433/",
    "http://4294967297/", "http://0x7f.0.0.1/", "http://017.0.0.1/", "http://0177.0.0.01/",
    "http://1.2/", "http://1.2.3/", "http://999.1.1.1/", "http://08.1.1.1/", "http://00/",
    "http://[::1]/", "http://[::1]:8080/x", "http://[2001:DB8::1]/A", "http://[fe80::1%25eth0]/",
    "http://[::1/", "http://::1]/", "http://[v1.fe]/", "http://1.2.3.4./", "http://01.2.3.4/",
    # trailing dots, odd hosts
    "http://example.com./", "http://example.com../", "http://.example.com/", "http://./",
    "http://../", "http://...:80/", "http://a%2Eb.com/", "http://a%2Fb.com/", "http://a%252Fb/",
    "http://a b.com/", "http://a)b.com/", "http://a(b).com/", "http://%00.com/", "http://%zz.com/",
    # empty paths, several slashes, no authority
    "http:", "http:/", "http://", "http:///", "http:////www.vikings.com", "http:///a/b",
    "https:////example.com//a//b//", "http:/example.com/a", "http:example.com",
    "http://example.com?", "http://example.com?#", "http://example.com#", "http://example.com#f",
    "http://example.com?a", "http://example.com/?", "http://example.com/?#x",
    # repeated schemes
    "http://https://example.com/", "http://http://http://example.com/a", "https://http//x.com/",
    "http://HTTP://example.com/", "http://https:/x/",
    # paths: dots, percent-encoding, case, session IDs
    "http://e.com/a/./b/../c/", "http://e.com/../a", "http://e.com/a/..", "http://e.com/.",
    "http://e.com/..", "http://e.com/a/.b/..c/...", "http://e.com/%2e%2e/a", "http://e.com/%2E/x",
    "http://e.com/a%2Fb", "http://e.com/%25", "http://e.com/%2525", "http://e.com/%252525x",
    "http://e.com/%", "http://e.com/%%", "http://e.com/%zz", "http://e.com/%4", "http://e.com/%41",
    "http://e.com/%7e%7E~", "http://e.com/a b", "http://e.com/a%20b", "http://e.com/a+b",
    "http://e.com/a%2Bb", "http://e.com/\"<>\\^`{|}", "http://e.com/%FF%fe", "http://e.com/A%C3%A4",
    "http://e.com/a/(x(abcdefghijklmnopqrstuvwx))/page.aspx",
    "http://e.com/a/(ABCDEFGHIJKLMNOPQRSTUVWX)/page.aspx?x=1", "http://e.com/(a)/", "http://e.com//",
    "http://e.com/a//", "http://e.com/a/", "http://e.com/A/", "http://e.com/;jsessionid=1",
    # queries: order, empty parts, case, session IDs, encoding
    "http://e.com/?b=2&a=1", "http://e.com/?a=2&a=1&A=0", "http://e.com/?a&b=&c", "http://e.com/?&",
    "http://e.com/?&&a", "http://e.com/?=", "http://e.com/??", "http://e.com/?a?b", "http://e.com/?x",
    "http://e.com/?a=%20&b=%2520", "http://e.com/?q=%D0%BF%D1%80", "http://e.com/?q=при вет",
    "http://e.com/?jsessionid=0123456789abcdef0123456789ABCDEF",
    "http://e.com/?a=1&jsessionid=0123456789abcdef0123456789ABCDEF&b=2",
    "http://e.com/?PHPSESSID=0123456789abcdef0123456789ABCDEF", "http://e.com/?sid=" + "a" * 32,
    "http://e.com/?ASPSESSIONIDabcdefgh=abcdefghijklmnopqrstuvwx&z=1",
    "http://e.com/?cfid=1&cftoken=2&x=3", "http://e.com/?utm_source=x&utm_medium=y",
    "https://www.instagram.com/p/CcdNziZHHqA/?utm_source=ig_embed",
    # fragments
    "http://e.com/a#frag", "http://e.com/a?b#c?d", "http://e.com/#", "http://e.com#a/b?c",
    "http://e.com/a#%20", "http://e.com/a##",
    # whitespace and control characters
    " http://e.com/", "http://e.com/ ", "\thttp://e.com/", "http://e.com/\n", "http://e.\nc\tom/",
    "http://e.com/a\r\nb", "http://e.com/\x0bx", "\x0chttp://e.com/", "http://e.com/\x00",
    "http://e.com/\x7f", "http://e .com/",
    # other schemes and no scheme
    "urn:provenance:http://127.0.0.10:8080/news/00000-culture-story.html", "urn:x:Y",
    "urn:", "urn:/x", "urn://x/y", "urn:?q", "urn:a?b=1&a=2#f", "urn:a/./b/", "urn:a%2Fb",
    "URN:x", "urn:a b", "urn:(ABCDEFGHIJKLMNOPQRSTUVWX)/x.aspx", "urn:a/", "urn:/",
    "HTTP://example.com/", "Https://example.com/", "httpx://example.com/", "https-x://e.com/",
    "ftp://ftp.example.com/pub/", "dns:example.com", "filedesc://x.arc", "filedescx:y",
    "mailto:someone@example.com", "javascript:void(0)", "data:text/plain,hi", "about:blank",
    "example.com/path", "www.example.com", "//example.com/x", "/relative/path", "?q=1", "#frag",
    "", " ", "-", ":", "1http://x/", "h:", "http", "https:/", "metadata://e.com/x",
]


def test_briefing_urls() -> None:
    urls = briefing_urls()
    assert len(urls) > 90
    for url in urls:
        assert url_key(url) == reference(url), url


def test_briefing_urls_take_the_short_way() -> None:
    """The plain URLs a run captures do not fall back to ``surt.surt``."""
    for url in briefing_urls():
        if url.startswith(("http://", "https://")) and url.isascii() and " " not in url:
            assert surtkey._fast(url) is not None, url


def test_hand_written() -> None:
    for url in HAND_WRITTEN:
        assert url_key(url) == reference(url), repr(url)


@pytest.mark.parametrize("url", ["http://e.com/a?b=2&a=1#f",
                                 "urn:provenance:http://127.0.0.10:8080/news/1.html"])
def test_fast_path_taken(url: str) -> None:
    assert surtkey._fast(url) == reference(url)


# Pieces the random URLs are made of, rich in what canonicalisation changes.
SCHEMES = ["http", "https", "http", "https", "HTTP", "urn", "ftp", "dns", "filedesc", ""]
LABELS = ["example", "EXAMPLE", "Www", "www", "www1", "www12", "wwwx", "xn--e1afmkfd", "пример",
          "bücher", "a", "b-c", "1", "127", "0", "017", "0x7f", "255", "256", "999", "", "%2e",
          "%41", "a%20b", "rf", "com", "ru", "kz"]
USERINFO = ["", "", "", "user@", "user:pass@", "@", "a%40b@", "u:@"]
PORTS = ["", "", "", ":80", ":443", ":8080", ":0", ":080", ":", ":99999", ":x"]
SEGMENTS = ["a", "B", "news", "story.HTML", ".", "..", "", "%2e", "%2E%2e", "%25", "%2525", "%",
            "%zz", "a%2Fb", "a b", "~x", "(x)", "(abcdefghijklmnopqrstuvwx)", "page.aspx",
            "путь", "%D0%BF", "a+b", ";p=1", "\"<>", "x.y.z", "index.html", "Москва"]
PARAMS = ["a=1", "b=2", "A=1", "a", "a=", "=", "", "q=%20x", "q=%2520", "utm_source=x",
          "jsessionid=0123456789abcdef0123456789ABCDEF", "sid=" + "b" * 32, "cfid=1&cftoken=2",
          "k=значение", "x=a%26b", "Z=Y"]
FRAGMENTS = ["", "", "#", "#frag", "#a?b", "#%20", "#/x/../y"]
PADDING = ["", "", "", "", " ", "\t", "\n", "\r\n"]


def random_url(rng: random.Random) -> str:
    scheme = rng.choice(SCHEMES)
    if rng.random() < 0.1:
        host = f"[{rng.choice(['::1', '2001:DB8::1', 'fe80::1', '::FFFF:1.2.3.4'])}]"
    elif rng.random() < 0.15:
        host = ".".join(str(rng.choice([0, 1, 7, 10, 127, 255, 256, 999, 2130706433]))
                        for _ in range(rng.randint(1, 5)))
    else:
        host = ".".join(rng.choice(LABELS) for _ in range(rng.randint(1, 4)))
        host += rng.choice(["", "", "", ".", ".."])
    authority = rng.choice(USERINFO) + host + rng.choice(PORTS)
    path = "".join("/" + rng.choice(SEGMENTS) for _ in range(rng.randint(0, 5)))
    path += rng.choice(["", "", "/", "//"])
    query = ""
    if rng.random() < 0.5:
        query = "?" + "&".join(rng.choice(PARAMS) for _ in range(rng.randint(0, 4)))
    rest = path + query + rng.choice(FRAGMENTS)
    shape = rng.random()
    if scheme == "urn":
        url = "urn:" + rng.choice(["", "x:", "provenance:http://"]) + authority + rest
    elif shape < 0.8:
        url = f"{scheme}://{authority}{rest}" if scheme else f"{authority}{rest}"
    elif shape < 0.9:
        url = f"{scheme}:{rng.choice(['', '/', '///', '////'])}{authority}{rest}"
    else:
        again = rng.choice(["http://", "https://", "HTTP://", "http:"])
        url = f"{scheme}://{again}{authority}{rest}"
    if rng.random() < 0.2:
        url = rng.choice(PADDING) + url + rng.choice(PADDING)
    if rng.random() < 0.1:
        at = rng.randrange(len(url) + 1)
        url = url[:at] + rng.choice(string.printable + "\u00e9\u0416") + url[at:]
    return url


def test_random_corpus() -> None:
    """20,000 URLs assembled at random (seeded) from awkward pieces."""
    rng = random.Random(20261130)
    fast = 0
    for _ in range(20_000):
        url = random_url(rng)
        assert url_key(url) == reference(url), repr(url)
        fast += surtkey._fast(url) is not None
    assert fast > 5_000  # the comparison exercised the short way, not only the fallback


# hypothesis: URLs from the same pieces and from arbitrary text.
pieces = st.builds(
    lambda scheme, userinfo, labels, dot, port, segments, tail, params, fragment: (
        f"{scheme}://{userinfo}{'.'.join(labels)}{dot}{port}"
        + "".join("/" + s for s in segments) + tail
        + ("?" + "&".join(params) if params is not None else "") + fragment),
    st.sampled_from(["http", "https"]),
    st.sampled_from(USERINFO),
    st.lists(st.sampled_from(LABELS) | st.text(string.ascii_letters + string.digits + "-%",
                                               max_size=8), min_size=1, max_size=4),
    st.sampled_from(["", "", ".", ".."]),
    st.sampled_from(PORTS) | st.integers(0, 70000).map(lambda n: f":{n}"),
    st.lists(st.sampled_from(SEGMENTS) | st.text(max_size=6), max_size=5),
    st.sampled_from(["", "/", "//"]),
    st.none() | st.lists(st.sampled_from(PARAMS) | st.text(max_size=6), max_size=4),
    st.sampled_from(FRAGMENTS),
)
printable_url = st.builds(lambda scheme, rest: scheme + rest,
                          st.sampled_from(["http://", "https://", "urn:", "http:", ""]),
                          st.text(alphabet=st.characters(codec="utf-8"), max_size=40))


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pieces)
def test_hypothesis_pieces(url: str) -> None:
    assert url_key(url) == reference(url)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(printable_url)
def test_hypothesis_text(url: str) -> None:
    assert url_key(url) == reference(url)
