"""What a long history of checks costs the catalog's reads; run by hand, not in CI.

    .venv/bin/python bench/history_bench.py [--urls 2000] [--nights 5 365] [--failing 0.1]
        [--baseline /path/to/other/checkout]

A nightly `archiver check` adds a result per link, and a capture of each page that answers.
Every run, check and report reads, per link, what its record is made from
(`Catalog.link_facts`: its state, newest verdict, newest capture, provenance and text), a
check also each link's state before and after it (`link_statuses`, or `link_status` per
URL where a checkout has no batched read) and the newest verdict of each (`last_results`).
This builds a catalog of ``--urls`` links with ``--nights`` nightly results each (a share
``--failing`` of them failing every night; the rest ok, each with a capture a night: a
response, then revisits of it, each with its provenance document), then times those reads
over every link, 512 URLs a call as the pipeline reads them. ``--baseline`` runs the same
on another checkout, in a process of its own, in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

CHUNK = 512


def measure(urls: int, nights: int, failing: float) -> dict[str, float]:
    """Seconds each read of every link takes, on a catalog built here."""
    from archiver.catalog import Catalog, ResultIn
    from archiver.config import CheckSettings
    from archiver.models import Capture, Hop, Judgement, Verdict, WarcRef

    def capture(n: int, url: str, at: datetime, revisit: bool, record: str) -> Capture:
        ref = WarcRef("archive/bench.warc.gz", n * 1000, 1000, record)
        return Capture(url=url, final_url=url, status=200,
                       hops=(Hop(url, 200, (("Content-Type", "text/html"),), warc=ref,
                                 revisit=revisit),),
                       content=b"", content_type="text/html", payload_digest=f"sha1:{n}",
                       captured_at=at)

    start = datetime(2025, 1, 1, 2, tzinfo=UTC)
    links = [f"https://host{n % 50}.example/news/{n}.html" for n in range(urls)]
    dead = set(links[::max(1, round(1 / failing))]) if failing > 0 else set()
    rules = CheckSettings()
    with tempfile.TemporaryDirectory() as scratch, \
            Catalog.open(Path(scratch) / "archive") as catalog, catalog.lock():
        for night in range(nights):
            run_id = catalog.begin_run("check", ["bench"])
            at = start + timedelta(days=night)
            # Each answering link's page, unchanged: its response the first night, a revisit
            # of it each night after, each with its provenance document.
            records = [(n, url, f"<urn:uuid:{n}-{night}>") for n, url in enumerate(links)
                       if url not in dead]
            catalog.record_captures(run_id, [
                (capture(n, url, at, night > 0, record), "page text " * 200, "A page", None)
                for n, url, record in records])
            catalog.record_provenances((record, url, '{"kind": "capture"}', "ab" * 32, None)
                                       for _, url, record in records)
            catalog.record_results(
                ResultIn(run_id, url,
                         Judgement(Verdict.NOT_FOUND if url in dead else Verdict.OK, "bench"),
                         http_status=404 if url in dead else 200, final_url=url, attempts=1,
                         checked_at=at)
                for url in links)
        now = start + timedelta(days=nights)
        chunks = [links[i:i + CHUNK] for i in range(0, len(links), CHUNK)]

        def timed(read: object) -> float:
            began = time.perf_counter()
            for chunk in chunks:
                read(chunk)  # type: ignore[operator]
            return time.perf_counter() - began

        batched = hasattr(catalog, "link_statuses")
        return {
            "link_facts": timed(lambda c: catalog.link_facts(c, until=now) if batched
                                else catalog.link_facts(c)),
            "states": timed(lambda c: catalog.link_statuses(c, rules, now) if batched
                            else [catalog.link_status(u, rules, now) for u in c]),
            "last_results": timed(catalog.last_results),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--urls", type=int, default=2000)
    parser.add_argument("--nights", type=int, nargs="+", default=[5, 365])
    parser.add_argument("--failing", type=float, default=0.1)
    parser.add_argument("--baseline", type=Path, help="another checkout, measured beside")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.json:
        print(json.dumps({n: measure(args.urls, n, args.failing) for n in args.nights}))
        return
    runs = {"this checkout": Path(__file__).resolve().parent.parent}
    if args.baseline:
        runs[f"baseline {args.baseline}"] = args.baseline.resolve()
    print(f"{args.urls} links, {args.failing:.0%} failing every night; seconds for every link")
    print(f"{'checkout':40s} {'nights':>6s} {'link_facts':>10s} {'states':>8s} {'last':>8s}")
    for name, root in runs.items():
        out = subprocess.run(
            [sys.executable, __file__, "--json", "--urls", str(args.urls), "--failing",
             str(args.failing), "--nights", *map(str, args.nights)],
            env={**os.environ, "PYTHONPATH": str(root)}, check=True, capture_output=True,
            text=True, cwd=root).stdout
        for nights, t in json.loads(out).items():
            print(f"{name:40.40s} {nights:>6s} {t['link_facts']:10.3f} {t['states']:8.3f}"
                  f" {t['last_results']:8.3f}")


if __name__ == "__main__":
    main()
