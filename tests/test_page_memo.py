"""A payload fetched again is not read again (``capturing.PageMemo``): each capture keeps how
its payload was read (``captures.page``), and a ``check`` or ``run --refresh`` that gets the
very same payload back, under the same Content-Type and Content-Encoding, reading rules and
stored text, takes that reading instead of parsing the page. Anything else is read afresh,
and what comes out is what reading it afresh gives."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import sqlite3
import sys
import zlib
from pathlib import Path

import pytest

from archiver import pagetext
from archiver.catalog import Catalog
from archiver.models import Verdict
from tests.test_pagetext_pdf import make_pdf
from tests.test_run import call, make_project, read_back
from tests.webserver import Reply, WebServer

HTML = {"Content-Type": "text/html; charset=utf-8"}
WORDS = "The court upheld the conviction of the activist for organising a peaceful rally. "


def article(title: str = "Court ruling", words: str = WORDS) -> bytes:
    return (f'<html lang="en"><head><title>{title}</title></head><body><main><h1>{title}</h1>'
            f"<p>{words * 20}</p><form><input type=password></form></main></body>"
            "</html>").encode()


class Reads:
    """The bodies ``pagetext.extract`` was asked to read, counted by content, in this
    process and in the worker processes forked from it: each call appends the body's
    digest to a file (a worker's memory is not this process's)."""

    def __init__(self, log: Path) -> None:
        self.log = log

    def of(self, body: bytes) -> int:
        """How many times ``body`` was read since the last ``clear``."""
        if not self.log.exists():
            return 0
        digest = hashlib.sha256(body).hexdigest()
        return self.log.read_text(encoding="utf-8").split().count(digest)

    def clear(self) -> None:
        self.log.unlink(missing_ok=True)


@pytest.fixture
def reads(monkeypatch, tmp_path: Path) -> Reads:
    log = tmp_path / "reads.log"
    extract = pagetext.extract

    def counted(content, *args, **kwargs):  # type: ignore[no-untyped-def]
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(hashlib.sha256(bytes(content)).hexdigest() + "\n")
        return extract(content, *args, **kwargs)

    monkeypatch.setattr(pagetext, "extract", counted)
    return Reads(log)


def text_digest(blob: bytes) -> str:
    """A stored text's digest as a memo holds it: of its UTF-8, not of the packed bytes."""
    return hashlib.blake2b(zlib.decompress(blob), digest_size=16).hexdigest()


def project(root: Path, urls: list[str], workers: int = 0) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    return make_project(root, urls, fetch=f"workers = {workers}\n")


def newest(root: Path, url: str) -> sqlite3.Row:
    """The newest capture row of ``url``, with its stored text unpacked."""
    with Catalog.open(root / "archive") as catalog:
        [row] = catalog._read(
            "SELECT c.*, t.text AS blob FROM captures c LEFT JOIN texts t"
            " ON t.digest = c.payload_digest WHERE c.url = ? ORDER BY c.id DESC LIMIT 1",
            (url,))
        return row


def link(root: Path, url: str) -> dict:
    report = json.loads((root / "reports" / "brief" / "report.json").read_text())
    [found] = [item for item in report["links"] if item["url"] == url]
    return {key: found.get(key) for key in ("verdict", "reason", "http_status", "title",
                                             "excerpt", "similarity")}


LOGIN = (b"<html><head><title>Sign in</title></head><body><form><p>Members only.</p>"
         b"<input name=user><input type=password name=pw></form></body></html>")


@pytest.mark.parametrize("command", [("check",), ("run", "--refresh")])
def test_an_unchanged_payload_is_not_read_again(tmp_path: Path, web: WebServer, reads,
                                                command: tuple[str, ...]) -> None:
    """The run keeps each page's reading; a re-check (or a refreshed run) of the same bytes
    takes it, and says, stores and reports exactly what a project whose readings were not
    kept says after reading the pages again, down to the memos it keeps (a login form's
    password field included: the verdict depends on it)."""
    web.route("/ruling", Reply(200, article(), HTML))
    web.route("/login", Reply(200, LOGIN, HTML))
    urls = [web.url("/ruling"), web.url("/login")]
    config = project(tmp_path / "kept", urls)
    assert call("run", "--config", str(config))[0] in (0, 1)
    assert reads.of(article()) == reads.of(LOGIN) == 1
    memo = json.loads(newest(tmp_path / "kept", urls[0])["page"])
    assert memo[0] == pagetext.rules() and memo[1:3] == [None, len(article())]
    assert memo[4:] == ["Court ruling", "Court ruling", "en", "html", 1]

    # The same project with no reading kept (as a catalog from before version 8 has).
    shutil.copytree(tmp_path / "kept", tmp_path / "fresh")
    with sqlite3.connect(tmp_path / "fresh" / "archive" / "catalog.sqlite3") as db:
        db.execute("UPDATE captures SET page = NULL")
    reads.clear()
    code, out, err = call(*command, "--config", str(config))
    assert code in (0, 1), out + err
    assert reads.of(article()) == reads.of(LOGIN) == 0
    code, out, err = call(*command, "--config", str(tmp_path / "fresh" / "sources.toml"))
    assert code in (0, 1), out + err
    assert reads.of(article()) == reads.of(LOGIN) == 1
    for url in urls:
        kept, fresh = newest(tmp_path / "kept", url), newest(tmp_path / "fresh", url)
        assert kept["run_id"] == fresh["run_id"] == 2
        for column in ("page", "title", "blob", "fingerprint", "payload_digest", "status"):
            assert kept[column] == fresh[column], column
        assert link(tmp_path / "kept", url) == link(tmp_path / "fresh", url)
    assert link(tmp_path / "kept", urls[1])["verdict"] == Verdict.LOGIN_WALL.value
    assert link(tmp_path / "kept", urls[0])["verdict"] == Verdict.OK.value
    read_back(tmp_path / "kept")


def test_a_changed_payload_is_read_again(tmp_path: Path, web: WebServer, reads) -> None:
    url = web.url("/ruling")
    web.route("/ruling", Reply(200, article(), HTML))
    config = make_project(tmp_path, [url], fetch="workers = 0\n")
    assert call("run", "--config", str(config))[0] == 0
    other = "Officials announced a new programme of road repairs across the region. "
    web.route("/ruling", Reply(200, article("Road works", other), HTML))
    reads.clear()
    code, out, err = call("check", "--config", str(config), "--format", "json")
    assert code in (0, 1), out + err
    assert reads.of(article("Road works", other)) == 1
    assert json.loads(newest(tmp_path, url)["page"])[4] == "Road works"
    assert link(tmp_path, url)["title"] == "Road works"


def test_the_same_bytes_under_another_type_or_encoding_are_read_again(
        tmp_path: Path, web: WebServer, reads) -> None:
    """A memo is of bytes as they were decoded: the same payload under another charset, or
    under another Content-Encoding (the same bytes gzip-decoded or not), is read again."""
    body = article().replace(b"court", "суд".encode())
    packed = gzip.compress(body)
    url = web.url("/ruling")
    cp = {"Content-Type": "text/html; charset=windows-1251"}
    web.route("/ruling", Reply(200, body, HTML))
    config = make_project(tmp_path, [url], fetch="workers = 0\n")
    assert call("run", "--config", str(config))[0] == 0
    utf8 = newest(tmp_path, url)

    web.route("/ruling", Reply(200, body, cp))
    reads.clear()
    assert call("check", "--config", str(config))[0] in (0, 1)
    assert reads.of(body) == 1
    assert newest(tmp_path, url)["payload_digest"] == utf8["payload_digest"]

    web.route("/ruling", Reply(200, packed, {**HTML, "Content-Encoding": "gzip"}))
    assert call("check", "--config", str(config))[0] in (0, 1)
    gzipped = newest(tmp_path, url)
    web.route("/ruling", Reply(200, packed, {"Content-Type": "text/html"}))
    reads.clear()
    assert call("check", "--config", str(config))[0] in (0, 1)
    plain = newest(tmp_path, url)
    assert plain["payload_digest"] == gzipped["payload_digest"]  # the same bytes sent
    assert reads.of(packed) == 1  # read as they came, not as the gzip-decoded page
    assert plain["page"] is None or json.loads(plain["page"])[4] != "Court ruling"


def test_a_memo_is_taken_only_with_the_text_it_was_read_into(
        tmp_path: Path, web: WebServer, reads) -> None:
    """One payload served as UTF-8 at one URL and as windows-1251 at another gives two
    texts, and the catalog keeps the first for that payload: the other URL's memo is of a
    text the catalog does not hold, so that URL is read again (and its reading stays its
    own)."""
    body = article().replace(b"court", "суд".encode())
    utf8, cp = web.url("/utf-8"), web.url("/cp1251")
    web.route("/utf-8", Reply(200, body, HTML))
    web.route("/cp1251", Reply(200, body, {"Content-Type": "text/html; charset=windows-1251"}))
    config = make_project(tmp_path, [utf8, cp], fetch="workers = 0\n")
    assert call("run", "--config", str(config))[0] == 0
    holds = {}
    for url in (utf8, cp):
        row = newest(tmp_path, url)
        memo = json.loads(row["page"])
        holds[url] = memo[3] == text_digest(row["blob"])
    assert sorted(holds.values()) == [False, True]  # the stored text is one reading's
    reads.clear()
    assert call("check", "--config", str(config))[0] in (0, 1)
    assert reads.of(body) == 1  # the URL whose text the catalog does not hold
    [again] = [url for url, held in holds.items() if not held]
    assert json.loads(newest(tmp_path, again)["page"])[3] != text_digest(
        newest(tmp_path, again)["blob"])


@pytest.mark.parametrize("damage", [
    "rules", "not json", "eight fields", "a binary body", "passwords as text", "encoding",
    "length", "length as text", "text digest"])
def test_a_memo_of_other_rules_or_shape_is_read_again(tmp_path: Path, web: WebServer, reads,
                                                      damage: str) -> None:
    url = web.url("/ruling")
    web.route("/ruling", Reply(200, article(), HTML))
    config = make_project(tmp_path, [url], fetch="workers = 0\n")
    assert call("run", "--config", str(config))[0] == 0
    memo = json.loads(newest(tmp_path, url)["page"])
    changed: object = {
        "rules": ["0" * 32, *memo[1:]],
        "not json": None,
        "eight fields": memo[:8],
        "a binary body": [*memo[:7], "binary", memo[8]],
        "passwords as text": [*memo[:8], "1"],
        "encoding": [memo[0], "gzip", *memo[2:]],
        "length": [*memo[:2], memo[2] - 1, *memo[3:]],
        "length as text": [*memo[:2], str(memo[2]), *memo[3:]],
        "text digest": [*memo[:3], "0" * 32, *memo[4:]],
    }[damage]
    stored = "{not json" if changed is None else json.dumps(changed)
    with sqlite3.connect(tmp_path / "archive" / "catalog.sqlite3") as db:
        db.execute("UPDATE captures SET page = ?", (stored,))
    reads.clear()
    code, out, err = call("check", "--config", str(config))
    assert code == 0, out + err
    assert reads.of(article()) == 1
    assert json.loads(newest(tmp_path, url)["page"]) == memo  # read again, kept again
    assert link(tmp_path, url)["title"] == "Court ruling"


def test_a_pdf_keeps_its_memo_and_a_page_without_text_none(tmp_path: Path, web: WebServer,
                                                          reads) -> None:
    """A PDF read whole is not read again (pypdf is far slower than lxml), and a re-check
    says what reading it afresh says; a page without text costs nothing to read again."""
    pdf = make_pdf([["The court upheld the conviction."], ["Article 174 applies."]],
                   title="Ruling", lang="ru-RU")
    web.route("/ruling.pdf", Reply(200, pdf, {"Content-Type": "application/pdf"}))
    web.route("/empty", Reply(200, b"<html><body></body></html>", HTML))
    urls = [web.url("/ruling.pdf"), web.url("/empty")]
    kept, fresh = two_projects(tmp_path, urls, "workers = 0\n")
    assert json.loads(newest(kept, urls[0])["page"])[4:] == ["Ruling", None, "ru", "pdf", 0]
    assert newest(kept, urls[1])["page"] is None
    reads.clear()
    check_both(kept, fresh, urls, "workers = 0\n")
    assert reads.of(pdf) == 1  # by the project whose memos were dropped only
    assert link(kept, urls[0])["title"] == "Ruling"


def test_a_pdf_read_cut_short_by_the_clock_keeps_no_memo(tmp_path: Path, web: WebServer,
                                                         reads, monkeypatch) -> None:
    """A PDF whose reading stopped at ``PDF_TIME_LIMIT`` (here: a clock that jumps past it
    after the first page) has the first pages' text, which a quieter machine would read
    past: it keeps no memo, and the next check reads it again, whole."""
    pdf = make_pdf([["The court upheld the conviction."], ["Article 174 applies."]],
                   title="Ruling")
    ticks = iter([0.0, 0.0])  # the deadline, the first page; then far past the limit
    monkeypatch.setattr(pagetext, "_clock", lambda: next(ticks, 1e9))
    web.route("/ruling.pdf", Reply(200, pdf, {"Content-Type": "application/pdf"}))
    url = web.url("/ruling.pdf")
    config = make_project(tmp_path, [url], fetch="workers = 0\n")
    assert call("run", "--config", str(config))[0] == 0
    first = newest(tmp_path, url)
    assert first["page"] is None
    assert "Article 174" not in zlib.decompress(first["blob"]).decode()
    monkeypatch.setattr(pagetext, "_clock", __import__("time").monotonic)
    reads.clear()
    assert call("check", "--config", str(config))[0] == 0
    assert reads.of(pdf) == 1
    again = newest(tmp_path, url)
    assert json.loads(again["page"])[7] == "pdf"


def test_worker_processes_keep_and_take_memos(tmp_path: Path, web: WebServer, reads) -> None:
    """With two worker processes: the run's workers keep the readings, the check's take
    them (the pages are not read in any process) and the check records what a check of the
    same project without kept readings records."""
    bodies = {f"/page-{n}": article(f"Ruling {n}") for n in range(6)}
    for path, body in bodies.items():
        web.route(path, Reply(200, body, HTML))
    urls = [web.url(path) for path in bodies]
    config = project(tmp_path / "kept", urls, workers=2)
    assert call("run", "--config", str(config))[0] == 0
    assert all(reads.of(body) == 1 for body in bodies.values())
    shutil.copytree(tmp_path / "kept", tmp_path / "fresh")
    with sqlite3.connect(tmp_path / "fresh" / "archive" / "catalog.sqlite3") as db:
        db.execute("UPDATE captures SET page = NULL")
    reads.clear()
    assert call("check", "--config", str(config))[0] == 0
    assert [reads.of(body) for body in bodies.values()] == [0] * len(bodies)
    assert call("check", "--config", str(tmp_path / "fresh" / "sources.toml"))[0] == 0
    assert [reads.of(body) for body in bodies.values()] == [1] * len(bodies)
    for url in urls:
        kept, fresh = newest(tmp_path / "kept", url), newest(tmp_path / "fresh", url)
        assert (kept["page"], kept["title"], kept["blob"]) == (
            fresh["page"], fresh["title"], fresh["blob"])
        assert link(tmp_path / "kept", url) == link(tmp_path / "fresh", url)
    read_back(tmp_path / "kept")


# ── what a reading depends on besides the payload's digest ──

def long_article() -> bytes:
    """A page of about 10 KB whose paragraphs all differ: a prefix of it reads as a
    prefix of its text."""
    paragraphs = "".join(
        f"<p>Paragraph {n}: the court heard witness number {n} about the rally of day {n}.</p>"
        for n in range(120))
    return (f'<html lang="en"><head><title>Court ruling</title></head><body><main>'
            f"<h1>Court ruling</h1>{paragraphs}</main></body></html>").encode()


def two_projects(tmp_path: Path, urls: list[str], fetch: str) -> tuple[Path, Path]:
    """``kept`` after one run, and ``fresh``: a copy whose memos are dropped (what the
    same check gives with every page read again)."""
    kept, fresh = tmp_path / "kept", tmp_path / "fresh"
    kept.mkdir()
    config = make_project(kept, urls, fetch=fetch)
    code, out, err = call("run", "--config", str(config))
    assert code in (0, 1), out + err
    shutil.copytree(kept, fresh)
    with sqlite3.connect(fresh / "archive" / "catalog.sqlite3") as db:
        db.execute("UPDATE captures SET page = NULL")
    return kept, fresh


def check_both(kept: Path, fresh: Path, urls: list[str], fetch: str) -> None:
    """Check both projects (with ``fetch`` as their [fetch] settings); what the checks say
    changed (drift included) is the same, and so is what they keep and report."""
    changes = []
    for root in (kept, fresh):
        config = make_project(root, urls, fetch=fetch)  # the same project, new settings
        code, out, err = call("check", "--config", str(config), "--format", "json")
        assert code in (0, 1), out + err
        changes.append([{k: c[k] for k in ("url", "kind", "verdict", "similarity")}
                        for c in json.loads(out)["changes"]])
    assert changes[0] == changes[1]
    for url in urls:
        k, f = newest(kept, url), newest(fresh, url)
        assert k["run_id"] == f["run_id"] == 2
        assert link(kept, url) == link(fresh, url)
        for column in ("page", "title", "blob", "fingerprint"):
            assert k[column] == f[column], column


@pytest.mark.parametrize("first, then", [(None, 1500), (1500, None)],
                         ids=["lowered", "raised"])
def test_max_decoded_changed_between_runs_is_read_again(
        tmp_path: Path, web: WebServer, reads, first: int | None, then: int | None) -> None:
    """``Capture.content`` is the body cut at ``[fetch] max_decoded`` while the payload
    digest is of the whole body: the same payload under another ``max_decoded`` is other
    bytes to read (raised, the whole page; lowered, a prefix of it)."""
    body = long_article()
    assert len(body) > 8000
    web.route("/ruling", Reply(200, body, HTML))
    urls = [web.url("/ruling")]
    limit = lambda n: "workers = 0\n" + (f"max_decoded = {n}\n" if n else "")  # noqa: E731
    kept, fresh = two_projects(tmp_path, urls, limit(first))
    reads.clear()
    check_both(kept, fresh, urls, limit(then))
    assert reads.of(body[:then] if then else body) == 2  # what each check decoded


def test_the_coding_a_body_was_decoded_by_is_the_one_remembered(
        tmp_path: Path, web: WebServer, reads) -> None:
    """A response with two Content-Encoding headers is decoded by the last one (as the
    fetcher reads headers), and its memo says that one: the same bytes sent with a second
    ``Content-Encoding: identity`` are read undecoded, and again."""
    packed = gzip.compress(article())
    url = web.url("/ruling")
    web.route("/ruling", Reply(200, packed, [("Content-Type", HTML["Content-Type"]),
                                             ("Content-Encoding", "gzip")]))
    kept, fresh = two_projects(tmp_path, [url], "workers = 0\n")
    web.route("/ruling", Reply(200, packed, [("Content-Type", HTML["Content-Type"]),
                                             ("Content-Encoding", "gzip"),
                                             ("Content-Encoding", "identity")]))
    reads.clear()
    check_both(kept, fresh, [url], "workers = 0\n")
    assert newest(kept, url)["payload_digest"] == newest(fresh, url)["payload_digest"]
    assert reads.of(packed) == 2  # both read the bytes undecoded


def test_a_missing_decoder_is_read_again(tmp_path: Path, web: WebServer, reads,
                                         monkeypatch) -> None:
    """A br body where ``brotli`` cannot be imported decodes to nothing: not the page the
    memo of its decoded bytes describes."""
    brotli = pytest.importorskip("brotli")
    url = web.url("/ruling")
    web.route("/ruling", Reply(200, brotli.compress(article()),
                               {**HTML, "Content-Encoding": "br"}))
    kept, fresh = two_projects(tmp_path, [url], "workers = 0\n")
    monkeypatch.setitem(sys.modules, "brotli", None)  # brotli not installed
    reads.clear()
    check_both(kept, fresh, [url], "workers = 0\n")
    assert link(kept, url)["title"] is None


def test_a_text_packed_by_zlib_is_recalled(tmp_path: Path, web: WebServer, reads) -> None:
    """Texts stored by an older version or a process without ``isal`` are zlib's bytes
    for the very same text: the memo is of the text, so they are taken all the same."""
    url = web.url("/ruling")
    web.route("/ruling", Reply(200, article(), HTML))
    root = tmp_path / "p"
    root.mkdir()
    config = make_project(root, [url], fetch="workers = 0\n")
    assert call("run", "--config", str(config))[0] == 0
    # As a schema-7 catalog made without ISA-L holds it: the same text, zlib's bytes.
    with sqlite3.connect(root / "archive" / "catalog.sqlite3") as db:
        for digest, blob in db.execute("SELECT digest, text FROM texts").fetchall():
            db.execute("UPDATE texts SET text = ? WHERE digest = ?",
                       (zlib.compress(zlib.decompress(blob), 1), digest))
        db.execute("UPDATE captures SET page = NULL")
    assert call("check", "--config", str(config))[0] == 0  # reads it, keeps a memo
    reads.clear()
    assert call("check", "--config", str(config))[0] == 0
    assert newest(root, url)["page"] is not None
    assert reads.of(article()) == 0  # the memo is taken


@pytest.mark.parametrize("command", [("check",), ("run", "--refresh")])
def test_a_damaged_stored_text_is_read_again(tmp_path: Path, web: WebServer, reads,
                                             command: tuple[str, ...]) -> None:
    """A stored text that is not a blob (a catalog edited by other hands) or does not
    unpack: the page is read afresh, and neither a check nor a refreshed run stops."""
    url = web.url("/ruling")
    web.route("/ruling", Reply(200, article(), HTML))
    root = tmp_path / "p"
    root.mkdir()
    config = make_project(root, [url], fetch="workers = 0\n")
    for damaged in ("damaged", b"not zlib"):
        assert call("run", "--config", str(config))[0] == 0
        with sqlite3.connect(root / "archive" / "catalog.sqlite3") as db:
            db.execute("UPDATE texts SET text = ?", (damaged,))
        reads.clear()
        code, out, err = call(*command, "--config", str(config))
        assert code == 0, out + err
        # Read by the capture stage (and by the report's claim support, which reads the
        # page from the WARC where the catalog's text is damaged).
        assert reads.of(article()) >= 1
        assert link(root, url)["verdict"] == "ok"
        assert link(root, url)["title"] == "Court ruling"
        with sqlite3.connect(root / "archive" / "catalog.sqlite3") as db:
            db.execute("DELETE FROM texts")  # the next round stores the text again
