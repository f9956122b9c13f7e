"""Browser capture benchmark (run by hand, not in CI): pages per second and peak memory.

Serves ``--pages`` app-shell pages on loopback (each page's article arrives by ``fetch()`` of
JSON, as in ``tests/browser_web.py``: 3 requests a page, plus a script shared by all), then
captures them twice into WARC files in a scratch folder:

- the HTTP path: ``Fetcher.fetch`` for every page (what a run does without the browser);
- the browser path: ``Browser.capture`` with ``--open`` pages open at once (default 2, the
  ``[browser] pages`` default), the whole capture as a run makes it (every request over the
  guard into the WARC, settling, scrolling, screenshot, rendered text).

Prints pages per second for each, and peak memory: this process's (ru_maxrss) and, for the
browser path, Chromium's (the largest sum of the resident memory of every process under this
one, as PSS so that shared pages count once, sampled every 0.1 s). Needs Debian's Chromium
(``--chromium``, default /usr/bin/chromium).

    .venv/bin/python bench/browser_bench.py
    .venv/bin/python bench/browser_bench.py --pages 40 --open 4
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from archiver.browse import Browser, BrowserCapture
from archiver.config import BrowserSettings, FetchSettings
from archiver.fetch import Fetcher
from archiver.models import Capture
from archiver.warc import WarcWriter
from tests.browser_web import APP_JS, SHELL
from tests.webserver import Reply, WebServer


def serve(pages: int) -> WebServer:
    web = WebServer()
    web.route("/static/app.js", Reply(200, APP_JS, {"Content-Type": "application/javascript"}))
    web.route("/api/article.json", lambda req: Reply(200, json.dumps(
        {"title": "Article", "body": "The article body arrives by fetch. " * 20}).encode(),
        {"Content-Type": "application/json"}))
    for n in range(pages):
        web.route(f"/page/{n}", Reply(200, SHELL, {"Content-Type": "text/html"}))
    return web


def _tree_rss_kb() -> int:
    """Proportional resident memory (PSS, kB: shared pages counted once across processes)
    of every process descended from this one."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            ppid = int(fields[1])
            with open(f"/proc/{entry}/smaps_rollup") as fh:
                pss = next(int(line.split()[1]) for line in fh if line.startswith("Pss:"))
        except (OSError, ValueError, IndexError, StopIteration):
            continue
        children.setdefault(ppid, []).append(int(entry))
        rss[int(entry)] = pss
    total, todo = 0, list(children.get(os.getpid(), []))
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo.extend(children.get(pid, []))
    return total


async def http_path(urls: list[str], folder: Path) -> float:
    settings = FetchSettings(allow_private_networks=True, host_interval=0, per_host=8)
    with WarcWriter(folder, root=folder, run_id="http") as writer:
        async with Fetcher(settings, writer) as fetcher:
            started = time.monotonic()
            results = await asyncio.gather(*(fetcher.fetch(u) for u in urls))
            elapsed = time.monotonic() - started
    assert all(isinstance(r, Capture) and r.status == 200 for r in results), results[:3]
    return elapsed


async def browser_path(urls: list[str], folder: Path, chromium: str, open_pages: int
                       ) -> tuple[float, int]:
    settings = BrowserSettings(executable=chromium, pages=open_pages)
    fetch = FetchSettings(allow_private_networks=True, host_interval=0)
    peak = 0
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, await asyncio.to_thread(_tree_rss_kb))
            await asyncio.sleep(0.1)

    sampler = asyncio.ensure_future(sample())
    with WarcWriter(folder, root=folder, run_id="browser") as writer:
        async with Browser(settings, fetch, writer) as browser:
            await browser.capture(urls[0])  # start Chromium outside the timing
            started = time.monotonic()
            results = await asyncio.gather(*(browser.capture(u) for u in urls))
            elapsed = time.monotonic() - started
    done.set()
    await sampler
    bad = [r for r in results if not isinstance(r, BrowserCapture)
           or "arrives by fetch" not in r.text]
    assert not bad, bad[:3]
    return elapsed, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=20)
    parser.add_argument("--open", type=int, default=2, help="browser pages open at once")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    os.environ.setdefault("ARCHIVER_TESTING", "1")
    web = serve(args.pages)
    urls = [web.url(f"/page/{n}") for n in range(args.pages)]
    with tempfile.TemporaryDirectory() as tmp:
        http_time = asyncio.run(http_path(urls, Path(tmp) / "http"))
        python_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        browser_time, chromium_kb = asyncio.run(
            browser_path(urls, Path(tmp) / "browser", args.chromium, args.open))
        python_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        sizes = {name: sum(f.stat().st_size for f in (Path(tmp) / name).glob("*.warc.gz"))
                 for name in ("http", "browser")}
    web.close()
    print(f"{args.pages} app-shell pages on loopback, {os.cpu_count()} CPU(s)")
    print(f"HTTP path:    {args.pages / http_time:7.1f} pages/s   "
          f"WARC {sizes['http'] / 1024:.0f} KB   Python peak {python_before / 1024:.0f} MB")
    print(f"browser path: {args.pages / browser_time:7.2f} pages/s at {args.open} pages open   "
          f"WARC {sizes['browser'] / 1024:.0f} KB   Python peak {python_kb / 1024:.0f} MB   "
          f"Chromium peak {chromium_kb / 1024:.0f} MB")


if __name__ == "__main__":
    main()
