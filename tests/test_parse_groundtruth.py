"""The shipped briefing, in every format the readers take, against the hand-checked truth."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from archiver.errors import DocumentError
from archiver.parse import parse_bytes, read_document
from archiver.parse.render import to_json
from tests.parse_helpers import (
    BRIEFING,
    bare_sup_html,
    decode_brackets,
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
    pandoc_html = html.read_text(encoding="utf-8")
    for notes in ("paragraphs", "list"):
        files[f"html-sup-{notes}"] = folder / f"sup-{notes}.html"
        files[f"html-sup-{notes}"].write_text(bare_sup_html(pandoc_html, notes), encoding="utf-8")
    # The PDF-Markdown itself through pandoc: bare <sup>N</sup>, notes at each page end,
    # flattened markers and the stray superscript left as they are.
    files["html-sup-pages"] = pandoc(BRIEFING.read_text(encoding="utf-8"), "html",
                                     folder / "pages.html")
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
     ("html-gdocs", "html"), ("docx", "docx"), ("odt", "odt"),
     ("html-sup-paragraphs", "html"), ("html-sup-list", "html")],
)
def test_converted_briefing_matches_ground_truth(converted: dict[str, Path], name: str,
                                                 fmt: str) -> None:
    doc = read_document(converted[name])
    assert doc.format == fmt
    assert mismatches(doc, expected(), lines=False) == []


def test_pdf_converter_html_with_notes_at_page_ends(converted: dict[str, Path]) -> None:
    doc = read_document(converted["html-sup-pages"])
    assert doc.format == "html"
    # This HTML keeps the PDF's defects, so the findings only the PDF-Markdown reader sees
    # (flattened markers, the superscript in footnote 68) apply to it too; and pandoc
    # percent-encodes the brackets of three link targets whose visible text it mangled.
    as_pdf = decode_brackets(replace(doc, format="pdf-markdown"))
    assert mismatches(as_pdf, expected(), lines=False) == []
    assert "activists 21 April 2019" in doc.footnote(68).text
    # "2 778 000 KZT" opening a paragraph is body text, not a second footnote 2.
    assert [f for f in doc.findings if f.code == "duplicate-footnote"] == []


def test_bare_sup_html_without_matching_notes_is_refused(converted: dict[str, Path],
                                                          tmp_path: Path) -> None:
    text = converted["html-sup-paragraphs"].read_text(encoding="utf-8")
    # The last note dropped: 93 markers, 92 notes.
    cut = text[:text.rindex("<p>93 ")] + "</div></body></html>"
    (tmp_path / "cut.html").write_text(cut, encoding="utf-8")
    with pytest.raises(DocumentError, match=r"cut\.html: .*bare <sup>N</sup>.*no note"):
        read_document(tmp_path / "cut.html")


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
