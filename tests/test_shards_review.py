"""Worker processes under stress: limits, the network watch, errors, Ctrl-C, check."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.test_run import ARTICLE, call, make_project, read_back
from tests.test_run_limits import silent_server
from tests.test_shards import HTML, _alive, hosts, workers_of
from tests.tmpfs import small_tmpfs
from tests.webserver import Reply, Request, WebServer


def test_deadline_with_workers_names_every_url_not_fetched(tmp_path: Path, web: WebServer) -> None:
    web.route("/article", Reply(200, ARTICLE, HTML))
    with silent_server() as (port, _held):
        silent = [f"http://127.0.0.1:{port}/page/{i}" for i in range(12)]
        others = [f"http://localhost:{port}/page/{i}" for i in range(12)]
        urls = [web.url("/article"), *silent, *others]
        results = {}
        for workers in (1, 2):
            root = tmp_path / f"w{workers}"
            root.mkdir()
            config = make_project(root, urls, fetch=f"workers = {workers}\n")
            config.write_text(config.read_text().replace("timeout = 5", "timeout = 30"))
            code, out, err = call("run", "--config", str(config), "--format", "json",
                                  "--deadline", "2")
            assert code == 0, out + err
            data = json.loads(out)
            results[workers] = sorted((i["url"], i["reason"]) for i in data["not_fetched"])
    assert results[1] == results[2]
    assert len(results[2]) == 24


def runs_with_one_and_two_workers(tmp_path: Path, urls: list[str], *, fetch: str = "",
                                  timeout: float | None = None, args: tuple[str, ...] = ()
                                  ) -> dict[int, tuple[Path, dict[str, Any], float]]:
    """``archiver run --format json`` of a project citing ``urls``, once with one process
    and once with two workers (``fetch`` added to its ``[fetch]`` table, its ``timeout``
    replaced, ``args`` added to the command): per worker count, the project's folder, the
    JSON printed and the seconds the run took. Each run must exit 0."""
    results = {}
    for workers in (1, 2):
        root = tmp_path / f"w{workers}"
        root.mkdir()
        config = make_project(root, urls, fetch=f"workers = {workers}\n{fetch}")
        if timeout is not None:
            config.write_text(config.read_text().replace("timeout = 5", f"timeout = {timeout}"))
        started = time.monotonic()
        code, out, err = call("run", "--config", str(config), "--format", "json", *args)
        took = time.monotonic() - started
        assert code == 0, out + err
        results[workers] = (root, json.loads(out), took)
    return results


def test_host_give_up_with_workers_matches_one_process(tmp_path: Path, web: WebServer) -> None:
    web.route("/article", Reply(200, ARTICLE, HTML))
    with silent_server() as (port, _held):
        silent = [f"http://127.0.0.1:{port}/page/{i}" for i in range(20)]
        urls = [web.url("/article"), *silent]
        results = {}
        for workers, (root, data, _took) in runs_with_one_and_two_workers(
                tmp_path, urls, timeout=0.5).items():
            report = json.loads((root / "reports" / "brief" / "report.json").read_text())
            verdicts = {link["url"]: link["verdict"] for link in report["links"]}
            skipped = {i["url"]: i["reason"] for i in data["not_fetched"]}
            assert set(skipped.values()) == {"not fetched: host gave up after 3 timeouts"}
            assert all((verdicts[u] is None) == (u in skipped) for u in urls)
            assert set(skipped) <= set(silent)
            assert verdicts[web.url("/article")] == "ok"
            results[workers] = (data["offline"], data["outage"])
            # How many silent URLs were tried before the host was given up depends on which
            # were in flight at that moment (per_host 2), in one process as with workers;
            # most are not fetched either way.
            assert 1 <= len(silent) - len(skipped) <= 6, (workers, len(skipped))
    assert results[1] == results[2] == (False, False)


def counting(delay: float) -> tuple[dict[str, int], Callable[[Request], Reply]]:
    """A handler that answers after ``delay`` seconds, and ``{"n", "max", "all"}``: the
    requests it is answering now, the most it answered at once, and how many it answered."""
    lock = threading.Lock()
    now = {"n": 0, "max": 0, "all": 0}

    def slow(req: Request) -> Reply:
        with lock:
            now["n"] += 1
            now["all"] += 1
            now["max"] = max(now["max"], now["n"])
        time.sleep(delay)
        with lock:
            now["n"] -= 1
        return Reply(200, ARTICLE, HTML)

    return now, slow


def test_per_host_holds_with_workers(tmp_path: Path) -> None:
    now, slow = counting(0.05)

    with WebServer() as web:
        web.fallback = slow
        urls = [web.url(f"/p/{i}") for i in range(40)] + \
               [web.url(f"/p/{i}", host="localhost") for i in range(40)]
        # two hosts (127.0.0.1 and localhost) on one server: 2 x per_host at most
        config = make_project(tmp_path, urls, fetch="workers = 2\nper_host = 2\n")
        code, out, err = call("run", "--config", str(config))
        assert code == 0, out + err
    assert now["max"] <= 4, now


def test_full_disk_in_a_worker_stops_the_run_with_exit_3(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "archive") as mount, WebServer() as a, WebServer() as b:
        urls = []
        for web in (a, b):
            for i in range(20):
                web.route(f"/big/{i}", Reply(200, os.urandom(48 * 1024),
                                             {"Content-Type": "application/octet-stream"}))
                urls.append(web.url(f"/big/{i}"))
        config = make_project(tmp_path, urls, fetch="workers = 2\n")
        code, out, err = call("run", "--config", str(config))
        assert code == 3, out + err
        assert "Traceback" not in err
        assert "error:" in err and str(mount) in err
        subprocess.run(["umount", "-l", str(mount)], check=False)
        code, out, err = call("run", "--config", str(config))
        assert code == 0, out + err
        read_back(tmp_path)


def test_ctrl_c_with_workers(tmp_path: Path) -> None:
    with hosts(4, 30, delay=0.3) as (_servers, urls):
        config = make_project(tmp_path, urls, fetch="workers = 2\nconcurrency = 8\n")
        cmd = [sys.executable, "-m", "archiver", "run", "--config", str(config)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
        workers = workers_of(proc)
        time.sleep(1.5)
        os.killpg(proc.pid, signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
        # As the in-process run: exit 130, the message, no traceback.
        assert proc.returncode == 130, err.decode()
        assert "interrupted" in err.decode() and "Traceback" not in err.decode()
        end = time.monotonic() + 5
        while any(_alive(w) for w in workers) and time.monotonic() < end:
            time.sleep(0.1)
        assert not any(_alive(w) for w in workers)
        code, out2, err2 = call("run", "--config", str(config))
        assert code == 0, out2 + err2
    read_back(tmp_path)


def test_archive_error_in_a_worker(tmp_path: Path) -> None:
    # 30 rounds of 0.3 s per host: the run is still fetching (and starting new WARC files,
    # 20 KB each) for seconds after its first file appears, however fast it starts.
    with hosts(4, 30, delay=0.3) as (_servers, urls):
        config = make_project(tmp_path, urls, fetch="workers = 2\nconcurrency = 8\n"
                              "per_host = 1\n",
                              extra="\n[archive]\nwarc_max_size = 20000\n")
        cmd = [sys.executable, "-m", "archiver", "run", "--config", str(config)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
        archive = tmp_path / "archive"
        give_up = time.monotonic() + 60
        while not list(archive.glob("*.warc.gz*")) and time.monotonic() < give_up \
                and proc.poll() is None:
            time.sleep(0.05)
        time.sleep(1.0)  # a few URLs in: some recorded, most still to come
        assert proc.poll() is None, "the run ended before the archive could be frozen"
        if subprocess.run(["chattr", "+i", str(archive)]).returncode != 0:
            proc.kill()
            proc.wait()
            pytest.skip("chattr +i does not work here")
        try:
            _out, err = proc.communicate(timeout=60)
        finally:
            subprocess.run(["chattr", "-i", str(archive)], check=True)
        # Exit 3 naming the WARC file a worker could not write or close (the archive
        # folder took no new entries), and no worker's traceback.
        assert proc.returncode == 3, err.decode()
        assert "Traceback" not in err.decode()
        assert "error: " in err.decode() and ".warc.gz" in err.decode()
        code, out2, err2 = call("run", "--config", str(config))
        assert code == 0, out2 + err2
    read_back(tmp_path)


def test_check_with_workers_reports_the_same_changes(tmp_path: Path) -> None:
    results = {}
    for workers in (1, 2):
        root = tmp_path / f"w{workers}"
        root.mkdir()
        with hosts(4, 6, missing=1) as (servers, urls):
            config = make_project(root, urls, fetch=f"workers = {workers}\n")
            assert call("check", "--config", str(config))[0] in (0, 1)
            # The pages change: a drift on one host, gone on another, back on a third.
            drift = (b"<html><head><title>Other</title></head><body><main><h1>Other</h1><p>"
                     + b"Something else entirely. " * 60 + b"</p></main></body></html>")
            for i in range(6):
                servers[0].route(f"/p/{i}", Reply(200, drift, HTML))
                servers[1].routes.pop(f"/p/{i}", None)
            servers[2].route("/p/5", Reply(200, drift, HTML))
            code, out, err = call("check", "--config", str(config), "--format", "json")
            assert code in (0, 1), out + err
            data = json.loads(out)
            report = json.loads((root / "reports" / "brief" / "report.json").read_text())
            changes = sorted((c["footnotes"], c["kind"], c["verdict"], c["similarity"],
                              c.get("previous_verdict")) for c in data["changes"])
            links = [(link["verdict"], link["state"], link.get("similarity"))
                     for link in report["links"]]
            results[workers] = (code, changes, links)
    assert results[1] == results[2]
    assert any(c[1] == "content_changed" or c[3] is not None for c in results[2][1]), results


def test_redirects_across_workers_and_revisits_verify(tmp_path: Path) -> None:
    from tests.webserver import redirect
    same = (b"<html><head><title>Same</title></head><body><main><h1>Same</h1><p>"
            + b"The same page everywhere. " * 50 + b"</p></main></body></html>")
    with hosts(6, 8) as (servers, urls):
        cited = list(urls)
        for h, web in enumerate(servers):
            other = servers[(h + 1) % len(servers)]
            for i in range(4):
                web.route(f"/r/{i}", redirect(other.url(f"/p/{i}")))
                cited.append(web.url(f"/r/{i}"))
            web.route("/same", Reply(200, same, HTML))
            cited.append(web.url("/same"))
        results = {}
        for workers in (1, 2):
            root = tmp_path / f"w{workers}"
            root.mkdir()
            config = make_project(root, cited, fetch=f"workers = {workers}\n")
            code, out, err = call("run", "--config", str(config))
            assert code == 0, out + err
            records = read_back(root)
            assert call("verify", "--config", str(config))[0] == 0
            report = json.loads((root / "reports" / "brief" / "report.json").read_text())
            results[workers] = ([(link["url"], link["verdict"], link["state"])
                                 for link in report["links"]],
                                sorted(set((k, u) for k, u in records
                                           if k in ("response", "revisit", "request"))))
            from archiver.catalog import Catalog
            with Catalog.open(root / "archive") as catalog:
                for url in cited:
                    assert catalog.last_result(url) is not None
    assert results[1][0] == results[2][0]


def test_per_host_holds_for_redirects_into_another_workers_host(tmp_path: Path) -> None:
    """A redirect hop is fetched by the worker of the cited URL's host: its requests to a
    host another worker owns take turns of the owner's gate, so per_host holds per run."""
    now, slow = counting(0.1)
    with redirected_project(tmp_path, 16, slow, "workers = 2\nper_host = 1\n") as config:
        code, out, err = call("run", "--config", str(config))
        assert code == 0, out + err
    assert now["max"] <= 1, now


def test_the_capture_stage_keeps_no_probe_bodies(tmp_path: Path) -> None:
    """A worker (or the run's process) keeps each host and directory's soft-404 probe for
    the rest of the run: it must keep what the verdicts need, not the probe's page."""
    import asyncio
    import tracemalloc

    from archiver.capturing import open_stage
    from archiver.config import load_settings
    from archiver.models import Target

    filler = b"<html><body><main><p>" + b"Nothing here, try the search. " * 10000 + \
        b"</p></main></body></html>"  # ~300 KB: a soft-404 site's error page

    def answer(req: Request) -> Reply:
        if "zz-archiver-probe" in req.path:
            return Reply(404, filler, HTML)
        return Reply(200, ARTICLE, HTML)

    with WebServer() as web:
        web.fallback = answer
        urls = [web.url(f"/d{i}/page") for i in range(20)]
        config = make_project(tmp_path, urls)
        settings = load_settings(config)

        async def run() -> int:
            async with open_stage(settings, 1, find_payload=None) as stage:
                # The first capture imports what the stage needs; then measure.
                await stage.capture(Target(url=web.url("/warm/page"), cited_by=()))
                tracemalloc.start()
                base = tracemalloc.get_traced_memory()[0]
                for url in urls:
                    await stage.capture(Target(url=url, cited_by=()))
                held = tracemalloc.get_traced_memory()[0] - base
                tracemalloc.stop()
                return held

        held = asyncio.run(run())
    assert held < 2 * len(filler), held  # 20 probe pages would be 6 MB


def test_a_write_to_a_dead_worker_reads_as_its_end() -> None:
    """The run may send to a worker that was just killed before it reads the end of the
    worker's stream: the failed write must not make the listener fail (its URLs would wait
    for ever) but read as the worker's end."""
    import asyncio
    import socket

    from archiver import shards

    async def run() -> object:
        ours, theirs = socket.socketpair()
        reader, writer = await asyncio.open_connection(sock=ours)
        theirs.close()  # the worker died
        for _ in range(3):
            writer.write(b"x" * 65536)
            await asyncio.sleep(0.01)
        return await asyncio.wait_for(shards._read_frame(reader), 5)

    assert asyncio.run(run()) is None


def other_shard(servers: list[WebServer], url: str) -> WebServer:
    """A server of ``servers`` whose host the other of two workers owns than ``url``'s; more
    are started (added to ``servers``, for the caller to close) until one is: each port is
    either worker's at even odds, and a few fixed servers can all be on one side."""
    from archiver import shards

    owner = shards.shard_of(url, 2)
    for server in servers:
        if server.url("/") != url and shards.shard_of(server.url("/"), 2) != owner:
            return server
    while True:
        server = WebServer()
        servers.append(server)
        if shards.shard_of(server.url("/"), 2) != owner:
            return server


def _across_shards(servers: list[WebServer]) -> tuple[WebServer, WebServer]:
    """A target server and a source server whose hosts two workers own apart."""
    return servers[0], other_shard(servers, servers[0].url("/"))


@contextmanager
def redirected_project(tmp_path: Path, count: int, answer: Callable[[Request], Reply],
                       fetch: str) -> Iterator[Path]:
    """A project citing ``count`` pages of a target server (answered by ``answer``) and
    ``count`` URLs of a source server, on the other worker's side, that redirect into it,
    interleaved; ``fetch`` adds to its ``[fetch]`` table. The servers close on exit."""
    from tests.webserver import redirect

    servers = [WebServer() for _ in range(6)]
    try:
        target, source = _across_shards(servers)
        target.fallback = answer
        urls = [target.url(f"/p/{i}") for i in range(count)]
        for i in range(count):
            source.route(f"/r/{i}", redirect(target.url(f"/q/{i}")))
            urls.append(source.url(f"/r/{i}"))
        interleaved = [u for pair in zip(urls[:count], urls[count:], strict=True)
                       for u in pair]
        yield make_project(tmp_path, interleaved, fetch=fetch)
    finally:
        for s in servers:
            s.close()


def test_host_interval_holds_for_redirects_into_another_workers_host(tmp_path: Path) -> None:
    """The owner of a host spaces the starts of the requests another worker makes there
    through redirects, with its own: host_interval holds per run."""
    starts: list[float] = []
    lock = threading.Lock()

    def stamp(req: Request) -> Reply:
        with lock:
            starts.append(time.monotonic())
        return Reply(200, ARTICLE, HTML)

    with redirected_project(tmp_path, 4, stamp, "workers = 2\nper_host = 2\n") as config:
        config.write_text(config.read_text().replace("host_interval = 0\n",
                                                     "host_interval = 0.3\n"))
        code, out, err = call("run", "--config", str(config))
        assert code == 0, out + err
    # The 4 cited pages, the 4 redirect targets and the owner's soft-404 probes, one start
    # every 0.3 s (without the owner's gate, two workers' starts every 0.3 s each: about
    # half as long in all). The arrivals here jitter by the messages a lease takes on a
    # busy machine, so each gap is held to less than the interval.
    assert len(starts) >= 8, starts
    starts.sort()
    assert starts[-1] - starts[0] >= (len(starts) - 1) * 0.3 * 0.9, starts
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= 0.1, gaps


def test_a_redirect_into_an_ended_workers_host_is_still_fetched(tmp_path: Path) -> None:
    """When the worker that owns a host has ended, a redirect into it from another worker's
    host is fetched all the same (its lease answered "lost": the asking worker spaces its
    requests there itself), and the run's process holds no lease for it."""
    import asyncio

    from archiver import shards
    from archiver.catalog import Catalog
    from archiver.config import load_settings
    from archiver.models import Target, Verdict
    from tests.webserver import redirect

    servers = [WebServer() for _ in range(6)]
    try:
        target, source = _across_shards(servers)
        target.route("/q", lambda req: Reply(200, ARTICLE, HTML))
        source.route("/r", redirect(target.url("/q")))
        config = make_project(tmp_path, [source.url("/r")], fetch="workers = 2\n")
        settings = load_settings(config)
        with Catalog.open(settings.archive.dir) as catalog:
            catalog_dir = catalog.dir

        async def go() -> tuple[object, dict[tuple[int, int], int]]:
            pool = shards.ProcessShards(settings, catalog_dir, 1, 2, on_attempt=lambda a: None)
            await pool.start()
            try:
                owner = pool._workers[shards.shard_of(target.url("/"), 2)]
                os.kill(owner.pid, signal.SIGKILL)
                assert owner.listening is not None
                await owner.listening  # the run's process has seen it end
                finished = await pool.capture(Target(url=source.url("/r"), cited_by=()))
                return finished, dict(pool._leases)
            finally:
                await pool.close()

        finished, leases = asyncio.run(go())
    finally:
        for s in servers:
            s.close()
    assert finished.judgement.verdict in (Verdict.OK, Verdict.REDIRECTED), finished.judgement
    assert [hop.status for hop in finished.result.hops] == [302, 200]
    assert target.hits["/q"] == 1
    assert leases == {}


def test_a_lease_given_up_while_waiting_is_released() -> None:
    """A request cancelled while it waits for a turn of another worker's gate (the run's
    deadline) gives the turn back, granted or not yet; a turn granted and used is given back
    once; the owner's "gave up" is the fetcher's ``HostGaveUp``."""
    import asyncio
    import pickle

    from archiver import shards
    from archiver.fetch import HostGaveUp

    sent: list[tuple[object, ...]] = []

    def write(frame: bytes) -> None:
        sent.extend(pickle.loads(frame[shards._HEADER.size:]))

    async def go() -> None:
        leases = shards._Leases(0, 2, shards._Outbox(write))
        waiting = asyncio.ensure_future(leases.acquire(1, "b.example"))
        await asyncio.sleep(0.01)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        leases.answer("granted", 1)  # too late: ignored
        granted = asyncio.ensure_future(leases.acquire(1, "b.example"))
        await asyncio.sleep(0.01)
        leases.answer("granted", 2)
        assert await granted == 2
        leases.release(1, 2)
        refused = asyncio.ensure_future(leases.acquire(1, "b.example"))
        await asyncio.sleep(0.01)
        leases.answer("lease_gave_up", 3, ("b.example", 3))
        with pytest.raises(HostGaveUp):
            await refused
        # Granted, then cancelled before the request could go: the turn is given back.
        late = asyncio.ensure_future(leases.acquire(1, "b.example"))
        await asyncio.sleep(0.01)
        leases.answer("granted", 4)
        late.cancel()
        with pytest.raises(asyncio.CancelledError):
            await late
        await asyncio.sleep(0.01)

    asyncio.run(go())
    assert sent == [("lease", 1, 1, "b.example"), ("release", 1, 1),
                    ("lease", 2, 1, "b.example"), ("release", 2, 1),
                    ("lease", 3, 1, "b.example"),
                    ("lease", 4, 1, "b.example"), ("release", 4, 1)]
