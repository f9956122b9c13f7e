"""An exported, signed WACZ opened in ReplayWeb.page (the ``replaywebpage`` npm package's
``ui.js`` and service worker, served on loopback, in Debian's headless Chromium): the cited
page replays, the copy rescued from the Internet Archive replays under the cited URL at the
memento's date, and the package's signature is shown as present and checks out.

What ReplayWeb.page 2.4 keeps and shows about a signature (wabac.js, ``sw.js``):
``loadDigestData`` checks ``signedData`` against ``datapackage-digest.json`` and stores one
``verification`` row per fact in the collection's IndexedDB (``publicKey``,
``datapackageHash``, and ``signature`` with ``matched`` true or false); the collection API
``/w/api/c/<coll>`` and the embed receipt ("Observer Public Key", "Package Hash", "Validation:
N hashes verified, M invalid") show the key and package hash, but count the ``signature``
row as verified whatever its ``matched`` says. So a forged signature is only visible in that
row; a package re-hashed after tampering loses its key and package hash from the receipt.

The package comes from ``$REPLAYWEBPAGE_DIR`` or ``node_modules/replaywebpage`` (``.ci/run``
installs it; by hand: ``npm pack replaywebpage@2.4.6`` and unpack it there); without it, or
without Chromium, the test is skipped and says why.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import http.server
import json
import os
import re
import shutil
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from archiver import signing
from tests.test_run import ARTICLE, call, make_project
from tests.test_signing import rewrite_zip
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
    # ReplayWeb.page imports an anonymous signer's key as P-384 only (docs/DESIGN-NOTES.md).
    code, out, err = call("keygen", "--curve", "P-384", "--config", str(config))
    assert code == 0, out + err
    code, out, err = call("export", "--wacz", "--sign", "--config", str(config),
                          "-o", str(folder / "brief.wacz"))
    assert code == 0 and "signed" in out, out + err
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
    """(frame URL, text) of the replay frame showing ``wanted``, or None after 60 s.

    The page is loaded again when ``wanted`` has not shown after 20 s, as a reader would: now
    and then (2 runs of this test in 16, on commits before and after the worker processes)
    the viewer's load of a collection shows nothing, and a reload shows it. What the frames
    hold at the end is printed for the failure's report."""
    page = browser.new_page()
    try:
        for _ in range(3):
            page.goto(page_url)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                for frame in page.frames:
                    try:
                        text = frame.evaluate("document.body ? document.body.innerText : ''")
                    except Exception:  # frames come and go while the viewer loads
                        continue
                    if wanted in text:
                        return frame.url, text
                time.sleep(0.3)
        for frame in page.frames:
            with contextlib.suppress(Exception):
                shown = frame.evaluate("document.body ? document.body.innerText : ''")
                print(f"frame {frame.url}: {shown[:300]!r}", file=sys.stderr)
        return None
    finally:
        page.close()


def _launch(pw):
    return pw.chromium.launch(executable_path=str(CHROMIUM),
                              args=["--headless", "--no-sandbox"], headless=True)


EMBED = ('<!doctype html><html><body><script src="/replay/ui.js"></script>'
         '<replay-web-page source="/{wacz}" url="{url}" {ts} replayBase="/replay/" '
         'embed="{embed}"></replay-web-page></body></html>')

# Run in the viewer's frame (the service worker's scope): the collection API's answer and the
# collection's stored verification rows, as ReplayWeb.page keeps them.
VERIFICATION = """async (coll) => {
  const info = await (await fetch(`/replay/w/api/c/${coll}?all=1`)).json();
  const names = (await indexedDB.databases()).map((d) => d.name);
  const name = names.find((n) => n.endsWith(coll));
  if (!name) throw new Error(`no IndexedDB for ${coll} among ${names}`);
  const db = await new Promise((ok, fail) => {
    const req = indexedDB.open(name);
    req.onsuccess = () => ok(req.result);
    req.onerror = () => fail(req.error);
  });
  const rows = await new Promise((ok, fail) => {
    const req = db.transaction("verification").objectStore("verification").getAll();
    req.onsuccess = () => ok(req.result);
    req.onerror = () => fail(req.error);
  });
  db.close();
  return {verify: info.verify || null, rows};
}"""


def _shown(browser, base: str, folder: Path, wacz: str, url: str) -> dict:
    """What ReplayWeb.page says about ``wacz`` once it replays ``url``: the collection API's
    ``verify``, the stored ``verification`` rows, and the embed receipt's text."""
    (folder / f"{wacz}.html").write_text(EMBED.format(wacz=wacz, url=url, ts="",
                                                      embed="replay-with-info"))
    # A context of its own per package: its own service worker and IndexedDB.
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(f"{base}/{wacz}.html")
        reload_at, deadline = time.monotonic() + 15, time.monotonic() + 45
        last_error = ""
        while time.monotonic() < deadline:
            if reload_at and time.monotonic() > reload_at:
                # ReplayWeb.page's viewer now and then stalls while its service worker
                # first installs (it stays at "#url=…&ts=&query="); a reader would reload.
                reload_at = 0
                page.reload()
            for frame in page.frames:
                found = re.search(r"/replay/w/([^/]+)/.*mp_/", frame.url)
                if not found:
                    continue
                try:
                    if "upheld the conviction" not in frame.evaluate(
                            "document.body ? document.body.innerText : ''"):
                        continue
                    # Asked from the viewer's own frame: inside the replayed page, wombat.js
                    # rewrites fetch and IndexedDB to the archived site's.
                    viewer = next(f for f in page.frames if "/replay/?" in f.url)
                    result = viewer.evaluate(VERIFICATION, found.group(1))
                except Exception as exc:  # frames come and go while the viewer loads
                    last_error = repr(exc)
                    continue
                result["receipt"] = _receipt(page)
                return result
            page.wait_for_timeout(300)  # lets Playwright take in the frames as they attach
        raise AssertionError(f"ReplayWeb.page did not replay {url} from {wacz} in 45 s "
                             f"(frames: {[f.url for f in page.frames]}; last error: "
                             f"{last_error or 'none'})")
    finally:
        context.close()


def _receipt(page) -> str:
    """The embed receipt's "Technical Information" text (in the viewer frame's shadow DOM,
    which Playwright's CSS locators pierce; hidden until clicked, so its textContent)."""
    for frame in page.frames:
        panel = frame.locator(".embed-info-drop-statscontainer")
        if "/replay/?" in frame.url and panel.count():
            return " ".join((panel.first.text_content() or "").split())
    raise AssertionError("ReplayWeb.page shows no embed receipt")


def _row(shown: dict, name: str) -> dict | None:
    return next((r for r in shown["rows"] if r["id"].endswith(name)), None)


def _flip_warc_byte(path: Path) -> None:
    """Change one byte inside the first WARC of the package (a gzip member's header, so the
    file still decompresses) and nothing else."""
    with zipfile.ZipFile(path) as z:
        warc = next(n for n in z.namelist() if n.endswith(".warc.gz"))

    def change(data: bytes) -> bytes:
        # Byte 4 is the first member's MTIME field: not covered by the gzip CRC.
        return data[:4] + bytes([data[4] ^ 0x01]) + data[5:]
    rewrite_zip(path, warc, change)


def _rehash(path: Path) -> None:
    """What someone without the key can do after editing a WARC: recompute every hash in
    ``datapackage.json`` and the package hash in ``datapackage-digest.json``."""
    with zipfile.ZipFile(path) as z:
        package = json.loads(z.read("datapackage.json"))
        for resource in package["resources"]:
            resource["hash"] = "sha256:" + hashlib.sha256(z.read(resource["path"])).hexdigest()
    data = json.dumps(package, indent=2).encode()
    rewrite_zip(path, "datapackage.json", lambda _old: data)

    def digest(old: bytes) -> bytes:
        doc = json.loads(old)
        doc["hash"] = "sha256:" + hashlib.sha256(data).hexdigest()
        return json.dumps(doc, indent=2).encode()
    rewrite_zip(path, "datapackage-digest.json", digest)


def _forge_signature(path: Path) -> None:
    """Change one byte of the signature itself."""
    def change(old: bytes) -> bytes:
        doc = json.loads(old)
        raw = bytearray(base64.b64decode(doc["signedData"]["signature"]))
        raw[10] ^= 0x01
        doc["signedData"]["signature"] = base64.b64encode(bytes(raw)).decode()
        return json.dumps(doc, indent=2).encode()
    rewrite_zip(path, "datapackage-digest.json", change)


def test_replaywebpage_shows_the_signature_present_and_valid_and_not_after_tampering(
        site) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    base, folder, live, _dead = site
    signed = folder / "brief.wacz"
    with zipfile.ZipFile(signed) as z:
        digest = json.loads(z.read("datapackage-digest.json"))
    public_key, package_hash = digest["signedData"]["publicKey"], digest["hash"]
    # Our own check first, so a failure below is ReplayWeb.page's view, not a bad package.
    assert signing.check_signed_data(digest["signedData"], package_hash, created=None) == []
    for name, tamper in (("rehashed", lambda p: (_flip_warc_byte(p), _rehash(p))),
                         ("forged", _forge_signature), ("warcbyte", _flip_warc_byte)):
        shutil.copy(signed, folder / f"{name}.wacz")
        tamper(folder / f"{name}.wacz")
    with sync_api.sync_playwright() as pw:
        browser = _launch(pw)
        try:
            shown = {name: _shown(browser, base, folder, f"{name}.wacz", live)
                     for name in ("brief", "rehashed", "forged", "warcbyte")}
        finally:
            browser.close()

    good = shown["brief"]
    assert good["verify"]["publicKey"] == public_key
    assert good["verify"]["datapackageHash"] == package_hash
    assert _row(good, "signature")["matched"] is True
    assert f"Observer Public Key: {public_key}" in good["receipt"]
    assert f"Package Hash: {package_hash}" in good["receipt"]
    assert "hashes verified" in good["receipt"]
    # ReplayWeb.page 2.4.6 files the expected hashes of indexes/index.idx and
    # pages/pages.jsonl (as "default"+path) and never records a computed one for them, so
    # its receipt says "1 hashes verified, 2 invalid" for this package. Those rows must be
    # the only unmatched ones, and their expected hashes the members' real ones.
    with zipfile.ZipFile(signed) as z:
        actual = {name: "sha256:" + hashlib.sha256(z.read(name)).hexdigest()
                  for name in z.namelist()}
    for row in good["rows"]:
        if row["matched"] is False and row["id"] != "datapackageHash":
            member = row["id"].removeprefix("default")
            assert member in ("indexes/index.idx", "pages/pages.jsonl"), row
            assert actual[member] == row["expected"], row

    # Re-hashed after an edit to a WARC, as someone without the key would: the signature no
    # longer covers the package, so the key and package hash are gone from the receipt.
    rehashed = shown["rehashed"]
    assert "publicKey" not in rehashed["verify"], rehashed["verify"]
    assert _row(rehashed, "signature")["matched"] is False
    assert public_key not in rehashed["receipt"]
    assert "Observer Public Key" not in rehashed["receipt"]

    # One byte of the signature changed: ReplayWeb.page's check fails (its receipt still
    # lists the key and counts the row as verified: it does not show the outcome).
    assert _row(shown["forged"], "signature")["matched"] is False

    # One byte changed in a WARC, hashes left alone: the signature covers datapackage.json,
    # which still matches, and ReplayWeb.page does not hash whole WARC files; `archiver
    # verify` is what finds this one.
    assert _row(shown["warcbyte"], "signature")["matched"] is True
    code, out, err = call("verify", str(folder / "warcbyte.wacz"))
    assert code == 1 and "archive/" in out + err, out + err


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
