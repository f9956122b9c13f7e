"""The start of a run: from the command's launch to the first target handed to a worker.

    .venv/bin/python bench/start_bench.py [--urls N] [--rounds R] [--baseline CHECKOUT]

``archiver run`` (first run of a fresh project, ``[fetch] workers = 2``) on the speed
benchmark's nginx web (``speed_bench.py``: 50 hosts, no latency; ``--size`` bytes a page).
The run's process is wrapped (``runpy``) and ends itself (``os._exit``; its workers die with
it) once the first URL's result is back, so a round takes a few seconds. At the first target
handed out (``ProcessShards.capture``) and at the first result it reads:

* ``wall``: seconds since the command was launched (interpreter start-up included);
* ``run``: the run's process's CPU (``getrusage``);
* ``others``: the CPU of every other process the run started by then: the workers (read in
  ``/proc``) and those already ended and reaped (``RUSAGE_CHILDREN``: the fork server);
* ``wait``: how long the run's process waited for the fork server to fork the workers (0
  without one): the server was still importing when the run was ready.

With ``--baseline``, another checkout (e.g. ``git archive COMMIT | tar -x -C /tmp/base``)
runs on the same web, round by round in turn; both are compiled to bytecode first. Each
round prints one line per checkout; the medians close. On a shared machine the wall figures
move with the load; the CPU figures much less.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import speed_bench as sb  # noqa: E402
from capture_bench import NO_PROXY, write_project  # noqa: E402

WRAPPER = r'''
import json, os, resource, runpy, sys, time
T0 = float(os.environ["START_BENCH_T0"])
out = {"wait": 0.0}
def others():
    """CPU of the live descendants of this process, read in /proc."""
    parents, cpu = {}, {}
    tick = os.sysconf("SC_CLK_TCK")
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(name)] = int(fields[1])
            cpu[int(name)] = (int(fields[11]) + int(fields[12])) / tick
    todo, total = [p for p, pp in parents.items() if pp == os.getpid()], 0.0
    while todo:
        pid = todo.pop()
        total += cpu[pid]
        todo += [p for p, pp in parents.items() if pp == pid]
    return total
def mark(name):
    me = resource.getrusage(resource.RUSAGE_SELF)
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    out[name] = {"wall": time.monotonic() - T0, "run": me.ru_utime + me.ru_stime,
                 "others": others() + reaped.ru_utime + reaped.ru_stime}
import archiver.shards as shards
inner = shards.ProcessShards.capture
async def capture(self, target):
    if "first" not in out:
        mark("first")
    finished = await inner(self, target)
    mark("result")
    print("START-BENCH " + json.dumps(out), file=sys.stderr, flush=True)
    os._exit(0)
shards.ProcessShards.capture = capture
if hasattr(shards, "ForkServer"):
    fork = shards.ForkServer.fork_workers
    def fork_workers(self, *args, **kwargs):
        began = time.monotonic()
        try:
            return fork(self, *args, **kwargs)
        finally:
            out["wait"] = time.monotonic() - began
    shards.ForkServer.fork_workers = fork_workers
sys.argv = ["archiver", *sys.argv[1:]]
runpy.run_module("archiver", run_name="__main__")
'''

FIELDS = ("first.wall", "first.run", "first.others", "wait", "result.wall", "result.run",
          "result.others")


def one_run(repo: Path, project: Path) -> dict[str, float]:
    env = {**os.environ, **NO_PROXY, "PYTHONPATH": str(repo),
           "START_BENCH_T0": repr(time.monotonic())}
    done = subprocess.run(
        [sys.executable, "-c", WRAPPER, "run", "--config", str(project / "sources.toml"),
         "--quiet"], cwd=project, env=env, capture_output=True, text=True)
    lines = [line for line in done.stderr.splitlines() if line.startswith("START-BENCH ")]
    if not lines:
        raise SystemExit(f"{repo}: run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    got = json.loads(lines[-1].split(" ", 1)[1])
    flat = {"wait": float(got["wait"])}
    for moment in ("first", "result"):
        for key, value in got[moment].items():
            flat[f"{moment}.{key}"] = float(value)
    return flat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--urls", type=int, default=2000)
    parser.add_argument("--size", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--baseline", type=Path)
    args = parser.parse_args()
    repos = {"this": HERE.parent}
    if args.baseline:
        repos["baseline"] = args.baseline.resolve()
    for repo in repos.values():
        sb.compile_checkout(repo)
    work = Path(tempfile.mkdtemp(prefix="start-bench-"))
    scenario = sb.Scenario("start", args.urls, 50, args.size, 0.0, wget=False, lychee=False)
    web = sb.build_web(work / "web", scenario, sb.free_port())
    results: dict[str, list[dict[str, float]]] = {name: [] for name in repos}
    try:
        with sb.nginx(work, web, 0.0):
            write_project(work / "project", web.urls, argparse.Namespace(
                per_host=2, concurrency=128, host_interval=0.0, workers=2))
            for round_ in range(args.rounds):
                for name, repo in repos.items():
                    project = work / f"{name}-{round_}"
                    shutil.copytree(work / "project", project)
                    got = one_run(repo, project)
                    shutil.rmtree(project)
                    results[name].append(got)
                    print(f"round {round_ + 1} {name:8s} " + "  ".join(
                        f"{k} {got[k]:.3f}" for k in FIELDS)
                        + f"  load {os.getloadavg()[0]:.1f}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for name, runs in results.items():
        print(f"median   {name:8s} " + "  ".join(
            f"{k} {statistics.median(r[k] for r in runs):.3f}" for k in FIELDS))


if __name__ == "__main__":
    main()
