"""Browser captures (``archiver.browse``) in Debian's real Chromium, against a loopback web.

The pages (``tests/browser_web.py``): an app shell whose article arrives by ``fetch()`` of
JSON, a feed that loads more items as the reader scrolls, a members' page that redirects to
``/login`` without the session cookie (the profile holds it), a static page, and a page whose
script, image and redirects try to reach addresses the guard refuses. Every WARC is read back
(digests checked, ``warcio check``); the secret of the profile is looked for in every file
written. Not skipped where ``/usr/bin/chromium`` exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import os
import sqlite3
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import pytest
from warcio.archiveiterator import ArchiveIterator

from archiver import browse
from archiver.browse import Browser, BrowserCapture, BrowserFailure
from archiver.config import BrowserSettings, FetchSettings, load_settings
from archiver.errors import ConfigError
from archiver.guard import AddressGuard
from archiver.models import Capture, Judgement, Verdict
from archiver.warc import INDEX_NAME, WarcWriter, read_record
from tests.browser_web import (
    ARTICLE_BODY,
    ARTICLE_TITLE,
    FEED_ITEMS,
    FEED_PAGES,
    POST_TEXT,
    SECRET,
    SHELL,
    STATIC,
    BrowserWeb,
    feed_item,
    write_profile,
)
from tests.test_run import call, make_project, read_back
from tests.webserver import Reply, WebServer

CHROMIUM = Path("/usr/bin/chromium")
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed (apt install chromium)")
browser_test = [pytest.mark.browser, needs_chromium]

SETTINGS = BrowserSettings(executable=str(CHROMIUM), settle=3.0, scroll_time=8.0,
                           deadline=45.0)
FETCH = FetchSettings(timeout=10, allow_private_networks=True, host_interval=0)


@pytest.fixture
def other() -> WebServer:
    """A second loopback server: the address a hostile page must not make us reach."""
    with WebServer() as server:
        server.route("/admin", Reply(200, b"internal admin"))
        server.route("/pixel.png", Reply(200, b"\x89PNG"))
        yield server


@pytest.fixture
def pages(web: WebServer, other: WebServer) -> BrowserWeb:
    return BrowserWeb(web, other.port)


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def records(archive: Path) -> list[tuple[str, str, bytes, dict[str, str], str]]:
    """(type, target URI, payload, WARC headers, HTTP head) of every record, digests
    checked; the payload with Content-Encoding undone."""
    out = []
    for path in sorted(archive.glob("*.warc.gz")):
        with path.open("rb") as fh:
            for record in ArchiveIterator(fh, check_digests=True):
                head = record.http_headers.to_str() if record.http_headers else ""
                out.append((record.rec_type,
                            record.rec_headers.get_header("WARC-Target-URI") or "",
                            record.content_stream().read(),
                            dict(record.rec_headers.headers), head))
    return out


def capture_one(tmp_path: Path, url: str, *, guard: AddressGuard | None = None,
                settings: BrowserSettings = SETTINGS, profile: object = None
                ) -> tuple[BrowserCapture | BrowserFailure, Path]:
    archive = tmp_path / "archive"

    async def go() -> BrowserCapture | BrowserFailure:
        with WarcWriter(archive, root=tmp_path, run_id="b") as writer:
            async with Browser(settings, FETCH, writer, guard=guard) as browser:
                return await browser.capture(url, profile=profile)  # type: ignore[arg-type]

    return asyncio.run(go()), archive


# ── the browser, page by page ────────────────────────────────────────────────


@pytest.mark.browser
@needs_chromium
def test_app_shell_is_captured_with_its_script_loaded_article(tmp_path: Path,
                                                              pages: BrowserWeb) -> None:
    made, archive = capture_one(tmp_path, pages.url("/shell"))
    assert isinstance(made, BrowserCapture), made
    assert ARTICLE_TITLE in made.text and ARTICLE_BODY in made.text
    assert made.status == 200 and made.final_url == pages.url("/shell")
    # The page's requests say who is asking: a desktop Chrome, and the archiver.
    agents = {h.get("user-agent") or h.get("User-Agent") for _, _, h in pages.web.requests}
    assert len(agents) == 1
    agent = agents.pop() or ""
    assert "Chrome/" in agent and "HeadlessChrome" not in agent and "archiver/" in agent
    read_back(tmp_path)  # digests and warcio check
    got = records(archive)
    # The JSON the page fetched, as a response record with the bytes the server sent.
    json_records = [r for r in got if r[0] == "response" and r[1] == pages.url(
        "/api/article.json")]
    assert len(json_records) == 1
    assert json.loads(json_records[0][2])["title"] == ARTICLE_TITLE
    assert any(r[0] == "request" and r[1] == pages.url("/static/app.js") for r in got)
    # The screenshot and the rendered text, as resource records tied to the document.
    shot = [r for r in got if r[1] == f"urn:screenshot:{pages.url('/shell')}"]
    text = [r for r in got if r[1] == f"urn:text:{pages.url('/shell')}"]
    assert [r[0] for r in shot + text] == ["resource", "resource"]
    assert shot[0][3]["Content-Type"] == "image/png"
    assert text[0][3]["Content-Type"].startswith("text/plain")
    assert ARTICLE_BODY in text[0][2].decode("utf-8")
    document = made.hops[-1].warc
    assert document is not None
    assert shot[0][3]["WARC-Concurrent-To"] == document.record_id
    width, height = png_size(shot[0][2])
    assert (width, height) == (SETTINGS.width, made.shot_height)
    assert made.screenshot is not None
    assert read_record(tmp_path, made.screenshot).payload == shot[0][2]


@pytest.mark.browser
@needs_chromium
def test_feed_is_scrolled_to_the_end_and_shot_at_full_height(tmp_path: Path,
                                                             pages: BrowserWeb) -> None:
    made, archive = capture_one(tmp_path, pages.url("/feed"))
    assert isinstance(made, BrowserCapture), made
    for page in range(1, FEED_PAGES + 1):
        for n in range(1, FEED_ITEMS + 1):
            assert feed_item(page, n) in made.text
    assert "the end" in made.text
    read_back(tmp_path)
    shot = next(r for r in records(archive) if r[1].startswith("urn:screenshot:"))
    width, height = png_size(shot[2])
    # 20 items of 300px: far taller than the 900px window, and all of it in the picture.
    assert height == made.height >= FEED_PAGES * FEED_ITEMS * 300
    assert width == SETTINGS.width


@pytest.mark.browser
@needs_chromium
def test_page_cannot_make_the_browser_reach_refused_addresses(
        tmp_path: Path, pages: BrowserWeb, web: WebServer, other: WebServer) -> None:
    # Redirects are where Playwright would let Chromium fetch by itself: a document and an
    # image redirected to the forbidden server must be refused too.
    web.route("/hop", Reply(302, b"", {"Location": f"http://127.0.0.1:{other.port}/admin"}))
    web.route("/img", Reply(302, b"", {"Location": f"http://127.0.0.1:{other.port}/pixel.png"}))
    web.route("/framed", Reply(200, (
        b"<html><body><h1>Framed</h1><p>" + ARTICLE_BODY.encode() + b"</p>"
        b"<img src=\"/img\"><iframe src=\"/hop\"></iframe></body></html>"),
        {"Content-Type": "text/html"}))
    guard = AddressGuard.allowing([("127.0.0.1", web.port)])
    made, _ = capture_one(tmp_path, pages.url("/sneaky"), guard=guard)
    assert isinstance(made, BrowserCapture), made
    assert ARTICLE_BODY in made.text
    assert any("169.254.169.254" in r and "link-local" in r for r in made.refused), made.refused
    assert any("127.0.0.1" in r and "loopback" in r for r in made.refused), made.refused
    framed, _ = capture_one(tmp_path / "framed", pages.url("/framed"), guard=guard)
    assert isinstance(framed, BrowserCapture), framed
    hopped, _ = capture_one(tmp_path / "hop", pages.url("/hop"), guard=guard)
    assert isinstance(hopped, BrowserFailure)
    assert "loopback address refused" in hopped.reason
    assert sum(other.hits.values()) == 0, other.hits
    for path in (tmp_path, tmp_path / "framed", tmp_path / "hop"):
        if (path / "archive").exists():
            read_back(path)
            assert not [r for r in records(path / "archive")
                        if f":{other.port}/" in r[1] or "169.254" in r[1]]


@pytest.mark.browser
@needs_chromium
def test_https_page_is_fetched_by_the_archiver_with_the_environment_trust(
        tmp_path: Path, https_web: WebServer, other: WebServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # TLS is the archiver's (httpx, SSL_CERT_FILE), never Chromium's: the page is secure.
    monkeypatch.setenv("SSL_CERT_FILE", str(https_web.ca_file))
    BrowserWeb(https_web, other.port)
    made, archive = capture_one(tmp_path, https_web.url("/shell"))
    assert isinstance(made, BrowserCapture), made
    assert ARTICLE_BODY in made.text and made.final_url.startswith("https://")
    read_back(tmp_path)
    assert any(r[0] == "response" and r[1] == https_web.url("/api/article.json")
               for r in records(archive))
    # Without the trust, the certificate is refused and nothing is captured.
    monkeypatch.delenv("SSL_CERT_FILE")
    refused, _ = capture_one(tmp_path / "untrusted", https_web.url("/shell"))
    assert isinstance(refused, BrowserFailure), refused
    assert "TLS" in refused.reason or "certificate" in refused.reason.lower()


@pytest.mark.browser
@needs_chromium
def test_a_pages_post_is_archived_with_its_body(tmp_path: Path, web: WebServer) -> None:
    web.route("/search", lambda req: Reply(200, b'{"hits": ["' + req.body + b'"]}',
                                           {"Content-Type": "application/json"}))
    web.route("/app", Reply(200, (
        b"<html><body><h1>Search app</h1><p id=o></p><script>"
        b"fetch('/search', {method: 'POST', body: 'court-ruling-2020'}).then(r => r.json())"
        b".then(d => document.getElementById('o').textContent = 'found ' + d.hits[0]);"
        b"</script></body></html>"), {"Content-Type": "text/html"}))
    made, archive = capture_one(tmp_path, web.url("/app"))
    assert isinstance(made, BrowserCapture), made
    assert "found court-ruling-2020" in made.text
    read_back(tmp_path)
    posts = [r for r in records(archive) if r[0] == "request" and r[1] == web.url("/search")]
    assert len(posts) == 1
    assert posts[0][4].startswith("POST /search HTTP/1.1") and posts[0][2] == b"court-ruling-2020"


@pytest.mark.browser
@needs_chromium
def test_websockets_popups_and_service_workers_are_blocked(tmp_path: Path,
                                                           web: WebServer) -> None:
    web.route("/busy", Reply(200, (
        b"<html><body><h1>Busy page</h1><p id=o>start</p><script>"
        b"const o = document.getElementById('o'); const log = t => o.textContent += ' ' + t;"
        b"try { const ws = new WebSocket('ws://' + location.host + '/ws');"
        b" ws.onopen = () => log('ws-open'); ws.onerror = () => log('ws-error'); }"
        b" catch (e) { log('ws-throw'); }"
        b"if (navigator.serviceWorker) navigator.serviceWorker.register('/sw.js')"
        b".then(() => log('sw-registered'), () => log('sw-refused')); else log('sw-refused');"
        b"const w = window.open('/static'); log(w ? 'popup' : 'no-popup');"
        b"</script></body></html>"), {"Content-Type": "text/html"}))
    web.route("/static", Reply(200, STATIC, {"Content-Type": "text/html"}))
    made, _ = capture_one(tmp_path, web.url("/busy"))
    assert isinstance(made, BrowserCapture), made
    assert "ws-open" not in made.text
    # Playwright's "block" makes register() a no-op: the worker's script is never fetched.
    assert (web.hits["/ws"], web.hits["/sw.js"], web.hits["/static"]) == (0, 0, 0), made.refused
    assert any("popups are not opened" in r for r in made.refused), made.refused
    assert any("WebSocket" in r for r in made.refused)
    read_back(tmp_path)


@pytest.mark.browser
@needs_chromium
def test_an_archive_that_cannot_be_written_stops_the_capture(tmp_path: Path,
                                                             pages: BrowserWeb) -> None:
    from archiver.errors import ArchiveError

    async def go() -> None:
        with WarcWriter(tmp_path / "archive", root=tmp_path, run_id="b") as writer:
            writer._broken = "archive-x.warc.gz: cannot write WARC record: disk full"
            async with Browser(SETTINGS, FETCH, writer) as browser:
                await browser.capture(pages.url("/shell"))

    with pytest.raises(ArchiveError, match="disk full"):
        asyncio.run(go())


@pytest.mark.browser
@needs_chromium
def test_a_full_temporary_folder_stops_the_capture_not_the_page(
        tmp_path: Path, web: WebServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """A page's body past 256 KiB is spooled to the system's temporary folder as the HTTP
    path spools it; that folder full stops the run (``ArchiveError`` naming it), as there.
    It was taken for the page's network failure: the page failed and the run went on."""
    import tempfile

    from archiver.errors import ArchiveError
    from tests.tmpfs import small_tmpfs

    page = b"<html><body>" + b"<p>A paragraph of a long report.</p>" * 20_000 + b"</body></html>"
    web.route("/long", Reply(200, page, {"Content-Type": "text/html"}))
    with small_tmpfs(tmp_path / "tmp", "64k") as tiny:
        monkeypatch.setattr(tempfile, "tempdir", str(tiny))
        with pytest.raises(ArchiveError, match=f"{tiny}: cannot hold a page's body"):
            capture_one(tmp_path, web.url("/long"))


# ── choosing the browser ─────────────────────────────────────────────────────


def _capture(url: str, content: bytes, status: int = 200) -> Capture:
    from archiver.models import Hop, utcnow

    return Capture(url=url, final_url=url, status=status,
                   hops=(Hop(url, status, (("Content-Type", "text/html"),)),),
                   content=content, content_type="text/html", payload_digest="sha1:X",
                   captured_at=utcnow())


def test_auto_sends_app_shells_to_the_browser_and_keeps_static_pages() -> None:
    from archiver.pagetext import extract

    ok = Judgement(Verdict.OK, "")
    auto = BrowserSettings()
    shell = _capture("https://news.example/a", SHELL)
    static = _capture("https://news.example/b", STATIC)
    assert browse.wanted(auto, shell.url, shell, extract(SHELL, "text/html"), ok)
    assert browse.wanted(auto, static.url, static, extract(STATIC, "text/html"), ok) is None
    assert browse.wanted(BrowserSettings(mode="never"), shell.url, shell, None, ok) is None
    assert browse.wanted(BrowserSettings(mode="always"), static.url, static, None, ok)
    assert browse.wanted(BrowserSettings(hosts=("news.example",)), static.url, static,
                         None, ok)
    # A login wall goes to the browser only when a profile can get past it.
    wall = Judgement(Verdict.LOGIN_WALL, "login form")
    login = _capture("https://social.example/p/1", b"<html><body><form>"
                     b"<input type=password></form></body></html>")
    assert browse.wanted(auto, login.url, login, None, wall) is None
    from archiver.config import BrowserProfile

    with_profile = BrowserSettings(profiles=(BrowserProfile(("social.example",),
                                                            Path("/p.json")),))
    assert browse.wanted(with_profile, login.url, login, None, wall)
    # A PDF is its own evidence, even in "always".
    pdf = Capture(url="https://news.example/r.pdf", final_url="https://news.example/r.pdf",
                  status=200, hops=(), content=b"%PDF-1.7", content_type="application/pdf",
                  payload_digest="sha1:Y", captured_at=static.captured_at)
    assert browse.wanted(BrowserSettings(mode="always"), pdf.url, pdf, None, ok) is None
    # No answer at all: nothing for the browser to do.
    assert browse.wanted(BrowserSettings(mode="always"), static.url, None, None,
                         Judgement(Verdict.DNS_ERROR, "")) is None


def test_app_shell_signs() -> None:
    assert browse.app_shell_reason(b'<div id="app"></div><script src=a.js></script>', "")
    assert browse.app_shell_reason(
        b"<noscript>Please enable JavaScript to continue.</noscript><p>x</p>", "x")
    long_text = "word " * 200
    assert browse.app_shell_reason(
        f'<div id="root"><p>{long_text}</p></div><script></script>'.encode(), long_text) \
        is None
    assert browse.app_shell_reason(b"<p>Short but plain, no scripts.</p>", "Short") is None


def test_set_cookie_values_are_redacted() -> None:
    head = (b"HTTP/1.1 200 OK\r\nSet-Cookie: session=abc123; Path=/\r\n"
            b"set-cookie: b=2\r\nContent-Type: text/html\r\n\r\n")
    redacted = browse.redact_set_cookie(head)
    assert b"abc123" not in redacted and b"b=2" not in redacted
    assert b"Set-Cookie: session=[redacted]" in redacted
    assert redacted.endswith(b"Content-Type: text/html\r\n\r\n")


def test_browser_config_is_read_and_checked(tmp_path: Path) -> None:
    write_profile(tmp_path / "profiles" / "fb.json")
    config = tmp_path / "sources.toml"
    config.write_text('[browser]\nmode = "always"\npages = 3\nhosts = ["WWW.Example.org"]\n'
                      '[[browser.profiles]]\nhosts = ["www.facebook.com"]\n'
                      'storage_state = "profiles/fb.json"\n', encoding="utf-8")
    settings = load_settings(config).browser
    assert (settings.mode, settings.pages, settings.hosts) == ("always", 3,
                                                                ("www.example.org",))
    assert settings.profile_for("WWW.facebook.com") is not None
    assert settings.profiles[0].storage_state == (tmp_path / "profiles" / "fb.json").resolve()
    config.write_text('[browser]\nexecutable = "bin/chromium"\n', encoding="utf-8")
    assert load_settings(config).browser.executable == str(tmp_path / "bin" / "chromium")
    (tmp_path / "profiles" / "broken.json").write_text("[1, 2]")
    for bad, message in (('mode = "sometimes"', "mode"), ("pages = 0", "pages"),
                         ('[[browser.profiles]]\nhosts = ["a"]\n'
                          'storage_state = "profiles/broken.json"', "not a Playwright"),
                         ("hosts = \"x\"", "hosts"),
                         ('[[browser.profiles]]\nhosts = ["a"]\nstorage_state = "nope.json"',
                          "nope.json")):
        config.write_text(f"[browser]\n{bad}\n", encoding="utf-8")
        with pytest.raises(ConfigError, match=message):
            load_settings(config)


# ── in a run ─────────────────────────────────────────────────────────────────


def _browser_config(profile: bool, executable: str = str(CHROMIUM)) -> str:
    text = (f'\n[browser]\nmode = "auto"\nexecutable = "{executable}"\nsettle = 3\n'
            f"scroll_time = 8\n")
    if profile:
        text += '[[browser.profiles]]\nhosts = ["localhost"]\n' \
                'storage_state = "profiles/social.json"\n'
    return text


SHELL_CLAIM = "The appeal court upheld the conviction on 15 September."


@pytest.fixture(scope="module")
def run_web() -> WebServer:
    """Module-wide servers for the one full run the tests below read."""
    with WebServer() as server, WebServer() as forbidden:
        server.pages = BrowserWeb(server, forbidden.port)  # type: ignore[attr-defined]
        yield server


@pytest.fixture(scope="module")
def browsed_run(tmp_path_factory: pytest.TempPathFactory, run_web: WebServer
                ) -> tuple[Path, dict]:
    tmp_path = tmp_path_factory.mktemp("browsed-run")
    web = run_web
    pages: BrowserWeb = run_web.pages  # type: ignore[attr-defined]
    write_profile(tmp_path / "profiles" / "social.json", host="localhost")
    urls = [pages.url("/static"), pages.url("/shell"), pages.url("/feed"),
            web.url("/members/post", host="localhost")]
    config = make_project(tmp_path, urls, extra=_browser_config(profile=True))
    # Footnote 2 (the app shell) cites a claim whose facts only the rendered page holds.
    brief = tmp_path / "sources" / "brief.md"
    brief.write_text(brief.read_text(encoding="utf-8").replace(
        "Claim number 2 is stated here.", SHELL_CLAIM), encoding="utf-8")
    code, out, err = call("run", "--config", str(config))
    assert code == 0, out + err
    report = json.loads((tmp_path / "reports" / "brief" / "report.json").read_text())
    return tmp_path, report


@pytest.mark.browser
@needs_chromium
def test_run_auto_captures_app_shell_feed_and_profile_page(
        browsed_run: tuple[Path, dict], run_web: WebServer) -> None:
    root, report = browsed_run
    web, pages = run_web, run_web.pages  # type: ignore[attr-defined]
    links = {link["url"]: link for link in report["links"]}
    static = links[pages.url("/static")]
    shell = links[pages.url("/shell")]
    feed = links[pages.url("/feed")]
    members = links[web.url("/members/post", host="localhost")]
    # auto: the static page keeps the HTTP path; the others went to the browser.
    assert static["capture"]["mode"] == "http" and static["screenshot"] is None
    assert not static["profile"]
    for link in (shell, feed, members):
        assert link["verdict"] == "ok", link
        assert link["capture"]["mode"] == "browser"
        assert link["screenshot"]["record_id"].startswith("<urn:uuid:")
    assert members["profile"] is True and shell["profile"] is False
    assert ARTICLE_BODY[:60] in shell["excerpt"]
    md = (root / "reports" / "brief" / "report.md").read_text()
    assert "captured in a browser with a logged-in profile" in md
    assert POST_TEXT[:40] in members["excerpt"]
    assert members["final_url"] == web.url("/members/post", host="localhost")
    # The screenshot reference points at the PNG resource record.
    shot = read_record(root, _ref(shell["screenshot"]))
    assert png_size(shot.payload)[0] == SETTINGS.width
    assert dict(shot.warc_headers)["WARC-Target-URI"] == f"urn:screenshot:{pages.url('/shell')}"
    # Every WARC is valid, and each browser capture has its metadata record.
    read_back(root)
    got = records(root / "archive")
    meta = [r for r in got if r[0] == "metadata" and r[1] == pages.url("/shell")]
    fields = b"".join(r[2] for r in meta).decode()
    assert "capture-mode: browser" in fields and "cited-by: brief#2" in fields


@pytest.mark.browser
@needs_chromium
def test_show_gives_rendered_text_and_screenshot(browsed_run: tuple[Path, dict],
                                                 run_web: WebServer) -> None:
    root, report = browsed_run
    pages = run_web.pages  # type: ignore[attr-defined]
    config = str(root / "sources.toml")
    code, out, err = call("show", pages.url("/shell"), "--text", "--config", config)
    assert code == 0, err
    assert ARTICLE_TITLE in out and ARTICLE_BODY in out
    code, out, err = call("show", "brief#2", "--screenshot", "--config", config)
    assert code == 0, err
    png = out.encode("latin-1")  # in-memory streams carry bytes as latin-1 text
    shell = next(link for link in report["links"] if link["url"] == pages.url("/shell"))
    assert png == read_record(root, _ref(shell["screenshot"])).payload
    assert png_size(png)[0] == SETTINGS.width
    code, out, err = call("show", pages.url("/shell"), "--format", "json", "--config", config)
    listed = json.loads(out)[pages.url("/shell")]
    assert [c["mode"] for c in listed] == ["browser", "http"]  # newest first
    assert listed[0]["screenshot"] == shell["screenshot"] and listed[1]["screenshot"] is None
    # The static page has no browser capture: no screenshot, exit 1.
    code, out, err = call("show", pages.url("/static"), "--screenshot", "--config", config)
    assert code == 1 and "no browser capture" in err


@pytest.mark.browser
@needs_chromium
def test_html_report_shows_thumbnails_from_files_next_to_it(
        browsed_run: tuple[Path, dict]) -> None:
    root, _ = browsed_run
    folder = root / "reports" / "brief"
    shots = sorted((folder / "screenshots").glob("*.png"))
    assert len(shots) == 6  # three browser captures: the page and its top
    import html

    assert "img-src data: 'self'" in html.unescape((folder / "report.html").read_text())

    async def look() -> list[dict]:
        from playwright.async_api import async_playwright

        async with async_playwright() as pw:
            chromium = await pw.chromium.launch(executable_path=str(CHROMIUM),
                                                args=list(browse.BROWSER_ARGS))
            page = await chromium.new_page()
            await page.goto((folder / "report.html").as_uri())
            images = await page.eval_on_selector_all(
                "a > img[src^='screenshots/']",
                "els => els.map(e => ({src: e.getAttribute('src'), w: e.naturalWidth,"
                " h: e.naturalHeight, href: e.parentElement.getAttribute('href')}))")
            await chromium.close()
            return images

    images = asyncio.run(look())
    assert len(images) == 3
    for image in images:
        # Loaded under the report's CSP, from the file beside it: the top 1200 rows.
        assert image["w"] == SETTINGS.width and 0 < image["h"] <= 1200, image
        full = folder / image["href"]
        assert png_size(full.read_bytes())[1] >= image["h"]


def test_crop_png_keeps_the_top_rows() -> None:
    import zlib

    width, height = 3, 5
    rows = b"".join(b"\x00" + bytes([y * 10 + x for x in range(width * 3)])
                    for y in range(height))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height,
                                                              8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    top = browse.crop_png(png, 2)
    assert png_size(top) == (3, 2)
    idat = top[top.index(b"IDAT") + 4:]
    length = struct.unpack(">I", top[top.index(b"IDAT") - 4:top.index(b"IDAT")])[0]
    assert zlib.decompress(idat[:length]) == rows[:2 * (width * 3 + 1)]
    assert browse.crop_png(png, 9) == png
    assert browse.crop_png(b"not a png", 2) == b"not a png"


def _ref(data: dict):
    from archiver.models import WarcRef

    return WarcRef(data["warc"], data["offset"], data["length"], data["record_id"])


@pytest.mark.browser
@needs_chromium
def test_profile_secret_reaches_no_written_file(browsed_run: tuple[Path, dict]) -> None:
    root, _ = browsed_run
    secret = SECRET.encode()
    checked = 0
    for path in [*(root / "archive").rglob("*"), *(root / "reports").rglob("*")]:
        if not path.is_file():
            continue
        data = path.read_bytes()
        if path.name.endswith(".gz"):
            data = gzip.decompress(data)
        if path.suffix == ".sqlite3":
            # The catalog's texts are zlib-compressed: read every value.
            db = sqlite3.connect(path)
            for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'"):
                for row in db.execute(f"SELECT * FROM {table}"):
                    for value in row:
                        if isinstance(value, bytes):
                            with contextlib.suppress(zlib.error):
                                value = zlib.decompress(value)
                        assert secret not in (value if isinstance(value, bytes)
                                              else str(value).encode()), (path, table)
            db.close()
        assert secret not in data, path
        checked += 1
    assert checked >= 5  # WARCs, index, catalog, report files
    # And yet the cookie was sent: the request records say so, redacted.
    got = records(root / "archive")
    members = [r for r in got if r[0] == "request" and r[1].endswith("/members/post")]
    assert any("cookie: [redacted]" in r[4].lower() for r in members), \
        [r[4] for r in members]
    answers = [r for r in got if r[0] == "response" and r[1].endswith("/members/post")]
    assert any("Set-Cookie: session=[redacted]" in r[4] for r in answers), \
        [r[4] for r in answers]


@pytest.mark.browser
@needs_chromium
def test_pywb_replays_the_app_shell_data_from_the_archive(
        browsed_run: tuple[Path, dict], run_web: WebServer) -> None:
    pytest.importorskip("pywb")
    root, _ = browsed_run
    pages = run_web.pages  # type: ignore[attr-defined]
    archive = root / "archive"
    (root / "config.yaml").write_text(json.dumps({"collections": {"cite": {
        "index_paths": str(archive / INDEX_NAME), "archive_paths": str(archive) + "/"}}}))
    script = textwrap.dedent(f"""
        from pywb.apps.frontendapp import FrontEndApp
        from werkzeug.test import Client
        client = Client(FrontEndApp(config_file={str(root / 'config.yaml')!r}))
        for url in ({pages.url('/api/article.json')!r}, {pages.url('/shell')!r}):
            r = client.get("/cite/2100id_/" + url)
            print(r.status_code, r.data.decode())
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, cwd=root)
    lines = [line for line in done.stdout.splitlines() if line[:3].isdigit()]
    assert len(lines) == 2, done.stdout + done.stderr
    assert lines[0].startswith("200 ") and ARTICLE_TITLE in lines[0]
    assert json.loads(lines[0][4:])["body"] == ARTICLE_BODY
    assert lines[1].startswith("200 ") and 'id="root"' in lines[1]


@pytest.mark.browser
@needs_chromium
def test_login_wall_without_profile_stays_on_the_http_path(tmp_path: Path,
                                                           pages: BrowserWeb) -> None:
    config = make_project(tmp_path, [pages.url("/members/post")],
                          extra=_browser_config(profile=False))
    assert call("run", "--config", str(config))[0] == 0
    link = json.loads((tmp_path / "reports" / "brief" / "report.json").read_text())["links"][0]
    assert link["verdict"] == "login_wall"
    assert link["capture"]["mode"] == "http" and link["profile"] is False
    read_back(tmp_path)


def test_without_chromium_the_run_says_so_once_and_keeps_http(tmp_path: Path,
                                                              pages: BrowserWeb) -> None:
    config = make_project(tmp_path, [pages.url("/static"), pages.url("/shell"),
                                     pages.url("/feed")],
                          extra=_browser_config(profile=False,
                                                executable=str(tmp_path / "no-chromium")))
    code, out, err = call("run", "--config", str(config))
    assert code == 0, out + err
    report = json.loads((tmp_path / "reports" / "brief" / "report.json").read_text())
    notes = [n for n in report["notes"] if "Browser capture unavailable" in n]
    assert len(notes) == 1, report["notes"]
    assert "2 link(s)" in notes[0] and "no Chromium found" in notes[0]
    links = {link["url"]: link for link in report["links"]}
    assert links[pages.url("/static")]["browser_lost"] is None
    for path in ("/shell", "/feed"):
        link = links[pages.url(path)]
        assert link["capture"]["mode"] == "http"
        assert link["screenshot"] is None
        assert "no Chromium found" in link["browser_lost"]
    read_back(tmp_path)


@pytest.mark.browser
@needs_chromium
def test_run_in_a_real_process_captures_the_app_shell(tmp_path: Path, pages: BrowserWeb
                                                     ) -> None:
    config = make_project(tmp_path, [pages.url("/shell")], extra=_browser_config(False))
    done = subprocess.run([sys.executable, "-m", "archiver", "run", "--config", str(config)],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)})
    assert done.returncode == 0, done.stdout + done.stderr
    link = json.loads((tmp_path / "reports" / "brief" / "report.json").read_text())["links"][0]
    assert link["capture"]["mode"] == "browser" and ARTICLE_BODY[:50] in link["excerpt"]
    read_back(tmp_path)


def test_without_playwright_the_browser_is_unavailable(monkeypatch: pytest.MonkeyPatch
                                                       ) -> None:
    monkeypatch.setitem(sys.modules, "playwright.async_api", None)
    assert "Playwright is not installed" in (browse.unavailable(BrowserSettings()) or "")


@pytest.mark.browser
@needs_chromium
def test_check_compares_rendered_text_so_an_unchanged_feed_has_not_drifted(
        tmp_path: Path, pages: BrowserWeb) -> None:
    config = make_project(tmp_path, [pages.url("/feed")], extra=_browser_config(False))
    assert call("run", "--config", str(config))[0] == 0
    code, out, err = call("check", "--config", str(config), "--format", "json")
    assert code == 0, out + err
    changes = json.loads((tmp_path / "reports" / "brief" / "report.json").read_text())[
        "changes"]
    assert [c for c in changes if c["kind"] == "drifted"] == []
    read_back(tmp_path)


@pytest.mark.browser
@needs_chromium
def test_claim_support_reads_the_rendered_text_of_a_browser_capture(
        browsed_run: tuple[Path, dict], run_web: WebServer) -> None:
    """The app shell's HTTP answer holds no article: the claim's date is found only in the
    text the browser rendered, and the support entry says that is what it read."""
    _, report = browsed_run
    shell = run_web.pages.url("/shell")  # type: ignore[attr-defined]
    [entry] = [s for s in report["support"] if s["footnote"] == 2 and s["url"] == shell]
    assert entry["level"] == "supported", entry
    [date] = [f for f in entry["facts"] if f["kind"] == "date"]
    assert date["found"] and "15 September" in date["passage"]
    assert entry["evidence"] == {"origin": "browser", "kind": "rendered"}


@pytest.mark.browser
@needs_chromium
def test_browser_captures_have_provenance_saying_browser_and_profile(
        browsed_run: tuple[Path, dict]) -> None:
    """The provenance of a browser capture records that it was made in the browser, and
    whether a logged-in profile was used (never the profile's secrets)."""
    root, _ = browsed_run
    config = str(root / "sources.toml")
    code, out, err = call("show", "brief#2", "--provenance", "--format", "json",
                          "--config", config)
    assert code == 0, out + err
    shell = json.loads(out)["provenance"]["settings"]
    assert shell["mode"] == "browser" and shell["profile"] == "none"
    code, out, err = call("show", "brief#4", "--provenance", "--format", "json",
                          "--config", config)
    assert code == 0, out + err
    members = json.loads(out)["provenance"]
    assert members["settings"]["mode"] == "browser" and members["settings"]["profile"] == "used"
    static = json.loads(call("show", "brief#1", "--provenance", "--format", "json",
                             "--config", config)[1])["provenance"]["settings"]
    assert static["mode"] == "http"
