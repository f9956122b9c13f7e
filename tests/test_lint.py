"""The editor's check: each finding code on a small document, and the severity table."""

from __future__ import annotations

import pytest

from archiver import lint
from archiver.models import Document, Footnote, Severity


def doc(*urls_per_note: tuple[str, ...]) -> Document:
    notes = tuple(Footnote(i, "text", urls, line=10 * i)
                  for i, urls in enumerate(urls_per_note, start=1))
    return Document("d.md", "test", notes)


def found(document: Document) -> list[tuple[str, int | None]]:
    return sorted((f.code, f.footnote) for f in lint.lint(document))


@pytest.mark.parametrize(("url", "clean"), [
    ("https://a.org/p?fbclid=XYZ", "https://a.org/p"),
    ("https://a.org/p?id=3&utm_source=x&utm_medium=y#top", "https://a.org/p?id=3#top"),
    ("https://www.facebook.com/groups/g/permalink/1/?__cft__[0]=AZ&__tn__=%2CO", None),
    ("https://a.org/p?_cft__[0]=AZ&keep=1", "https://a.org/p?keep=1"),
    ("https://a.org/p?x=1&_rdc=1&_rdr", "https://a.org/p?x=1"),
    ("https://a.org/p?gclid=1", "https://a.org/p"),
])
def test_tracking_parameters_are_reported_with_the_clean_url(url: str, clean: str | None) -> None:
    finding = next(f for f in lint.lint(doc((url,))) if f.code == "tracking-parameter")
    assert finding.severity is Severity.WARNING
    if clean is None:
        clean = "https://www.facebook.com/groups/g/permalink/1/"
    assert finding.suggestion == clean


def test_mangled_cft_is_named() -> None:
    finding = next(f for f in lint.lint(doc(("https://a.org/?_cft__[0]=1",)))
                   if f.code == "tracking-parameter")
    assert "mangled __cft__" in finding.message


def test_clean_url_keeps_meaningful_parameters() -> None:
    assert lint.clean_tracking("https://a.org/?type=3&theater") == (
        "https://a.org/?type=3&theater", [])


@pytest.mark.parametrize("url", ["htp://a.org/x", "http:/a.org/x", "https//a.org",
                                 "https://exa mple.org", "https://", "https://a.org:99999/",
                                 "https://nodot/x", "https://1.2.3.4.5/", "https://foo.09/",
                                 "https://256.1.1.1/", "https://a%25b.org/", "https://[::1/"])
def test_malformed_urls_are_errors(url: str) -> None:
    findings = lint.lint(doc((url,)))
    assert [(f.code, f.severity) for f in findings] == [("malformed-url", Severity.ERROR)]


@pytest.mark.parametrize("url", ["https://8.8.8.8/report.html", "https://1.1.1.1/",
                                 "https://[2606:4700::1111]/", "https://134744072/x",
                                 "https://B\u00fccher.de/", "https://example.com./a"])
def test_public_address_literals_are_valid_hosts(url: str) -> None:
    """Issue 9: an IPv4 literal is a valid host, as an IPv6 literal always was."""
    assert lint.lint(doc((url,))) == ()


@pytest.mark.parametrize(("url", "said"), [
    ("https://127.0.0.1/", "127.0.0.1 is a loopback address"),
    ("https://10.0.0.1/", "10.0.0.1 is a private address"),
    ("https://192.168.1.20:8080/x", "192.168.1.20 is a private address"),
    ("https://169.254.169.254/latest/", "169.254.169.254 is a link-local address"),
    ("https://[::1]/", "::1 is a loopback address"),
    ("https://2130706433/", "127.0.0.1 (written 2130706433) is a loopback address"),
    ("https://0x7f.1/", "127.0.0.1 (written 0x7f.1) is a loopback address"),
    ("https://[::7f00:1]/", "::7f00:1 is an IPv4-compatible address"),
    ("https://localhost:8080/", "localhost is this computer"),
])
def test_private_addresses_are_valid_but_noted(url: str, said: str) -> None:
    findings = lint.lint(doc((url,)))
    assert [(f.code, f.severity) for f in findings] == [("private-address", Severity.INFO)]
    assert findings[0].message.startswith(said)
    assert "allow_private_networks" in findings[0].message


def test_login_only_http_fragment_duplicate_and_no_url() -> None:
    document = doc(
        ("https://www.instagram.com/p/abc/", "http://plain.org/x"),
        ("https://www.facebook.com/groups/x/permalink/1/", "https://a.org/#:~:text="),
        (),
        ("http://plain.org/x",),
    )
    assert found(document) == [
        ("duplicate-url", 4), ("empty-text-fragment", 2), ("login-only", 1), ("login-only", 2),
        ("no-url", 3), ("plain-http", 1), ("plain-http", 4),
    ]
    fragment = next(f for f in lint.lint(document) if f.code == "empty-text-fragment")
    assert fragment.suggestion == "https://a.org/"
    assert all(f.line is not None for f in lint.lint(document))


def test_clean_document_has_no_findings() -> None:
    assert lint.lint(doc(("https://a.org/x",), ("https://b.org/y#section",))) == ()


def test_structure_findings() -> None:
    findings = lint.structure_findings(
        markers=[(1, 3), (2, 4), (5, 6), (4, 7)], notes=[(1, 10), (2, 11), (2, 12), (4, 13),
                                                         (6, 14)])
    got = sorted((f.code, f.footnote, f.severity.value) for f in findings)
    assert got == [
        ("duplicate-footnote", 2, "error"),
        ("footnote-order", 4, "warning"),
        ("missing-footnote", 5, "error"),
        ("numbering-gap", None, "warning"),
        ("orphan-footnote", 6, "warning"),
    ]


def test_every_code_has_a_documented_severity() -> None:
    for code, severity in lint.SEVERITY.items():
        assert code in (lint.__doc__ or "")
        assert severity.value in (lint.__doc__ or "")
    assert lint.SEVERITY["no-url"] is Severity.INFO
    assert lint.SEVERITY["missing-footnote"] is Severity.ERROR
    assert lint.SEVERITY["orphan-footnote"] is Severity.WARNING


def test_a_document_without_any_notes_is_reported() -> None:
    from archiver.parse import parse_bytes

    doc = parse_bytes(b"<html><body><p>Prose, and no notes at all.</p></body></html>", "x.html")
    assert [(f.code, f.severity.value) for f in doc.findings] == [("no-footnotes", "warning")]
