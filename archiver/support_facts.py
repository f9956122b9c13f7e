"""The checkable facts of an English claim sentence: deterministic, each with its rule.

    claim_facts(text) -> tuple[Fact, ...]

A claim such as "On 18 August, the Administrative Court fined Bilash 138 900 KZT (around 275
EUR) for participating in an unregistered organisation (Article 489 of the Administrative
Code)." gives the facts ``date`` "18 August", ``organisation`` "Administrative Court",
``person`` "Bilash", ``amount`` "138 900 KZT", ``amount`` "275 EUR" (a conversion, not
required), ``law`` "Article 489". Each fact carries its span in the claim (``start``,
``end``, so ``text == claim[start:end]``), a normalised ``value`` that the matcher looks
for, and ``rule``: which rule found it, in words.

The rules, in the order they claim text (a span taken by one is not read again):

- ``law``: "Article 489", "article 73-3", "Articles 174 and 274" (each number a fact).
- ``amount``: a number with a currency (KZT, tenge, EUR, euro, USD, dollars, rubles),
  optionally "million"/"thousand". An amount in parentheses right after another amount
  ("(around 275 EUR)") is the author's conversion: kept, but not ``required``.
- ``date``: day and month with an optional year ("18 August", "22 June 2020",
  "August 18, 2020"), month and year ("January 2020"), a bare year ("in 2016", not
  required: too weak to tell one page from another).
- ``number``: any other figure of two or more digits ("239 cases", "169 human rights
  defenders"); one-digit figures and spelt-out numbers are left out (too common to tell).
- ``quote``: a phrase in quotation marks of at most ten words (a longer quotation is a
  translation the page will not hold verbatim). Never required: sources in another
  language cannot hold the English words.
- ``person`` / ``organisation`` / ``place``: runs of capitalised words. A run with an
  institution word (Court, Party, Office, Foundation, ...) is an organisation; a known
  place of Kazakhstan or a run ending in Region/District/City is a place; anything else is a
  person. Titles before a name (President, Activist, Director, imam) are dropped; a
  single word opening a sentence is a name only when it looks like one (a surname's ending
  such as -ov/-eva/-uly, a following "'s", or the same word capitalised again in the claim):
  "Kobeyzinov had accused" gives a person, "Detainees had" does not. The
  country's own name (Kazakhstan, Kazakh, Kazakhstani) and COVID are left out: the whole
  briefing is about them.

``required`` facts decide the support level (``support.level_of``): person, law, amount
(not a conversion), number, dates with a month. Organisations and places are named in
English in the claim but in Russian or Kazakh on the page ("Administrative Court" is
"административный суд"): they are looked for and shown, but their absence proves nothing.
No model, no network: a few regular expressions and word lists.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

__all__ = ["MONTHS", "Fact", "claim_facts"]

MONTHS: dict[str, int] = {
    "january": 1, "february": 2, "march": 3, "april": 4, "may": 5, "june": 6, "july": 7,
    "august": 8, "september": 9, "october": 10, "november": 11, "december": 12,
}

CURRENCIES: dict[str, str] = {
    "kzt": "KZT", "tenge": "KZT", "eur": "EUR", "euro": "EUR", "euros": "EUR",
    "usd": "USD", "dollars": "USD", "dollar": "USD", "rub": "RUB", "rubles": "RUB",
    "roubles": "RUB",
}

_MULTIPLIERS = {"million": 1_000_000, "thousand": 1_000, "billion": 1_000_000_000}


@dataclass(frozen=True)
class Fact:
    """One checkable fact of a claim.

    ``kind``: person, organisation, place, date, number, amount, law or quote. ``text`` is
    the claim's words (``claim[start:end]``). ``value`` is what the matcher compares:
    the name itself, ``"138900 KZT"``, ``"2020-08-18"`` / ``"--08-18"`` (no year) /
    ``"2020-01"`` / ``"2020"``, the article number, the number. ``required``: whether its
    absence lowers the support level. ``rule``: the extraction rule, in words.
    """

    kind: str
    text: str
    start: int
    end: int
    value: str
    required: bool
    rule: str


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_NUM = r"\d{1,3}(?:[ \u00a0\u202f\u2009,]\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_CUR = r"KZT|tenge|EUR|euros?|USD|dollars?|RUB|r(?:o)?ubles"
_AMOUNT = re.compile(
    rf"(?P<pre>[$€₸])?(?P<num>{_NUM})(?:\s+(?P<mult>million|thousand|billion))?"
    rf"(?:\s*(?P<cur>{_CUR})\b)?",
    re.IGNORECASE,
)
_LAW = re.compile(
    r"\b[Aa]rticles?\s+(?P<nums>\d+(?:-\d+)?(?:\s*(?:,|and|or)\s*\d+(?:-\d+)?)*)"
)
_LAW_NUM = re.compile(r"\d+(?:-\d+)?")
_MONTH_RE = "|".join(m.capitalize() for m in MONTHS)
_DAY_MONTH = re.compile(rf"\b(?P<day>[0-3]?\d)(?:st|nd|rd|th)?\s+(?P<month>{_MONTH_RE})"
                        r"(?:,?\s+(?P<year>(?:19|20)\d\d))?\b")
_MONTH_DAY = re.compile(rf"\b(?P<month>{_MONTH_RE})\s+(?P<day>[0-3]?\d)(?:st|nd|rd|th)?"
                        r"(?:,\s*(?P<year>(?:19|20)\d\d))?\b")
_MONTH_YEAR = re.compile(rf"\b(?P<month>{_MONTH_RE})\s+(?:of\s+)?(?P<year>(?:19|20)\d\d)\b")
_YEAR = re.compile(r"\b(?P<year>(?:19|20)\d\d)\b")
# An amount's words before another in parentheses: the author's conversion.
_CONVERSION = re.compile(r"\s*(?:\(|and\s*\(|,)\s*(?:around|almost|about|approximately|"
                         r"approx\.|c\.|some|nearly|over)?\s*")
_FIGURE = re.compile(rf"(?<![\w/.-])(?:{_NUM})(?![\w/]|[.-]\d)")
# "550 and 165 EUR": what follows a figure that shares the next figure's currency.
_SHARED_CURRENCY = re.compile(rf"\s*(?:and|or|,)\s*(?:{_NUM})\s*(?:{_CUR})\b", re.IGNORECASE)
_SENTENCE_START = re.compile(r"[.!?:;]\s+|[\"“(]\s*")
_TOKEN = re.compile(r"\S+")
_GROUPING = re.compile(r"[ \u00a0\u202f\u2009,]")
# What a date cannot be without: a month's name.
_MONTH_NAME = re.compile(_MONTH_RE)
# Stems of every currency word of ``_CUR``, lower case.
_CURRENCY_STEMS = ("kzt", "tenge", "eur", "usd", "dollar", "rub", "roub")


def _may_hold_a_sum(text: str) -> bool:
    """False only when ``text`` has no currency sign and no currency word, as ``_AMOUNT``
    reads them (ignoring case): much cheaper than asking the pattern, whose case-blind
    alternation the regex engine tries at every position. Under ``re.IGNORECASE`` only
    "ſ" (long s, for "s") matches a letter of these words without lowering to it."""
    if "$" in text or "€" in text or "₸" in text or "ſ" in text:
        return True
    low = text.lower()
    return any(stem in low for stem in _CURRENCY_STEMS)
_QUOTE = re.compile(r"[“\"«](?P<q>[^”\"»\n]{2,200})[”\"»]")
_NAME_WORD = r"[A-Z][a-z'’]*(?:-[A-Z][a-z]+)*(?![-\w])"
_CAPS = re.compile(rf"\b{_NAME_WORD}(?:[ ]+(?:{_NAME_WORD}|of|the|for|and)(?=[ ,.;:)”\"]|$))*"
                   r"(?:[ ]+[A-Z][a-z]+)?")

# Words in a capitalised run that make it an institution, not a person.
_ORG_WORDS = _words("""
court office party foundation coalition service group delegation code ministry committee
prosecutor prosecutor's police union parliament council commission bureau movement
organisation organization association centre center agency department administration
institute school university fund assembly government akimat mazhilis senate otan
atajurt koshe partiyasi dvk kibhr iphr civicus misk facebook instagram telegram youtube
twitter whatsapp
""")
# Institution words that name nothing in particular on their own ("the Code", "the Court").
_GENERIC_ORG = _words("""
court office party foundation coalition service group delegation code ministry committee
police union parliament council commission bureau movement organisation organization
association centre center agency department administration government
""")
# Places of Kazakhstan (and abroad) the briefing names; others are recognised by their
# last word (Region, District, City, Oblast).
_PLACES = _words("""
almaty nur-sultan astana shymkent atyrau kostanay semey zhanaozen uralsk aktobe aktau
karaganda taraz pavlodar petropavlovsk oskemen ust-kamenogorsk kyzylorda taldykorgan
turkestan kokshetau ekibastuz temirtau zhezkazgan moscow russia china kyrgyzstan
uzbekistan europe
""")
_PLACE_TAIL = frozenset({"region", "district", "oblast", "province"})
# Left out everywhere: the country the briefing is about, and the pandemic.
_IGNORED = frozenset({"kazakhstan", "kazakh", "kazakhstani", "kazakhstan's", "covid",
                      "covid-19", "coronavirus", "eu", "un", "i"})
# Titles and descriptions before a name: dropped from the person's run.
_TITLES = _words("""
president activist activists director imam journalist poet political civic social media
administrator judge mr mrs ms dr leader head lawyer blogger defender mayor prime minister
opposition associate human rights the a an international women
""")
# Capitalised words that open sentences or name months/days; never a name on their own.
_OPENERS = _words("""
a an the in on at of for from to by with and or but however after before during since
until while when where which who whose what this that these those there then thus also
another other some many most more much several both no not one two three four five six
seven eight nine ten his her their its our my he she they it we you i as if although
though because so such according among among all any each every either neither dozens
hundreds thousands videos police officers state monitoring around between following
over under into earlier later last next first second third new old article articles
criminal administrative code mass being having among following nearly almost about up
given therefore among against within without despite instead meanwhile yet still
""") | frozenset(MONTHS) | _words(
    "monday tuesday wednesday thursday friday saturday sunday")


def claim_facts(text: str) -> tuple[Fact, ...]:
    """The facts of one claim sentence, in the order they appear. Pure; any string in,
    never raises (a claim with no facts gives ``()``)."""
    taken: list[tuple[int, int]] = []
    facts: list[Fact] = []

    def free(start: int, end: int) -> bool:
        return all(end <= s or start >= e for s, e in taken)

    def add(fact: Fact) -> None:
        facts.append(fact)
        taken.append((fact.start, fact.end))

    if "rticle" in text:  # each rule first asks whether its words are there at all
        for match in _LAW.finditer(text):
            base = match.start("nums")
            for num in _LAW_NUM.finditer(match.group("nums")):
                start, end = base + num.start(), base + num.end()
                # The span covers "Article 489" for the first number, the number alone after.
                span_start = match.start() if num.start() == 0 else start
                add(Fact("law", text[span_start:end], span_start, end, num.group(), True,
                         "a law's article number ('Article N')"))
            taken.append((match.start(), match.end()))

    if _may_hold_a_sum(text):
        previous_amount_end = -10
        for match in _AMOUNT.finditer(text):
            if not (match.group("cur") or match.group("pre")):
                continue
            if not free(match.start(), match.end()):
                continue
            value = _number_value(match.group("num"))
            if value is None:
                continue
            mult = match.group("mult")
            if mult:
                factor = _MULTIPLIERS.get(mult.lower()) or _MULTIPLIERS.get(mult.casefold())
                if factor is None:
                    continue
                value *= factor
            symbol = {"$": "USD", "€": "EUR", "₸": "KZT"}.get(match.group("pre") or "")
            # The pattern matches ignoring case, which also folds letters such as "ſ" that
            # lower() keeps: such a word is looked up folded, and one still unknown is no sum.
            word = (match.group("cur") or "").lower()
            currency = symbol or CURRENCIES.get(word) or CURRENCIES.get(word.casefold())
            if currency is None or not math.isfinite(value):
                continue
            between = text[previous_amount_end:match.start()]
            conversion = bool(_CONVERSION.fullmatch(between))
            number = _format_value(value)
            add(Fact("amount", match.group().strip(), match.start(), match.end(),
                     f"{number} {currency}", not conversion,
                     "a conversion of the sum before it, in parentheses" if conversion
                     else "a sum with its currency"))
            previous_amount_end = match.end()

    _conversions_first(facts)

    if _MONTH_NAME.search(text):
        for pattern, rule in ((_DAY_MONTH, "day and month"), (_MONTH_DAY, "month and day")):
            for match in pattern.finditer(text):
                if not free(match.start(), match.end()):
                    continue
                day = int(match.group("day"))
                if not 1 <= day <= 31:
                    continue
                month = MONTHS[match.group("month").lower()]
                year = match.group("year")
                iso = f"{year}-{month:02d}-{day:02d}" if year else f"--{month:02d}-{day:02d}"
                add(Fact("date", match.group(), match.start(), match.end(), iso, True,
                         f"a date ({rule}{' and year' if year else ''})"))
        for match in _MONTH_YEAR.finditer(text):
            if free(match.start(), match.end()):
                month = MONTHS[match.group("month").lower()]
                add(Fact("date", match.group(), match.start(), match.end(),
                         f"{match.group('year')}-{month:02d}", True, "a month and year"))
    if "19" in text or "20" in text:
        for match in _YEAR.finditer(text):
            if free(match.start(), match.end()):
                add(Fact("date", match.group(), match.start(), match.end(), match.group(),
                         False, "a year on its own (not required: too common)"))

    for match in _FIGURE.finditer(text):
        if not free(match.start(), match.end()):
            continue
        if _SHARED_CURRENCY.match(text, match.end()):
            continue  # "550 and 165 EUR": the first figure shares the second's currency
        value = _number_value(match.group())
        if value is None or value < 10:
            continue
        add(Fact("number", match.group(), match.start(), match.end(), _format_value(value),
                 True, "a figure of two or more digits"))

    if "\"" in text or "“" in text or "«" in text:
        for match in _QUOTE.finditer(text):
            phrase = match.group("q").strip().rstrip(".,;:!?").rstrip()
            if 1 <= len(phrase.split()) <= 10 and free(match.start("q"), match.end("q")):
                start = match.start("q") + match.group("q").index(phrase)
                add(Fact("quote", phrase, start, start + len(phrase), phrase, False,
                         "a short phrase in quotation marks (not required: the page may "
                         "be in another language)"))

    for fact in _names(text, free):
        add(fact)
    facts.sort(key=lambda f: (f.start, f.end))
    seen: set[tuple[str, str]] = set()
    unique = []
    for fact in facts:  # "25 September ... 25 September itself": one fact
        if (fact.kind, fact.value) not in seen:
            seen.add((fact.kind, fact.value))
            unique.append(fact)
    return tuple(unique)


def _conversions_first(facts: list[Fact]) -> None:
    """The briefing converts tenge into euros ("138 900 KZT (around 275 EUR)", and once
    the other way round, "65 EUR (30 000 KZT)"): when a claim has a sum in tenge, its sums
    in EUR or USD are the author's conversions, not required, and the tenge sums are."""
    if not any(f.kind == "amount" and f.value.endswith(" KZT") for f in facts):
        return
    for i, fact in enumerate(facts):
        if fact.kind != "amount":
            continue
        kzt = fact.value.endswith(" KZT")
        if fact.required != kzt:
            facts[i] = Fact(fact.kind, fact.text, fact.start, fact.end, fact.value, kzt,
                            "a sum with its currency (the source's figure)" if kzt else
                            "a conversion of a tenge sum of the claim")


def _names(text: str, free) -> list[Fact]:  # type: ignore[no-untyped-def]
    """Runs of capitalised words, split into person / organisation / place facts."""
    out: list[Fact] = []
    sentence_starts: set[int] | None = None  # read when a lone word needs it
    for match in _CAPS.finditer(text):
        words = [(m.group(), match.start() + m.start(), match.start() + m.end())
                 for m in _TOKEN.finditer(match.group())]
        # Trailing connectors ("of", "the") are not part of a name.
        while words and words[-1][0].lower() in {"of", "the", "for", "and"}:
            words.pop()
        lowered = [w.lower().rstrip("'’s") if w.endswith(("'s", "’s")) else w.lower()
                   for w, _, _ in words]
        if not words:
            continue
        is_org = any(w in _ORG_WORDS for w in lowered)
        if not is_org:
            # Drop titles and sentence openers at the front of a person's run.
            while words and (lowered[0] in _TITLES or lowered[0] in _OPENERS
                             or lowered[0] in _IGNORED):
                words.pop(0)
                lowered.pop(0)
            while words and (lowered[-1] in _IGNORED or lowered[-1] in _OPENERS):
                words.pop()
                lowered.pop()
        else:
            while words and lowered[0] in _OPENERS | {"the"} and lowered[0] not in _ORG_WORDS:
                words.pop(0)
                lowered.pop(0)
        if not words:
            continue
        start, end = words[0][1], words[-1][2]
        surface = text[start:end]
        if surface.endswith(("'s", "’s")):
            end -= 2
            surface = surface[:-2]
        if not free(start, end) or len(surface) < 3:
            continue
        if any(w in _IGNORED for w in lowered) and not is_org:
            continue
        if len(words) == 1 and not is_org and sentence_starts is None:
            sentence_starts = {0} | {m.end() for m in _SENTENCE_START.finditer(text)}
        if len(words) == 1 and not is_org and start in (sentence_starts or ()) \
                and lowered[0] not in _PLACES and not _name_like(text, surface, end):
            continue  # "Detainees had ...": an ordinary word opening the sentence
        if is_org:
            last_org = max(i for i, w in enumerate(lowered) if w in _ORG_WORDS)
            tail = lowered[last_org + 1:]
            if len(tail) >= 2 and all(w[:1].isalpha() and w not in _OPENERS for w in tail):
                # "Nagyz Atajurt Bekzhan Maksutkhan": an institution, then a person.
                p_start, p_end = words[last_org + 1][1], words[-1][2]
                out.append(Fact("person", text[p_start:p_end], p_start, p_end,
                                text[p_start:p_end], True, "a run of capitalised words "
                                "after an institution's name: a person's name"))
                words, lowered = words[:last_org + 1], lowered[:last_org + 1]
                end = words[-1][2]
                surface = text[start:end]
            if len(lowered) == 1 and lowered[0] in _GENERIC_ORG:
                continue
            kind, required, rule = "organisation", False, "a capitalised name with an " \
                "institution word (not required: named in English)"
        elif lowered[-1] in _PLACE_TAIL or all(w in _PLACES for w in lowered):
            kind, required, rule = "place", False, "a known place or a name ending in " \
                "Region/District (not required: named in English)"
        elif any(w in _PLACES for w in lowered):
            kind, required, rule = "place", False, "a known place (not required)"
        else:
            kind, required, rule = "person", True, "a run of capitalised words that is " \
                "not an institution or a place: a person's name"
        out.append(Fact(kind, surface, start, end, surface, required, rule))
    return out


# Endings of the surnames and given names of the region, in Latin spelling.
_NAME_ENDINGS = ("ov", "ev", "ova", "eva", "in", "ina", "yn", "yna", "sky", "skiy",
                 "ski", "uly", "kyzy", "bek", "bay", "bai", "baev", "baeva", "zhan", "yev",
                 "yeva", "enko", "ko", "ich", "ovich", "evich", "ovna", "evna", "dil", "ash")


def _name_like(text: str, word: str, end: int) -> bool:
    """Whether a capitalised word that opens a sentence is a name: it has a surname's ending
    ("Kobeyzinov had ..."), is followed by "'s" ("Agadil's death"), or appears capitalised
    again inside the claim."""
    low = word.lower()
    if low.endswith(_NAME_ENDINGS) or text[end:end + 2] in ("'s", "’s"):
        return True
    return len(re.findall(rf"(?<![.!?]\s)\b{re.escape(word)}\b", text)) > 1


def _number_value(text: str) -> float | None:
    """``"138 900"`` → 138900, ``"1.5"`` → 1.5, ``"30,000"`` → 30000 (English separators:
    a comma groups thousands, a point is decimal)."""
    cleaned = _GROUPING.sub("", text)
    try:
        value = float(cleaned)
    except ValueError:
        return None
    # Hundreds of digits read as infinity: no figure a page could be checked against.
    return value if math.isfinite(value) else None


def _format_value(value: float) -> str:
    """A number as the matcher compares it: ``138900``, ``1.5``."""
    return str(int(value)) if value == int(value) else f"{value:g}"
