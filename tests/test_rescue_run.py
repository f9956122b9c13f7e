"""The rescue step inside a run: lookups overlap the fetching, an archive that is down or
hanging is given up after a few failures (the circuit breaker), and a lookup that could not be
made is reported as "not looked up" (``evidence: "unknown"``), never as "no copy", and is
asked again by the next run.

Real loopback servers throughout: the cited web (``web``) and a Wayback Machine
(``tests.wayback_server``) on its own server, or a closed port, or a server that never answers.
Every WARC written is read back (``read_back``).
"""

from __future__ import annotations

import csv
import json
import socket
import threading
import time
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from archiver.catalog import Catalog
from tests.test_run import ARTICLE, call, make_project, read_back
from tests.wayback_server import WaybackServer
from tests.webserver import Reply, Request, WebServer, hang

HTML = {"Content-Type": "text/html; charset=utf-8"}
API_KEYS = ("availability_api", "cdx_api", "replay_base", "spn_api")


def closed_port_base() -> str:
    """A loopback origin on which nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def archive_at(base: str, **more: object) -> str:
    """The ``[rescue]`` lines pointing every archive API at ``base``."""
    lines = [f'availability_api = "{base}/wayback/available"',
             f'cdx_api = "{base}/cdx/search/cdx"', f'replay_base = "{base}/web"',
             f'spn_api = "{base}/save"']
    lines += [f"{key} = {json.dumps(value)}" for key, value in more.items()]
    return "\n".join(lines) + "\n"


def dead_links(web: WebServer, n: int) -> list[str]:
    for i in range(n):
        web.route(f"/dead-{i}", Reply(404, b"<html><body>Not Found</body></html>", HTML))
    return [web.url(f"/dead-{i}") for i in range(n)]


def report_of(root: Path) -> dict:
    return json.loads((root / "reports" / "brief" / "report.json").read_text())


def failures(root: Path) -> dict[str, tuple[str, int]]:
    """The catalog's lookups that could not be made: url → (kind, requests sent)."""
    with Catalog.open(root / "archive") as catalog:
        rows = catalog._read("SELECT url, kind, requests FROM lookup_failures")
    return {row["url"]: (row["kind"], row["requests"]) for row in rows}


def timed_run(config: Path, *args: str) -> float:
    started = time.monotonic()
    code, out, err = call("run", "--config", str(config), *args)
    assert code == 0, out + err
    return time.monotonic() - started


N_DEAD = 12


def test_an_unreachable_archive_costs_a_few_lookups_not_one_per_link(tmp_path: Path,
                                                                      web: WebServer) -> None:
    urls = dead_links(web, N_DEAD)
    config = make_project(tmp_path, urls, rescue=True,
                          extra=archive_at(closed_port_base(), retries=2, concurrency=3,
                                           breaker_after=3))
    timed_run(config)
    failed = failures(tmp_path)
    assert set(failed) == set(urls)  # every lookup recorded as not made ...
    assert {kind for kind, _ in failed.values()} == {"unreachable"}
    # ... and only a few were attempted: the breaker's 3 refusals, plus what the 3 workers
    # had already started. Without the breaker: 12 lookups x 2 APIs x 3 attempts.
    attempted = [url for url, (_, sent) in failed.items() if sent > 0]
    assert len(attempted) <= 3 + 3, attempted
    assert sum(sent for _, sent in failed.values()) <= 3 + 2  # 3 refusals + per_host in flight
    links = report_of(tmp_path)["links"]
    assert {link["evidence"] for link in links} == {"unknown"}
    assert all(link["memento"] is None for link in links)
    assert (f"Internet Archive: {N_DEAD} lookup(s) could not be made ({N_DEAD} could not be "
            "reached)") in report_of(tmp_path)["notes"][0]
    read_back(tmp_path)


def test_a_hanging_archive_costs_a_few_timeouts_not_one_per_link(tmp_path: Path,
                                                                 web: WebServer) -> None:
    urls = dead_links(web, 8)
    with WebServer() as archive_host:
        archive_host.fallback = hang(5)  # accepts every request and never answers
        config = make_project(tmp_path, urls, rescue=True,
                              extra=archive_at(archive_host.origin, timeout=0.3, retries=2,
                                               concurrency=3, breaker_after=3))
        timed_run(config)
        asked = len(archive_host.requests)
    failed = failures(tmp_path)
    assert set(failed) == set(urls)
    assert {kind for kind, _ in failed.values()} == {"unreachable"}
    assert len([u for u, (_, sent) in failed.items() if sent]) <= 3 + 3
    assert asked <= 3 + 2, asked  # 8 x 2 x 3 = 48 requests of 0.3 s without the breaker
    assert {link["evidence"] for link in report_of(tmp_path)["links"]} == {"unknown"}


def test_lookups_start_while_slow_pages_are_still_being_fetched(tmp_path: Path,
                                                                web: WebServer) -> None:
    finished: list[float] = []
    lock = threading.Lock()

    def slow(req: Request) -> Reply:
        time.sleep(2.0)
        with lock:
            finished.append(time.monotonic())  # the answer leaves now: the fetch ends after
        return Reply(200, ARTICLE, HTML)

    for i in range(3):
        web.route(f"/slow-{i}", slow)
    web.route("/dead", Reply(404, b"<html><body>Not Found</body></html>", HTML))
    # The dead link on another host name, so the slow pages' per-host limit cannot hold
    # its fetch back.
    dead = web.url("/dead", host="localhost")
    with WebServer() as archive_host:
        wayback = WaybackServer(archive_host)
        wayback.add(dead, "20201028093012", body=ARTICLE)
        config = make_project(tmp_path, [web.url(f"/slow-{i}") for i in range(3)] + [dead],
                              rescue=True, extra=archive_at(archive_host.origin))
        timed_run(config)
        asked = [moment for endpoint, moment in wayback.times if endpoint == "cdx"]
    assert len(finished) == 3 and asked
    assert asked[0] < min(finished), "the lookup waited for the slow fetches"
    link = next(x for x in report_of(tmp_path)["links"] if x["url"] == dead)
    assert link["evidence"] == "internet_archive"
    assert link["memento"]["datetime"].startswith("2020-10-28")


def test_not_looked_up_is_said_and_the_next_run_asks_again(tmp_path: Path,
                                                           web: WebServer) -> None:
    (dead,) = dead_links(web, 1)
    config = make_project(tmp_path, [dead], rescue=True,
                          extra=archive_at(closed_port_base(), retries=1))
    timed_run(config)
    folder = tmp_path / "reports" / "brief"
    link = report_of(tmp_path)["links"][0]
    assert (link["evidence"], link["memento"]) == ("unknown", None)
    assert report_of(tmp_path)["summary"]["evidence"]["none"] == 0
    soup = BeautifulSoup((folder / "report.html").read_text(), "lxml")
    assert soup.select_one(".evidence-line").get_text() == (
        "Not looked up: the Internet Archive could not be reached")
    assert "Not looked up: the Internet Archive could not be reached" in (
        folder / "report.md").read_text()
    with (folder / "links.csv").open(newline="") as fh:
        assert next(iter(csv.DictReader(fh)))["evidence"] == "unknown"
    # `archiver report` (no network) says the same from the catalog.
    assert call("report", "--config", str(config))[0] == 0
    assert report_of(tmp_path)["links"][0]["evidence"] == "unknown"

    # The archive is back: the next run (nothing to fetch again) asks and finds the copy.
    with WebServer() as archive_host:
        wayback = WaybackServer(archive_host)
        wayback.add(dead, "20201028093012", body=ARTICLE)
        make_project(tmp_path, [dead], rescue=True, extra=archive_at(archive_host.origin))
        timed_run(config, "--rescue-capture")
        assert wayback.calls("cdx")
    link = report_of(tmp_path)["links"][0]
    assert link["evidence"] == "ours"
    assert link["memento"]["datetime"].startswith("2020-10-28")
    assert failures(tmp_path) == {}  # the answer replaced the failure
    records = read_back(tmp_path)
    # Stored as pywb stores copies from another archive: under the cited URL.
    assert ("response", dead) in records


def test_rate_limited_past_the_cap_is_not_looked_up(tmp_path: Path, web: WebServer) -> None:
    (dead,) = dead_links(web, 1)
    with WebServer() as archive_host:
        wayback = WaybackServer(archive_host)
        wayback.add(dead, "20201028093012", body=ARTICLE)
        for endpoint in ("cdx", "available"):
            wayback.fail(endpoint, Reply(429, b"slow down", {"Retry-After": "3600"}),
                         times=None)
        config = make_project(tmp_path, [dead], rescue=True,
                              extra=archive_at(archive_host.origin))
        timed_run(config)
        link = report_of(tmp_path)["links"][0]
        assert (link["evidence"], link["memento"]) == ("unknown", None)
        assert failures(tmp_path)[dead][0] == "rate_limited"
        html = (tmp_path / "reports" / "brief" / "report.html").read_text()
        assert "Not looked up: the Internet Archive asked us to slow down" in html
        wayback.faults.clear()  # the next run is let through, and finds the copy
        timed_run(config)
    assert report_of(tmp_path)["links"][0]["evidence"] == "internet_archive"


@pytest.mark.parametrize("how", ["--no-rescue", "enabled = false"])
def test_rescue_disabled_is_not_looked_up(tmp_path: Path, web: WebServer, how: str) -> None:
    (dead,) = dead_links(web, 1)
    config = make_project(tmp_path, [dead], rescue=how == "--no-rescue")
    timed_run(config, *([how] if how.startswith("--") else []))
    link = report_of(tmp_path)["links"][0]
    assert (link["evidence"], link["memento"]) == ("unknown", None)
    soup = BeautifulSoup((tmp_path / "reports" / "brief" / "report.html").read_text(), "lxml")
    assert soup.select_one(".evidence-line").get_text() == (
        "Not looked up: rescue is disabled")


def test_save_page_now_gives_up_with_the_lookups(tmp_path: Path, web: WebServer,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IA_S3_ACCESS_KEY", "access")
    monkeypatch.setenv("IA_S3_SECRET_KEY", "secret")
    live = []
    for i in range(6):
        web.route(f"/live-{i}", Reply(200, ARTICLE, HTML))
        live.append(web.url(f"/live-{i}"))
    urls = live + dead_links(web, 4)
    config = make_project(tmp_path, urls, rescue=True,
                          extra="save_page_now = true\n"
                                + archive_at(closed_port_base(), retries=1))
    # Save Page Now waits 5 s between submissions: six live links would take 25 s
    # without the shared breaker.
    elapsed = timed_run(config)
    assert elapsed < 15
    notes = report_of(tmp_path)["notes"]
    assert any("Save Page Now: the Internet Archive could not be reached; 6 live link(s)"
               in note for note in notes), notes
    with Catalog.open(tmp_path / "archive") as catalog:
        assert all(catalog.last_save(url) is None for url in live)  # submitted next run
