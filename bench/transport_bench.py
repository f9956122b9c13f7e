"""HTTP client benchmark (run by hand, not in CI): CPU time per request of each way to speak
HTTP that the fetcher could use, on the same loopback server.

The server runs in its own process(es), so its CPU is not counted: nginx when installed (one
worker), else a small asyncio keep-alive server. It serves ``--hosts`` addresses 127.0.0.x on
one port, every answer ``--size`` bytes (20 KB by default), keep-alive. Every client makes
``--requests`` requests, ``--concurrency`` at a time (spread evenly over the hosts, so
concurrency ÷ hosts connections to each, all kept alive), and reads every body to the end as
bytes came over the wire (no decoding). The CPU time of this process (user + system) is
divided by the number of requests.

Clients, each run ``--repeat`` times, alternating, medians printed:

- ``fetcher``: ``archiver.fetch.Fetcher.fetch`` as the pipeline calls it (address guard,
  per-host gates, retries, phase trace, cookies, raw heads, body spool, digest, decoding),
  without a WARC writer;
- ``fetcher-stack``: the same client stack the fetcher builds (one ``httpx.AsyncClient`` per
  host, the guarded httpcore pool, the trace extension), called directly as the fetcher
  calls it (``send_direct``; ``send`` in an older checkout): ``fetcher`` minus this is the
  cost of the fetcher's own wrapper;
- ``fetcher-aiohttp``, ``fetcher-stack-aiohttp``: the same two with ``[fetch] transport =
  "aiohttp"`` (``archiver.aiotransport`` under httpx instead of the guarded httpcore pool);
  ``fetcher`` and ``fetcher-stack`` are on ``"httpcore"``;
- ``fetcher-anyio``, ``fetcher-stack-anyio``: the same two over httpcore's own AnyIO
  network streams instead of ``archiver.netstream`` (the address guard still resolves and
  checks): the difference is what the asyncio streams save;
- ``httpx``: a plain ``httpx.AsyncClient`` (HTTP/1.1 only, no trace), one for all hosts;
- ``httpx-aiohttp``: ``httpx.AsyncClient`` over ``httpx_aiohttp.AiohttpTransport``;
- ``aiohttp``: a plain ``aiohttp.ClientSession``.

The aiohttp clients are skipped when aiohttp / httpx-aiohttp cannot be imported (they are not
dependencies of the archiver; ``pip install --target DIR aiohttp httpx-aiohttp`` and
``PYTHONPATH=DIR`` are enough to measure them).

    .venv/bin/python bench/transport_bench.py
    .venv/bin/python bench/transport_bench.py --requests 3000 --repeat 7 --clients fetcher httpx
    .venv/bin/python bench/transport_bench.py --clients fetcher fetcher-anyio --loops asyncio uvloop

``--loops asyncio uvloop`` runs every client on both event loops in turn (uvloop must be
importable).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from archiver import retry
from archiver.config import FetchSettings
from archiver.fetch import Fetcher
from archiver.guard import AddressGuard
from archiver.models import Capture

NO_PROXY = {"no_proxy": "*", "http_proxy": "", "https_proxy": "", "HTTP_PROXY": "",
            "HTTPS_PROXY": "", "all_proxy": "", "ALL_PROXY": ""}

Get = Callable[[str], Awaitable[int]]  # fetch a URL, read its body; returns its byte count


# ── the server ──────────────────────────────────────────────────────────────


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def nginx(hosts: list[str], port: int, size: int) -> Iterator[None]:
    with tempfile.TemporaryDirectory(prefix="transport-bench-") as tmp:
        root = Path(tmp)
        root.chmod(0o755)  # nginx's workers run as an unprivileged user
        (root / "www").mkdir()
        (root / "www" / "page.html").write_bytes((b"<p>synthetic evidence</p>\n" * size)[:size])
        listens = "\n".join(f"    listen {host}:{port};" for host in hosts)
        (root / "nginx.conf").write_text(f"""
daemon off;
worker_processes 1;
error_log {root}/error.log warn;
pid {root}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 60s;
  client_body_temp_path {root}/tmp;
  proxy_temp_path {root}/tmp;
  fastcgi_temp_path {root}/tmp;
  uwsgi_temp_path {root}/tmp;
  scgi_temp_path {root}/tmp;
  server {{
{listens}
    root {root}/www;
    default_type text/html;
    location / {{ rewrite ^ /page.html break; }}
  }}
}}
""")
        child = subprocess.Popen(["nginx", "-p", str(root), "-c", str(root / "nginx.conf")],
                                 stderr=subprocess.DEVNULL)
        try:
            wait_listening(hosts[0], port)
            yield
        finally:
            child.terminate()
            child.wait()


def serve_asyncio(hosts: list[str], port: int, size: int) -> None:
    body = (b"<p>synthetic evidence</p>\n" * size)[:size]
    answer = (b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: "
              + str(size).encode() + b"\r\n\r\n" + body)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(answer)
                await writer.drain()
        writer.close()

    async def main() -> None:
        servers = [await asyncio.start_server(handle, h, port, backlog=512) for h in hosts]
        await asyncio.gather(*(s.serve_forever() for s in servers))

    asyncio.run(main())


@contextlib.contextmanager
def asyncio_server(hosts: list[str], port: int, size: int) -> Iterator[None]:
    child = multiprocessing.get_context("spawn").Process(
        target=serve_asyncio, args=(hosts, port, size), daemon=True)
    child.start()
    try:
        wait_listening(hosts[0], port)
        yield
    finally:
        child.terminate()
        child.join()


def wait_listening(host: str, port: int) -> None:
    for _ in range(200):
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server on {host}:{port} did not start")


# ── the clients ─────────────────────────────────────────────────────────────


def settings_for(args: argparse.Namespace, transport: str = "httpcore") -> FetchSettings:
    return replace(FetchSettings(), per_host=args.concurrency // args.hosts,
                   concurrency=args.concurrency, host_interval=0.0, timeout=30,
                   deadline=120, retries=1, http2=False, transport=transport)


@contextlib.asynccontextmanager
async def fetcher_client(args: argparse.Namespace, port: int, transport: str = "httpcore"):
    guard = AddressGuard.allowing((h, port) for h in args.host_list)
    async with Fetcher(settings_for(args, transport), None, guard=guard) as fetcher:
        async def get(url: str) -> int:
            result = await fetcher.fetch(url)
            assert isinstance(result, Capture) and result.status == 200, result
            return result.body_bytes
        yield get


@contextlib.asynccontextmanager
async def fetcher_stack_client(args: argparse.Namespace, port: int,
                               transport: str = "httpcore"):
    from archiver.fetch import PhaseTrace

    guard = AddressGuard.allowing((h, port) for h in args.host_list)
    async with Fetcher(settings_for(args, transport), None, guard=guard) as fetcher:
        async def get(url: str) -> int:
            client = fetcher._client_for(httpx.URL(url).host)
            request = client.build_request("GET", url, extensions={"trace": PhaseTrace()})
            # The fetcher's way in to its client (``send_direct``), or ``send`` in a checkout
            # that predates it.
            direct = getattr(client, "send_direct", None)
            response = await (direct(request) if direct is not None
                              else client.send(request, stream=True))
            size = 0
            async for chunk in response.aiter_raw():
                size += len(chunk)
            await response.aclose()
            return size
        yield get


@contextlib.asynccontextmanager
async def fetcher_aiohttp_client(args: argparse.Namespace, port: int):
    async with fetcher_client(args, port, "aiohttp") as get:
        yield get


@contextlib.asynccontextmanager
async def fetcher_stack_aiohttp_client(args: argparse.Namespace, port: int):
    async with fetcher_stack_client(args, port, "aiohttp") as get:
        yield get


@contextlib.contextmanager
def anyio_streams() -> Iterator[None]:
    """``GuardedBackend`` connecting through httpcore's AnyIO backend, as it did before
    ``archiver.netstream``."""
    import httpcore

    from archiver import netstream

    own = netstream.connect_tcp
    netstream.connect_tcp = httpcore.AnyIOBackend().connect_tcp  # type: ignore[assignment]
    try:
        yield
    finally:
        netstream.connect_tcp = own


@contextlib.asynccontextmanager
async def fetcher_anyio_client(args: argparse.Namespace, port: int):
    with anyio_streams():
        async with fetcher_client(args, port) as get:
            yield get


@contextlib.asynccontextmanager
async def fetcher_stack_anyio_client(args: argparse.Namespace, port: int):
    with anyio_streams():
        async with fetcher_stack_client(args, port) as get:
            yield get


@contextlib.asynccontextmanager
async def httpx_client(args: argparse.Namespace, port: int):
    limits = httpx.Limits(max_connections=args.concurrency,
                          max_keepalive_connections=args.concurrency)
    async with httpx.AsyncClient(http2=False, limits=limits, trust_env=False) as client:
        async def get(url: str) -> int:
            async with client.stream("GET", url) as response:
                size = 0
                async for chunk in response.aiter_raw():
                    size += len(chunk)
                return size
        yield get


@contextlib.asynccontextmanager
async def httpx_aiohttp_client(args: argparse.Namespace, port: int):
    from httpx_aiohttp import AiohttpTransport

    limits = httpx.Limits(max_connections=args.concurrency,
                          max_keepalive_connections=args.concurrency)
    transport = AiohttpTransport(limits=limits, trust_env=False)
    async with httpx.AsyncClient(transport=transport, trust_env=False) as client:
        async def get(url: str) -> int:
            async with client.stream("GET", url) as response:
                size = 0
                async for chunk in response.aiter_raw():
                    size += len(chunk)
                return size
        yield get


@contextlib.asynccontextmanager
async def aiohttp_client(args: argparse.Namespace, port: int):
    import aiohttp

    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
        async def get(url: str) -> int:
            async with session.get(url) as response:
                size = 0
                async for chunk in response.content.iter_any():
                    size += len(chunk)
                return size
        yield get


CLIENTS = {
    "fetcher": fetcher_client,
    "fetcher-stack": fetcher_stack_client,
    "fetcher-aiohttp": fetcher_aiohttp_client,
    "fetcher-stack-aiohttp": fetcher_stack_aiohttp_client,
    "fetcher-anyio": fetcher_anyio_client,
    "fetcher-stack-anyio": fetcher_stack_anyio_client,
    "httpx": httpx_client,
    "httpx-aiohttp": httpx_aiohttp_client,
    "aiohttp": aiohttp_client,
}


def available(name: str) -> bool:
    module = {"httpx-aiohttp": "httpx_aiohttp", "aiohttp": "aiohttp",
              "fetcher-aiohttp": "aiohttp", "fetcher-stack-aiohttp": "aiohttp"}.get(name)
    if module is None:
        return True
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(name: str, args: argparse.Namespace, port: int,
            loop: str = "asyncio") -> tuple[float, float]:
    """One run of ``name`` on ``loop`` (``asyncio`` or ``uvloop``): (CPU ms per request,
    wall seconds). A warm-up round (one request per connection) opens the connections
    first; it is not counted."""
    urls = [f"http://{args.host_list[i % args.hosts]}:{port}/page/{i}"
            for i in range(args.requests)]

    async def run() -> tuple[float, float]:
        async with CLIENTS[name](args, port) as get:
            async def worker(index: int, todo: list[str]) -> int:
                return sum([await get(url) for url in todo])

            # Worker w always asks host w % hosts, so each host has concurrency/hosts
            # connections, kept alive for the whole run.
            lanes = [[u for j, u in enumerate(urls) if j % args.concurrency == w]
                     for w in range(args.concurrency)]
            await asyncio.gather(*(worker(w, lane[:1]) for w, lane in enumerate(lanes)))
            cpu0, wall0 = cpu_seconds(), time.perf_counter()
            sizes = await asyncio.gather(*(worker(w, lane) for w, lane in enumerate(lanes)))
            cpu, wall = cpu_seconds() - cpu0, time.perf_counter() - wall0
            assert sum(sizes) == args.requests * args.size, (sum(sizes), args.size)
            return cpu * 1000 / args.requests, wall

    factory = None
    if loop == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    with retry.testing(False), asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(run())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--hosts", type=int, default=16)
    parser.add_argument("--size", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--server", choices=["nginx", "asyncio"],
                        default="nginx" if shutil.which("nginx") else "asyncio")
    parser.add_argument("--clients", nargs="+", choices=list(CLIENTS), default=list(CLIENTS))
    parser.add_argument("--loops", nargs="+", choices=["asyncio", "uvloop"],
                        default=["asyncio"],
                        help="run every client on each of these event loops in turn")
    args = parser.parse_args()
    if args.concurrency % args.hosts:
        parser.error("--concurrency must be a multiple of --hosts")
    args.host_list = [f"127.0.0.{i + 1}" for i in range(args.hosts)]
    os.environ.update(NO_PROXY)
    clients = [c for c in args.clients if available(c)]
    for missing in set(args.clients) - set(clients):
        print(f"{missing}: not importable here, skipped")
    port = free_port()
    server = nginx if args.server == "nginx" else asyncio_server
    print(f"{args.requests} requests of {args.size} bytes, {args.concurrency} at a time over "
          f"{args.hosts} hosts (keep-alive), server {args.server}, {args.repeat} rounds")
    runs = [(name, loop, name if loop == "asyncio" else f"{name}@{loop}")
            for name in clients for loop in args.loops]
    cpu: dict[str, list[float]] = {label: [] for _, _, label in runs}
    wall: dict[str, list[float]] = {label: [] for _, _, label in runs}
    with server(args.host_list, port, args.size):
        for _ in range(args.repeat):
            for name, loop, label in runs:
                ms, seconds = measure(name, args, port, loop)
                cpu[label].append(ms)
                wall[label].append(seconds)
    print(f"{'client':<28}{'CPU ms/request (median)':>26}{'min':>8}{'max':>8}"
          f"{'requests/s':>12}")
    for label in cpu:
        print(f"{label:<28}{statistics.median(cpu[label]):>26.3f}{min(cpu[label]):>8.3f}"
              f"{max(cpu[label]):>8.3f}{args.requests / statistics.median(wall[label]):>12.0f}")
    if "fetcher" in cpu and "fetcher-stack" in cpu:
        own = statistics.median(cpu["fetcher"]) - statistics.median(cpu["fetcher-stack"])
        print(f"the fetcher's own wrapper: {own:.3f} ms per request")
    for name in ("fetcher", "fetcher-stack"):
        if name in cpu and f"{name}-anyio" in cpu:
            saved = [a - b for a, b in zip(cpu[f"{name}-anyio"], cpu[name], strict=True)]
            print(f"{name}: the asyncio streams save {statistics.median(saved):.3f} ms per "
                  f"request (median of the rounds' differences; "
                  f"{sum(d > 0 for d in saved)} of {len(saved)} rounds faster)")
    for name in clients:
        if f"{name}@uvloop" in cpu and name in cpu:
            saved = [a - b for a, b in zip(cpu[name], cpu[f"{name}@uvloop"], strict=True)]
            print(f"{name}: uvloop saves {statistics.median(saved):.3f} ms per request "
                  f"(median of the rounds' differences; {sum(d > 0 for d in saved)} of "
                  f"{len(saved)} rounds faster)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
