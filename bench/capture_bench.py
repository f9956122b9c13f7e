"""Capture benchmark (run by hand, not in CI): the fetcher + WARC writer on a synthetic web.

Serves many hosts on 127.0.0.x (one small asyncio HTTP/1.1 server per address, in a child
process so that its CPU is not counted), each answer delayed by ``--latency`` seconds and
``--size`` bytes long; fetches every URL with ``Fetcher`` + ``WarcWriter`` (private networks
allowed); then runs ``wget --warc-file`` on the same URL list as a baseline.

Prints URLs per second, the ratio of the wall time to the physical limit (the slowest host's
requests / per_host concurrency × latency; or its requests × host_interval, or all requests /
global concurrency × latency, if larger), CPU seconds per URL, peak memory (ru_maxrss) and
the WARC sizes of both tools.
Targets: within 1.5× of the physical limit; peak memory under 300 MB at 10,000 URLs.

    .venv/bin/python bench/capture_bench.py                      # 3,000 URLs on 30 hosts
    .venv/bin/python bench/capture_bench.py --urls 10000 --hosts 50 --no-wget
"""

from __future__ import annotations

import argparse
import asyncio
import math
import multiprocessing
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from archiver import retry
from archiver.config import FetchSettings
from archiver.fetch import Fetcher
from archiver.models import Capture
from archiver.warc import WarcWriter


def serve(hosts: list[str], port: int, latency: float, size: int, ready) -> None:
    """Child process: an HTTP/1.1 keep-alive server on every host, same port."""
    filler = (b"<p>" + b"synthetic evidence " * 64 + b"</p>\n") * (size // 1219 + 1)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ", 2)[1]
                await asyncio.sleep(latency)
                body = (b"<html><body><h1>" + path + b"</h1>" + filler)[:size]
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--urls", type=int, default=3000)
    parser.add_argument("--hosts", type=int, default=30)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per answer")
    parser.add_argument("--size", type=int, default=10_000, help="body bytes")
    parser.add_argument("--per-host", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--host-interval", type=float, default=0.0)
    parser.add_argument("--no-wget", action="store_true", help="skip the wget baseline")
    args = parser.parse_args()

    hosts = [f"127.0.0.{i + 2}" for i in range(args.hosts)]
    port = free_port()
    urls = [f"http://{hosts[i % len(hosts)]}:{port}/page/{i}" for i in range(args.urls)]
    per_host = max(sum(1 for u in urls if f"//{h}:" in u) for h in hosts)
    # The slowest host's share, or the global concurrency limit if that binds first.
    limit = max(math.ceil(per_host / args.per_host) * args.latency,
                (per_host - 1) * args.host_interval,
                math.ceil(len(urls) / args.concurrency) * args.latency)

    ready = multiprocessing.Event()
    server = multiprocessing.Process(target=serve, daemon=True,
                                     args=(hosts, port, args.latency, args.size, ready))
    server.start()
    ready.wait(30)
    work = Path(tempfile.mkdtemp(prefix="capture-bench-"))
    try:
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
        ours = sum(p.stat().st_size for p in (work / "archive").glob("*.warc.gz"))

        print(f"synthetic web: {len(urls)} URLs on {len(hosts)} hosts, latency "
              f"{args.latency * 1000:.0f} ms, {args.size} B bodies; per_host {args.per_host}, "
              f"concurrency {args.concurrency}, host_interval {args.host_interval}s")
        print(f"archiver: {counts['ok']} ok, {counts['other']} other")
        print(f"  wall {wall:.2f} s   {len(urls) / wall:.0f} URLs/s")
        print(f"  physical limit {limit:.2f} s (slowest host: {per_host} requests)   "
              f"ratio {wall / limit:.2f}x (target <= 1.5x)")
        print(f"  CPU {cpu:.1f} s = {cpu / len(urls) * 1000:.2f} ms per URL")
        print(f"  peak memory (ru_maxrss) {cpu1.ru_maxrss / 1024:.0f} MB (target < 300 MB)")
        print(f"  WARC {mb(ours)}")

        if not args.no_wget and shutil.which("wget"):
            listing = work / "urls.txt"
            listing.write_text("\n".join(urls) + "\n")
            (work / "wget").mkdir()
            started = time.monotonic()
            done = subprocess.run(
                ["wget", "--quiet", "--input-file", str(listing), "--warc-file",
                 str(work / "wget" / "baseline"), "--no-warc-keep-log", "--tries=2",
                 "--timeout=30", "-e", "robots=off", "--delete-after",
                 "--directory-prefix", str(work / "wget" / "files")],
                check=False, capture_output=True,
                env={**os.environ, "no_proxy": "*", "http_proxy": "", "https_proxy": ""},
            )
            wget_wall = time.monotonic() - started
            usage = resource.getrusage(resource.RUSAGE_CHILDREN)
            theirs = sum(p.stat().st_size for p in (work / "wget").glob("*.warc.gz"))
            print(f"wget --warc-file (one connection, sequential): exit {done.returncode}")
            print(f"  wall {wget_wall:.2f} s   {len(urls) / wget_wall:.0f} URLs/s   "
                  f"ratio {wget_wall / limit:.2f}x")
            print(f"  CPU {usage.ru_utime + usage.ru_stime:.1f} s   "
                  f"peak memory {usage.ru_maxrss / 1024:.0f} MB")
            print(f"  WARC {mb(theirs)}   (archiver {mb(ours)}, "
                  f"{ours / theirs:.2f}x)" if theirs else "  no WARC written")
    finally:
        server.terminate()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
