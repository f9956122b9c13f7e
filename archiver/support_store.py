"""Claim support judged before, kept in the catalog by the text it was judged on.

    rules() -> str                                   the digest of the judging code
    claims_key(claims) -> str                        what tells one footnote's claims apart
    encode(support) -> str                           a support as the catalog keeps it
    decode(judged, footnote, url, claims, kind) -> Support | None
    Keeper(catalog)                                  supports written in batches, those
                                                     taken marked used, unused ones forgotten

``support.assess`` is pure: the same claims checked against the same text by the same code
give the same facts and level, whichever footnote and URL they are for (those only label the
result). So a run keeps every support it judged on one of our captures' stored texts
(``Catalog.keep_supports``), keyed by

- the packed text's BLAKE2b digest (``pipeline._digest``, the one that tells the texts
  judged during the fetch apart: of the catalog's bytes, so the text need not be unpacked to
  be recognised), in hex, and the kind it was read as (``html``, ``pdf``, ...),
- the footnote's claims (``claims_key``), and
- the rules (``rules``): a digest of this archiver's version and of the source of the
  modules that judge (``support``, ``support_facts``, ``support_match``). Any change to
  them, released or not, is a different key: a support judged by other code is never
  reused, and the rows of other rules are deleted when a run keeps new ones.

``archiver report`` and the next run take a link's supports from there when every
footnote with claims citing it has one for the text the link reads now, and judge the rest
as before; a run does not even judge during its fetch a capture whose supports are kept. A
run marks the supports it takes used (``Keeper.took``, once a week at most) and forgets
those no run used for ``FORGET_AFTER_DAYS`` (pages that changed, claims that were edited),
so the table holds about what the library cites now. Nothing is kept from a process in
which the Russian analyser failed (its judgement is not the rules').

A cache: deleting its rows loses nothing but time. A row that does not decode (a damaged or
foreign catalog) is a miss, and a table that cannot be read is logged and judged around,
never an error. It holds JSON, never pickle: a catalog may come from someone else.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from datetime import date, timedelta
from typing import TYPE_CHECKING

from archiver.support import FactCheck, Support
from archiver.support_facts import Fact

if TYPE_CHECKING:
    from archiver.catalog import Catalog

__all__ = ["Keeper", "claims_key", "decode", "encode", "rules"]

log = logging.getLogger(__name__)

#: Supports written to the catalog at once by ``Keeper``: a transaction per batch, and only
#: this many encoded supports held in memory, however many links.
BATCH = 512


@functools.cache
def rules() -> str:
    """The digest of what judges claim support: this archiver's version, the bytes of
    ``support``, ``support_facts`` and ``support_match``, the version of the Russian
    morphology they consult (pymorphy3 and its dictionary, found without importing them, and
    the dictionary folder its environment variable names), Python's and its Unicode
    database's. Read once per process."""
    import os
    import sys
    import unicodedata
    from pathlib import Path

    from archiver import __version__, support, support_facts, support_match
    from archiver.codedigest import code_digest

    return code_digest(
        f"{__version__} {sys.version_info[:2]} {unicodedata.unidata_version} "
        f"{os.environ.get('PYMORPHY2_DICT_PATH')}",
        [Path(module.__file__ or "") for module in (support, support_facts, support_match)],
        [(package, part) for package, parts in _MORPHOLOGY for part in parts])


#: The files that say which Russian morphology claim support consults, by package.
_MORPHOLOGY = (("pymorphy3", ("version.py",)),
               ("pymorphy3_dicts_ru", ("version.py", "data/meta.json")))


@functools.lru_cache(maxsize=4096)
def claims_key(claims: tuple[str, ...]) -> str:
    """What tells a footnote's claims (in order) from any other's: a digest of them as a
    JSON list (no separator a claim could hold makes two lists one). The most recent kept:
    a footnote's claims are asked for once per URL it cites."""
    return hashlib.blake2b(json.dumps(list(claims)).encode(), digest_size=16).hexdigest()


def encode(support: Support) -> str:
    """``support``'s level, reason and fact checks as JSON (its footnote, URL, claims and
    evidence are the key's or the caller's)."""
    return json.dumps(
        [support.level, support.reason,
         [[c.fact.kind, c.fact.text, c.fact.start, c.fact.end, c.fact.value,
           c.fact.required, c.fact.rule, c.claim, c.found, c.passage, c.matched, c.how]
          for c in support.facts]],
        ensure_ascii=False, separators=(",", ":"))


def decode(judged: str, footnote: int, url: str, claims: tuple[str, ...],
           kind: str) -> Support | None:
    """The support ``encode`` gave ``judged``, for (``footnote``, ``url``) judged on our
    capture's text of ``kind``; ``None`` when ``judged`` is not what ``encode`` writes."""
    try:
        level, reason, rows = json.loads(judged)
        if not isinstance(level, str) or not isinstance(reason, str):
            return None
        facts = []
        for row in rows:
            if list(map(type, row)) not in _ROW_TYPES:
                return None  # a field of another type: not what encode wrote
            (kind_, text, start, end, value, required, rule, claim, found, passage, matched,
             how) = row
            facts.append(FactCheck(Fact(kind_, text, start, end, value, required, rule),
                                   claim, found, passage, matched, how))
    except (ValueError, TypeError):  # not JSON, or not of encode's shape
        return None
    return Support(footnote, url, level, reason, claims, tuple(facts), "ours", kind)


#: The types of a fact check's fields as ``encode`` writes them (a passage and the words
#: matched are ``None`` for a fact not found).
_ROW_TYPES = [[str, str, int, int, str, bool, str, int, bool, passage, matched, str]
              for passage in (str, type(None)) for matched in (str, type(None))]


#: Days a kept support stays unused before a run forgets it (a page that changed, claims
#: that were edited), and days before a support taken from the catalog is marked used again
#: (a daily check marks each weekly, not every day).
FORGET_AFTER_DAYS = 90
TOUCH_AFTER_DAYS = 7


class Keeper:
    """Supports judged on our captures' texts, written to ``catalog`` a ``BATCH`` at a
    time (``keep``; ``flush`` writes the rest), with the supports taken from it marked used
    (``took``); the first write forgets what was not used for ``FORGET_AFTER_DAYS``.

    A cache: a write that fails (a full disk) is logged once and the rest are not kept; the
    run goes on (what it must record fails on its own, with its own error). Nothing is kept
    once the Russian analyser has failed in this process (``support_match.analyser_failed``):
    what was judged without it is not what the rules judge."""

    def __init__(self, catalog: Catalog, today: date | None = None) -> None:
        from archiver.models import utcnow

        self._catalog = catalog
        self._rows: list[tuple[str, str, str, str]] = []
        self._touched: list[tuple[str, str, str]] = []
        self._today = today or utcnow().date()
        self._touch_before = (self._today - timedelta(days=TOUCH_AFTER_DAYS)).isoformat()
        self._forget_before: str | None = (
            self._today - timedelta(days=FORGET_AFTER_DAYS)).isoformat()
        self.kept = 0
        self.failed: str | None = None  # why the supports are no longer kept

    def keep(self, support: Support, text: str, kind: str) -> None:
        """Keep ``support``, judged on the packed text of digest ``text`` read as ``kind``;
        not one SQLite cannot store (a lone surrogate in a passage: it is judged again)."""
        from archiver.support_match import analyser_failed

        if self.failed is not None or analyser_failed():
            return
        judged = encode(support)
        if not judged.isascii():
            try:
                judged.encode("utf-8")
            except UnicodeEncodeError:
                return
        self._rows.append((text, kind, claims_key(support.claims), judged))
        if len(self._rows) >= BATCH:
            self.flush()

    def took(self, key: tuple[str, str, str], used: str) -> None:
        """A support of ``key`` (text, kind, claims digests), last used on day ``used``, was
        taken from the catalog: marked used today if that was ``TOUCH_AFTER_DAYS`` ago."""
        if used < self._touch_before:
            self._touched.append(key)
            if len(self._touched) >= BATCH:
                self.flush()

    def flush(self) -> None:
        """Write the supports kept, and mark used those taken, since the last write."""
        from archiver.errors import ArchiveError

        rows, self._rows = self._rows, []
        touched, self._touched = self._touched, []
        if not (rows or touched) or self.failed is not None:
            return
        try:
            self._catalog.keep_supports(rules(), rows, used=self._today.isoformat(),
                                        touched=touched, forget_before=self._forget_before)
        except ArchiveError as exc:
            self.failed = str(exc)
            log.warning("claim support is not kept for the next report (%s); it will be "
                        "judged again", exc)
            return
        self._forget_before = None  # once per run is enough
        self.kept += len(rows)
