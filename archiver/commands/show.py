"""``archiver show``, ``archiver export --wacz`` and ``archiver serve``: getting evidence out."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from archiver.config import load_settings
from archiver.errors import ArchiverError, NotArchivedError, UsageError
from archiver.models import isoformat

if TYPE_CHECKING:
    from archiver.api import ArchivedCapture
    from archiver.cli import Output

__all__ = ["export_wacz", "serve", "show"]


def show(config: Path, ref: str, *, mode: str, at: str | None, fmt: str, io: Output) -> int:
    """List the captures of ``ref`` newest first, or print one capture's text, headers or
    raw bytes (the newest, or the one nearest ``at``). Exit 0 found, 1 not archived."""
    from archiver.api import Archive, nearest, parse_when

    settings = load_settings(config)
    when = parse_when(at) if at else None
    with Archive(settings) as archive:
        urls = archive.urls_of(ref)
        found = {url: archive.captures(url) for url in urls}
    if not any(found.values()):
        raise NotArchivedError(f"{ref}: not in the archive (run 'archiver run' first)")

    if mode == "list":
        if fmt == "json":
            io.json({url: [_capture_json(c) for c in caps] for url, caps in found.items()})
            return 0
        total = sum(len(c) for c in found.values())
        io.print(f"{ref}: {total} capture(s) of {len(urls)} URL(s)")
        for url, caps in found.items():
            io.print(url)
            if not caps:
                io.print("  (not archived)")
            for c in caps:
                picked = when is not None and c is nearest(caps, when)
                marker = "*" if picked else " "
                io.print(f" {marker}{isoformat(c.captured_at)}  {c.status or '-':>3}  "
                         f"{(c.verdict.value if c.verdict else '-'):<16} "
                         f"{c.warc.path}#{c.warc.offset}")
                if c.origin == "internet-archive" and c.memento_datetime is not None:
                    io.print(f"   {'':20} Internet Archive copy of "
                             f"{isoformat(c.memento_datetime)}: {c.final_url}")
                elif c.final_url != url:
                    io.print(f"   {'':20} final URL {c.final_url}")
                if c.payload_ref != c.warc:
                    io.print(f"   {'':20} same content as {c.payload_ref.path}"
                             f"#{c.payload_ref.offset} (revisit)")
        return 0

    chosen: list[ArchivedCapture] = []
    for caps in found.values():
        if caps:
            chosen.append(nearest(caps, when) if when is not None else _evidence(caps))
    if mode in ("raw", "screenshot"):
        if len(chosen) > 1:
            raise UsageError(f"{ref}: --{mode} needs one URL, but it has {len(chosen)} "
                             "captured; name the URL instead")
        stream = getattr(io.out, "buffer", None)
        if mode == "screenshot":
            shots = [c for c in found[chosen[0].url] if c.screenshot_ref is not None]
            if not shots:
                raise NotArchivedError(f"{ref}: no browser capture, so no screenshot "
                                       "(see [browser] in sources.toml)")
            pick = nearest(shots, when) if when is not None else shots[0]
            data = pick.screenshot() or b""
        else:
            data = chosen[0].payload()
        if stream is None:  # an in-memory text stream (tests): write latin-1 text
            io.out.write(data.decode("latin-1"))
        else:
            io.out.flush()
            stream.write(data)
            stream.flush()
        return 0
    for capture in chosen:
        if len(chosen) > 1:
            io.print(f"== {capture.url} ({isoformat(capture.captured_at)})")
        if mode == "headers":
            io.print(f"HTTP status {capture.status}")
            for name, value in capture.headers():
                io.print(f"{name}: {value}")
        else:
            io.print(capture.text())
    return 0


def _evidence(captures: list[ArchivedCapture]) -> ArchivedCapture:
    """The capture to show by default: the newest that holds the page (a 2xx answer, ours
    or a rescued Internet Archive copy), else the newest of all."""
    pages = [c for c in captures if c.status is not None and 200 <= c.status < 300]
    return (pages or captures)[0]


def _capture_json(c: ArchivedCapture) -> dict[str, object]:
    return {
        "captured_at": isoformat(c.captured_at),
        "status": c.status,
        "verdict": c.verdict.value if c.verdict else None,
        "final_url": c.final_url,
        "warc": c.warc.path,
        "offset": c.warc.offset,
        "length": c.warc.length,
        "record_id": c.warc.record_id,
        "payload": {"warc": c.payload_ref.path, "offset": c.payload_ref.offset,
                    "length": c.payload_ref.length, "record_id": c.payload_ref.record_id},
        "origin": c.origin,
        "memento_datetime": isoformat(c.memento_datetime) if c.memento_datetime else None,
        "title": c.title,
        "mode": c.mode,
        "screenshot": ({"warc": c.screenshot_ref.path, "offset": c.screenshot_ref.offset,
                        "length": c.screenshot_ref.length,
                        "record_id": c.screenshot_ref.record_id}
                       if c.screenshot_ref else None),
    }


def export_wacz(config: Path, *, sources: list[str] | None, output: str | None,
                io: Output) -> int:
    """Package each source's captures (every WARC file holding one of its captures) with a
    pages list of its cited URLs as a WACZ file, then validate it."""
    from archiver.api import Archive

    settings = load_settings(config)
    ids = sources or [s.id for s in settings.sources]
    if output and len(ids) > 1:
        raise UsageError("-o/--output names one file; pick one --source")
    with Archive(settings) as archive:
        for source_id in ids:
            warcs: set[Path] = set()
            pages: list[dict[str, str]] = []
            for citation in archive.citations(source_id):
                for capture in citation.captures:
                    warcs.add(settings.root / capture.warc.path)
                    warcs.add(settings.root / capture.payload_ref.path)
                if citation.captures and not any(p["url"] == citation.url for p in pages):
                    newest = citation.captures[0]
                    pages.append({"id": f"fn{citation.footnote}-{len(pages)}",
                                  "url": newest.final_url,
                                  "ts": isoformat(newest.captured_at),
                                  "title": newest.title or citation.url})
            if not warcs:
                raise NotArchivedError(f"{source_id}: nothing archived yet to export "
                                       "(run 'archiver run' first)")
            target = Path(output) if output else (
                settings.archive.reports_dir / source_id / f"{source_id}.wacz")
            target.parent.mkdir(parents=True, exist_ok=True)
            _wacz(sorted(warcs), pages, target, title=settings.source(source_id).title
                  or source_id)
            io.print(f"wrote {target} ({len(pages)} page(s) from {len(warcs)} WARC file(s))")
    return 0


def _wacz(warcs: list[Path], pages: list[dict[str, str]], target: Path, *, title: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        pages_file = Path(tmp) / "pages.jsonl"
        lines = [json.dumps({"format": "json-pages-1.0", "id": "pages", "title": "Cited pages"})]
        lines += [json.dumps(p, ensure_ascii=False) for p in pages]
        pages_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
        tmp_target = Path(tmp) / "out.wacz"
        wacz = [sys.executable, "-m", "wacz.main"]
        done = subprocess.run(
            [*wacz, "create", "-o", str(tmp_target), "-p", str(pages_file), "--title", title,
             *map(str, warcs)],
            capture_output=True, text=True, timeout=600,
        )
        if done.returncode != 0 or not tmp_target.exists():
            raise ArchiverError(f"{target}: the WACZ could not be created: "
                                f"{(done.stderr or done.stdout).strip()[-500:]}")
        check = subprocess.run([*wacz, "validate", "-f", str(tmp_target)],
                               capture_output=True, text=True, timeout=600)
        if check.returncode != 0:
            raise ArchiverError(f"{target}: the WACZ did not validate: "
                                f"{(check.stderr or check.stdout).strip()[-500:]}")
        shutil.move(str(tmp_target), target)


def serve(config: Path, *, host: str, port: int, io: Output) -> int:
    """Replay the archive in pywb at http://HOST:PORT/archive/ until interrupted."""
    from archiver.replay import pywb_command

    settings = load_settings(config)
    with tempfile.TemporaryDirectory() as tmp:
        command, env = pywb_command(settings.archive.dir, Path(tmp), host=host, port=port)
        io.print(f"serving {settings.archive.dir} at http://{host}:{port}/archive/ "
                 "(Ctrl-C to stop)")
        try:
            return subprocess.call(command, cwd=tmp, env=env)
        except FileNotFoundError as exc:
            raise ArchiverError("pywb is not installed: pip install 'archiver[replay]'") from exc
