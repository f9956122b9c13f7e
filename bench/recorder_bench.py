"""The run's catalog writer (``archiver.recording.Recorder``): CPU per URL of recording
finished URLs (attempts, capture with its packed text, provenance row, verdict; custody
entries) in batches, into a real catalog and custody log in a temporary folder.

    .venv/bin/python bench/recorder_bench.py [--urls N] [--batch B ...] [--repeat R]

A run's recorder commits every 0.1 s, so on a fast web it commits smaller batches than its
128 (a 2,000-URL run on nginx on loopback made about 80 commits, 25 URLs each); ``--batch``
sets the URLs per ``flush`` (default 25 and 128). Prints the median of ``--repeat`` rounds,
each on a fresh catalog. To compare with another checkout, run it with that checkout on
``PYTHONPATH`` (it is used before this one).
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

# After PYTHONPATH: another checkout put there is the one measured.
sys.path.append(str(Path(__file__).resolve().parent.parent))

from archiver import provenance
from archiver.capturing import Finished
from archiver.catalog import Catalog, pack_text
from archiver.config import load_settings
from archiver.fetch import Attempt
from archiver.models import (
    Capture,
    FootnoteRef,
    Hop,
    Judgement,
    Target,
    Verdict,
    WarcRef,
)
from archiver.recording import Recorder

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def finished(n: int) -> tuple[Attempt, Finished]:
    url = f"http://127.0.0.{n % 50 + 1}:8080/news/{n:05d}-story.html"
    digest = "sha1:" + hashlib.sha1(str(n).encode()).hexdigest().upper()
    ref = WarcRef("archive/a-00001.warc.gz", n * 9000, 8800, f"<urn:uuid:{n:032x}>")
    ok = n % 10 != 9
    capture = Capture(
        url=url, final_url=url, status=200 if ok else 404,
        hops=(Hop(url, 200 if ok else 404, (("Content-Type", "text/html"),), warc=ref),),
        content=b"", content_type="text/html", payload_digest=digest, captured_at=T0)
    text = pack_text(f"Story {n}. " + "Lorem ipsum dolor sit amet, consectetur. " * 200)
    doc = f'{{"kind": "capture", "url": "{url}", "n": {n}}}'
    kept = provenance.Kept(f"<urn:uuid:{n:032x}>", url, doc,
                           hashlib.sha256(doc.encode()).hexdigest(), f"<urn:uuid:m{n:031x}>",
                           digest, "archive/a-00001.warc.gz")
    judgement = Judgement(Verdict.OK if ok else Verdict.NOT_FOUND, "200 OK" if ok else "404")
    return (Attempt(url, 1, "response", status=capture.status, at=T0),
            Finished(Target(url, (FootnoteRef("bench", n + 1),)), capture, judgement,
                     text=text, title=f"Story {n}", kept=kept))


def one_round(work: Path, urls: int, batch: int) -> float:
    project = work / f"p{time.monotonic_ns()}"
    project.mkdir()
    (project / "sources.toml").write_text("[[sources]]\nid = \"bench\"\npath = \"b.md\"\n")
    settings = load_settings(project / "sources.toml")
    items = [finished(n) for n in range(urls)]
    with Catalog.open(settings.archive.dir) as catalog:
        run_id = catalog.begin_run("run", ["bench"])
        recorder = Recorder(settings, catalog, run_id, on_recorded=lambda f: None,
                            batch=batch)
        start = time.process_time()
        for attempt, done in items:
            recorder.attempt(attempt)
            recorder.add(done)
        recorder.flush()
        spent = time.process_time() - start
        assert len(catalog.run_results(run_id)) == urls
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--urls", type=int, default=2000)
    parser.add_argument("--batch", type=int, nargs="+", default=[25, 128])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    import archiver

    print(f"archiver from {Path(archiver.__file__).parent}")
    with tempfile.TemporaryDirectory(prefix="recorder-bench-") as tmp:
        for batch in args.batch:
            spent = [one_round(Path(tmp), args.urls, batch) for _ in range(args.repeat)]
            median = statistics.median(spent)
            print(f"batch {batch:4d}: {median:.3f} s CPU for {args.urls} URLs = "
                  f"{median / args.urls * 1000:.3f} ms per URL "
                  f"(rounds: {', '.join(f'{s:.3f}' for s in spent)})")


if __name__ == "__main__":
    main()
