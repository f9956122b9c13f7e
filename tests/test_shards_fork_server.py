"""The fork server (``archiver.shards.ForkServer``) seen from the process that runs: what it
changes in that process is put back, and it does not outlive its use."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

import pytest

from archiver import shards
from archiver.config import load_settings
from tests.test_run import call, make_project, read_back
from tests.test_shards import _children, fetches, hosts

_PR_GET_CHILD_SUBREAPER = 37


def _subreaper() -> int:
    value = ctypes.c_int(-1)
    assert ctypes.CDLL(None, use_errno=True).prctl(
        _PR_GET_CHILD_SUBREAPER, ctypes.byref(value), 0, 0, 0) == 0
    return value.value


@pytest.mark.timeout(180)
def test_a_run_leaves_the_callers_subreaper_setting_as_it_found_it(tmp_path: Path) -> None:
    """A program that is a child subreaper itself (a supervisor, a container's init) and
    runs the archiver in-process is one still when the run has adopted its workers."""
    before = _subreaper()
    assert shards._prctl(shards._PR_SET_CHILD_SUBREAPER, 1)
    try:
        with hosts(4, 20) as (servers, urls):
            config = make_project(tmp_path, urls, fetch="workers = 2\nconcurrency = 8\n")
            code, out, err = call("run", "--config", str(config))
            assert code == 0, out + err
            assert set(fetches(servers).values()) == {1}
        assert _subreaper() == 1
    finally:
        shards._prctl(shards._PR_SET_CHILD_SUBREAPER, before)
    read_back(tmp_path)


@pytest.mark.timeout(180)
def test_a_run_with_nothing_to_fetch_ends_its_fork_server_before_the_tail(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every link was checked recently: no worker will be forked, and the fork server (its
    memory, the workers' modules) is ended as soon as that is known, not kept through the
    link records, claim support and reports."""
    from archiver import pipeline

    with hosts(4, 20) as (servers, urls):
        config = make_project(tmp_path, urls, fetch="workers = 2\nconcurrency = 8\n")
        code, out, err = call("run", "--config", str(config))
        assert code == 0, out + err
        children_then: list[list[int]] = []
        write_reports = pipeline._write_reports

        def writing(*args: object, **kwargs: object) -> object:
            children_then.append(_children(os.getpid()))
            return write_reports(*args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(pipeline, "_write_reports", writing)
        code, out, err = call("run", "--config", str(config))
        assert code == 0, out + err
        assert "fetched 0" in out
        assert set(fetches(servers).values()) == {1}  # nothing fetched twice
    assert children_then == [[]]
    read_back(tmp_path)


@pytest.mark.timeout(120)
def test_a_run_of_one_small_source_starts_no_fork_server_for_the_others(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``run --source small``: the project's large source, which this run does not read,
    does not make it start a fork server (the workers' imports, for nothing)."""
    config = make_project(tmp_path, [f"http://127.0.0.1:9/large/{i}" for i in range(400)])
    (tmp_path / "sources" / "small.md").write_text(
        "# Small\n\nA claim.[^1]\n\n[^1]: See <http://127.0.0.1:9/small>.\n", encoding="utf-8")
    config.write_text('[[sources]]\nid = "small"\npath = "sources/small.md"\n'
                      'title = "Small"\npublished = 2020-11-01\n\n' + config.read_text(),
                      encoding="utf-8")
    started: list[object] = []
    start = shards.ForkServer.start.__func__  # type: ignore[attr-defined]

    def counted(cls: type[shards.ForkServer], settings: object) -> shards.ForkServer | None:
        started.append(settings)
        return start(cls, settings)  # type: ignore[no-any-return]

    monkeypatch.setattr(shards.ForkServer, "start", classmethod(counted))
    code, out, err = call("run", "--config", str(config), "--source", "small")
    assert code in (0, 1), out + err  # the one link is dead: a finding, not a failure
    assert "1 cited URL(s) in 1 source(s)" in out
    assert started == []
    # The whole project, its large source read too, may use workers: a server is worth it.
    assert shards._may_fork(load_settings(config)) == (len(os.sched_getaffinity(0)) > 1)


_SLOW_START = """
import sys, time
from archiver import shards, cli
serve = shards._serve_forks

def slow(*args):  # the moment between the server's fork and its first line, widened
    time.sleep(1.5)
    serve(*args)

shards._serve_forks = slow
sys.exit(cli.main())
"""


@pytest.mark.timeout(120)
def test_ctrl_c_as_the_fork_server_starts_does_not_run_the_runs_code_in_it(
        tmp_path: Path) -> None:
    """Ctrl-C reaches every process of the terminal's group: one that reaches the fork
    server just after its fork, before it ignores Ctrl-C, does not unwind through the run's
    code in the server (a second "interrupted" run, its cleanups twice)."""
    import signal
    import subprocess
    import sys
    import time

    with hosts(4, 20) as (servers, urls):
        config = make_project(tmp_path, urls, fetch="workers = 2\nconcurrency = 8\n")
        proc = subprocess.Popen(
            [sys.executable, "-c", _SLOW_START, "run", "--config", str(config), "--quiet"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.monotonic() + 30
        while not (server := _children(proc.pid)) and time.monotonic() < deadline:
            time.sleep(0.005)
        assert server, "no fork server was started"
        time.sleep(0.3)
        os.kill(server[0], signal.SIGINT)  # the server only: the run goes on
        _out, err = proc.communicate(timeout=90)
        assert proc.returncode == 0, err.decode()
        assert b"interrupted" not in err
        assert set(fetches(servers).values()) == {1}
    read_back(tmp_path)


@pytest.mark.timeout(180)
def test_the_collector_waits_for_the_fetching_in_the_run_its_server_and_its_workers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Until its workers are forked, a run makes no garbage for the collector to find
    (imports, documents, targets), nor does its fork server: the collector is off in both
    while they start, and on in the workers from their start, in the run once fetching
    starts, and in the caller's process as before once the run has ended."""
    import gc

    seen = tmp_path / "collector"
    seen.mkdir()

    def note(where: str) -> None:  # in whichever process: a file each
        (seen / f"{where}-{os.getpid()}").write_text(str(gc.isenabled()))

    start = shards.ForkServer.start.__func__  # type: ignore[attr-defined]

    def starting(cls: type[shards.ForkServer], settings: object) -> shards.ForkServer | None:
        note("run-forking-the-server")
        return start(cls, settings)  # type: ignore[no-any-return]

    preload, serve = shards._preload, shards._serve

    def preloading(*args: object, **kwargs: object) -> None:
        note("server-importing")
        preload(*args, **kwargs)  # type: ignore[arg-type]

    async def serving(*args: object) -> None:
        note("worker")
        await serve(*args)  # type: ignore[arg-type]

    capture = shards.ProcessShards.capture

    async def capturing(self: shards.ProcessShards, target: object) -> object:
        note("run-fetching")
        return await capture(self, target)  # type: ignore[arg-type]

    monkeypatch.setattr(shards.ForkServer, "start", classmethod(starting))
    monkeypatch.setattr(shards, "_preload", preloading)  # inherited by the server
    monkeypatch.setattr(shards, "_serve", serving)  # and by the workers it forks
    monkeypatch.setattr(shards.ProcessShards, "capture", capturing)
    assert gc.isenabled()
    with hosts(4, 20) as (_, urls):
        config = make_project(tmp_path, urls, fetch="workers = 2\nconcurrency = 8\n")
        code, out, err = call("run", "--config", str(config))
        assert code == 0, out + err
    assert gc.isenabled()
    states: dict[str, set[str]] = {}
    for path in seen.iterdir():
        states.setdefault(path.name.rsplit("-", 1)[0], set()).add(path.read_text())
    assert states == {"run-forking-the-server": {"False"}, "server-importing": {"False"},
                      "worker": {"True"}, "run-fetching": {"True"}}
    assert len(list(seen.glob("worker-*"))) == 2
    read_back(tmp_path)
