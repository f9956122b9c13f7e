"""The fetcher against real loopback servers (HTTP and HTTPS): redirects, retries, bounds,
politeness, the guard, TLS, and what reaches the WARC files (always read back and checked)."""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import os
import resource
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import brotli
import pytest
import zstandard

from archiver import retry
from archiver.config import FetchSettings
from archiver.fetch import Attempt, Fetcher, _HostGate, _Turns, decode_body
from archiver.guard import AddressGuard
from archiver.models import Capture, FetchFailure, FetchResult, Verdict
from archiver.warc import WarcWriter, read_record
from tests.test_warc import assert_valid_warcs, read_warc
from tests.webserver import Reply, Request, WebServer, drip, hang, redirect, reset

# Every test runs on both transports under httpx (see conftest.fetch_transport).
pytestmark = pytest.mark.usefixtures("fetch_transport")

FAST = FetchSettings(timeout=2.0, deadline=6.0, retries=2, allow_private_networks=True,
                     host_interval=0.0, backoff_base=0.05, backoff_max=0.1)


@pytest.fixture(autouse=True)
def _no_backoff_sleeps() -> Iterator[None]:
    with retry.testing():
        yield


def run(settings: FetchSettings, urls: list[str], archive: Path | None = None, *,
        guard: AddressGuard | None = None, probe: bool = False,
        ) -> tuple[dict[str, FetchResult], list[Attempt]]:
    """Fetch ``urls`` (into a WARC writer on ``archive`` when given) and return the results
    and the attempts reported."""
    attempts: list[Attempt] = []

    async def go() -> dict[str, FetchResult]:
        if archive is None:
            async with Fetcher(settings, None, on_attempt=attempts.append, guard=guard) as f:
                if probe:
                    return {u: await f.probe(u) for u in urls}
                return await f.fetch_all(urls)
        with WarcWriter(archive, root=archive.parent, run_id="test") as writer:
            async with Fetcher(settings, writer, on_attempt=attempts.append, guard=guard) as f:
                return await f.fetch_all(urls)

    return asyncio.run(go()), attempts


def one(settings: FetchSettings, url: str, archive: Path | None = None,
        **kw) -> tuple[FetchResult, list[Attempt]]:
    results, attempts = run(settings, [url], archive, **kw)
    return results[url], attempts


def response_records(archive: Path) -> list:
    assert_valid_warcs(archive)
    return [r for path in sorted(archive.glob("*.warc.gz")) for r in read_warc(path)
            if r[0] in ("response", "revisit")]


# ── captures, redirects ─────────────────────────────────────────────────────


def test_https_capture_trusts_the_ca_from_the_environment(https_web: WebServer, tmp_path: Path,
                                                          monkeypatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", https_web.ca_file)
    https_web.route("/page", Reply(200, b"<html><p>evidence</p></html>",
                                   {"Content-Type": "text/html; charset=utf-8"}))
    result, attempts = one(FAST, https_web.url("/page"), tmp_path / "archive")
    assert isinstance(result, Capture), result
    assert result.status == 200 and result.content == b"<html><p>evidence</p></html>"
    assert result.content_type == "text/html; charset=utf-8" and result.attempts == 1
    assert [a.outcome for a in attempts] == ["response"]
    (record,) = response_records(tmp_path / "archive")
    assert record[1]["WARC-Target-URI"] == https_web.url("/page")
    assert record[3] == b"<html><p>evidence</p></html>"
    assert record[1]["WARC-Payload-Digest"] == result.payload_digest
    # The digest the fetcher took as the body arrived, written as the record's own.
    assert result.payload_digest == "sha256:" + hashlib.sha256(record[3]).hexdigest()
    assert read_record(tmp_path, result.warc).payload == result.content


def test_honest_user_agent(web: WebServer) -> None:
    web.route("/ua", Reply(200, b"ok"))
    settings = replace(FAST, user_agent="archiver/9 (+https://example.org/about)")
    one(settings, web.url("/ua"))
    assert web.requests[-1][2]["User-Agent"] == "archiver/9 (+https://example.org/about)"


def test_every_redirect_hop_is_archived(web: WebServer, tmp_path: Path) -> None:
    web.route("/a", redirect("/b", 301))
    web.route("/b", redirect(web.url("/c"), 302))
    web.route("/c", Reply(200, b"final", {"Content-Type": "text/plain"}))
    result, _ = one(FAST, web.url("/a"), tmp_path / "archive")
    assert isinstance(result, Capture)
    assert result.url == web.url("/a") and result.final_url == web.url("/c")
    assert [h.status for h in result.hops] == [301, 302, 200] and result.redirected
    assert result.attempts == 3
    records = response_records(tmp_path / "archive")
    assert [r[1]["WARC-Target-URI"] for r in records] == [web.url(p) for p in ("/a", "/b", "/c")]
    for hop in result.hops:
        assert hop.warc is not None
        stored = read_record(tmp_path, hop.warc)
        assert dict(stored.warc_headers)["WARC-Target-URI"] == hop.url


def test_redirect_loop_and_too_many_redirects_fail_with_hops_archived(web: WebServer,
                                                                      tmp_path: Path) -> None:
    web.route("/loop1", redirect("/loop2"))
    web.route("/loop2", redirect("/loop1"))
    for i in range(6):
        web.route(f"/chain{i}", redirect(f"/chain{i + 1}"))
    web.route("/chain6", Reply(200, b"end"))
    web.route("/mail", redirect("mailto:someone@example.org"))
    settings = replace(FAST, max_redirects=3)
    urls = [web.url("/loop1"), web.url("/chain0"), web.url("/mail")]
    results, _ = run(settings, urls, tmp_path / "archive")
    loop, chain, mail = (results[u] for u in urls)
    assert isinstance(loop, FetchFailure) and loop.verdict is Verdict.INVALID_URL
    assert loop.reason.startswith("redirect loop") and len(loop.hops) == 2
    assert isinstance(chain, FetchFailure) and "more than 3 redirects" in chain.reason
    assert len(chain.hops) == 4
    assert isinstance(mail, FetchFailure) and "mailto:" in mail.reason
    assert len(response_records(tmp_path / "archive")) == 2 + 4 + 1


def test_cookies_follow_redirects_but_are_redacted_in_the_warc(web: WebServer,
                                                               tmp_path: Path) -> None:
    web.route("/login", lambda req: Reply(302, b"", [("Location", "/in"),
                                                     ("Set-Cookie", "sid=TOPSECRET; Path=/")]))
    web.route("/in", lambda req: Reply(200, b"cookie=" + req.headers.get("Cookie", "").encode()))
    result, _ = one(FAST, web.url("/login"), tmp_path / "archive")
    assert isinstance(result, Capture) and result.content == b"cookie=sid=TOPSECRET"
    assert_valid_warcs(tmp_path / "archive")
    requests = [r for p in (tmp_path / "archive").glob("*.warc.gz") for r in read_warc(p)
                if r[0] == "request"]
    second = requests[1][2]
    assert second.get_header("Cookie") == "[redacted]"
    raw = b"".join(gzip.decompress(p.read_bytes())
                   for p in (tmp_path / "archive").glob("*.warc.gz"))
    assert raw.count(b"TOPSECRET") == 2  # the Set-Cookie response header and the page body


def test_credentials_in_the_url_are_sent_as_basic_auth_and_redacted_in_the_warc(
        web: WebServer, tmp_path: Path) -> None:
    web.route("/private", lambda req: Reply(
        200, b"auth=" + req.headers.get("Authorization", "").encode()))
    web.route("/public", lambda req: Reply(
        200, b"auth=" + req.headers.get("Authorization", "").encode()))
    with_credentials = web.url("/private").replace("://", "://reader:s3cret@", 1)
    results, _ = run(FAST, [with_credentials, web.url("/public")], tmp_path / "archive")
    expected = "Basic " + base64.b64encode(b"reader:s3cret").decode()
    private, public = results[with_credentials], results[web.url("/public")]
    assert isinstance(private, Capture) and private.content == b"auth=" + expected.encode()
    assert isinstance(public, Capture) and public.content == b"auth="
    assert_valid_warcs(tmp_path / "archive")
    requests = {r[1]["WARC-Target-URI"]: r[2] for p in (tmp_path / "archive").glob("*.warc.gz")
                for r in read_warc(p) if r[0] == "request"}
    assert requests[with_credentials].get_header("Authorization") == "[redacted]"
    assert requests[web.url("/public")].get_header("Authorization") is None


# ── retries ─────────────────────────────────────────────────────────────────


def flaky(failures: int, status: int = 503, headers: dict | None = None) -> Callable:
    count = {"n": 0}

    def handler(req: Request) -> Reply:
        count["n"] += 1
        if count["n"] <= failures:
            return Reply(status, b"try later", headers or {})
        return Reply(200, b"recovered")

    return handler


def test_flaky_5xx_then_success_counts_attempts(web: WebServer, tmp_path: Path) -> None:
    web.route("/flaky", flaky(2))
    result, attempts = one(FAST, web.url("/flaky"), tmp_path / "archive")
    assert isinstance(result, Capture) and result.status == 200 and result.attempts == 3
    assert [(a.number, a.outcome, a.status) for a in attempts] == [
        (1, "response", 503), (2, "response", 503), (3, "response", 200)]
    assert web.hits["/flaky"] == 3
    (record,) = response_records(tmp_path / "archive")  # only the final answer is kept
    assert record[3] == b"recovered"


def test_5xx_that_outlasts_retries_is_archived_with_its_status(web: WebServer,
                                                              tmp_path: Path) -> None:
    web.route("/down", Reply(502, b"bad gateway"))
    result, _ = one(FAST, web.url("/down"), tmp_path / "archive")
    assert isinstance(result, Capture) and result.status == 502
    assert result.attempts == FAST.retries + 1 == web.hits["/down"]
    (record,) = response_records(tmp_path / "archive")
    assert record[2].get_statuscode() == "502"


@pytest.mark.parametrize("status", [404, 403, 410, 401])
def test_other_4xx_are_not_retried(web: WebServer, status: int) -> None:
    web.route("/x", Reply(status, b"no"))
    result, _ = one(FAST, web.url("/x"))
    assert isinstance(result, Capture) and result.status == status and result.attempts == 1


def test_429_retry_after_really_waits(web: WebServer) -> None:
    web.route("/limited", flaky(1, 429, {"Retry-After": "1"}))
    settings = replace(FAST, backoff_base=0.0)
    with retry.testing(False):
        started = time.monotonic()
        result, attempts = one(settings, web.url("/limited"))
        elapsed = time.monotonic() - started
    assert isinstance(result, Capture) and result.status == 200 and result.attempts == 2
    assert 0.95 <= elapsed < 3.0, elapsed
    assert attempts[1].waited == pytest.approx(1.0)


def test_retry_after_is_capped(web: WebServer) -> None:
    web.route("/limited", flaky(1, 429, {"Retry-After": "3600"}))
    settings = replace(FAST, backoff_base=0.0, retry_after_cap=0.3)
    with retry.testing(False):
        started = time.monotonic()
        result, attempts = one(settings, web.url("/limited"))
    assert isinstance(result, Capture) and result.status == 200
    assert time.monotonic() - started < 2.0 and attempts[1].waited == pytest.approx(0.3)


def test_429_that_outlasts_retries_is_a_capture(web: WebServer) -> None:
    web.route("/limited", Reply(429, b"slow down", {"Retry-After": "0"}))
    result, _ = one(FAST, web.url("/limited"))
    assert isinstance(result, Capture) and result.status == 429
    assert result.attempts == FAST.retries + 1


def test_reset_connections_are_retried_then_fail(web: WebServer) -> None:
    web.route("/reset", reset)
    result, attempts = one(FAST, web.url("/reset"))
    assert isinstance(result, FetchFailure) and result.verdict is Verdict.CONNECTION_ERROR
    assert result.attempts == FAST.retries + 1 == len(attempts)


def test_reset_then_success(web: WebServer) -> None:
    calls = {"n": 0}

    def handler(req: Request) -> Reply | None:
        calls["n"] += 1
        return reset(req) if calls["n"] == 1 else Reply(200, b"second time lucky")

    web.route("/once", handler)
    result, _ = one(FAST, web.url("/once"))
    assert isinstance(result, Capture) and result.content == b"second time lucky"
    assert result.attempts == 2


def test_refused_connection(web: WebServer) -> None:
    result, _ = one(replace(FAST, retries=0), "http://127.0.0.1:9/")
    assert isinstance(result, FetchFailure) and result.verdict is Verdict.CONNECTION_ERROR
    assert "refused" in result.reason


# ── bounds ──────────────────────────────────────────────────────────────────


def test_hanging_server_times_out(web: WebServer) -> None:
    web.route("/hang", hang(5))
    settings = replace(FAST, timeout=0.4, retries=1)
    started = time.monotonic()
    result, attempts = one(settings, web.url("/hang"))
    assert isinstance(result, FetchFailure) and result.verdict is Verdict.TIMEOUT
    assert [a.outcome for a in attempts] == ["timeout", "timeout"]
    assert time.monotonic() - started < 2.5


def test_slow_drip_is_cut_by_the_deadline(web: WebServer, tmp_path: Path) -> None:
    web.route("/drip", drip(total=1000, interval=0.05))
    settings = replace(FAST, timeout=5.0, deadline=1.0)
    started = time.monotonic()
    result, attempts = one(settings, web.url("/drip"), tmp_path / "archive")
    assert time.monotonic() - started < 2.0
    assert isinstance(result, Capture) and result.truncated == "time"
    assert 5 <= len(result.content) < 1000 and result.body_bytes == len(result.content)
    # The deadline is spent: a cut body is retried only while time is left.
    assert [(a.outcome, a.error) for a in attempts] == [
        ("response", "the body did not finish within the deadline of 1s")]
    (record,) = response_records(tmp_path / "archive")
    assert record[1]["WARC-Truncated"] == "time" and record[3] == result.content


def test_deadline_covers_retries(web: WebServer) -> None:
    web.route("/hang", hang(5))
    settings = replace(FAST, timeout=0.5, deadline=1.2, retries=10)
    started = time.monotonic()
    result, attempts = one(settings, web.url("/hang"))
    assert isinstance(result, FetchFailure) and result.verdict is Verdict.TIMEOUT
    assert time.monotonic() - started < 2.5 and len(attempts) <= 4


def test_oversized_body_is_truncated_and_marked(web: WebServer, tmp_path: Path) -> None:
    body = bytes(range(256)) * 40
    web.route("/big", Reply(200, body, {"Content-Type": "application/octet-stream"}))
    result, _ = one(replace(FAST, max_body=1000), web.url("/big"), tmp_path / "archive")
    assert isinstance(result, Capture) and result.truncated == "length"
    assert result.content == body[:1000]
    (record,) = response_records(tmp_path / "archive")
    assert record[1]["WARC-Truncated"] == "length" and record[3] == body[:1000]


def test_gzip_bomb_costs_bounded_memory_and_is_stored_raw(web: WebServer,
                                                          tmp_path: Path) -> None:
    member = gzip.compress(bytes(16 << 20), 6)
    bomb = member * 64  # 1 GiB of zeros in about 1 MB
    web.route("/bomb", Reply(200, bomb, {"Content-Type": "text/html",
                                         "Content-Encoding": "gzip"}))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    settings = replace(FAST, max_decoded=1 << 20, max_body=4 << 20)
    result, _ = one(settings, web.url("/bomb"), tmp_path / "archive")
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert isinstance(result, Capture) and result.truncated is None
    assert len(result.content) == 1 << 20 and not result.content.strip(b"\0")
    assert grown_mb < 150, f"peak memory grew by {grown_mb:.0f} MB"
    (record,) = response_records(tmp_path / "archive")
    assert record[3] == bomb


@pytest.mark.parametrize("coding", ["gzip", "br", "deflate", "zstd", "gzip, br"])
def test_compressed_bodies_are_stored_byte_for_byte(web: WebServer, tmp_path: Path,
                                                    coding: str) -> None:
    text = ("<html><body>" + "evidence of the claim " * 300 + "</body></html>").encode()
    encoders = {"gzip": gzip.compress, "br": brotli.compress, "deflate": zlib.compress,
                "zstd": zstandard.ZstdCompressor().compress}
    wire = text
    for name in (c.strip() for c in coding.split(",")):
        wire = encoders[name](wire)
    web.route("/c", Reply(200, wire, {"Content-Type": "text/html", "Content-Encoding": coding}))
    result, _ = one(FAST, web.url("/c"), tmp_path / "archive")
    assert isinstance(result, Capture) and result.content == text
    (record,) = response_records(tmp_path / "archive")
    assert record[3] == wire
    assert record[2].get_header("Content-Encoding") == coding


def test_decode_body_bounds_a_brotli_bomb() -> None:
    import io

    bomb = brotli.compress(bytes(64 << 20), quality=1)
    content = decode_body(io.BytesIO(bomb), "br", 1 << 20)
    assert len(content) == 1 << 20
    assert decode_body(io.BytesIO(b"not gzip at all"), "gzip", 100) == b""
    assert decode_body(io.BytesIO(b"plain"), "x-unknown", 100) == b""
    assert decode_body(io.BytesIO(zlib.compress(b"raw?")[2:-4]), "deflate", 100) == b"raw?"


@pytest.mark.parametrize("coding", [None, "", "identity", " Identity ", "identity, identity"])
@pytest.mark.parametrize("cap", [0, 5, 70_000, 200_000])
def test_decode_body_of_an_uncoded_body_is_its_head_and_leaves_it_at_the_start(
        coding: str | None, cap: int) -> None:
    import io

    body = bytes(range(256)) * 600  # 153,600 bytes: more than one piece of the decoder's
    raw = io.BytesIO(body)
    raw.seek(1234)
    assert decode_body(raw, coding, cap) == body[:cap]
    assert raw.tell() == 0


# ── failures that are not retried ───────────────────────────────────────────


def test_untrusted_certificate_is_a_tls_error_not_retried(https_web: WebServer,
                                                          monkeypatch) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    https_web.route("/x", Reply(200, b"never"))
    result, attempts = one(FAST, https_web.url("/x"))
    assert isinstance(result, FetchFailure) and result.verdict is Verdict.TLS_ERROR
    assert result.attempts == 1 and len(attempts) == 1
    assert "CERTIFICATE_VERIFY_FAILED" in result.reason or "certificate" in result.reason


def test_unresolvable_name_is_a_dns_error_not_retried() -> None:
    result, attempts = one(FAST, "http://no-such-host.invalid/page")
    assert isinstance(result, FetchFailure) and result.verdict is Verdict.DNS_ERROR
    assert len(attempts) == 1 and "no-such-host.invalid" in result.reason


@pytest.mark.parametrize("url", ["ftp://example.org/x", "http://", "javascript:alert(1)",
                                 "not a url", "", "http://exa mple.org/"])
def test_invalid_urls(url: str) -> None:
    result, attempts = one(FAST, url)
    assert isinstance(result, FetchFailure) and result.verdict is Verdict.INVALID_URL
    assert attempts == []


# ── the address guard ───────────────────────────────────────────────────────


def test_guard_refuses_loopback_by_default(web: WebServer) -> None:
    web.route("/x", Reply(200, b"internal"))
    result, attempts = one(replace(FAST, allow_private_networks=False), web.url("/x"))
    assert isinstance(result, FetchFailure) and result.verdict is Verdict.PRIVATE_ADDRESS
    assert "127.0.0.1" in result.reason and "loopback" in result.reason
    assert web.hits["/x"] == 0 and attempts == []


@pytest.mark.parametrize(("target", "word"), [
    ("http://127.0.0.1:{other}/admin", "loopback"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://[::1]:{other}/", "loopback"),
    ("http://10.0.0.1/", "private"),
])
def test_guard_refuses_redirects_into_private_space(web: WebServer, tmp_path: Path,
                                                    target: str, word: str) -> None:
    with WebServer() as other:
        other.route("/admin", Reply(200, b"secret"))
        location = target.format(other=other.port)
        web.route("/go", redirect(location))
        guard = AddressGuard.allowing([("127.0.0.1", web.port)])
        settings = replace(FAST, allow_private_networks=False)
        result, _ = one(settings, web.url("/go"), tmp_path / "archive", guard=guard)
        assert other.hits["/admin"] == 0
    assert isinstance(result, FetchFailure) and result.verdict is Verdict.PRIVATE_ADDRESS
    assert word in result.reason
    assert [h.status for h in result.hops] == [302]  # the allowed hop is archived
    assert len(response_records(tmp_path / "archive")) == 1


def test_guard_allowlist_admits_only_the_listed_port(web: WebServer) -> None:
    web.route("/ok", Reply(200, b"fine"))
    guard = AddressGuard.allowing([("127.0.0.1", web.port)])
    settings = replace(FAST, allow_private_networks=False)
    result, _ = one(settings, web.url("/ok"), guard=guard)
    assert isinstance(result, Capture) and result.content == b"fine"


@pytest.mark.parametrize("location", [
    "http://0177.0.0.1:{port}/admin", "http://127.000.000.001:{port}/admin",
    "http:\\\\127.0.0.1:{port}\\admin",
])
def test_redirect_to_a_hidden_private_address_is_refused_as_such(web: WebServer,
                                                                 location: str) -> None:
    """A redirect to a private address spelled as browsers also read it is refused as a
    private address (it was 'invalid_url': the join rejected what the guard would refuse)."""
    with WebServer() as other:
        other.route("/admin", Reply(200, b"secret"))
        web.route("/go", redirect(location.format(port=other.port)))
        guard = AddressGuard.allowing([("127.0.0.1", web.port)])
        settings = replace(FAST, allow_private_networks=False)
        result, _ = one(settings, web.url("/go"), guard=guard)
        assert other.hits["/admin"] == 0
    assert isinstance(result, FetchFailure) and result.verdict is Verdict.PRIVATE_ADDRESS, result


def test_a_host_idna_cannot_read_is_an_invalid_url_cited_or_redirected_to(
        web: WebServer) -> None:
    """``xn--localhost`` is no host (its IDNA decoding fails): an invalid URL, whether cited
    or reached by a redirect, never an error that stops the run."""
    result, _ = one(FAST, "http://xn--localhost/")
    assert isinstance(result, FetchFailure) and result.verdict is Verdict.INVALID_URL
    web.route("/go", redirect("http://xn--localhost/r"))
    result, _ = one(FAST, web.url("/go"))
    assert isinstance(result, FetchFailure) and result.verdict is Verdict.INVALID_URL


# ── politeness, probe, fetch_all ────────────────────────────────────────────


def test_per_host_limit_and_hosts_in_parallel() -> None:
    """At most ``per_host`` requests are in flight to one host, and hosts are served at the
    same time: both read from the servers' own count of requests in flight (a wall-clock
    bound would measure the machine's load as much as the fetcher)."""
    lock = threading.Lock()
    in_flight: dict[str, int] = {}
    most: dict[str, int] = {}
    most_overall = 0

    def slow(host: str):  # type: ignore[no-untyped-def]
        def handler(req: Request) -> Reply:
            nonlocal most_overall
            with lock:
                in_flight[host] = in_flight.get(host, 0) + 1
                most[host] = max(most.get(host, 0), in_flight[host])
                most_overall = max(most_overall, sum(in_flight.values()))
            time.sleep(0.3)
            with lock:
                in_flight[host] -= 1
            return Reply(200, b"ok")
        return handler

    servers = [WebServer(host=f"127.0.0.{i}") for i in (2, 3, 4)]
    try:
        for server in servers:
            server.route("/slow", slow(server.host))
        urls = [s.url(f"/slow?{n}") for s in servers for n in range(4)]
        settings = replace(FAST, per_host=2, concurrency=32)
        results, _ = run(settings, urls)
    finally:
        for server in servers:
            server.close()
    assert all(isinstance(r, Capture) and r.status == 200 for r in results.values())
    assert most == {s.host: 2 for s in servers}  # the limit is reached, never passed
    assert most_overall > 2  # other hosts are not held back by one host's limit


def test_host_interval_spaces_request_starts(web: WebServer) -> None:
    starts: list[float] = []

    def handler(req: Request) -> Reply:
        starts.append(time.monotonic())
        return Reply(200, b"ok")

    web.route("/t", handler)
    settings = replace(FAST, per_host=4, host_interval=0.2)
    run(settings, [web.url(f"/t?{i}") for i in range(4)])
    # Arrivals at the server: the gate spaces request starts, so each arrival also carries
    # its own connect and the server thread's scheduling, tens of ms apart on a busy machine.
    # Without the interval the four arrive within a few ms of each other.
    gaps = [b - a for a, b in zip(sorted(starts), sorted(starts)[1:], strict=False)]
    assert len(gaps) == 3 and min(gaps) >= 0.1 and sum(gaps) >= 0.5, gaps


def test_host_gate_spaces_its_entries_by_the_interval() -> None:
    """The spacing itself, where the gate makes it: four requests that all want a slot at
    once enter 0.2 s apart: the n-th not before 0.2 × n s after they asked (the loop's timer
    is accurate to about a millisecond). A busy machine can only make an entry seen later
    than the gate let it in, never earlier, so the bound holds however loaded it is."""
    entered: list[float] = []
    asked: list[float] = []

    async def go() -> None:
        gate = _HostGate(per_host=4, interval=0.2)

        async def request() -> None:
            async with gate.slot():
                entered.append(time.monotonic())

        asked.append(time.monotonic())
        await asyncio.gather(*(request() for _ in range(4)))

    asyncio.run(go())
    assert len(entered) == 4
    assert all(at - asked[0] >= 0.2 * n - 0.005 for n, at in enumerate(entered)), \
        [at - asked[0] for at in entered]
    assert entered[-1] - asked[0] < 0.6 + 2.0  # spaced, not stalled


def test_turns_go_to_first_asks_before_the_others_waiting() -> None:
    """A turn asked for ``first`` (a soft-404 probe) goes before the ordinary asks already
    waiting; among each kind, first come first served."""
    order: list[str] = []

    async def go() -> None:
        turns = _Turns(1)
        await turns.acquire()  # the one turn, held

        async def ask(name: str, first: bool = False) -> None:
            await turns.acquire(first)
            order.append(name)
            turns.release()

        tasks = [asyncio.ensure_future(ask(name)) for name in ("a", "b")]
        await asyncio.sleep(0)
        tasks += [asyncio.ensure_future(ask(name, first=True)) for name in ("p1", "p2")]
        await asyncio.sleep(0)
        assert turns.waiting == 4
        turns.release()
        await asyncio.wait_for(asyncio.gather(*tasks), 5)

    asyncio.run(go())
    assert order == ["p1", "p2", "a", "b"]


def test_a_cancelled_ask_loses_no_turn() -> None:
    """An ask cancelled while it waits leaves the queue (the next ask is served at once
    when a turn is free), and one cancelled after its turn was given, before it ran, passes
    the turn on to the next waiter: the count of turns never shrinks."""

    async def go() -> None:
        turns = _Turns(1)
        await turns.acquire()
        waiting = asyncio.ensure_future(turns.acquire())
        await asyncio.sleep(0)
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        assert turns.waiting == 0
        turns.release()
        await asyncio.wait_for(turns.acquire(), 1)  # free: taken without waiting

        given = asyncio.ensure_future(turns.acquire())
        behind = asyncio.ensure_future(turns.acquire(first=True))
        await asyncio.sleep(0)
        turns.release()  # to ``behind`` (first), then ``given`` waits
        behind.cancel()  # given its turn, cancelled before it ran
        await asyncio.gather(behind, return_exceptions=True)
        await asyncio.wait_for(given, 1)  # the turn passed on
        turns.release()
        await asyncio.wait_for(turns.acquire(), 1)

    asyncio.run(go())


def test_a_probe_goes_before_the_pages_waiting_for_its_host(web: WebServer) -> None:
    """A soft-404 probe asked for while pages of its host wait for their turn is sent at
    the next turn, not behind them: every page of its directory fetched before it waits for
    its answer to be judged. Read from the order the server saw the requests in."""
    arrived: list[str] = []

    def slow(req: Request) -> Reply:
        arrived.append(req.path)
        return Reply(200, b"ok", delay=0.2)

    web.route("/p", slow)
    web.route("/probe", slow)
    settings = replace(FAST, per_host=1, concurrency=8)

    async def go() -> None:
        async with Fetcher(settings, None) as fetcher:
            pages = [asyncio.ensure_future(fetcher.fetch(web.url(f"/p?{n}"))) for n in range(4)]
            while not arrived:  # the first page holds the host's one turn
                await asyncio.sleep(0.01)
            probe = asyncio.ensure_future(fetcher.probe(web.url("/probe")))
            await asyncio.wait_for(asyncio.gather(*pages, probe), 10)

    asyncio.run(go())
    assert arrived == ["/p?0", "/probe", "/p?1", "/p?2", "/p?3"]


def test_the_next_request_to_a_host_goes_before_an_answer_is_archived(
        web: WebServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An answer gives its host's turn to the request waiting for it, and that request is
    on its way before the answer is written to the WARC (and judged, after that): the CPU an
    answer costs does not hold the host's next request back. Read from how many requests
    had entered the host's gate when each answer's exchange was written (with one turn per
    host, one at a time without this: 1, 2, 3)."""
    web.route("/p", Reply(200, b"ok"))
    entered = 0
    seen_at_write: list[int] = []
    enter = _HostGate._enter

    async def counted(gate: _HostGate, first: bool = False) -> None:
        nonlocal entered
        await enter(gate, first)
        entered += 1

    monkeypatch.setattr(_HostGate, "_enter", counted)
    settings = replace(FAST, per_host=1, concurrency=8)

    async def go() -> None:
        with WarcWriter(tmp_path / "archive", root=tmp_path, run_id="test") as writer:
            write = writer.write_exchange

            def watched(**kwargs):  # type: ignore[no-untyped-def]
                seen_at_write.append(entered)
                return write(**kwargs)

            writer.write_exchange = watched  # type: ignore[method-assign]
            async with Fetcher(settings, writer) as fetcher:
                await asyncio.wait_for(fetcher.fetch_all(
                    [web.url(f"/p?{n}") for n in range(3)]), 10)

    asyncio.run(go())
    assert seen_at_write == [2, 3, 3], seen_at_write
    assert len(response_records(tmp_path / "archive")) == 3


def test_global_concurrency_limit(web: WebServer) -> None:
    web.route("/slow", lambda req: Reply(200, b"ok", delay=0.2))
    settings = replace(FAST, per_host=10, concurrency=2)
    started = time.monotonic()
    run(settings, [web.url(f"/slow?{i}") for i in range(6)])
    assert time.monotonic() - started >= 0.55  # 6 requests, 2 at a time, 0.2 s each


def test_probe_is_not_archived_and_not_retried(web: WebServer) -> None:
    web.route("/missing", Reply(503, b"busy"))
    result, attempts = one(FAST, web.url("/missing"), probe=True)
    assert isinstance(result, Capture) and result.status == 503 and result.attempts == 1
    assert result.warc is None and len(attempts) == 1


def test_fetch_all_calls_back_once_per_distinct_url(web: WebServer, tmp_path: Path) -> None:
    web.route("/a", Reply(200, b"a"))
    web.route("/b", Reply(404, b"b"))
    seen: list[str] = []

    async def go() -> dict[str, FetchResult]:
        with WarcWriter(tmp_path / "archive", root=tmp_path, run_id="all") as writer:
            async with Fetcher(FAST, writer) as fetcher:
                return await fetcher.fetch_all(
                    [web.url("/a"), web.url("/b"), web.url("/a")],
                    on_result=lambda url, result: seen.append(url))

    results = asyncio.run(go())
    assert sorted(seen) == sorted([web.url("/a"), web.url("/b")]) and len(results) == 2
    assert_valid_warcs(tmp_path / "archive")


def test_the_tls_context_is_made_once_per_certificate_setting(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, https_web: WebServer) -> None:
    """One context per process (its CA store then shared with forked workers), made again
    when SSL_CERT_FILE names another file or the file changed."""
    from archiver.fetch import shared_ssl_context

    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    monkeypatch.setenv("SSL_CERT_FILE", https_web.ca_file)
    first = shared_ssl_context()
    assert shared_ssl_context() is first
    copy = tmp_path / "copy-of-ca.pem"
    copy.write_bytes(Path(https_web.ca_file).read_bytes())
    monkeypatch.setenv("SSL_CERT_FILE", str(copy))
    second = shared_ssl_context()
    assert second is not first and shared_ssl_context() is second
    os.utime(copy, ns=(0, 0))  # the file replaced since: read again
    assert shared_ssl_context() is not second
    monkeypatch.setenv("SSL_CERT_FILE", https_web.ca_file)
    assert shared_ssl_context() is first
