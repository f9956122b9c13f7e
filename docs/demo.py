"""A reproducible demo of a real archiver run, on loopback, with no internet.

    .venv/bin/python docs/demo.py [--out DIR] [--screenshot PATH]

What it does:

1. Copies the shipped briefing ``sources/kazakhstan-2020.md`` into a fresh project (``--out``,
   default a new temporary folder), rewriting every cited ``scheme://host/path?query`` to
   ``http://127.0.0.1:PORT/host/path?query``. Only the ``scheme://host`` prefix of each URL
   occurrence is rewritten, so footnotes, claims, Markdown escapes, queries and fragments stay
   byte for byte as they were.
2. Serves a simulated web for those paths (``tests/webserver.py``) that fails the way the real
   web fails this briefing, decided by host: Facebook and Instagram send a robot to a login
   page, the law-text site online.zakon.kz answers a Cloudflare "Just a moment..." 403,
   tirik.info answers 404, ratel.kz 410, kuresker.org points at a closed port, pavlodar.com
   answers every address with its home page, one bureau.kz article moved permanently; every
   other cited page is a short article that says it is a demo page.
3. Serves a small Wayback Machine (``tests/wayback_server.py``) holding mementos of some of the
   dead links (one of them only from after the briefing's date), so the report shows rescued
   evidence as well as links with no archived copy.
4. Writes ``sources.toml`` and runs the real command line in-process: ``run --rescue-capture``,
   then ``check``, printing what they print.
5. Copies the report to ``docs/demo-report.html`` and screenshots its top 1280x2000 pixels
   with Debian's chromium into ``docs/report-screenshot.png`` (``--screenshot-after run``:
   the report as ``run`` wrote it, before ``check`` added what changed).

Exit status: 0 when every step worked; 1 when a step failed (the message says which).
"""

from __future__ import annotations

import argparse
import contextlib
import html
import io
import json
import re
import shutil
import socket
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from archiver.cli import main as archiver_main  # noqa: E402
from tests.wayback_server import WaybackServer  # noqa: E402
from tests.webserver import Reply, Request, WebServer  # noqa: E402

SOURCE_ID = "kazakhstan-2020"
BRIEFING = ROOT / "sources" / f"{SOURCE_ID}.md"
TITLE = "Key concerns and recommendations on the protection of fundamental rights in Kazakhstan"

# scheme://host of a URL occurrence anywhere in the text: link targets, link texts, <...>.
# The host stops at the first character that cannot be part of a host name, so what follows
# (path, query, escapes, fragment) is never touched.
URL_PREFIX = re.compile(r"\bhttps?://([A-Za-z0-9.-]+)(?::\d+)?")

# Hosts whose every address is behind a login (the robot is redirected to a login page).
LOGIN_HOSTS = {
    "www.facebook.com": "/www.facebook.com/login/",
    "web.facebook.com": "/www.facebook.com/login/",
    "www.instagram.com": "/www.instagram.com/accounts/login/",
}
BLOCKED_HOSTS = {"online.zakon.kz"}  # a Cloudflare bot challenge, 403
NOT_FOUND_HOSTS = {"tirik.info"}  # the site is up; the articles are gone (404)
GONE_HOSTS = {"ratel.kz"}  # 410
UNREACHABLE_HOSTS = {"kuresker.org"}  # the URL points at a closed port: connection refused
SOFT_404_HOSTS = {"www.pavlodar.com"}  # every address answers the same home page, 200
# One article that moved for good: the old path answers 301 to its new address.
MOVED = {
    "/bureau.kz/novosti/sobstvennaya_informaciya/molchanie_zoloto/":
        "/bureau.kz/ru/novosti/2019/molchanie-zoloto/",
}

# Mementos in the local Wayback: (original host + path + query, timestamp). The briefing is
# dated 2020-11-01; the last one exists only from after that date.
MEMENTOS = (
    ("tirik.info/7-sotrudnikov-politsii-prishli-s-obyskom-k-aktivistu-zhenisu-akimovu/",
     "20200917081502"),
    ("kuresker.org/archives/3197", "20200921143010"),
    ("www.pavlodar.com/zakon/?dok=05552&uro=080131", "20190605120000"),
    ("online.zakon.kz/document/?doc_id=31577399", "20200702093145"),
    ("www.facebook.com/nghrdc/photos/a.2040973449355660/2971506189635710/?type=3&theater",
     "20200630184420"),
    ("tirik.info/monitoring-narushenij-prav-cheloveka-za-10-noyabrya-2020-goda/",
     "20201112070533"),
)

DEMO_NOTE = ("This is a demo page: it is served on loopback by docs/demo.py and stands in for "
             "the page the briefing cites, {url}. Its text only echoes the footnote.")


class DemoError(Exception):
    """A step of the demo failed; the message says which and why."""


# ── the briefing ─────────────────────────────────────────────────────────────


def rewrite(text: str, address_for: Callable[[str], str]) -> str:
    """Return ``text`` with every ``scheme://host[:port]`` replaced by ``address_for(host)``
    followed by ``/host``; everything after the host is left exactly as written."""
    return URL_PREFIX.sub(lambda m: f"{address_for(m.group(1).lower())}/{m.group(1).lower()}",
                          text)


def extract(doc: Path) -> dict:
    """The ``extract --format json`` answer for ``doc`` (the real command, in-process)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = archiver_main(["extract", str(doc), "--format", "json"])
    if code not in (0, 1):
        raise DemoError(f"extract {doc} failed with exit code {code}")
    return json.loads(out.getvalue())


def original_of(url: str) -> str:
    """``http://127.0.0.1:PORT/host/path?q#f`` back to ``https://host/path?q#f`` (for text)."""
    parts = urlsplit(url)
    host, _, rest = parts.path.lstrip("/").partition("/")
    tail = "/" + rest + (f"?{parts.query}" if parts.query else "")
    return f"https://{host}{tail}" + (f"#{parts.fragment}" if parts.fragment else "")


# ── the simulated web ────────────────────────────────────────────────────────


def _page(title: str, paragraphs: list[str], *, site: str, lang: str = "ru") -> bytes:
    body = "".join(f"<p>{html.escape(p)}</p>\n" for p in paragraphs)
    return (f"<!doctype html>\n<html lang=\"{lang}\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)} | {html.escape(site)}</title></head>\n"
            f"<body><header><a href=\"/{site}/\">{html.escape(site)}</a></header>\n"
            f"<main><article><h1>{html.escape(title)}</h1>\n{body}</article></main>\n"
            f"<footer>&copy; {html.escape(site)}</footer></body></html>\n").encode()


def _html(status: int, body: bytes, **headers: str) -> Reply:
    return Reply(status, body, {"Content-Type": "text/html; charset=utf-8", **headers})


def _pdf(lines: list[str]) -> bytes:
    """A small valid PDF showing ``lines`` (ASCII), with a correct cross-reference table."""
    text = " ".join(ln.encode("ascii", "replace").decode() for ln in lines)
    words, rows, row = text.split(), [], ""
    for word in words:
        if len(row) + len(word) > 80:
            rows.append(row)
            row = ""
        row = f"{row} {word}".strip()
    rows.append(row)
    escaped = [r.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") for r in rows]
    stream = "BT /F1 11 Tf 50 780 Td 14 TL " + " ".join(f"({r}) '" for r in escaped) + " ET"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        "/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for number, obj in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{obj}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{o:010d} 00000 n \n" for o in offsets).encode()
    out += (f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\n"
            f"startxref\n{xref}\n%%EOF\n").encode()
    return out


def _clip(text: str, n: int) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= n else text[: n - 1].rsplit(" ", 1)[0] + "…"


class DemoWeb:
    """The simulated web: one loopback server answering ``/HOST/PATH?QUERY`` by host."""

    def __init__(self, web: WebServer) -> None:
        self.web = web
        # path (host + path, no query) → (footnote text, first claim) of a footnote citing it
        self.topics: dict[str, tuple[str, str]] = {}
        web.fallback = self.answer

    def learn(self, footnotes: list[dict]) -> None:
        for note in footnotes:
            claim = note["claims"][0]["text"] if note["claims"] else note["text"]
            for url in note["urls"]:
                path = urlsplit(url).path
                self.topics.setdefault(path, (note["text"], claim))
        for old, new in MOVED.items():
            self.topics[new] = self.topics[old]

    def answer(self, req: Request) -> Reply:
        parts = urlsplit(req.path)
        host = parts.path.lstrip("/").partition("/")[0]
        original = f"https://{host}{parts.path[len(host) + 1:]}" + (
            f"?{parts.query}" if parts.query else "")
        if host in LOGIN_HOSTS:
            return self._login(host, parts.path, req.path)
        if host in BLOCKED_HOSTS:
            return self._challenge()
        if host in SOFT_404_HOSTS:
            return _html(200, _page("Законодательство Республики Казахстан", [
                "Павлодар.com: кодексы, законы и постановления Республики Казахстан.",
                "Последние изменения: Уголовный кодекс, Кодекс об административных "
                "правонарушениях, Гражданский кодекс.",
                DEMO_NOTE.format(url="the home page of www.pavlodar.com; every address on "
                                     "this site answers with this same page"),
            ], site=host))
        if host in GONE_HOSTS:
            return _html(410, _page("Материал удалён", [
                "Этот материал был удалён редакцией.",
                DEMO_NOTE.format(url=original)], site=host))
        if parts.path in MOVED:
            return Reply(301, b"", {"Location": MOVED[parts.path]})
        topic = self.topics.get(parts.path)
        if topic is None or host in NOT_FOUND_HOSTS:
            return _html(404, _page("Страница не найдена", [
                "Запрашиваемая страница не найдена. 404.",
                DEMO_NOTE.format(url=original)], site=host))
        return self._article(host, parts.path, original, *topic)

    def _login(self, host: str, path: str, full: str) -> Reply:
        login = LOGIN_HOSTS[host]
        if path == login:
            site = login.strip("/").split("/")[0]
            name = "Instagram" if "instagram" in site else "Facebook"
            form = (f"<!doctype html><html><head><meta charset=\"utf-8\">"
                    f"<title>Log in to {name}</title></head><body>"
                    f"<h1>Log in to {name}</h1>"
                    f"<p>You must log in to continue.</p>"
                    f"<form method=\"post\" action=\"{login}\">"
                    f"<input name=\"email\" type=\"text\" placeholder=\"Email or phone\">"
                    f"<input name=\"pass\" type=\"password\" placeholder=\"Password\">"
                    f"<button type=\"submit\">Log in</button></form>"
                    f"<p><small>This is a demo page served by docs/demo.py.</small></p>"
                    f"</body></html>").encode()
            return _html(200, form)
        # The login page's own host; ``next`` carries where the visitor wanted to go.
        site_path = full[len(host) + 1:]
        return Reply(302, b"", {"Location": f"{login}?next={quote(site_path, safe='')}"})

    def _challenge(self) -> Reply:
        body = (b"<!DOCTYPE html><html lang=\"en-US\"><head><title>Just a moment...</title>"
                b"<meta http-equiv=\"refresh\" content=\"390\"></head><body>"
                b"<div class=\"main-wrapper\"><h1>online.zakon.kz</h1>"
                b"<p>Checking if the site connection is secure. Enable JavaScript and cookies "
                b"to continue.</p><p>This is a demo page served by docs/demo.py.</p></div>"
                b"<script src=\"/cdn-cgi/challenge-platform/h/g/orchestrate/chl_page/v1\">"
                b"</script></body></html>")
        return _html(403, body, Server="cloudflare", **{"cf-mitigated": "challenge"})

    def _article(self, host: str, path: str, original: str, note: str, claim: str) -> Reply:
        title = _clip(claim, 90)
        paragraphs = [
            f"{_clip(claim, 400)}",
            f"Source note: {_clip(note, 300)}",
            DEMO_NOTE.format(url=original),
        ]
        if path.endswith(".pdf"):
            return Reply(200, _pdf([title, *paragraphs]), {"Content-Type": "application/pdf"})
        return _html(200, _page(title, paragraphs, site=host, lang="en"))


# ── the run ──────────────────────────────────────────────────────────────────


def _cli(argv: list[str]) -> int:
    print(f"\n$ archiver {' '.join(argv)}", flush=True)
    code = archiver_main(argv)
    print(f"[exit code {code}]", flush=True)
    return code


def write_config(project: Path, wayback: WebServer) -> Path:
    config = project / "sources.toml"
    config.write_text(f"""\
[[sources]]
id = "{SOURCE_ID}"
path = "sources/{SOURCE_ID}.md"
title = "{TITLE}"
published = 2020-11-01

[fetch]
timeout = 3
retries = 1
deadline = 15
backoff_base = 0.05
backoff_max = 0.2
concurrency = 16
per_host = 16
host_interval = 0
allow_private_networks = true

[rescue]
enabled = true
availability_api = "{wayback.url('/wayback/available')}"
cdx_api = "{wayback.url('/cdx/search/cdx')}"
replay_base = "{wayback.url('/web')}"
timeout = 3
retries = 1
""", encoding="utf-8")
    return config


def screenshot(report: Path, target: Path) -> None:
    from playwright.sync_api import sync_playwright

    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=args)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 2000})
            page.goto(report.as_uri())
            page.wait_for_load_state("load")
            page.screenshot(path=str(target), full_page=False)
        finally:
            browser.close()


def demo(out: Path, shot: Path, *, shot_after: str = "check") -> int:
    (out / "sources").mkdir(parents=True, exist_ok=True)
    text = BRIEFING.read_text(encoding="utf-8")
    originals = extract(BRIEFING)

    # A port that refuses connections: bound but never listening, and held until the end.
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    with closed, WebServer() as web, WebServer() as archive_web:
        dead_port = closed.getsockname()[1]

        def address_for(host: str) -> str:
            port = dead_port if host in UNREACHABLE_HOSTS else web.port
            return f"http://127.0.0.1:{port}"

        doc = out / "sources" / f"{SOURCE_ID}.md"
        doc.write_text(rewrite(text, address_for), encoding="utf-8")
        demo_notes = extract(doc)
        _same_briefing(originals, demo_notes)

        site = DemoWeb(web)
        site.learn(demo_notes["footnotes"])
        wayback = WaybackServer(archive_web)
        for where, stamp in MEMENTOS:
            host = where.partition("/")[0]
            url = f"{address_for(host)}/{where}"
            body = _page(f"Archived copy of {where}", [
                f"The page as the Wayback Machine captured it on "
                f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}.",
                _clip(site.topics.get(urlsplit(url).path, ("", ""))[1], 400) or "(no topic)",
                DEMO_NOTE.format(url=f"https://{where}"),
            ], site=host)
            wayback.add(url, stamp, body=body)

        config = write_config(out, archive_web)
        print(f"demo project: {out}\nsimulated web: {web.origin}   "
              f"wayback: {archive_web.origin}   closed port: {dead_port}")
        code = _cli(["--config", str(config), "run", "--rescue-capture"])
        if code != 0:
            raise DemoError(f"run exited {code}")
        if shot_after == "run":
            screenshot(out / "reports" / SOURCE_ID / "report.html", shot)
        code = _cli(["--config", str(config), "check", "--fail-on", "none"])
        if code != 0:
            raise DemoError(f"check exited {code}")

    report = out / "reports" / SOURCE_ID / "report.html"
    if not report.is_file():
        raise DemoError(f"{report}: the run wrote no HTML report")
    shutil.copyfile(report, ROOT / "docs" / "demo-report.html")
    if shot_after == "check":
        screenshot(report, shot)
    print(f"\nreport: {report}\ncopied to: {ROOT / 'docs' / 'demo-report.html'}\n"
          f"screenshot: {shot}")
    return 0


def _same_briefing(original: dict, demo_notes: dict) -> None:
    """The demo copy must cite the same URLs, in the same footnotes, with the same claims."""
    a, b = original["footnotes"], demo_notes["footnotes"]
    if len(a) != len(b):
        raise DemoError(f"the demo copy has {len(b)} footnotes, the briefing {len(a)}")
    for x, y in zip(a, b, strict=True):
        if x["number"] != y["number"] or x["claims"] != y["claims"]:
            raise DemoError(f"footnote {x['number']}: claims differ in the demo copy")
        back = [original_of(u).replace("https://", "", 1) for u in y["urls"]]
        mine = [re.sub(r"^https?://", "", u) for u in x["urls"]]
        if back != mine:
            raise DemoError(f"footnote {x['number']}: URLs differ in the demo copy: "
                            f"{mine} vs {back}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path,
                        help="the demo project's folder (default: a new temporary folder)")
    parser.add_argument("--screenshot", type=Path, default=ROOT / "docs" / "report-screenshot.png",
                        help="where to save the screenshot (default: docs/report-screenshot.png)")
    parser.add_argument("--screenshot-after", choices=["run", "check"], default="check",
                        help="photograph the report as 'run' wrote it, or as 'check' rewrote "
                        "it with the history (default: check)")
    args = parser.parse_args(argv)
    out = (args.out or Path(tempfile.mkdtemp(prefix="archiver-demo-"))).resolve()
    if out.exists() and any(out.iterdir()):
        print(f"demo: {out} is not empty; pass an empty or new folder", file=sys.stderr)
        return 1
    try:
        return demo(out, args.screenshot.resolve(), shot_after=args.screenshot_after)
    except DemoError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
