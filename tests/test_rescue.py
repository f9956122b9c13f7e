"""archiver.rescue: the pure choice of a copy, URL variants, and lookups against a real
loopback Wayback (tests/wayback_server.py): CDX, availability API, mementos, Save Page Now."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime
from urllib.parse import urlsplit

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from archiver.config import RescueSettings
from archiver.errors import ConfigError
from archiver.models import Memento
from archiver.rescue import (
    BEFORE_WINDOW,
    Breaker,
    LookupResult,
    Rescuer,
    SaveResult,
    SaveStatus,
    Snapshot,
    _retry_after,
    cutoff_for,
    drop_tracking,
    memento_for,
    nearest,
    offset_days,
    parse_timestamp,
    url_variants,
)
from tests.wayback_server import WaybackServer
from tests.webserver import Reply, WebServer, hang

UA = "archiver-tests/1 (+https://example.invalid)"
PUBLISHED = date(2020, 11, 1)


def snap(ts: str, status: int | None = 200, original: str = "https://example.org/a") -> Snapshot:
    return Snapshot(ts, original, status)


async def _lookup(settings, url, published, **knobs):
    knobs.setdefault("backoff", 0)
    async with Rescuer(settings, user_agent=UA, **knobs) as rescuer:
        return await rescuer.lookup(url, published)


def lookup(settings, url, published=PUBLISHED, **knobs) -> LookupResult:
    return asyncio.run(_lookup(settings, url, published, **knobs))


@pytest.fixture(scope="module")
def loopback() -> Iterator[WebServer]:
    """One server for the module (each shutdown costs half a second); every test gets a
    fresh WaybackServer on it, with its own captures, faults and log."""
    with WebServer() as server:
        yield server


@pytest.fixture
def wb(loopback: WebServer) -> WaybackServer:
    return WaybackServer(loopback)


# ── nearest (pure) ───────────────────────────────────────────────────────────


def test_nearest_prefers_the_latest_copy_before_over_a_nearer_one_after():
    cands = [snap("20200101000000"), snap("20201020120000"), snap("20201102000000"),
             snap("20201101230000"[:8] + "000000")]
    # 2020-11-01 00:00 is on the publication day: it counts as "before" and is the latest.
    assert nearest(cands, PUBLISHED).timestamp == "20201101000000"
    assert nearest(cands[:3], PUBLISHED).timestamp == "20201020120000"


def test_nearest_counts_the_whole_publication_day_as_before():
    assert cutoff_for(PUBLISHED) == datetime(2020, 11, 1, 23, 59, 59, tzinfo=UTC)
    cands = [snap("20201101235959"), snap("20201102000000")]
    assert nearest(cands, PUBLISHED).timestamp == "20201101235959"


def test_nearest_takes_the_nearer_side_when_the_copy_before_is_older_than_the_window():
    old = snap("20180101000000")  # ~3 years before
    soon_after = snap("20201103000000")
    assert nearest([old, soon_after], PUBLISHED) == soon_after
    # Nothing after: the old copy is still better than nothing.
    assert nearest([old], PUBLISHED) == old
    # Window edge: exactly BEFORE_WINDOW before the cutoff is still "seen by the author".
    edge = (cutoff_for(PUBLISHED) - BEFORE_WINDOW).strftime("%Y%m%d%H%M%S")
    assert nearest([snap(edge), soon_after], PUBLISHED).timestamp == edge
    # A narrower window changes the answer.
    assert nearest([snap("20201001000000"), soon_after], PUBLISHED,
                   window=timedelta(days=7)) == soon_after


def test_nearest_breaks_a_tie_towards_the_earlier_copy():
    cutoff = cutoff_for(PUBLISHED)
    before = snap((cutoff - timedelta(days=800)).strftime("%Y%m%d%H%M%S"))
    after = snap((cutoff + timedelta(days=800)).strftime("%Y%m%d%H%M%S"))
    assert nearest([after, before], PUBLISHED) == before


def test_nearest_skips_non_200_and_malformed_captures():
    cands = [snap("20201031000000", 302), snap("20201030000000", 404),
             snap("20201029000000", None), snap("2020103", 200), snap("20201399000000", 200),
             snap("20200901000000", 200)]
    assert nearest(cands, PUBLISHED).timestamp == "20200901000000"
    assert nearest(cands[:5], PUBLISHED) is None
    assert nearest([], PUBLISHED) is None


def test_nearest_without_a_date_takes_the_latest_copy():
    cands = [snap("20150101000000"), snap("20230101000000"), snap("20240101000000", 404)]
    assert nearest(cands, None).timestamp == "20230101000000"


stamps = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2030, 1, 1)).map(
    lambda d: d.strftime("%Y%m%d%H%M%S"))


@given(st.lists(st.tuples(stamps, st.sampled_from([200, 200, 301, 404, None])), max_size=12),
       st.dates(min_value=date(2001, 1, 1), max_value=date(2029, 1, 1)))
def test_nearest_follows_its_documented_rule(rows, published):
    cands = [snap(ts, status) for ts, status in rows]
    chosen = nearest(cands, published)
    ok = [c for c in cands if c.status == 200]
    if not ok:
        assert chosen is None
        return
    assert chosen is not None and chosen.status == 200
    cutoff = cutoff_for(published)
    recent = [c for c in ok if cutoff - BEFORE_WINDOW <= c.moment <= cutoff]
    if recent:
        assert chosen.moment == max(c.moment for c in recent)
    else:
        assert abs(chosen.moment - cutoff) == min(abs(c.moment - cutoff) for c in ok)


# ── URL variants, mementos, values (pure) ────────────────────────────────────


def test_url_variants_come_in_the_documented_order():
    assert url_variants("https://kaztag.kz/ru/news/x?fbclid=IwAR1&a=1#pos=3") == (
        "https://kaztag.kz/ru/news/x?fbclid=IwAR1&a=1",  # as cited, fragment dropped
        "https://kaztag.kz/ru/news/x?a=1",  # tracking parameters dropped
        "https://kaztag.kz/ru/news/x/?a=1",  # trailing slash toggled
        "http://kaztag.kz/ru/news/x?a=1",  # scheme swapped
        "https://www.kaztag.kz/ru/news/x?a=1",  # www. added
    )
    # No tracking parameters, a file name (no slash added), www. removed, port kept.
    assert url_variants("https://www.example.org:8443/r.pdf") == (
        "https://www.example.org:8443/r.pdf",
        "http://www.example.org:8443/r.pdf",
        "https://example.org:8443/r.pdf",
    )
    # Mobile and alternate front ends map to www.; tracking parameters go first.
    assert url_variants("https://web.facebook.com/g/permalink/27/?_rdc=1&_rdr")[1:] == (
        "https://web.facebook.com/g/permalink/27/",
        "https://web.facebook.com/g/permalink/27",
        "http://web.facebook.com/g/permalink/27/",
        "https://www.facebook.com/g/permalink/27/",
    )
    assert url_variants("https://m.example.org/a")[-1] == "https://www.example.org/a"
    assert url_variants("https://m.org/a")[-1] == "https://www.m.org/a"
    # Root path: no slash variant; an IP address: no www. variant.
    assert url_variants("http://127.0.0.1:8080/") == ("http://127.0.0.1:8080/",
                                                      "https://127.0.0.1:8080/")


def test_drop_tracking_keeps_the_other_parameters_as_written():
    assert drop_tracking("https://x.org/p?utm_source=ig&id=a%2Fb&__cft__[0]=AZ&__tn__=%2CO"
                         "&_rdr&gclid=1") == "https://x.org/p?id=a%2Fb"
    assert drop_tracking("https://x.org/p?__cft__%5B0%5D=AZ&q=1") == "https://x.org/p?q=1"
    assert drop_tracking("https://x.org/p?utm_medium=x") == "https://x.org/p"
    assert drop_tracking("https://x.org/p?ref=home") == "https://x.org/p?ref=home"


def test_memento_for_builds_the_replay_and_raw_urls():
    m = memento_for(Snapshot("20201105093012", "http://www.example.org:80/a?b=1", 200),
                    "https://web.archive.org/web/")
    assert m.url == "https://web.archive.org/web/20201105093012/http://www.example.org/a?b=1"
    assert m.raw_url == "https://web.archive.org/web/20201105093012id_/http://www.example.org/a?b=1"
    assert m.original_url == "http://www.example.org/a?b=1"
    assert m.datetime == datetime(2020, 11, 5, 9, 30, 12, tzinfo=UTC)
    assert m.status == 200
    assert offset_days(m, PUBLISHED) == 4
    assert offset_days(m, None) is None
    with pytest.raises(ValueError):
        parse_timestamp("2020110509301")


def test_lookup_result_survives_a_round_trip_through_json():
    import json
    memento = Memento("https://w/web/20201020120000/https://e.org/a",
                      datetime(2020, 10, 20, 12, 0, 0, tzinfo=UTC), "https://e.org/a",
                      "https://w/web/20201020120000id_/https://e.org/a", 200)
    for result in (LookupResult("https://e.org/a", memento, ("https://e.org/a",), api="cdx",
                                requests=2),
                   LookupResult("https://e.org/b", None, ("https://e.org/b",), error="timeout")):
        back = LookupResult.from_dict(json.loads(json.dumps(result.as_dict())))
        assert back == result


def test_retry_after_is_read_as_seconds_or_a_date():
    assert _retry_after("7") == 7.0
    later = datetime.now(UTC) + timedelta(seconds=30)
    assert 25 <= _retry_after(format_datetime(later, usegmt=True)) <= 31
    assert _retry_after("soon") is None
    assert _retry_after(None) is None


# ── lookups against the loopback Wayback ─────────────────────────────────────


def test_nearest_before_is_chosen_over_a_nearer_copy_after(wb):
    url = "https://example.org/report"
    wb.add(url, "20190101000000")
    before = wb.add(url, "20201020120000", body=b"<html>what the author saw</html>")
    wb.add(url, "20201102000000")  # one day after: nearer, but not what the author saw
    result = lookup(wb.settings(), url)
    assert result.error is None and result.api == "cdx"
    assert result.memento.datetime == datetime(2020, 10, 20, 12, 0, tzinfo=UTC)
    assert result.memento.url == wb.web.url(f"/web/20201020120000/{url}")
    assert result.memento.raw_url == wb.web.url(f"/web/20201020120000id_/{url}")
    assert result.memento.original_url == url and result.tried == (url,)
    [call] = wb.calls("cdx")  # the closest few copies, on both sides, in one query
    assert call["closest"] == ["20201101235959"] and call["sort"] == ["closest"]
    assert call["filter"] == ["statuscode:200"] and call["limit"] == ["5"]
    assert call["output"] == ["json"] and "to" not in call and result.requests == 1

    # The memento URLs serve what they say: raw bytes in the id_ form, the replay page else.
    raw = httpx.get(result.memento.raw_url)
    assert raw.status_code == 200 and raw.content == before.body
    assert raw.headers["Memento-Datetime"] == "Tue, 20 Oct 2020 12:00:00 GMT"
    assert raw.headers["Link"] == f'<{url}>; rel="original"'
    replay = httpx.get(result.memento.url)
    assert replay.content != before.body and replay.content.endswith(before.body)


def test_a_copy_before_is_found_behind_many_copies_after(wb):
    url = "https://example.org/popular"
    wb.add(url, "20200801000000")
    for day in range(2, 12):  # daily copies after publication crowd the closest few
        wb.add(url, f"202011{day:02d}000000")
    result = lookup(wb.settings(), url)
    assert result.memento.datetime.date() == date(2020, 8, 1)
    # The closest copies were all after; a second query bounded to the window found it.
    first, second = wb.calls("cdx")
    assert "to" not in first and result.requests == 2
    assert second["to"] == ["20201101235959"] and second["from"] == ["20191102235959"]
    assert second["sort"] == ["closest"] and second["closest"] == ["20201101235959"]


def test_a_copy_after_wins_when_nothing_before_is_recent(wb):
    url = "https://example.org/late"
    wb.add(url, "20150101000000")
    wb.add(url, "20201105093012")
    result = lookup(wb.settings(), url)
    assert result.memento.url.endswith(f"/web/20201105093012/{url}")
    assert offset_days(result.memento, PUBLISHED) == 4


def test_one_query_is_enough_when_the_closest_copy_is_before(wb):
    url = "https://example.org/early"
    wb.add(url, "20201030000000")
    wb.add(url, "20201230000000")
    result = lookup(wb.settings(), url)
    assert result.memento.datetime.date() == date(2020, 10, 30)
    assert len(wb.calls("cdx")) == 1


def test_without_a_publication_date_the_latest_copy_is_taken(wb):
    url = "https://example.org/undated"
    wb.add(url, "20150101000000")
    wb.add(url, "20230101000000")
    wb.add(url, "20240101000000", 404)
    result = lookup(wb.settings(), url, published=None)
    assert result.memento.datetime.year == 2023


@pytest.mark.parametrize("honour_filter", [True, False])
def test_non_200_captures_are_skipped(wb, honour_filter):
    url = "https://example.org/moved"
    wb.honour_filter = honour_filter  # False: an index that ignores filter= still answers
    wb.add(url, "20201031000000", 302, location="https://example.org/")
    wb.add(url, "20201030000000", 404)
    wb.add(url, "20200901000000", 200)
    result = lookup(wb.settings(), url)
    assert result.error is None
    assert result.memento.datetime.date() == date(2020, 9, 1) and result.memento.status == 200


def test_a_status_of_digits_that_are_not_a_number_skips_that_capture_only(wb):
    """A row whose status is "²" (``str.isdigit`` holds, ``int`` refuses) made the whole
    answer malformed, of either API: it is a capture without a status, skipped as non-200."""
    url = "https://example.org/odd"
    wb.honour_filter = False
    wb.add(url, "20201031000000", "²")  # type: ignore[arg-type]
    wb.add(url, "20200901000000", 200)
    result = lookup(wb.settings(), url)
    assert result.error is None, result.error
    assert result.memento.datetime.date() == date(2020, 9, 1) and result.memento.status == 200
    assert wb.calls("available") == []


def test_an_empty_answer_is_no_copy_and_no_error(wb):
    url = "https://example.org/never-archived?fbclid=X"
    result = lookup(wb.settings(), url)
    assert result.memento is None and result.error is None and not result.found
    assert result.tried == url_variants(url) and len(result.tried) == 5
    assert [c["url"] for c in wb.calls("cdx")] == [[v] for v in result.tried]
    assert wb.calls("available") == []


@pytest.mark.parametrize(("cited", "stored", "tried"), [
    ("https://example.org/news/1?fbclid=IwAR1x&__tn__=-R", "https://example.org/news/1",
     ["https://example.org/news/1?fbclid=IwAR1x&__tn__=-R", "https://example.org/news/1"]),
    ("https://example.org/dir", "https://example.org/dir/",
     ["https://example.org/dir", "https://example.org/dir/"]),
    ("https://example.org/p.html", "http://example.org/p.html",
     ["https://example.org/p.html", "http://example.org/p.html"]),
    ("https://example.org/p", "https://www.example.org/p",
     ["https://example.org/p", "https://example.org/p/", "http://example.org/p",
      "https://www.example.org/p"]),
])
def test_url_variants_find_what_the_archive_stored_differently(wb, cited, stored, tried):
    wb.add(stored, "20201001000000")
    result = lookup(wb.settings(), cited)
    assert result.memento is not None and result.memento.original_url == stored
    assert list(result.tried) == tried
    assert [c["url"][0] for c in wb.calls("cdx")] == tried


def test_a_429_is_waited_out_for_as_long_as_retry_after_says(wb):
    url = "https://example.org/busy"
    wb.add(url, "20201001000000")
    wb.fail("cdx", Reply(429, b"slow down", {"Retry-After": "1"}), times=1)
    started = time.monotonic()
    # backoff=0: the only sleep is the one the archive asked for.
    result = lookup(wb.settings(), url)
    elapsed = time.monotonic() - started
    assert result.memento is not None and result.error is None
    assert elapsed >= 0.95
    assert len(wb.calls("cdx")) == 2


def test_a_retry_after_holds_back_every_request_to_that_host(wb):
    urls = ["https://example.org/one", "https://example.org/two"]
    for u in urls:
        wb.add(u, "20201001000000")
    wb.fail("cdx", Reply(429, b"", {"Retry-After": "1"}), times=1)

    async def both():
        async with Rescuer(wb.settings(per_host=1), user_agent=UA, backoff=0) as r:
            return await asyncio.gather(*(r.lookup(u, PUBLISHED) for u in urls))

    assert all(r.found for r in asyncio.run(both()))
    refused, *later = [t for name, t in wb.times if name == "cdx"]
    assert len(later) == 2 and all(t - refused >= 0.95 for t in later)


def test_a_429_that_outlasts_the_retries_is_an_error_value(wb):
    url = "https://example.org/busy"
    wb.add(url, "20201001000000")
    wb.fail("cdx", Reply(429, b"slow down"), times=None)
    wb.fail("available", Reply(429, b"slow down"), times=None)
    started = time.monotonic()
    result = lookup(wb.settings(retries=2), url)
    assert time.monotonic() - started < 2
    assert result.memento is None
    assert result.error == "the archive answered 429 too often"
    assert len(wb.calls("cdx")) == 3 and len(wb.calls("available")) == 3
    assert result.tried == (url,)  # an archive that cannot be asked is not asked again


def test_a_retry_after_beyond_the_cap_is_not_waited_out(wb):
    url = "https://example.org/busy"
    wb.fail("cdx", Reply(429, b"", {"Retry-After": "3600"}), times=None)
    wb.fail("available", Reply(429, b"", {"Retry-After": "3600"}), times=None)

    async def twice():
        async with Rescuer(wb.settings(), user_agent=UA, backoff=0, retry_after_cap=5) as r:
            return await r.lookup(url, PUBLISHED), await r.lookup(url + "/2", PUBLISHED)

    started = time.monotonic()
    first, second = asyncio.run(twice())
    assert time.monotonic() - started < 2
    assert "asked to wait 3600 s" in first.error and first.memento is None
    assert "asked to wait" in second.error and second.requests == 0
    # One request in all: the host said "an hour", so it is left alone (here the CDX and
    # availability APIs share the host; at the Internet Archive they do not).
    assert len(wb.calls("cdx")) == 1 and wb.calls("available") == []


def test_a_hanging_archive_is_a_timeout_value_quickly(wb):
    url = "https://example.org/slow"
    wb.add(url, "20201001000000")
    wb.fail("cdx", hang(3), times=None)
    wb.fail("available", hang(3), times=None)
    started = time.monotonic()
    # A breaker threshold above the 4 attempts: this is about one lookup's timeouts.
    result = lookup(wb.settings(timeout=0.3, retries=1, breaker_after=10), url)
    elapsed = time.monotonic() - started
    assert result.error == "timeout" and result.memento is None
    assert elapsed < 2.5  # 4 attempts of 0.3 s, not the server's 3 s
    assert len(wb.calls("cdx")) == 2 and len(wb.calls("available")) == 2


def test_a_5xx_is_retried(wb):
    url = "https://example.org/flaky"
    wb.add(url, "20201001000000")
    wb.fail("cdx", Reply(503, b"busy"), times=2)
    result = lookup(wb.settings(retries=2), url)
    assert result.memento is not None and result.api == "cdx"
    assert len(wb.calls("cdx")) == 3 and result.requests == 3


def test_when_the_cdx_api_fails_the_availability_api_stands_in(wb):
    url = "https://example.org/p"
    wb.add("https://www.example.org/p", "20201020000000")
    wb.add("https://www.example.org/p", "20180101000000", 404)
    wb.fail("cdx", Reply(500, b"internal error"), times=None)
    result = lookup(wb.settings(retries=1), url)
    assert result.error is None and result.api == "availability"
    assert result.memento.url == wb.web.url("/web/20201020000000/https://www.example.org/p")
    assert result.memento.original_url == "https://www.example.org/p"
    # Asked once (with its retry) for the first variant, then not again.
    assert len(wb.calls("cdx")) == 2
    assert [c["url"][0] for c in wb.calls("available")] == list(result.tried)
    assert wb.calls("available")[0]["timestamp"] == ["20201101"]


def test_a_cdx_answer_that_is_not_json_falls_back_too(wb):
    url = "https://example.org/a"
    wb.add(url, "20201020000000")
    wb.fail("cdx", Reply(200, b"<html>maintenance</html>", {"Content-Type": "text/html"}))
    result = lookup(wb.settings(), url)
    assert result.memento is not None and result.api == "availability"


@pytest.mark.parametrize("garbage", [b"[1, 2]", b'{"archived_snapshots": []}',
                                     b'{"archived_snapshots": {"closest": "yes"}}', b"\xff"])
def test_answers_of_the_wrong_shape_are_error_values(wb, garbage):
    url = "https://example.org/a"
    wb.fail("cdx", Reply(200, b'[["urlkey"], ["x"]]'), times=None)  # no timestamp column
    wb.fail("available", Reply(200, garbage), times=None)
    result = lookup(wb.settings(retries=0), url)
    assert result.memento is None
    assert "CDX answer was not understood" in result.error
    assert "availability answer was not understood" in result.error


def test_the_availability_api_answering_a_redirect_capture_is_no_copy(wb):
    url = "https://example.org/r"
    wb.add(url, "20201101000000", 301, location="https://example.org/")
    wb.fail("cdx", Reply(502, b""), times=None)
    result = lookup(wb.settings(retries=0), url)
    assert result.memento is None and result.error is None and result.api == "availability"


def test_the_per_host_limit_holds(wb):
    wb.delay = 0.15
    urls = [f"https://example.org/{i}" for i in range(4)]
    for u in urls:
        wb.add(u, "20201001000000")

    async def many(per_host):
        async with Rescuer(wb.settings(per_host=per_host), user_agent=UA, backoff=0) as r:
            return await asyncio.gather(*(r.lookup(u, PUBLISHED) for u in urls))

    results = asyncio.run(many(1))
    assert all(r.found for r in results) and wb.max_in_flight == 1
    wb.max_in_flight = 0
    asyncio.run(many(2))
    assert wb.max_in_flight == 2


def test_an_archive_that_refuses_connections_is_an_error_value():
    import socket
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    settings = RescueSettings(cdx_api=f"{base}/cdx", availability_api=f"{base}/available",
                              replay_base=f"{base}/web", retries=1, timeout=1)
    result = lookup(settings, "https://example.org/a")
    assert result.memento is None and result.error.startswith("CDX API: connection failed")
    assert result.failure == "unreachable"
    # Two attempts at the CDX API, one at the availability API (same host): the third
    # refusal in a row gives the host up, so the last attempt is not made.
    assert result.requests == 3 and "availability API: not asked" in result.error


def test_requests_name_the_tool(wb):
    lookup(wb.settings(), "https://example.org/a")
    assert wb.headers("cdx")[0]["User-Agent"] == UA


def test_a_url_that_is_not_http_is_an_error_value_without_asking(wb):
    result = lookup(wb.settings(), "mailto:someone@example.org")
    assert result.memento is None and "not an http(s) URL" in result.error
    assert wb.log == []


@pytest.mark.parametrize("bad", ["ftp://example.org/cdx", "http://[::1/cdx", "cdx", ""])
def test_an_api_base_that_is_not_http_is_a_config_error(bad):
    with pytest.raises(ConfigError, match=r"\[rescue\] cdx_api: expected an http\(s\) URL"):
        Rescuer(RescueSettings(cdx_api=bad), user_agent=UA)


def test_lookup_over_https_with_the_environment_ca(https_web, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", https_web.ca_file)
    wb = WaybackServer(https_web)
    url = "https://example.org/secure"
    wb.add(url, "20201030000000")
    result = lookup(wb.settings(), url)
    assert result.error is None
    assert result.memento.url == f"{https_web.origin}/web/20201030000000/{url}"


# ── Save Page Now ────────────────────────────────────────────────────────────


async def _spn(settings, calls, **knobs):
    knobs.setdefault("backoff", 0)
    knobs.setdefault("spn_interval", 0)
    async with Rescuer(settings, user_agent=UA, **knobs) as rescuer:
        return [await call(rescuer) for call in calls]


def spn(settings, *calls, **knobs):
    return asyncio.run(_spn(settings, calls, **knobs))


@pytest.fixture
def no_keys(monkeypatch):
    monkeypatch.delenv("IA_S3_ACCESS_KEY", raising=False)
    monkeypatch.delenv("IA_S3_SECRET_KEY", raising=False)


def test_save_page_now_is_off_by_default(wb, monkeypatch):
    monkeypatch.setenv("IA_S3_ACCESS_KEY", "a")
    monkeypatch.setenv("IA_S3_SECRET_KEY", "s")
    [result] = spn(wb.settings(), lambda r: r.save_page_now("https://example.org/live"))
    assert result.status is SaveStatus.DISABLED and wb.log == []


def test_save_page_now_without_keys_says_so(wb, no_keys):
    [result] = spn(wb.settings(save_page_now=True),
                   lambda r: r.save_page_now("https://example.org/live"))
    assert result.status is SaveStatus.KEYS_MISSING and "IA_S3_ACCESS_KEY" in result.message
    assert wb.log == []


def test_save_page_now_with_keys_submits_and_the_copy_can_be_found(wb, monkeypatch):
    monkeypatch.setenv("IA_S3_ACCESS_KEY", "access1")
    monkeypatch.setenv("IA_S3_SECRET_KEY", "secret1")
    wb.keys = ("access1", "secret1")
    live = "https://example.org/live"
    settings = wb.settings(save_page_now=True)
    submitted, = spn(settings, lambda r: r.save_page_now(live))
    assert submitted.status is SaveStatus.SUBMITTED and submitted.job_id.startswith("spn2-")
    assert wb.headers("save")[0]["Authorization"] == "LOW access1:secret1"
    assert wb.calls("save")[0]["url"] == [live]

    done, = spn(settings, lambda r: r.save_status(submitted.job_id, live))
    assert done.status is SaveStatus.SUCCESS and done.memento.original_url == live
    assert wb.headers("status")[0]["Authorization"] == "LOW access1:secret1"
    found = lookup(settings, live, published=None)
    assert found.memento == done.memento


def test_save_page_now_with_wrong_keys_is_refused_without_leaking_them(wb, monkeypatch):
    monkeypatch.setenv("IA_S3_ACCESS_KEY", "access1")
    monkeypatch.setenv("IA_S3_SECRET_KEY", "not-the-secret")
    wb.keys = ("access1", "secret1")
    result, = spn(wb.settings(save_page_now=True),
                  lambda r: r.save_page_now("https://example.org/live"))
    assert result.status is SaveStatus.REFUSED and "401" in result.message
    assert "logged in" in result.message and "not-the-secret" not in result.message
    assert len(wb.calls("save")) == 1  # a refusal is not retried


def test_save_page_now_waits_out_a_429_and_spaces_its_submissions(wb, monkeypatch):
    monkeypatch.setenv("IA_S3_ACCESS_KEY", "a")
    monkeypatch.setenv("IA_S3_SECRET_KEY", "s")
    wb.keys = ("a", "s")
    wb.fail("save", Reply(429, b'{"message": "too many"}', {"Retry-After": "1"}), times=1)
    started = time.monotonic()
    first, second = spn(wb.settings(save_page_now=True),
                        lambda r: r.save_page_now("https://example.org/1"),
                        lambda r: r.save_page_now("https://example.org/2"),
                        spn_interval=0.5)
    elapsed = time.monotonic() - started
    assert first.status is SaveStatus.SUBMITTED and second.status is SaveStatus.SUBMITTED
    assert len(wb.calls("save")) == 3
    assert elapsed >= 1.45  # 1 s Retry-After, then 0.5 s between the two submissions


def test_save_page_now_429_outlasting_the_retries_is_a_failure_value(wb, monkeypatch):
    monkeypatch.setenv("IA_S3_ACCESS_KEY", "a")
    monkeypatch.setenv("IA_S3_SECRET_KEY", "s")
    wb.keys = ("a", "s")
    wb.fail("save", Reply(429, b""), times=None)
    result, = spn(wb.settings(save_page_now=True, retries=1),
                  lambda r: r.save_page_now("https://example.org/1"))
    assert result.status is SaveStatus.FAILED and "429" in result.message
    assert len(wb.calls("save")) == 2


def test_save_page_now_will_not_send_keys_over_plain_http(monkeypatch):
    monkeypatch.setenv("IA_S3_ACCESS_KEY", "a")
    monkeypatch.setenv("IA_S3_SECRET_KEY", "s")
    settings = RescueSettings(save_page_now=True, spn_api="http://web.archive.org.invalid/save")
    result, = spn(settings, lambda r: r.save_page_now("https://example.org/1"))
    assert result.status is SaveStatus.REFUSED and "plain HTTP" in result.message


# ── the circuit breaker: a host that is down is not asked again in this run ──


def _closed_port_settings(**overrides) -> RescueSettings:
    import socket
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    values = {"cdx_api": f"{base}/cdx", "availability_api": f"{base}/available",
              "replay_base": f"{base}/web", "spn_api": f"{base}/save", "retries": 2,
              "timeout": 1.0, **overrides}
    return RescueSettings(**values)


def _many(settings, urls, *, serial: bool = False, **knobs) -> list[LookupResult]:
    """Look ``urls`` up with one Rescuer: all at once (as the run's workers do), or one
    after the other."""
    async def run() -> list[LookupResult]:
        knobs.setdefault("backoff", 0)
        async with Rescuer(settings, user_agent=UA, **knobs) as rescuer:
            if serial:
                return [await rescuer.lookup(u, PUBLISHED) for u in urls]
            return list(await asyncio.gather(*(rescuer.lookup(u, PUBLISHED) for u in urls)))

    return asyncio.run(run())


def test_a_refusing_archive_is_given_up_after_a_few_failures():
    settings = _closed_port_settings(breaker_after=3)
    urls = [f"https://example.org/dead-{i}" for i in range(20)]
    results = _many(settings, urls)
    assert all(r.memento is None and r.failure == "unreachable" for r in results)
    # Three refused attempts in a row, then nothing more is sent; at most the attempts
    # already in flight (per_host = 2) get through. Without the breaker: 20 x 6 requests.
    assert sum(r.requests for r in results) <= 3 + settings.per_host
    not_made = [r for r in results if r.requests == 0]
    assert len(not_made) >= len(urls) - (3 + settings.per_host)
    assert all("not asked" in (r.error or "") for r in not_made)


def test_a_hanging_archive_is_given_up_after_a_few_timeouts(wb):
    wb.fail("cdx", hang(3), times=None)
    wb.fail("available", hang(3), times=None)
    urls = [f"https://example.org/slow-{i}" for i in range(8)]
    started = time.monotonic()
    results = _many(wb.settings(timeout=0.3, retries=2, breaker_after=3), urls)
    elapsed = time.monotonic() - started
    assert all(r.failure == "unreachable" and r.memento is None for r in results)
    asked = len(wb.calls("cdx")) + len(wb.calls("available"))
    assert asked <= 3 + 2, asked  # 8 x 6 = 48 without the breaker
    assert elapsed < 4  # a few 0.3 s timeouts (+ the 0.6 s whole-answer bound), not 48


def test_5xx_after_the_retries_counts_but_a_404_or_no_copy_does_not(wb):
    # An index that answers "nothing" or 404 is up: 12 such lookups never give it up.
    wb.fail("available", Reply(404, b"not here"), times=None)
    results = _many(wb.settings(breaker_after=2), [f"https://example.org/n-{i}"
                                                     for i in range(12)])
    assert all(r.error is None and r.memento is None for r in results)
    assert len(wb.calls("cdx")) == sum(len(url_variants(r.url)) for r in results)

    # A 503 that outlasts the retries is a failure; the 503s during the retries are not
    # counted one by one (a busy archive is retried, not given up at once).
    busy = WaybackServer(wb.web)
    busy.fail("cdx", Reply(503, b"busy"), times=None)
    busy.fail("available", Reply(503, b"busy"), times=None)
    breaker = Breaker(2)
    settings = busy.settings(retries=2)
    results = _many(settings, [f"https://example.org/b-{i}" for i in range(6)],
                    serial=True, breaker=breaker)
    assert breaker.down == (urlsplit(settings.cdx_api).netloc,)
    # The first lookup: 3 attempts at the CDX API (one failure), 3 at the availability API
    # (the second): the host is given up, the next five lookups send nothing.
    assert (len(busy.calls("cdx")), len(busy.calls("available"))) == (3, 3)
    assert [r.requests for r in results] == [6, 0, 0, 0, 0, 0]
    assert all(r.failure == "unreachable" for r in results)


def test_save_page_now_stops_at_an_unreachable_archive(wb, monkeypatch):
    from tests.webserver import reset

    monkeypatch.setenv("IA_S3_ACCESS_KEY", "access")
    monkeypatch.setenv("IA_S3_SECRET_KEY", "secret")
    wb.fail("save", reset, times=None)
    settings = wb.settings(save_page_now=True, breaker_after=3)

    async def run() -> tuple[list[SaveResult], SaveResult]:
        async with Rescuer(settings, user_agent=UA, backoff=0, spn_interval=0.5) as rescuer:
            saves = [await rescuer.save_page_now(f"https://example.org/live-{i}")
                     for i in range(6)]
            return saves, await rescuer.save_status("spn2-job", "https://example.org/live-0")

    started = time.monotonic()
    saves, status = asyncio.run(run())
    elapsed = time.monotonic() - started
    assert [s.status for s in saves] == [SaveStatus.FAILED] * 6
    assert all(s.unreachable for s in saves)
    # A reset after the POST was sent is not retried (it may have started a capture): three
    # submissions reach the server, then the host is given up; the last three wait no
    # spn_interval and send nothing. Without the breaker: 6 requests, 2.5 s of pauses.
    assert len(wb.calls("save")) == 3
    assert elapsed < 1.5
    # Polling a job's status against the same host is not sent either.
    assert status.status is SaveStatus.FAILED and status.unreachable
    assert wb.calls("status") == []


def test_a_host_that_does_not_resolve_counts_towards_the_breaker() -> None:
    """DNS and TLS failures are never retried, but they say the archive host is out of
    reach as surely as a refused connection: the breaker counts them."""
    from archiver.rescue import _Answer

    dns = _Answer(None, failure="connection failed: name does not resolve", retryable=False,
                  down=True)
    assert dns.network_failure
    too_large = _Answer(None, failure="the archive's answer was too large", retryable=False)
    assert not too_large.network_failure
