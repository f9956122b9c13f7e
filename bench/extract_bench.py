"""Time extracting the shipped briefing, against a plain regex scan of URLs as the baseline.

Run: ``.venv/bin/python bench/extract_bench.py [repetitions]``. Prints mean and median
milliseconds per extraction (read bytes → Document with claims and findings) and the ratio to
the baseline measured in the same run over the same text.
"""

from __future__ import annotations

import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from archiver.parse import parse_bytes

BRIEFING = Path(__file__).resolve().parent.parent / "sources" / "kazakhstan-2020.md"
URL = re.compile(r"https?://[^\s<>()\]]+")


def timed(func, repetitions: int) -> list[float]:
    samples = []
    for _ in range(repetitions):
        start = time.perf_counter()
        func()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def main() -> None:
    repetitions = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    data = BRIEFING.read_bytes()
    text = data.decode("utf-8")
    doc = parse_bytes(data, BRIEFING.name)  # warm-up, and a sanity check
    assert len(doc.footnotes) == 93
    extract = timed(lambda: parse_bytes(data, BRIEFING.name), repetitions)
    baseline = timed(lambda: URL.findall(text), repetitions)
    mean, median = statistics.fmean(extract), statistics.median(extract)
    base = statistics.median(baseline)
    print(f"briefing: {len(data)} bytes, {len(doc.footnotes)} footnotes, "
          f"{len(doc.urls)} distinct URLs, {len(doc.claims)} claims, {len(doc.findings)} findings")
    print(f"extract: mean {mean:.2f} ms, median {median:.2f} ms, "
          f"max {max(extract):.2f} ms over {repetitions} runs")
    print(f"baseline regex URL scan: median {base:.3f} ms")
    print(f"ratio extract/baseline (medians): {median / base:.0f}x")


if __name__ == "__main__":
    main()
