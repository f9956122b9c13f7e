"""The pipeline over time and under stress: soft-404 probes, links declared dead, the archive
lock, kill -9 and resume, Internet Archive rescue, WACZ export, pywb replay, the Python API.

Real loopback servers throughout; every WARC written is read back (``read_back``).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

from archiver import open_archive
from archiver.catalog import Catalog
from tests.test_run import ARTICLE, call, make_project, read_back
from tests.wayback_server import WaybackServer
from tests.webserver import Reply, WebServer

HTML = {"Content-Type": "text/html; charset=utf-8"}


def test_soft_404_site_is_caught_by_the_probe(tmp_path: Path, web: WebServer) -> None:
    home = (b"<html><head><title>Daily News</title></head><body><main><h1>Daily News</h1>"
            b"<p>Top stories of the day, updated every hour.</p></main></body></html>")
    web.fallback = lambda req: Reply(200, home, HTML)  # every path answers 200, same page
    web.route("/real/story.html", Reply(200, ARTICLE, HTML))
    config = make_project(tmp_path, [web.url("/news/deleted-story.html"),
                                     web.url("/real/story.html")])
    assert call("run", "--config", str(config))[0] == 0
    report = json.loads((tmp_path / "reports" / "brief" / "report.json").read_text())
    verdicts = {link["url"]: (link["verdict"], link["reason"]) for link in report["links"]}
    verdict, reason = verdicts[web.url("/news/deleted-story.html")]
    assert verdict == "soft_404"
    assert "random" in reason or "same page" in reason
    assert verdicts[web.url("/real/story.html")][0] == "ok"
    probes = [path for _, path, _ in web.requests if "probe" in path]
    assert len(probes) == 2  # one per host and directory, /news/ and /real/
    read_back(tmp_path)


def test_a_link_is_dead_only_after_the_configured_failures(tmp_path: Path,
                                                           web: WebServer) -> None:
    web.route("/page", Reply(404, b"<h1>Not Found</h1>", HTML))
    config = make_project(tmp_path, [web.url("/page")],
                          extra="\n[check]\ndead_after = 3\ndead_after_days = 0\n")

    def state() -> tuple[str, str | None]:
        data = json.loads((tmp_path / "reports" / "brief" / "report.json").read_text())
        return data["links"][0]["state"], data["links"][0]["failing_since"]

    code, out, _ = call("check", "--config", str(config))
    assert code == 1 and "1 newly failing" in out.splitlines()[0]
    assert state()[0] == "failing"
    code, out, _ = call("check", "--config", str(config))
    assert code == 0  # still failing: nothing new at the default --fail-on new
    assert state()[0] == "failing"
    code, out, _ = call("check", "--config", str(config), "--fail-on", "none")
    assert code == 0 and "1 newly dead" in out.splitlines()[0]
    assert state()[0] == "dead" and state()[1] is not None
    code, out, _ = call("check", "--config", str(config), "--fail-on", "any")
    assert code == 1 and "no changes" in out.splitlines()[0]
    read_back(tmp_path)


def test_outage_changes_no_link_state(tmp_path: Path, web: WebServer) -> None:
    """Five of six hosts failing at network level at once is an outage, not link rot (five:
    the fewest distinct hosts the outage test needs, ``[check] outage_min_hosts``)."""
    others = [WebServer() for _ in range(5)]
    try:
        for server in [web, *others]:
            server.route("/a", Reply(200, ARTICLE, HTML))
        urls = [server.url("/a") for server in [web, *others]]
        config = make_project(tmp_path, urls, extra="\n[check]\noutage_ratio = 0.5\n")
        assert call("check", "--config", str(config))[0] == 0
    finally:
        for server in others:
            server.close()
    code, out, _ = call("check", "--config", str(config))
    assert code == 0
    assert "outage" in out.splitlines()[0]
    report = json.loads((tmp_path / "reports" / "brief" / "report.json").read_text())
    assert [link["state"] for link in report["links"]] == ["ok"] * 6
    assert [link["verdict"] for link in report["links"]] == ["ok"] * 6


def test_offline_check_keeps_states(tmp_path: Path, web: WebServer) -> None:
    urls = [f"http://host{i}.example.invalid/a" for i in range(5)]
    config = make_project(tmp_path, urls)
    code, out, _ = call("check", "--config", str(config))
    assert code == 0
    assert "no network" in out.splitlines()[0]
    with Catalog.open(tmp_path / "archive") as catalog:
        for url in urls:
            assert catalog.last_result(url) is None  # outage results do not count
            assert catalog.results(url)[0].outage


def test_second_run_on_a_locked_archive_refuses_clearly(tmp_path: Path,
                                                        web: WebServer) -> None:
    web.route("/a", Reply(200, ARTICLE, HTML))
    config = make_project(tmp_path, [web.url("/a")])
    with Catalog.open(tmp_path / "archive") as catalog, catalog.lock():
        code, _, err = call("run", "--config", str(config))
    assert code == 3
    assert "in use by another run" in err and "Traceback" not in err
    assert call("run", "--config", str(config))[0] == 0


def test_kill_9_mid_run_then_clean_resume(tmp_path: Path, web: WebServer) -> None:
    for i in range(24):
        web.route(f"/slow/{i}", Reply(200, ARTICLE + str(i).encode(), HTML, delay=0.4))
    urls = [web.url(f"/slow/{i}") for i in range(24)]
    config = make_project(tmp_path, urls)
    cmd = [sys.executable, "-m", "archiver", "run", "--config", str(config), "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 30
    captured: set[str] = set()
    while time.monotonic() < deadline and len(captured) < 6:
        time.sleep(0.2)
        try:
            with Catalog.open(tmp_path / "archive") as catalog:
                captured = set(catalog.captured_urls())
        except Exception:  # the catalog may not exist yet
            continue
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert 6 <= len(captured) < 24, "the run was not killed mid-way"
    hits_before = dict(web.hits)

    code, out, err = call("run", "--config", str(config))
    assert code == 0, out + err
    # nothing captured before the kill is fetched again
    for url in captured:
        path = url.split(str(web.port), 1)[1]
        assert web.hits[path] == hits_before[path]
    report = json.loads((tmp_path / "reports" / "brief" / "report.json").read_text())
    assert [link["verdict"] for link in report["links"]] == ["ok"] * 24, out
    records = read_back(tmp_path)  # the file left .open by the kill was repaired
    responses = [uri for kind, uri in records if kind == "response"]
    assert set(urls) <= set(responses)


def large_page(i: int, size: int) -> bytes:
    """An HTML page of about ``size`` bytes, different for every ``i`` (no revisits)."""
    words = random.Random(i).randbytes(size // 2).hex()
    paragraphs = "".join(f"<p>{words[k:k + 400]}</p>" for k in range(0, len(words), 400))
    return (f"<html><head><title>Report {i}</title></head><body><main><h1>Report {i}</h1>"
            f"{paragraphs}</main></body></html>").encode()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_kill_9_at_random_moments_over_large_pages_always_resumes(tmp_path: Path,
                                                                  web: WebServer) -> None:
    """Runs over pages of ~180 KB (and a few over 1 MB) killed with SIGKILL at seeded random
    moments, then resumed: the archive never locks up, every link is judged once, no URL is
    captured twice, every WARC is valid and every catalog capture reads back its page.
    Before the fix, the first resume failed with "cannot recover WARC file: Invalid
    argument" (exit 3): records over 64 KiB threw the recovery's member count off."""
    from archiver.warc import read_record, scan_members

    # Enough pages that a run is still going at the later kills: each resume has less left,
    # and a run that finishes before its moment is not killed.
    pages = {f"/big/{i}": large_page(i, 1_200_000 if i % 8 == 0 else 180_000)
             for i in range(96)}
    for path, body in pages.items():
        web.route(path, Reply(200, body, HTML, delay=0.03))
    urls = [web.url(path) for path in pages]
    # Small WARC files, so that kills also land around rotations.
    config = make_project(tmp_path, urls, extra="\n[archive]\nwarc_max_size = 4000000\n")
    cmd = [sys.executable, "-m", "archiver", "run", "--config", str(config), "--quiet"]
    rng = random.Random(20261130)
    archive = tmp_path / "archive"

    def written() -> int:
        return sum(f.stat().st_size for f in archive.glob("*.warc.gz*") if f.exists())

    started = time.monotonic()
    kills = left_open = 0
    while kills < 6 and time.monotonic() - started < 45:
        before = written() if archive.exists() else 0
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=True)
        # Interpreter start-up takes seconds on a busy machine: the random moment is
        # counted from the first WARC bytes this run writes.
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                if written() != before:
                    break
            time.sleep(0.02)
        try:
            proc.wait(timeout=rng.uniform(0.0, 1.0))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            kills += 1
            for leftover in archive.glob("*.warc.gz.open"):
                left_open += 1
                if kills % 2:
                    # A kill inside os.write is rare in a few seconds of running; leave what
                    # it would: the start of a record's member (the largest one, repeated).
                    scan = scan_members(leftover)
                    offset, length = max(scan.complete, key=lambda span: span[1])
                    with open(leftover, "r+b") as fh:
                        fh.seek(offset)
                        torn = fh.read(rng.randrange(1, length))
                        fh.seek(0, os.SEEK_END)
                        fh.write(torn)
            continue
        assert proc.stderr is not None
        assert proc.returncode == 0, proc.stderr.read().decode()
        break  # the run finished before the kill
    assert kills >= 3, "the runs were not killed mid-way"
    assert left_open >= 1, "no kill left a WARC file open to recover"

    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((tmp_path / "reports" / "brief" / "report.json").read_text())
    assert [link["verdict"] for link in report["links"]] == ["ok"] * len(urls)
    read_back(tmp_path)  # every file valid, none left open
    with Catalog.open(archive) as catalog:
        for url in urls:
            assert len(catalog.results(url)) == 1, url  # judged once
            (capture,) = catalog.captures(url)  # captured once
            assert capture.warc is not None and not capture.revisit
            record = read_record(tmp_path, capture.warc)
            assert record.payload == pages[url.split(str(web.port), 1)[1]]
    # What recovery moved aside held no complete record; nothing was damaged.
    for leftover in (archive / "quarantine").glob("*"):
        assert leftover.name.endswith(".open"), leftover
        assert scan_members(leftover).records == 0


def test_dead_link_rescued_from_the_internet_archive(tmp_path: Path, web: WebServer) -> None:
    dead = web.url("/removed-article")
    with WebServer() as archive_host:
        wayback = WaybackServer(archive_host)
        wayback.add(dead, "20201028093012", body=ARTICLE)
        wayback.add(dead, "20201105093012", body=b"<html>later</html>")
        settings = wayback.settings()
        extra = "".join(f'{key} = "{getattr(settings, key)}"\n'
                        for key in ("availability_api", "cdx_api", "replay_base"))
        config = make_project(tmp_path, [dead], rescue=True, extra=extra)
        code, out, err = call("run", "--config", str(config), "--rescue-capture")
        assert code == 0, out + err
        link = json.loads(
            (tmp_path / "reports" / "brief" / "report.json").read_text())["links"][0]
        assert link["verdict"] == "not_found"
        assert link["memento"]["datetime"].startswith("2020-10-28")  # before publication
        assert link["evidence"] == "ours"
        # a weekly check does not ask the archive again for a link already rescued
        asked = len(wayback.calls("cdx"))
        assert call("check", "--config", str(config))[0] in (0, 1)
        assert len(wayback.calls("cdx")) == asked
    records = read_back(tmp_path)
    assert any(kind == "metadata" and uri and "20201028093012id_" in uri
               for kind, uri in records)
    with open_archive(config) as archive:
        memento_url = link["memento"]["url"].replace("/20201028093012/", "/20201028093012id_/")
        (capture,) = archive.captures(memento_url)
        assert capture.payload() == ARTICLE
        # the cited URL's captures include the rescued copy, marked as such
        origins = {c.origin: c for c in archive.captures(dead)}
        assert set(origins) == {"live", "internet-archive"}
        assert origins["internet-archive"].memento_datetime.isoformat().startswith("2020-10-28")
        assert origins["live"].status == 404
    code, out, _ = call("show", "brief#1", "--config", str(config))
    assert code == 0 and "Internet Archive copy of 2020-10-28T09:30:12Z" in out
    code, out, _ = call("show", "brief#1", "--text", "--config", str(config))
    assert code == 0 and "upheld the conviction" in out  # the newest: the rescued copy


def test_export_wacz_validates(tmp_path: Path, web: WebServer) -> None:
    web.route("/a", Reply(200, ARTICLE, HTML))
    config = make_project(tmp_path, [web.url("/a")])
    assert call("run", "--config", str(config))[0] == 0
    target = tmp_path / "out.wacz"
    code, out, err = call("export", "--wacz", "--config", str(config), "-o", str(target))
    assert code == 0, out + err
    with zipfile.ZipFile(target) as wacz:
        names = wacz.namelist()
        assert "datapackage.json" in names and "pages/pages.jsonl" in names
        assert any(n.startswith("archive/") and n.endswith(".warc.gz") for n in names)
        pages = wacz.read("pages/pages.jsonl").decode().splitlines()
        assert json.loads(pages[1])["url"] == web.url("/a")
    done = subprocess.run([sys.executable, "-m", "wacz.main", "validate", "-f", str(target)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_replays_the_archive_in_pywb(tmp_path: Path, web: WebServer) -> None:
    web.route("/a", Reply(200, ARTICLE, HTML))
    config = make_project(tmp_path, [web.url("/a")])
    assert call("run", "--config", str(config))[0] == 0
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "archiver", "serve", "--config", str(config), "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        body = b""
        deadline = time.monotonic() + 60
        url = f"http://127.0.0.1:{port}/archive/2030id_/{web.url('/a')}"
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=5) as answer:
                    body = answer.read()
                    break
            except OSError:
                time.sleep(0.3)
        assert body == ARTICLE
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)


def test_python_api_iterates_citations(tmp_path: Path, web: WebServer) -> None:
    web.route("/a", Reply(200, ARTICLE, HTML))
    config = make_project(tmp_path, [web.url("/a"), web.url("/missing")])
    assert call("run", "--config", str(config))[0] == 0
    with open_archive(config) as archive:
        citations = list(archive.citations("brief"))
    assert [(c.footnote, c.verdict.value if c.verdict else None) for c in citations] == [
        (1, "ok"), (2, "not_found")]
    assert citations[0].claims[0].text == "Claim number 1 is stated here."
    assert "upheld the conviction" in citations[0].captures[0].text()
    assert citations[0].captures[0].raw_payload() == ARTICLE


@pytest.mark.parametrize("ref", ["brief#9", "nosuch#1"])
def test_show_bad_reference_is_a_usage_error(tmp_path: Path, web: WebServer, ref: str) -> None:
    config = make_project(tmp_path, [web.url("/a")])
    code, _, err = call("show", ref, "--config", str(config))
    assert code == 2 and "Traceback" not in err


def test_save_page_now_submits_live_links_once(tmp_path: Path, web: WebServer,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    web.route("/a", Reply(200, ARTICLE, HTML))
    with WebServer() as archive_host:
        wayback = WaybackServer(archive_host, keys=("access", "secret"))
        settings = wayback.settings()
        extra = "save_page_now = true\n" + "".join(
            f'{key} = "{getattr(settings, key)}"\n'
            for key in ("availability_api", "cdx_api", "replay_base", "spn_api"))
        config = make_project(tmp_path, [web.url("/a"), web.url("/missing")], rescue=True,
                              extra=extra)
        # Without keys: said plainly in the report, nothing submitted.
        monkeypatch.delenv("IA_S3_ACCESS_KEY", raising=False)
        monkeypatch.delenv("IA_S3_SECRET_KEY", raising=False)
        assert call("run", "--config", str(config))[0] == 0
        report = json.loads((tmp_path / "reports" / "brief" / "report.json").read_text())
        assert any("IA_S3_ACCESS_KEY" in note for note in report["notes"])
        assert wayback.calls("save") == []
        # With keys: the live link (only) is submitted, once across runs.
        monkeypatch.setenv("IA_S3_ACCESS_KEY", "access")
        monkeypatch.setenv("IA_S3_SECRET_KEY", "secret")
        assert call("run", "--config", str(config), "--refresh")[0] == 0
        assert [c["url"] for c in wayback.calls("save")] == [[web.url("/a")]]
        assert call("check", "--config", str(config))[0] in (0, 1)
        assert len(wayback.calls("save")) == 1


def test_no_copy_found_is_asked_again_after_recheck_days(tmp_path: Path,
                                                         web: WebServer) -> None:
    from datetime import UTC, datetime, timedelta

    dead = web.url("/gone-for-good")
    with WebServer() as archive_host:
        wayback = WaybackServer(archive_host)
        settings = wayback.settings()
        extra = "recheck_days = 30\n" + "".join(
            f'{key} = "{getattr(settings, key)}"\n'
            for key in ("availability_api", "cdx_api", "replay_base"))
        config = make_project(tmp_path, [dead], rescue=True, extra=extra)
        assert call("run", "--config", str(config))[0] == 0
        asked = len(wayback.calls("cdx"))
        assert asked >= 1
        assert call("check", "--config", str(config))[0] in (0, 1)
        assert len(wayback.calls("cdx")) == asked  # "none found" is cached ...
        with Catalog.open(tmp_path / "archive") as catalog:  # ... until it is 31 days old
            from datetime import date

            catalog.put_memento(dead, None, datetime.now(UTC) - timedelta(days=31),
                                near=date(2020, 11, 1))
        wayback.add(dead, "20201020000000", body=ARTICLE)
        assert call("check", "--config", str(config))[0] in (0, 1)
        assert len(wayback.calls("cdx")) > asked
        link = json.loads(
            (tmp_path / "reports" / "brief" / "report.json").read_text())["links"][0]
        assert link["memento"]["datetime"].startswith("2020-10-20")
