"""The report's fast paths give exactly what the library functions they stand for give:
report.json's indented encoder against ``json.dumps(indent=2)``, the HTML escape against
``html.escape(escape_controls(...))``, the http(s) test against ``urlsplit``, the remembered
times against ``models.isoformat``."""

from __future__ import annotations

import enum
import html
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from archiver.models import (
    Claim,
    Footnote,
    LinkRecord,
    LinkState,
    Memento,
    Verdict,
    WarcRef,
    isoformat,
)
from archiver.report.escape import esc, esc_often, is_web
from archiver.report.model import iso
from archiver.report.render_html import replay_url
from archiver.report.render_json import _encode
from archiver.safetext import escape_controls
from archiver.support import FactCheck, Support
from archiver.support_facts import Fact


class Colour(enum.StrEnum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


VALUES = [
    None, True, False, 0, -7, 2**70, 1.5, -0.0, 1e300, 3.0, float("nan"), float("inf"),
    float("-inf"), "", "plain", 'quote " and \\ backslash', "line\nbreak\ttab\r",
    "\x00\x1f\x7f\x85\u202e bidi", "Суд Алматы, 138 900 тенге", "emoji 🙂 and \ud800",
    [], {}, (), [[]], [{}], {"a": {}}, {"a": []}, [1, [2, [3, []]]], (1, "two", None),
    {"url": "https://x.example/?a=1&b=<2>", "footnotes": [1, 2], "capture": None,
     "nested": {"deep": {"deeper": [True, False, {"k": 1.25}]}}},
    {1: "int key", "s": 2}, {None: 1, True: 2, 1.5: 3}, {"e": Colour.RED, "i": Level.HIGH},
    [Colour.RED, Level.HIGH, {"x": Colour.RED}],
    [float("nan"), 1.5, -0.0, float("-inf"), "\ud800", "\x7f", None, True, 2**70],
    {"x": float("inf"), "y": "Суд \u202e", "z": None, "w": False},
    {"flat": [1, 2], "mixed": [1, {"a": (2, 3)}], "deep": {"d": {"e": {"f": []}}}},
]


@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
@pytest.mark.parametrize("newline", ["\n", "\n  ", "\n    "])
def test_encoder_writes_what_json_dumps_writes(value: object, newline: str) -> None:
    expected = json.dumps(value, ensure_ascii=False, indent=2).replace("\n", newline)
    assert _encode(value, newline) == expected


def test_encoder_refuses_what_json_dumps_refuses() -> None:
    for value in ({"a": object()}, [object()], {(1, 2): "tuple key"}):
        with pytest.raises(TypeError):
            json.dumps(value, ensure_ascii=False, indent=2)
        with pytest.raises(TypeError):
            _encode(value, "\n")


TEXTS = [
    None, "", "plain text", "a & b", "<script>alert('x')</script>", 'say "hi"', "it's",
    "\x1b[31mred\x1b[0m", "tab\tand\nnewline", "bidi \u202e evil", "C1 \x9b csi", "del \x7f",
    "Суд & «тенге»", 42, 1.5, Colour.RED,
]


@pytest.mark.parametrize("value", TEXTS, ids=range(len(TEXTS)))
def test_esc_is_html_escape_of_visible_controls(value: object) -> None:
    expected = html.escape(escape_controls("" if value is None else str(value)), quote=True)
    assert esc(value) == expected
    if value is not None:
        assert esc_often(value) == expected


def test_remembered_escapes_keep_types_apart() -> None:
    assert [esc_often(v) for v in (1, True, 1.0, "1")] == ["1", "True", "1.0", "1"]


URLS = [
    "http://example.org", "https://example.org/a?b#c", "http://", "https://", "http:///path",
    "http://?q", "http://#f", "HTTP://EXAMPLE.ORG", "Https://x", "ftp://example.org",
    "javascript:alert(1)", "data:text/html,x", "//example.org/x", "example.org", "",
    "http://[::1]/x", "http://[::1/x", "http://]x", "https://ex\tample.org", "http:\n//x",
    " http://x", "http://пример.рф/", "https://xn--e1afmkfd.xn--p1ai/", "http:x",
    "https://user:pw@host:8080/p", "http://exa mple.org/",
]


def _reference_web(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)


@pytest.mark.parametrize("url", URLS)
def test_is_web_answers_as_urlsplit(url: str) -> None:
    assert is_web(url) == _reference_web(url)


MOMENTS = [
    datetime(2026, 11, 30, 9, 46, 26, 123456, tzinfo=UTC),
    datetime(2020, 2, 29, 23, 59, 59, tzinfo=timezone(timedelta(hours=5))),
    datetime(2020, 1, 1, 0, 0, 0, tzinfo=timezone(timedelta(hours=-3, minutes=-30))),
]


@pytest.mark.parametrize("moment", MOMENTS, ids=range(len(MOMENTS)))
def test_remembered_times_are_isoformat(moment: datetime) -> None:
    for _ in range(2):  # the first call computes, the second remembers
        assert iso(moment) == isoformat(moment)
        assert replay_url("https://x.example/", moment) == (
            "http://127.0.0.1:8080/archive/"
            + moment.astimezone(UTC).strftime("%Y%m%d%H%M%S") + "/https://x.example/")


# ── report.json's records written field by field ──────────────────────────────────────

CONTROLS = "del \x7f, C1 \x9b, bidi \u202e, NUL \x00, quote \" and Суд"


def _odd_links() -> list[LinkRecord]:
    """Link records with every optional part set or not, controls in their texts, and values
    of other types than declared (which the fast path must hand to the generic encoder)."""
    ref = WarcRef("archive/a.warc.gz", 10, 20, "<urn:uuid:1>")
    other = WarcRef("archive/b.warc.gz", 30, 40, "<urn:uuid:2>")
    moment = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    memento = Memento("http://web.archive.org/web/2020/x", datetime(2020, 10, 1, tzinfo=UTC),
                      "https://x.example/", raw_url=None, status=None)
    whole = LinkRecord(
        url="https://x.example/" + CONTROLS, footnotes=(1, 2, 3), verdict=Verdict.NOT_FOUND,
        reason=CONTROLS, http_status=404, final_url=None, attempts=3, capture=ref,
        captured_at=moment, memento=memento, state=LinkState.FAILING, failing_since=moment,
        title=CONTROLS, excerpt="…" + CONTROLS, checked_at=moment, rescued=other,
        capture_payload=other, truncated="length", capture_mode="browser", screenshot=other,
        profile=True, browser_lost=CONTROLS,
        provenance=(("server_ip", "127.0.0.1"), ("subject", CONTROLS), ("tls", None),
                    ("server_ip", "twice")))
    return [
        whole,
        LinkRecord(url="https://bare.example/", footnotes=(), verdict=None),
        LinkRecord(url="https://ok.example/", footnotes=(4,), verdict=Verdict.OK,
                   http_status=200, capture=ref, captured_at=None, capture_mode=None),
        LinkRecord(url="https://ascii.example/", footnotes=(5,), verdict=Verdict.OK,
                   title="plain \x7f DEL only", capture=ref, captured_at=moment),
        replace(whole, title=Colour.RED),  # type: ignore[arg-type]
        replace(whole, http_status=Level.HIGH, attempts=True),  # type: ignore[arg-type]
        replace(whole, footnotes=(1, "2")),  # type: ignore[arg-type]
        replace(whole, capture=WarcRef("p", Level.HIGH, 1, "r")),  # type: ignore[arg-type]
        replace(whole, provenance=(("k", ["a list"]),)),  # type: ignore[arg-type]
    ]


def _odd_supports() -> list[Support]:
    claim = Claim(footnote=1, text="On 18 August 2020 a fine of 138 900 KZT", line=3)
    fact = Fact("amount", "138 900 KZT", 28, 39, "138900 KZT", True, "a sum " + CONTROLS)
    found = FactCheck(fact, 0, True, "... " + CONTROLS + " ...", "138 900 тенге", "as тенге")
    missing = FactCheck(fact, 0, False, None, None, "")
    return [
        Support(1, "https://x.example/", "supported", "every fact", (claim.text,),
                (found, missing), "ours", "html"),
        Support(2, "https://y.example/", "unknown", "no text", (), (), None, None),
        Support(3, "https://z.example/" + CONTROLS, "partial", CONTROLS, (), (missing,), "",
                "pdf"),
        Support(4, "https://w.example/", Colour.RED, "odd level", (), (found,),  # type: ignore[arg-type]
                "ours", "html"),
        Support(5, "https://v.example/", "partial", "odd fact", (),
                (replace(found, claim=1.5),), "ours", "html"),  # type: ignore[arg-type]
    ]


def _odd_footnotes() -> list[Footnote]:
    claims = (Claim(footnote=1, text=CONTROLS, line=1), Claim(footnote=1, text="b", line=9))
    return [
        Footnote(number=1, text=CONTROLS, urls=("https://x.example/", CONTROLS), line=2,
                 claims=claims),
        Footnote(number=2, text="", urls=(), line=3, claims=()),
        Footnote(number=3, text=Colour.RED, urls=(), line=4, claims=()),  # type: ignore[arg-type]
        Footnote(number=4, text="x", urls=(Colour.RED,), line=5,  # type: ignore[arg-type]
                 claims=(Claim(footnote=4, text="c", line=Level.HIGH),)),  # type: ignore[arg-type]
    ]


def test_json_records_are_written_as_their_dicts_are_encoded() -> None:
    from archiver.report.render_json import (
        _ITEM,
        _footnote_text,
        _link,
        _link_text,
        _support_text,
        footnote_dict,
    )
    from archiver.safetext import json_escaped
    from archiver.support import support_json
    from tests.report_samples import evidence_report, sample_report, supported_report

    def written(value: object) -> str:
        return json_escaped(json.dumps(value, ensure_ascii=False, indent=2)
                            .replace("\n", _ITEM))

    for report in (sample_report(), evidence_report(), supported_report(),
                   replace(sample_report(), links=_odd_links())):
        for link in report.links:
            published = report.source.published
            assert _link_text(link, published) == written(_link(link, published)), link.url
        for support in (*report.support, *_odd_supports()):
            assert _support_text(support) == written(support_json(support)), support.url
        for note in (*report.document.footnotes, *_odd_footnotes()):
            assert _footnote_text(note) == written(footnote_dict(note)), note.number
    text = _link_text(_odd_links()[0], None)
    assert "\\u202e" in text and "\\u007f" in text and "\u202e" not in text


def test_report_json_escapes_controls_in_every_record() -> None:
    from archiver.report.render_json import render_json, report_dict
    from archiver.safetext import json_dumps
    from tests.report_samples import sample_report

    base = sample_report()
    note = _odd_footnotes()[0]
    report = replace(base, links=_odd_links()[:4], support=tuple(_odd_supports()[:3]),
                     document=replace(base.document,
                                      footnotes=(*base.document.footnotes, note)))
    text = render_json(report)
    assert text == json_dumps(report_dict(report), indent=2) + "\n"
    for raw in ("\x7f", "\x9b", "\u202e"):
        assert raw not in text


_CSV_TEXTS = ["", "plain", "a,b", 'say "hi"', '"', "line\nbreak", "cr\rhere", "crlf\r\n",
              " leading space", "trailing space ", "tab\there", "'=1+1", "Суд, «тенге»",
              "\x00 nul", "semi;colon", "#"]


@given(st.lists(st.one_of(st.sampled_from(_CSV_TEXTS),
                          st.text(alphabet=st.sampled_from('ab ,"\r\n\t;\'Ж\x00')))))
def test_csv_fields_are_written_as_csv_writer_writes_them(cells: list[str]) -> None:
    import csv
    import io

    from archiver.report.render_csv import _csv_field

    out = io.StringIO()
    csv.writer(out).writerow([*cells, "end"])
    assert ",".join([*map(_csv_field, cells), "end"]) + "\r\n" == out.getvalue()
