"""Reading a document at scale: CPU per footnote, peak and retained memory of ``read_document``.

Run: ``.venv/bin/python bench/parse_bench.py [--sizes 2000,100000] [--repeat N]
[--baseline CHECKOUT]``.

A run reads its briefing before its fetch workers fork and keeps the Document to the end, so
both the CPU of reading it (all of it before the first fetch) and what the Document holds
count. This bench writes, in a temporary folder, documents of N footnotes in the speed
bench's shape (one paragraph of N claims ``Claim number k is supported by evidence.[^k]``,
notes ``[^k]: See <http://127.0.0.1:8000/hK/pageK.html>.`` on 50 hosts: every URL draws a
plain-http and a private-address finding), and reads each, plus the shipped briefing, in
child processes (one per measurement, so that caches start cold and memory is the
document's own):

- ``CPU s``: ``time.process_time`` of ``read_document``, the best of ``--repeat``;
- ``peak MB``: the process's peak RSS while reading minus its RSS before (imports done; the
  peak is reset through ``/proc/self/clear_refs`` first);
- ``kept MB``: what the returned Document holds (``tracemalloc``, after a collection), and
  ``traced peak MB``: the most ``tracemalloc`` saw allocated at once while reading.

With ``--baseline CHECKOUT`` (e.g. ``git archive <commit> | tar -x -C /tmp/base``), the
same documents are read with that checkout's code in the same run, and the Documents are
checked to be identical (``repr``: footnotes, URLs, claims, findings, title).
"""

from __future__ import annotations

import argparse
import ast
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BRIEFING = ROOT / "sources" / "kazakhstan-2020.md"

CHILD = r"""
import gc, hashlib, sys, time
sys.path.insert(0, {root!r})
from archiver.parse import read_document
import archiver.support  # what a run has imported before it reads its briefing

path, what, repeat = {path!r}, {what!r}, {repeat!r}

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0

out = {{}}
if what == "cpu":
    best, doc = None, None
    for _ in range(repeat):
        doc = None
        gc.collect()
        start = time.process_time()
        doc = read_document(path)
        spent = time.process_time() - start
        best = spent if best is None else min(best, spent)
    out["cpu"] = best
    out["footnotes"] = len(doc.footnotes)
    out["findings"] = len(doc.findings)
    shown = repr(doc).replace(repr(path), repr(path.rsplit("/", 1)[-1]))
    out["digest"] = hashlib.sha256(shown.encode()).hexdigest()
elif what == "rss":
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets the peak (VmHWM) to the current RSS: the imports' peak is not ours
    before = status("VmRSS")
    doc = read_document(path)
    out["peak"] = status("VmHWM") - before
else:
    import tracemalloc
    gc.collect()
    tracemalloc.start()
    doc = read_document(path)
    gc.collect()
    current, peak = tracemalloc.get_traced_memory()
    out["kept"] = current / 2**20
    out["traced_peak"] = peak / 2**20
print(repr(out))
"""


def write_documents(folder: Path, sizes: list[int]) -> list[Path]:
    """The speed bench's document shape (``/tmp/m/gen.py``), one per size."""
    paths = []
    for n in sizes:
        urls = [f"http://127.0.0.1:8000/h{i % 50}/page{i}.html" for i in range(n)]
        body = [f"Claim number {k} is supported by evidence.[^{k}]" for k in range(1, n + 1)]
        notes = [f"[^{k}]: See <{url}>." for k, url in enumerate(urls, 1)]
        path = folder / f"b{n}.md"
        path.write_text("# Synthetic briefing\n\n" + " ".join(body) + "\n\n" + "\n".join(notes)
                        + "\n", encoding="utf-8")
        paths.append(path)
    return paths


def child(root: Path, path: Path, what: str, repeat: int) -> dict[str, object]:
    code = CHILD.format(root=str(root), path=str(path), what=what, repeat=repeat)
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, check=True)
    result: dict[str, object] = ast.literal_eval(done.stdout.strip().splitlines()[-1])
    return result


def measure(root: Path, paths: list[Path], repeat: int) -> dict[str, dict[str, object]]:
    results = {}
    for path in paths:
        row = child(root, path, "cpu", repeat)
        row.update(child(root, path, "rss", 1))
        row.update(child(root, path, "kept", 1))
        results[path.name] = row
    return results


def table(label: str, results: dict[str, dict[str, object]]) -> None:
    print(f"\n{label}")
    print(f"{'document':<24}{'footnotes':>10}{'findings':>10}{'CPU s':>9}{'ms/footnote':>13}"
          f"{'peak MB':>9}{'kept MB':>9}{'traced peak MB':>16}")
    for name, row in results.items():
        notes = int(str(row["footnotes"]))
        cpu = float(str(row["cpu"]))
        print(f"{name:<24}{notes:>10}{row['findings']:>10}{cpu:>9.3f}"
              f"{cpu / max(notes, 1) * 1000:>13.4f}{float(str(row['peak'])):>9.1f}"
              f"{float(str(row['kept'])):>9.1f}{float(str(row['traced_peak'])):>16.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2000,100000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--baseline", type=Path, help="another checkout to measure alike")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    with tempfile.TemporaryDirectory(prefix="parse-bench-") as tmp:
        paths = [BRIEFING, *write_documents(Path(tmp), sizes)]
        ours = measure(ROOT, paths, args.repeat)
        table(f"this checkout ({ROOT})", ours)
        if args.baseline:
            theirs = measure(args.baseline.resolve(), paths, args.repeat)
            table(f"baseline ({args.baseline})", theirs)
            for name in ours:
                same = ours[name]["digest"] == theirs[name]["digest"]
                print(f"{name}: Document {'identical' if same else 'DIFFERS'}")
        else:
            for name, row in ours.items():
                print(f"{name}: Document digest {str(row['digest'])[:12]}")


if __name__ == "__main__":
    main()
