"""Claim support, rule by rule: the facts of a claim (``support_facts``), finding each kind of
fact in Russian, Kazakh and English text (``support_match``), and the level
(``support.level_of``). Every Russian case of a name, every month form, every number form
has its own case; hypothesis checks that no text crashes the extraction or the matcher."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archiver.support import EvidenceText, assess, level_of
from archiver.support_facts import Fact, claim_facts
from archiver.support_match import Evidence, month_of, name_key, number_values

BILASH = ("On 18 August, the Administrative Court fined Bilash 138 900 KZT (around 275 EUR) "
          "for participating in an unregistered organisation (Article 489 of the "
          "Administrative Code).")


def facts(text: str) -> list[tuple[str, str, bool]]:
    return [(f.kind, f.text, f.required) for f in claim_facts(text)]


def fact(kind: str, value: str, text: str | None = None) -> Fact:
    return Fact(kind, text or value, 0, len(text or value), value, True, "test")


def found(page: str, f: Fact) -> bool:
    return Evidence(page).find(f).found


# ── facts of a claim ─────────────────────────────────────────────────────────


def test_facts_of_the_bilash_claim_with_kinds_spans_and_rules() -> None:
    got = claim_facts(BILASH)
    assert [(f.kind, f.text, f.value, f.required) for f in got] == [
        ("date", "18 August", "--08-18", True),
        ("person", "Bilash", "Bilash", True),
        ("amount", "138 900 KZT", "138900 KZT", True),
        ("amount", "275 EUR", "275 EUR", False),  # the author's conversion
        ("law", "Article 489", "489", True),
    ]
    for f in got:
        assert BILASH[f.start:f.end] == f.text and f.rule


def test_a_euro_figure_before_the_tenge_one_is_the_conversion() -> None:
    claim = ("Another activist was sentenced to five days of administrative detention in "
             "February for not paying two fines of less than 65 EUR (30 000 KZT).")
    assert [(k, t, r) for k, t, r in facts(claim) if k == "amount"] == [
        ("amount", "65 EUR", False), ("amount", "30 000 KZT", True)]


def test_people_organisations_places_and_titles() -> None:
    claim = ("Activist Fariza Ospan declared she would hold a single picket in Shymkent in "
             "support of imprisoned Asya Tulesova.")
    assert facts(claim) == [("person", "Fariza Ospan", True), ("place", "Shymkent", False),
                            ("person", "Asya Tulesova", True)]
    claim = ("The court had earlier fined the head of Nagyz Atajurt Bekzhan Maksutkhan and "
             "another associate 277 000 KZT and 83 340 KZT respectively (around 550 and 165 "
             "EUR) for activities with the unregistered organisation.")
    assert facts(claim) == [
        ("organisation", "Nagyz Atajurt", False), ("person", "Bekzhan Maksutkhan", True),
        ("amount", "277 000 KZT", True), ("amount", "83 340 KZT", True),
        ("amount", "165 EUR", False)]


def test_dates_numbers_laws_and_quotes() -> None:
    claim = ("According to human rights organisations, at least 78 cases of preventive "
             "arrests occurred before 25 September, and some 163 people were arrested on 25 "
             "September itself.")
    assert facts(claim) == [("number", "78", True), ("date", "25 September", True),
                            ("number", "163", True)]
    claim = ('Tulesova was charged with “non-dangerous infliction of harm to a representative '
             'of the authorities” (under Article 380 in the Criminal Code).')
    assert facts(claim) == [
        ("person", "Tulesova", True),
        ("quote", "non-dangerous infliction of harm to a representative of the authorities",
         False),
        ("law", "Article 380", True)]
    assert facts("In October 2019, Erzhan Elshibaev was sentenced.") == [
        ("date", "October 2019", True), ("person", "Erzhan Elshibaev", True)]
    assert facts("He was released in 2016.") == [("date", "2016", False)]
    assert [f.value for f in claim_facts("The court ordered 1.5 million KZT to be paid.")] \
        == ["1500000 KZT"]
    assert [f.text for f in claim_facts(
        "charged under Articles 174 and 274 of the Criminal Code")] == ["Articles 174", "274"]


def test_a_claim_without_checkable_facts() -> None:
    assert claim_facts("Both women pleaded not guilty.") == ()
    assert claim_facts("") == ()


# ── names: transliteration, Russian cases, Kazakh endings ────────────────────


@pytest.mark.parametrize(("latin", "cyrillic"), [
    ("Tulesova", "Тулесова"), ("Yevgeniy", "Евгений"), ("Zhovtis", "Жовтис"),
    ("Khasan", "Хасан"), ("Dzhakishev", "Джакишев"), ("Mamaj", "Мамай"),
    ("Tokayev", "Токаев"), ("Tokayev", "Тоқаев"), ("Ilyashev", "Ильяшев"),
    ("Kobeyzinov", "Кобейзинов"), ("Serikzhan", "Серікжан"), ("Utepova", "Утепова"),
    ("Semenova", "Семёнова"), ("Shymkent", "Шымкент"), ("Abdulkarim", "Абдулкарим"),
    # Kazakh in the Latin alphabet of 2021
    ("Toqaev", "Тоқаев"), ("Tūlesova", "Тулесова"), ("Şymkent", "Шымкент"),
])
def test_transliteration_both_ways_gives_one_key(latin: str, cyrillic: str) -> None:
    assert name_key(latin) == name_key(cyrillic)


@pytest.mark.parametrize("word", ["Tokayev", "Tokaev"])
def test_latin_spelling_variants(word: str) -> None:
    assert found(f"President {word} signed the law.", fact("person", "Tokayev"))


# Every Russian case of a feminine surname, a masculine one, a name in -ил, -ай, and a
# feminine first name.
@pytest.mark.parametrize(("name", "form"), [
    ("Tulesova", "Тулесова"),    # nominative
    ("Tulesova", "Тулесовой"),   # genitive, dative, instrumental, prepositional
    ("Tulesova", "Тулесову"),    # accusative
    ("Tulesova", "Тулесовою"),   # instrumental (older form)
    ("Ilyashev", "Ильяшев"),     # nominative
    ("Ilyashev", "Ильяшева"),    # genitive, accusative
    ("Ilyashev", "Ильяшеву"),    # dative
    ("Ilyashev", "Ильяшевым"),   # instrumental
    ("Ilyashev", "Ильяшеве"),    # prepositional
    ("Agadil", "Агадила"),
    ("Agadil", "Агадилу"),
    ("Agadil", "Агадилом"),
    ("Agadil", "Агадиле"),
    ("Mamaj", "Мамая"),
    ("Mamaj", "Мамаю"),
    ("Mamaj", "Мамаем"),
    ("Mamaj", "Мамае"),
    ("Bilash", "Билашу"),
    ("Bilash", "Билашем"),
    ("Asya", "Аси"),
    ("Asya", "Асе"),
    ("Asya", "Асю"),
    ("Asya", "Асей"),
    ("Semenova", "Семёновой"),
])
def test_russian_case_forms_of_names(name: str, form: str) -> None:
    match = Evidence(f"Суд вынес решение по делу {form} в понедельник.").find(
        fact("person", name))
    assert match.found and match.matched == form, match


@pytest.mark.parametrize("form", ["Тулесованың", "Тулесоваға", "Тулесованы", "Тулесовамен",
                                  "Тулесовада", "Тулесовадан"])
def test_kazakh_case_endings_of_names(form: str) -> None:
    match = Evidence(f"Сот {form} қатысты шешім шығарды.").find(fact("person", "Tulesova"))
    assert match.found and "Kazakh ending" in match.how


def test_a_person_is_found_by_the_surname_not_the_first_name() -> None:
    page = "Ася Иванова выступила на митинге."
    match = Evidence(page).find(fact("person", "Asya Tulesova"))
    assert not match.found and "first name" in match.how
    assert not found("тулесова в нижнем регистре не имя", fact("person", "Tulesova"))


def test_an_organisation_needs_its_own_words() -> None:
    assert found("членов партии «Нур Отан»", fact("organisation", "Nur Otan Party"))
    assert not found("членов партии «Ак жол»", fact("organisation", "Nur Otan Party"))
    assert found("the Administrative Court ruled", fact("organisation", "Administrative Court"))
    assert not found("административный суд", fact("organisation", "Administrative Court"))


# ── months and dates ─────────────────────────────────────────────────────────

RU_GENITIVE = ["января", "февраля", "марта", "апреля", "мая", "июня", "июля", "августа",
               "сентября", "октября", "ноября", "декабря"]
RU_PREPOSITIONAL = ["январе", "феврале", "марте", "апреле", "мае", "июне", "июле", "августе",
                    "сентябре", "октябре", "ноябре", "декабре"]
RU_NOMINATIVE = ["январь", "февраль", "март", "апрель", "май", "июнь", "июль", "август",
                 "сентябрь", "октябрь", "ноябрь", "декабрь"]
KK_MONTHS = ["қаңтар", "ақпан", "наурыз", "сәуір", "мамыр", "маусым", "шілде", "тамыз",
             "қыркүйек", "қазан", "қараша", "желтоқсан"]
KK_LOCATIVE = ["қаңтарда", "ақпанда", "наурызда", "сәуірде", "мамырда", "маусымда",
               "шілдеде", "тамызда", "қыркүйекте", "қазанда", "қарашада", "желтоқсанда"]
EN_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
             "September", "October", "November", "December"]


@pytest.mark.parametrize("forms", [RU_GENITIVE, RU_PREPOSITIONAL, RU_NOMINATIVE, KK_MONTHS,
                                   KK_LOCATIVE, EN_MONTHS])
def test_every_month_in_every_form(forms: list[str]) -> None:
    assert [month_of(w) for w in forms] == list(range(1, 13))
    assert [month_of(w.capitalize()) for w in forms] == list(range(1, 13))


@pytest.mark.parametrize("word", ["машина", "Сапар", "статья", "тамак", "Mayor", "суд"])
def test_words_that_are_not_months(word: str) -> None:
    assert month_of(word) is None


@pytest.mark.parametrize("page", [
    "18 августа суд вынес решение", "18-го августа суд вынес решение",
    "2020 жылғы 18 тамызда сот шешім шығарды", "On 18 August the court ruled",
    "On August 18, 2020 the court ruled", "Решение от 18.08.2020", "date: 2020-08-18",
    "18 августа 2020 года",
])
def test_day_and_month_forms(page: str) -> None:
    assert found(page, fact("date", "2020-08-18", "18 August 2020"))
    assert found(page, fact("date", "--08-18", "18 August"))


def test_a_date_in_another_year_or_on_another_day_is_not_the_claims() -> None:
    match = Evidence("18 августа 2019 года суд вынес решение").find(
        fact("date", "2020-08-18", "18 August 2020"))
    assert not match.found and "another year" in match.how
    match = Evidence("20 августа суд вынес решение").find(fact("date", "--08-18", "18 August"))
    assert not match.found and "20 августа" in match.how
    assert not found("в 18 часов", fact("date", "--08-18", "18 August"))


@pytest.mark.parametrize("page", ["в январе 2020 года", "15 января 2020 года", "January 2020",
                                  "2020 жылғы қаңтарда", "01.2020", "15.01.2020"])
def test_month_and_year_forms(page: str) -> None:
    assert found(page, fact("date", "2020-01", "January 2020"))


def test_month_and_year_with_another_year_is_a_miss() -> None:
    assert not found("в январе 2019 года", fact("date", "2020-01", "January 2020"))


# ── numbers, sums and law articles ───────────────────────────────────────────


@pytest.mark.parametrize("written", [
    "138 900", "138\u00a0900", "138\u202f900", "138\u2009900", "138,900", "138.900",
    "138'900", "138900",
])
@pytest.mark.parametrize("currency", ["тенге", "теңге", "тг", "KZT", "₸"])
def test_every_number_form_and_currency(written: str, currency: str) -> None:
    match = Evidence(f"оштрафовал на {written} {currency} за участие").find(
        fact("amount", "138900 KZT", "138 900 KZT"))
    assert match.found and match.how == "the sum 138900 KZT", match


@pytest.mark.parametrize("page", ["по 1,5 млн тенге", "1.5 million tenge", "1 500 000 тенге",
                                  "1,500,000 KZT", "1,5 миллиона тенге"])
def test_millions(page: str) -> None:
    assert found(page, fact("amount", "1500000 KZT", "1.5 million KZT"))


def test_number_values() -> None:
    assert number_values("1,500") == (1500.0, 1.5)
    assert number_values("1.234,5") == (1234.5,)
    assert number_values("83 340") == (83340.0,)


def test_a_different_sum_is_named() -> None:
    match = Evidence("оштрафовал на 100 000 тенге").find(
        fact("amount", "138900 KZT", "138 900 KZT"))
    assert not match.found and match.how == "the page gives 100 000 тенге"


def test_a_figure_without_currency_still_counts_but_says_so() -> None:
    match = Evidence("штраф составил 138 900.").find(fact("amount", "138900 KZT"))
    assert match.found and "no currency" in match.how


def test_figures_are_whole_numbers_not_parts() -> None:
    assert found("задержаны 239 человек", fact("number", "239"))
    assert not found("задержаны 2390 человек", fact("number", "239"))
    assert not found("телефон 12390", fact("number", "239"))


@pytest.mark.parametrize("page", ["Статья 489. Нарушение", "по статье 489 КоАП", "ст. 489 КоАП",
                                  "по 489 статье", "ӘҚБтК 489-бабы", "489-бап. Тіркелмеген",
                                  "under Article 489", "статьи 489"])
def test_law_article_forms(page: str) -> None:
    assert found(page, fact("law", "489", "Article 489"))


def test_law_article_needs_an_article_word() -> None:
    assert not found("задержаны 489 человек", fact("law", "489", "Article 489"))
    assert not found("статья 4890", fact("law", "489", "Article 489"))
    assert found("Статья 73-3. Клевета", fact("law", "73-3", "Article 73-3"))


def test_quotes_are_found_verbatim_only() -> None:
    quote = fact("quote", "knowingly spreading false information")
    assert found("charged with Knowingly  spreading, false information.", quote)
    assert not found("распространение заведомо ложной информации", quote)


def test_passage_is_a_window_around_the_match() -> None:
    page = "Начало. " + "слово " * 60 + "Билаша оштрафовали. " + "ещё " * 60
    match = Evidence(page).find(fact("person", "Bilash"))
    assert match.found and match.passage is not None
    assert "Билаша" in match.passage and match.passage.startswith("… ")
    assert len(match.passage) < 260


# ── levels ───────────────────────────────────────────────────────────────────


def level(claim: str, page: str | None) -> str:
    evidence = EvidenceText(page, "html", "ours") if page is not None else None
    return assess(1, "https://example.org/", (claim,), evidence).level


def test_levels() -> None:
    ru = ("Алматы, 18 августа. Суд оштрафовал Серикжана Билаша на 138 900 тенге по статье "
          "489 КоАП.")
    assert level(BILASH, ru) == "supported"
    assert level(BILASH, ru.replace("138 900", "100 000")) == "partial"
    assert level(BILASH, "В Алматы прошёл фестиваль уличной еды, гостей было много.") \
        == "unsupported"
    assert level(BILASH, None) == "unknown"
    assert level(BILASH, "   ") == "unknown"  # a scan: no text is not "unsupported"
    assert level("Both women pleaded not guilty.", ru) == "unknown"
    quote_only = 'Detainees had "preventive conversations" with the police.'
    assert level(quote_only, "They held preventive conversations with him.") == "supported"
    assert level(quote_only, "Профилактические беседы с активистами.") == "unknown"


def test_the_reason_names_what_is_missing() -> None:
    page = "Суд оштрафовал Серикжана Билаша на 100 000 тенге по статье 489 КоАП 18 августа."
    support = assess(51, "u", (BILASH,), EvidenceText(page, "html", "ours"))
    assert support.level == "partial"
    assert support.reason == "3 found, missing: 138 900 KZT"
    assert [c.fact.text for c in support.missing] == ["138 900 KZT"]
    assert level_of(support.facts, None) == ("unknown",
                                             "no readable text of the cited content")


# ── nothing crashes ──────────────────────────────────────────────────────────

CLAIMS = [BILASH,
          "On 9 June, 169 Kazakhstani human rights defenders published an open letter to "
          "President Tokayev in support of Tulesova.",
          "The court ordered the activists to jointly pay 1.5 million KZT (almost 3000 EUR).",
          'Tulesova was charged with “non-dangerous infliction of harm” (Article 380).']
ALPHABET = st.sampled_from(list(
    "0123456789 ,.'-\u00a0\u202f\u2009\n()«»“”\"$€₸№аеиоуыэюяёжшщчцхйьъӘәҒғҚқҢңӨөҰұҮүҺһІі"
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyzТулесоваБилаштенгеавгуста"))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=400), st.text(ALPHABET, max_size=400)))
def test_no_text_crashes_the_matcher(page: str) -> None:
    for claim in CLAIMS:
        support = assess(1, "u", (claim,), EvidenceText(page, "html", "ours"))
        assert support.level in {"supported", "partial", "unsupported", "unknown"}
        for check in support.facts:
            assert (check.passage is not None) == check.found


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=300), st.text(ALPHABET, max_size=300)))
def test_no_claim_crashes_the_extraction(claim: str) -> None:
    for f in claim_facts(claim):
        assert claim[f.start:f.end] == f.text
        assert f.kind in {"person", "organisation", "place", "date", "number", "amount",
                          "law", "quote"}
    assess(1, "u", (claim,), EvidenceText(claim, "text", "ours"))


@pytest.mark.parametrize("claim", [
    "The fine was " + "9" * 400 + " tenge.",  # read as infinity
    "The fine was " + "9" * 300 + " billion tenge.",
    "Count: " + "9" * 400 + " people were detained on 5 May 2020.",
    "He paid 5 uſd to the court.",  # "uſd" matches USD ignoring case; lower() keeps the ſ
    "They paid 5 ſ million USD, then 3 MİLLİON KZT.",
])
def test_figures_past_reason_and_odd_letters_never_crash_the_facts(claim: str) -> None:
    facts = claim_facts(claim)
    for f in facts:
        assert claim[f.start:f.end] == f.text
    assess(1, "u", (claim,), EvidenceText(claim, "text", "ours"))


def test_a_currency_written_with_a_long_s_is_still_a_sum() -> None:
    assert [(f.kind, f.value) for f in claim_facts("He paid 5 uſd to the court.")] == [
        ("amount", "5 USD")]
    assert [f.kind for f in claim_facts("The fine was " + "9" * 400 + " tenge.")] == []


_FRAGMENTS = st.sampled_from(["9" * 320, "1,000", "5", " ", "million", "MİLLİON", "uſd",
                              "USD", "tenge", "ſ", "$", "€", "₸", "Article ", "May ",
                              "2020", ".", ",", "(", ")", "«", "»"])


@settings(max_examples=300, deadline=None)
@given(st.lists(_FRAGMENTS, max_size=12).map("".join))
def test_no_mix_of_figures_and_currency_words_crashes_the_facts(claim: str) -> None:
    for f in claim_facts(claim):
        assert claim[f.start:f.end] == f.text
    assess(1, "u", (claim,), EvidenceText(claim, "text", "ours"))


def test_the_people_of_the_briefing() -> None:
    """Every person fact of the shipped briefing's claims is a person (hand-checked list):
    no sentence opener, institution, place or platform is taken for a name."""
    from pathlib import Path

    from archiver.parse import read_document

    briefing = Path(__file__).resolve().parent.parent / "sources" / "kazakhstan-2020.md"
    document = read_document(briefing)
    people = {f.text for fn in document.footnotes for c in fn.claims
              for f in claim_facts(c.text) if f.kind == "person"}
    assert people == {
        "Agadil", "Tulesova", "Tokayev", "Serikzhan Bilash", "Ilyashev", "Erzhan Elshibaev",
        "Elshibaev", "Bilash", "Asya Tulesova", "Zhanbolat Mamaj", "Yevgeniy Zhovtis",
        "Utepova", "Semenova", "Sanavar Zakirova", "Mukhtar Dzhakishev", "Molchanov",
        "Kobeyzinov", "Khasan Abdulkarim", "Kenzhebek Abishev", "Inga Imanbai", "Igor Sychev",
        "Idryshev", "Fariza Ospan", "Elena Semenova", "Diana Shakirova", "Bokayev",
        "Bekzhan Maksutkhan", "Askar Ibrayev", "Alnur Ilyashev", "Akimov", "Abzal Dostiyarov"}


def test_a_days_number_is_not_a_figure() -> None:
    assert not found("Задержания прошли 10 июня в Алматы.", fact("number", "10"))
    assert found("10 июня около 10 человек собрались.", fact("number", "10"))
    assert not found("Акция 2020-10-18 прошла спокойно", fact("number", "18"))


def test_evidence_by_footnote_and_url_wins_over_by_url() -> None:
    from archiver.models import Claim, Document, Footnote
    from archiver.support import assess_document

    url = "https://example.org/a"
    notes = tuple(Footnote(number=n, text=url, urls=(url,), line=n,
                           claims=(Claim(n, "Tulesova was detained.", n),)) for n in (1, 2))
    document = Document(path="x.md", format="markdown", title=None, footnotes=notes,
                        findings=())
    texts = {url: EvidenceText("Полиция задержала Тулесову.", "html", "ours"),
             (2, url): EvidenceText("Страница о погоде и ветре.", "rendered", "browser")}
    first, second = assess_document(document, texts)
    assert (first.level, first.text_kind) == ("supported", "html")
    assert (second.level, second.text_kind, second.origin) == ("unsupported", "rendered",
                                                               "browser")


def test_a_russian_pdf_supports_the_claim() -> None:
    from archiver.pagetext import extract
    from tests.test_pagetext_pdf import make_pdf

    pdf = make_pdf([["Решение суда", "18 августа 2020 года суд оштрафовал Серикжана Билаша",
                     "на 138 900 тенге по статье 489 КоАП."]])
    page = extract(pdf, "application/pdf")
    assert page.kind == "pdf"
    support = assess(51, "u", (BILASH,), EvidenceText(page.text, page.kind, "ours"))
    assert support.level == "supported", support.reason
