"""Capture benchmark (run by hand, not in CI): the archiver on a synthetic web.

Serves many hosts on 127.0.0.x (one small asyncio HTTP/1.1 server per address, in a child
process so that its CPU is not counted), each answer delayed by ``--latency`` seconds and
``--size`` bytes long (a path containing ``zz-archiver-probe`` answers 404, as an honest site
does for the soft-404 probe). Two things can be measured on it:

- the fetcher mode (default): ``Fetcher`` + ``WarcWriter`` alone, in this process;
- ``--pipeline``: the whole ``archiver run`` as users run it, in a child process, on a project
  folder written for the purpose (a Markdown briefing whose footnotes cite every URL once, a
  ``sources.toml`` with the same fetch settings and rescue off): parse, fetch, soft-404 probe,
  classify, record in the catalog, write the reports. The run is checked by counting the
  links whose verdict is ``ok`` in ``reports/*/report.json``;
- ``--both``: one then the other on the same server, plus the pipeline's CPU overhead per URL.

Then ``wget --warc-file`` runs on the same URL list as a baseline (unless ``--no-wget``).

Prints URLs per second, the ratio of the wall time to the physical limit (the slowest host's
requests / per_host concurrency × latency; or its requests × host_interval, or all requests /
global concurrency × latency, if larger; the pipeline's soft-404 probes count as requests),
CPU seconds per URL, peak memory (ru_maxrss) and the WARC sizes of both tools.
Targets: within 1.5× of the physical limit; peak memory under 300 MB at 10,000 URLs.

    .venv/bin/python bench/capture_bench.py                      # 3,000 URLs on 30 hosts
    .venv/bin/python bench/capture_bench.py --urls 10000 --hosts 50 --no-wget
    .venv/bin/python bench/capture_bench.py --pipeline --latency 0.2
    .venv/bin/python bench/capture_bench.py --both --urls 10000 --hosts 50 --no-wget
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import json
import math
import multiprocessing
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from archiver import retry, soft404
from archiver.config import FetchSettings
from archiver.fetch import Fetcher
from archiver.models import Capture
from archiver.warc import WarcWriter

REPO = Path(__file__).resolve().parent.parent
# Without a proxy: the synthetic web is on loopback.
NO_PROXY = {"no_proxy": "*", "http_proxy": "", "https_proxy": "", "HTTP_PROXY": "",
            "HTTPS_PROXY": ""}


def serve(hosts: list[str], port: int, latency: float, size: int, ready) -> None:
    """Child process: an HTTP/1.1 keep-alive server on every host, same port. Every path
    answers 200 with ``size`` bytes of HTML, except soft-404 probes, which answer 404."""
    filler = (b"<p>" + b"synthetic evidence " * 64 + b"</p>\n") * (size // 1219 + 1)
    missing = b"<html><body><h1>Not found</h1></body></html>"

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ", 2)[1]
                await asyncio.sleep(latency)
                if soft404.PROBE_MARKER.encode() in path:
                    status, body = b"404 Not Found", missing
                else:
                    status = b"200 OK"
                    body = (b"<html><body><h1>" + path + b"</h1>" + filler)[:size]
                writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Type: text/html\r\n"
                             b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        servers = [await asyncio.start_server(handle, host, port, backlog=512) for host in hosts]
        ready.set()
        await asyncio.gather(*(s.serve_forever() for s in servers))

    asyncio.run(main())


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.2", 0))
        return s.getsockname()[1]


def mb(nbytes: float) -> str:
    return f"{nbytes / 1e6:.1f} MB"


def physical_limit(requests: Sequence[str], hosts: Sequence[str], args: argparse.Namespace
                   ) -> tuple[float, int]:
    """The least wall time any fetcher obeying the limits could take for ``requests``, and
    the slowest host's request count: the slowest host's share, or the global concurrency
    limit if that binds first."""
    per_host = max(sum(1 for u in requests if f"//{h}:" in u) for h in hosts)
    limit = max(math.ceil(per_host / args.per_host) * args.latency,
                (per_host - 1) * args.host_interval,
                math.ceil(len(requests) / args.concurrency) * args.latency)
    return limit, per_host


@dataclass(frozen=True)
class Figures:
    """What one measured run did."""

    label: str
    urls: int
    ok: int
    other: int
    wall: float
    cpu: float
    peak_rss: float  # bytes
    warc: int  # bytes
    limit: float
    slowest: int  # the slowest host's requests
    note: str = ""

    @property
    def cpu_per_url(self) -> float:
        return self.cpu / self.urls

    def print(self) -> None:
        print(f"{self.label}: {self.ok} ok, {self.other} other{self.note}")
        print(f"  wall {self.wall:.2f} s   {self.urls / self.wall:.0f} URLs/s")
        print(f"  physical limit {self.limit:.2f} s (slowest host: {self.slowest} requests)   "
              f"ratio {self.wall / self.limit:.2f}x (target <= 1.5x)")
        print(f"  CPU {self.cpu:.1f} s = {self.cpu_per_url * 1000:.2f} ms per URL")
        print(f"  peak memory (ru_maxrss) {self.peak_rss / 1e6:.0f} MB (target < 300 MB)")
        print(f"  WARC {mb(self.warc)}")


def warc_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.glob("*.warc.gz"))


def fetcher_bench(urls: list[str], hosts: list[str], args: argparse.Namespace,
                  work: Path) -> Figures:
    """``Fetcher`` + ``WarcWriter`` alone, in this process."""
    settings = replace(FetchSettings(), allow_private_networks=True, per_host=args.per_host,
                       concurrency=args.concurrency, host_interval=args.host_interval,
                       timeout=30, deadline=120, retries=1)
    counts = {"ok": 0, "other": 0}

    def on_result(url: str, result: object) -> None:
        key = "ok" if isinstance(result, Capture) and result.status == 200 else "other"
        counts[key] += 1

    async def run() -> None:
        with WarcWriter(work / "archive", root=work, run_id="bench") as writer:
            async with Fetcher(settings, writer) as fetcher:
                await fetcher.fetch_all(urls, on_result=on_result)

    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    started = time.monotonic()
    with retry.testing(False):
        asyncio.run(run())
    wall = time.monotonic() - started
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    limit, slowest = physical_limit(urls, hosts, args)
    return Figures("fetcher + WARC writer (in process)", len(urls), counts["ok"],
                   counts["other"], wall, cpu, cpu1.ru_maxrss * 1024,
                   warc_bytes(work / "archive"), limit, slowest)


def write_project(folder: Path, urls: list[str], args: argparse.Namespace) -> Path:
    """A project folder citing every URL once; returns its ``sources.toml``."""
    folder.mkdir(parents=True)
    body = [f"Claim number {n} is supported by evidence.[^{n}]" for n in range(1, len(urls) + 1)]
    notes = [f"[^{n}]: See <{url}>." for n, url in enumerate(urls, 1)]
    (folder / "briefing.md").write_text(
        "# Synthetic briefing\n\n" + " ".join(body) + "\n\n" + "\n".join(notes) + "\n")
    config = folder / "sources.toml"
    # An archiver from before [fetch] workers refuses the key: written only when set.
    workers = getattr(args, "workers", None)
    workers = f"workers = {workers}\n" if workers is not None else ""
    config.write_text(f"""\
[[sources]]
id = "bench"
path = "briefing.md"
title = "Synthetic briefing"
published = 2020-11-01

[fetch]
allow_private_networks = true
per_host = {args.per_host}
concurrency = {args.concurrency}
host_interval = {args.host_interval}
timeout = 30
deadline = 120
retries = 1
{workers}
[rescue]
enabled = false
""")
    return config


def pipeline_bench(urls: list[str], hosts: list[str], args: argparse.Namespace,
                   work: Path) -> Figures:
    """``python -m archiver run --quiet`` in a child process, measured with ``wait4``."""
    project = work / "project"
    config = write_project(project, urls, args)
    probes = {soft404.probe_key(u) for u in urls if soft404.worth_probing(u)}
    # Each probe is one request to its host, in a directory no cited URL names.
    requests = urls + [f"{origin}{directory}{soft404.PROBE_MARKER}"
                       for origin, directory in sorted(probes)]
    limit, slowest = physical_limit(requests, hosts, args)

    # Bytecode first, as an installed archiver has it (PYTHONDONTWRITEBYTECODE would make
    # the child compile every module again, CPU that is not the archiver's).
    compileall.compile_dir(str(REPO / "archiver"), quiet=1)
    command = [sys.executable, "-m", "archiver", "run", "--config", str(config), "--quiet"]
    if args.profile:
        command[1:1] = ["-m", "cProfile", "-o", str(args.profile)]
    env = {**os.environ, **NO_PROXY, "PYTHONPATH": str(REPO)}
    with open(work / "run.out", "wb") as out, open(work / "run.err", "wb") as err:
        started = time.monotonic()
        child = subprocess.Popen(command, cwd=project, stdout=out, stderr=err, env=env)
        # wait4 gives this child's own usage, not that of every child waited for so far.
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.monotonic() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        sys.stdout.write((work / "run.out").read_text() + (work / "run.err").read_text())
        raise SystemExit(f"archiver run exited {child.returncode}")

    verdicts: Counter[str] = Counter()
    for report in (project / "reports").glob("*/report.json"):
        for link in json.loads(report.read_text())["links"]:
            verdicts[link["verdict"] or "unchecked"] += 1
    others = ", ".join(f"{k} {v}" for k, v in sorted(verdicts.items()) if k != "ok")
    return Figures(f"archiver run (child process, {len(probes)} soft-404 probes)", len(urls),
                   verdicts["ok"], sum(verdicts.values()) - verdicts["ok"], wall,
                   usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024,
                   warc_bytes(project / "archive"), limit, slowest,
                   note=f" ({others})" if others else "")


def wget_baseline(urls: list[str], work: Path, limit: float, ours: Sequence[Figures]) -> None:
    """``wget --warc-file`` on the same URLs (one connection, sequential); ``limit`` is the
    physical limit of the URLs alone (wget sends no probes)."""
    listing = work / "urls.txt"
    listing.write_text("\n".join(urls) + "\n")
    (work / "wget").mkdir()
    started = time.monotonic()
    child = subprocess.Popen(
        ["wget", "--quiet", "--input-file", str(listing), "--warc-file",
         str(work / "wget" / "baseline"), "--no-warc-keep-log", "--tries=2",
         "--timeout=30", "-e", "robots=off", "--delete-after",
         "--directory-prefix", str(work / "wget" / "files")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **NO_PROXY},
    )
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.monotonic() - started
    theirs = warc_bytes(work / "wget")
    print(f"wget --warc-file (one connection, sequential): exit "
          f"{os.waitstatus_to_exitcode(status)}")
    print(f"  wall {wall:.2f} s   {len(urls) / wall:.0f} URLs/s   ratio {wall / limit:.2f}x")
    print(f"  CPU {usage.ru_utime + usage.ru_stime:.1f} s   "
          f"peak memory {usage.ru_maxrss * 1024 / 1e6:.0f} MB")
    if not theirs:
        print("  no WARC written")
        return
    for figures in ours:
        print(f"  WARC {mb(theirs)}   vs {figures.label}: {mb(figures.warc)}, "
              f"{figures.warc / theirs:.2f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--urls", type=int, default=3000)
    parser.add_argument("--hosts", type=int, default=30)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per answer")
    parser.add_argument("--size", type=int, default=10_000, help="body bytes")
    parser.add_argument("--per-host", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--workers", type=int, default=0,
                        help="[fetch] workers of the pipeline run (0: one per core)")
    parser.add_argument("--host-interval", type=float, default=0.0)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--pipeline", action="store_true",
                      help="run the whole 'archiver run' (child process) instead of the fetcher")
    mode.add_argument("--both", action="store_true",
                      help="the fetcher, then the whole pipeline, and the difference")
    parser.add_argument("--profile", type=Path, metavar="FILE",
                        help="with --pipeline/--both: cProfile the run into FILE (slows it)")
    parser.add_argument("--no-wget", action="store_true", help="skip the wget baseline")
    args = parser.parse_args()

    hosts = [f"127.0.0.{i + 2}" for i in range(args.hosts)]
    port = free_port()
    urls = [f"http://{hosts[i % len(hosts)]}:{port}/page/{i}" for i in range(args.urls)]

    ready = multiprocessing.Event()
    server = multiprocessing.Process(target=serve, daemon=True,
                                     args=(hosts, port, args.latency, args.size, ready))
    server.start()
    ready.wait(30)
    work = Path(tempfile.mkdtemp(prefix="capture-bench-"))
    if args.profile:
        args.profile = args.profile.resolve()
    try:
        print(f"synthetic web: {len(urls)} URLs on {len(hosts)} hosts, latency "
              f"{args.latency * 1000:.0f} ms, {args.size} B bodies; per_host {args.per_host}, "
              f"concurrency {args.concurrency}, host_interval {args.host_interval}s")
        results = []
        if not args.pipeline:
            results.append(fetcher_bench(urls, hosts, args, work / "fetcher"))
            results[-1].print()
        if args.pipeline or args.both:
            results.append(pipeline_bench(urls, hosts, args, work / "pipeline"))
            results[-1].print()
        if args.both:
            fetcher, pipeline = results
            print(f"pipeline overhead: {(pipeline.cpu_per_url - fetcher.cpu_per_url) * 1000:.2f}"
                  f" ms CPU per URL, {(pipeline.peak_rss - fetcher.peak_rss) / 1e6:+.0f} MB peak"
                  f" memory, {pipeline.wall - fetcher.wall:+.2f} s wall")
        if not args.no_wget and shutil.which("wget"):
            wget_baseline(urls, work, physical_limit(urls, hosts, args)[0], results)
    finally:
        server.terminate()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
