"""What the run's process spends after fetching, outside claim support and rendering: the
outage test over the run's verdicts, the link records, and the interpreter's shutdown.

Run: ``.venv/bin/python bench/records_bench.py --project DIR [--repeat R]
[--baseline CHECKOUT]``.

``DIR`` is a project whose catalog holds captured links (``sources.toml`` and its archive,
e.g. one a ``speed_bench.py`` or ``capture_bench.py --pipeline`` run left). It is copied to
a temporary folder first and never written. In that copy, in CPU seconds of one process
(``time.process_time``), R times each, best and median:

- ``outage test``: ``history.hosts_tested``, ``is_offline`` and ``is_outage`` of every
  cited URL's last verdict, as ``pipeline`` runs them after fetching;
- ``link records``: ``pipeline.build_link_records`` of the first source's document.

Then ``archiver report`` in a child process, R times: its whole CPU time (``getrusage``),
the part after its last ``atexit`` handler (the interpreter's shutdown) and its peak
resident memory (``ru_maxrss``: the document, and what the tail holds on top of it).

``--baseline CHECKOUT`` measures another checkout of the archiver (an earlier commit, e.g.
``git worktree add /tmp/base HEAD~3``) the same way, in turn with this one, on its own copy
of the project, and checks that both built the same link records and wrote the same four
report files (the generation time aside). Timings are CPU time, but other load on the
machine still inflates them: compare figures of the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FILES = ("report.json", "report.html", "report.md", "links.csv")

# Run in a child process with the checkout on PYTHONPATH: times the outage test and the link
# records, prints them as JSON with the link records' repr (to compare checkouts).
_PHASES = r'''
import json, statistics, sys, time
from pathlib import Path
from archiver import history, pipeline
from archiver.catalog import Catalog
from archiver.config import load_settings
from archiver.models import utcnow

config, repeat = Path(sys.argv[1]), int(sys.argv[2])
settings = load_settings(config)
outcome = next(o for o in pipeline._read_sources(settings, None) if o.document is not None)
urls = outcome.document.urls
with Catalog.open(settings.archive.dir) as catalog:
    last = catalog.last_results(urls)
    verdicts = {url: r.verdict for url, r in last.items()}
    previous = {url: None for url in verdicts}
    run = pipeline._RunContext.stored(catalog, outcome.source.id)
    times = {"outage test": [], "link records": []}
    for _ in range(repeat):
        start = time.process_time()
        if hasattr(history, "_offline"):  # this version: hosts found once, as pipeline does
            hosts = {url: history.host_of(url) for url in verdicts}
        else:
            hosts = None
        tested = history.hosts_tested(verdicts, hosts, previous=previous)
        offline = history.is_offline(verdicts, hosts, previous=previous)
        outage = history.is_outage(verdicts, settings.check, hosts, previous=previous)
        times["outage test"].append(time.process_time() - start)
        now = utcnow()
        start = time.process_time()
        links = pipeline.build_link_records(settings, catalog, outcome.source.id,
                                            outcome.document, now,
                                            not_fetched=run.not_fetched)
        times["link records"].append(time.process_time() - start)
print(json.dumps({"times": times, "links": len(links), "urls": len(verdicts),
                  "tests": [tested, offline, outage],
                  "records": [repr(link) for link in links]}))
'''

# ``python -m archiver`` with the CPU time at the last atexit handler and the process's peak
# resident memory (KiB) printed on stderr.
_REPORT = r'''
import atexit, resource, runpy, sys, time
atexit.register(lambda: print("ATEXIT", time.process_time(),
                              resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                              file=sys.stderr, flush=True))
sys.argv = ["archiver"] + sys.argv[1:]
runpy.run_module("archiver", run_name="__main__")
'''


def _env(checkout: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(checkout)}


def phases(checkout: Path, config: Path, repeat: int) -> dict:
    done = subprocess.run([sys.executable, "-c", _PHASES, str(config), str(repeat)],
                          env=_env(checkout), capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def report(checkout: Path, project: Path) -> tuple[float, float, int]:
    """``archiver report`` in ``project``: (whole CPU, CPU after the last atexit handler,
    peak resident memory in KiB)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, "-c", _REPORT, "report", "--config",
                           str(project / "sources.toml")], env=_env(checkout), cwd=project,
                          capture_output=True, text=True, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    at_exit, peak = re.findall(r"ATEXIT (\S+) (\d+)", done.stderr)[-1]
    return total, total - float(at_exit), int(peak)


def _masked(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    text = re.sub(r'"generated_at": "[^"]*"', '"generated_at": X', text)
    return re.sub(r'datetime="[^"]*">[^<]*</time>', "X", re.sub(r"[Gg]enerated[^\n<]*", "X",
                                                                 text))


def _line(name: str, values: list[float], per: int) -> str:
    best, median = min(values), statistics.median(values)
    return (f"  {name:<16} best {best * 1000:8.1f} ms  median {median * 1000:8.1f} ms  "
            f"({best / per * 1e6:6.1f} µs per link)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, required=True)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--baseline", type=Path)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="records-bench-"))
    checkouts = {"this": ROOT}
    if args.baseline:
        checkouts["baseline"] = args.baseline.resolve()
    copies = {}
    for name in checkouts:
        copies[name] = work / name
        shutil.copytree(args.project, copies[name])
    results: dict[str, dict] = {name: {"report": [], "shutdown": [], "peak": []}
                                for name in checkouts}
    # In turn, so that the machine's load falls on both alike.
    for _ in range(args.repeat):
        for name, checkout in checkouts.items():
            total, shutdown, peak = report(checkout, copies[name])
            results[name]["report"].append(total)
            results[name]["shutdown"].append(shutdown)
            results[name]["peak"].append(peak)
    for name, checkout in checkouts.items():
        results[name].update(phases(checkout, copies[name] / "sources.toml", args.repeat))
    for name, result in results.items():
        links = result["links"]
        print(f"{name} ({checkouts[name]}): {links} links, {result['urls']} verdicts, "
              f"outage test {result['tests']}")
        for phase, values in result["times"].items():
            print(_line(phase, values, links))
        print(_line("archiver report", result["report"], links))
        print(_line("  its shutdown", result["shutdown"], links))
        print(f"  {'  its peak RSS':<16} max {max(result['peak']) / 1024:8.1f} MB  "
              f"min {min(result['peak']) / 1024:8.1f} MB")
    if args.baseline:
        same = results["this"]["records"] == results["baseline"]["records"]
        print(f"link records identical: {same}")
        for file in FILES:
            a, b = (copies[name] / "reports" for name in checkouts)
            equal = all(_masked(x) == _masked(y)
                        for x, y in zip(sorted(a.glob(f"*/{file}")), sorted(b.glob(f"*/{file}")),
                                        strict=True))
            print(f"{file} identical: {equal}")
            same = same and equal
        if not same:
            return 1
    shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
