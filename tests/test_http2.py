"""The fetcher over HTTP/2: a real hypercorn server on loopback, TLS with a trustme certificate
and ALPN ``h2``. The server records which protocol served each request, so every test knows
the answer really came over HTTP/2; every WARC written is read back and checked."""

from __future__ import annotations

import asyncio
import gzip
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from archiver import retry
from archiver.config import FetchSettings
from archiver.fetch import Fetcher
from archiver.models import Capture, FetchResult
from archiver.warc import WarcWriter, read_record
from tests.test_warc import assert_valid_warcs, read_warc

hypercorn_asyncio = pytest.importorskip("hypercorn.asyncio")
hypercorn_config = pytest.importorskip("hypercorn.config")

FAST = FetchSettings(timeout=2.0, deadline=6.0, retries=1, allow_private_networks=True,
                     host_interval=0.0, backoff_base=0.05, backoff_max=0.1)

PAGE = b"<html><body><p>the cited evidence, over h2</p></body></html>"
GZIPPED = gzip.compress(b"<html><body>" + b"compressed evidence " * 500 + b"</body></html>",
                        mtime=0)
# Larger than HTTP/2's initial 65,535-byte flow-control window, so WINDOW_UPDATEs are needed.
BIG = bytes(range(256)) * 1200


Send = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class Answer:
    """What the server sends for one path: status, headers, body (sent exactly as given)."""

    status: int
    headers: tuple[tuple[bytes, bytes], ...] = ()
    body: bytes = b""


@dataclass
class H2Server:
    """A hypercorn server on 127.0.0.1 (port 0) over TLS, offering ``h2`` then ``http/1.1``.

    ``routes`` maps a path to an ``Answer`` or to a coroutine function that sends the ASGI
    messages itself. ``served`` lists (path, scope["http_version"]) for every request, in
    arrival order.
    """

    port: int
    ca_file: str
    routes: dict[str, Answer | Callable[[Send], Awaitable[None]]] = field(default_factory=dict)
    served: list[tuple[str, str]] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    async def app(self, scope: dict[str, Any], receive: Any, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan: nothing to set up
        path = scope["path"]
        self.served.append((path, scope["http_version"]))
        answer = self.routes.get(path, Answer(404, ((b"content-type", b"text/plain"),),
                                              b"no such page"))
        if not isinstance(answer, Answer):
            await answer(send)
            return
        headers = [*answer.headers, (b"content-length", str(len(answer.body)).encode())]
        await send({"type": "http.response.start", "status": answer.status,
                    "headers": headers})
        await send({"type": "http.response.body", "body": answer.body})


@pytest.fixture
def h2_server(tls_ca, tmp_path: Path) -> Iterator[H2Server]:
    cert = tls_ca.issue_cert("127.0.0.1", "localhost")
    cert_file, ca_file = tmp_path / "server.pem", tmp_path / "ca.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    tls_ca.cert_pem.write_to_path(str(ca_file))

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)  # connections queue from now on, before hypercorn starts accepting
    port = sock.getsockname()[1]
    server = H2Server(port=port, ca_file=str(ca_file))

    config = hypercorn_config.Config()
    config.bind = [f"fd://{sock.detach()}"]  # hypercorn owns (and closes) the socket now
    config.certfile = config.keyfile = str(cert_file)
    config.alpn_protocols = ["h2", "http/1.1"]
    config.graceful_timeout = 0.5
    config.accesslog = None

    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    started = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        asyncio.set_event_loop(loop)

        async def main() -> None:
            loop.call_soon(started.set)
            await hypercorn_asyncio.serve(server.app, config, shutdown_trigger=stop.wait)

        try:
            loop.run_until_complete(main())
        except BaseException as exc:  # reported by the fixture, not lost in the thread
            failure.append(exc)
            started.set()
        finally:
            loop.close()

    thread = threading.Thread(target=run, name="h2-server", daemon=True)
    thread.start()
    assert started.wait(5), "HTTP/2 server did not start"
    try:
        yield server
    finally:
        if not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)
        thread.join(5)
    assert not thread.is_alive(), "HTTP/2 server did not stop"
    assert not failure, failure


@pytest.fixture(autouse=True)
def _trust_and_no_backoff(h2_server: H2Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Trust comes from the environment, as in production: httpx reads SSL_CERT_FILE.
    monkeypatch.setenv("SSL_CERT_FILE", h2_server.ca_file)
    with retry.testing():
        yield


def fetch(urls: list[str], archive: Path, settings: FetchSettings = FAST,
          ) -> dict[str, FetchResult]:
    async def go() -> dict[str, FetchResult]:
        with WarcWriter(archive, root=archive.parent, run_id="h2") as writer:
            async with Fetcher(settings, writer) as fetcher:
                return await fetcher.fetch_all(urls)

    return asyncio.run(go())


def responses(archive: Path) -> dict[str, tuple]:
    """Target URI → (warc headers, http headers, payload) of every response record, after
    every file passed ArchiveIterator(check_digests=True) and ``warcio check -v``."""
    files = assert_valid_warcs(archive)
    return {r[1]["WARC-Target-URI"]: r[1:] for path in files for r in read_warc(path)
            if r[0] == "response"}


def test_page_gzip_redirects_and_404_over_http2(h2_server: H2Server, tmp_path: Path) -> None:
    s = h2_server
    s.routes.update({
        "/page": Answer(200, ((b"content-type", b"text/html; charset=utf-8"),), PAGE),
        "/gz": Answer(200, ((b"content-type", b"text/html"), (b"content-encoding", b"gzip"),
                            (b"vary", b"accept-encoding")), GZIPPED),
        "/big": Answer(200, ((b"content-type", b"application/octet-stream"),), BIG),
        "/r1": Answer(301, ((b"location", b"/r2"),)),
        "/r2": Answer(302, ((b"location", s.url("/r3").encode()),), b"moved"),
        "/r3": Answer(307, ((b"location", b"final?from=r3"),)),
        "/final": Answer(200, ((b"content-type", b"text/plain"),), b"end of the chain"),
    })
    urls = [s.url(p) for p in ("/page", "/gz", "/big", "/r1", "/missing")]
    archive = tmp_path / "archive"
    results = fetch(urls, archive)

    # Every request, hops included, was served over HTTP/2.
    assert sorted(s.served) == sorted((p, "2") for p in
                                      ("/page", "/gz", "/big", "/r1", "/r2", "/r3", "/final",
                                       "/missing"))

    page, gz, big, chain, missing = (results[u] for u in urls)
    assert isinstance(page, Capture), page
    assert (page.status, page.final_url, page.content) == (200, s.url("/page"), PAGE)
    assert page.content_type == "text/html; charset=utf-8" and not page.redirected
    assert isinstance(gz, Capture), gz
    assert gz.status == 200 and gz.content == gzip.decompress(GZIPPED)
    assert isinstance(big, Capture), big
    assert big.content == BIG and big.truncated is None
    assert isinstance(chain, Capture), chain
    assert chain.final_url == s.url("/final?from=r3") and chain.content == b"end of the chain"
    assert [h.status for h in chain.hops] == [301, 302, 307, 200]
    assert [h.url for h in chain.hops] == [s.url("/r1"), s.url("/r2"), s.url("/r3"),
                                           s.url("/final?from=r3")]
    assert isinstance(missing, Capture), missing
    assert (missing.status, missing.content) == (404, b"no such page")

    stored = responses(archive)
    sent = {"/page": PAGE, "/gz": GZIPPED, "/big": BIG, "/missing": b"no such page",
            "/r1": b"", "/r2": b"moved", "/r3": b"", "/final?from=r3": b"end of the chain"}
    for path, body in sent.items():
        _, http, payload = stored[s.url(path)]
        assert payload == body, path  # exactly the bytes sent, gzip included
        assert http.protocol == "HTTP/1.1", http.statusline

    statuses = {path: stored[s.url(path)][1].get_statuscode() for path in sent}
    assert statuses == {"/page": "200", "/gz": "200", "/big": "200", "/missing": "404",
                        "/r1": "301", "/r2": "302", "/r3": "307", "/final?from=r3": "200"}
    assert stored[s.url("/page")][1].statusline == "200 OK"
    gz_head = stored[s.url("/gz")][1]
    # Headers as received over HTTP/2 (lower-case names), hypercorn's own among them.
    assert gz_head.get_header("content-encoding") == "gzip"
    assert gz_head.get_header("content-length") == str(len(GZIPPED))
    assert gz_head.get_header("server") == "hypercorn-h2"
    assert not any(name.startswith(":") for name, _ in gz_head.headers)
    assert stored[s.url("/r1")][1].get_header("location") == "/r2"
    warc_headers = stored[s.url("/gz")][0]
    assert warc_headers["WARC-Payload-Digest"] == gz.payload_digest
    assert warc_headers["WARC-IP-Address"] == "127.0.0.1"
    # read_record (what the report links use) gives the same untouched bytes.
    assert read_record(tmp_path, gz.warc).payload == GZIPPED


def test_request_records_of_http2_exchanges_parse(h2_server: H2Server, tmp_path: Path) -> None:
    h2_server.routes["/page"] = Answer(200, ((b"content-type", b"text/html"),), PAGE)
    archive = tmp_path / "archive"
    result = fetch([h2_server.url("/page")], archive)[h2_server.url("/page")]
    assert isinstance(result, Capture) and h2_server.served == [("/page", "2")]
    assert_valid_warcs(archive)
    (request,) = [r for p in sorted(archive.glob("*.warc.gz")) for r in read_warc(p)
                  if r[0] == "request"]
    http = request[2]
    assert http.protocol == "GET" and http.statusline.startswith("/page ")
    assert http.get_header("host") == f"127.0.0.1:{h2_server.port}"
    assert http.get_header("user-agent") == FAST.user_agent


def test_cut_body_then_next_request_on_the_same_http2_connection(h2_server: H2Server,
                                                                 tmp_path: Path) -> None:
    """A body cut at ``max_body`` resets only its stream; the connection serves on."""
    s = h2_server
    s.routes["/big"] = Answer(200, ((b"content-type", b"application/octet-stream"),), BIG)
    s.routes["/page"] = Answer(200, ((b"content-type", b"text/html"),), PAGE)
    settings = replace(FAST, max_body=100_000, concurrency=1, per_host=1)
    archive = tmp_path / "archive"

    async def go() -> tuple[FetchResult, FetchResult]:
        with WarcWriter(archive, root=archive.parent, run_id="h2") as writer:
            async with Fetcher(settings, writer) as fetcher:
                first = await fetcher.fetch(s.url("/big"))
                second = await fetcher.fetch(s.url("/page"))
                return first, second

    big, page = asyncio.run(go())
    assert s.served == [("/big", "2"), ("/page", "2")]
    assert isinstance(big, Capture) and big.truncated == "length"
    assert big.content == BIG[:100_000]
    assert isinstance(page, Capture) and page.content == PAGE and page.truncated is None
    stored = responses(archive)
    assert stored[s.url("/big")][0]["WARC-Truncated"] == "length"
    assert stored[s.url("/big")][2] == BIG[:100_000]
    assert stored[s.url("/page")][2] == PAGE


def test_http2_off_falls_back_to_http11_on_the_same_server(h2_server: H2Server,
                                                           tmp_path: Path) -> None:
    """The server-side record tells the protocols apart (the checks above could fail)."""
    h2_server.routes["/page"] = Answer(200, ((b"content-type", b"text/html"),), PAGE)
    archive = tmp_path / "archive"
    result = fetch([h2_server.url("/page")], archive, replace(FAST, http2=False))
    assert isinstance(result[h2_server.url("/page")], Capture)
    assert h2_server.served == [("/page", "1.1")]
    (_, http, payload), = responses(archive).values()
    assert payload == PAGE and http.get_statuscode() == "200"


@pytest.mark.parametrize("transport", ["auto", "aiohttp"])
def test_the_aiohttp_transport_leaves_http2_routes_to_httpcore(h2_server: H2Server,
                                                              tmp_path: Path,
                                                              transport: str) -> None:
    """aiohttp speaks HTTP/1.1 only: with ``http2`` on, https URLs stay on httpcore (and
    HTTP/2) whatever ``transport`` says; with ``http2`` off, aiohttp carries them."""
    h2_server.routes["/page"] = Answer(200, ((b"content-type", b"text/html"),), PAGE)
    fetch([h2_server.url("/page")], tmp_path / "h2", replace(FAST, transport=transport))
    fetch([h2_server.url("/page")], tmp_path / "h1",
          replace(FAST, transport=transport, http2=False))
    assert h2_server.served == [("/page", "2"), ("/page", "1.1")]
    for name in ("h2", "h1"):
        (_, http, payload), = responses(tmp_path / name).values()
        assert payload == PAGE and http.get_statuscode() == "200"


def test_streamed_body_and_stalled_body_over_http2(h2_server: H2Server, tmp_path: Path) -> None:
    """A body sent in DATA frames with no Content-Length is stored whole; one that stalls is
    cut at the read timeout and archived as truncated, with what arrived."""
    s = h2_server

    async def streamed(send: Send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        for i in range(5):
            await send({"type": "http.response.body", "body": b"piece %d " % i,
                        "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def stalled(send: Send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"first part ", "more_body": True})
        await asyncio.sleep(5)  # cancelled when the server stops

    s.routes.update({"/streamed": streamed, "/stalled": stalled})
    archive = tmp_path / "archive"
    results = fetch([s.url("/streamed"), s.url("/stalled")], archive,
                    replace(FAST, timeout=0.5, retries=0))
    assert sorted(s.served) == [("/stalled", "2"), ("/streamed", "2")]
    done, cut = results[s.url("/streamed")], results[s.url("/stalled")]
    assert isinstance(done, Capture) and done.truncated is None
    assert done.content == b"piece 0 piece 1 piece 2 piece 3 piece 4 "
    assert isinstance(cut, Capture), cut
    assert cut.truncated == "time" and cut.content == b"first part "
    stored = responses(archive)
    warc_headers, http, payload = stored[s.url("/streamed")]
    assert payload == done.content and http.get_header("content-length") is None
    assert "WARC-Truncated" not in warc_headers
    warc_headers, http, payload = stored[s.url("/stalled")]
    assert payload == b"first part " and warc_headers["WARC-Truncated"] == "time"
    assert http.get_statuscode() == "200"


def test_tls_session_is_recorded_for_http2_exchanges(h2_server: H2Server,
                                                     tmp_path: Path) -> None:
    s = h2_server
    s.routes["/page"] = Answer(200, ((b"content-type", b"text/html"),), PAGE)
    (page,) = fetch([s.url("/page")], tmp_path / "archive").values()
    assert isinstance(page, Capture), page
    assert s.served == [("/page", "2")]
    hop = page.hops[-1]
    assert hop.remote_ip == "127.0.0.1" and hop.record_sha256
    assert hop.tls is not None and hop.tls.version.startswith("TLSv1.")
    assert hop.tls.chain and hop.tls.chain[0].subject
    assert hop.tls.chain_complete
