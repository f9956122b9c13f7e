"""What kept claim support saves: ``archiver report`` with the supports a run kept in the
catalog (``archiver.support_store``), and with them deleted (every support judged again, as
before they were kept).

Run: ``.venv/bin/python bench/kept_support_bench.py [--footnotes N] [--pad KB] [--runs R]
[--check] [--baseline CHECKOUT]``.

The project: N footnotes, the shipped briefing's claims in turn (each footnote its first
claim), each citing its own URL on a loopback server; the pages are the hand-checked pages
of ``tests/data/support`` in turn, padded with ``--pad`` KB of their article text (30 KB:
a news article's length). One ``archiver run`` makes the archive; it is copied, the copy's
kept supports deleted, and ``archiver report`` of each is timed in a child process,
alternating, ``--runs`` times; with ``--check``, ``archiver check`` (every page fetched
again, unchanged) too; with ``--baseline``, an earlier checkout's own run, report and check
beside them. Both reports must be the same files, byte for byte but for the time they were
made, and every project's claim support the same: the figures mean nothing otherwise.
"""

from __future__ import annotations

import argparse
import html
import re
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from archiver.pagetext import extract  # noqa: E402
from archiver.parse import read_document  # noqa: E402

PAGES = ROOT / "tests" / "data" / "support" / "pages"


def write_project(root: Path, urls: list[str], claims: list[str]) -> Path:
    """A project citing ``urls[n]`` for claim ``claims[n]`` (footnote n + 1)."""
    (root / "sources").mkdir(parents=True)
    body = "\n\n".join(f"{claim}[^{n}]" for n, claim in enumerate(claims, 1))
    notes = "\n".join(f"[^{n}]: <{url}>" for n, url in enumerate(urls, 1))
    (root / "sources" / "brief.md").write_text(f"# Brief\n\n{body}\n\n{notes}\n",
                                              encoding="utf-8")
    config = root / "sources.toml"
    config.write_text(
        '[[sources]]\nid = "brief"\npath = "sources/brief.md"\n\n'
        "[fetch]\ntimeout = 10\nretries = 1\nallow_private_networks = true\n"
        "host_interval = 0\nper_host = 8\n\n[rescue]\nenabled = false\n", encoding="utf-8")
    return config


def timed(command: list[str], cwd: Path, checkout: Path) -> tuple[float, float]:
    """Wall and CPU seconds (user + system) of ``command`` in a child process, with the
    archiver of ``checkout``."""
    import os

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=3600,
                          env={**os.environ, "PYTHONPATH": str(checkout)})
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(command)} exited {done.returncode}:\n{done.stderr}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def reports(project: Path) -> dict[str, bytes]:
    """The report files, their times of making blanked."""
    folder = project / "reports" / "brief"
    return {p.name: re.sub(rb"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?(Z| UTC)", b"T",
                           p.read_bytes()) for p in folder.iterdir() if p.is_file()}


def supports(project: Path) -> object:
    """The claim support section of the project's report.json."""
    import json

    return json.loads((project / "reports" / "brief" / "report.json").read_text())["support"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--footnotes", type=int, default=2000,
                        help="footnotes, each citing its own URL (default 2000)")
    parser.add_argument("--pad", type=int, default=30,
                        help="KB of article text added to each page (default 30)")
    parser.add_argument("--runs", type=int, default=3,
                        help="reports of each kind, alternated (default 3)")
    parser.add_argument("--check", action="store_true",
                        help="also time 'archiver check' (every URL fetched again) of each")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="copy the projects here at the end (to profile them)")
    parser.add_argument("--baseline", type=Path, metavar="CHECKOUT",
                        help="also time the archiver of this checkout (e.g. a worktree of "
                             "an earlier commit) on a project of its own run")
    args = parser.parse_args()

    from tests.webserver import Reply, WebServer

    document = read_document(ROOT / "sources" / "kazakhstan-2020.md")
    briefing = [f.claims[0].text for f in document.footnotes if f.claims]
    claims = [briefing[n % len(briefing)] for n in range(args.footnotes)]
    pages = sorted(PAGES.glob("*.html"))
    texts = [extract(p.read_bytes(), "text/html; charset=utf-8").text for p in pages]
    filler = "".join(f"<p>{html.escape(t)}</p>" for t in texts)
    padding = (filler * (1 + args.pad * 1000 // max(1, len(filler))))[:args.pad * 1000]
    padding = padding[:padding.rfind("</p>") + 4] if args.pad else ""
    python = [sys.executable, "-m", "archiver"]
    with tempfile.TemporaryDirectory() as tmp, WebServer() as web:
        kept, judged = Path(tmp) / "kept", Path(tmp) / "judged"
        for i, page in enumerate(pages):
            body = page.read_bytes().replace(b"</article>",
                                             padding.encode("utf-8") + b"</article>")
            web.route(f"/p{i}", Reply(200, body, {"Content-Type": "text/html; charset=utf-8"}))
        urls = [web.url(f"/p{n % len(pages)}?fn={n}") for n in range(1, args.footnotes + 1)]
        # (label, project, checkout): this checkout with its supports kept, the same with
        # them deleted before each command, and the --baseline checkout's own project.
        projects = [("kept", kept, ROOT), ("judged again", judged, ROOT)]
        config = write_project(kept, urls, claims)
        wall, cpu = timed([*python, "run", "--config", str(config), "--quiet"], kept, ROOT)
        print(f"archiver run: {args.footnotes} footnotes, pages +{args.pad} KB: "
              f"{wall:.2f} s wall, {cpu:.2f} s CPU")
        shutil.copytree(kept, judged)
        print(f"supports kept by the run: {forget(judged)}")
        if args.baseline:
            base = Path(tmp) / "baseline"
            write_project(base, urls, claims)
            wall, cpu = timed([*python, "run", "--config", str(base / "sources.toml"),
                               "--quiet"], base, args.baseline)
            print(f"baseline run: {wall:.2f} s wall, {cpu:.2f} s CPU")
            projects.append(("baseline", base, args.baseline))
        for command in (["report"], ["check", "--quiet"] if args.check else None):
            if command is None:
                continue
            samples: dict[str, list[tuple[float, float]]] = {p[0]: [] for p in projects}
            for _ in range(args.runs):
                for label, project, checkout in projects:
                    if project == judged:
                        forget(judged)
                    samples[label].append(timed(
                        [*python, *command, "--config", str(project / "sources.toml")],
                        project, checkout))
            # A check captures again (other records, other WARCs): its claim support must
            # be the same; a report's files must be the same whole (the baseline's claim
            # support: it is another version).
            same = (reports if command[0] == "report" else supports)
            if same(kept) != same(judged) or any(
                    supports(project) != supports(kept) for _, project, _ in projects):
                raise SystemExit(f"archiver {command[0]}: the reports differ: the figures "
                                 "mean nothing")
            for label, measured in samples.items():
                walls, cpus = zip(*measured, strict=True)
                print(f"archiver {command[0]}, {label:<12}: "
                      f"{statistics.median(walls):6.2f} s wall, "
                      f"{statistics.median(cpus):6.2f} s CPU (medians of {args.runs})")
            saved = (statistics.median(c for _, c in samples["judged again"])
                     - statistics.median(c for _, c in samples["kept"]))
            print(f"  kept against judged again: {saved:.2f} s CPU, "
                  f"{saved / args.footnotes * 1000:.2f} ms per footnote")
        if args.keep:
            for _, project, _ in projects:
                shutil.copytree(project, args.keep / project.name)


def forget(project: Path) -> int:
    """Delete the supports ``project``'s catalog keeps; how many there were."""
    db = sqlite3.connect(project / "archive" / "catalog.sqlite3")
    try:
        rows = int(db.execute("SELECT count(*) FROM judged_supports").fetchone()[0])
        db.execute("DELETE FROM judged_supports")
        db.commit()
    finally:
        db.close()
    return rows


if __name__ == "__main__":
    main()
