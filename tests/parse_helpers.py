"""Building the briefing in other formats for the reader tests, and comparing to ground truth.

The conversions use the project's own code (``pdfmd.to_footnote_markdown``) and pandoc (via
pypandoc, which ships it); Word- and Google-Docs-style HTML are made by rewriting pandoc's HTML
anchors the way those exporters name them. Nothing here edits expected output.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from bs4 import BeautifulSoup

from archiver.models import Document
from archiver.parse.pdfmd import to_footnote_markdown

REPO = Path(__file__).resolve().parent.parent
BRIEFING = REPO / "sources" / "kazakhstan-2020.md"
EXPECTED = REPO / "tests" / "data" / "kazakhstan-2020.expected.json"


def expected() -> dict[str, Any]:
    return json.loads(EXPECTED.read_text(encoding="utf-8"))


def footnote_markdown() -> str:
    return to_footnote_markdown(BRIEFING.read_text(encoding="utf-8"))


def pandoc(markdown: str, fmt: str, out: Path) -> Path:
    import pypandoc

    pypandoc.convert_text(markdown, fmt, format="markdown-smart", outputfile=str(out),
                          extra_args=["--standalone", "--metadata", "title=Briefing"])
    return out


def word_html(pandoc_html: str) -> str:
    """Pandoc's HTML with footnotes as Word's "Save as Web Page" writes them."""
    soup = BeautifulSoup(pandoc_html, "html.parser")
    for ref in soup.select("a.footnote-ref"):
        n = re.sub(r"\D", "", ref["href"])
        new = soup.new_tag("a", href=f"#_ftn{n}", attrs={"name": f"_ftnref{n}", "title": ""})
        span = soup.new_tag("span", attrs={"class": "MsoFootnoteReference"})
        span.string = f"[{n}]"
        new.append(span)
        ref.replace_with(new)
    section = soup.select_one("section.footnotes")
    assert section is not None
    holder = soup.new_tag("div", attrs={"style": "mso-element:footnote-list"})
    for item in section.select("li"):
        n = re.sub(r"\D", "", item["id"])
        for back in item.select("a.footnote-back"):
            back.decompose()
        div = soup.new_tag("div", attrs={"style": "mso-element:footnote", "id": f"ftn{n}"})
        para = soup.new_tag("p", attrs={"class": "MsoFootnoteText"})
        anchor = soup.new_tag("a", href=f"#_ftnref{n}", attrs={"name": f"_ftn{n}"})
        anchor.string = f"[{n}]"
        para.append(anchor)
        para.append(" ")
        for p in item.find_all("p"):
            para.extend(list(p.contents))
        div.append(para)
        holder.append(div)
    section.replace_with(holder)
    return str(soup)


def gdocs_html(pandoc_html: str) -> str:
    """Pandoc's HTML with footnotes as Google Docs' HTML export writes them."""
    soup = BeautifulSoup(pandoc_html, "html.parser")
    for ref in soup.select("a.footnote-ref"):
        n = re.sub(r"\D", "", ref["href"])
        sup = soup.new_tag("sup")
        link = soup.new_tag("a", href=f"#ftnt{n}", id=f"ftnt_ref{n}")
        link.string = f"[{n}]"
        sup.append(link)
        ref.replace_with(sup)
    section = soup.select_one("section.footnotes")
    assert section is not None
    holder = soup.new_tag("div")
    for item in section.select("li"):
        n = re.sub(r"\D", "", item["id"])
        for back in item.select("a.footnote-back"):
            back.decompose()
        div = soup.new_tag("div")
        para = soup.new_tag("p", attrs={"class": "c3"})
        anchor = soup.new_tag("a", href=f"#ftnt_ref{n}", id=f"ftnt{n}")
        anchor.string = f"[{n}]"
        para.append(anchor)
        span = soup.new_tag("span", attrs={"class": "c1"})
        span.append(" ")
        for p in item.find_all("p"):
            span.extend(list(p.contents))
        para.append(span)
        div.append(para)
        holder.append(div)
    section.replace_with(holder)
    return str(soup)


def mismatches(doc: Document, truth: dict[str, Any], *, lines: bool) -> list[str]:
    """Every difference between ``doc`` and the ground truth, as readable strings."""
    problems: list[str] = []
    numbers = [n.number for n in doc.footnotes]
    wanted = [n["number"] for n in truth["footnotes"]]
    if numbers != wanted:
        problems.append(f"footnote numbers {numbers} != {wanted}")
    for want in truth["footnotes"]:
        note = doc.footnote(want["number"])
        if note is None:
            continue
        tag = f"footnote {want['number']}"
        if list(note.urls) != want["urls"]:
            problems.append(f"{tag}: urls {list(note.urls)} != {want['urls']}")
        if "text" in want and note.text != want["text"]:
            problems.append(f"{tag}: text {note.text!r} != {want['text']!r}")
        if lines and note.line != want["line"]:
            problems.append(f"{tag}: line {note.line} != {want['line']}")
        if len(note.claims) != len(want["claims"]):
            problems.append(f"{tag}: {len(note.claims)} claims != {len(want['claims'])}")
            continue
        for claim, exp in zip(note.claims, want["claims"], strict=True):
            if lines and claim.line != exp["line"]:
                problems.append(f"{tag}: claim line {claim.line} != {exp['line']}")
            if "text" in exp:
                if claim.text != exp["text"]:
                    problems.append(f"{tag}: claim {claim.text!r} != {exp['text']!r}")
            elif not (claim.text.startswith(exp["start"]) and claim.text.endswith(exp["end"])):
                problems.append(f"{tag}: claim {claim.text!r} not {exp['start']!r}…{exp['end']!r}")
            for bad in ("<sup>", "**", "[^", "\\"):
                if bad in claim.text:
                    problems.append(f"{tag}: markup {bad!r} left in claim")

    def key(f: dict[str, Any]) -> tuple:
        return (f["code"], f["severity"], f["footnote"], f.get("url"), f.get("suggestion"),
                f["line"] if lines else None)

    got = sorted(key({"code": f.code, "severity": f.severity.value, "footnote": f.footnote,
                      "url": f.url, "suggestion": f.suggestion, "line": f.line})
                 for f in doc.findings)
    want_findings = sorted(key(f) for f in truth["findings"]
                           if doc.format in f.get("formats", [doc.format]))
    if got != want_findings:
        extra = [g for g in got if g not in want_findings]
        missing = [w for w in want_findings if w not in got]
        problems.append(f"findings: unexpected {extra}, missing {missing}")
    return problems


def bare_sup_html(pandoc_html: str, notes: str = "paragraphs") -> str:
    """Pandoc's HTML as a CMS or PDF converter leaves it: markers are bare ``<sup>N</sup>``
    (no links), the notes a plain list at the end with no anchors: paragraphs ``<p>N text</p>``
    (``notes="paragraphs"``) or the items of an ``<ol>`` (``notes="list"``)."""
    soup = BeautifulSoup(pandoc_html, "html.parser")
    for ref in soup.select("a.footnote-ref"):
        sup = soup.new_tag("sup")
        sup.string = re.sub(r"\D", "", ref["href"])
        ref.replace_with(sup)
    section = soup.select_one("section.footnotes")
    assert section is not None
    holder = soup.new_tag("div")
    heading = soup.new_tag("h2")
    heading.string = "Notes"
    holder.append(heading)
    listing = soup.new_tag("ol")
    for item in section.select("li"):
        n = re.sub(r"\D", "", item["id"])
        for back in item.select("a.footnote-back"):
            back.decompose()
        if notes == "list":
            li = soup.new_tag("li")
            for p in item.find_all("p"):
                li.extend(list(p.contents))
            listing.append(li)
            continue
        para = soup.new_tag("p")
        para.append(f"{n} ")
        for p in item.find_all("p"):
            para.extend(list(p.contents))
        holder.append(para)
    if notes == "list":
        holder.append(listing)
    section.replace_with(holder)
    return str(soup)


def decode_brackets(doc: Document) -> Document:
    """``doc`` with ``%5B``/``%5D`` in URLs written as ``[``/``]``: pandoc percent-encodes the
    brackets of a link target, and where the visible text no longer spells the address (the
    briefing's doubly escaped links), the author's spelling is lost with it."""
    from dataclasses import replace

    def fix(url: str | None) -> str | None:
        return None if url is None else url.replace("%5B", "[").replace("%5D", "]")

    notes = tuple(replace(n, urls=tuple(fix(u) or "" for u in n.urls)) for n in doc.footnotes)
    findings = tuple(replace(f, url=fix(f.url), suggestion=fix(f.suggestion))
                     for f in doc.findings)
    return replace(doc, footnotes=notes, findings=findings)
