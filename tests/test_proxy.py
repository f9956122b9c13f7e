"""Proxies from the environment (HTTP_PROXY, HTTPS_PROXY, NO_PROXY), as httpx reads them.

Users behind a corporate proxy, and researchers who reach geo-blocked sites through a proxy in
another country, rely on this. The site names used here do not resolve on this machine
(``.invalid``): only the proxy can reach them, as when DNS itself is only available through it.
Real loopback proxies: a forwarding HTTP proxy and a CONNECT tunnel for HTTPS.
"""

from __future__ import annotations

import asyncio
import base64
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
from tests.loopback import ThreadedServer
from tests.test_run import call, make_project, read_back
from tests.webserver import Reply, Request, WebServer

# Every test runs on both transports under httpx (see conftest.fetch_transport).
pytestmark = pytest.mark.usefixtures("fetch_transport")

PAGE = b"<html><head><title>Blocked at home</title></head><body><p>Evidence.</p></body></html>"


@pytest.fixture
def http_proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[WebServer]:
    """A forwarding proxy: answers absolute-URI requests itself, naming what it was asked."""
    with WebServer() as proxy:
        proxy.fallback = lambda req: Reply(200, PAGE, {"Content-Type": "text/html",
                                                       "X-Proxied-For": req.path})
        monkeypatch.setenv("HTTP_PROXY", proxy.origin)
        yield proxy


class ConnectProxy(ThreadedServer):
    """A CONNECT tunnel to ``target_port`` on loopback, whatever host the client names."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.tunnels: list[str] = []
        self.heads: list[bytes] = []  # each CONNECT request's head, as received
        super().__init__()

    def serve(self, conn: socket.socket) -> None:
        self._tunnel(conn)

    def _tunnel(self, client: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(4096)
            if not chunk:
                client.close()
                return
            head += chunk
        self.tunnels.append(head.split(b"\r\n", 1)[0].decode())
        self.heads.append(head)
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


def fetch(url: str, tmp_path: Path, **settings: object) -> Capture | FetchFailure:
    async def go() -> Capture | FetchFailure:
        with WarcWriter(tmp_path / "archive", root=tmp_path, run_id="t") as writer:
            async with Fetcher(FetchSettings(retries=0, timeout=5, **settings),  # type: ignore[arg-type]
                               writer) as fetcher:
                return await fetcher.fetch(url)

    return asyncio.run(go())


def test_proxy_credentials_in_its_url_are_sent_to_the_proxy(http_proxy: WebServer,
                                                             tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             ) -> None:
    seen: list[dict[str, str]] = []
    answer = http_proxy.fallback
    assert answer is not None

    def record(req: Request) -> Reply | None:
        seen.append(req.headers)
        return answer(req)

    http_proxy.fallback = record
    monkeypatch.setenv("HTTP_PROXY", http_proxy.origin.replace("://", "://reader:s%40cret@"))
    result = fetch("http://news.example.invalid/story", tmp_path)
    assert isinstance(result, Capture) and result.content == PAGE, result
    (headers,) = seen
    expected = "Basic " + base64.b64encode(b"reader:s@cret").decode()
    assert {k.lower(): v for k, v in headers.items()}["proxy-authorization"] == expected


def test_http_proxy_reaches_a_name_only_the_proxy_can_resolve(http_proxy: WebServer,
                                                              tmp_path: Path) -> None:
    result = fetch("http://news.example.invalid/story?id=7", tmp_path)
    assert isinstance(result, Capture), result
    assert result.status == 200 and result.content == PAGE
    assert result.header("X-Proxied-For") == "http://news.example.invalid/story?id=7"
    records = read_back(tmp_path)
    assert ("response", "http://news.example.invalid/story?id=7") in records


def _through_connect_proxy(tls_ca, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                           credentials: str = "") -> tuple[Capture | FetchFailure,
                                                           ConnectProxy, int]:
    """Fetch a page of an https site through a CONNECT proxy named in ``HTTPS_PROXY`` (with
    ``credentials``, ``user:password@``, in its URL): the result, the proxy, the site's
    port."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls_ca.issue_cert("evidence.example.invalid").configure_cert(ctx)
    ca_file = tmp_path / "ca.pem"
    tls_ca.cert_pem.write_to_path(str(ca_file))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    with WebServer(ssl_context=ctx) as site, ConnectProxy(site.port) as proxy:
        site.route("/page", Reply(200, PAGE, {"Content-Type": "text/html"}))
        monkeypatch.setenv("HTTPS_PROXY", f"http://{credentials}127.0.0.1:{proxy.port}")
        result = fetch(f"https://evidence.example.invalid:{site.port}/page", tmp_path,
                       http2=False)
    return result, proxy, site.port


def test_https_through_a_connect_tunnel(tls_ca, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    result, proxy, port = _through_connect_proxy(tls_ca, tmp_path, monkeypatch)
    assert isinstance(result, Capture), result
    assert result.status == 200 and result.content == PAGE
    assert proxy.tunnels == [f"CONNECT evidence.example.invalid:{port} HTTP/1.1"]
    assert b"proxy-authorization" not in proxy.heads[0].lower()
    read_back(tmp_path)


def test_proxy_credentials_go_with_the_connect_request(tls_ca, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    result, proxy, _ = _through_connect_proxy(tls_ca, tmp_path, monkeypatch,
                                              credentials="reader:s%40cret@")
    assert isinstance(result, Capture) and result.content == PAGE, result
    expected = b"Basic " + base64.b64encode(b"reader:s@cret")
    (head,) = proxy.heads
    fields = dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:] if b": " in line)
    assert {k.lower(): v for k, v in fields.items()}[b"proxy-authorization"] == expected


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


# Hosts that are loopback, link-local or otherwise private in notations a proxy (or its
# resolver) would read as such: none may ever be handed to the proxy (issue 10).
HIDDEN_PRIVATE = [
    "http://2130706433/", "http://0x7f000001/", "http://127.1/", "http://0/",
    "http://0xa9fea9fe/latest/meta-data/", "http://0177.0.0.1/", "http://127.0.0.1./",
    "http://0x7f.1/", "http://0x7F.0.0X0.01/", "http://%31%32%37.0.0.1/",
    "http://%30x7f000001/", "http://\uff11\uff12\uff17\uff0e\uff10\uff0e\uff10\uff0e\uff11/",
    "http://169.254.169.254./", "http://012.0.0.1/", "http://0xc0a80001/",
    "http://[::ffff:127.0.0.1]/", "http://[::ffff:a9fe:a9fe]/", "http://[64:ff9b::7f00:1]/",
    "http://[2002:a9fe:a9fe::]/", "http://[::127.0.0.1]/", "http://[fd00::1]/",
    "http://[fe80::1]/", "http://192.0.0.9/", "http://100.64.0.1/", "http://198.18.0.1/",
    "http://LOCALHOST./", "http://ip6-localhost/", "http://1.2.3.4.5/", "http://foo.0x4/",
]


@pytest.mark.parametrize("url", HIDDEN_PRIVATE)
def test_no_notation_of_a_private_address_reaches_the_proxy(
        http_proxy: WebServer, tmp_path: Path, url: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "unrelated.example")
    result = fetch(url, tmp_path)
    assert isinstance(result, FetchFailure), result
    assert result.verdict in (Verdict.PRIVATE_ADDRESS, Verdict.INVALID_URL), result
    if result.verdict is Verdict.INVALID_URL:  # what browsers refuse to read at all
        assert "not a valid host name" in result.reason
    assert http_proxy.requests == []


@pytest.mark.parametrize("url", [u for u in HIDDEN_PRIVATE
                                 if u not in ("http://1.2.3.4.5/", "http://foo.0x4/")])
def test_the_same_notations_without_a_proxy_are_private(tmp_path: Path, url: str) -> None:
    result = fetch(url, tmp_path)
    assert isinstance(result, FetchFailure), result
    assert result.verdict is Verdict.PRIVATE_ADDRESS, result


def test_an_address_in_another_notation_is_fetched_as_checked(
        http_proxy: WebServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """134744072 is 8.8.8.8: the proxy is asked for the address that was checked, not for a
    spelling it might read differently."""
    monkeypatch.setenv("NO_PROXY", "unrelated.example")
    result = fetch("http://134744072/dns?q=1", tmp_path)
    assert isinstance(result, Capture), result
    assert [path for _, path, _ in http_proxy.requests] == ["http://8.8.8.8/dns?q=1"]
    assert result.final_url == "http://8.8.8.8/dns?q=1"
    assert ("response", "http://8.8.8.8/dns?q=1") in read_back(tmp_path)


@pytest.mark.parametrize("location", ["http://0x7f000001/admin", "http://169.254.169.254./",
                                      "http://[64:ff9b::a9fe:a9fe]/", "//2130706433/"])
def test_a_redirect_to_a_hidden_private_address_is_refused(
        http_proxy: WebServer, tmp_path: Path, location: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "unrelated.example")
    http_proxy.fallback = lambda req: Reply(302, b"", {"Location": location})
    result = fetch("http://news.example.invalid/story", tmp_path)
    assert isinstance(result, FetchFailure), result
    assert result.verdict is Verdict.PRIVATE_ADDRESS
    assert [path for _, path, _ in http_proxy.requests] == ["http://news.example.invalid/story"]
    assert [hop.status for hop in result.hops] == [302]
    read_back(tmp_path)


def test_an_ipv6_literal_is_never_handed_to_the_proxy(http_proxy: WebServer, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """httpcore would send ``GET http://2606:4700::1111/q`` (no brackets) to the proxy, which
    may read it as another host: an IPv6 literal is fetched directly, where the guard checks
    the address connected to (here there is no route, so the fetch fails)."""
    monkeypatch.setenv("NO_PROXY", "unrelated.example")
    result = fetch("http://[2606:4700:0::1111]/q", tmp_path)
    assert isinstance(result, FetchFailure), result
    assert result.verdict is not Verdict.PRIVATE_ADDRESS
    assert http_proxy.requests == []
