"""The command line in-process (``main(argv)``) and once as a real subprocess."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from archiver.cli import build_parser, main

COMMANDS = ["extract", "lint", "run", "check", "show", "report", "export", "serve", "verify",
            "keygen"]


def call(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_examples(command: str) -> None:
    code, out, _ = call(command, "--help")
    assert code == 0
    assert "examples:" in out
    assert "--config" in out


def test_every_option_has_help_text() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, subparser in sub.choices.items():  # type: ignore[union-attr]
        for action in subparser._actions:
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"


def test_top_level_help_lists_every_command_once() -> None:
    code, out, _ = call("--help")
    assert code == 0
    listed = [line.split()[0] for line in out.split("commands:", 1)[1].split("examples:")[0]
              .splitlines() if line.startswith("    ") and not line.startswith("     ")]
    assert sorted(listed) == sorted(COMMANDS)


def test_no_command_prints_usage_and_exits_2() -> None:
    code, out, _ = call()
    assert code == 2 and "COMMAND" in out


def test_usage_error_exits_2_without_traceback() -> None:
    code, _, err = call("check", "--fail-on", "sometimes")
    assert code == 2
    assert "invalid choice" in err and "Traceback" not in err


def test_missing_config_exits_2_naming_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "absent.toml"
    code, _, err = call("run", "--config", str(missing))
    assert code == 2
    assert str(missing) in err and "Traceback" not in err


def test_config_option_accepted_before_the_command(tmp_path: Path) -> None:
    missing = tmp_path / "absent.toml"
    code, _, err = call("--config", str(missing), "lint")
    assert code == 2 and str(missing) in err


def test_subprocess_python_m_archiver_version() -> None:
    done = subprocess.run([sys.executable, "-m", "archiver", "--version"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert done.stdout.startswith("archiver ")


def test_the_process_command_skips_the_final_collection_and_in_process_calls_do_not() -> None:
    """``main()`` as the process's command freezes the collector at exit (shutdown then
    frees no cyclic garbage one object at a time); ``main(argv)``, as tests and library
    callers use it, leaves the calling process's collector alone."""
    import gc

    frozen = gc.get_freeze_count()
    assert call("--version")[0] == 0
    assert gc.get_freeze_count() == frozen
    script = ("import atexit, gc, sys\n"
              "atexit.register(lambda: print('frozen', gc.get_freeze_count() > 0))\n"
              "from archiver.cli import main\n"
              "sys.argv = ['archiver', '--version']\n"
              "code = main()\n"
              "print('before exit', gc.get_freeze_count() > 0)\n"
              "sys.exit(code)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("archiver ")
    assert lines[1:] == ["before exit False", "frozen True"]


def test_extract_prints_summary_first_then_footnotes(briefing: Path) -> None:
    code, out, _ = call("extract", str(briefing))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].endswith("0 errors, 31 warnings, 14 info")
    assert "93 footnotes" in lines[0]
    assert "FOOTNOTES" in out and "claim (line 9)" in out


def test_extract_json_matches_the_contract_shape(briefing: Path) -> None:
    import json

    code, out, _ = call("extract", str(briefing), "--format", "json")
    assert code == 0
    data = json.loads(out)
    first = data["footnotes"][0]
    assert first["number"] == 1 and first["claims"][0]["line"] == 9
    assert set(first) >= {"number", "text", "urls", "claims"}
    assert {"code", "severity", "footnote", "line", "message"} <= set(data["findings"][0])


def test_lint_strict_fails_on_the_briefing_warnings(briefing: Path) -> None:
    code, out, _ = call("lint", str(briefing))
    assert code == 0 and "failed" not in out
    # --strict says why it failed, once, as its last line.
    code, out, _ = call("lint", str(briefing), "--strict")
    assert code == 1
    assert out.splitlines()[-1] == "failed: 31 warnings (--strict)"
    assert out.count("failed:") == 1
    code, out, _ = call("lint", str(briefing), "--strict", "--format", "json")
    assert code == 1 and json.loads(out)["failed"] == "31 warnings (--strict)"


def test_extract_unreadable_file_exits_2_naming_it(tmp_path: Path) -> None:
    bad = tmp_path / "scan.pdf"
    bad.write_bytes(b"%PDF-1.4 binary \x00\x01 stuff")
    code, _, err = call("extract", str(bad))
    assert code == 2 and str(bad) in err and "Traceback" not in err


def test_a_bug_is_one_line_not_a_traceback(monkeypatch: pytest.MonkeyPatch,
                                           briefing: Path) -> None:
    import archiver.commands.extract as extract_command

    def broken(*args: object, **kwargs: object) -> int:
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(extract_command, "extract", broken)
    monkeypatch.delenv("ARCHIVER_DEBUG", raising=False)
    code, _, err = call("extract", str(briefing))
    assert code == 1
    assert "internal error: ZeroDivisionError: boom" in err and "Traceback" not in err
    monkeypatch.setenv("ARCHIVER_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        call("extract", str(briefing))


def test_a_reader_that_leaves_early_does_not_hide_a_failing_check(tmp_path: Path) -> None:
    """``archiver check --fail-on any | head -1`` from cron: when the reader has gone before
    the output is written (its end of the pipe closed), the check still exits 1."""
    import os

    from tests.test_run import make_project
    from tests.webserver import Reply, WebServer

    with WebServer() as web:
        web.route("/gone", Reply(404, b"not here"))
        config = make_project(tmp_path, [web.url("/gone")])
        assert main(["run", "--config", str(config), "--quiet"],
                    stdout=io.StringIO(), stderr=io.StringIO()) == 0
        read_end, write_end = os.pipe()
        os.close(read_end)  # the reader is gone before a word is written
        try:
            done = subprocess.run(
                [sys.executable, "-m", "archiver", "check", "--fail-on", "any",
                 "--config", str(config)],
                stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120,
                env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
        finally:
            os.close(write_end)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr
