"""Limits per run: the run deadline and the per-host give-up, against loopback servers that
accept connections and never answer.

A URL not fetched because of a limit is not a failure of its page: it has no verdict in this
run, keeps its previous state, is named with its reason in the report's notes, and the next
run tries it again.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from archiver.catalog import Catalog
from archiver.config import FetchSettings
from archiver.fetch import Fetcher, HostGaveUp
from archiver.models import Capture, FetchFailure, Verdict
from tests.test_run import ARTICLE, call, make_project, read_back
from tests.webserver import Reply, Request, WebServer


@contextmanager
def silent_server() -> Iterator[tuple[int, list[socket.socket]]]:
    """A TCP server on 127.0.0.1 (port 0) that accepts every connection and never says a
    word. Yields its port and the connections it has accepted so far."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    listener.settimeout(0.05)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], held
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in held:
            conn.close()
        listener.close()


def report_of(root: Path) -> dict:
    return json.loads((root / "reports" / "brief" / "report.json").read_text())


def test_a_host_that_never_answers_is_given_up_after_three_timeouts(
        tmp_path: Path, web: WebServer) -> None:
    web.route("/article", Reply(200, ARTICLE, {"Content-Type": "text/html"}))
    with silent_server() as (port, _held):
        silent = [f"http://127.0.0.1:{port}/page/{i}" for i in range(20)]
        config = make_project(tmp_path, [web.url("/article"), *silent])
        # timeout 0.5 s, one retry, two requests at a time to one host; the default
        # host_give_up of 3 applies.
        config.write_text(config.read_text().replace("timeout = 5", "timeout = 0.5"))
        started = time.monotonic()
        code, out, err = call("run", "--config", str(config), "--format", "json")
        elapsed = time.monotonic() - started
        assert code == 0, out + err
        # Without the give-up: 20 URLs x 2 attempts x 0.5 s / 2 at a time = 10 s at least.
        assert elapsed < 9, elapsed
        data = json.loads(out)
        skipped = {item["url"]: item["reason"] for item in data["not_fetched"]}
        assert skipped and set(skipped) < set(silent)
        assert set(skipped.values()) == {"not fetched: host gave up after 3 timeouts"}
        assert data["outage"] is False and data["offline"] is False

        report = report_of(tmp_path)
        links = {link["url"]: link for link in report["links"]}
        assert links[web.url("/article")]["verdict"] == "ok"
        tried = [url for url in silent if url not in skipped]
        assert tried and all(links[url]["verdict"] == "timeout" for url in tried)
        for url in skipped:  # not judged: no verdict, and the reason says why
            assert links[url]["verdict"] is None
            assert links[url]["reason"].startswith("not fetched: host gave up after 3 timeouts")
        [note] = [n for n in report["notes"] if "host gave up" in n]
        assert all(url in note for url in skipped)
        assert "tried again by the next run" in note
        with Catalog.open(tmp_path / "archive") as catalog:
            assert all(catalog.last_result(url) is None for url in skipped)

        # The next run tries them again, the least recently tried first.
        code, out, _ = call("run", "--config", str(config), "--format", "json")
        assert code == 0
        again = {item["url"] for item in json.loads(out)["not_fetched"]}
        report = report_of(tmp_path)
        links = {link["url"]: link for link in report["links"]}
        assert any(links[url]["verdict"] == "timeout" for url in skipped)
        assert again != set(skipped)
    read_back(tmp_path)


def test_the_run_deadline_stops_fetching_and_says_what_was_left(
        tmp_path: Path, web: WebServer) -> None:
    web.route("/article", Reply(200, ARTICLE, {"Content-Type": "text/html"}))
    with silent_server() as (port, held):
        silent = [f"http://127.0.0.1:{port}/page/{i}" for i in range(12)]
        config = make_project(tmp_path, [web.url("/article"), *silent])
        # Each request would wait 30 s for an answer; the run may spend 2 s in all.
        config.write_text(config.read_text().replace("timeout = 5", "timeout = 30")
                          .replace("deadline = 20", "deadline = 120"))
        started = time.monotonic()
        code, out, err = call("run", "--config", str(config), "--deadline", "2")
        elapsed = time.monotonic() - started
        assert code == 0, out + err
        assert elapsed < 2 + 10, elapsed  # the deadline, plus judging and the reports
        assert held, "the silent server was never asked"
        first = out.splitlines()[0]
        assert "fetched 1" in first and "not fetched 12" in first, out
        assert "run deadline of 2 s reached" in out

    report = report_of(tmp_path)
    links = {link["url"]: link for link in report["links"]}
    assert links[web.url("/article")]["verdict"] == "ok"
    for url in silent:
        assert links[url]["verdict"] is None, links[url]
        assert links[url]["reason"] == ("not fetched: run deadline of 2 s reached; "
                                        "not checked yet")
    [note] = [n for n in report["notes"] if "run deadline" in n]
    assert note.startswith("Not fetched: run deadline of 2 s reached: 12 URL(s)")
    assert all(url in note for url in silent)
    assert report["run"]["not_fetched"] == 12

    # The same notes after 'archiver report', which reads them from the catalog.
    (tmp_path / "reports" / "brief" / "report.json").unlink()
    assert call("report", "--config", str(config))[0] == 0
    assert report_of(tmp_path)["notes"] == report["notes"]

    # The next run tries them again: the server is gone now, so they are refused.
    code, out, _ = call("run", "--config", str(config), "--deadline", "0")
    assert code == 0
    links = {link["url"]: link for link in report_of(tmp_path)["links"]}
    assert {links[url]["verdict"] for url in silent} == {"connection_error"}
    read_back(tmp_path)


def test_a_link_not_fetched_keeps_its_previous_state(tmp_path: Path, web: WebServer) -> None:
    web.route("/article", Reply(200, ARTICLE, {"Content-Type": "text/html"}))
    web.route("/slow", Reply(200, ARTICLE, {"Content-Type": "text/html"}, delay=3))
    urls = [web.url("/article"), web.url("/slow")]
    config = make_project(tmp_path, urls)
    assert call("check", "--config", str(config))[0] == 0
    code, out, _ = call("check", "--config", str(config), "--deadline", "1")
    assert code == 0
    assert "1 not fetched" in out.splitlines()[0]
    link = {link["url"]: link for link in report_of(tmp_path)["links"]}[urls[1]]
    assert link["verdict"] == "ok" and link["state"] == "ok"
    assert link["reason"].startswith("not fetched: run deadline of 1 s reached; result of ")
    read_back(tmp_path)


def test_deadline_option_rejects_what_is_not_seconds(tmp_path: Path) -> None:
    config = make_project(tmp_path, ["https://example.org/"])
    for bad in ("soon", "-1", "nan"):
        code, _, err = call("run", "--config", str(config), "--deadline", bad)
        assert code == 2 and "--deadline" in err and "Traceback" not in err


def test_fetcher_gives_a_host_up_after_timeouts_in_a_row(web: WebServer) -> None:
    """The give-up counts timed-out attempts in a row per host (host:port); an answer
    resets the count; other hosts are not affected."""
    calls: list[int] = []

    def sometimes_slow(req: Request) -> Reply:
        calls.append(1)
        if len(calls) != 2:  # the second request is answered at once
            time.sleep(0.6)
        return Reply(200, ARTICLE, {"Content-Type": "text/html"})

    web.route("/flaky", sometimes_slow)
    web.route("/article", Reply(200, ARTICLE, {"Content-Type": "text/html"}))
    settings = FetchSettings(timeout=0.3, retries=0, per_host=1, host_interval=0,
                             host_give_up=2, allow_private_networks=True, deadline=5)

    async def go(silent: list[str]) -> None:
        async with Fetcher(settings) as fetcher:
            # timeout, answer, timeout: never two in a row, so never given up
            kinds = [(await fetcher.fetch(web.url(f"/flaky?{i}"))) for i in range(3)]
            assert [isinstance(r, Capture) for r in kinds] == [False, True, False]
            assert not fetcher.gave_up(web.url("/flaky"))
            # two timeouts in a row: the silent host is given up, the next URL not sent
            for url in silent[:2]:
                result = await fetcher.fetch(url)
                assert isinstance(result, FetchFailure)
                assert result.verdict is Verdict.TIMEOUT
            assert fetcher.gave_up(silent[2])
            with pytest.raises(HostGaveUp, match="host gave up after 2 timeouts"):
                await fetcher.fetch(silent[2])
            left = await fetcher.fetch_all(silent[2:])
            assert left == {}  # not fetched: left out, not failed
            # another server on the same address is a different host
            assert isinstance(await fetcher.fetch(web.url("/article")), Capture)

    with silent_server() as (port, held):
        asyncio.run(go([f"http://127.0.0.1:{port}/{i}" for i in range(5)]))
        assert len(held) == 2  # the third URL never opened a connection


def test_one_url_keeps_all_its_retries_on_a_silent_host(tmp_path: Path) -> None:
    """The give-up counts different URLs: one URL on a host that never answers still gets
    the 1 + ``retries`` attempts ``retries`` promises, whatever its probe did (the soft-404
    probe to the same host times out first and must not count against it)."""
    with silent_server() as (port, _held):
        url = f"http://127.0.0.1:{port}/page"
        config = make_project(tmp_path, [url])
        config.write_text(config.read_text().replace("timeout = 5", "timeout = 0.3")
                          .replace("retries = 1", "retries = 3"))
        code, out, err = call("run", "--config", str(config), "--format", "json")
        assert code == 0, out + err
    with Catalog.open(tmp_path / "archive") as catalog:
        assert [a.attempt for a in catalog.attempts(url)] == [1, 2, 3, 4]
    [link] = report_of(tmp_path)["links"]
    assert link["verdict"] == "timeout" and link["attempts"] == 4



@pytest.mark.parametrize("workers", [1, 2], ids=["in-process", "2-workers"])
def test_a_url_finished_before_the_deadline_is_judged_or_not_fetched_never_both(
        tmp_path: Path, web: WebServer, monkeypatch: pytest.MonkeyPatch, workers: int,
        ) -> None:
    """URLs finished while the catalog's writer is busy wait for it (at most two batches
    captured but unrecorded); a deadline reached then stops their wait, not their result:
    they are recorded by the run's last flush, so they are judged in this run and not also
    listed as not fetched."""
    from archiver import recording
    from tests.test_recording import HeldCustody

    class FourAtATime(recording.Recorder):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **{**kwargs, "batch": 4})

    monkeypatch.setattr(recording, "Recorder", FourAtATime)
    for i in range(40):
        web.route(f"/p/{i}", Reply(200, ARTICLE, {"Content-Type": "text/html"}))
    urls = [web.url(f"/p/{i}") for i in range(40)]
    with silent_server() as (port, _held):
        silent = [f"http://127.0.0.1:{port}/page/{i}" for i in range(4)]
        config = make_project(tmp_path, [*urls, *silent],
                              fetch=f"per_host = 16\nworkers = {workers}")
        config.write_text(config.read_text().replace("timeout = 5", "timeout = 30")
                          .replace("deadline = 20", "deadline = 120"))
        # The custody log held by another lock holder: the first batch is committed, then
        # its writer waits; the URLs finishing after it fill the next batch and wait for
        # the writer until the deadline.
        held = HeldCustody(tmp_path / "archive")
        threading.Timer(8, held.release).start()
        code, out, err = call("run", "--config", str(config), "--deadline", "5",
                              "--format", "json")
        held.release()
    assert code == 0, out + err
    skipped = {item["url"] for item in json.loads(out)["not_fetched"]}
    with Catalog.open(tmp_path / "archive") as catalog:
        [run] = catalog.runs(limit=1)
        judged = {r.url for r in catalog.run_results(run.id)}
    assert len(judged) >= 8, "no batch waited for the writer: the test proves nothing"
    assert set(silent) <= skipped
    assert not judged & skipped, sorted(judged & skipped)
    assert judged | skipped == {*urls, *silent}
    links = {link["url"]: link for link in report_of(tmp_path)["links"]}
    assert all(links[url]["verdict"] is None for url in skipped)
    assert all(links[url]["verdict"] == "ok" for url in judged)
