"""soft404: the probe address, its cache key, the page comparison, and end to end against a
real loopback server (a site that answers 200 for everything, and one that answers 404)."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import itertools
import random
from urllib.parse import urlsplit

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archiver.classify import classify
from archiver.models import Capture, FetchFailure, Hop, Verdict, utcnow
from archiver.soft404 import (
    PROBE_MARKER,
    SAME_PAGE_THRESHOLD,
    ProbeOutcome,
    looks_same,
    needs_probe,
    probe_key,
    probe_url,
)
from tests.webserver import Reply, WebServer


def fetch_capture(url: str, *, max_hops: int = 10) -> Capture:
    """GET ``url`` with plain httpx, following redirects by hand so every hop is kept, and
    build the ``Capture`` the fetcher would hand to ``classify``. Test helper only: the real
    fetcher (archiver/fetch.py) also archives, retries and guards addresses."""
    hops: list[Hop] = []
    current = url
    with httpx.Client(follow_redirects=False, timeout=5.0, trust_env=False) as client:
        for _ in range(max_hops):
            response = client.get(current)
            hops.append(Hop(url=current, status=response.status_code,
                            headers=tuple(response.headers.multi_items())))
            if response.is_redirect and "location" in response.headers:
                current = str(response.url.join(response.headers["location"]))
                continue
            break
    digest = base64.b32encode(hashlib.sha1(response.content).digest()).decode()
    return Capture(
        url=url,
        final_url=current,
        status=response.status_code,
        hops=tuple(hops),
        content=response.content,
        content_type=response.headers.get("content-type"),
        payload_digest=f"sha1:{digest}",
        captured_at=utcnow(),
    )


def _capture(url: str, status: int = 200, body: bytes = b"<p>x</p>") -> Capture:
    return Capture(url=url, final_url=url, status=status,
                   hops=(Hop(url, status, (("Content-Type", "text/html"),)),),
                   content=body, content_type="text/html", payload_digest="sha1:X",
                   captured_at=utcnow())


# ── the probe address ────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("url", "expected_path"),
    [
        ("https://kodeksy-kz.com/ka/ugolovnyj_kodeks/131.htm", "/ka/ugolovnyj_kodeks/{t}.htm"),
        ("https://rus.azattyq.org/a/30324650.html", "/a/{t}.html"),
        ("https://bureau.kz/novosti/poshli-va-bank/", "/novosti/{t}/"),
        ("https://www.facebook.com/OyanQazaqstan", "/{t}"),
        ("https://example.org/", "/{t}"),
        ("https://example.org", "/{t}"),
        ("https://www.iphronline.org/wp-content/uploads/2020/10/report.pdf",
         "/wp-content/uploads/2020/10/{t}.pdf"),
        ("https://azh.kz/ru/news/view/65409?fbclid=IwAR3v6", "/ru/news/view/{t}"),
    ],
)
def test_probe_url_stays_in_the_directory_with_the_same_style(url: str,
                                                              expected_path: str) -> None:
    probe = probe_url(url, rng=random.Random(7))
    parts, original = urlsplit(probe), urlsplit(url)
    assert (parts.scheme, parts.netloc) == (original.scheme, original.netloc)
    token = next(seg for seg in parts.path.split("/") if seg.startswith(PROBE_MARKER))
    token = token.split(".")[0]
    assert len(token) == len(PROBE_MARKER) + 16
    assert parts.path == expected_path.format(t=token)
    assert parts.query == "" and parts.fragment == ""
    # the probe lands in the directory that probe_key names
    assert probe_key(probe) == probe_key(url)


def test_probe_url_is_random_unless_seeded() -> None:
    url = "https://rus.azattyq.org/a/30324650.html"
    assert probe_url(url, rng=random.Random(1)) == probe_url(url, rng=random.Random(1))
    assert len({probe_url(url) for _ in range(20)}) == 20


def test_probe_key_groups_pages_of_one_directory() -> None:
    a = probe_key("https://Bureau.KZ/novosti/poshli-va-bank/")
    b = probe_key("https://bureau.kz/novosti/dve-bolshie-razniczy/")
    assert a == b == ("https://bureau.kz", "/novosti/")
    assert probe_key("https://bureau.kz/goryachee/korona/") == ("https://bureau.kz", "/goryachee/")
    assert probe_key("http://bureau.kz/novosti/x/") != a  # another scheme, another site
    assert probe_key("http://127.0.0.1:8080/a/b.html") == ("http://127.0.0.1:8080", "/a/")
    assert probe_key("https://example.org:443/a/b") == ("https://example.org", "/a/")
    assert probe_key("http://[::1]:99999/x") == ("", "/")  # bad port: no key, no exception


def test_needs_probe_only_for_2xx_pages_that_are_not_the_home_page() -> None:
    assert needs_probe(_capture("https://x.org/a/1.html"))
    assert needs_probe(_capture("https://x.org/a/1.html", status=203))
    assert not needs_probe(_capture("https://x.org/a/1.html", status=404))
    assert not needs_probe(_capture("https://x.org/a/1.html", status=301))
    assert not needs_probe(_capture("https://x.org/"))
    assert not needs_probe(FetchFailure("https://x.org/a", Verdict.TIMEOUT, "no answer in 30 s"))


# ── comparing pages ──────────────────────────────────────────────────────────

ERROR_PAGE = ("Example News\nSorry, we looked everywhere for {path}.\nIt is {date}.\n"
              "Visitors today: {n}\nTry the search box or the home page.")


def test_same_error_page_differing_in_path_dates_and_counters_is_the_same() -> None:
    page = ERROR_PAGE.format(path="/a/30324650.html", date="12 March 2020, 10:31", n=1234)
    probe = ERROR_PAGE.format(path="/a/zz-archiver-probe-00ff00ff00ff00ff.html",
                              date="13 апреля 2021, 09:02", n=98765)
    assert looks_same(page, probe) >= SAME_PAGE_THRESHOLD
    assert looks_same(page, page) == 1.0


def test_two_different_articles_of_one_site_are_not_the_same() -> None:
    shell = "Vlast.kz\nNews\n{body}\nShare this article\nRead also"
    one = shell.format(body="The Democratic Party announced its founding congress in Almaty; "
                            "the organisers said the police had detained several delegates.")
    two = shell.format(body="An activist was questioned by the security service in Mangistau "
                        "region about posts on social media criticising local officials.")
    assert looks_same(one, two) < SAME_PAGE_THRESHOLD


def test_empty_text_is_no_evidence() -> None:
    assert looks_same("", "") == 0.0
    assert looks_same("   \n ", "Page not found") == 0.0
    assert looks_same("12 345 2020", "99 1") == 0.0  # numbers only: nothing left to compare


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300), st.text(max_size=300))
def test_similarity_is_bounded_and_symmetric_for_identical_input(a: str, b: str) -> None:
    value = looks_same(a, b)
    assert 0.0 <= value <= 1.0
    assert looks_same(a, a) in (0.0, 1.0)


def test_probe_outcome_from_capture_and_failure() -> None:
    body = b"<html><head><title>Home</title></head><body><p>Welcome home.</p></body></html>"
    got = ProbeOutcome.from_result(_capture("https://x.org/a/zz-archiver-probe-1", body=body))
    assert (got.status, got.title, got.text, got.redirected) == (200, "Home", "Welcome home.",
                                                                 False)
    assert got.answered_ok and not got.answered_missing
    failed = ProbeOutcome.from_result(
        FetchFailure("https://x.org/a/zz-archiver-probe-1", Verdict.TIMEOUT, "no answer"))
    assert failed.status is None and failed.error == "no answer"
    assert not failed.answered_ok and not failed.answered_missing
    with pytest.raises(dataclasses.FrozenInstanceError):
        got.status = 404  # type: ignore[misc]


# ── end to end on loopback ───────────────────────────────────────────────────

WELCOME = """<html><head><title>Example News</title></head><body>
<nav>Home | Politics | Economy</nav>
<main><h1>Welcome to Example News</h1>
<p>Independent reporting from Central Asia since 2005.</p>
<p>Served at {stamp}. Request number {n}.</p></main></body></html>"""

STORY = """<html><head><title>Police detain delegates | Example News</title></head><body>
<main><article><h1>Police detain delegates</h1>
<p>Police in Almaty detained several delegates on their way to the founding congress of the
Democratic Party, the organisers said on Saturday. Officers stopped the delegates' cars on the
road to the venue and held them for several hours without charge.</p></article></main>
</body></html>"""


def _soft_404_site(web: WebServer) -> None:
    """A site that answers every unknown address with 200 and its welcome page."""
    counter = itertools.count(1)

    def welcome(req):  # type: ignore[no-untyped-def]
        n = next(counter)
        body = WELCOME.format(stamp=f"2026-11-25 12:00:{n:02d}", n=n * 7919)
        return Reply(200, body.encode(), {"Content-Type": "text/html; charset=utf-8"})

    web.fallback = welcome


def test_end_to_end_site_that_answers_200_for_everything(web: WebServer) -> None:
    _soft_404_site(web)
    cited = web.url("/news/2020/deleted-story.html")
    capture = fetch_capture(cited)
    assert capture.status == 200
    # Alone, the page looks like any page: only the probe tells.
    assert classify(capture, cited_url=cited).verdict is Verdict.OK

    assert needs_probe(capture)
    probe_address = probe_url(capture.final_url)
    assert probe_key(probe_address) == probe_key(cited)
    probe = ProbeOutcome.from_result(fetch_capture(probe_address))
    assert probe.status == 200
    assert web.hits[urlsplit(probe_address).path] == 1
    judgement = classify(capture, probe=probe, cited_url=cited)
    assert judgement.verdict is Verdict.SOFT_404
    assert "random path on this host answers with the same page" in judgement.reason


def test_end_to_end_site_that_answers_404_properly(web: WebServer) -> None:
    web.route("/news/2020/police-detain-delegates.html",
              Reply(200, STORY.encode(), {"Content-Type": "text/html; charset=utf-8"}))
    cited = web.url("/news/2020/police-detain-delegates.html")
    capture = fetch_capture(cited)
    probe = ProbeOutcome.from_result(fetch_capture(probe_url(cited)))
    assert probe.status == 404 and probe.answered_missing
    judgement = classify(capture, probe=probe, cited_url=cited)
    assert judgement.verdict is Verdict.OK
    assert "random path on this host answers 404" in judgement.reason


def test_end_to_end_dead_paths_redirect_to_one_generic_page(web: WebServer) -> None:
    """A site that sends every dead address to /sorry.html: the cited page's redirect lands
    where the probe's does."""
    sorry = b"<html><head><title>Example</title></head><body><p>Try our archive.</p></body></html>"
    web.route("/sorry.html", Reply(200, sorry, {"Content-Type": "text/html"}))
    web.fallback = lambda req: Reply(302, b"", {"Location": "/sorry.html"})
    cited = web.url("/a/30324650.html")
    capture = fetch_capture(cited)
    assert capture.final_url == web.url("/sorry.html")
    probe = ProbeOutcome.from_result(fetch_capture(probe_url(cited)))
    assert probe.redirected and probe.final_url == web.url("/sorry.html")
    judgement = classify(capture, probe=probe, cited_url=cited)
    assert judgement.verdict is Verdict.SOFT_404
    assert "same page a random address on this site is sent to" in judgement.reason


def test_long_words_are_compared_in_linear_time() -> None:
    """A page of one 60,000-character word (and a probe answer like it) used to take minutes:
    the address-dropping regex rescanned the word from every position. Now a 1,000,000-
    character word is well under a second; the bound is generous for a loaded machine."""
    import time

    from archiver.soft404 import looks_same

    started = time.monotonic()
    looks_same("b" * 1_000_000, "a" * 1_000_000)
    assert time.monotonic() - started < 5
    # Addresses are still dropped word by word, whatever their case.
    assert looks_same("Not found: HTTPS://example.org/a", "Not found: /b") == 1.0
