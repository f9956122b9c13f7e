"""``archiver run``/``check``/``report``/``show`` end to end, against real loopback servers.

Each test builds a small project (a briefing whose footnotes cite pages on a loopback server,
and a sources.toml allowing private networks), runs the CLI in-process, then reads back what
it wrote: the WARC files (``warcio check`` and digest checks), the catalog, the reports.
"""

from __future__ import annotations

import io
import json
import socket
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
                 extra: str = "", fetch: str = "") -> Path:
    """A briefing citing ``urls`` (one footnote each) and its sources.toml; ``fetch`` adds
    lines to its ``[fetch]`` table."""
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
        "host_interval = 0\ndeadline = 20\nbackoff_base = 0.01\nbackoff_max = 0.05\n"
        + fetch + "\n"
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


def offline_urls(count: int, hosts: int) -> list[str]:
    # .invalid never resolves (RFC 6761): this is what an offline laptop sees for every URL.
    return [f"https://host{i % hosts}.example.invalid/page/{i}" for i in range(count)]


def test_no_network_is_said_once_fast_and_claims_no_fetch(tmp_path: Path) -> None:
    config = make_project(tmp_path, offline_urls(99, 33))
    code, out, err = call("run", "--config", str(config))
    assert code == 0
    # One line, said once: no line per URL, no second "No network" as a note.
    assert out.splitlines() == [out.splitlines()[0]]
    assert out.startswith("No network")
    assert (out + err).count("No network") == 1
    assert "dns_error" not in err and err == "", err
    report = json.loads((tmp_path / "reports" / "brief" / "report.json").read_text())
    assert all(link["verdict"] is None for link in report["links"])
    assert sum("No network" in note for note in report["notes"]) == 1

    code, out, _ = call("run", "--config", str(config), "--format", "json")
    data = json.loads(out)
    assert code == 0 and data["offline"] is True
    assert data["fetched"] == 0 and data["reached"] == 0
    # It stopped after the first hosts (bounded work): the URLs not started were not
    # fetched, and each one says why.
    assert 0 < len(data["not_fetched"]) < 99, data
    assert {item["reason"] for item in data["not_fetched"]} == {"not fetched: no network"}


def test_dead_domains_cited_first_do_not_look_like_no_network(tmp_path: Path,
                                                              site: WebServer) -> None:
    # The first five hosts are dead; the next three answer, slowly (after the dead ones
    # failed): the run must go on (and five of eight hosts down is not an outage either).
    slow = Reply(200, ARTICLE, {"Content-Type": "text/html"}, delay=2.5)
    with WebServer() as second, WebServer() as third:
        site.route("/article", slow)
        site.route("/gone", Reply(410, b"gone", {"Content-Type": "text/plain"}, delay=2.5))
        for server in (second, third):
            server.route("/article", slow)
        live = [site.url("/article"), site.url("/gone"), second.url("/article"),
                third.url("/article")]
        config = make_project(tmp_path, [*offline_urls(5, 5), *live])
        code, out, _ = call("run", "--config", str(config), "--format", "json")
    data = json.loads(out)
    assert code == 0 and data["offline"] is False and data["outage"] is False
    assert data["not_fetched"] == []
    assert data["fetched"] == 9 and data["reached"] == 4
    links = {link["url"]: link for link in
             json.loads((tmp_path / "reports" / "brief" / "report.json").read_text())["links"]}
    assert [links[u]["verdict"] for u in live] == ["ok", "gone", "ok", "ok"]
    assert {links[u]["verdict"] for u in offline_urls(5, 5)} == {"dns_error"}


def test_offline_refusals_are_still_reported_as_refused(tmp_path: Path) -> None:
    # A literal private address is refused without the network: offline or not, that is
    # the verdict, not "not checked yet".
    refused = ["http://10.0.0.1/internal", "http://127.0.0.1:9/admin"]
    config = make_project(tmp_path, [*offline_urls(12, 6), *refused])
    config.write_text(config.read_text().replace("allow_private_networks = true",
                                                 "allow_private_networks = false"))
    code, out, _ = call("run", "--config", str(config), "--format", "json")
    data = json.loads(out)
    assert code == 0 and data["offline"] is True
    report = json.loads((tmp_path / "reports" / "brief" / "report.json").read_text())
    links = {link["url"]: link for link in report["links"]}
    for url in refused:
        assert links[url]["verdict"] == "private_address", links[url]
        assert "refused" in links[url]["reason"]
    assert all(links[u]["verdict"] is None for u in links if u not in refused)
    assert data["refused"] == 2 and data["fetched"] == 0
    # The summary line counts them apart from the links that keep their state.
    code, out, _ = call("run", "--config", str(config))
    assert out.splitlines()[0] == ("No network: nothing could be reached; 12 link(s) keep the "
                                   "state they had; 2 refused without using the network.")


def test_report_keeps_the_run_notes(tmp_path: Path) -> None:
    config = make_project(tmp_path, offline_urls(10, 5))
    assert call("run", "--config", str(config))[0] == 0
    path = tmp_path / "reports" / "brief" / "report.json"
    notes = json.loads(path.read_text())["notes"]
    assert any(note.startswith("No network") for note in notes)
    path.unlink()
    code, _, _ = call("report", "--config", str(config))
    assert code == 0
    rebuilt = json.loads(path.read_text())
    assert rebuilt["notes"] == notes
    assert rebuilt["run"]["offline"] is True
    html = (tmp_path / "reports" / "brief" / "report.html").read_text()
    assert "No network" in html


def test_few_hosts_failing_are_real_results_and_the_summary_says_why(tmp_path: Path) -> None:
    # Four hosts cannot tell a network fault from four dead domains: record the failures
    # (so dead domains can die), and say the outage test did not apply.
    config = make_project(tmp_path, offline_urls(8, 4))
    code, out, _ = call("run", "--config", str(config))
    assert code == 0
    first = out.splitlines()[0]
    assert "8 dns_error" in first and "outage test not applied (4 host(s), needs 5)" in first
    report = json.loads((tmp_path / "reports" / "brief" / "report.json").read_text())
    assert {link["verdict"] for link in report["links"]} == {"dns_error"}
    assert any(note.startswith("Outage test not applied") for note in report["notes"])
    (tmp_path / "other").mkdir()
    config = make_project(tmp_path / "other", offline_urls(8, 4))
    code, out, _ = call("check", "--config", str(config), "--format", "json")
    data = json.loads(out)
    assert data["outage"] is False and data["outage_test"] == {
        "applied": False, "hosts": 4, "min_hosts": 5}
    assert "outage test not applied" in data["summary"]
    # Failing again is no news about the network: nothing to say about the outage test.
    code, out, _ = call("check", "--config", str(config), "--format", "json")
    assert "outage test" not in json.loads(out)["summary"]


def test_check_quiet_prints_the_summary_and_each_problem_once(tmp_path: Path,
                                                              site: WebServer) -> None:
    urls = [site.url("/article"), site.url("/missing"), site.url("/gone")]
    config = make_project(tmp_path, urls)
    code, out, err = call("check", "--config", str(config), "--quiet")
    assert code == 1 and err == ""
    lines = out.splitlines()
    assert lines[0].startswith("archiver check: 2 newly failing")
    for url in urls[1:]:
        assert sum(url in line for line in lines) == 1, out
    assert urls[0] not in out and "report.html" not in out
    assert len(lines) <= 4, out
    # Without --quiet each failing link is still listed once (with its reason).
    code, out, _ = call("check", "--config", str(config))
    for url in urls[1:]:
        assert sum(url in line for line in out.splitlines()) == 1, out


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


def test_a_url_two_sources_cite_is_counted_once_in_the_run_summary(
        tmp_path: Path, site: WebServer) -> None:
    """The summary line and ``--format json`` count distinct cited URLs: a URL cited by two
    sources is one link with one verdict (summed per source it was two verdicts beside a
    link count of one)."""
    config = make_project(tmp_path, [site.url("/article")])
    (tmp_path / "sources" / "second.md").write_text(
        "# Second\n\nA claim.[^1] Another.[^2]\n\n"
        f"[^1]: See <{site.url('/article')}>.\n[^2]: See <{site.url('/gone')}>.\n",
        encoding="utf-8")
    config.write_text(config.read_text().replace(
        "[fetch]", '[[sources]]\nid = "second"\npath = "sources/second.md"\n\n[fetch]'))
    code, out, err = call("run", "--config", str(config))
    assert code == 0, err
    assert "2 cited URL(s) in 2 source(s): 1 ok, 1 gone" in out, out
    code, out, err = call("run", "--config", str(config), "--format", "json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["verdicts"] == {"ok": 1, "gone": 1}, summary
    # Each source's own report still counts every link it cites.
    second = json.loads((tmp_path / "reports" / "second" / "report.json").read_text())
    assert len(second["links"]) == 2


def test_quiet_run_still_says_what_needs_attention_in_its_notes(tmp_path: Path,
                                                               site: WebServer) -> None:
    """With the Internet Archive out of reach, the note that lookups could not be made needs
    attention: ``--quiet`` keeps it (once), and drops only the report paths."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now: every lookup is refused
    urls = [site.url("/missing"), site.url("/gone")]
    config = make_project(tmp_path, urls, rescue=True, extra=(
        f'cdx_api = "http://127.0.0.1:{port}/cdx"\n'
        f'availability_api = "http://127.0.0.1:{port}/wayback/available"\n'))
    code, out, err = call("run", "--config", str(config), "--quiet")
    assert code == 0, err
    notes = [line for line in out.splitlines() if "note:" in line]
    assert len(notes) == 1 and "could not be made" in notes[0], out
    assert "report.html" not in out
