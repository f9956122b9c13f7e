"""``archiver run``/``check``/``report``/``show`` end to end, against real loopback servers.

Each test builds a small project (a briefing whose footnotes cite pages on a loopback server,
and a sources.toml allowing private networks), runs the CLI in-process, then reads back what
it wrote: the WARC files (``warcio check`` and digest checks), the catalog, the reports.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from warcio.archiveiterator import ArchiveIterator

from archiver.cli import main
from tests.webserver import Reply, WebServer, redirect

ARTICLE = (b"<html><head><title>Court upholds conviction</title></head><body><main>"
           b"<h1>Court upholds conviction</h1><p>The appeal court upheld the conviction of the "
           b"activist on 15 September, finding that the posts played a negative role.</p>"
           b"<p>Lawyers said they would appeal again.</p></main></body></html>")


def call(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def make_project(root: Path, urls: list[str], *, rescue: bool = False,
                 extra: str = "") -> Path:
    """A briefing citing ``urls`` (one footnote each) and its sources.toml."""
    (root / "sources").mkdir(exist_ok=True)
    body = " ".join(f"Claim number {i} is stated here.[^{i}]" for i in range(1, len(urls) + 1))
    notes = "\n".join(f"[^{i}]: See <{url}>." for i, url in enumerate(urls, start=1))
    (root / "sources" / "brief.md").write_text(f"# A briefing\n\n{body}\n\n{notes}\n",
                                              encoding="utf-8")
    config = root / "sources.toml"
    config.write_text(
        '[[sources]]\nid = "brief"\npath = "sources/brief.md"\ntitle = "A briefing"\n'
        "published = 2020-11-01\n\n"
        "[fetch]\ntimeout = 5\nretries = 1\nallow_private_networks = true\n"
        "host_interval = 0\ndeadline = 20\nbackoff_base = 0.01\nbackoff_max = 0.05\n\n"
        f"[rescue]\nenabled = {'true' if rescue else 'false'}\n" + extra,
        encoding="utf-8",
    )
    return config


def warc_files(root: Path) -> list[Path]:
    return sorted((root / "archive").glob("*.warc.gz"))


def read_back(root: Path) -> list[tuple[str, str | None]]:
    """Every record of every WARC (type, target URI), with digests verified; plus
    ``warcio check`` on each file."""
    records = []
    for path in warc_files(root):
        with path.open("rb") as fh:
            for record in ArchiveIterator(fh, check_digests=True):
                uri = record.rec_headers.get_header("WARC-Target-URI")
                records.append((record.rec_type, uri))
                record.content_stream().read()
        warcio = str(Path(sys.executable).parent / "warcio")
        done = subprocess.run([warcio, "check", "-v", str(path)],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
    assert not list((root / "archive").glob("*.open")), "a WARC was left open"
    return records


@pytest.fixture
def site(web: WebServer) -> WebServer:
    web.route("/article", Reply(200, ARTICLE, {"Content-Type": "text/html; charset=utf-8"}))
    web.route("/old-article", redirect("/article", 301))
    web.route("/gone", Reply(410, b"gone", {"Content-Type": "text/plain"}))
    return web


def test_run_archives_judges_and_reports(tmp_path: Path, site: WebServer) -> None:
    urls = [site.url("/article"), site.url("/old-article"), site.url("/missing"),
            site.url("/gone")]
    config = make_project(tmp_path, urls)
    code, out, err = call("run", "--config", str(config))
    assert code == 0, out + err
    first_line = out.splitlines()[0]
    assert "4 cited URL(s)" in first_line and "fetched 4" in first_line

    report = json.loads((tmp_path / "reports" / "brief" / "report.json").read_text())
    links = {link["url"]: link for link in report["links"]}
    assert links[urls[0]]["verdict"] == "ok"
    assert links[urls[1]]["verdict"] == "redirected"
    assert links[urls[1]]["final_url"] == urls[0]
    assert links[urls[2]]["verdict"] == "not_found"
    assert links[urls[3]]["verdict"] == "gone"
    assert [f["number"] for f in report["footnotes"]] == [1, 2, 3, 4]
    assert report["source"]["path"] == "sources/brief.md"
    for name in ("report.html", "report.md", "links.csv"):
        assert (tmp_path / "reports" / "brief" / name).stat().st_size > 0

    # The capture reference points at the response record of the page.
    capture = links[urls[0]]["capture"]
    with (tmp_path / capture["warc"]).open("rb") as fh:
        fh.seek(capture["offset"])
        record = next(iter(ArchiveIterator(fh)))
        assert record.rec_type == "response"
        assert record.rec_headers.get_header("WARC-Record-ID") == capture["record_id"]
        assert record.content_stream().read() == ARTICLE

    records = read_back(tmp_path)
    types = [t for t, _ in records]
    assert types.count("warcinfo") == len(warc_files(tmp_path))
    # every hop archived: the 301 and the page it leads to
    responses = [uri for t, uri in records if t in ("response", "revisit")]
    assert urls[1] in responses and urls[0] in responses
    assert "metadata" in types and "request" in types


def closed_port_url() -> str:
    """A loopback URL on which nothing listens (connection refused)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/nothing"


def test_rerun_resumes_without_refetching(tmp_path: Path, site: WebServer) -> None:
    refused = closed_port_url()
    config = make_project(tmp_path, [site.url("/article"), site.url("/gone"), refused])
    assert call("run", "--config", str(config))[0] == 0
    hits = dict(site.hits)
    code, out, _ = call("run", "--config", str(config))
    assert code == 0
    # Captured pages (any HTTP answer, the 410 included) are not fetched again; the URL that
    # got no answer at all is tried again.
    assert site.hits == hits
    assert "fetched 1, already archived 2" in out.splitlines()[0]
    code, out, _ = call("run", "--config", str(config), "--refresh")
    assert code == 0 and site.hits["/article"] == hits["/article"] + 1
    report = json.loads((tmp_path / "reports" / "brief" / "report.json").read_text())
    assert {link["url"]: link["verdict"] for link in report["links"]}[refused] == \
        "connection_error"
    read_back(tmp_path)


def test_check_twice_on_unchanged_web_reports_no_changes(tmp_path: Path,
                                                         site: WebServer) -> None:
    config = make_project(tmp_path, [site.url("/article"), site.url("/old-article")])
    assert call("run", "--config", str(config))[0] == 0
    code, out, _ = call("check", "--config", str(config))
    assert code == 0, out
    code, out, _ = call("check", "--config", str(config), "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert data["changes"] == []
    assert "no changes" in data["summary"]
    records = read_back(tmp_path)
    # the unchanged article was written once in full, then as revisits
    article = [t for t, uri in records if uri == site.url("/article") and t in
               ("response", "revisit")]
    assert article.count("response") == 1 and article.count("revisit") >= 2


def test_check_reports_newly_failing_and_recovered(tmp_path: Path, site: WebServer) -> None:
    config = make_project(tmp_path, [site.url("/flaky")])
    site.route("/flaky", Reply(200, ARTICLE, {"Content-Type": "text/html"}))
    assert call("check", "--config", str(config))[0] == 0
    site.route("/flaky", Reply(404, b"<h1>Not Found</h1>", {"Content-Type": "text/html"}))
    code, out, _ = call("check", "--config", str(config))
    assert code == 1, out
    assert "1 newly failing" in out.splitlines()[0]
    assert call("check", "--config", str(config), "--fail-on", "none")[0] == 0
    site.route("/flaky", Reply(200, ARTICLE, {"Content-Type": "text/html"}))
    code, out, _ = call("check", "--config", str(config))
    assert code == 0
    assert "1 recovered" in out.splitlines()[0]
    read_back(tmp_path)


def test_no_network_is_said_plainly_and_changes_nothing(tmp_path: Path) -> None:
    # .invalid never resolves (RFC 6761): this is what an offline laptop sees for every URL.
    urls = [f"https://host{i}.example.invalid/page" for i in range(4)]
    config = make_project(tmp_path, urls)
    code, out, _ = call("run", "--config", str(config))
    assert code == 0
    assert out.splitlines()[0].startswith("No network")
    report = json.loads((tmp_path / "reports" / "brief" / "report.json").read_text())
    assert all(link["verdict"] is None for link in report["links"])
    assert any("No network" in note for note in report.get("notes", []))


def test_show_lists_and_returns_exact_bytes(tmp_path: Path, site: WebServer) -> None:
    pdf = b"%PDF-1.4\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"
    site.route("/report.pdf", Reply(200, pdf, {"Content-Type": "application/pdf"}))
    config = make_project(tmp_path, [site.url("/article"), site.url("/report.pdf")])
    assert call("run", "--config", str(config))[0] == 0

    code, out, _ = call("show", "brief#1", "--config", str(config))
    assert code == 0 and site.url("/article") in out and "200" in out
    code, out, _ = call("show", "brief#1", "--text", "--config", str(config))
    assert code == 0 and "upheld the conviction" in out
    code, out, _ = call("show", site.url("/article"), "--headers", "--config", str(config))
    assert code == 0 and "text/html" in out

    done = subprocess.run([sys.executable, "-m", "archiver", "show", "brief#2", "--raw",
                           "--config", str(config)], capture_output=True, timeout=60)
    assert done.returncode == 0
    import hashlib

    assert hashlib.sha256(done.stdout).hexdigest() == hashlib.sha256(pdf).hexdigest()

    code, _, err = call("show", "https://never.example/x", "--config", str(config))
    assert code == 1 and "not in the archive" in err


def test_report_rebuilds_without_network(tmp_path: Path, site: WebServer) -> None:
    config = make_project(tmp_path, [site.url("/article")])
    assert call("run", "--config", str(config))[0] == 0
    hits = sum(site.hits.values())
    (tmp_path / "reports" / "brief" / "report.json").unlink()
    code, out, _ = call("report", "--config", str(config))
    assert code == 0 and "rebuilt 1 report" in out
    assert sum(site.hits.values()) == hits
    report = json.loads((tmp_path / "reports" / "brief" / "report.json").read_text())
    assert report["links"][0]["verdict"] == "ok"


def test_unreadable_source_is_named_and_others_still_run(tmp_path: Path,
                                                         site: WebServer) -> None:
    config = make_project(tmp_path, [site.url("/article")])
    (tmp_path / "sources" / "broken.bin").write_bytes(b"\x00\x01\x02 not a document")
    config.write_text(config.read_text().replace(
        "[fetch]", '[[sources]]\nid = "broken"\npath = "sources/broken.bin"\n\n[fetch]'))
    code, _, err = call("run", "--config", str(config))
    assert code == 2
    assert "broken.bin" in err and "Traceback" not in err
    assert (tmp_path / "reports" / "brief" / "report.json").exists()
