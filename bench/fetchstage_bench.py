"""The run's own process while fetching: CPU, wall, and how long its event loop was held.

    .venv/bin/python bench/fetchstage_bench.py [--urls N] [--latency S] [--rounds R]
                                               [--workers W] [--baseline CHECKOUT]

``archiver run`` (first run of a fresh project, 2 worker processes or ``--workers``) on the
speed benchmark's nginx web (``speed_bench.py``: 50 hosts, 20 KB pages, 10% real 404s,
``--latency`` per answer). The run's process is wrapped (``runpy``) to measure, during
``_fetch_and_judge`` only (the stage where it hands targets to the workers and records their
results):

* ``cpu``: its CPU time (``getrusage`` of the process: every thread), ``wall``: the stage's;
* ``held``: the event loop's callbacks that ran 5 ms or longer, added up (a callback that
  long delays every dispatch and every result behind it), and of that the part spent off
  the CPU (waiting for the disk: commits, checkpoints, fsync; or descheduled on a busy
  machine), and the longest one;
* ``flush``: the time ``Recorder.flush`` held the loop (all of the recorder's writing before
  it moved to a thread; after, only the final flush);
* ``start``: seconds from the interpreter's start to the stage (imports, reading the
  document, planning).

With ``--baseline``, another checkout (e.g. ``git worktree add /tmp/base <commit>``) runs on
the same web, round by round in turn; both are compiled to bytecode first. Each round prints
one line per checkout; the medians close.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import speed_bench as sb  # noqa: E402
from capture_bench import NO_PROXY, write_project  # noqa: E402

WRAPPER = r'''
import os, resource, runpy, sys, time
T0 = time.monotonic()
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
import asyncio.events
import archiver.pipeline as pipeline
import archiver.recording as recording
stats = {"in": False, "held": 0.0, "off": 0.0, "longest": 0.0, "flush": 0.0}
inner = pipeline._fetch_and_judge
async def fetch_and_judge(*args, **kwargs):
    stats["start"] = time.monotonic() - T0
    c0, w0 = cpu(), time.monotonic()
    stats["in"] = True
    try:
        return await inner(*args, **kwargs)
    finally:
        stats["in"] = False
        stats["cpu"], stats["wall"] = cpu() - c0, time.monotonic() - w0
pipeline._fetch_and_judge = fetch_and_judge
run = asyncio.events.Handle._run
def timed(self):
    w, c = time.perf_counter(), time.thread_time()
    run(self)
    held = time.perf_counter() - w
    if held >= 0.005 and stats["in"]:
        stats["held"] += held
        stats["off"] += held - (time.thread_time() - c)
        stats["longest"] = max(stats["longest"], held)
asyncio.events.Handle._run = timed
flush = recording.Recorder.flush
def timed_flush(self):
    w = time.perf_counter()
    try:
        return flush(self)
    finally:
        stats["flush"] += time.perf_counter() - w
recording.Recorder.flush = timed_flush
import atexit
atexit.register(lambda: print("STAGE " + " ".join(
    f"{k}={v:.3f}" for k, v in stats.items() if k != "in"), file=sys.stderr))
sys.argv = ["archiver"] + sys.argv[1:]
runpy.run_module("archiver", run_name="__main__")
'''

FIELDS = ("cpu", "wall", "held", "off", "longest", "flush", "start")


def one_run(repo: Path, web: sb.Web, folder: Path, workers: int) -> dict[str, float]:
    args = argparse.Namespace(per_host=2, concurrency=128, host_interval=0.0, workers=workers)
    config = write_project(folder, web.urls, args)
    env = {**os.environ, **NO_PROXY, "PYTHONPATH": str(repo)}
    done = subprocess.run([sys.executable, "-c", WRAPPER, "run", "--config", str(config),
                           "--quiet"], env=env, cwd=folder, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    lines = [line for line in done.stderr.splitlines() if line.startswith("STAGE ")]
    if done.returncode not in (0, 1) or not lines:
        raise SystemExit(f"{repo}: run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return {k: float(v) for k, v in (pair.split("=") for pair in lines[-1].split()[1:])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--urls", type=int, default=2000)
    parser.add_argument("--size", type=int, default=20000)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2,
                        help="[fetch] workers (1: the capture stage in the run's process)")
    parser.add_argument("--baseline", type=Path)
    args = parser.parse_args()
    repos = {"this": HERE.parent}
    if args.baseline:
        repos["baseline"] = args.baseline.resolve()
    for repo in repos.values():
        sb.compile_checkout(repo)
    work = Path(tempfile.mkdtemp(prefix="fetchstage-bench-"))
    scenario = sb.Scenario("fetchstage", args.urls, 50, args.size, args.latency,
                           wget=False, lychee=False)
    web = sb.build_web(work / "web", scenario, sb.free_port())
    results: dict[str, list[dict[str, float]]] = {name: [] for name in repos}
    with sb.nginx(work, web, args.latency):
        for round_ in range(args.rounds):
            for name, repo in repos.items():
                got = one_run(repo, web, work / f"{name}-{round_}", args.workers)
                results[name].append(got)
                print(f"round {round_ + 1} {name:8s} " + "  ".join(
                    f"{k} {got.get(k, 0.0):.3f}" for k in FIELDS)
                    + f"  load {os.getloadavg()[0]:.1f}", flush=True)
    for name, runs in results.items():
        print(f"median   {name:8s} " + "  ".join(
            f"{k} {statistics.median(r.get(k, 0.0) for r in runs):.3f}" for k in FIELDS)
            + f"  ({args.urls} URLs: cpu "
            f"{statistics.median(r['cpu'] for r in runs) / args.urls * 1000:.2f} ms/URL)")


if __name__ == "__main__":
    main()
