"""The WACZ page list: each cited URL once, under the cited URL, with its title and every
footnote citing it; the count the export prints is the count in the list."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

from warcio.archiveiterator import ArchiveIterator

from tests.test_pagetext_pdf import make_pdf
from tests.test_run import ARTICLE, call, make_project
from tests.webserver import Reply, WebServer, redirect


def run_and_export(tmp_path: Path, cited: list[str]) -> tuple[Path, str, str]:
    """Run a project citing ``cited`` and export its WACZ: the file, export's stdout, stderr."""
    config = make_project(tmp_path, cited)
    code, out, err = call("run", "--config", str(config))
    assert code == 0, out + err
    target = tmp_path / "out.wacz"
    code, out, err = call("export", "--wacz", "--config", str(config), "-o", str(target))
    assert code == 0, out + err
    return target, out, err


LOGIN = b"<html><head><title>Sign in</title></head><body><form>password</form></body></html>"


def test_each_cited_url_is_listed_once_under_its_own_address(tmp_path: Path,
                                                             web: WebServer) -> None:
    web.route("/article", Reply(200, ARTICLE, {"Content-Type": "text/html"}))
    web.route("/old-article", redirect("/article", 301))
    web.route("/members", redirect("/login", 302))
    web.route("/login", Reply(200, LOGIN, {"Content-Type": "text/html"}))
    pdf = make_pdf([["The decree of 2020."]], title="Decree No. 12 on public order")
    web.route("/decree.pdf", Reply(200, pdf, {"Content-Type": "application/pdf"}))
    cited = [web.url("/article"), web.url("/old-article"), web.url("/members"),
             web.url("/decree.pdf"), web.url("/article")]  # footnote 5 cites 1's URL again
    target, out, _ = run_and_export(tmp_path, cited)
    with zipfile.ZipFile(target) as wacz:
        lines = wacz.read("pages/pages.jsonl").decode().splitlines()
    pages = [json.loads(line) for line in lines[1:]]
    by_url = {p["url"]: p for p in pages}
    assert len(pages) == len(by_url) == 4
    assert f"({len(pages)} page(s)" in out
    assert set(by_url) == set(cited)  # the cited addresses, not where they led
    assert by_url[web.url("/article")]["footnotes"] == [1, 5]
    assert by_url[web.url("/old-article")]["footnotes"] == [2]
    assert by_url[web.url("/members")]["footnotes"] == [3]
    assert by_url[web.url("/decree.pdf")]["title"] == "Decree No. 12 on public order"
    assert by_url[web.url("/article")]["title"] == "Court upholds conviction"
    for page in pages:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", page["ts"])


def test_a_slow_redirect_is_listed_at_the_date_of_its_first_record(tmp_path: Path,
                                                                   web: WebServer) -> None:
    """The record under a redirected cited URL is its first hop, written before the final
    answer; with a slow target the two dates differ, and the page must carry the first one
    (the WACZ tool drops a page whose address and date match no record)."""
    web.route("/old", redirect("/slow", 301))
    web.route("/slow", Reply(200, ARTICLE, {"Content-Type": "text/html"}, delay=2.2))
    cited = [web.url("/old")]
    target, out, err = run_and_export(tmp_path, cited)
    assert "(1 page(s)" in out, out + err
    with zipfile.ZipFile(target) as wacz:
        pages = [json.loads(line) for line in
                 wacz.read("pages/pages.jsonl").decode().splitlines()[1:]]
        first_hop = [record for name in wacz.namelist() if name.endswith(".warc.gz")
                     for record in ArchiveIterator(wacz.open(name))
                     if record.rec_type == "response"
                     and record.rec_headers.get_header("WARC-Target-URI") == cited[0]]
    assert [p["url"] for p in pages] == cited
    assert len(first_hop) == 1
    assert pages[0]["ts"] == first_hop[0].rec_headers.get_header("WARC-Date")
