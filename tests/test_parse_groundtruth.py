"""The shipped briefing, in every format the readers take, against the hand-checked truth."""

from __future__ import annotations

from pathlib import Path

import pytest

from archiver.parse import parse_bytes, read_document
from archiver.parse.render import to_json
from tests.parse_helpers import (
    BRIEFING,
    expected,
    footnote_markdown,
    gdocs_html,
    mismatches,
    pandoc,
    word_html,
)


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pytest.importorskip("pypandoc")
    folder = tmp_path_factory.mktemp("briefing")
    markdown = footnote_markdown()
    files = {"mdfoot": folder / "briefing.txt"}
    files["mdfoot"].write_text(markdown, encoding="utf-8")
    html = pandoc(markdown, "html", folder / "pandoc.html")
    files["html-pandoc"] = html
    files["html-word"] = folder / "word.htm"
    files["html-word"].write_text(word_html(html.read_text(encoding="utf-8")), encoding="utf-8")
    files["html-gdocs"] = folder / "gdocs.html"
    files["html-gdocs"].write_text(gdocs_html(html.read_text(encoding="utf-8")),
                                   encoding="utf-8")
    # Extensions deliberately misleading: the format must come from the content.
    files["docx"] = pandoc(markdown, "docx", folder / "draft.bin")
    files["odt"] = pandoc(markdown, "odt", folder / "draft2.bin")
    return files


def test_shipped_briefing_matches_ground_truth() -> None:
    doc = read_document(BRIEFING)
    assert doc.format == "pdf-markdown"
    assert len(doc.footnotes) == 93
    assert mismatches(doc, expected(), lines=True) == []


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("mdfoot", "markdown-footnotes"), ("html-pandoc", "html"), ("html-word", "html"),
     ("html-gdocs", "html"), ("docx", "docx"), ("odt", "odt")],
)
def test_converted_briefing_matches_ground_truth(converted: dict[str, Path], name: str,
                                                 fmt: str) -> None:
    doc = read_document(converted[name])
    assert doc.format == fmt
    assert mismatches(doc, expected(), lines=False) == []


def test_traps_of_the_pdf_conversion() -> None:
    doc = read_document(BRIEFING)
    # Line 43 "2 778 000 KZT ..." is body text, not a second footnote 2.
    assert doc.footnote(2).line == 31
    assert [f for f in doc.findings if f.code == "duplicate-footnote"] == []
    # The <sup>21</sup> inside footnote 68 is a date, not a second citation of footnote 21.
    assert [c.line for c in doc.footnote(21).claims] == [90]
    assert "activists 21 April 2019" in doc.footnote(68).text
    # Flattened markers are recovered where they stand.
    assert [c.line for c in doc.footnote(45).claims] == [177]
    assert "48951" not in doc.footnote(51).claims[0].text
    # The sentence cut by the page-end block of footnotes 26-33 is joined again.
    claim_33 = doc.footnote(33).claims[0].text
    assert claim_33 == "On 22 February 2020, police also detained party delegates in Atyrau."


def test_json_shape_follows_the_contract() -> None:
    data = to_json(parse_bytes(BRIEFING.read_bytes(), "kazakhstan-2020.md"))
    first = data["footnotes"][0]
    assert set(first) >= {"number", "text", "urls", "claims"}
    assert first["claims"][0] == {
        "text": "In the context of the Covid-19 pandemic, this pattern has been reinforced, as the "
                "authorities have used the pandemic as an excuse to justify repression.",
        "line": 9,
    }
    finding = data["findings"][0]
    assert set(finding) >= {"code", "severity", "footnote", "line", "message"}
    assert {f["severity"] for f in data["findings"]} <= {"error", "warning", "info"}
