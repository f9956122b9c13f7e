"""Which WARC record a link points at, and ``archiver show``, against real loopback servers.

The contract (``CONTRACT.md``, "capture"): a link's ``capture`` is the record whose
``WARC-Target-URI`` is the URL fetched (its ``response``, or its ``revisit`` when the payload
was already archived), and ``capture.payload`` is the record holding the bytes. Each test
reads the records back with warcio at the offsets the tool names.
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from warcio.archiveiterator import ArchiveIterator

from tests.test_run import ARTICLE, call, make_project, read_back
from tests.wayback_server import WaybackServer
from tests.webserver import Reply, WebServer

HTML = {"Content-Type": "text/html; charset=utf-8"}


def record_at(root: Path, ref: dict[str, Any]) -> tuple[Any, bytes]:
    """The WARC record at ``ref`` (warc, offset, length, record_id) and its raw payload."""
    with (root / ref["warc"]).open("rb") as fh:
        fh.seek(ref["offset"])
        data = fh.read(ref["length"])
    record = next(iter(ArchiveIterator(io.BytesIO(data), check_digests=True)))
    body = record.raw_stream.read()
    assert record.rec_headers.get_header("WARC-Record-ID") == ref["record_id"]
    return record, body


def links_of(root: Path) -> dict[str, dict[str, Any]]:
    report = json.loads((root / "reports" / "brief" / "report.json").read_text("utf-8"))
    return {link["url"]: link for link in report["links"]}


def raw(config: Path, ref: str, *extra: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "archiver", "show", ref, "--raw",
                           "--config", str(config), *extra], capture_output=True, timeout=60)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_capture_of_a_deduplicated_payload_is_this_urls_revisit(tmp_path: Path,
                                                                 web: WebServer) -> None:
    web.route("/a", Reply(200, ARTICLE, {**HTML, "X-Page": "a"}))
    web.route("/b", Reply(200, ARTICLE, {**HTML, "X-Page": "b"}))
    urls = [web.url("/a"), web.url("/b")]
    config = make_project(tmp_path, urls)
    assert call("run", "--config", str(config))[0] == 0
    read_back(tmp_path)

    links = links_of(tmp_path)
    kinds = []
    for url in urls:
        capture = links[url]["capture"]
        record, _ = record_at(tmp_path, capture)
        assert record.rec_headers.get_header("WARC-Target-URI") == url
        assert record.rec_headers.get_header("WARC-Date") == capture["captured_at"]
        payload, payload_body = record_at(tmp_path, capture["payload"])
        assert payload.rec_type == "response" and payload_body == ARTICLE
        kinds.append(record.rec_type)
        if record.rec_type == "revisit":
            assert record.rec_headers.get_header("WARC-Refers-To") == \
                capture["payload"]["record_id"]
            assert payload.rec_headers.get_header("WARC-Target-URI") != url
            assert record.rec_headers.get_header("WARC-Refers-To-Target-URI") == \
                payload.rec_headers.get_header("WARC-Target-URI")
        else:
            assert capture["payload"] == {k: capture[k] for k in
                                          ("warc", "offset", "length", "record_id")}
    assert sorted(kinds) == ["response", "revisit"]
    # The other reports name the same record as "our capture" of each URL.
    folder = tmp_path / "reports" / "brief"
    with (folder / "links.csv").open(encoding="utf-8", newline="") as fh:
        rows = {row["url"]: row for row in csv.DictReader(fh)}
    for url in urls:
        record_id = links[url]["capture"]["record_id"]
        assert rows[url]["record_id"] == record_id
        assert int(rows[url]["offset"]) == links[url]["capture"]["offset"]
        assert record_id in (folder / "report.md").read_text("utf-8")
        assert html.escape(record_id) in (folder / "report.html").read_text("utf-8")

    for ref, page in (("brief#1", "a"), ("brief#2", "b")):
        done = raw(config, ref)
        assert done.returncode == 0, done.stderr
        assert sha(done.stdout) == sha(ARTICLE)
        # The headers are this URL's answer, not those of the record holding the bytes.
        code, out, _ = call("show", ref, "--headers", "--config", str(config))
        assert code == 0 and f"X-Page: {page}" in out, out


def test_unchanged_page_rechecked_points_at_its_revisit(tmp_path: Path, web: WebServer) -> None:
    web.route("/a", Reply(200, ARTICLE, HTML))
    url = web.url("/a")
    config = make_project(tmp_path, [url])
    assert call("run", "--config", str(config))[0] == 0
    first = links_of(tmp_path)[url]["capture"]
    assert call("check", "--config", str(config))[0] == 0
    read_back(tmp_path)

    capture = links_of(tmp_path)[url]["capture"]
    record, _ = record_at(tmp_path, capture)
    assert record.rec_type == "revisit"
    assert record.rec_headers.get_header("WARC-Target-URI") == url
    assert record.rec_headers.get_header("WARC-Refers-To") == first["record_id"]
    assert capture["captured_at"] == record.rec_headers.get_header("WARC-Date")
    # Another record than the first (each run writes its own WARC file, so compare both).
    assert (capture["warc"], capture["offset"]) != (first["warc"], first["offset"])
    assert capture["payload"]["record_id"] == first["record_id"]
    payload, body = record_at(tmp_path, capture["payload"])
    assert payload.rec_type == "response" and body == ARTICLE

    done = raw(config, url)
    assert done.returncode == 0 and sha(done.stdout) == sha(ARTICLE)
    code, out, _ = call("show", url, "--format", "json", "--config", str(config))
    assert code == 0
    newest = json.loads(out)[url][0]
    assert newest["record_id"] == capture["record_id"]
    assert newest["payload"]["record_id"] == first["record_id"]


# ── show: which copy ────────────────────────────────────────────────────────

LOGIN_WALL = (b"<html><head><title>Facebook</title></head><body><p>Log in to Facebook to see "
              b"this post.</p></body></html>")
OLD_POST = (b"<html><head><title>A post</title></head><body><main><h1>Statement</h1><p>The "
            b"organisers announced the peaceful gathering for Saturday in the central square."
            b"</p></main></body></html>")


def wayback_project(root: Path, urls: list[str], wayback: WaybackServer) -> Path:
    settings = wayback.settings()
    extra = "".join(f'{key} = "{getattr(settings, key)}"\n'
                    for key in ("availability_api", "cdx_api", "replay_base"))
    return make_project(root, urls, rescue=True, extra=extra)


def test_show_prefers_a_rescued_copy_to_a_login_wall_and_says_why(tmp_path: Path,
                                                                    web: WebServer) -> None:
    web.route("/post", Reply(200, LOGIN_WALL, HTML))
    post = web.url("/post")
    with WebServer() as archive_host:
        wayback = WaybackServer(archive_host)
        wayback.add(post, "20201030101500", body=OLD_POST)
        config = wayback_project(tmp_path, [post], wayback)
        code, out, err = call("run", "--config", str(config), "--rescue-capture")
        assert code == 0, out + err
    read_back(tmp_path)
    assert links_of(tmp_path)[post]["verdict"] == "login_wall"

    code, out, err = call("show", "brief#1", "--text", "--config", str(config))
    assert code == 0, err
    assert "peaceful gathering" in out and "Log in to Facebook" not in out
    (line,) = err.splitlines()
    assert line.startswith("showing the Internet Archive copy of 2020-10-30: our capture of ")
    assert "is a login wall" in line

    code, out, err = call("show", "brief#1", "--text", "--format", "json",
                          "--config", str(config))
    assert code == 0 and err == ""
    shown = json.loads(out)
    assert "peaceful gathering" in shown["text"]
    assert shown["chosen"] == line
    assert shown["capture"]["origin"] == "internet-archive"
    assert shown["capture"]["dated"] == "2020-10-30T10:15:00Z"

    # Our own capture is still there, listed by its date, and readable with --at.
    code, out, err = call("show", "brief#1", "--at", "2030-01-01", "--text",
                          "--config", str(config))
    assert code == 0 and "Log in to Facebook" in out
    assert err.startswith("showing our capture of ")


def test_show_at_chooses_among_our_captures_and_internet_archive_copies_by_their_date(
        tmp_path: Path, web: WebServer) -> None:
    dead = web.url("/removed")  # 404 now
    with WebServer() as archive_host:
        wayback = WaybackServer(archive_host)
        wayback.add(dead, "20201028093012", body=ARTICLE)
        config = wayback_project(tmp_path, [dead], wayback)
        assert call("run", "--config", str(config), "--rescue-capture")[0] == 0
    read_back(tmp_path)

    code, out, err = call("show", "brief#1", "--at", "2020-11-01", "--text",
                          "--config", str(config))
    assert code == 0, err
    assert "upheld the conviction" in out
    assert err.startswith("showing the Internet Archive copy of 2020-10-28: the copy nearest")
    code, out, _ = call("show", "brief#1", "--at", "2020-11-01", "--format", "json",
                        "--config", str(config))
    entries = json.loads(out)[dead]
    assert [e["origin"] for e in entries] == ["live", "internet-archive"]  # by own date
    assert [e["chosen"] is not None for e in entries] == [False, True]
    assert entries[1]["dated"] == "2020-10-28T09:30:12Z"
    assert entries[1]["captured_at"] > entries[1]["dated"]  # fetched by us much later
    # Without --at: ours is a 404 page, so the rescued copy; the listing marks it.
    code, out, _ = call("show", "brief#1", "--config", str(config))
    assert code == 0
    marked = [line for line in out.splitlines() if line.startswith(" *")]
    assert len(marked) == 1 and marked[0].startswith(" *2020-10-28T09:30:12Z")
    assert "our capture of " in out and "is a 404 page" in out


def test_show_lists_internet_archive_copies_found_but_not_stored(tmp_path: Path,
                                                                 web: WebServer) -> None:
    dead = web.url("/removed")
    with WebServer() as archive_host:
        wayback = WaybackServer(archive_host)
        wayback.add(dead, "20201028093012", body=ARTICLE)
        config = wayback_project(tmp_path, [dead], wayback)
        assert call("run", "--config", str(config))[0] == 0  # looked up, not stored
    read_back(tmp_path)
    code, out, _ = call("show", "brief#1", "--config", str(config))
    assert code == 0
    assert "2020-10-28T09:30:12Z" in out and "not stored" in out and "20201028093012" in out
    code, out, err = call("show", "brief#1", "--at", "2020-11-01", "--text",
                          "--config", str(config))
    assert code == 0
    assert "nearer copy, of 2020-10-28, not stored here" in err
    code, out, err = call("show", "brief#1", "--text", "--config", str(config))
    assert code == 0
    assert err.startswith("showing our capture of ") and "no copy shows the page" in err
    assert "a copy of 2020-10-28, not stored here" in err and "20201028093012" in err
    code, out, _ = call("show", "brief#1", "--format", "json", "--config", str(config))
    stored = [e["stored"] for e in json.loads(out)[dead]]
    assert stored == [True, False]


# ── show: references, several URLs, exit codes ──────────────────────────────

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 8 + b"\n%%EOF\n"


def two_url_project(root: Path, web: WebServer) -> tuple[Path, list[str]]:
    web.route("/one.pdf", Reply(200, PDF, {"Content-Type": "application/pdf"}))
    web.route("/two", Reply(200, ARTICLE, HTML))
    urls = [web.url("/one.pdf"), web.url("/two")]
    config = make_project(root, [])
    (root / "sources" / "brief.md").write_text(
        f"# A briefing\n\nTwo reports say so.[^1]\n\n[^1]: See <{urls[0]}> and <{urls[1]}>.\n",
        encoding="utf-8")
    return config, urls


def test_a_footnote_with_several_urls_needs_url_n_to_read_one(tmp_path: Path,
                                                             web: WebServer) -> None:
    config, urls = two_url_project(tmp_path, web)
    assert call("run", "--config", str(config))[0] == 0
    read_back(tmp_path)
    for mode in ("--raw", "--text", "--headers"):
        code, out, err = call("show", "brief#1", mode, "--config", str(config))
        assert code == 2 and out == ""
        assert "--url 1" in err and urls[0] in err and "--url 2" in err and urls[1] in err
    done = raw(config, "brief#1", "--url", "1")
    assert done.returncode == 0 and sha(done.stdout) == sha(PDF)
    code, out, _ = call("show", "brief#1", "--url", "2", "--text", "--config", str(config))
    assert code == 0 and "upheld the conviction" in out
    code, _, err = call("show", "brief#1", "--url", "3", "--raw", "--config", str(config))
    assert code == 2 and urls[1] in err
    code, out, _ = call("show", "brief#1", "--config", str(config))  # the listing: both
    assert code == 0 and urls[0] in out and urls[1] in out


@pytest.mark.parametrize("ref", ["brief#abc", "not a url", "unknown-source#3", "#3",
                                 "ftp://example.org/x", "brief#", "brief#1\n"])
def test_malformed_references_are_usage_errors(tmp_path: Path, web: WebServer,
                                               ref: str) -> None:
    config = make_project(tmp_path, [web.url("/a")])
    code, out, err = call("show", ref, "--config", str(config))
    assert code == 2 and out == "" and "Traceback" not in err
    assert err.startswith("error: ")
    code, out, err = call("show", ref, "--format", "json", "--config", str(config))
    assert code == 2 and err == ""
    error = json.loads(out)
    assert error["exit"] == 2 and ref.split("#")[0] in error["error"]
    assert not (tmp_path / "archive").exists()


def test_show_never_creates_the_archive(tmp_path: Path, web: WebServer) -> None:
    config = make_project(tmp_path, [web.url("/a")])
    code, _, err = call("show", web.url("/a"), "--config", str(config))
    assert code == 1 and "not in the archive" in err
    code, _, err = call("show", "brief#1", "--text", "--config", str(config))
    assert code == 1
    code, out, _ = call("show", "brief#1", "--format", "json", "--config", str(config))
    assert code == 1 and json.loads(out)["exit"] == 1
    code, _, _ = call("show", "brief#7", "--config", str(config))
    assert code == 2
    assert not (tmp_path / "archive").exists()
    # An archive folder without a catalog: nothing created in it either.
    (tmp_path / "archive").mkdir()
    assert call("show", "brief#1", "--config", str(config))[0] == 1
    assert list((tmp_path / "archive").iterdir()) == []


def test_a_revisit_whose_original_the_catalog_lost_is_read_through_the_index(
        tmp_path: Path, web: WebServer) -> None:
    import sqlite3

    web.route("/a", Reply(200, ARTICLE, HTML))
    web.route("/b", Reply(200, ARTICLE, HTML))
    urls = [web.url("/a"), web.url("/b")]
    config = make_project(tmp_path, urls)
    assert call("run", "--config", str(config))[0] == 0
    read_back(tmp_path)
    links = links_of(tmp_path)
    kinds = {url: record_at(tmp_path, links[url]["capture"])[0].rec_type for url in urls}
    original = next(url for url in urls if kinds[url] == "response")
    revisit = next(url for url in urls if kinds[url] == "revisit")
    # The catalog loses the original's row (as a crash between WARC and catalog would).
    with sqlite3.connect(tmp_path / "archive" / "catalog.sqlite3") as db:
        assert db.execute("DELETE FROM captures WHERE url = ?", (original,)).rowcount == 1
    done = raw(config, revisit)
    assert done.returncode == 0, done.stderr
    assert sha(done.stdout) == sha(ARTICLE)
    code, out, _ = call("show", revisit, "--format", "json", "--config", str(config))
    assert code == 0
    (entry,) = json.loads(out)[revisit]
    assert entry["payload"] == links[revisit]["capture"]["payload"]


def test_a_url_copied_from_the_address_bar_finds_the_cited_one(tmp_path: Path,
                                                                web: WebServer) -> None:
    """A reader pastes the URL without the cited ``#fragment``, or with another one, or with
    the scheme and host in capitals: it is the same page, and ``show`` finds its capture."""
    web.route("/doc", Reply(200, ARTICLE, HTML))
    cited = web.url("/doc?doc_id=31577399#pos=1770;-36")
    config = make_project(tmp_path, [cited])
    assert call("run", "--config", str(config))[0] == 0
    for asked in (cited, web.url("/doc?doc_id=31577399"), web.url("/doc?doc_id=31577399#top"),
                  web.url("/doc?doc_id=31577399").replace("http://127.0.0.1",
                                                          "HTTP://127.0.0.1")):
        code, out, err = call("show", asked, "--text", "--config", str(config))
        assert code == 0, (asked, err)
        assert "Lawyers said" in out
    # Another page of the same site is not taken for it, and the hint fits an archive that
    # exists.
    code, _, err = call("show", web.url("/doc?doc_id=1"), "--config", str(config))
    assert code == 1 and "run 'archiver run' first" not in err and "SOURCE_ID#N" in err


def test_show_raw_streams_a_decompression_bomb_in_bounded_memory(tmp_path: Path,
                                                                 web: WebServer) -> None:
    """A 256 MiB body sent gzip-compressed (about 250 KB on the wire): ``show --raw`` writes
    all of it, chunk by chunk, and ``--text`` reads a capped part (64 MiB); neither holds it
    whole (they took over 1 GB for a 1 GiB bomb)."""
    import gzip
    import re

    size = 256 * 1024 * 1024
    bomb = gzip.compress(b"\0" * size, compresslevel=9)
    web.route("/bomb", Reply(200, bomb, {"Content-Type": "application/octet-stream",
                                        "Content-Encoding": "gzip"}))
    config = make_project(tmp_path, [web.url("/bomb")])
    assert call("run", "--config", str(config))[0] == 0
    # The child reports its own peak memory (VmHWM, KiB: its own address space since exec;
    # ru_maxrss would count this test's memory, inherited across fork) after the command.
    measured = ("import re, sys\nfrom archiver.cli import main\ncode = main(sys.argv[1:])\n"
                "status = open('/proc/self/status').read()\n"
                "sys.stderr.write('maxrss=%s\\n' % re.search(r'VmHWM:\\s+(\\d+)', status)"
                "[1])\nsys.exit(code)\n")
    out_file = tmp_path / "out.bin"
    for mode, limit_mib in (("--raw", 150), ("--text", 300)):
        with out_file.open("wb") as out:
            done = subprocess.run([sys.executable, "-c", measured, "show", "brief#1", mode,
                                   "--config", str(config)], stdout=out,
                                  stderr=subprocess.PIPE, timeout=300, text=False)
        assert done.returncode == 0, done.stderr
        if mode == "--raw":
            assert out_file.stat().st_size == size
        peak = re.search(rb"maxrss=(\d+)", done.stderr)
        assert peak and int(peak.group(1)) < limit_mib * 1024, (mode, done.stderr[-200:])


def test_a_cited_url_not_captured_yet_says_so(tmp_path: Path) -> None:
    """A footnote whose URL no run has reached: the hint says the next run tries again,
    not that no source cites it."""
    import socket

    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{closed.getsockname()[1]}/page"
    closed.close()  # nothing listens: the run gets no answer, so no capture
    config = make_project(tmp_path, [url])
    assert call("run", "--config", str(config))[0] == 0
    code, _, err = call("show", "brief#1", "--config", str(config))
    assert code == 1 and "not captured yet" in err and "cites it" not in err
