"""Worker processes (``archiver.shards``): hosts split between workers, each URL captured by
exactly one of them, one catalog writer, and a run killed with ``kill -9`` that resumes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from warcio.archiveiterator import ArchiveIterator

from archiver import shards, soft404
from archiver.catalog import Catalog
from archiver.config import load_settings
from tests.test_run import call, make_project, read_back
from tests.webserver import Reply, WebServer

HTML = {"Content-Type": "text/html; charset=utf-8"}


def page(host: int, i: int) -> bytes:
    return (f"<html><head><title>Report {host}-{i}</title></head><body><main>"
            f"<h1>Report {host}-{i}</h1><p>{'Evidence of the event. ' * 40}{host}-{i}</p>"
            "</main></body></html>").encode()


@contextlib.contextmanager
def hosts(count: int, pages: int, *, delay: float = 0.0, missing: int = 0,
          workers: int = 2) -> Iterator[tuple[list[WebServer], list[str]]]:
    """``count`` web servers (each its own host:port, so its own politeness gate and shard),
    ``pages`` pages each; the last ``missing`` pages of each answer 404. The ports are
    chosen so that each of ``workers`` workers owns at least one host: a worker with none
    would make a test about workers pass or fail by the luck of the ports."""
    with contextlib.ExitStack() as stack:
        servers: list[WebServer] = []
        while len(servers) < count:
            web = stack.enter_context(WebServer())
            taken = {shards.shard_of(s.url("/"), workers) for s in servers}
            # The last places go only to servers whose worker has no host yet.
            if (count - len(servers) > workers - len(taken)
                    or shards.shard_of(web.url("/"), workers) not in taken):
                servers.append(web)
        urls = []
        for h, web in enumerate(servers):
            for i in range(pages):
                if i < pages - missing:
                    web.route(f"/p/{i}", Reply(200, page(h, i), HTML, delay=delay))
                urls.append(web.url(f"/p/{i}"))
        assert {shards.shard_of(url, workers) for url in urls} == set(range(workers))
        yield servers, urls


def fetches(servers: list[WebServer]) -> Counter[str]:
    """Requests per cited URL, soft-404 probes left out."""
    counts: Counter[str] = Counter()
    for web in servers:
        for path, hits in web.hits.items():
            if path.startswith("/p/") and soft404.PROBE_MARKER not in path:
                counts[web.url(path)] += hits
    return counts


def responses_by_file(root: Path) -> dict[str, list[str]]:
    """WARC file name → target URIs of its response and revisit records."""
    found: dict[str, list[str]] = {}
    for path in sorted((root / "archive").glob("*.warc.gz")):
        with path.open("rb") as fh:
            found[path.name] = [r.rec_headers.get_header("WARC-Target-URI")
                                for r in ArchiveIterator(fh)
                                if r.rec_type in ("response", "revisit")]
    return found


def test_worker_count_follows_the_setting_and_the_run_size(tmp_path: Path) -> None:
    config = make_project(tmp_path, ["http://example.org/"])
    settings = load_settings(config)
    cores = len(os.sched_getaffinity(0))
    assert shards.worker_count(settings, 10) == 0  # a small run stays in one process
    assert shards.worker_count(settings, 5000) == (cores if cores > 1 else 0)
    two = load_settings(config, overrides={"workers": 2})
    assert shards.worker_count(two, 10) == 2
    assert shards.worker_count(two, 1) == 0  # never more workers than URLs
    assert shards.worker_count(load_settings(config, overrides={"workers": 1}), 5000) == 0


def test_a_fork_server_is_started_only_for_runs_that_may_use_workers(tmp_path: Path) -> None:
    cores = len(os.sched_getaffinity(0))
    small = make_project(tmp_path, [f"http://example.org/{i}" for i in range(40)])
    brief = tmp_path / "sources" / "brief.md"
    brief.write_text(brief.read_text() + "\nLong prose without addresses. " * 2000)
    assert brief.stat().st_size > 16 * 1024
    assert not shards._may_fork(load_settings(small))  # 40 URLs: one process
    assert shards._may_fork(load_settings(small, overrides={"workers": 2}))
    # Every spelling the readers take counts: mangled schemes and "www" addresses too.
    brief.write_text("\n".join(f"[^{i}]: <www{i % 3}.example.org/{i}> http:/x{i} https//y{i}"
                                for i in range(90)))
    assert shards._may_fork(load_settings(small)) == (cores > 1)
    large = make_project(tmp_path, [f"http://example.org/{i}" for i in range(300)])
    assert shards._may_fork(load_settings(large)) == (cores > 1)
    assert not shards._may_fork(load_settings(large, overrides={"workers": 1}))
    # A compressed document (.docx) is judged by its size.
    brief.write_bytes(b"PK\x03\x04" + bytes(8000))
    assert shards._may_fork(load_settings(large)) == (cores > 1)
    brief.write_bytes(b"PK\x03\x04" + bytes(1000))
    assert not shards._may_fork(load_settings(large))


def test_a_host_belongs_to_one_worker() -> None:
    urls = [f"http://host{h}.example/p/{i}" for h in range(20) for i in range(10)]
    owners: dict[str, set[int]] = {}
    for url in urls:
        owners.setdefault(url.split("/")[2], set()).add(shards.shard_of(url, 3))
    assert all(len(owner) == 1 for owner in owners.values())
    assert len({next(iter(o)) for o in owners.values()}) == 3  # every worker has hosts
    assert shards.shard_of("not a url", 3) in range(3)
    # Spellings of one host go to one worker.
    spellings = ["http://Example.org/a", "http://user@example.org:80/b", "http://example.org/c",
                 "HTTP://EXAMPLE.ORG/d"]
    assert len({shards.shard_of(u, 7) for u in spellings}) == 1
    assert shards.host_key("https://example.org:443/") == "example.org"
    assert shards.host_key("https://example.org:8443/") == "example.org:8443"
    assert shards.host_key("http://[::1]:99999/") == ""


def test_a_host_in_another_script_is_one_host_with_its_idna_spelling() -> None:
    """A name in another script and its ``xn--`` spelling are one host to the fetcher (one
    gate): one worker owns both, so per_host holds for a host cited both ways."""
    from archiver.fetch import gate_key

    for unicode, ascii_ in [("http://bücher.example/a", "http://xn--bcher-kva.example/b"),
                            ("https://ПРИМЕР.рф:8443/", "https://xn--e1afmkfd.xn--p1ai:8443/x"),
                            ("http://user@қазақстан.kz/", "http://xn--80aaa0a6awh12ed.kz/")]:
        assert shards.host_key(unicode) == shards.host_key(ascii_), (unicode, ascii_)
        assert shards.host_key(unicode).isascii()
        assert gate_key(unicode) == gate_key(ascii_)
        assert all(shards.shard_of(unicode, n) == shards.shard_of(ascii_, n)
                   for n in range(2, 9))


def test_host_key_reads_plain_urls_as_urlsplit_does() -> None:
    """The regex read of the common spelling gives urlsplit's key for every URL."""
    import random

    rng = random.Random(14)
    pieces = ["http", "https", "HTTP", "Https", "ftp", "://", ":", "/", "//", "?", "#", "@",
              "[", "]", "::1", "%41", "\t", "\n", " ", "example.org", "Example.ORG", "a-b.c",
              "127.0.0.1", "xn--80ak6aa92e.com", "пример.рф", "host", ".", "-", "_", "~",
              "0", "80", "443", "8080", "080", "65535", "65536", "99999", "user", "p/q"]
    urls = [
        "http://example.org", "http://example.org/", "http://example.org:", "http://Ex.org:/a",
        "https://example.org:443", "https://example.org:0443/", "http://example.org:443/",
        "http://example.org:65535/", "http://example.org:65536/", "http://example.org:8x/",
        "http://exa_mple.org/", "http://ex%41mple.org/", "http://ex\tample.org/",
        "http://user@example.org/", "http://[::1]:8080/", "http://:80/", "http:///a",
        "http://example.org?q", "http://example.org#f", " http://example.org/",
        "http://example.org\n/", "http://пример.рф/", "http://a..b:00/", "HTTP://A.B/",
    ]
    for _ in range(20000):
        urls.append("".join(rng.choice(pieces) for _ in range(rng.randint(1, 8))))
        urls.append(rng.choice(["http://", "https://"]) + "".join(
            rng.choice(pieces[5:]) for _ in range(rng.randint(1, 6))))
    for url in urls:
        assert shards.host_key(url) == shards._host_key_parsed(url), url


def test_two_workers_capture_every_url_exactly_once(tmp_path: Path) -> None:
    with hosts(6, 40, missing=4) as (servers, urls):
        config = make_project(tmp_path, urls, fetch="workers = 2\nconcurrency = 16\n")
        code, out, err = call("run", "--config", str(config))
        assert code == 0, out + err
        counts = fetches(servers)
    # Every cited URL was requested exactly once: no two workers took the same URL.
    assert sorted(counts) == sorted(urls)
    assert set(counts.values()) == {1}
    report = json.loads((tmp_path / "reports" / "brief" / "report.json").read_text())
    verdicts = Counter(link["verdict"] for link in report["links"])
    assert verdicts == {"ok": 6 * 36, "not_found": 6 * 4}
    # Each worker wrote its own WARC file; every URL has one response, in one of them.
    files = responses_by_file(tmp_path)
    assert len([f for f, uris in files.items() if uris]) == 2, files.keys()
    archived = Counter(uri for uris in files.values() for uri in uris)
    assert archived == Counter(urls)
    records = read_back(tmp_path)  # digests, warcio check, nothing left .open
    assert Counter(uri for kind, uri in records
                   if kind in ("response", "revisit")) == Counter(urls)
    # One catalog writer: every URL has its capture and one verdict of this run.
    with Catalog.open(tmp_path / "archive") as catalog:
        assert set(catalog.captured_urls()) == set(urls)
        for url in urls:
            assert catalog.last_result(url) is not None
    custody = (tmp_path / "archive" / "custody.jsonl").read_text().splitlines()
    assert len(custody) == len(urls)
    assert call("verify", "--config", str(config))[0] == 0


def revisits_by_target(root: Path) -> dict[str, list[str]]:
    """Target URI → the WARC-Refers-To-Target-URI of each of its revisit records."""
    found: dict[str, list[str]] = {}
    for path in sorted((root / "archive").glob("*.warc.gz")):
        with path.open("rb") as fh:
            for r in ArchiveIterator(fh):
                if r.rec_type == "revisit":
                    found.setdefault(r.rec_headers.get_header("WARC-Target-URI"), []).append(
                        r.rec_headers.get_header("WARC-Refers-To-Target-URI"))
    return found


def test_workers_of_a_later_run_store_the_payloads_of_earlier_runs_as_revisits(
        tmp_path: Path) -> None:
    """The first run's workers ask the catalog nothing (it held no payload when they
    started); a later run's workers find every unchanged page there."""
    with hosts(4, 12) as (_, urls):
        config = make_project(tmp_path, urls, fetch="workers = 2\nconcurrency = 8\n")
        code, out, err = call("run", "--config", str(config))
        assert code == 0, out + err
        assert revisits_by_target(tmp_path) == {}  # distinct pages: nothing to point at
        code, out, err = call("run", "--config", str(config), "--refresh")
        assert code == 0, out + err
    assert revisits_by_target(tmp_path) == {url: [url] for url in urls}
    read_back(tmp_path)


def _server_dies(control: object, parent: int, fetch: object) -> None:
    os._exit(3)


def _server_hangs(control: object, parent: int, fetch: object) -> None:
    time.sleep(3600)


@pytest.mark.parametrize("failure", [_server_dies, _server_hangs])
def test_a_fork_server_that_fails_leaves_the_forking_to_the_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: object) -> None:
    """The fork server dies when asked for the workers, or does not answer: the run forks
    them itself (after ``_SERVER_PATIENCE`` seconds, for one that does not answer)."""
    servers_seen: list[int] = []
    start = shards.ForkServer.start.__func__  # type: ignore[attr-defined]

    def started(cls: type[shards.ForkServer], settings: object) -> shards.ForkServer | None:
        server = start(cls, settings)
        if server is not None:
            servers_seen.append(server.pid)
        return server

    monkeypatch.setattr(shards.ForkServer, "start", classmethod(started))
    # Inherited by the server (forked from this process): it fails instead of forking.
    monkeypatch.setattr(shards, "_fork_on_request", failure)
    monkeypatch.setattr(shards, "_SERVER_PATIENCE", 2.0)
    with hosts(4, 20) as (servers, urls):
        config = make_project(tmp_path, urls, fetch="workers = 2\nconcurrency = 8\n")
        code, out, err = call("run", "--config", str(config))
        assert code == 0, out + err
        counts = fetches(servers)
    assert len(servers_seen) == 1
    assert not _alive(servers_seen[0])  # ended and reaped
    assert sorted(counts) == sorted(urls) and set(counts.values()) == {1}
    files = responses_by_file(tmp_path)
    assert len([f for f, uris in files.items() if uris]) == 2, files.keys()
    read_back(tmp_path)


def test_results_match_a_single_process_run(tmp_path: Path) -> None:
    with hosts(4, 12, missing=2) as (_, urls):
        verdicts = {}
        rows = {}
        for workers in (1, 2):
            root = tmp_path / f"w{workers}"
            root.mkdir()
            config = make_project(root, urls, fetch=f"workers = {workers}\n")
            code, out, err = call("run", "--config", str(config))
            assert code == 0, out + err
            report = json.loads((root / "reports" / "brief" / "report.json").read_text())
            verdicts[workers] = [(link["url"], link["verdict"], link["state"])
                                 for link in report["links"]]
            # What the catalog recorded of each capture (as the workers sent it, with two);
            # which of the equal 404 pages are revisits depends on the order and the worker.
            with contextlib.closing(sqlite3.connect(root / "archive" / "catalog.sqlite3")) as db:
                rows[workers] = db.execute(
                    "SELECT url, final_url, status, payload_digest, content_type, title,"
                    " truncated, attempts, fingerprint, record_id IS NOT NULL,"
                    " (SELECT count(*) FROM provenance p WHERE p.record_id = c.record_id)"
                    " FROM captures c ORDER BY url").fetchall()
    assert verdicts[1] == verdicts[2]
    assert rows[1] == rows[2] and len(rows[1]) == len(urls)


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


def workers_of(proc: subprocess.Popen[bytes], count: int = 2) -> list[int]:
    """The pids of the run ``proc``'s worker processes, once all ``count`` are forked (30 s
    at most)."""
    deadline = time.monotonic() + 30
    workers: list[int] = []
    while time.monotonic() < deadline and len(workers) < count:
        time.sleep(0.1)
        workers = _children(proc.pid)
    return workers


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.timeout(180)
def test_kill_9_of_the_run_stops_its_workers_and_the_next_run_resumes(tmp_path: Path) -> None:
    with hosts(4, 30, delay=0.3) as (servers, urls):
        config = make_project(tmp_path, urls, fetch="workers = 2\nconcurrency = 8\n")
        cmd = [sys.executable, "-m", "archiver", "run", "--config", str(config), "--quiet"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        deadline = time.monotonic() + 60
        captured: set[str] = set()
        workers: list[int] = []
        while time.monotonic() < deadline and len(captured) < 20:
            time.sleep(0.2)
            if len(workers) < 2:  # both are forked at the start; wait for the second
                workers = _children(proc.pid)
            # The catalog may not exist yet.
            with contextlib.suppress(Exception), Catalog.open(tmp_path / "archive") as catalog:
                captured = set(catalog.captured_urls())
        assert len(workers) == 2, "the run did not start two worker processes"
        os.kill(proc.pid, signal.SIGKILL)  # the run's process only, not its group
        proc.wait(timeout=10)
        assert 20 <= len(captured) < len(urls), "the run was not killed mid-way"
        # Linux ends the workers with their parent.
        end = time.monotonic() + 10
        while any(_alive(w) for w in workers) and time.monotonic() < end:
            time.sleep(0.1)
        assert not any(_alive(w) for w in workers), "a worker outlived the run"
        before = fetches(servers)

        code, out, err = call("run", "--config", str(config))
        assert code == 0, out + err
        after = fetches(servers)
    # What was recorded before the kill is not fetched again; what was in flight (or
    # written but not yet committed: at most a batch) is fetched once more.
    for url in captured:
        assert after[url] == before[url] == 1, url
    assert set(after) == set(urls)
    assert max(after.values()) <= 2
    report = json.loads((tmp_path / "reports" / "brief" / "report.json").read_text())
    assert [link["verdict"] for link in report["links"]] == ["ok"] * len(urls)
    read_back(tmp_path)  # the files the kill left .open were repaired
    with Catalog.open(tmp_path / "archive") as catalog:
        assert set(catalog.captured_urls()) == set(urls)


def test_a_worker_that_dies_loses_only_its_urls_in_flight(tmp_path: Path) -> None:
    # 10 rounds of 0.4 s per host: the worker is killed 1 s in, with most of its URLs to go.
    with hosts(4, 20, delay=0.4) as (_, urls):
        config = make_project(tmp_path, urls, fetch="workers = 2\nconcurrency = 8\n")
        cmd = [sys.executable, "-m", "archiver", "run", "--config", str(config), "--quiet",
               "--format", "json"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
        workers = workers_of(proc)
        time.sleep(1.0)
        os.kill(workers[0], signal.SIGKILL)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode in (0, 1), err
        summary = json.loads(out)
        lost = [item["url"] for item in summary["not_fetched"]
                if "worker process" in item["reason"]]
        assert lost, summary
        # The next run fetches what the dead worker did not finish.
        code, out2, err2 = call("run", "--config", str(config))
        assert code == 0, out2 + err2
    report = json.loads((tmp_path / "reports" / "brief" / "report.json").read_text())
    assert [link["verdict"] for link in report["links"]] == ["ok"] * len(urls)
    read_back(tmp_path)


def test_a_finished_record_reaches_the_run_without_what_only_the_worker_reads() -> None:
    # What the catalog records of a URL crosses unchanged; the target (the run's process
    # sets its own) and the hops' headers, address, TLS session and record digest (the
    # worker's verdict and provenance record were made from them) do not.
    import pickle
    from datetime import UTC, datetime

    from archiver import provenance
    from archiver.capturing import Finished
    from archiver.fetch import Attempt
    from archiver.models import (
        Capture,
        FootnoteRef,
        Hop,
        Judgement,
        Target,
        TlsSession,
        Verdict,
        WarcRef,
    )

    def hop(url: str, status: int, revisit: bool) -> Hop:
        return Hop(url=url, status=status, headers=(("Server", "nginx"), ("Location", "/b")),
                   warc=WarcRef("archive/a.warc.gz", 120 * status, 900, f"<urn:{status}>"),
                   revisit=revisit, remote_ip="127.0.0.1",
                   tls=TlsSession(version="TLSv1.3", cipher="TLS_AES_128_GCM_SHA256",
                                  chain=()),
                   request_headers=(("Host", "a.example"), ("Accept", "*/*")),
                   record_sha256="ab" * 32)

    at = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    capture = Capture(url="http://a.example/a", final_url="http://a.example/b", status=200,
                      hops=(hop("http://a.example/a", 301, False),
                            hop("http://a.example/b", 200, True)),
                      content=b"", content_type="text/html", payload_digest="sha256:00",
                      captured_at=at, attempts=2, truncated="length", body_bytes=20)
    kept = provenance.Kept(record_id="<urn:200>", cited_url="http://a.example/a", text="{}",
                           sha256="cd" * 32, metadata_id="<urn:m>",
                           payload_digest="sha256:00", warc_path="archive/a.warc.gz")
    finished = Finished(target=Target("http://a.example/a", (FootnoteRef("brief", 3),)),
                        result=capture, judgement=Judgement(Verdict.REDIRECTED, "moved"),
                        text=b"packed", title="B", hop_urls=("http://a.example/b",),
                        http=capture, http_text=b"t", kept=kept)
    attempt = Attempt(url="http://a.example/a", number=1, outcome="response", status=301,
                      at=at)
    error = RuntimeError("worker: boom")
    frame = shards._frame_for_run([("attempt", attempt), ("done", 7, finished),
                                   ("failed", 8, error)])
    size = shards._HEADER.size
    assert shards._HEADER.unpack(frame[:size])[0] == len(frame) - size
    (kind_a, got_attempt), (kind, key, got), (_, _, got_error) = pickle.loads(frame[size:])
    assert (kind_a, got_attempt) == ("attempt", attempt)
    assert (kind, key) == ("done", 7)
    assert isinstance(got_error, RuntimeError) and got_error.args == error.args

    assert got.target is None
    bare = tuple(
        Hop(url=h.url, status=h.status, headers=(), warc=h.warc, revisit=h.revisit)
        for h in capture.hops)
    for received in (got.result, got.http):
        assert isinstance(received, Capture)
        assert received.hops == bare
        assert received == Capture(**{**capture.__dict__, "hops": bare})
        assert received.warc == capture.warc
    assert isinstance(got.result, Capture) and got.result.hops[-1].revisit
    assert (got.judgement, got.text, got.title, got.hop_urls, got.http_text, got.kept) == \
        (finished.judgement, finished.text, finished.title, finished.hop_urls,
         finished.http_text, finished.kept)
    # The worker's own record is left as it was.
    assert finished.result.hops[0].headers == (("Server", "nginx"), ("Location", "/b"))
    assert finished.target.url == "http://a.example/a"
    # The run's own frames (targets to the workers) are pickled as they are.
    assert pickle.loads(shards._frame([("capture", 1, finished.target)])[size:]) == \
        [("capture", 1, finished.target)]


def _group(pgid: int) -> list[int]:
    """The live (not zombie) processes of process group ``pgid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[2]) == pgid and fields[0] != "Z":
                    found.append(int(entry.name))
    return found


def _open_files(pid: int) -> set[str]:
    names = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                names.add(os.readlink(fd))
    return names


@pytest.mark.timeout(180)
def test_workers_forked_by_the_fork_server_are_the_runs_children(tmp_path: Path) -> None:
    """The fork server forks the workers and leaves: they are the run's own children (the
    run reaps them, they die with it) and, forked before the run opened its archive, they
    hold none of its descriptors (the archive's lock among them)."""
    with hosts(4, 15, delay=0.2) as (_, urls):
        config = make_project(tmp_path, urls, fetch="workers = 2\nconcurrency = 8\n")
        cmd = [sys.executable, "-m", "archiver", "run", "--config", str(config), "--quiet"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
        workers = workers_of(proc)
        assert len(workers) == 2, "the run did not start two worker processes"
        lock = str((tmp_path / "archive" / ".lock").resolve())
        held = {w: lock in _open_files(w) for w in workers}
        assert lock in _open_files(proc.pid)  # the run holds it
        # Every process of the run's group is the run or one of its two workers: the
        # server has left.
        assert set(_group(proc.pid)) <= {proc.pid, *workers}
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
        assert held == dict.fromkeys(workers, False)
    report = json.loads((tmp_path / "reports" / "brief" / "report.json").read_text())
    assert [link["verdict"] for link in report["links"]] == ["ok"] * len(urls)


@pytest.mark.timeout(300)
def test_kill_9_of_the_run_during_its_start_leaves_no_process(tmp_path: Path) -> None:
    """Killed while the fork server prepares the workers, forks them, or they start, the
    run leaves nothing running: the server and the workers die with it, and the next run
    resumes."""
    with hosts(4, 40, delay=0.05) as (_, urls):
        config = make_project(tmp_path, urls, fetch="workers = 2\nconcurrency = 8\n")
        cmd = [sys.executable, "-m", "archiver", "run", "--config", str(config), "--quiet"]
        for delay in (0.0, 0.05, 0.1, 0.2, 0.4, 0.7, 1.0):
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    start_new_session=True)
            # Until the run has forked (the fork server, or the workers), then ``delay``.
            deadline = time.monotonic() + 30
            while len(_group(proc.pid)) < 2 and time.monotonic() < deadline:
                time.sleep(0.005)
            time.sleep(delay)
            os.kill(proc.pid, signal.SIGKILL)  # the run's process only, not its group
            proc.wait(timeout=10)
            end = time.monotonic() + 10
            while _group(proc.pid) and time.monotonic() < end:
                time.sleep(0.05)
            assert _group(proc.pid) == [], f"killed {delay} s in, a process outlived the run"
        code, out, err = call("run", "--config", str(config))
        assert code == 0, out + err
    read_back(tmp_path)
