"""The report's fast paths give exactly what the library functions they stand for give:
report.json's indented encoder against ``json.dumps(indent=2)``, the HTML escape against
``html.escape(escape_controls(...))``, the http(s) test against ``urlsplit``, the remembered
times against ``models.isoformat``."""

from __future__ import annotations

import enum
import html
import json
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import urlsplit

import pytest

from archiver.models import isoformat
from archiver.report.escape import esc, esc_often, is_web
from archiver.report.model import iso
from archiver.report.render_html import replay_url
from archiver.report.render_json import _encode
from archiver.safetext import escape_controls


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
