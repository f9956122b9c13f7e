"""The shortcuts taken for speed give what the plain computation gives."""

from __future__ import annotations

import json
import random
import re
import sys

import pytest

from archiver import browse, pagetext, support_match

ALPHABET = "0123456789 ,.'-/\u00a0abcXYZабвқ\n\t€$млн"


def texts(count: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    found = ["", "1", "a1", "1a", ".5", "12 345,6 млн тенге", "01.02.2020", "2020-01-31",
             "05/2019 and 12.2021", "x 1 000 000 $", "1,234.56", "3-4", "а12 345"]
    for _ in range(count):
        found.append("".join(rng.choice(ALPHABET) for _ in range(rng.randrange(1, 120))))
    return found


DIGIT_LED = [support_match._NUMERAL, support_match._NUM_DATE, support_match._ISO_DATE,
             support_match._MONTH_NUM_YEAR, support_match._DAY_MONTH, support_match._YEAR_MONTH]
# Digits of other scripts, punctuation the ASCII shortcut lets through (U+2000-U+2FFF) and
# letters around it, so that both ways of finding digit runs are taken.
WIDE = ALPHABET + "\u0663\u06f5\u0967\uff11\u2014\u201c\u2116\u2070\u2460\u0640\u065f" \
    + "әұİ августа тамыз August Jan янв"


def wide_texts(count: int, seed: int = 11) -> list[str]:
    rng = random.Random(seed)
    words = WIDE.split(" ")
    found = ["10 мая2020", "мая 2020", "Summary 2020", "\u2014 5 мая 2020 \u2014", "٥ мая",
             "x\u00a05", "August  18, 2020", "a_b 5", "3\u0663 12"]
    for _ in range(count):
        pieces = [rng.choice(WIDE) if rng.random() < 0.6 else rng.choice(words)
                  for _ in range(rng.randrange(1, 60))]
        found.append("".join(pieces))
    return found


def test_digit_runs_are_where_every_run_of_digits_starts() -> None:
    for text in texts(2000) + wide_texts(3000):
        assert support_match._digit_runs(text) \
            == [m.span() for m in re.finditer(r"\d+", text)], text


def test_digit_runs_after_characters_of_two_and_three_bytes_are_at_their_places() -> None:
    # Found among the first bytes of the characters' UTF-8: a place is a character's, not a
    # byte's, however many multi-byte characters come before it; and no digit after the
    # last one is missed or invented.
    for text in ["а1", "аб 12 вг 345", "Ж" * 500 + "7", "€ 1 000 — 2 «3»", "әұ9" * 40,
                 "ё\u20ac\u00e9 2020-01-31 ж.", "\u00e9" * 3 + "1" * 3 + "я" * 3, "только буквы",
                 "x\u2014\u2014", "1 " + "ы" * 100]:
        assert support_match._digit_runs(text) \
            == [m.span() for m in re.finditer(r"\d+", text)], text


def test_the_ascii_shortcut_holds_for_this_unicode_database() -> None:
    # Every decimal digit outside 0-9 lies at U+0640 or above and outside U+2000-U+2FFF.
    others = [c for c in range(sys.maxunicode + 1) if chr(c).isdecimal()
              and not "0" <= chr(c) <= "9"]
    assert min(others) >= 0x640
    assert not [c for c in others if 0x2000 <= c <= 0x2FFF]


@pytest.mark.parametrize("pattern", DIGIT_LED)
def test_matching_at_digit_runs_finds_what_finditer_finds(pattern) -> None:
    for text in texts(3000) + wide_texts(1000):
        runs = [start for start, _ in support_match._digit_runs(text)]
        assert [m.span() for m in support_match._at_runs(pattern, text, runs)] \
            == [m.span() for m in pattern.finditer(text)], text


def test_month_first_dates_before_digit_runs_are_all_of_them() -> None:
    for text in wide_texts(3000):
        runs = [start for start, _ in support_match._digit_runs(text)]
        assert [m.span() for m in support_match._month_first(text, runs)] \
            == [m.span() for m in support_match._MONTH_FIRST.finditer(text)], text


def reference_dates(text: str) -> list[tuple]:
    """``Evidence.dates`` as the plain scans of the whole text compute it."""
    sm = support_match
    found: list[tuple] = []
    for match in sm._DAY_MONTH.finditer(text):
        month, day = sm.month_of(match.group("w").rstrip(".")), int(match.group("d"))
        if month and 1 <= day <= 31:
            year = sm._year_after(text, match.end()) or sm._year_before(text, match.start())
            found.append((match.start(), match.end(), year, month, day))
    for match in sm._YEAR_MONTH.finditer(text):
        if month := sm.month_of(match.group("w")):
            found.append((match.start(), match.end(), int(match.group("y")), month, None))
    for match in sm._MONTH_FIRST.finditer(text):
        if not (month := sm.month_of(match.group("w"))):
            continue
        if match.group("y"):
            found.append((match.start(), match.end(), int(match.group("y")), month, None))
        elif 1 <= (day := int(match.group("d"))) <= 31:
            found.append((match.start(), match.end(), sm._year_after(text, match.end()),
                          month, day))
    for pattern in (sm._NUM_DATE, sm._ISO_DATE):
        for match in pattern.finditer(text):
            day, month, year = (int(match.group(k)) for k in "dmy")
            year = year + 2000 if year < 100 else year
            if 1 <= day <= 31 and 1 <= month <= 12:
                found.append((match.start(), match.end(), year, month, day))
    for match in sm._MONTH_NUM_YEAR.finditer(text):
        if 1 <= (month := int(match.group("m"))) <= 12:
            found.append((match.start(), match.end(), int(match.group("y")), month, None))
    return found


DATES = ["18 августа 2020 года", "2020 жылғы 18 тамызда", "August 18, 2020", "18.08.2020",
         "2020-08-18", "08.2020", "января 2020", "10-го июня", "5 мая2020 и 3 мая 2021",
         "1.2.20", "12/05/2019", "31 December", "Dec 5", "2020 жылы қаңтарда"]


def test_dates_tried_at_digit_runs_are_the_dates_of_the_whole_scan() -> None:
    rng = random.Random(5)
    samples = [*texts(1500), *wide_texts(1500)]
    for _ in range(1500):
        samples.append(" ".join(rng.choice(DATES + WIDE.split(" ")) for _ in range(12)))
    for text in samples:
        assert support_match.Evidence(text).dates() == reference_dates(text), text


def test_capitalised_words_are_the_words_that_open_with_a_capital() -> None:
    capitals = "".join(chr(c) for c in range(sys.maxunicode + 1)
                       if chr(c).isupper() and support_match._letter(chr(c)))
    text = " ".join(capitals[i:i + 7] + "ab" for i in range(0, len(capitals), 7))
    for sample in [text, "McDonald iPhone “Tulesova” ǅemal Ⓐbc _Abc Тулесова қазақ Қазақ",
                   *wide_texts(2000)]:
        first = {}
        for match in support_match._WORD.finditer(sample):
            if match.group()[:1].isupper():
                first.setdefault(match.group(), match.span())
        assert support_match.Evidence(sample).names() is not None
        found = {}
        for match in support_match._CAPITALISED.finditer(sample):
            if match.group()[0].isupper():
                found.setdefault(match.group(), match.span())
        assert found == first, sample


def test_excerpt_of_the_head_equals_the_excerpt_of_the_whole() -> None:
    def whole(text: str, n: int) -> str:
        flat = " ".join(text.split())
        if n < 1:
            return ""
        if len(flat) <= n:
            return flat
        cut = flat[: n - 1]
        space = cut.rfind(" ")
        if space > n // 2:
            cut = cut[:space]
        return cut.rstrip(" ,;:-–—") + "…"

    rng = random.Random(3)
    samples = [*texts(300), "word " * 2000, " " * 5000 + "late text " * 50,
               "\n\n" * 700 + "x", "a" * 3000]
    for text in samples:
        for n in (0, 1, 5, 40, 280, rng.randrange(1, 600)):
            assert pagetext.excerpt(text, n) == whole(text, n)
            # Given only the head it reads (and the whole text on demand), the same.
            head = text[:pagetext.excerpt_head(n) + rng.randrange(0, 3)]
            if len(head) < len(text):
                asked: list[str] = []

                def read_whole(text: str = text, asked: list[str] = asked) -> str:
                    asked.append(text)
                    return text

                assert pagetext.excerpt(head, n, whole=read_whole) == whole(text, n)
                # The whole text is read only when the head is mostly whitespace.
                assert bool(asked) == (n > 0 and len(" ".join(head.split())) <= n)


def test_link_record_excerpts_read_the_packed_text_as_the_whole_one() -> None:
    """The link records' excerpt, from the head of a packed text, is the excerpt of the
    whole text: texts of one, two, three and four bytes a character, whitespace heads."""
    from archiver.catalog import PackedText, pack_text
    from archiver.pipeline import _excerpt, _Unpacked

    samples = [*texts(100), "", "   ", "word " * 2000, " " * 5000 + "late text " * 50,
               "Объём инвестиций вырос " * 300, "€ " * 2000, "\U0001f600x " * 900,
               "\n" * 1500 + "Объём " * 10]
    for text in samples:
        expected = pagetext.excerpt(text) if text else None
        assert _excerpt(PackedText(pack_text(text))) == expected
        # Unpacked whole already (for claim support too): the same excerpt and head.
        unpacked = _Unpacked(pack_text(text), text)
        assert _excerpt(unpacked) == expected
        for chars in (0, 1, 280, len(text), len(text) + 1):
            assert unpacked.head(chars) == PackedText(pack_text(text)).head(chars)
    assert _excerpt(None) is None


@pytest.mark.parametrize("fast", [False, True], ids=["zlib", "isal"])
def test_page_texts_packed_in_a_worker_read_back_as_the_catalogs_own(monkeypatch,
                                                                       fast: bool) -> None:
    """A worker packs page texts with ISA-L where isal is importable: other bytes than
    ``pack_text``'s, the same zlib stream to read (whole, and the excerpt's head)."""
    import zlib

    from archiver import capturing, warc
    from archiver.catalog import PackedText, pack_text
    from archiver.pipeline import _excerpt

    monkeypatch.setattr(warc, "_FAST_DEFLATE",
                        pytest.importorskip("isal.isal_zlib") if fast else None)
    for text in [*texts(50), "", "Объём инвестиций вырос " * 900, "\U0001f600x " * 900]:
        packed = capturing.pack(text)
        assert packed is not None
        assert zlib.decompress(packed).decode("utf-8") == text
        assert PackedText(packed).text() == text
        assert _excerpt(PackedText(packed)) == (pagetext.excerpt(text) if text else None)
        for chars in (1, 280, 5000):
            assert PackedText(packed).head(chars) == (text[:chars], chars >= len(text))
        if not fast:
            assert packed == pack_text(text)
        if len(text) > 5000:  # compressed, at whatever level
            assert len(packed) * 3 < len(text.encode("utf-8"))
    assert capturing.pack(None) is None
    if fast:
        assert capturing.pack("Объём " * 500) != pack_text("Объём " * 500)


def test_app_shell_shortcut_agrees_with_the_full_check() -> None:
    long_text = "Evidence of the event in the city. " * 40
    cases = [
        (b"<html><body><p>" + long_text.encode() + b"</p></body></html>", long_text, None),
        (b"<html><body><noscript>Please enable JavaScript</noscript><p>" + long_text.encode()
         + b"</p></body></html>", long_text, "a <noscript> asks for JavaScript"),
        (b"<html><body><div id='root'></div><script src='a.js'></script></body></html>", "",
         "its content arrives by script (empty #root)"),
        (b"<html><body>" + b" " * 5000 + b"<p>short</p><script></script></body></html>",
         " " * 5000 + "short", "its content arrives by script (scripts and no text)"),
    ]
    for html, text, expected in cases:
        assert browse.app_shell_reason(html, text) == expected


def label_cases(seed: int = 3) -> list[str]:
    """Titles and headings, error pages' and others', in several scripts and cases, with
    the characters re.I takes for ASCII letters (dotless i, long s, Kelvin sign, dotted I)."""
    rng = random.Random(seed)
    words = ["Page", "not", "FOUND", "Not Found", "404", "Error", "|", "-", "::", "News",
             "domain", "DOMAIN", "Domaın", "is", "for", "sale", "parked", "This", "Parked",
             "Страница", "не", "найдена", "НАЙДЕНО", "Домен", "продается", "табылмады",
             "doesn't", "exist", "EXIST", "exiſt", "can't", "find", "that", "page",
             "unavailable", "removed", "available", "Kelvin\u212a", "İ", "Article", "the"]
    found = ["Page not found", "404", "Ошибка 404", "Not Found | Site", "Buy this domain",
             "This web page is parked", "DOMAIN FOR SALE", "Домен продается", "News of x",
             "Bodies not found, says prosecutor", "Article 404 of the Criminal Code",
             "PAGE NOT FOUND", "Page Not Fou\u212ad", "page not ſound", "",
             "Страница не най\u1c81ена", "ничего не най\u1c81ено", "can't fınd that page",
             "Page doesn't exiſt | Site", "Бет табылмады", "ҚАТЕ 404"]
    for _ in range(4000):
        found.append(" ".join(rng.choice(words) for _ in range(rng.randrange(1, 8))))
    return found


def test_not_found_wording_pretest_misses_no_label() -> None:
    from archiver import classify

    def full(label: str) -> bool:  # _says_not_found without its word pre-test
        for segment in classify._TITLE_SEPARATORS.split(label.strip().lower()):
            segment = segment.strip(classify._SEGMENT_TRIM)
            if not segment:
                continue
            has_code = bool(classify._NF_CODE.search(segment))
            rest = " ".join((classify._NF_CODE.sub(" ", segment) if has_code else segment)
                            .split()).strip(classify._SEGMENT_TRIM)
            if not rest:
                if has_code:
                    return True
                continue
            if classify._NF_PHRASE.fullmatch(rest):
                return True
        return False

    labels = label_cases()
    assert sum(map(full, labels)) > 50  # the cases do include error pages
    for label in labels:
        assert classify._says_not_found(label) == full(label), label


def test_not_found_words_odd_case_letters_are_those_of_re_ignorecase() -> None:
    """The letters a lowercased label may hold that re.I matches with a letter of
    ``_NF_WORDS`` other than themselves: exactly those ``_NF_ODD_CASE`` lists."""
    from archiver import classify

    letters = set("".join(classify._NF_WORDS))
    every = "".join(chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF)
    matched = set(re.compile("[" + re.escape("".join(sorted(letters))) + "]", re.I)
                  .findall(every))
    odd = {c for c in matched - letters if c.lower() == c}
    assert odd == set(classify._NF_ODD_CASE.findall(every))


def test_parked_pretest_misses_no_title() -> None:
    from archiver import classify

    titles = [*label_cases(9), "Domaın is for sale", "BUY THIS DOMAİN", "domain for ſale",
              "ДОМЕН ПРОДАЁТСЯ | Site", "Этот домен припаркован",
              "Domain name x.kz may be for sale"]
    assert sum(classify._PARKED_PHRASE.search(t) is not None for t in titles) > 20
    assert not classify._may_say_parked("Researchers published the data | News")
    for title in titles:
        if classify._PARKED_PHRASE.search(title) is not None:
            assert classify._may_say_parked(title), title


def test_claim_at_by_bisection_equals_the_scan() -> None:
    from archiver.parse import sentences

    def scanned(text: str, offset: int, spans: list[tuple[int, int]]) -> str:
        probe = offset
        while probe > 0 and text[probe - 1].isspace():
            probe -= 1
        for start, end in spans:
            if start <= probe <= end:
                return sentences.normalise_space(text[start:end])
        for start, end in reversed(spans):
            if start <= probe:
                return sentences.normalise_space(text[start:end])
        return sentences.normalise_space(text)

    rng = random.Random(11)
    pieces = ["The court ruled.", "Dr. Smith said so!", "Was it?", " ", "  ", "\n", "word",
              "«Quoted. Text.»", "(see art. 5).", "end"]
    for _ in range(400):
        text = "".join(rng.choice(pieces) for _ in range(rng.randrange(1, 30)))
        spans = sentences.sentence_spans(text)
        for offset in range(len(text) + 1):
            assert sentences.claim_at(text, offset, spans) == scanned(text, offset, spans)


def court_pages(web, count: int) -> list[str]:
    """``count`` pages on ``web`` (``/p/0`` ...), page ``i`` stating the year 20(10+i), a
    fine of i × 1,000 tenge and i people detained in Almaty: facts claim support looks for."""
    from tests.webserver import Reply

    urls = []
    for i in range(count):
        body = (f"<html><body><main><p>In 20{10 + i} the court fined {i * 1000} tenge "
                f"and {i} people were detained in Almaty.</p></main></body></html>")
        web.route(f"/p/{i}", Reply(200, body.encode(),
                                   {"Content-Type": "text/html; charset=utf-8"}))
        urls.append(web.url(f"/p/{i}"))
    return urls


def run_briefing(tmp_path, cited: list[str], claims: str):
    """A project whose briefing makes ``claims`` and cites ``cited`` (footnote n the n-th
    URL), run once (exit 0); its sources.toml."""
    from tests.test_run import call, make_project

    config = make_project(tmp_path, cited)
    notes = "\n".join(f"[^{n}]: See <{url}>." for n, url in enumerate(cited, 1))
    (tmp_path / "sources" / "brief.md").write_text(f"# A briefing\n\n{claims}\n\n{notes}\n",
                                                  encoding="utf-8")
    assert call("run", "--config", str(config))[0] == 0
    return config


def test_claim_support_from_lazy_texts_equals_support_from_all_texts(tmp_path) -> None:
    from archiver import pipeline, support
    from archiver.catalog import Catalog
    from archiver.config import load_settings
    from archiver.models import utcnow
    from archiver.parse import read_document
    from archiver.spool import Spool
    from tests.webserver import WebServer

    with WebServer() as web:
        urls = court_pages(web, 12)
        cited = urls + urls[:4]  # some URLs cited twice
        # Every other claim names a sum the page does not give.
        config = run_briefing(tmp_path, cited, " ".join(
            f"In 20{10 + i % 12} the court fined "
            f"{(i % 12) * 1000 + (7 if n % 2 else 0)} tenge in Almaty.[^{n}]"
            for n, i in enumerate(range(len(cited)), 1)))
    settings = load_settings(config)
    source = settings.sources[0]
    document = read_document(settings.root / source.path)
    with Catalog.open(settings.archive.dir) as catalog:
        links = pipeline.build_link_records(settings, catalog, source.id, document, utcnow())
        every = support.evidence_texts(catalog, settings.root, links)
        # Read one link at a time, a few at a time, and all in one batch; from the records
        # held whole and spooled in chunks of 3 (their URLs given, as the pipeline does).
        spooled = Spool(links, chunk=3, kept=1, held=0)
        for kept in (2, 6, 256):
            lazy = support.LazyTexts(catalog, settings.root, links, kept=kept)
            assert dict(lazy) == every
            lazy = support.LazyTexts(catalog, settings.root, links, kept=kept)
            assert support.assess_document(document, lazy) == \
                support.assess_document(document, every)
            lazy = support.LazyTexts(catalog, settings.root, spooled, kept=kept,
                                     urls=document.urls)
            assert list(support.each_support(document, lazy)) == \
                list(support.assess_document(document, every))
    judged = support.assess_document(document, every)
    # Not a comparison of empty answers: every footnote's evidence was read and its facts
    # looked for.
    assert len(judged) == 16
    assert all(s.origin == "ours" and s.facts for s in judged)
    levels = {s.level for s in judged}
    assert "supported" in levels and levels != {"supported"}, levels


@pytest.mark.parametrize("unpack,batch", [(False, 0), (True, 64), (True, 2)],
                         ids=["packed", "unpacked", "unpacked-in-batches-of-2"])
def test_claim_support_fed_by_the_link_records_equals_support_from_all_texts(
        tmp_path, monkeypatch, unpack: bool, batch: int) -> None:
    """The run's claim support reads each page text from the facts its link record is made
    from (``pipeline._FedTexts``), the records made as the claims reach them: the same texts
    and supports as ``evidence_texts`` gives, for pages found, pages missing (no text), a
    page whose text is not stored (read from its WARC) and footnotes no claim cites, with
    few or many texts kept; and the same link records, made in the same order. ``unpack``:
    each text unpacked once as its record is made, for its excerpt and claim support, inflated
    in a thread ``batch`` links at a time (``pipeline._unpacking``)."""
    from archiver import pipeline, support
    from archiver.catalog import Catalog
    from archiver.config import load_settings
    from archiver.models import utcnow
    from archiver.parse import read_document
    from tests.webserver import WebServer

    if batch:
        monkeypatch.setattr(pipeline, "_UNPACK_BATCH", batch)
    with WebServer() as web:
        urls = court_pages(web, 9)
        urls[3] = web.url("/missing/3")  # 404: no text
        urls[6] = web.url("/missing/6")
        cited = urls + urls[:3]
        config = run_briefing(tmp_path, cited, " ".join(
            f"In 20{10 + i % 9} the court fined {(i % 9) * 1000} tenge in Almaty.[^{n}]"
            for n, i in enumerate(range(len(cited) - 2), 1)))
    settings = load_settings(config)
    source = settings.sources[0]
    document = read_document(settings.root / source.path)
    now = utcnow()
    with Catalog.open(settings.archive.dir) as catalog:
        # One capture's text forgotten: read again from its WARC.
        catalog._db.execute("DELETE FROM texts WHERE digest IN (SELECT payload_digest FROM "
                            "captures WHERE url = ?)", (urls[1],))
        catalog._db.commit()
        links = pipeline.build_link_records(settings, catalog, source.id, document, now)
        every = support.evidence_texts(catalog, settings.root, links)
        assert sum(text is None for text in every.values()) == 2
        expected = list(support.assess_document(document, every))
        for kept in (1, 3, 256):
            def made() -> pipeline._Links:
                return pipeline._Links(
                    pipeline._records_and_facts(settings, catalog, source.id, document, now,
                                                unpack=unpack),
                    {}, tmp_path / "spool", document)
            links_made = made()
            fed = pipeline._FedTexts(links_made, catalog, settings.root, document, kept=kept)
            assert list(support.each_support(document, fed)) == expected
            assert links_made.finish().listed and list(links_made.records) == list(links)
            fed = pipeline._FedTexts(made(), catalog, settings.root, document, kept=kept)
            assert dict(fed) == every
        # A text asked for again once its record is made and no longer kept is read from
        # the catalog: the records are not all made for it (none of them is its).
        links_made = made()
        fed = pipeline._FedTexts(links_made, catalog, settings.root, document, kept=1)
        assert fed[urls[0]] == every[urls[0]] and links_made.made == 1
        assert fed[urls[4]] == every[urls[4]] and links_made.made == 5
        assert fed[urls[0]] == every[urls[0]] and links_made.made == 5
    assert {s.level for s in expected} >= {"supported", "unknown"}


def test_report_json_written_in_pieces_equals_the_whole_dump() -> None:
    from archiver.models import Document, Source
    from archiver.report import build_report
    from archiver.report.render_json import render_json, render_json_chunks, report_dict
    from archiver.safetext import json_dumps
    from tests.report_samples import evidence_report, long_strings_report, sample_report

    empty = build_report(Source("s", "/x.md"), Document("/x.md", "t", ()), [],
                         generated_at=sample_report().generated_at)
    hostile = sample_report(notes=("a note with \u202e a bidi override and \x9b CSI",))
    for report in (sample_report(), sample_report(changes=False), evidence_report(),
                   long_strings_report(), empty, hostile):
        whole = json_dumps(report_dict(report), indent=2) + "\n"
        assert render_json(report) == whole
        pieces = list(render_json_chunks(report))
        assert "".join(pieces) == whole
    assert '"links": []' in render_json(empty)
    # Controls are escaped in the pieces as in the whole.
    assert "\\u202e" in render_json(hostile) and "\u202e" not in render_json(hostile)


def test_the_currency_shortcut_misses_no_case_blind_match() -> None:
    from archiver import support_facts

    letters = set("".join(support_facts._CURRENCY_STEMS))
    others = [(chr(c), x) for c in range(sys.maxunicode + 1) for x in letters
              if chr(c).lower() != x and chr(c) != x.upper()
              and re.fullmatch(x, chr(c), re.IGNORECASE)]
    assert others == [("ſ", "s")]
    for claim in ["fined 5 kZt", "5 Tenge", "5 EUROS", "$5", "€5", "₸5", "5 uſd", "5 RUBLES",
                  "5 roubles", "5 \u212azt"]:
        assert support_facts._may_hold_a_sum(claim), claim
        if "ſ" not in claim:  # "uſd" matches the pattern but names no known currency
            assert support_facts.claim_facts(claim)
    assert not support_facts._may_hold_a_sum("no sum here, 5 people")


def test_fetcher_requests_are_the_ones_httpx_builds() -> None:
    """``_Client.get_request`` (headers prepared once per host and port) gives the request
    ``httpx.Request`` builds from the client's headers: method, URL, headers in order, empty
    body; a request's later header change (a cookie) does not reach the next one."""
    import httpx

    from archiver.fetch import _Client

    client = _Client(headers={"User-Agent": "archiver-test/1"})
    urls = ["http://example.org/a", "https://example.org:8443/b?q=1", "http://127.0.0.1:80/",
            "http://user:pw@example.org/c", "http://[::1]:8080/d", "http://xn--e1afmkfd.xn--p1ai/",
            "http://пример.рф/путь"]
    for _ in range(2):
        for url in map(httpx.URL, urls):
            ext = {"timeout": client.timeout.as_dict()}
            plain = httpx.Request("GET", url, headers=client.headers, extensions=dict(ext))
            fast = client.get_request(url, dict(ext))
            assert (fast.method, fast.url, fast.headers.raw, fast.content, fast.extensions) \
                == (plain.method, plain.url, plain.headers.raw, plain.content, plain.extensions)
            assert type(fast.stream) is type(plain.stream)
            fast.headers["Cookie"] = "a=b"
    given = _Client(headers={"Host": "elsewhere.example", "User-Agent": "x"})
    url = httpx.URL("http://example.org/")
    assert given.get_request(url, {}).headers.raw \
        == httpx.Request("GET", url, headers=given.headers).headers.raw


def test_a_bodiless_capture_is_the_capture_replaced_without_its_content() -> None:
    from dataclasses import replace
    from datetime import UTC, datetime

    from archiver.capturing import _bodiless
    from archiver.models import Capture, FetchFailure, Hop, Verdict

    capture = Capture(url="http://a.example/", final_url="http://a.example/b", status=200,
                      hops=(Hop("http://a.example/", 301, (("Location", "/b"),)),
                            Hop("http://a.example/b", 200, ())),
                      content=b"<html>page</html>", content_type="text/html",
                      payload_digest="sha256:00", captured_at=datetime(2026, 11, 30, tzinfo=UTC),
                      attempts=2, truncated="time", elapsed=0.5, body_bytes=17)
    bare = _bodiless(capture)
    assert type(bare) is Capture and bare is not capture
    assert bare == replace(capture, content=b"")
    assert bare.__dict__ == replace(capture, content=b"").__dict__
    assert capture.content == b"<html>page</html>"  # the original keeps its body
    failure = FetchFailure(url="http://a.example/", verdict=Verdict.TIMEOUT, reason="slow")
    assert _bodiless(failure) is failure


def test_unpacking_inflates_the_texts_support_reads_and_fails_on_a_damaged_one(
        monkeypatch) -> None:
    """``pipeline._unpacking`` unpacks, batch by batch, the texts of healthy links' captures
    and only those (a failing link's, a browser capture's stay packed), keeps the order, and
    a damaged text raises ``zlib.error`` as ``PackedText.text`` does."""
    import zlib
    from dataclasses import replace
    from datetime import UTC, datetime

    from archiver import pipeline
    from archiver.catalog import (
        LinkFacts,
        PackedText,
        StoredBrowser,
        StoredCapture,
        StoredResult,
        pack_text,
    )
    from archiver.models import Verdict

    monkeypatch.setattr(pipeline, "_UNPACK_BATCH", 3)
    when = datetime(2026, 11, 30, tzinfo=UTC)

    def facts(n: int, verdict: Verdict, *, browser: bool = False) -> tuple[str, LinkFacts]:
        url = f"https://example.org/{n}"
        result = StoredResult(1, url, verdict, "", 200, url, 1, when)
        capture = StoredCapture(n, 1, url, url, 200, None, None, "d", when, "text/html",
                                False, None, None, None, 1)
        return url, LinkFacts(
            last=result, capture=capture,
            browser=StoredBrowser(n, "browser", "app shell", None, False, None, None, None)
            if browser else None, text=PackedText(pack_text(f"Page {n} " * 50)))

    made = [facts(n, Verdict.NOT_FOUND if n % 4 == 1 else Verdict.OK, browser=n == 6)
            for n in range(11)]
    got = list(pipeline._unpacking(iter(made)))
    assert [url for url, _ in got] == [url for url, _ in made]
    for (_, before), (_, after) in zip(made, got, strict=True):
        unpacked = isinstance(after.text, pipeline._Unpacked)
        assert unpacked == pipeline._read_whole(before)
        assert after.text is not None and before.text is not None
        assert after.text.text() == before.text.text()
        assert after == before or unpacked
    assert sum(isinstance(f.text, pipeline._Unpacked) for _, f in got) == 7
    damaged = [*made[:4], (made[4][0], replace(made[4][1], text=PackedText(b"not zlib")))]
    with pytest.raises(zlib.error):
        list(pipeline._unpacking(iter(damaged)))


def _finished(url: str, refs, text: bytes | None, content_type: str = "text/html",
              verdict=None, browser=None):
    """A ``Finished`` record of an HTTP capture of ``url`` cited by ``refs`` (footnote
    numbers of source ``brief``) whose page text is ``text``, packed as the catalog keeps it."""
    from datetime import UTC, datetime

    from archiver.capturing import Finished
    from archiver.models import Capture, FootnoteRef, Judgement, Target, Verdict

    capture = Capture(url, url, 200, (), b"", content_type, "sha1:x", datetime.now(UTC))
    return Finished(Target(url, tuple(FootnoteRef("brief", n) for n in refs)), capture,
                    Judgement(verdict or Verdict.OK, "ok"),
                    text=text, browser=browser)


def test_claim_support_judged_during_the_fetch_is_used_only_on_the_same_text(
        tmp_path, monkeypatch) -> None:
    """``pipeline._Prejudged`` judges each capture's claims as it arrives; the tail
    (``_FedTexts.judged``) takes a support from it only when the link's text it would read is
    the very text judged (``_Prejudged.vouch``), of the same kind: a support judged on
    another text, or on the same text as another kind, is judged again. Either way the
    supports are those judged on the catalog's texts alone, in the same order, and the link
    records (their excerpts made during the fetch) are the same."""
    from archiver import pipeline, support
    from archiver.catalog import Catalog, pack_text
    from archiver.config import load_settings
    from archiver.models import Verdict, utcnow
    from archiver.parse import read_document
    from tests.webserver import WebServer

    with WebServer() as web:
        urls = court_pages(web, 8)
        urls[3] = web.url("/missing/3")  # 404: no text
        cited = urls + urls[:3]  # footnotes 9-11 cite the first three URLs again
        config = run_briefing(tmp_path, cited, " ".join(
            f"In 20{10 + i % 8} the court fined {(i % 8) * 1000} tenge in Almaty.[^{n}]"
            for n, i in enumerate(range(len(cited) - 1), 1)))  # footnote 11: no claim
    settings = load_settings(config)
    source = settings.sources[0]
    document = read_document(settings.root / source.path)
    now = utcnow()
    citing = document.citing
    with Catalog.open(settings.archive.dir) as catalog:
        links = pipeline.build_link_records(settings, catalog, source.id, document, now)
        every = support.evidence_texts(catalog, settings.root, links)
        expected = list(support.assess_document(document, every))
        # The texts as the catalog keeps them (packed by the capture stage, in its bytes).
        texts = {url: facts.text.blob for url, facts in catalog.link_facts(urls).items()
                 if facts.text is not None}
        prejudged = pipeline._Prejudged({source.id: document})
        prejudged._since = -1e9  # as if the fetch had lasted long: time to judge them all
        for url in urls:
            text = texts.get(url)
            if url == urls[1]:  # judged on a text the page does not have
                text = pack_text("In 2099 nothing happened in Almaty. " * 20)
            prejudged.take(_finished(url, citing[url], text,
                                     "text/plain" if url == urls[2] else "text/html",
                                     Verdict.NOT_FOUND if url == urls[3] else None))
        # Neither the failing link, nor one without text, a damaged text, a text too long to
        # judge in the event loop, nor a browser's capture is judged.
        prejudged.take(_finished(web.url("/other"), [1], None))
        prejudged.take(_finished(web.url("/damaged"), [1], b"not zlib"))
        prejudged.take(_finished(web.url("/long"), [1], pack_text(
            "".join(f"{n} tenge. " for n in range(pipeline._PREJUDGE_UP_TO)))))
        prejudged.take(_finished(urls[4] + "?b", [1], texts[urls[4]], browser=object()))
        assert set(urls) - {urls[3]} == {url for url in urls if url in prejudged}
        assert not any(url in prejudged for url in (
            web.url("/other"), web.url("/damaged"), web.url("/long"), urls[4] + "?b"))
        # Past its share of the fetch's time, nothing more is judged: the tail will.
        monkeypatch.setattr(pipeline, "_PREJUDGE_SHARE", 0.0)
        monkeypatch.setattr(pipeline, "_PREJUDGE_ALLOWANCE", 0.0)
        late = pipeline._Prejudged({source.id: document})
        late.take(_finished(urls[0], citing[urls[0]], texts[urls[0]]))
        assert urls[0] not in late
        monkeypatch.undo()

        made = pipeline._Links(
            pipeline._records_and_facts(settings, catalog, source.id, document, now,
                                        unpack=True, prejudged=prejudged),
            {}, tmp_path / "spool", document)
        fed = pipeline._FedTexts(made, catalog, settings.root, document, source=source.id)
        taken = []

        def judged(footnote: int, url: str) -> support.Support | None:
            found = fed.judged(footnote, url)
            if found is not None:
                taken.append((footnote, url))
            return found

        assert list(support.each_support(document, fed, judged=judged)) == expected
        assert made.finish().listed and list(made.records) == list(links)
    # Taken: every footnote with claims citing a page judged on its own text as html.
    assert taken == [(n, cited[n - 1]) for n in range(1, 11)
                     if cited[n - 1] not in (urls[1], urls[2], urls[3])]
    assert {s.level for s in expected} >= {"supported", "unknown"}


@pytest.mark.parametrize("workers,share", [(0, None), (2, None), (0, 0.0)],
                         ids=["in-process", "two-workers", "no-time-to-judge"])
def test_a_run_reports_the_claim_support_a_rebuild_judges(tmp_path, monkeypatch, workers: int,
                                                          share: float | None) -> None:
    """The run judges claim support during the fetch (``pipeline._Prejudged``), within a
    share of its time (``share`` 0: none, all is judged in the tail); ``archiver report``
    judges it from the catalog alone, after: the same reports, byte for byte but for the
    time they were made. A second source cites the same pages in footnotes of the same
    numbers with other claims: each source's reports have their own supports."""
    from archiver import pipeline
    from tests.test_run import call
    from tests.webserver import WebServer

    if share is not None:
        monkeypatch.setattr(pipeline, "_PREJUDGE_SHARE", share)
        monkeypatch.setattr(pipeline, "_PREJUDGE_ALLOWANCE", 0.0)

    with WebServer() as web:
        urls = court_pages(web, 10)
        urls[4] = web.url("/missing/4")
        cited = urls + urls[:3]
        config = run_briefing(tmp_path, cited, " ".join(
            f"In 20{10 + i % 10} the court fined {(i % 10) * 1000 + (7 if n % 3 else 0)} "
            f"tenge in Almaty.[^{n}]" for n, i in enumerate(range(len(cited)), 1)))
        second = [urls[n] for n in (0, 5, 2, 1)]  # footnotes 1 and 3 cite as the first's
        (tmp_path / "sources" / "second.md").write_text(
            "# Second\n\n" + " ".join(
                f"{n * 1000} people were detained in Almaty in 20{10 + n}.[^{i}]"
                for i, n in enumerate((3, 1, 2, 1), 1)) + "\n\n"
            + "\n".join(f"[^{i}]: See <{url}>." for i, url in enumerate(second, 1)) + "\n",
            encoding="utf-8")
        (tmp_path / "sources.toml").write_text(
            (tmp_path / "sources.toml").read_text().replace(
                "[fetch]\n", '[[sources]]\nid = "second"\npath = "sources/second.md"\n\n'
                f"[fetch]\nworkers = {workers}\n"), encoding="utf-8")
        assert call("run", "--config", str(config), "--refresh")[0] == 0
    folders = [tmp_path / "reports" / "brief", tmp_path / "reports" / "second"]
    ran = {p: p.read_bytes() for folder in folders for p in folder.iterdir() if p.is_file()}
    assert call("report", "--config", str(config))[0] == 0
    rebuilt = {p: p.read_bytes() for folder in folders for p in folder.iterdir()
               if p.is_file()}
    assert ran.keys() == rebuilt.keys() and len(ran) == 8

    def timeless(data: bytes) -> bytes:
        return re.sub(rb"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?(Z| UTC)", b"T", data)

    for path in ran:
        assert timeless(ran[path]) == timeless(rebuilt[path]), path
    report = json.loads(ran[folders[0] / "report.json"])
    assert {s["level"] for s in report["support"]} == {"supported", "unsupported", "unknown"}
    other = json.loads(ran[folders[1] / "report.json"])["support"]
    assert [(s["level"], [f["text"] for f in s["facts"]]) for s in other] == [
        ("unsupported", ["3000", "Almaty", "2013"]), ("unsupported", ["1000", "Almaty", "2011"]),
        ("unknown", ["2000", "Almaty", "2012"]), ("supported", ["1000", "Almaty", "2011"])]
