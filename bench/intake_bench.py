"""What a finished URL costs on its way from a fetch worker to the run's process (run by
hand, not in CI): CPU µs per URL of pickling a worker's messages (``archiver.shards``: one
``attempt`` and one ``done`` per URL, in frames of ``--frame`` URLs as an event-loop turn
batches them) and of unpickling them in the run's process, and the frame bytes per URL;
each for the frame as a worker sends it (``_frame_for_run``: no target, hops without what
only the worker reads) and as every message was pickled before (``_frame``, plain pickle).
Also the capture stage's copy of a capture without its body (``capturing._bodiless``)
against ``dataclasses.replace``.

    .venv/bin/python bench/intake_bench.py [--urls N] [--frame F] [--repeat R]

The records are the speed benchmark's: its URLs, nginx's response heads and the fetcher's
request heads, a provenance document made by ``archiver.provenance`` from them, a page text
packed as the catalog stores it. Prints the best of ``--repeat`` rounds.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import pickle
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parent.parent))

from archiver import provenance, shards
from archiver.capturing import Finished, _bodiless
from archiver.catalog import pack_text
from archiver.fetch import Attempt
from archiver.models import Capture, FootnoteRef, Hop, Judgement, Target, Verdict, WarcRef

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
AGENT = "archiver/0.1.0 (citation archiver; +https://github.com/archiver-project/archiver)"


def fresh(pairs: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """``pairs`` as new string objects, as a parsed head gives them (pickle writes a string
    object it has seen in the frame as a reference)."""
    return tuple((name.encode().decode(), value.encode().decode()) for name, value in pairs)


def record(n: int) -> tuple[Attempt, Finished]:
    host = f"127.0.0.{n % 50 + 1}:8080"
    url = f"http://{host}/news/{n // 50:05d}-politics-story.html"
    ok = n % 10 != 9
    status = 200 if ok else 404
    body = f"<html>{n}</html>".encode() * 800
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    ref = WarcRef("archive/archiver-20261130090000-1-00001.warc.gz", n * 3500, 3444,
                  f"<urn:uuid:{n:032x}>")
    headers = (("Server", "nginx/1.22.1"), ("Date", "Mon, 30 Nov 2026 09:00:00 GMT"),
               ("Content-Type", "text/html; charset=utf-8"), ("Content-Length", "20000"),
               ("Last-Modified", "Mon, 30 Nov 2026 08:00:00 GMT"), ("Connection", "keep-alive"),
               ("ETag", f'"6b0e1dac-{n:x}"'), ("Accept-Ranges", "bytes"))
    sent = (("Host", host), ("Accept", "*/*"), ("Accept-Encoding", "gzip, deflate, br, zstd"),
            ("Connection", "keep-alive"), ("User-Agent", AGENT))
    hop = Hop(url=url, status=status, headers=fresh(headers), warc=ref, remote_ip="127.0.0.1",
              request_headers=fresh(sent), record_sha256=hashlib.sha256(url.encode()).hexdigest())
    capture = Capture(url=url, final_url=url, status=status, hops=(hop,), content=b"",
                      content_type="text/html; charset=utf-8", payload_digest=digest,
                      captured_at=T0, elapsed=0.002, body_bytes=len(body))
    block = provenance.encode(provenance.document(provenance.for_capture(
        capture, cited_url=url, settings=provenance.capture_settings(AGENT))))
    kept = provenance.Kept(ref.record_id, url, block.decode(), hashlib.sha256(block).hexdigest(),
                           f"<urn:uuid:m{n:031x}>", digest, ref.path)
    judgement = Judgement(Verdict.OK, "answers 200 with content; a random path on this host "
                          "answers 404") if ok else Judgement(Verdict.NOT_FOUND, "404")
    text = pack_text(f"Story {n}. " + "The agency's annual review lists forty items. " * 300)
    return (Attempt(url, 1, "response", status=status, at=T0),
            Finished(Target(url, (FootnoteRef("bench", n + 1),)), capture, judgement,
                     text=text, title=f"Story {n}", hop_urls=(url,), kept=kept))


def best(rounds: int, run) -> float:  # type: ignore[no-untyped-def]
    spent = []
    for _ in range(rounds):
        start = time.process_time()
        run()
        spent.append(time.process_time() - start)
    return min(spent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--urls", type=int, default=2000)
    parser.add_argument("--frame", type=int, default=32, help="URLs per frame (default 32)")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    items = [record(n) for n in range(args.urls)]
    batches = [[m for attempt, done in items[i:i + args.frame]
                for m in (("attempt", attempt), ("done", i, done))]
               for i in range(0, len(items), args.frame)]
    size = shards._HEADER.size
    per = 1e6 / args.urls
    print(f"{args.urls} URLs, {args.frame} per frame, best of {args.repeat} rounds, "
          "CPU µs per URL:")
    for name, frame in (("plain pickle (_frame)", shards._frame),
                        ("worker's frame (_frame_for_run)", shards._frame_for_run)):
        frames = [frame(batch) for batch in batches]
        dumps = best(args.repeat, lambda frame=frame: [frame(b) for b in batches])
        loads = best(args.repeat, lambda frames=frames: [pickle.loads(f[size:])
                                                        for f in frames])
        print(f"  {name:<32} pickle {dumps * per:6.1f}  unpickle {loads * per:6.1f}  "
              f"{sum(map(len, frames)) / args.urls:6.0f} bytes")
    captures = [dataclasses.replace(done.result, content=b"x" * 20000)
                for _, done in items if isinstance(done.result, Capture)]
    replaced = best(args.repeat, lambda: [dataclasses.replace(c, content=b"")
                                          for c in captures])
    copied = best(args.repeat, lambda: [_bodiless(c) for c in captures])
    print(f"  capture without its body: dataclasses.replace {replaced * per:.1f}, "
          f"_bodiless {copied * per:.1f}")


if __name__ == "__main__":
    main()
