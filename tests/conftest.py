"""Shared fixtures: real loopback servers (HTTP and HTTPS), a scratch project folder."""

from __future__ import annotations

import os
import shutil
import ssl
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.webserver import WebServer

REPO = Path(__file__).resolve().parent.parent
BRIEFING = REPO / "sources" / "kazakhstan-2020.md"
ARTIFACTS = REPO / "tests" / "artifacts"


@pytest.fixture(params=["httpcore", "aiohttp"])
def fetch_transport(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test once on each ``[fetch] transport``: every ``Fetcher`` made during the
    test gets its settings with ``transport`` set, and on aiohttp with ``http2`` false too,
    so that https routes are carried by it as well (with HTTP/2 they stay on httpcore).
    Modules use it with ``pytestmark = pytest.mark.usefixtures("fetch_transport")``."""
    from archiver import fetch

    transport = request.param
    original = fetch.Fetcher.__init__

    def init(self: fetch.Fetcher, settings: Any, *args: Any, **kwargs: Any) -> None:
        changes: dict[str, Any] = {"transport": transport}
        if transport == "aiohttp":
            changes["http2"] = False
        original(self, replace(settings, **changes), *args, **kwargs)

    monkeypatch.setattr(fetch.Fetcher, "__init__", init)
    return transport


@pytest.fixture
def web() -> Iterator[WebServer]:
    """An HTTP server on 127.0.0.1, port 0."""
    with WebServer() as server:
        yield server


@pytest.fixture(scope="session")
def tls_ca():
    trustme = pytest.importorskip("trustme")
    return trustme.CA()


@pytest.fixture
def https_web(tls_ca, tmp_path: Path) -> Iterator[WebServer]:
    """An HTTPS server on 127.0.0.1 with a trustme certificate for 127.0.0.1 and localhost.
    ``https_web.ca_file`` is the CA bundle a client must trust."""
    cert = tls_ca.issue_cert("127.0.0.1", "localhost")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    ca_file = tmp_path / "ca.pem"
    tls_ca.cert_pem.write_to_path(str(ca_file))
    with WebServer(ssl_context=ctx, ca_file=str(ca_file)) as server:
        yield server


@pytest.fixture
def briefing() -> Path:
    return BRIEFING


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A scratch project folder holding a copy of the shipped briefing and no config."""
    (tmp_path / "sources").mkdir()
    shutil.copy(BRIEFING, tmp_path / "sources" / "kazakhstan-2020.md")
    return tmp_path


@pytest.fixture(autouse=True)
def _no_proxy_for_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loopback traffic must never go through a proxy set in the environment."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                 "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost,::1")
    os.environ.setdefault("ARCHIVER_TESTING", "1")
