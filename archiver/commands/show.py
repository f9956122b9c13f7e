"""``archiver show``, ``archiver export --wacz`` and ``archiver serve``: getting evidence out."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import tempfile
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from archiver.config import load_settings
from archiver.errors import ArchiverError, NotArchivedError, SetupError, UsageError
from archiver.models import isoformat
from archiver.safetext import escape_controls

if TYPE_CHECKING:
    from archiver.api import ArchivedCapture, Citation
    from archiver.cli import Output
    from archiver.config import Settings
    from archiver.models import Memento

__all__ = ["export_wacz", "serve", "show"]


def show(config: Path, ref: str, *, mode: str, at: str | None, fmt: str, io: Output,
         url_number: int | None = None) -> int:
    """List the copies of ``ref`` (ours and the Internet Archive's) by their own date, newest
    first, or print one copy's text, headers or raw bytes. Exit 0 found, 1 not archived,
    2 usage (a malformed reference, or a footnote with several URLs and no ``--url N``).

    Which copy: with ``at``, the one whose own date (a memento's datetime, else our capture
    time) is nearest; without, the newest of ours that shows the page (a healthy verdict),
    else the newest rescued Internet Archive copy, else the newest of all. The choice and its
    reason go to stderr in one line (``chosen`` in ``--format json``). Reads only: a missing
    archive folder is "not archived", and is not created."""
    from archiver.api import Archive, parse_ref, parse_when

    parse_ref(ref)  # a malformed reference is a usage error whatever the archive holds
    settings = load_settings(config)
    when = parse_when(at) if at else None
    with Archive(settings) as archive:
        urls = _pick_urls(ref, archive.urls_of(ref), url_number, mode)
        found = {url: sorted(archive.captures(url), key=lambda c: c.dated, reverse=True)
                 for url in urls}
        lookups = {url: archive.mementos(url) for url in urls}
        exists = archive.exists
        uncited = [u for u in urls if not archive.cites(u)]
    if not any(found.values()):
        where = "" if exists else f" ({settings.archive.dir} holds no archive yet)"
        known = [m for ms in lookups.values() for m in ms]
        also = (f"; the Internet Archive has {len(known)} copy(ies), e.g. {known[-1].url}"
                if known else "")
        if not exists:
            hint = "run 'archiver run' first"
        elif uncited:
            hint = ("no source cites it as written; 'archiver show SOURCE_ID#N' names a "
                    "footnote's URLs")
        else:
            hint = "not captured yet: no run has reached it; the next 'archiver run' tries again"
        raise NotArchivedError(f"{ref}: not in the archive{where}{also} ({hint})")

    if mode == "list":
        return _list(ref, found, lookups, when, at, fmt, io)

    from archiver.api import nearest

    (url,) = urls
    copies = found[url]
    if not copies:
        raise NotArchivedError(f"{url}: not in the archive (run 'archiver run' first)")
    if mode == "screenshot":
        shots = [c for c in copies if c.screenshot_ref is not None]
        if not shots:
            raise NotArchivedError(f"{url}: no browser capture, so no screenshot "
                                   "(see [browser] in sources.toml)")
        capture = nearest(shots, when) if when is not None else shots[0]
        why = f"showing the screenshot of our browser capture of {_day(capture.captured_at)}"
    else:
        capture, why = _choose(copies, lookups[url], when, at)
    if mode == "provenance":
        return _provenance(settings, capture, why, fmt, io)
    if mode in ("raw", "screenshot"):
        io.err.write(escape_controls(why) + "\n")
        stream = getattr(io.out, "buffer", None)
        # Written chunk by chunk: a body that decodes to gigabytes is never held whole.
        chunks = ([capture.screenshot() or b""] if mode == "screenshot"
                  else capture.payload_chunks())
        if stream is None:  # an in-memory text stream (tests): write latin-1 text
            for chunk in chunks:
                io.out.write(chunk.decode("latin-1"))
        else:
            io.out.flush()
            for chunk in chunks:
                stream.write(chunk)
            stream.flush()
        return 0
    if fmt == "json":
        body: dict[str, object] = {"url": url, "chosen": why, "capture": _capture_json(capture)}
        if mode == "headers":
            body["status"] = capture.status
            body["headers"] = [[name, value] for name, value in capture.headers()]
        else:
            body["text"] = capture.text()
        io.json(body)
        return 0
    io.err.write(escape_controls(why) + "\n")
    if mode == "headers":
        io.print(f"HTTP status {capture.status}")
        for name, value in capture.headers():
            io.print(f"{name}: {value}")
    else:
        io.print(capture.text())
    return 0


def _pick_urls(ref: str, urls: list[str], number: int | None, mode: str) -> list[str]:
    """The URL(s) of ``ref`` to show: ``--url N`` picks the Nth; reading one copy (``--text``,
    ``--headers``, ``--raw``) of a footnote that cites several URLs needs it."""
    if number is None and (mode == "list" or len(urls) == 1):
        return urls
    choices = "\n".join(f"  --url {i}  {u}" for i, u in enumerate(urls, start=1))
    if number is None:
        raise UsageError(f"{ref} cites {len(urls)} URLs; choose one with --url N:\n{choices}")
    if not 1 <= number <= len(urls):
        raise UsageError(f"--url {number}: {ref} cites {len(urls)} URL(s):\n{choices}")
    return [urls[number - 1]]


def _day(moment: datetime) -> str:
    return moment.astimezone(UTC).date().isoformat()


def _describe(c: ArchivedCapture) -> str:
    if c.origin == "internet-archive":
        return f"the Internet Archive copy of {_day(c.dated)}"
    return f"our capture of {_day(c.captured_at)}"


# How a verdict reads after "our capture of DATE is ...".
_VERDICT_PHRASE = {
    "soft_404": "an error page", "login_wall": "a login wall", "parked": "a parked domain",
    "blocked": "blocked", "not_found": "a 404 page", "gone": "a 410 (gone) page",
    "server_error": "a server error",
}


def _judged(c: ArchivedCapture, subject: str | None = None) -> str:
    """``"our capture of DATE is a login wall (reason)"``; ``subject`` replaces the name."""
    subject = subject or _describe(c)
    if c.verdict is None:
        return f"{subject} has no verdict (HTTP status {c.status or '-'})"
    phrase = _VERDICT_PHRASE.get(c.verdict.value, f"judged {c.verdict.value}")
    return f"{subject} is {phrase}" + (f" ({c.reason})" if c.reason else "")


def _choose(copies: list[ArchivedCapture], lookups: list[Memento], when: datetime | None,
            at: str | None) -> tuple[ArchivedCapture, str]:
    """The copy to read and a one-line reason (see ``show``). ``copies`` is newest first
    by their own date; ``lookups`` are the mementos found, stored or not."""
    from archiver.api import nearest

    if when is not None:
        chosen = nearest(copies, when)
        why = f"showing {_describe(chosen)}: the copy nearest to {at}"
        gap = abs((chosen.dated - when).total_seconds())
        stored = {c.memento_datetime for c in copies if c.origin == "internet-archive"}
        closer = [m for m in lookups if m.datetime not in stored
                  and abs((m.datetime - when).total_seconds()) < gap]
        if closer:
            best = min(closer, key=lambda m: abs((m.datetime - when).total_seconds()))
            why += (f"; the Internet Archive has a nearer copy, of {_day(best.datetime)}, not "
                    f"stored here: {best.url}")
        return chosen, why
    ours = [c for c in copies if c.origin != "internet-archive"]
    rescued = [c for c in copies if c.origin == "internet-archive"]
    healthy = [c for c in ours if c.shows_page]
    if healthy:
        chosen = healthy[0]
        verdict = chosen.verdict.value if chosen.verdict else f"HTTP {chosen.status}"
        return chosen, f"showing {_describe(chosen)}: the newest that shows the page ({verdict})"
    if rescued:
        chosen = rescued[0]
        why = f"showing {_describe(chosen)}: " + (_judged(ours[0]) if ours else
                                                  "we hold no capture of our own")
        return chosen, why
    chosen = copies[0]
    why = f"showing {_describe(chosen)}, the newest, but no copy shows the page: " + \
        _judged(chosen, "it")
    if lookups:
        why += (f"; the Internet Archive has a copy of {_day(lookups[-1].datetime)}, not "
                f"stored here: {lookups[-1].url}")
    return chosen, why


def _list(ref: str, found: dict[str, list[ArchivedCapture]], lookups: dict[str, list[Memento]],
          when: datetime | None, at: str | None, fmt: str, io: Output) -> int:
    """Every copy of each URL, newest first by its own date; ``*`` marks the one ``--text``
    would read (with the same ``--at``). Mementos found but not stored are listed too."""
    chosen = {url: _choose(caps, lookups[url], when, at) if caps else None
              for url, caps in found.items()}

    def unstored(url: str) -> list[Memento]:
        stored = {c.memento_datetime for c in found[url] if c.origin == "internet-archive"}
        return [m for m in reversed(lookups[url]) if m.datetime not in stored]

    if fmt == "json":
        data: dict[str, list[dict[str, object]]] = {}
        for url, caps in found.items():
            pick = chosen[url]
            entries = [{**_capture_json(c), "stored": True,
                        "chosen": pick[1] if pick is not None and c is pick[0] else None}
                       for c in caps]
            entries += [_memento_json(m) for m in unstored(url)]
            entries.sort(key=lambda e: str(e["dated"]), reverse=True)
            data[url] = entries
        io.json(data)
        return 0
    total = sum(len(c) for c in found.values())
    io.print(f"{ref}: {total} capture(s) of {len(found)} URL(s)")
    for url, caps in found.items():
        io.print(url)
        if not caps:
            io.print("  (not archived)")
        pick = chosen[url]
        for c in caps:
            marker = "*" if pick is not None and c is pick[0] else " "
            io.print(f" {marker}{isoformat(c.dated)}  {c.status or '-':>3}  "
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
        for m in unstored(url):
            io.print(f"  {isoformat(m.datetime)}  {m.status or '-':>3}  {'not stored':<16} "
                     f"{m.url}")
            io.print(f"   {'':20} Internet Archive copy found by lookup, not in our WARCs "
                     "('archiver run --rescue-capture' stores it)")
        if pick is not None:
            io.print(f"  * {pick[1]}")
    return 0


def _capture_json(c: ArchivedCapture) -> dict[str, object]:
    return {
        "dated": isoformat(c.dated),
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


def _memento_json(m: Memento) -> dict[str, object]:
    """A memento found by lookup but not stored in our WARCs (``stored: false``)."""
    return {"dated": isoformat(m.datetime), "captured_at": None, "status": m.status,
            "verdict": None, "final_url": m.url, "warc": None, "offset": None, "length": None,
            "record_id": None, "payload": None, "origin": "internet-archive",
            "memento_datetime": isoformat(m.datetime), "title": None, "stored": False,
            "chosen": None}


def export_wacz(config: Path, *, sources: list[str] | None, output: str | None,
                io: Output, sign: bool = False) -> int:
    """Package each source's captures (every WARC file holding one of its captures) with a
    pages list of its cited URLs as a WACZ file, then validate it. With ``sign``, sign it
    (and timestamp it) as ``archiver.signing`` describes; each package is entered in the
    custody log."""
    from archiver.api import Archive
    from archiver.replay import require_extra

    settings = load_settings(config)
    require_extra("wacz", "archiver export --wacz")
    ids = sources or [s.id for s in settings.sources]
    if output and len(ids) > 1:
        raise UsageError("-o/--output names one file; pick one --source")
    if sign:  # a missing or wrong key is said before any work is done
        from archiver.signing import load_key

        load_key(settings.root / settings.provenance.signing_key)
    with Archive(settings) as archive:
        index = _Index(settings.archive.dir)
        for source_id in ids:
            warcs: set[Path] = set()
            pages: list[dict[str, object]] = []
            by_url: dict[str, dict[str, object]] = {}
            for citation in archive.citations(source_id):
                for capture in citation.captures:
                    warcs.add(settings.root / capture.warc.path)
                    warcs.add(settings.root / capture.payload_ref.path)
                if not citation.captures:
                    continue
                # One entry per cited URL, under the cited URL (a login wall or a redirect
                # replays from there), listing every footnote that cites it.
                if citation.url in by_url:
                    footnotes = by_url[citation.url]["footnotes"]
                    assert isinstance(footnotes, list)
                    if citation.footnote not in footnotes:
                        footnotes.append(citation.footnote)
                    continue
                by_url[citation.url] = _page(settings, citation, len(pages), index)
                pages.append(by_url[citation.url])
            if not warcs:
                raise NotArchivedError(f"{source_id}: nothing archived yet to export "
                                       "(run 'archiver run' first)")
            target = Path(output) if output else (
                settings.archive.reports_dir / source_id / f"{source_id}.wacz")
            target.parent.mkdir(parents=True, exist_ok=True)
            listed = _wacz(sorted(warcs), pages, target,
                           title=settings.source(source_id).title or source_id)
            _seal(settings, target, source_id, sign=sign, io=io)
            io.print(f"wrote {target} ({len(listed)} page(s) from {len(warcs)} WARC file(s))")
            # The WACZ tool lists a page only where a record has its address and date: one
            # it left out would not open from the list, and is named rather than counted.
            for page in pages:
                if page["url"] not in listed:
                    io.error(f"{target}: {page['url']} is not in the page list: no record "
                             f"under that address at {page['ts']}")
    return 0


class _Index:
    """The archive's CDXJ index, read once for every page of an export."""

    def __init__(self, archive_dir: Path) -> None:
        self.archive_dir = archive_dir
        self._lines: list[str] | None = None

    def record_date(self, url: str, at_or_before: datetime) -> str | None:
        """The date (ISO) of the newest record stored under ``url`` no later than
        ``at_or_before`` (to the second), ``None`` if there is none."""
        from archiver.rescue import parse_timestamp
        from archiver.warc import index_lines, lookup

        if self._lines is None:
            self._lines = index_lines(self.archive_dir)
        limit = at_or_before.astimezone(UTC).strftime("%Y%m%d%H%M%S")
        found = [e.timestamp[:14] for e in lookup(self.archive_dir, url, lines=self._lines)
                 if e.timestamp[:14] <= limit]
        return isoformat(parse_timestamp(max(found))) if found else None


def _page(settings: Settings, citation: Citation, number: int,
          index: _Index) -> dict[str, object]:
    """The pages.jsonl entry of a cited URL: the copy that shows the page (ours if healthy,
    else the rescued copy, else the newest), under the URL and date its record is stored
    under, so ReplayWeb.page finds it (and the WACZ tool, which drops a page whose address
    and date match no record, keeps it)."""
    from archiver.warc import read_record

    copies = citation.captures
    chosen = (next((c for c in copies if c.origin == "live" and c.verdict is not None
                    and c.verdict.healthy), None)
              or next((c for c in copies if c.origin != "live"), None) or copies[0])
    url, when = citation.url, isoformat(chosen.captured_at)
    if chosen.origin == "live" and chosen.final_url != citation.url:
        # A capture's date is its final answer's; the record under the cited URL is the
        # first hop's, written earlier (a second or more, on a slow redirect).
        when = index.record_date(citation.url, chosen.captured_at) or when
    if chosen.origin != "live":
        # Rescued copies are stored under the cited URL at the memento's date (older ones
        # under their web.archive.org address): take both from the record itself.
        head = dict(read_record(settings.root, chosen.warc).warc_headers)
        url = head.get("WARC-Target-URI", chosen.final_url)
        when = head.get("WARC-Date", when)
    return {"id": f"fn{citation.footnote}-{number}", "url": url, "ts": when,
            "title": chosen.title or citation.url, "footnotes": [citation.footnote]}


def _wacz(warcs: list[Path], pages: list[dict[str, object]], target: Path, *,
          title: str) -> set[str]:
    """Write the WACZ of ``warcs`` with ``pages`` to ``target`` and validate it; returns the
    addresses its page list holds."""
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
        with zipfile.ZipFile(tmp_target) as made:
            # No page matched a record: the tool then writes no page list at all.
            text = (made.read("pages/pages.jsonl").decode("utf-8")
                    if "pages/pages.jsonl" in made.namelist() else "")
        listed = {json.loads(line).get("url") for line in text.splitlines()[1:]
                  if line.strip()}
        shutil.move(str(tmp_target), target)
    return {url for url in listed if isinstance(url, str)}


def serve(config: Path, *, host: str, port: int, io: Output) -> int:
    """Replay the archive in pywb at http://HOST:PORT/archive/<timestamp>/<url> until Ctrl-C,
    SIGTERM or SIGHUP, then stop pywb and exit 0. ``SetupError`` (exit 2) when pywb is not
    installed, nothing is archived yet, or the port cannot be had."""
    from archiver.replay import PywbServer, require_extra
    from archiver.warc import INDEX_NAME

    settings = load_settings(config)
    require_extra("pywb", "archiver serve")
    archive_dir = settings.archive.dir
    index = archive_dir / INDEX_NAME
    if not index.is_file():
        raise SetupError(f"{archive_dir}: nothing archived yet (run 'archiver run' first)")

    def stop(signum: int, frame: object) -> None:
        raise _Stopped(signal.Signals(signum).name)

    # SIGTERM (service managers, kill) and SIGHUP (a closed terminal) end the server the way
    # Ctrl-C does, so pywb is always stopped with it; a signal ignored on purpose (nohup)
    # stays ignored.
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGHUP)
                if signal.getsignal(sig) is not signal.SIG_IGN}
    try:
        with tempfile.TemporaryDirectory(prefix="archiver-serve-") as tmp, \
                PywbServer(archive_dir, Path(tmp), host=host, port=port) as server:
            io.print(f"serving {archive_dir} at {server.url} (Ctrl-C to stop)")
            example = _example_capture(index)
            io.print(f"open a capture at {server.url}<timestamp>/<url>"
                     + (f", e.g. {server.url}{example}" if example else ""))
            io.out.flush()
            code = server.wait()
            raise ArchiverError(f"pywb stopped unexpectedly (exit {code}): "
                                f"{server.last_log_line()}")
    except KeyboardInterrupt:
        io.print("server stopped (Ctrl-C)")
        return 0
    except _Stopped as stopped:
        io.print(f"server stopped ({stopped})")
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class _Stopped(Exception):
    """SIGTERM or SIGHUP arrived while serving."""


def _example_capture(index: Path) -> str:
    """``<timestamp>/<url>`` of the first capture in the CDXJ index, or "" if it has none."""
    try:
        with index.open(encoding="utf-8") as lines:
            for line in lines:
                parts = line.split(" ", 2)
                if len(parts) == 3 and parts[2].startswith("{"):
                    url = json.loads(parts[2]).get("url")
                    if url:
                        return f"{parts[1]}/{url}"
    except (OSError, ValueError):
        pass
    return ""


def _seal(settings: Settings, target: Path, source_id: str, *, sign: bool,
          io: Output) -> None:
    """Sign (and timestamp) the package when asked, then enter it in the custody log."""
    import hashlib

    from archiver import custody, provenance, signing

    details: dict[str, object] = {"source": source_id, "signed": sign}
    if sign:
        key = signing.load_key(settings.root / settings.provenance.signing_key)
        digest = signing.sign_wacz(target, key, tsa_url=settings.provenance.tsa_url)
        details["public_key"] = signing.key_fingerprint(key.public_key())
        details["package_hash"] = digest["hash"]
        io.print(f"signed {target} with key {details['public_key']}")
        if "timestamp" in digest:
            details["timestamp"] = digest["timestamp"]["time"]
            io.print(f"timestamped {digest['timestamp']['time']} by "
                     f"{settings.provenance.tsa_url}")
    sha = hashlib.sha256()
    with open(target, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            sha.update(chunk)
    custody.Custody(settings.archive.dir, settings.provenance.actor
                    or provenance.default_actor()).append(
        "export", settings.relative(target), sha.hexdigest(), details)


def _provenance(settings: Settings, capture: ArchivedCapture, why: str, fmt: str,
                io: Output) -> int:
    """Print the provenance record of ``capture`` (exit 1 when it has none: captured
    before provenance was recorded)."""
    from archiver.catalog import Catalog
    from archiver.provenance import summary_lines

    with Catalog.open(settings.archive.dir) as catalog:
        row = catalog.provenance(capture.warc.record_id)
    if row is None:
        raise NotArchivedError(f"{capture.url}: this capture ({isoformat(capture.captured_at)})"
                               " has no provenance record (it was made by an older archiver)")
    text, sha256, metadata_id = row
    doc = json.loads(text)
    if fmt == "json":
        io.json({"url": capture.url, "chosen": why, "provenance": doc,
                 "provenance_sha256": sha256, "provenance_record_id": metadata_id})
        return 0
    io.err.write(why + "\n")
    for line in summary_lines(doc, full=True):
        io.print(line)
    io.print(f"provenance record {metadata_id}, SHA-256 {sha256}")
    return 0
