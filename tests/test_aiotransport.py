"""The aiohttp transport (``[fetch] transport = "aiohttp"``) against the httpcore one, on real
loopback servers: the same bytes on the wire and in the WARC, the guard at connection time,
TLS provenance, the setting itself. Failures phase by phase, redirects, retries, proxies and
the guard's other cases run on both transports in test_fetch*.py, test_guard.py and
test_proxy.py (``conftest.fetch_transport``)."""

from __future__ import annotations

import asyncio
import gzip
import re
import socket
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from archiver import retry
from archiver.aiotransport import AiohttpPool, AiohttpTransport
from archiver.config import ConfigError, FetchSettings, load_settings
from archiver.fetch import Fetcher, shared_ssl_context
from archiver.guard import AddressGuard, AddressRefused
from archiver.models import Capture
from archiver.warc import WarcWriter
from tests.loopback import ThreadedServer
from tests.test_warc import assert_valid_warcs
from tests.webserver import Reply, WebServer

SETTINGS = FetchSettings(timeout=2.0, deadline=6.0, retries=0, allow_private_networks=True,
                         host_interval=0.0, http2=False)
# Header names in odd case, padding around a value, a repeated header, an empty value, a
# reason phrase of our own: what a WARC must keep as it came.
ANSWER = (b"HTTP/1.1 203 Quite  Fine\r\nContent-Type: text/html\r\nX-MiXeD-CaSe:   padded  \r\n"
          b"Set-Cookie: a=1; Path=/\r\nSet-Cookie: b=2\r\nX-Empty:\r\nContent-Length: 11\r\n"
          b"\r\n<p>body</p>")


@pytest.fixture(autouse=True)
def _no_backoff_sleeps() -> Iterator[None]:
    with retry.testing():
        yield


class Recorder(ThreadedServer):
    """A keep-alive server answering every request with ``ANSWER``, keeping each request head
    as received."""

    def __init__(self) -> None:
        self.heads: list[bytes] = []
        super().__init__()

    def serve(self, conn: socket.socket) -> None:
        buffer = b""
        with conn:
            while data := conn.recv(65536):
                buffer += data
                while b"\r\n\r\n" in buffer:
                    head, buffer = buffer.split(b"\r\n\r\n", 1)
                    self.heads.append(head + b"\r\n\r\n")
                    conn.sendall(ANSWER)


def _capture(transport: str, url: str, archive: Path) -> Capture:
    async def go() -> Capture:
        with WarcWriter(archive, root=archive.parent, run_id="t") as writer:
            async with Fetcher(replace(SETTINGS, transport=transport), writer) as fetcher:
                result = await fetcher.fetch(url)
        assert isinstance(result, Capture), result
        return result

    return asyncio.run(go())


def _heads(archive: Path) -> list[bytes]:
    """The HTTP heads of every request and response record, exactly as stored."""
    assert_valid_warcs(archive)
    data = b"".join(gzip.decompress(path.read_bytes())
                    for path in sorted(archive.glob("*.warc.gz")))
    return re.findall(rb"\r\n\r\n((?:GET|HTTP/1\.1) [^\r]*\r\n(?:[^\r]*\r\n)*?\r\n)", data)


def test_the_same_request_bytes_and_warc_records_on_both_transports(tmp_path: Path) -> None:
    with Recorder() as server:
        url = f"http://127.0.0.1:{server.port}/a%20path?q=%41&b"
        results = {t: _capture(t, url, tmp_path / t) for t in ("httpcore", "aiohttp")}
    # What went over the wire, byte for byte.
    assert len(server.heads) == 2 and server.heads[0] == server.heads[1]
    assert server.heads[0].startswith(b"GET /a%20path?q=%41&b HTTP/1.1\r\nHost: 127.0.0.1:")
    one, other = results["httpcore"], results["aiohttp"]
    assert (one.status, one.content, one.hops[0].headers, one.hops[0].request_headers,
            one.payload_digest, one.hops[0].remote_ip) == \
        (other.status, other.content, other.hops[0].headers, other.hops[0].request_headers,
         other.payload_digest, other.hops[0].remote_ip)
    assert other.status == 203 and other.content == b"<p>body</p>"
    assert ("X-MiXeD-CaSe", "padded") in other.hops[0].headers
    assert other.hops[0].remote_ip == "127.0.0.1"
    # The request and response heads stored in the WARC, byte for byte.
    heads = {t: _heads(tmp_path / t) for t in results}
    assert len(heads["aiohttp"]) == 2 and heads["httpcore"] == heads["aiohttp"]
    request, response = heads["aiohttp"]
    assert request == server.heads[0]
    assert response.startswith(b"HTTP/1.1 203 Quite  Fine\r\n")
    assert b"\r\nX-MiXeD-CaSe: padded\r\n" in response and b"\r\nX-Empty: \r\n" in response


def test_https_capture_records_the_tls_session(https_web: WebServer, monkeypatch,
                                               tmp_path: Path) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", https_web.ca_file)
    https_web.route("/page", Reply(200, b"<p>over tls</p>", {"Content-Type": "text/html"}))
    sessions = {}
    for transport in ("httpcore", "aiohttp"):
        result = _capture(transport, https_web.url("/page"), tmp_path / transport)
        assert result.content == b"<p>over tls</p>"
        sessions[transport] = result.hops[0].tls
    tls = sessions["aiohttp"]
    assert tls is not None and tls.version.startswith("TLSv1") and tls.cipher
    assert tls.chain and sessions["httpcore"] is not None
    assert (tls.version, tls.cipher, tls.chain) == (sessions["httpcore"].version,
                                                    sessions["httpcore"].cipher,
                                                    sessions["httpcore"].chain)


def test_the_transport_refuses_at_connection_time(web: WebServer) -> None:
    """The connection itself is guarded, address literals included (aiohttp does not
    resolve those: the connector checks every address it is about to connect to)."""
    web.route("/", Reply(200, b"allowed"))

    async def go() -> None:
        with WebServer() as other:
            other.route("/", Reply(200, b"secret"))
            guard = AddressGuard.allowing([("127.0.0.1", web.port)])
            pool = AiohttpPool(guard, shared_ssl_context())
            try:
                async with httpx.AsyncClient(transport=AiohttpTransport(pool)) as client:
                    assert (await client.get(web.url("/"))).content == b"allowed"
                    with pytest.raises(AddressRefused, match="loopback"):
                        await client.get(other.url("/"))
                    with pytest.raises(AddressRefused, match="loopback name refused"):
                        await client.get(other.url("/", host="localhost"))
                    assert other.hits["/"] == 0
            finally:
                await pool.aclose()

    asyncio.run(go())


def test_keep_alive_connections_are_reused(web: WebServer) -> None:
    web.route("/", Reply(200, b"page"))
    ports: set[int] = set()

    async def go() -> None:
        async with Fetcher(replace(SETTINGS, transport="aiohttp", per_host=1)) as fetcher:
            for _ in range(5):
                result = await fetcher.fetch(web.url("/"))
                assert isinstance(result, Capture) and result.content == b"page"
            for session in fetcher._aiohttp._sessions.values():
                for held in session.connector._conns.values():
                    for protocol, _ in held:
                        ports.add(protocol.transport.get_extra_info("sockname")[1])

    asyncio.run(go())
    assert len(ports) == 1 and web.hits["/"] == 5


@pytest.mark.parametrize("value", ["auto", "httpcore", "aiohttp"])
def test_the_transport_setting(tmp_path: Path, value: str) -> None:
    config = tmp_path / "sources.toml"
    config.write_text(f'[fetch]\ntransport = "{value}"\n')
    assert load_settings(config).fetch.transport == value
    assert FetchSettings().transport == "auto"


def test_an_unknown_transport_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "sources.toml"
    config.write_text('[fetch]\ntransport = "curl"\n')
    with pytest.raises(ConfigError, match="transport must be one of 'auto', 'httpcore', "
                                          "'aiohttp', got 'curl'"):
        load_settings(config)
