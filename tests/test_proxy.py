"""Proxies from the environment (HTTP_PROXY, HTTPS_PROXY, NO_PROXY), as httpx reads them.

Users behind a corporate proxy, and researchers who reach geo-blocked sites through a proxy in
another country, rely on this. The site names used here do not resolve on this machine
(``.invalid``): only the proxy can reach them, as when DNS itself is only available through it.
Real loopback proxies: a forwarding HTTP proxy and a CONNECT tunnel for HTTPS.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from archiver.config import FetchSettings
from archiver.fetch import Fetcher
from archiver.models import Capture, FetchFailure, Verdict
from archiver.warc import WarcWriter
from tests.test_run import call, make_project, read_back
from tests.webserver import Reply, WebServer

PAGE = b"<html><head><title>Blocked at home</title></head><body><p>Evidence.</p></body></html>"


@pytest.fixture
def http_proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[WebServer]:
    """A forwarding proxy: answers absolute-URI requests itself, naming what it was asked."""
    with WebServer() as proxy:
        proxy.fallback = lambda req: Reply(200, PAGE, {"Content-Type": "text/html",
                                                       "X-Proxied-For": req.path})
        monkeypatch.setenv("HTTP_PROXY", proxy.origin)
        yield proxy


class ConnectProxy:
    """A CONNECT tunnel to ``target_port`` on loopback, whatever host the client names."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.tunnels: list[str] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._tunnel, args=(client,), daemon=True).start()

    def _tunnel(self, client: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(4096)
            if not chunk:
                client.close()
                return
            head += chunk
        self.tunnels.append(head.split(b"\r\n", 1)[0].decode())
        upstream = socket.create_connection(("127.0.0.1", self.target_port))
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")

        def pipe(src: socket.socket, dst: socket.socket) -> None:
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for end in (src, dst):
                    with contextlib.suppress(OSError):
                        end.shutdown(socket.SHUT_RDWR)

        threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()
        pipe(client, upstream)

    def close(self) -> None:
        self.sock.close()


def fetch(url: str, tmp_path: Path, **settings: object) -> Capture | FetchFailure:
    async def go() -> Capture | FetchFailure:
        with WarcWriter(tmp_path / "archive", root=tmp_path, run_id="t") as writer:
            async with Fetcher(FetchSettings(retries=0, timeout=5, **settings),  # type: ignore[arg-type]
                               writer) as fetcher:
                return await fetcher.fetch(url)

    return asyncio.run(go())


def test_http_proxy_reaches_a_name_only_the_proxy_can_resolve(http_proxy: WebServer,
                                                              tmp_path: Path) -> None:
    result = fetch("http://news.example.invalid/story?id=7", tmp_path)
    assert isinstance(result, Capture), result
    assert result.status == 200 and result.content == PAGE
    assert result.header("X-Proxied-For") == "http://news.example.invalid/story?id=7"
    records = read_back(tmp_path)
    assert ("response", "http://news.example.invalid/story?id=7") in records


def test_https_through_a_connect_tunnel(tls_ca, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls_ca.issue_cert("evidence.example.invalid").configure_cert(ctx)
    ca_file = tmp_path / "ca.pem"
    tls_ca.cert_pem.write_to_path(str(ca_file))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    with WebServer(ssl_context=ctx) as site:
        site.route("/page", Reply(200, PAGE, {"Content-Type": "text/html"}))
        proxy = ConnectProxy(site.port)
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.port}")
        try:
            result = fetch(f"https://evidence.example.invalid:{site.port}/page", tmp_path,
                           http2=False)
        finally:
            proxy.close()
    assert isinstance(result, Capture), result
    assert result.status == 200 and result.content == PAGE
    assert proxy.tunnels == [f"CONNECT evidence.example.invalid:{site.port} HTTP/1.1"]
    read_back(tmp_path)


@pytest.mark.parametrize("url", ["http://10.0.0.1/admin", "http://169.254.169.254/latest/",
                                 "http://intranet.localhost/"])
def test_guard_still_refuses_what_it_can_see_through_a_proxy(
        http_proxy: WebServer, tmp_path: Path, url: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # every one of these URLs goes to the proxy
    result = fetch(url, tmp_path)
    assert isinstance(result, FetchFailure)
    assert result.verdict is Verdict.PRIVATE_ADDRESS
    assert http_proxy.requests == []  # refused before anything was sent


def test_no_proxy_exempts_a_host(http_proxy: WebServer, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost,news.example.invalid")
    result = fetch("http://news.example.invalid/story", tmp_path)
    assert isinstance(result, FetchFailure) and result.verdict is Verdict.DNS_ERROR
    assert http_proxy.requests == []


def test_archiver_run_through_a_proxy(http_proxy: WebServer, tmp_path: Path) -> None:
    config = make_project(tmp_path, ["http://news.example.invalid/a",
                                     "http://other.example.invalid/b"])
    config.write_text(config.read_text().replace("allow_private_networks = true",
                                                 "allow_private_networks = false"))
    code, out, err = call("run", "--config", str(config))
    assert code == 0, out + err
    report = json.loads((tmp_path / "reports" / "brief" / "report.json").read_text())
    assert [link["http_status"] for link in report["links"]] == [200, 200]
    assert len(http_proxy.requests) >= 2
    read_back(tmp_path)
