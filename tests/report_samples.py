"""Sample reports for the report tests: the shipped briefing plus synthetic link records.

``briefing_document`` reads the shipped briefing with ``archiver.parse.read_document`` when
that reader exists, and otherwise builds its first footnotes by hand from the briefing's real
text. ``sample_report`` adds three footnotes that every test relies on (a hostile one, one that
cites no URL, one that no marker cites) and gives the links every verdict, mementos (some
rescued into our WARCs), missing captures, changes and an offline note. ``evidence_report`` is
a small report with one link for each kind of evidence recovered.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from archiver.models import (
    Change,
    ChangeKind,
    Claim,
    Document,
    Finding,
    Footnote,
    LinkRecord,
    LinkState,
    Memento,
    Severity,
    Source,
    Verdict,
    WarcRef,
)
from archiver.report import Report, build_report

REPO = Path(__file__).resolve().parent.parent
BRIEFING = REPO / "sources" / "kazakhstan-2020.md"

HOSTILE = '"><script>window.__pwned=1</script><img src=x onerror="window.__pwned=2;alert(1)">'
HOSTILE_URL = "https://evil.example/" + HOSTILE
JS_URL = "javascript:window.__pwned=3"
GENERATED = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
OFFLINE_NOTE = "No network: nothing could be reached; links keep the state they had."
WARC = "archive/archiver-20261125120000-00000.warc.gz"

# Every verdict, then "not checked" (None), assigned to the document's URLs in turn.
VERDICT_CYCLE: tuple[Verdict | None, ...] = (*Verdict, None)
_STATUS = {
    Verdict.OK: 200, Verdict.REDIRECTED: 200, Verdict.SOFT_404: 200, Verdict.LOGIN_WALL: 200,
    Verdict.PARKED: 200, Verdict.BLOCKED: 403, Verdict.NOT_FOUND: 404, Verdict.GONE: 410,
    Verdict.SERVER_ERROR: 503,
}


def _hand_document(path: Path) -> Document:
    """The briefing's first twelve footnotes, written out by hand from the file."""
    notes = [
        (1, 9, 15, "In the context of the Covid-19 pandemic, this pattern has been reinforced, "
         "as the authorities have used the pandemic as an excuse to justify repression.",
         "For more information about developments in the context of the Covid-19 pandemic, "
         "see the following reports.",
         ("https://www.iphronline.org/wp-content/uploads/2020/10/"
          "Covid-19-CA-regional-report-final.pdf",
          "https://www.iphronline.org/wp-content/uploads/2020/07/REV-HUMAN-RIGHTS-IMPACT-"
          "ASSESSMENT-OF-THE-COVID-19-RESPONSE-IN-KAZAKHSTAN.pdf")),
        (2, 29, 31, "On 25 June 2020, President Tokayev signed into law changes to legislation "
         "concerning digital security, which were adopted without discussion with civil "
         "society.", "See (in Russian).",
         ("https://www.inform.kz/ru/prezident-rk-utverdil-popravki-v-zakonodatel-stvo-po-"
          "voprosam-regulirovaniya-cifrovyyh-tehnologiy_a3666025",)),
        (3, 29, 33, "The Coalition of New Generation of Human Rights Defenders expressed "
         "concern that the new law facilitates illegal surveillance.",
         "See their statement on Facebook (in Russian).",
         ("https://www.facebook.com/nghrdc/photos/a.2040973449355660/2971506189635710/"
          "?type=3&theater",)),
        (4, 29, 35, "The opposition movement “Oyan, Kazakhstan” also expressed grave concerns "
         "about the new legislation.", "See their statement on Instagram (in Russian).",
         ("https://www.instagram.com/p/CcdNziZHHqA/?utm_source=ig_embed",
          "https://www.facebook.com/OyanQazaqstan")),
        (5, 39, 50, "On 27 June 2020, the President signed legal amendments removing “slander” "
         "(Article 130) from the Criminal Code.", "Read the legal text here.",
         ("https://www.pavlodar.com/zakon/?dok=05552&uro=080131#:~:text=",)),
        (6, 39, 52, "It was transferred to the Administrative Code (Article 73-3).",
         "Read the legal text here.",
         ("https://online.zakon.kz/document/?doc_id=31577399#pos=1770;-36",)),
        (7, 43, 54, "However, “insult” (Article 131) remains a criminal offence.",
         "Read the legal text here.",
         ("https://kodeksy-kz.com/ka/ugolovnyj_kodeks/131.htm",)),
        (8, 43, 56, "As does “insulting a government representative” (Article 378).",
         "Read the legal text here.",
         ("https://online.zakon.kz/document/?doc_id=31575252&mode=p&page=2#pos=544;-44",)),
        (9, 43, 58, "Activists and journalists are increasingly charged under Criminal Code "
         "Article 274.", "Read the legal text here.",
         ("https://kodeksy-kz.com/ka/ugolovnyj_kodeks/274.htm",)),
        (10, 43, 60, "Five of those cases had been submitted to court by the end of August "
         "2020.", "See (in English).",
         ("https://cabar.asia/en/kazakhstan-emergency-triggered-witch-hunting",)),
        (11, 47, 62, "In December 2019, political activist Zhambyl Kobeyzinov and his wife "
         "Dilbar Bezhanova were sentenced.", "See (in Russian).",
         ("https://rus.azattyq.org/a/30324650.html",)),
        (12, 48, 64, "Molchanov was charged with slander for stating on social media that “this "
         "part of the quasi-public sector is misallocating public funds”.", "See (in Russian).",
         ("https://bureau.kz/novosti/sobstvennaya_informaciya/molchanie_zoloto/",)),
    ]
    footnotes = tuple(
        Footnote(number=n, text=text + " " + " ".join(urls), urls=urls, line=fline,
                 claims=(Claim(footnote=n, text=claim, line=cline),))
        for n, cline, fline, claim, text, urls in notes
    )
    return Document(path=str(path), format="hand-built", footnotes=footnotes,
                    title="Key concerns and recommendations on the protection of fundamental "
                          "rights in Kazakhstan")


def briefing_document(path: Path = BRIEFING) -> Document:
    """The shipped briefing, parsed by the real reader when it exists (else by hand)."""
    try:
        from archiver.parse import read_document  # type: ignore[attr-defined]
    except ImportError:
        return _hand_document(path)
    return read_document(path)


def with_extra_footnotes(document: Document) -> Document:
    """The document plus a hostile footnote, an unsupported claim and an orphan footnote."""
    last_number = max((n.number for n in document.footnotes), default=0)
    last_line = max((n.line for n in document.footnotes), default=0)
    hostile_n, bare_n, orphan_n = last_number + 1, last_number + 2, last_number + 3
    extra = (
        Footnote(number=hostile_n, text="Hostile " + HOSTILE, urls=(HOSTILE_URL, JS_URL),
                 line=last_line + 4,
                 claims=(Claim(footnote=hostile_n, text="A claim " + HOSTILE,
                               line=last_line + 2),)),
        Footnote(number=bare_n, text="Interview with the author, Almaty, October 2020.",
                 urls=(), line=last_line + 8,
                 claims=(Claim(footnote=bare_n, text="Witnesses described the dispersal in "
                               "detail.", line=last_line + 6),)),
        Footnote(number=orphan_n, text="See https://orphan.example.org/page and "
                 "https://orphan.example.org/other", line=last_line + 9,
                 urls=("https://orphan.example.org/page", "https://orphan.example.org/other")),
    )
    return replace(document, footnotes=document.footnotes + extra)


def sample_links(document: Document) -> list[LinkRecord]:
    """One record per distinct URL, verdicts in turn through ``VERDICT_CYCLE``; the hostile URL
    gets ``soft_404`` with a hostile title, the ``javascript:`` URL ``invalid_url``."""
    links = []
    turn = 0
    for i, url in enumerate(document.urls):
        cited = tuple(n.number for n in document.footnotes if url in n.urls)
        verdict: Verdict | None
        if url == HOSTILE_URL:
            verdict = Verdict.SOFT_404
        elif url == JS_URL:
            verdict = Verdict.INVALID_URL
        else:
            verdict = VERDICT_CYCLE[turn % len(VERDICT_CYCLE)]
            turn += 1
        status = _STATUS.get(verdict) if verdict is not None else None
        captured = status is not None
        failing = verdict is not None and not verdict.healthy
        memento = rescued = None
        if failing and i % 4 == 0:
            # Archived before publication and fetched into our own WARC (--rescue-capture).
            memento = Memento(url=f"http://web.archive.org/web/20201028061500/{url}",
                              datetime=datetime(2020, 10, 28, 6, 15, tzinfo=UTC),
                              original_url=url)
            rescued = WarcRef(WARC, 1000 * i + 500, 450,
                              f"<urn:uuid:00000000-0000-4000-9000-{i:012d}>")
        elif failing and i % 2 == 0:
            memento = Memento(url=f"http://web.archive.org/web/20201105093012/{url}",
                              datetime=datetime(2020, 11, 5, 9, 30, 12, tzinfo=UTC),
                              original_url=url)
        links.append(LinkRecord(
            url=url, footnotes=cited, verdict=verdict,
            reason=f"sample reason for {verdict.value}" if verdict else "",
            http_status=status,
            final_url=(url.rstrip("/") + "/moved" if verdict is Verdict.REDIRECTED
                       else url if captured else None),
            attempts=1 if verdict else 0,
            capture=WarcRef(WARC, 1000 * i, 900, f"<urn:uuid:00000000-0000-4000-8000-{i:012d}>")
            if captured else None,
            captured_at=GENERATED + timedelta(seconds=i) if captured else None,
            memento=memento,
            state=(LinkState.FAILING if failing else LinkState.OK) if verdict else None,
            failing_since=GENERATED - timedelta(days=2) if failing else None,
            title=HOSTILE if url == HOSTILE_URL or verdict is Verdict.OK else None,
            excerpt=(f"Excerpt of the page: {HOSTILE}" if verdict is Verdict.OK else None),
            checked_at=GENERATED if verdict else None,
            rescued=rescued,
        ))
    return links


def sample_changes(links: list[LinkRecord]) -> list[Change]:
    broken = next(x for x in links if x.verdict is Verdict.NOT_FOUND)
    healthy = next(x for x in links if x.verdict is Verdict.OK)
    return [
        Change(url=broken.url, kind=ChangeKind.NEWLY_FAILING, verdict=Verdict.NOT_FOUND,
               previous_verdict=Verdict.OK, since=GENERATED, footnotes=broken.footnotes,
               reason="404 since the last check"),
        Change(url=healthy.url, kind=ChangeKind.DRIFTED, verdict=Verdict.OK,
               previous_verdict=Verdict.OK, similarity=0.42, footnotes=healthy.footnotes),
        Change(url=HOSTILE_URL, kind=ChangeKind.RECOVERED, verdict=Verdict.SOFT_404,
               previous_verdict=Verdict.TIMEOUT, reason=HOSTILE),
    ]


def sample_source(path: Path = BRIEFING) -> Source:
    return Source(id="kazakhstan-2020", path=str(path),
                  title="Key concerns and recommendations on the protection of fundamental "
                        "rights in Kazakhstan", published=date(2020, 11, 1))


def sample_report(*, notes: tuple[str, ...] = (OFFLINE_NOTE,), changes: bool = True) -> Report:
    document = with_extra_footnotes(briefing_document())
    links = sample_links(document)
    return build_report(
        sample_source(), document, links, generated_at=GENERATED,
        changes=sample_changes(links) if changes else (), notes=notes,
        run={"run_id": 7, "started": GENERATED, "mode": "check"}, root=REPO,
    )


EVIDENCE_PUBLISHED = date(2020, 11, 1)
RESCUED_URL = "https://rescued.example.org/statement"
MEMENTO_URL = "https://memento.example.org/article"
LOST_URL = "https://lost.example.org/page"
HEALTHY_URL = "https://healthy.example.org/report"
UNCHECKED_URL = "https://unchecked.example.org/"


def evidence_report(published: date | None = EVIDENCE_PUBLISHED) -> Report:
    """Five footnotes, one URL each: a dead link whose Internet Archive copy (4 days before
    publication) was fetched into our WARC, though our own capture is of its 404 page; a gone
    link with only an Internet Archive copy (12 days after); a timeout with no copy anywhere;
    a healthy link (given a memento too, which must not make it count as rescued evidence);
    an unchecked link."""
    urls = (RESCUED_URL, MEMENTO_URL, LOST_URL, HEALTHY_URL, UNCHECKED_URL)
    footnotes = tuple(
        Footnote(number=n, text=f"See {url}", urls=(url,), line=100 + n,
                 claims=(Claim(footnote=n, text=f"Claim {n}.", line=n),))
        for n, url in enumerate(urls, start=1)
    )
    document = Document(path="/evidence.md", format="markdown", footnotes=footnotes)

    def memento(url: str, moment: datetime) -> Memento:
        stamp = moment.strftime("%Y%m%d%H%M%S")
        return Memento(url=f"https://web.archive.org/web/{stamp}/{url}", datetime=moment,
                       original_url=url, raw_url=f"https://web.archive.org/web/{stamp}id_/{url}",
                       status=200)

    links = [
        LinkRecord(url=RESCUED_URL, footnotes=(1,), verdict=Verdict.NOT_FOUND, http_status=404,
                   reason="404 Not Found", attempts=1,
                   capture=WarcRef(WARC, 0, 700, "<urn:uuid:00000000-0000-4000-8000-000000000001>"),
                   captured_at=GENERATED,
                   memento=memento(RESCUED_URL, datetime(2020, 10, 28, 23, 10, tzinfo=UTC)),
                   rescued=WarcRef(WARC, 700, 900,
                                   "<urn:uuid:00000000-0000-4000-8000-000000000002>"),
                   checked_at=GENERATED),
        LinkRecord(url=MEMENTO_URL, footnotes=(2,), verdict=Verdict.GONE, http_status=410,
                   reason="410 Gone", attempts=1,
                   memento=memento(MEMENTO_URL, datetime(2020, 11, 13, 8, 0, tzinfo=UTC)),
                   checked_at=GENERATED),
        LinkRecord(url=LOST_URL, footnotes=(3,), verdict=Verdict.TIMEOUT,
                   reason="no answer within 10 s", attempts=3, checked_at=GENERATED),
        LinkRecord(url=HEALTHY_URL, footnotes=(4,), verdict=Verdict.OK, http_status=200,
                   attempts=1,
                   capture=WarcRef(WARC, 1600, 800,
                                   "<urn:uuid:00000000-0000-4000-8000-000000000003>"),
                   captured_at=GENERATED,
                   memento=memento(HEALTHY_URL, datetime(2020, 10, 30, tzinfo=UTC)),
                   checked_at=GENERATED),
    ]
    source = Source(id="evidence", path="/evidence.md", title="Evidence sample",
                    published=published)
    return build_report(source, document, links, generated_at=GENERATED)


def _long(prefix: str, n: int = 300) -> str:
    """``prefix`` followed by unbroken characters up to ``n`` characters: no space to wrap at."""
    return prefix + "x" * (n - len(prefix))


def long_strings_report() -> Report:
    """A report whose every field from the document or the web is a 300-character unbroken
    string (URLs, final URLs, Internet Archive addresses, reasons, titles, excerpts, footnote
    and claim text, finding messages, run notes and details, the source's title and path)."""
    urls = tuple(_long(f"https://long{i}.example.org/path/") for i in range(1, 4))
    footnotes = tuple(
        Footnote(number=n, text=_long(f"Footnote{n}:"), urls=(url,), line=10 * n,
                 claims=(Claim(footnote=n, text=_long(f"Claim{n}:"), line=10 * n - 2),))
        for n, url in enumerate(urls, start=1)
    )
    findings = (Finding("tracking-parameter", Severity.WARNING, _long("message:"), 1, 10,
                        urls[0], urls[0]),)
    document = Document(path=_long("/docs/"), format="markdown", footnotes=footnotes,
                        findings=findings)
    dead = Memento(url=_long("https://web.archive.org/web/20201028061500/https://x.org/"),
                   datetime=datetime(2020, 10, 28, 6, 15, tzinfo=UTC), original_url=urls[1])
    links = [
        LinkRecord(url=urls[0], footnotes=(1,), verdict=Verdict.REDIRECTED, http_status=200,
                   reason=_long("reason:"), final_url=_long("https://final.example.org/"),
                   attempts=1, capture=WarcRef(WARC, 0, 900, "<urn:uuid:" + "a" * 36 + ">"),
                   captured_at=GENERATED, title=_long("Title:"), excerpt=_long("Excerpt:"),
                   state=LinkState.OK, checked_at=GENERATED),
        LinkRecord(url=urls[1], footnotes=(2,), verdict=Verdict.NOT_FOUND, http_status=404,
                   reason=_long("reason:"), final_url=urls[1], attempts=1,
                   capture=WarcRef(WARC, 900, 900, "<urn:uuid:" + "b" * 36 + ">"),
                   captured_at=GENERATED, memento=dead,
                   rescued=WarcRef(WARC, 1800, 500, "<urn:uuid:" + "c" * 36 + ">"),
                   state=LinkState.FAILING, failing_since=GENERATED, checked_at=GENERATED),
        LinkRecord(url=urls[2], footnotes=(3,), verdict=Verdict.TIMEOUT, reason=_long("why:"),
                   attempts=3, state=LinkState.FAILING, failing_since=GENERATED,
                   checked_at=GENERATED),
    ]
    changes = [Change(url=urls[1], kind=ChangeKind.NEWLY_FAILING, verdict=Verdict.NOT_FOUND,
                      previous_verdict=Verdict.OK, since=GENERATED, footnotes=(2,),
                      reason=_long("change:")),
               Change(url=urls[2], kind=ChangeKind.STILL_FAILING, verdict=Verdict.TIMEOUT,
                      previous_verdict=Verdict.TIMEOUT, footnotes=(3,), reason=_long("still:"))]
    source = Source(id="long-strings", path=_long("/docs/"), title=_long("Title:"),
                    published=date(2020, 11, 1))
    return build_report(source, document, links, generated_at=GENERATED, changes=changes,
                        notes=(_long("Note:"),), run={"run_id": 7, "detail": _long("run:")})


def supported_report() -> Report:
    """The sample report with claim support on every claimed (footnote, URL): some
    unsupported (no text), some with text that misses the claims' facts."""
    from archiver.support import EvidenceText, assess

    report = sample_report()
    supports = []
    for entry in report.entries:
        claims = tuple(c.text for c in entry.claims)
        for i, link in enumerate(entry.links):
            text = "Статья 274. Распространение заведомо ложной информации" * (i == 0)
            supports.append(assess(entry.number, link.url, claims,
                                   EvidenceText(text, "html", "ours") if text else None))
    return replace(report, support=tuple(supports))
