"""An exported WACZ opened in ReplayWeb.page (the ``replaywebpage`` npm package's ``ui.js``
and service worker, served on loopback, in Debian's headless Chromium): the cited page
replays, and the copy rescued from the Internet Archive replays under the cited URL at the
memento's date.

The package comes from ``$REPLAYWEBPAGE_DIR`` or ``node_modules/replaywebpage`` (``npm install
replaywebpage``); without it, or without Chromium, the test is skipped and says why.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_run import ARTICLE, call, make_project
from tests.wayback_server import WaybackServer
from tests.webserver import Reply, WebServer

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
RESCUED = ARTICLE.replace(b"Lawyers said", b"As archived in 2020, lawyers said")


def _replaywebpage() -> Path:
    for folder in (os.environ.get("REPLAYWEBPAGE_DIR"), REPO / "node_modules" / "replaywebpage"):
        if folder and (Path(folder) / "sw.js").exists() and (Path(folder) / "ui.js").exists():
            return Path(folder)
    pytest.skip("ReplayWeb.page is not installed (npm install replaywebpage, or set "
                "REPLAYWEBPAGE_DIR to its package folder)")


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[str, Path, str, str]]:
    """(base URL, folder served, live URL, dead URL): a WACZ of a live page and a rescued
    dead one, with ReplayWeb.page, served on loopback. The original site is gone by then."""
    if not CHROMIUM.exists():
        pytest.skip(f"no headless browser: {CHROMIUM} is not installed (apt install chromium)")
    package = _replaywebpage()
    folder = tmp_path / "site"
    (folder / "replay").mkdir(parents=True)
    for name in ("ui.js", "sw.js"):
        shutil.copy(package / name, folder / "replay" / name)
    with WebServer() as web, WebServer() as archive_host:
        web.route("/article", Reply(200, ARTICLE, {"Content-Type": "text/html"}))
        live, dead = web.url("/article"), web.url("/removed")
        wayback = WaybackServer(archive_host)
        wayback.add(dead, "20201028093012", body=RESCUED)
        settings = wayback.settings()
        extra = "".join(f'{key} = "{getattr(settings, key)}"\n'
                        for key in ("availability_api", "cdx_api", "replay_base"))
        config = make_project(tmp_path, [live, dead], rescue=True, extra=extra)
        code, out, err = call("run", "--config", str(config), "--rescue-capture")
        assert code == 0, out + err
    code, out, err = call("export", "--wacz", "--config", str(config),
                          "-o", str(folder / "brief.wacz"))
    assert code == 0, out + err
    handler = functools.partial(_Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", folder, live, dead
    finally:
        server.shutdown()
        server.server_close()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        return None


def _replayed_text(browser, page_url: str, wanted: str) -> tuple[str, str] | None:
    """(frame URL, text) of the replay frame showing ``wanted``, or None after 30 s."""
    page = browser.new_page()
    try:
        page.goto(page_url)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for frame in page.frames:
                try:
                    text = frame.evaluate("document.body ? document.body.innerText : ''")
                except Exception:  # frames come and go while the viewer loads
                    continue
                if wanted in text:
                    return frame.url, text
            time.sleep(0.3)
        return None
    finally:
        page.close()


def test_replaywebpage_replays_cited_page_and_rescued_copy(site) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    base, folder, live, dead = site
    embed = ('<!doctype html><html><body><script src="/replay/ui.js"></script>'
             '<replay-web-page source="/brief.wacz" url="{url}" {ts} replayBase="/replay/" '
             'embed="replayonly"></replay-web-page></body></html>')
    (folder / "live.html").write_text(embed.format(url=live, ts=""))
    (folder / "rescued.html").write_text(embed.format(url=dead, ts='ts="20201028093012"'))
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM),
                                     args=["--headless", "--no-sandbox"], headless=True)
        try:
            shown = _replayed_text(browser, f"{base}/live.html", "upheld the conviction")
            assert shown is not None, "ReplayWeb.page did not replay the cited page"
            assert live in shown[0]
            rescued = _replayed_text(browser, f"{base}/rescued.html", "As archived in 2020")
            assert rescued is not None, "the rescued copy is not found under the cited URL"
            # Under the cited URL, at the memento's date: not web.archive.org, not 2026.
            assert f"/20201028093012mp_/{dead}" in rescued[0]
        finally:
            browser.close()
