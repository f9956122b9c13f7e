"""Every way an exchange can fail, phase by phase, over plain HTTP and over TLS, against raw
loopback socket servers this file controls byte by byte.

The verdict depends on how far the exchange got (connect, TLS handshake, waiting for the
answer, reading the body), never on the exception's class name or message: a read timeout
over TLS is a ``timeout`` (retried), not a ``tls_error``. A server that accepts TCP and never
completes the TLS handshake is a ``timeout`` too (as in httpx and lychee): nothing was said
about the certificate, the server just did not answer; it is retried.
"""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import ssl
import struct
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from archiver import retry
from archiver.config import FetchSettings, RescueSettings
from archiver.fetch import Attempt, Fetcher
from archiver.models import Capture, FetchFailure, FetchResult, Verdict
from archiver.rescue import LookupResult, Rescuer
from archiver.warc import WarcWriter
from tests.loopback import ThreadedServer
from tests.test_warc import assert_valid_warcs, read_warc

# Every test runs on both transports under httpx (see conftest.fetch_transport).
pytestmark = pytest.mark.usefixtures("fetch_transport")

SETTINGS = FetchSettings(timeout=0.5, deadline=10.0, retries=2, allow_private_networks=True,
                         host_interval=0.0, backoff_base=0.01, backoff_max=0.01)
ATTEMPTS = SETTINGS.retries + 1
LIMIT = f"{SETTINGS.timeout:g}s"
# For failures that are not timeouts: a TLS handshake on a loaded machine must not time out.
PATIENT = replace(SETTINGS, timeout=5.0)
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 1000\r\n\r\n"
PART = b"<html><p>" + b"x" * 91  # 100 bytes of the promised 1000


@pytest.fixture(autouse=True)
def _no_backoff_sleeps() -> Iterator[None]:
    with retry.testing():
        yield


Behaviour = Callable[[socket.socket, threading.Event], None]


class RawServer(ThreadedServer):
    """A TCP server on 127.0.0.1, port 0, that runs ``behaviour(conn, stop)`` for each
    connection in its own thread, after a TLS handshake when ``tls`` is given. Stalling
    behaviours wait on ``stop``, which is set when the server closes."""

    def __init__(self, behaviour: Behaviour, tls: ssl.SSLContext | None = None) -> None:
        self.behaviour = behaviour
        super().__init__(tls)

    def serve(self, conn: socket.socket) -> None:
        self.behaviour(conn, self.stop)


def read_request(conn: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            return
        data += chunk


def hold(conn: socket.socket, stop: threading.Event) -> None:
    """Accept and never say a word (over TLS: never even answer the handshake)."""
    stop.wait(30)


def silent(conn: socket.socket, stop: threading.Event) -> None:
    read_request(conn)
    stop.wait(30)


def half_head(conn: socket.socket, stop: threading.Event) -> None:
    read_request(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n")
    stop.wait(30)


def stall_body(conn: socket.socket, stop: threading.Event) -> None:
    read_request(conn)
    conn.sendall(HEAD + PART)
    stop.wait(30)


def close_mid_body(conn: socket.socket, stop: threading.Event) -> None:
    read_request(conn)
    conn.sendall(HEAD + PART)
    conn.close()


def _reset(conn: socket.socket) -> None:
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def reset_waiting(conn: socket.socket, stop: threading.Event) -> None:
    read_request(conn)
    _reset(conn)


@pytest.fixture(scope="module")
def tls(tmp_path_factory) -> tuple[ssl.SSLContext, str]:
    """A server context with a certificate for 127.0.0.1 and the CA file that trusts it."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
    ca_file = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return ctx, str(ca_file)


@pytest.fixture(params=["http", "https"])
def scheme(request, tls, monkeypatch) -> ssl.SSLContext | None:
    """Run the test over plain HTTP and over TLS (client trusting the server's CA)."""
    if request.param == "http":
        return None
    ctx, ca_file = tls
    monkeypatch.setenv("SSL_CERT_FILE", ca_file)
    return ctx


def fetch(url: str, archive: Path | None = None,
          settings: FetchSettings = SETTINGS) -> tuple[FetchResult, list[str]]:
    """The result, and each attempt's outcome as reported to ``on_attempt``; an answer whose
    body was cut is reported as ``"response: <why>"``."""
    outcomes: list[str] = []

    def record(attempt: Attempt) -> None:
        text = attempt.outcome
        if attempt.outcome == "response" and attempt.error:
            text += f": {attempt.error}"
        outcomes.append(text)

    async def go() -> FetchResult:
        if archive is None:
            async with Fetcher(settings, None, on_attempt=record) as fetcher:
                return await fetcher.fetch(url)
        with WarcWriter(archive, root=archive.parent, run_id="test") as writer:
            async with Fetcher(settings, writer, on_attempt=record) as fetcher:
                return await fetcher.fetch(url)

    return asyncio.run(go()), outcomes


def failure(behaviour: Behaviour, tls: ssl.SSLContext | None,
            settings: FetchSettings = SETTINGS) -> tuple[FetchFailure, list[str], int]:
    server = RawServer(behaviour, tls)
    try:
        result, outcomes = fetch(server.url(), settings=settings)
    finally:
        server.close()
    assert isinstance(result, FetchFailure), result
    return result, outcomes, server.connections


# ── waiting for the answer ──────────────────────────────────────────────────


def test_request_sent_and_never_answered_is_a_retried_timeout(scheme) -> None:
    result, outcomes, connections = failure(silent, scheme)
    assert result.verdict is Verdict.TIMEOUT, result.reason
    assert result.reason == f"no answer within {LIMIT} (the request was sent)"
    assert result.attempts == ATTEMPTS and outcomes == ["timeout"] * ATTEMPTS
    assert connections == ATTEMPTS


def test_half_a_response_head_then_silence_is_a_retried_timeout(scheme) -> None:
    result, outcomes, _ = failure(half_head, scheme)
    assert result.verdict is Verdict.TIMEOUT, result.reason
    assert result.reason == f"no answer within {LIMIT} (the request was sent)"
    assert result.attempts == ATTEMPTS and outcomes == ["timeout"] * ATTEMPTS


def test_reset_before_the_answer_is_a_retried_connection_error(scheme) -> None:
    result, outcomes, _ = failure(reset_waiting, scheme, PATIENT)
    assert result.verdict is Verdict.CONNECTION_ERROR, result.reason
    assert result.reason.startswith("the connection was closed before an answer"), result.reason
    assert result.attempts == ATTEMPTS and outcomes == ["connection_error"] * ATTEMPTS


def test_the_per_url_deadline_names_itself(scheme) -> None:
    settings = replace(SETTINGS, timeout=5.0, deadline=0.5)
    result, outcomes, _ = failure(silent, scheme, settings)
    assert result.verdict is Verdict.TIMEOUT
    assert result.reason == ("no answer within the deadline of 0.5s (the request was sent)")
    assert result.attempts == 1 and outcomes == ["timeout"]


# ── connecting ──────────────────────────────────────────────────────────────


def test_refused_connection_is_a_retried_connection_error(scheme) -> None:
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    url = f"{'https' if scheme else 'http'}://127.0.0.1:{port}/page"
    result, outcomes = fetch(url, settings=PATIENT)
    assert isinstance(result, FetchFailure) and result.verdict is Verdict.CONNECTION_ERROR
    assert result.reason == "connection refused"
    assert result.attempts == ATTEMPTS and outcomes == ["connection_error"] * ATTEMPTS


# ── the TLS handshake ───────────────────────────────────────────────────────


def test_tls_handshake_never_completed_is_a_retried_timeout(tls, monkeypatch) -> None:
    # Accepts TCP, never answers the ClientHello: a timeout, not a verdict on TLS.
    monkeypatch.setenv("SSL_CERT_FILE", tls[1])
    server = RawServer(hold)
    try:
        result, outcomes = fetch(f"https://127.0.0.1:{server.port}/page")
    finally:
        server.close()
    assert isinstance(result, FetchFailure) and result.verdict is Verdict.TIMEOUT, result
    assert result.reason == f"the TLS handshake did not finish within {LIMIT}"
    assert result.attempts == ATTEMPTS and outcomes == ["timeout"] * ATTEMPTS



@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts fds in /proc")
@pytest.mark.parametrize("stage", ["handshake", "body"])
def test_the_deadline_striking_mid_exchange_closes_the_socket_then(tls, monkeypatch,
                                                                  stage: str) -> None:
    """The per-URL deadline cancels a TLS handshake (or a body read) in the middle: the
    socket is closed by then, not left for the garbage collector (httpcore's AnyIO backend
    left a cancelled handshake's transport open: "unclosed transport" ResourceWarning)."""
    monkeypatch.setenv("SSL_CERT_FILE", tls[1])
    settings = replace(SETTINGS, timeout=5.0, deadline=0.4, retries=0)
    # What earlier tests left for the collector is collected now, outside the warnings
    # recorded below: they are this fetch's alone.
    gc.collect()
    before = len(os.listdir("/proc/self/fd"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        server = RawServer(hold if stage == "handshake" else stall_body,
                           None if stage == "handshake" else tls[0])
        try:
            result, _ = fetch(f"https://127.0.0.1:{server.port}/page",
                                     settings=settings)
        finally:
            server.close()
        after = len(os.listdir("/proc/self/fd"))
        gc.collect()
    if stage == "handshake":
        assert isinstance(result, FetchFailure) and result.verdict is Verdict.TIMEOUT, result
        assert result.reason == "the TLS handshake did not finish within the deadline of 0.4s"
    else:
        assert isinstance(result, Capture) and result.truncated == "time", result
    assert after == before, (before, after)
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)], \
        [str(w.message) for w in caught]


def test_reset_during_the_tls_handshake_is_a_retried_connection_error(tls,
                                                                      monkeypatch) -> None:
    def hello_then_reset(conn: socket.socket, stop: threading.Event) -> None:
        conn.recv(4096)  # the ClientHello: the handshake has begun
        _reset(conn)

    monkeypatch.setenv("SSL_CERT_FILE", tls[1])
    server = RawServer(hello_then_reset)
    try:
        result, outcomes = fetch(f"https://127.0.0.1:{server.port}/page", settings=PATIENT)
    finally:
        server.close()
    assert isinstance(result, FetchFailure), result
    assert result.verdict is Verdict.CONNECTION_ERROR, result.reason
    assert "TLS handshake" in result.reason
    assert result.attempts == ATTEMPTS and outcomes == ["connection_error"] * ATTEMPTS


def test_untrusted_certificate_is_a_tls_error_tried_once(tls, monkeypatch) -> None:
    trustme = pytest.importorskip("trustme")
    other = trustme.CA()  # the client trusts ``tls``'s CA, not this one
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    other.issue_cert("127.0.0.1").configure_cert(ctx)
    monkeypatch.setenv("SSL_CERT_FILE", tls[1])
    result, outcomes, connections = failure(silent, ctx, PATIENT)
    assert result.verdict is Verdict.TLS_ERROR, result.reason
    assert result.reason.startswith("TLS handshake failed: ") and "certificate" in result.reason
    assert result.attempts == 1 and outcomes == ["tls_error"] and connections == 1


def test_certificate_for_another_name_is_a_tls_error(tls, monkeypatch) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("elsewhere.example").configure_cert(ctx)
    ca_file = Path(tls[1]).with_name("other-ca.pem")
    ca.cert_pem.write_to_path(str(ca_file))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    result, outcomes, _ = failure(silent, ctx, PATIENT)
    assert result.verdict is Verdict.TLS_ERROR, result.reason
    assert "127.0.0.1" in result.reason or "mismatch" in result.reason.lower()
    assert result.attempts == 1 and outcomes == ["tls_error"]


def test_plain_http_answer_to_a_tls_client_is_a_tls_error(monkeypatch) -> None:
    # A protocol failure during the handshake (the server speaks HTTP, not TLS).
    def speak_http(conn: socket.socket, stop: threading.Event) -> None:
        conn.recv(4096)
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        stop.wait(30)

    server = RawServer(speak_http)
    try:
        result, outcomes = fetch(f"https://127.0.0.1:{server.port}/page", settings=PATIENT)
    finally:
        server.close()
    assert isinstance(result, FetchFailure) and result.verdict is Verdict.TLS_ERROR, result
    assert result.reason.startswith("TLS handshake failed: ")
    assert result.attempts == 1 and outcomes == ["tls_error"]


# ── reading the body ────────────────────────────────────────────────────────


def _body_records(archive: Path) -> list:
    assert_valid_warcs(archive)
    return [r for path in sorted(archive.glob("*.warc.gz")) for r in read_warc(path)
            if r[0] == "response"]


def test_body_stalled_mid_way_is_a_truncated_capture_retried(scheme, tmp_path: Path) -> None:
    server = RawServer(stall_body, scheme)
    try:
        result, outcomes = fetch(server.url(), tmp_path / "archive")
    finally:
        server.close()
    assert isinstance(result, Capture), result
    assert result.status == 200 and result.truncated == "time"
    assert result.content == PART
    # A stall mid-body is a timeout: retried like one; the last attempt's answer is kept.
    assert result.attempts == ATTEMPTS
    assert outcomes == [f"response: the body stalled: nothing more within {LIMIT}"] * ATTEMPTS
    (record,) = _body_records(tmp_path / "archive")
    assert record[1]["WARC-Truncated"] == "time" and record[3] == PART


def test_body_shorter_than_its_content_length_is_truncated_disconnect(scheme,
                                                                      tmp_path: Path) -> None:
    server = RawServer(close_mid_body, scheme)
    try:
        result, outcomes = fetch(server.url(), tmp_path / "archive", PATIENT)
    finally:
        server.close()
    assert isinstance(result, Capture), result
    assert result.status == 200 and result.truncated == "disconnect"
    assert result.content == PART
    assert result.attempts == ATTEMPTS and len(outcomes) == ATTEMPTS
    assert all(o.startswith("response: the connection was closed in the middle of the body: ")
               for o in outcomes), outcomes
    (record,) = _body_records(tmp_path / "archive")
    assert record[1]["WARC-Truncated"] == "disconnect" and record[3] == PART


# ── the mapping itself (pure decision logic) ────────────────────────────────


def test_the_exception_being_handled_when_a_timeout_struck_does_not_decide() -> None:
    # What anyio's TLS stream leaves behind: the timeout is raised while an
    # SSLWantReadError ("The operation did not complete (read)") is being handled.
    from archiver.fetch import Phase, network_failure

    try:
        try:
            raise ssl.SSLWantReadError(2, "The operation did not complete (read)")
        except ssl.SSLError:
            raise httpx.ReadTimeout("timed out") from None
    except httpx.ReadTimeout as exc:
        assert isinstance(exc.__context__, ssl.SSLWantReadError)
        found = network_failure(exc, Phase.WAITING, limit="10s")
    assert found.verdict is Verdict.TIMEOUT and found.phase is Phase.WAITING
    assert found.reason == "no answer within 10s (the request was sent)"


def test_phase_trace_follows_httpcore_events() -> None:
    from archiver.fetch import Phase, PhaseTrace

    trace = PhaseTrace()
    assert trace.phase is Phase.CONNECT and not trace.phase.sent

    async def walk() -> list[Phase]:
        seen = []
        for event in ("connection.connect_tcp.started", "connection.start_tls.started",
                      "http11.send_request_headers.started",
                      "http11.receive_response_headers.started",
                      "http11.receive_response_headers.complete"):
            await trace(event, {})
            seen.append(trace.phase)
        return seen

    assert asyncio.run(walk()) == [Phase.CONNECT, Phase.TLS, Phase.REQUEST, Phase.WAITING,
                                   Phase.BODY]
    assert trace.phase.sent


# ── the Internet Archive client judges its failures with the same mapping ───


def _archive_at(port: int, timeout: float = SETTINGS.timeout) -> RescueSettings:
    base = f"https://127.0.0.1:{port}"
    # The breaker is set high: these tests count the attempts one lookup makes.
    return RescueSettings(availability_api=f"{base}/wayback/available",
                          cdx_api=f"{base}/cdx/search/cdx", replay_base=f"{base}/web",
                          spn_api=f"{base}/save", timeout=timeout, retries=2,
                          breaker_after=100)


def _rescue_lookup(settings: RescueSettings) -> LookupResult:
    async def go() -> LookupResult:
        async with Rescuer(settings, user_agent="archiver-tests", backoff=0) as rescuer:
            return await rescuer.lookup("https://example.org/page", None)

    return asyncio.run(go())


def test_archive_with_an_untrusted_certificate_is_asked_once(tls, monkeypatch) -> None:
    trustme = pytest.importorskip("trustme")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("127.0.0.1").configure_cert(ctx)
    monkeypatch.setenv("SSL_CERT_FILE", tls[1])
    server = RawServer(silent, ctx)
    try:
        result = _rescue_lookup(_archive_at(server.port, timeout=5.0))
    finally:
        server.close()
    assert result.memento is None and result.error is not None
    assert result.error.startswith("TLS handshake failed: ") and "certificate" in result.error
    # A certificate does not get better by asking again: the CDX and availability APIs are
    # asked once each (they were asked retries + 1 times each).
    assert result.requests == 2 == server.connections


def test_archive_that_never_answers_over_tls_is_a_retried_timeout(tls, monkeypatch) -> None:
    ctx, ca_file = tls
    monkeypatch.setenv("SSL_CERT_FILE", ca_file)
    server = RawServer(silent, ctx)
    try:
        result = _rescue_lookup(_archive_at(server.port))
    finally:
        server.close()
    assert result.memento is None and result.error == "timeout"
    # Timeouts are retried: retries + 1 attempts at each of the two APIs.
    assert result.requests == 2 * (_archive_at(0).retries + 1) == server.connections


def test_soft404_probe_judges_a_silent_tls_server_as_a_timeout(tls, monkeypatch) -> None:
    # The probe goes through the same attempt and mapping, not retried.
    ctx, ca_file = tls
    monkeypatch.setenv("SSL_CERT_FILE", ca_file)
    server = RawServer(silent, ctx)

    async def go() -> FetchResult:
        async with Fetcher(SETTINGS, None) as fetcher:
            return await fetcher.probe(server.url("/zz-archiver-probe-0"))

    try:
        result = asyncio.run(go())
    finally:
        server.close()
    assert isinstance(result, FetchFailure) and result.verdict is Verdict.TIMEOUT, result
    assert result.reason == f"no answer within {LIMIT} (the request was sent)"
    assert result.attempts == 1 and server.connections == 1
