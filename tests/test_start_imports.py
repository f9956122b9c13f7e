"""What a run imports before its workers are forked (``archiver.shards._preload``, the fork
server's work), in a fresh interpreter each: ``surt`` without ``tldextract``, aiohttp without
reading the CA store for its own default TLS contexts, and https still verified, against the
certificates the environment names, on the transport that import made; the certificate
parser imported by the fork server only for a run that cites https URLs (or while it waits)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.webserver import Reply, WebServer

REPO = Path(__file__).resolve().parent.parent

# Prepares a worker as the fork server does, then fetches the URL given (if any) with the
# aiohttp transport; prints what it saw as JSON.
_SCRIPT = r"""
import asyncio, json, os, sys
from archiver import shards
from archiver.config import FetchSettings
from archiver.fetch import Fetcher, shared_ssl_context

settings = FetchSettings(timeout=5.0, deadline=10.0, retries=0, allow_private_networks=True,
                         host_interval=0.0, http2=False, transport="aiohttp")
before = {name: os.environ.get(name) for name in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
shards._preload(settings)
import aiohttp.connector
import surt

out = {
    "tldextract": "tldextract" in sys.modules,
    "requests": "requests" in sys.modules,
    "environment kept": before == {name: os.environ.get(name) for name in before},
    "aiohttp's store": aiohttp.connector._SSL_CONTEXT_VERIFIED.cert_store_stats()["x509_ca"],
    "our store": shared_ssl_context().cert_store_stats()["x509_ca"],
    "key": surt.surt("http://www.Example.com:80/a/../b?z=1&a=2"),
}
handy = sys.modules["surt.handyurl"]
out["suffix function"] = handy.tldextract.extract.__module__
out["tldextract after"] = type(sys.modules.get("tldextract")).__name__

async def fetch(url):
    async with Fetcher(settings) as fetcher:
        result = await fetcher.fetch(url)
    return getattr(result, "content", b"").decode(), getattr(result, "reason", None)

if len(sys.argv) > 1:
    out["content"], out["error"] = asyncio.run(fetch(sys.argv[1]))
print(json.dumps(out))
"""


def _prepare(env: dict[str, str], *args: str) -> dict[str, object]:
    env = {**env, "PYTHONPATH": str(REPO), "NO_PROXY": "127.0.0.1,localhost"}
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                 "all_proxy"):
        env.pop(name, None)
    done = subprocess.run([sys.executable, "-c", _SCRIPT, *args], env=env,
                          capture_output=True, text=True, timeout=60, check=True)
    return json.loads(done.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def test_preparing_workers_leaves_tldextract_and_aiohttps_ca_store_unread(
        https_web: WebServer) -> None:
    https_web.route("/page", Reply(200, b"<p>over tls</p>", {"Content-Type": "text/html"}))
    env = {**os.environ, "SSL_CERT_FILE": https_web.ca_file}
    env.pop("SSL_CERT_DIR", None)
    got = _prepare(env, https_web.url("/page"))
    assert got["tldextract"] is False and got["requests"] is False
    assert got["environment kept"] is True
    assert got["aiohttp's store"] == 0  # its unused defaults: no certificate read for them
    assert got["our store"] == 1  # the file SSL_CERT_FILE names: the trustme CA
    assert got["key"] == "com,example)/b?a=2&z=1"
    # surt's own use of tldextract imports it then, for real.
    assert got["suffix function"] == "tldextract.tldextract"
    assert got["tldextract after"] == "module"
    # https on the aiohttp transport made by that import: verified against SSL_CERT_FILE.
    assert got["content"] == "<p>over tls</p>" and got["error"] is None


def test_https_is_still_refused_when_the_certificate_is_not_trusted(
        https_web: WebServer) -> None:
    """The trustme CA is not in the system's store (what a run trusts without SSL_CERT_FILE):
    the handshake fails, as it would have with aiohttp imported as is."""
    https_web.route("/page", Reply(200, b"<p>over tls</p>", {"Content-Type": "text/html"}))
    env = {**os.environ}
    env.pop("SSL_CERT_FILE", None)
    env.pop("SSL_CERT_DIR", None)
    got = _prepare(env, https_web.url("/page"))
    assert got["environment kept"] is True
    assert got["content"] == "" and got["error"] is not None
    assert "certificate" in str(got["error"]).lower()


# A fork server asked for one worker at once (while it still imports), with the request's
# ``tls``; the worker reports whether the certificate parser and httpcore's backend (anyio's
# asyncio backend) are imported, and leaves.
_SERVER = r"""
import os, socket, sys
from pathlib import Path
from archiver import shards
from archiver.config import load_settings

def child(sock, init, inherited, parent, server=None):
    sock.sendall(b"".join(b"1" if name in sys.modules else b"0"
                          for name in ("cryptography.x509", "anyio._backends._asyncio")))
    os._exit(0)

shards._child = child
assert "cryptography.x509" not in sys.modules
settings = load_settings(Path(sys.argv[1]))
server = shards.ForkServer.start(settings)
mine, theirs = socket.socketpair()
pids = server.fork_workers((), [theirs], tls=sys.argv[2] == "https")
theirs.close()
print(mine.recv(2).decode(), len(pids or ()))
os.waitpid(pids[0], 0)
"""


def _asked_at_once(tmp_path: Path, fetch: str = "") -> dict[str, list[str]]:
    config = tmp_path / "sources.toml"
    config.write_text(f'[[sources]]\nid = "a"\npath = "a.md"\n\n[fetch]\nworkers = 2\n{fetch}')
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    seen = {}
    for kind in ("http", "https"):
        done = subprocess.run([sys.executable, "-c", _SERVER, str(config), kind], env=env,
                              capture_output=True, text=True, timeout=60, check=True)
        seen[kind] = done.stdout.split()
    return seen


def test_the_fork_server_imports_the_certificate_parser_only_for_a_run_citing_https(
        tmp_path: Path) -> None:
    # Nor httpcore's backend for http:// URLs alone: they go through aiohttp (https, with
    # HTTP/2 by default, through httpcore).
    assert _asked_at_once(tmp_path) == {"http": ["00", "1"], "https": ["11", "1"]}


def test_the_fork_server_imports_httpcores_backend_for_the_routes_through_httpcore(
        tmp_path: Path) -> None:
    assert _asked_at_once(tmp_path, 'transport = "httpcore"\n') == {
        "http": ["01", "1"], "https": ["11", "1"]}
    # Without HTTP/2, https goes through aiohttp too.
    assert _asked_at_once(tmp_path, "http2 = false\n") == {
        "http": ["00", "1"], "https": ["10", "1"]}
