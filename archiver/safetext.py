"""Control characters made visible before text from documents or the web is written out.

A footnote, a page title or a server's header can hold terminal escape sequences (``ESC [``,
the single-byte ``CSI`` U+009B), other C0/C1 controls, DEL, or Unicode bidi overrides that
make a URL read differently from what it is. Printed raw they recolour or rewrite the
terminal, or hide part of a URL in a report. Every text output goes through one of:

- :func:`escape_controls` for plain text (terminal, Markdown, CSV, HTML text): each such
  character becomes a visible escape, ``\\x1b``, ``\\x9b``, ``\\u202e``; ``keep`` names the
  layout characters the format allows (by default tab and newline);
- :func:`json_dumps`, ``json.dumps`` whose output also ``\\u``-escapes DEL, C1 and bidi
  controls (``json.dumps`` escapes only C0, and keeps the others raw with
  ``ensure_ascii=False``).

Escaping is idempotent: an escaped text holds no control character, so escaping it again
changes nothing.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["UNSAFE", "escape_controls", "json_dumps", "json_escaped"]

#: Code points escaped in every output: C0 controls, DEL, C1 controls, and the bidi embedding,
#: override and isolate characters (U+202A-U+202E, U+2066-U+2069).
UNSAFE: frozenset[int] = frozenset(
    [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0), *range(0x202A, 0x202F),
     *range(0x2066, 0x206A)]
)


def _visible(code: int) -> str:
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


_TABLES: dict[str, dict[int, str]] = {}


def _table(keep: str) -> dict[int, str]:
    table = _TABLES.get(keep)
    if table is None:
        kept = {ord(ch) for ch in keep}
        table = {code: _visible(code) for code in UNSAFE if code not in kept}
        _TABLES[keep] = table
    return table


_JSON_TABLE = {code: f"\\u{code:04x}" for code in UNSAFE if code >= 0x20}


def _finder(codes: set[int] | frozenset[int]) -> re.Pattern[str]:
    return re.compile("[" + "".join(re.escape(chr(c)) for c in sorted(codes)) + "]")


# Finders of the characters a table changes: a text without one (nearly every text) is
# returned as it is, as ``str.translate`` with a mapping costs a dictionary lookup per
# character.
_FINDERS: dict[str, re.Pattern[str]] = {}
_JSON_FINDER = _finder(set(_JSON_TABLE))


def escape_controls(text: str, keep: str = "\t\n") -> str:
    """``text`` with every control character (see :data:`UNSAFE`) except those in ``keep``
    replaced by a visible backslash escape: ``"a\\x1b[31mb"`` → ``"a\\\\x1b[31mb"``."""
    finder = _FINDERS.get(keep)
    if finder is None:
        finder = _FINDERS[keep] = _finder(set(_table(keep)))
    if finder.search(text) is None:
        return text
    return text.translate(_table(keep))


def json_dumps(data: Any, **options: Any) -> str:
    """``json.dumps(data, ensure_ascii=False, **options)`` with DEL, C1 and bidi controls
    ``\\u``-escaped as well (C0 controls json.dumps escapes itself). Still valid JSON: these
    characters can only occur inside strings, where ``\\uXXXX`` means the same character."""
    text = json.dumps(data, ensure_ascii=False, **options)
    if _JSON_FINDER.search(text) is None:
        return text
    return text.translate(_JSON_TABLE)


def json_escaped(text: str) -> str:
    """``text`` (JSON, or a piece of it cut between tokens) with DEL, C1 and bidi controls
    ``\\u``-escaped, as ``json_dumps`` does."""
    if _JSON_FINDER.search(text) is None:
        return text
    return text.translate(_JSON_TABLE)
