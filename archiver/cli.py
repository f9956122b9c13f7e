"""Command line: arguments → settings → pipeline → exit code.

This module parses arguments and owns every exit code; ``archiver.commands`` turns each
command into calls on the stages and writes through ``Output`` (the only code that prints).
``main(argv)`` returns the exit code so the tests can run every command in-process. Exit
codes (see ``CONTRACT.md``):

====  =====================================================================
 0    success (for ``run``: finished; dead links are findings, not failures)
 1    findings/failing links at the chosen level; ``show``: not archived;
      an internal error (a bug, reported in one line)
 2    usage, config or unusable input
 3    the archive could not be written
====  =====================================================================

With ``--format json`` an error is printed as ``{"error": MESSAGE, "exit": CODE}`` on stdout
instead of ``error: MESSAGE`` on stderr, so a script reading the JSON gets JSON either way.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import gc
import os
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO, cast

from archiver import __version__
from archiver.errors import ArchiverError, UsageError
from archiver.safetext import escape_controls, json_dumps

__all__ = ["main"]

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_ARCHIVE = 0, 1, 2, 3

#: One line per command for ``archiver --help`` (the command's own --help has the full text).
_SUMMARIES = {
    "extract": "parse one document: footnotes, URLs, claims, findings (no network)",
    "lint": "the editor's pre-publication check (no network)",
    "run": "archive every cited URL, judge link health, rescue, write reports",
    "check": "the scheduled link-rot check: what changed since last time",
    "show": "retrieve archived evidence for a URL or a footnote",
    "report": "rebuild the reports from the archive without fetching",
    "export": "package a source's captures as a WACZ file",
    "serve": "browse the archive locally in pywb",
    "verify": "check digests, index, catalog, custody log, or a signed WACZ",
    "keygen": "create a signing key for 'export --wacz --sign'",
}

_EPILOG = """\
examples:
  archiver lint                               # check every source in sources.toml
  archiver extract briefing.docx --format json
  archiver run                                # archive everything the sources cite
  archiver check --fail-on any                # from cron: exit 1 if any link fails
  archiver show kazakhstan-2020#14 --text
  archiver serve                              # replay at http://127.0.0.1:8080/archive/

Run 'archiver COMMAND --help' for a command's options and examples.
"""


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so ``main`` owns every exit code."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


def _common() -> argparse.ArgumentParser:
    """Options every command takes (after the command name as well as before it)."""
    common = _Parser(add_help=False)
    common.add_argument(
        "--config",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help="the sources file (default: sources.toml in the working directory); "
        "paths inside it are relative to its folder",
    )
    return common


def _add(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    name: str,
    summary: str,
    examples: str,
    common: argparse.ArgumentParser,
) -> argparse.ArgumentParser:
    return sub.add_parser(
        name,
        help=_SUMMARIES[name],
        description=summary,
        epilog="examples:\n" + textwrap.indent(textwrap.dedent(examples).strip(), "  "),
        formatter_class=_formatter,
        parents=[common],
    )


def build_parser() -> argparse.ArgumentParser:
    """The whole command line, with help text and examples for every command and option."""
    common = _common()
    parser = _Parser(
        prog="archiver",
        description="Archive the evidence behind a briefing's footnotes before it rots.",
        epilog=_EPILOG,
        formatter_class=_formatter,
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"archiver {__version__}")
    sub = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND",
                                parser_class=_Parser)

    p = _add(sub, "extract", "Parse one document: footnotes, their URLs, the claims that "
             "cite them, and findings. No network.", """
             archiver extract sources/kazakhstan-2020.md
             archiver extract draft.docx --format json > citations.json
             """, common)
    p.add_argument("doc", metavar="DOC", help="the document: Markdown (from a PDF, or with "
                   "[^N] footnotes), HTML, DOCX or ODT; the format is recognised from content")
    _format_option(p)

    p = _add(sub, "lint", "The editor's pre-publication check: footnote structure and URL "
             "syntax. No network.", """
             archiver lint                        # every source in sources.toml
             archiver lint draft.md --strict      # warnings fail too (exit 1)
             archiver lint a.md b.docx --format json
             """, common)
    p.add_argument("docs", metavar="DOC", nargs="*",
                   help="documents to check (default: every source in the config)")
    _format_option(p)
    p.add_argument("--strict", action="store_true",
                   help="fail (exit 1) on warnings as well as errors")

    p = _add(sub, "run", "The main job: extract every source, capture every cited URL into "
             "WARC files under archive/, judge each link, look dead links up in the Internet "
             "Archive, and write the reports under reports/. Re-running resumes.", """
             archiver run                         # every source in sources.toml
             archiver run --source kazakhstan-2020 --refresh
             archiver run --rescue-capture        # also copy Wayback mementos into our WARCs
             archiver run --deadline 600          # stop fetching after 10 minutes
             """, common)
    _source_option(p)
    p.add_argument("--refresh", action="store_true",
                   help="fetch again URLs that are already captured")
    p.add_argument("--no-rescue", action="store_true",
                   help="do not look dead links up in the Internet Archive")
    p.add_argument("--rescue-capture", action="store_true",
                   help="fetch the memento of each dead link into our own WARC files")
    _deadline_option(p)
    _format_option(p)
    _progress_option(p)

    p = _add(sub, "check", "The scheduled link-rot check: re-test every cited URL, record the "
             "result in the history, capture what changed, and say what changed since the "
             "previous check.", """
             archiver check                       # exit 1 if a link newly fails
             archiver check --fail-on any         # exit 1 while any link fails
             archiver check --format json | jq .summary
             archiver check --quiet --deadline 1800   # cron: summary and problems only
             """, common)
    _source_option(p)
    p.add_argument("--fail-on", choices=["new", "any", "none"], default="new",
                   help="exit 1 when links fail at this level: 'new' (newly failing or "
                   "newly dead, the default), 'any' (any failing link), 'none' (never)")
    p.add_argument("--no-rescue", action="store_true",
                   help="do not look dead links up in the Internet Archive")
    _deadline_option(p)
    _format_option(p)
    _progress_option(p)

    p = _add(sub, "show", "Retrieve archived evidence. REF is an http(s) URL, or "
             "SOURCE_ID#N for every URL of footnote N. Lists every copy (ours and the Internet "
             "Archive's) by its own date, newest first. --text, --headers and --raw read one "
             "copy: the one nearest --at, else our newest capture that shows the page (a "
             "healthy verdict), else the newest rescued Internet Archive copy, else the "
             "newest; which one and why is said on stderr. A footnote citing several URLs "
             "needs --url N for them. --screenshot writes a browser capture's screenshot.", """
             archiver show 'kazakhstan-2020#14'
             archiver show 'kazakhstan-2020#14' --text
             archiver show 'kazakhstan-2020#1' --url 2 --raw > report.pdf
             archiver show 'kazakhstan-2020#14' --at 2020-11-01 --headers
             archiver show 'kazakhstan-2020#14' --text --format json | jq -r .chosen
             archiver show 'kazakhstan-2020#14' --screenshot > page.png  # not browsed: (exit 1)
             """, common)
    p.add_argument("ref", metavar="REF", help="an http(s) URL, or SOURCE_ID#N for footnote N")
    p.add_argument("--url", metavar="N", type=int, dest="url_number",
                   help="the Nth URL of a footnote that cites several (needed for --text, "
                   "--headers and --raw there)")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--text", action="store_true",
                      help="print the readable text of the archived page (main content)")
    what.add_argument("--headers", action="store_true",
                      help="print the archived HTTP response headers")
    what.add_argument("--raw", action="store_true",
                      help="write the archived payload bytes to stdout (a PDF, an image)")
    what.add_argument("--screenshot", action="store_true",
                      help="write a browser capture's full-page screenshot (PNG) to stdout")
    what.add_argument("--provenance", action="store_true",
                      help="print the capture's provenance record: URLs fetched, server "
                      "address, TLS certificates, request headers, time, SHA-256 digests")
    p.add_argument("--at", metavar="DATE",
                   help="pick the copy whose own date (an Internet Archive copy's memento "
                   "date, else our capture time) is nearest to DATE (YYYY-MM-DD or ISO time)")
    _format_option(p)

    p = _add(sub, "report", "Rebuild reports/SOURCE_ID/ from the archive and the catalog, "
             "without fetching anything.", """
             archiver report
             archiver report --source kazakhstan-2020
             """, common)
    _source_option(p)

    p = _add(sub, "export", "Package a source's captures as a WACZ file that opens in "
             "ReplayWeb.page. Needs the replay extra: pip install 'archiver[replay]'.", """
             archiver export --wacz
             archiver export --wacz --source kazakhstan-2020 -o evidence.wacz
             """, common)
    p.add_argument("--wacz", action="store_true", required=True,
                   help="write a WACZ package (the only export format so far)")
    _source_option(p)
    p.add_argument("-o", "--output", metavar="PATH",
                   help="where to write (default: reports/SOURCE_ID/SOURCE_ID.wacz)")
    p.add_argument("--sign", action="store_true",
                   help="sign the package with [provenance] signing_key (and timestamp it "
                        "when [provenance] tsa_url is set)")

    p = _add(sub, "verify", "Check that the archive still holds what was written: every "
             "WARC record's digests, the index, the catalog and the custody log; or check a "
             "WACZ package's hashes, signature and timestamp. Exit 0 all intact, 1 any "
             "mismatch, 2 usage.", """
             archiver verify
             archiver verify --source kazakhstan-2020 --format json
             archiver verify reports/kazakhstan-2020/kazakhstan-2020.wacz
             """, common)
    _source_option(p)
    p.add_argument("wacz", nargs="?", metavar="PATH.wacz", help="a WACZ package to check")
    _format_option(p)

    p = _add(sub, "keygen", "Create an ECDSA signing key (P-256, or P-384 with --curve) for "
             "'export --wacz --sign' "
             "(never overwrites an existing file).", """
             archiver keygen
             archiver keygen -o keys/archiver-signing.pem
             archiver keygen --curve P-384 -o replayweb-key.pem   # ReplayWeb.page checks P-384
             """, common)
    p.add_argument("-o", "--output", metavar="PATH",
                   help="where to write (default: [provenance] signing_key, "
                        "signing-key.pem beside sources.toml)")
    p.add_argument("--curve", choices=("P-256", "P-384"), default="P-256",
                   help="the key's curve (default P-256; ReplayWeb.page verifies anonymous "
                   "signatures made with P-384 keys only)")

    p = _add(sub, "serve", "Browse the archive locally, as it looked when captured, with "
             "pywb: each capture replays at http://HOST:PORT/archive/TIMESTAMP/URL (the "
             "capture nearest TIMESTAMP, which may be partial: 2026, 20261130). Runs until "
             "Ctrl-C or SIGTERM. Needs the replay extra: pip install 'archiver[replay]'.", """
             archiver serve                       # prints the address of a capture to open
             archiver serve --port 0              # any free port (printed)
             archiver serve --host 0.0.0.0 --port 9000   # reachable from other machines
             """, common)
    p.add_argument("--port", type=_port, default=8080,
                   help="port to listen on, 1-65535, or 0 for any free port (default 8080)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    return parser


def _port(text: str) -> int:
    """A TCP port number for ``--port``: 0 (any free port) to 65535."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number (1-65535, or 0 for "
                                         "any free port)")
    return port


def _format_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=["text", "json"], default="text",
                   help="output format (default: text)")


def _source_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", metavar="ID", action="append",
                   help="only this source (repeatable; default: every source in the config)")


def _progress_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", "-q", action="store_true",
                   help="no progress output; only the summary line and what needs "
                   "attention, each once")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected seconds (0 or more), got {text!r}")
    return value


def _deadline_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--deadline", metavar="SECONDS", type=_seconds, default=None,
                   help="stop fetching this many seconds after the start (default: "
                   "[fetch] run_deadline, 3600; 0: no limit); URLs not fetched keep their "
                   "state, are listed, and are tried again by the next run")


# ── commands ─────────────────────────────────────────────────────────────────


class _PipeSafe:
    """A text stream whose reader may leave early (``archiver check | head -1``): writes after
    that are dropped instead of raising, so the command still finishes and exits with its own
    code (a failing check piped into ``head`` must still exit 1 for cron and CI)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.reader_gone = False

    def write(self, text: str) -> int:
        if not self.reader_gone:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self._gone()
        return len(text)

    def flush(self) -> None:
        if not self.reader_gone:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._gone()

    def _gone(self) -> None:
        self.reader_gone = True
        # Python flushes stdout once more at exit and would report the broken pipe there.
        try:
            fd = self._stream.fileno()
        except (AttributeError, OSError, ValueError):
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class Output:
    """Where a command writes: stdout for results, stderr for progress and errors."""

    def __init__(self, out: TextIO, err: TextIO) -> None:
        self.out = out
        self.err = err

    # Text from documents and servers can hold terminal escape sequences: every line is
    # written with its control characters made visible (archiver.safetext).
    def print(self, text: str = "") -> None:
        text = escape_controls(text)
        self.out.write(text if text.endswith("\n") else text + "\n")

    def json(self, data: object) -> None:
        self.out.write(json_dumps(data, indent=2) + "\n")

    def error(self, text: str) -> None:
        self.err.write(f"error: {escape_controls(text)}\n")

    @property
    def interactive(self) -> bool:
        return bool(getattr(self.err, "isatty", lambda: False)()) and not os.environ.get("CI")


def _config_path(args: argparse.Namespace) -> Path:
    return Path(getattr(args, "config", None) or "sources.toml")


def _cmd_extract(args: argparse.Namespace, io: Output) -> int:
    from archiver.commands.extract import extract

    return extract(Path(args.doc), fmt=args.format, io=io)


def _cmd_lint(args: argparse.Namespace, io: Output) -> int:
    from archiver.commands.extract import lint

    return lint([Path(d) for d in args.docs], config=_config_path(args), fmt=args.format,
                strict=args.strict, io=io)


def _cmd_run(args: argparse.Namespace, io: Output) -> int:
    from archiver import collector

    # From the imports on: the run resumes the collector once its fetching starts.
    with collector.paused():
        from archiver.commands.run import run

        return run(_config_path(args), sources=args.source, refresh=args.refresh,
                   rescue=not args.no_rescue, rescue_capture=args.rescue_capture,
                   fmt=args.format, quiet=args.quiet, io=io, deadline=args.deadline)


def _cmd_check(args: argparse.Namespace, io: Output) -> int:
    from archiver import collector

    with collector.paused():  # as for run
        from archiver.commands.run import check

        return check(_config_path(args), sources=args.source, fail_on=args.fail_on,
                     rescue=not args.no_rescue, fmt=args.format, quiet=args.quiet, io=io,
                     deadline=args.deadline)


def _cmd_show(args: argparse.Namespace, io: Output) -> int:
    from archiver.commands.show import show

    mode = "raw" if args.raw else "text" if args.text else "headers" if args.headers else \
        "provenance" if args.provenance else "screenshot" if args.screenshot else "list"
    return show(_config_path(args), args.ref, mode=mode, at=args.at, fmt=args.format, io=io,
                url_number=args.url_number)


def _cmd_report(args: argparse.Namespace, io: Output) -> int:
    from archiver.commands.run import rebuild_reports

    return rebuild_reports(_config_path(args), sources=args.source, io=io)


def _cmd_export(args: argparse.Namespace, io: Output) -> int:
    from archiver.commands.show import export_wacz

    return export_wacz(_config_path(args), sources=args.source, output=args.output, io=io,
                       sign=args.sign)


def _cmd_verify(args: argparse.Namespace, io: Output) -> int:
    from archiver.commands.verify import verify

    return verify(_config_path(args), sources=args.source, wacz=args.wacz, fmt=args.format,
                  io=io)


def _cmd_keygen(args: argparse.Namespace, io: Output) -> int:
    from archiver.commands.verify import keygen

    return keygen(_config_path(args), output=args.output, io=io, curve=args.curve)


def _cmd_serve(args: argparse.Namespace, io: Output) -> int:
    from archiver.commands.show import serve

    return serve(_config_path(args), host=args.host, port=args.port, io=io)


_COMMANDS: dict[str, Callable[[argparse.Namespace, Output], int]] = {
    "extract": _cmd_extract,
    "lint": _cmd_lint,
    "run": _cmd_run,
    "check": _cmd_check,
    "show": _cmd_show,
    "report": _cmd_report,
    "export": _cmd_export,
    "serve": _cmd_serve,
    "verify": _cmd_verify,
    "keygen": _cmd_keygen,
}


def main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None,
         stderr: TextIO | None = None) -> int:
    """Run one command; return its exit code. Never raises for expected failures: an
    ``ArchiverError`` becomes ``error: <message>`` on stderr and its exit code."""
    io = Output(cast(TextIO, _PipeSafe(stdout or sys.stdout)), stderr or sys.stderr)
    parser = build_parser()
    if argv is None:  # the process's own command line: the process ends with this command
        atexit.register(_skip_final_collection)
    argv = list(sys.argv[1:] if argv is None else argv)
    json_errors = _wants_json(argv)
    try:
        try:
            with contextlib.redirect_stdout(io.out):
                args = parser.parse_args(argv)
        except SystemExit as exc:  # --help and --version exit 0 through argparse
            return int(exc.code or 0)
        if not args.command:
            io.out.write(parser.format_help())
            return EXIT_USAGE
        return _COMMANDS[args.command](args, io)
    except ArchiverError as exc:
        if json_errors:
            io.json({"error": str(exc), "exit": exc.exit_code})
            return exc.exit_code
        io.error(str(exc))
        if isinstance(exc, UsageError):
            io.err.write("Run 'archiver --help' for usage.\n")
        return exc.exit_code
    except KeyboardInterrupt:
        io.error("interrupted; closed WARC files are valid and the next run resumes")
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # a bug: say so in one line; the traceback on request
        if os.environ.get("ARCHIVER_DEBUG"):
            raise
        message = (f"internal error: {type(exc).__name__}: {exc} (this is a bug in archiver; "
                   "set ARCHIVER_DEBUG=1 to see the traceback and please report it)")
        if json_errors:
            io.json({"error": message, "exit": EXIT_FINDINGS})
        else:
            io.error(message)
        return EXIT_FINDINGS


def _skip_final_collection() -> None:
    """At the end of the process, moves every object out of the collector's reach
    (``gc.freeze``): Python's shutdown would otherwise run full collections over every
    object the command left (its imported modules, the run's records) and free them one by
    one, 0.15-0.3 s of CPU after the command has finished. Nothing is lost: files and the
    catalog are closed by the commands themselves, and atexit handlers still run."""
    gc.freeze()


def _wants_json(argv: Sequence[str]) -> bool:
    """Whether the command line asks for ``--format json``: its errors are then JSON too,
    ``{"error": MESSAGE, "exit": CODE}`` on stdout (where a script reads the JSON), even
    when the arguments themselves are wrong."""
    for i, arg in enumerate(argv):
        if arg == "--format=json" or (arg == "--format" and argv[i + 1:i + 2] == ["json"]):
            return True
    return False
