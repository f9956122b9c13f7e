"""``Report`` → ``report.json``, the shape ``CONTRACT.md`` fixes (plus extra fields).

The contract's keys are the floor: ``source{id,path,title,published}``, ``generated_at``,
``footnotes`` and ``findings`` as ``extract`` writes them, and ``links`` with ``url``,
``footnotes``, ``verdict``, ``http_status``, ``final_url``, ``attempts``, ``capture`` and
``memento``. Added: each link's ``reason``, ``truncated`` (the ``WARC-Truncated`` reason
of its capture, ``null`` when whole), ``state``, ``failing_since``, ``title``,
``excerpt``, ``checked_at`` and ``rescued`` copy, and for a link that is not healthy its
``evidence`` (``"ours"``, ``"internet_archive"``, ``"none"``, or ``"unknown"``: not looked
up) and ``memento_offset_days`` (signed days from publication to the memento; both ``null``
for healthy and unchecked links);
a ``summary`` with counts by verdict and by evidence; the ``unsupported`` claims;
``changes``; ``notes``; ``run``; ``support`` (claim support per footnote and URL, see
``archiver.support.support_json``) and ``support_rule`` (the level rule in words). Times
are ``YYYY-MM-DDTHH:MM:SSZ``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime
from json.encoder import c_make_encoder  # type: ignore[attr-defined]
from typing import Any

from archiver.models import (
    Change,
    Finding,
    Footnote,
    LinkRecord,
    Memento,
    WarcRef,
    isoformat,
)
from archiver.parse.render import finding_json
from archiver.report.model import (
    Report,
    entry_footnotes,
    evidence_kind,
    iso,
    memento_offset_days,
)
from archiver.safetext import json_escaped
from archiver.support import LEVEL_RULE, LEVELS, Support, support_json

__all__ = ["finding_dict", "footnote_dict", "render_json", "render_json_chunks", "report_dict"]


def render_json(report: Report) -> str:
    """The report as pretty-printed JSON text (UTF-8 safe, non-ASCII kept), ending in a newline."""
    return "".join(render_json_chunks(report))


def render_json_chunks(report: Report) -> Iterator[str]:
    """``render_json(report)`` in pieces, for writing it to a file with flat memory: the long
    lists (footnotes, links, support, ...) are turned into JSON one item at a time, never held
    whole. The text is exactly ``json_dumps(report_dict(report), indent=2)`` plus a newline:
    a value's nested lines are indented by its depth, which is all ``indent=2`` does."""
    return render_json_around(report, frozenset())  # (no ``Section`` in it)


#: The sections of report.json that ``section_pieces`` writes from the records alone (the
#: report's source's publication date aside): another process can write them
#: (``report.write``).
SECTIONS = ("links", "support")


def render_json_around(report: Report, elsewhere: frozenset[str]) -> Iterator[str | Section]:
    """``render_json_chunks(report)``, but for each of the sections named in ``elsewhere``
    (of ``SECTIONS``) a ``Section`` where its text goes (``section_pieces``)."""
    pending: list[str] = []
    held = 0
    for piece in _pieces(report, elsewhere):
        if isinstance(piece, Section):
            if pending:
                yield "".join(pending)
                pending, held = [], 0
            yield piece
            continue
        pending.append(piece)
        held += len(piece)
        if held >= 1 << 16:
            yield "".join(pending)
            pending, held = [], 0
    pending.append("\n")
    yield "".join(pending)


class Section(str):
    """The name of a section of report.json whose text ``section_pieces`` writes."""


def section_pieces(name: str, records: Iterable[Any], published: date | None) -> Iterator[str]:
    """The text of report.json's section ``name`` (of ``SECTIONS``: its list, from ``[`` to
    ``]``) for its ``records`` (link records, or claim support), in pieces of about 64 KB;
    ``published``: the source's publication date."""
    texts: Iterator[str]
    if name == "links":
        texts = (_link_text(link, published) for link in records)
    elif name == "support":
        texts = map(_support_text, records)
    else:
        raise ValueError(f"not a section written apart: {name}")
    pending: list[str] = []
    held = 0
    for piece in _list_pieces(texts):
        pending.append(piece)
        held += len(piece)
        if held >= 1 << 16:
            yield "".join(pending)
            pending, held = [], 0
    yield "".join(pending)


def _list_pieces(texts: Iterable[str]) -> Iterator[str]:
    """A long list of the report from its items' texts (``_Items.texts``)."""
    empty = True
    for text in texts:
        yield ("[" if empty else ",") + _ITEM + text
        empty = False
    yield "[]" if empty else "\n  ]"


def _pieces(report: Report, elsewhere: frozenset[str] = frozenset()) -> Iterator[str | Section]:
    """The report's text in pieces, each already ``json_escaped`` (``_escaped``): the long
    lists' records as their scalars are written (``_scalar_texts``), where most of the text
    is, rather than the whole text scanned once more. The sections named in ``elsewhere``
    as a ``Section`` instead of their text."""
    for n, (key, value) in enumerate(_report_items(report)):
        yield ("{" if n == 0 else ",") + "\n  " + _escaped(_encode(key, "\n  ")) + ": "
        if key in elsewhere:
            yield Section(key)
        elif not isinstance(value, _Items):
            yield _escaped(_encode(value, "\n  "))
        else:
            yield from _list_pieces(value.texts())
    yield "\n}"


def _escaped(text: str) -> str:
    """``json_escaped(text)``, without a scan of an ASCII text that holds no DEL (all the
    other characters it escapes are not ASCII; ``str.isascii`` reads a flag the string was
    made with)."""
    if text.isascii() and "\x7f" not in text:
        return text
    return json_escaped(text)


# ── the indented encoder ────────────────────────────────────────────────────────
#
# ``json.dumps(indent=2)`` cannot use the C encoder (``c_make_encoder`` only serves compact
# output) and falls back to the pure-Python one, a generator per container and a call per
# value: most of the time of writing report.json. ``_encode`` writes the same text for the
# values the report holds (dicts with string keys, lists, tuples, strings, ints, floats,
# bools, None), strings escaped by json's own C ``encode_basestring``; anything else
# (another key or value type, a subclass) goes to ``json.dumps`` itself, whose text is
# indented to where it stands.

_str = json.encoder.encode_basestring  # ensure_ascii=False: the C function when built
_INF = float("inf")


def _float(value: float) -> str:
    # As json.encoder's floatstr with allow_nan (json.dumps' default).
    if value != value:
        return "NaN"
    if value == _INF:
        return "Infinity"
    if value == -_INF:
        return "-Infinity"
    return float.__repr__(value)


# A scalar's text by its exact type, each a C-level call but for floats ("null".format
# ignores its argument).
_SCALARS: dict[type, Callable[[Any], str]] = {
    str: _str,
    int: int.__repr__,
    type(None): "null".format,
    bool: {True: "true", False: "false"}.__getitem__,
    float: _float,
}


def _encode(value: Any, newline: str) -> str:
    """``json.dumps(value, ensure_ascii=False, indent=2)`` with every line after the first
    indented by ``newline[1:]`` (``newline`` is ``"\\n"`` plus that indent)."""
    scalar = _SCALARS.get(type(value))
    if scalar is not None:
        return scalar(value)
    return _container(value, newline)


# Each key's text with its colon ('"url": '), for the keys met (string keys only; a few
# dozen in a report), so that a key is escaped once, not once per link.
_KEYS: dict[str, str] = {}

# Containers whose items are all of these exact types hold no container: json's C encoder
# writes them (with the item separator carrying the line break and indent of their depth)
# exactly as json.dumps(indent=2) does, but for the break after the opening bracket and
# before the closing one.
_FLAT = frozenset({str, int, float, bool, type(None)})
_C_ENCODERS: dict[str, Callable[[Any, int], Any]] = {}


def _flat(value: Any, inner: str) -> str:
    """``value`` (a container of ``_FLAT`` items) on one line, its items separated by
    ``"," + inner``."""
    encoder = _C_ENCODERS.get(inner)
    if encoder is None:
        encoder = _C_ENCODERS[inner] = c_make_encoder(
            None, _refuse, _str, None, ": ", "," + inner, False, False, True)
    return "".join(encoder(value, 0))


def _refuse(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _container(value: Any, newline: str) -> str:
    kind = type(value)
    if kind is dict:
        if not value:
            return "{}"
        inner = newline + "  "
        if c_make_encoder is not None and _FLAT.issuperset(map(type, value.values())):
            return "{" + inner + _flat(value, inner)[1:-1] + newline + "}"
        parts = []
        keys = _KEYS
        for key, item in value.items():
            head = keys.get(key)
            if head is None:
                if type(key) is not str:  # json.dumps converts such a key (or refuses it)
                    return _dumps(value, newline)
                head = _str(key) + ": "
                if len(keys) < 4096:
                    keys[key] = head
            # The common scalars inline, in the order they are most often met.
            kind = type(item)
            if kind is str:
                parts.append(head + _str(item))
            elif item is None:
                parts.append(head + "null")
            elif kind is int:
                parts.append(head + int.__repr__(item))
            elif kind is bool:
                parts.append(head + ("true" if item else "false"))
            else:
                parts.append(head + _encode(item, inner))
        return "{" + inner + ("," + inner).join(parts) + newline + "}"
    if kind is list or kind is tuple:
        if not value:
            return "[]"
        inner = newline + "  "
        if c_make_encoder is not None and _FLAT.issuperset(map(type, value)):
            return "[" + inner + _flat(value, inner)[1:-1] + newline + "]"
        scalars = _SCALARS
        parts = []
        for item in value:
            scalar = scalars.get(type(item))
            parts.append(scalar(item) if scalar is not None else _container(item, inner))
        return "[" + inner + ("," + inner).join(parts) + newline + "]"
    return _dumps(value, newline)


def _dumps(value: Any, newline: str) -> str:
    # json.dumps escapes every newline inside a string, so each "\n" left is a line break.
    return json.dumps(value, ensure_ascii=False, indent=2).replace("\n", newline)


# ── the long lists' records, written field by field ────────────────────────────────
#
# A link record, a claim support and a footnote have a fixed shape, and there are as many
# of each as links: ``_link_text``, ``_support_text`` and ``_footnote_text`` write the text
# ``_encode`` writes for their dicts, at their depth (an item of a list of the report), from
# a template of the keys with the line breaks and indents of each depth, every scalar of the
# record encoded by one call of json's C encoder (``_scalar_texts``). A record holding a
# value of another type than these (never, from the pipeline) is written from its dict by
# ``_encode``, so that the text is the same whatever the record holds. Each returns its
# text ``_escaped``, as ``_pieces`` wants it.

_ITEM = "\n    "  # where a long list's items start (``_pieces``)
_I = _ITEM + "  "  # the keys of an item, then of the dicts and lists in it
_J = _I + "  "
_K = _J + "  "

# The scalars' texts, separated by a control character that no encoded scalar holds (a
# string's own control characters are escaped).
_SCALARS_APART = (None if c_make_encoder is None else c_make_encoder(
    None, _refuse, _str, None, ": ", "\x00", False, False, True))


def _scalar_texts(values: tuple[Any, ...] | list[Any]) -> list[str] | None:
    """Each of ``values``' JSON text (as ``_encode`` writes a scalar), ``_escaped``; or
    ``None`` when one of them is not a ``_FLAT`` type (or json has no C encoder)."""
    if _SCALARS_APART is None or not _FLAT.issuperset(map(type, values)):
        return None
    joined = "".join(_SCALARS_APART(values, 0))
    texts = joined[1:-1].split("\x00")
    if joined.isascii() and "\x7f" not in joined:
        return texts
    # Each text scanned on its own: most are ASCII (URLs, paths, digests), and a text's
    # ``isascii`` is a flag, while the scan costs nanoseconds a character.
    return [text if text.isascii() and "\x7f" not in text else json_escaped(text)
            for text in texts]


def _template(keys: tuple[str, ...], newline: str) -> str:
    """A dict of ``keys`` as ``_encode(..., newline)`` writes it, a ``%s`` for each value."""
    inner = newline + "  "
    return ("{" + inner + ("," + inner).join(_str(key).replace("%", "%%") + ": %s"
                                             for key in keys) + newline + "}")


def _list_text(texts: list[str], newline: str) -> str:
    """A list of items already written (at the depth ``newline + "  "``)."""
    if not texts:
        return "[]"
    inner = newline + "  "
    return "[" + inner + ("," + inner).join(texts) + newline + "]"


_LINK = _template(("url", "footnotes", "verdict", "reason", "http_status", "final_url",
                   "attempts", "truncated", "capture", "provenance", "memento", "rescued",
                   "state", "failing_since", "checked_at", "title", "excerpt", "evidence",
                   "memento_offset_days", "screenshot", "profile", "browser_lost"), _ITEM)
_WARC_KEYS = ("warc", "offset", "length", "record_id")
_CAPTURE = _template((*_WARC_KEYS, "captured_at", "payload", "mode"), _I)
_PAYLOAD = _template(_WARC_KEYS, _J)


def _link_text(link: LinkRecord, published: date | None) -> str:
    """``_encode(_link(link, published), _ITEM)``."""
    verdict, state, capture = link.verdict, link.state, link.capture
    values = [link.url, verdict._value_ if verdict is not None else None, link.reason,
              link.http_status, link.final_url, link.attempts, link.truncated,
              state._value_ if state is not None else None, _time(link.failing_since),
              _time(link.checked_at), link.title, link.excerpt, evidence_kind(link),
              memento_offset_days(link, published), link.profile,
              link.browser_lost, *link.footnotes]
    if capture is not None:
        payload = link.capture_payload or capture
        values += (capture.path, capture.offset, capture.length, capture.record_id,
                   _time(link.captured_at), payload.path, payload.offset, payload.length,
                   payload.record_id, link.capture_mode or "http")
    texts = _scalar_texts(values)
    if texts is None:
        return _escaped(_encode(_link(link, published), _ITEM))
    footnotes = len(link.footnotes)
    if capture is None:
        capture_text = "null"
    else:
        at = 16 + footnotes
        capture_text = _CAPTURE % (*texts[at:at + 5], _PAYLOAD % tuple(texts[at + 5:at + 9]),
                                   texts[at + 9])
    (url, verdict_text, reason, status, final_url, attempts, truncated, state_text, since,
     checked, title, excerpt, evidence, days, profile, lost) = texts[:16]
    provenance = dict(link.provenance)
    return _LINK % (
        url, _list_text(texts[16:16 + footnotes], _I), verdict_text, reason, status,
        final_url, attempts, truncated, capture_text,
        _escaped(_encode(provenance, _I)) if provenance else "null",
        _escaped(_encode(_memento(link.memento), _I)),
        _escaped(_encode(_warc(link.rescued), _I)),
        state_text, since, checked, title, excerpt, evidence, days,
        _escaped(_encode(_warc(link.screenshot), _I)), profile, lost)


_SUPPORT = _template(("footnote", "url", "level", "reason", "evidence", "facts"), _ITEM)
_EVIDENCE = _template(("origin", "kind"), _I)
_FACT_KEYS = ("text", "kind", "found", "passage", "required", "value", "claim", "start", "end",
              "rule", "matched", "how")
_FACT = _template(_FACT_KEYS, _J)


def _support_text(support: Support) -> str:
    """``_encode(support_json(support), _ITEM)``."""
    values = [support.footnote, support.url, support.level, support.reason,
              support.origin, support.text_kind]
    for check in support.facts:
        fact = check.fact
        values += (fact.text, fact.kind, check.found, check.passage, fact.required,
                   fact.value, check.claim, fact.start, fact.end, fact.rule, check.matched,
                   check.how)
    texts = _scalar_texts(values)
    if texts is None:
        return _escaped(_encode(support_json(support), _ITEM))
    size = len(_FACT_KEYS)
    facts = [_FACT % tuple(texts[at:at + size]) for at in range(6, len(texts), size)]
    return _SUPPORT % (*texts[:4], _EVIDENCE % tuple(texts[4:6]) if support.origin else "null",
                       _list_text(facts, _I))


_FOOTNOTE = _template(("number", "text", "urls", "claims"), _ITEM)
_CLAIM = _template(("text", "line"), _J)


def _footnote_text(note: Footnote) -> str:
    """``_encode(footnote_dict(note), _ITEM)``."""
    values = [note.number, note.text, *note.urls]
    for claim in note.claims:
        values += (claim.text, claim.line)
    texts = _scalar_texts(values)
    if texts is None:
        return _escaped(_encode(footnote_dict(note), _ITEM))
    urls = len(note.urls) + 2
    claims = [_CLAIM % (texts[at], texts[at + 1]) for at in range(urls, len(texts), 2)]
    return _FOOTNOTE % (texts[0], texts[1], _list_text(texts[2:urls], _I),
                        _list_text(claims, _I))


class _Items:
    """A long list of the report, made item by item as it is written: each item as its dict
    (``make``), and as its text at its depth when ``text`` is given (``text(item)`` for each
    of ``items()``, the same text as ``_escaped(_encode(dict, _ITEM))``)."""

    def __init__(self, make: Callable[[], Iterable[Any]],
                 items: Callable[[], Iterable[Any]] | None = None,
                 text: Callable[[Any], str] | None = None) -> None:
        self._make = make
        self._items, self.text = items, text

    def __iter__(self) -> Iterator[Any]:
        return iter(self._make())

    def texts(self) -> Iterator[str]:
        """Each item's text (at ``_ITEM``'s depth), ``_escaped``."""
        if self._items is None or self.text is None:
            return (_escaped(_encode(item, _ITEM)) for item in self._make())
        return map(self.text, self._items())


def report_dict(report: Report) -> dict[str, Any]:
    """The report as plain JSON-ready data (what ``render_json`` serialises)."""
    return {key: list(value) if isinstance(value, _Items) else value
            for key, value in _report_items(report)}


def _report_items(report: Report) -> Iterator[tuple[str, Any]]:
    source = report.source
    summary = report.summary
    yield "source", {
        "id": source.id,
        "path": report.source_path,
        "title": report.title,
        "published": source.published.isoformat() if source.published else None,
        "format": report.document.format,
    }
    yield "generated_at", isoformat(report.generated_at)
    yield "summary", {
        "claims": summary.claims,
        "footnotes": summary.footnotes,
        "urls": summary.urls,
        "citations": summary.citations,
        "healthy": summary.healthy,
        "failing": summary.failing,
        "unchecked": summary.unchecked,
        "captured": summary.captured,
        "mementos": summary.mementos,
        "rescued": summary.rescued,
        "no_archived_copy": summary.no_copy,
        "unsupported_claims": summary.unsupported_claims,
        "orphan_footnotes": summary.orphan_footnotes,
        "by_verdict": dict(summary.by_verdict),
        "evidence": dict(summary.evidence),
        "support": {level: report.support_counts.get(level, 0) for level in LEVELS},
    }
    yield "notes", list(report.notes)
    yield "footnotes", _Items(lambda: map(footnote_dict, report.document.footnotes),
                              lambda: report.document.footnotes, _footnote_text)
    yield "findings", _Items(lambda: (finding_dict(f) for f in report.document.findings))
    yield "unsupported", _Items(lambda: (
        {"footnote": note.number, "text": claim.text, "line": claim.line}
        for note in entry_footnotes(report) if not note.urls for claim in note.claims))
    published = source.published
    yield "links", _Items(lambda: (_link(link, published) for link in report.links),
                          lambda: report.links, lambda link: _link_text(link, published))
    yield "changes", _Items(lambda: (_change(change) for change in report.changes))
    yield "support", _Items(lambda: map(support_json, report.support), lambda: report.support,
                            _support_text)
    yield "support_rule", LEVEL_RULE
    yield "run", dict(report.run)


def footnote_dict(note: Footnote) -> dict[str, Any]:
    """One footnote as ``extract --format json`` writes it."""
    return {
        "number": note.number,
        "text": note.text,
        "urls": list(note.urls),
        "claims": [{"text": c.text, "line": c.line} for c in note.claims],
    }


def finding_dict(finding: Finding) -> dict[str, Any]:
    """One finding as ``extract --format json`` writes it (``url``/``suggestion`` when set)."""
    return finding_json(finding)


def _link(link: LinkRecord, published: date | None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "url": link.url,
        "footnotes": list(link.footnotes),
        "verdict": link.verdict._value_ if link.verdict is not None else None,
        "reason": link.reason,
        "http_status": link.http_status,
        "final_url": link.final_url,
        "attempts": link.attempts,
        "truncated": link.truncated,
        "capture": _capture(link.capture, link.captured_at, link.capture_payload),
        "provenance": dict(link.provenance) or None,
        "memento": _memento(link.memento),
        "rescued": _warc(link.rescued),
        "state": link.state._value_ if link.state is not None else None,
        "failing_since": _time(link.failing_since),
        "checked_at": _time(link.checked_at),
        "title": link.title,
        "excerpt": link.excerpt,
        "evidence": evidence_kind(link),
        "memento_offset_days": memento_offset_days(link, published),
    }
    # Browser captures (archiver.browse): how the capture was made, its screenshot record,
    # whether a logged-in profile was used, and why a link kept its HTTP capture only.
    if data["capture"] is not None:
        data["capture"]["mode"] = link.capture_mode or "http"
    data["screenshot"] = _warc(link.screenshot)
    data["profile"] = link.profile
    data["browser_lost"] = link.browser_lost
    return data


def _capture(ref: WarcRef | None, captured_at: datetime | None,
             payload: WarcRef | None) -> dict[str, Any] | None:
    """The record of this URL's fetch, with ``payload``: the record holding the bytes (the
    same record for a response, the original for a revisit)."""
    data = _warc(ref)
    if data is not None:
        data["captured_at"] = _time(captured_at)
        data["payload"] = _warc(payload or ref)
    return data


def _warc(ref: WarcRef | None) -> dict[str, Any] | None:
    if ref is None:
        return None
    return {"warc": ref.path, "offset": ref.offset, "length": ref.length,
            "record_id": ref.record_id}


def _memento(memento: Memento | None) -> dict[str, Any] | None:
    if memento is None:
        return None
    return {"url": memento.url, "datetime": iso(memento.datetime),
            "original_url": memento.original_url, "raw_url": memento.raw_url,
            "status": memento.status}


def _change(change: Change) -> dict[str, Any]:
    return {
        "url": change.url,
        "kind": change.kind.value,
        "verdict": change.verdict.value if change.verdict is not None else None,
        "previous_verdict": (change.previous_verdict.value
                             if change.previous_verdict is not None else None),
        "since": _time(change.since),
        "similarity": change.similarity,
        "reason": change.reason,
        "footnotes": list(change.footnotes),
    }


def _time(moment: datetime | None) -> str | None:
    return iso(moment) if moment is not None else None
