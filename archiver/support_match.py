"""Finding a claim's facts in a page's text, across Latin and Cyrillic, English, Russian and
Kazakh.

    Evidence(text).find(fact) -> Match(found, passage, matched, how)

``Evidence`` indexes one text once (any string: never raises) and answers for each
``support_facts.Fact``. The rules, one per kind:

- Names (person, organisation, place). Both sides are reduced to a Latin *key*: Cyrillic
  letters through the table ``CYRILLIC`` (Russian letters as in the BGN/PCGN-like
  romanisation that Kazakhstani names are usually written in; the Kazakh letters ә ғ қ ң ө
  ұ ү һ і to their nearest Latin letter; the Kazakh Latin letters ş ç ı through
  ``KAZAKH_LATIN``, other diacritics dropped), then spelling variants folded (``ye``→``e``,
  ``ya``→``a``, ``yu``→``u``, ``iy``→``i``, ``j``→``y``→``i``, ``kh``→``h``, ``x``→``ks``,
  doubled letters once), so Tulesova = Тулесова, Yevgeniy = Евгений, Mamaj = Мамай,
  Tokayev = Токаев. A Russian word stands for every normal form ``pymorphy3`` gives it and
  for each of its parses put back in the nominative (Тулесовой → Тулесова, Ильяшеву →
  Ильяшев, Билашем → Билаш); a Kazakh word also stands for itself without a case ending
  (``KAZAKH_ENDINGS``: Тулесованың → Тулесова). Only capitalised words of the page are read
  as names. A person is found when the surname (the name's last word) is; an institution or
  place when each of its own words is (generic words such as Court or Party are English and
  are skipped).
- Numbers and sums. A figure that is the day or year of a date on the page ("10 июня") does
  not count as the claim's figure. The page's figures are read with spaces, NBSP, thin
  spaces or apostrophes between groups of three digits, a comma or point before three digits
  read both as a group separator and as a decimal one ("1,500" is 1500 or 1.5), with млн /
  миллион / million / мың / тыс. multipliers and a currency after them (KZT, ₸, тенге,
  теңге, тг, евро, EUR, €, доллар, USD, $, руб). A sum is found when a figure of that value
  is on the page (with its currency, or with none); when it is not, the note names the
  page's sums in that currency ("the page gives 100 000 тенге").
- Dates. A day and a month ("18 августа", "18-го августа", "18 тамызда", "18 August",
  "August 18") with the year after it if the claim has one (a different year is a miss, no
  year on the page is accepted), or "18.08.2020" / "2020-08-18"; a month and year ("в
  январе 2020 года", "January 2020", "01.2020"); a year on its own. Russian months are
  recognised through ``pymorphy3``'s normal form (августа, августе → август), Kazakh ones by
  their stem (тамыз, тамызда), English ones by name.
- Law articles. The number next to an article word: "статья 489", "статьи 489", "ст. 489",
  "489 статьи", "489-бап", "489-бабы", "Article 489".
- Quotes. The phrase's words in order, case and punctuation aside.

``passage`` is the sentence-sized window (``WINDOW`` characters either side, cut at word
boundaries, whitespace collapsed) around the match. Paraphrase and translated sentences are
out of reach: a quote or an organisation named in English is only found on an English page.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from archiver.support_facts import MONTHS, Fact

__all__ = ["CYRILLIC", "KAZAKH_ENDINGS", "KAZAKH_LATIN", "WINDOW", "Evidence", "Match", "name_key",
           "number_values"]

WINDOW = 90

CYRILLIC: dict[str, str] = {
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "e", "ж": "zh",
    "з": "z", "и": "i", "й": "y", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o",
    "п": "p", "р": "r", "с": "s", "т": "t", "у": "u", "ф": "f", "х": "kh", "ц": "ts",
    "ч": "ch", "ш": "sh", "щ": "shch", "ъ": "", "ы": "y", "ь": "", "э": "e", "ю": "yu",
    "я": "ya",
    # Kazakh letters
    "ә": "a", "ғ": "g", "қ": "k", "ң": "n", "ө": "o", "ұ": "u", "ү": "u", "һ": "h",
    "і": "i",
    # Ukrainian/Belarusian letters seen in names
    "є": "ye", "ї": "yi", "ў": "u",
}

# Letters of the Kazakh Latin alphabet (2021) that stand for two Latin letters in the usual
# romanisation (ş = ш = sh); the others lose their diacritics (ū → u, ğ → g).
KAZAKH_LATIN: dict[str, str] = {"ş": "sh", "ç": "ch", "ı": "y"}

# Kazakh case and plural endings, longest first; a word stands for itself without one of
# them when at least three letters remain.
KAZAKH_ENDINGS: tuple[str, ...] = tuple(sorted(set(re.findall(r"\S+", """
ның нің дың дің тың тің ға ге қа ке на не ны ні ды ді ты ті да де та те дан ден тан тен
нан нен мен бен пен ға ге ның ындағы індегі дағы дегі тағы тегі нда нде нан лар лер дар
дер тар тер ларды лерді лардың лердің сы сі ы і
""")), key=lambda e: (-len(e), e)))

_FOLDS: tuple[tuple[str, str], ...] = (
    ("shch", "sh"), ("ye", "e"), ("yo", "o"), ("ya", "a"), ("yu", "u"), ("ia", "a"),
    ("iy", "i"), ("yi", "i"), ("ij", "i"), ("j", "y"), ("y", "i"), ("kh", "h"),
    ("x", "ks"), ("w", "v"), ("q", "k"),
)

_RU_MONTHS = {"январь": 1, "февраль": 2, "март": 3, "апрель": 4, "май": 5, "июнь": 6,
              "июль": 7, "август": 8, "сентябрь": 9, "октябрь": 10, "ноябрь": 11,
              "декабрь": 12}
_KK_MONTHS = {"қаңтар": 1, "ақпан": 2, "наурыз": 3, "сәуір": 4, "мамыр": 5, "маусым": 6,
              "шілде": 7, "тамыз": 8, "қыркүйек": 9, "қазан": 10, "қараша": 11,
              "желтоқсан": 12}
_RU_PREFIXES = frozenset(m[:3] for m in _RU_MONTHS)
_EN_SHORT = {name[:3]: n for name, n in MONTHS.items()}

_CURRENCY = re.compile(
    r"\s*(?P<cur>KZT|₸|тенге|теңге|тг\b|евро|EUR\b|€|доллар\w*|USD\b|\$|руб\w*|RUB\b|"
    r"tenge|euros?\b|dollars?\b)", re.IGNORECASE)
_CURRENCY_CODES = {"kzt": "KZT", "₸": "KZT", "тенге": "KZT", "теңге": "KZT", "тг": "KZT",
                   "tenge": "KZT", "евро": "EUR", "eur": "EUR", "€": "EUR", "euro": "EUR",
                   "euros": "EUR", "usd": "USD", "$": "USD", "dollar": "USD",
                   "dollars": "USD", "rub": "RUB"}
_MULTIPLIER = re.compile(
    r"\s*(?P<mult>млн\.?|миллион\w*|million|млрд\.?|миллиард\w*|billion|тыс\.?|тысяч\w*|"
    r"мың|thousand)", re.IGNORECASE)
_SEP = "[ \u00a0\u202f\u2009\u2007']"
_NUMERAL = re.compile(rf"(?<![\w.,])\d{{1,3}}(?:{_SEP}\d{{3}})+(?:[.,]\d+)?(?![\d])"
                      r"|(?<![\w.,])\d+(?:[.,]\d+)*(?!\d)")
_WORD = re.compile(r"[^\W\d_]+")
# The words of ``_WORD`` that may open with a capital: a letter (the lookbehind after it) that
# no letter precedes, in a cheap superset of the capitals (every upper-case letter is in it;
# Latin and Cyrillic lower case are not), so that the engine skips the lower-case words in C
# instead of handing every word of the page to Python. ``str.isupper`` decides.
_CAPITALISED = re.compile(r"[A-Z\u00c0-\u042f\u0460-\U0010ffff](?<=[^\W\d_])"
                          r"(?<![^\W\d_][\s\S])[^\W\d_]*")
_DIGITS = re.compile(r"\d+")
_SEP_RE = re.compile(_SEP)
_POINT = re.compile(r"[.,]")
_FOUR_DIGITS = re.compile(r"\d{4}")
_LETTERS_BEFORE = re.compile(r"[^\W\d_]+\Z")  # searched with an end: the word before it
# UTF-8 bytes below 0xD9: ASCII, continuation bytes and the first bytes of U+0080-U+063F.
_BELOW_U0640 = bytes(range(0xD9))
# UTF-8 continuation bytes: every byte of a character but its first.
_CONTINUATION = bytes(range(0x80, 0xC0))


def _digit_runs(text: str) -> list[tuple[int, int]]:
    """The span of each run of digits (``\\d+``) of ``text``, in order.

    Every figure and every date the indexes read starts with a digit that no digit precedes
    (each pattern opens with a lookbehind that refuses one), so trying the patterns there
    alone gives the same matches as ``finditer``, which would try them at every position
    (a leading lookbehind defeats the regex engine's scan for a first character).

    Even a plain ``\\d+`` scan costs ~20 ns a character, most of the cost of checking a
    figure against a long page. When the text can hold no digit but 0-9, finding each of
    the ten (``memchr``) finds them several times faster: every other decimal digit in
    Unicode lies at U+0660 or above, outside U+2000-U+2FFF (punctuation, currency and other
    symbols; ``tests/test_fast_paths.py`` checks it), and in UTF-8 the first byte of such a
    character is 0xD9 or more and not 0xE2. A page of Latin and Cyrillic text (Kazakh
    letters included) with quotes and dashes passes; any other falls back to the regex.

    An ASCII text is searched as it is. Any other is searched in the first bytes of its
    characters in UTF-8 (its UTF-8 without the continuation bytes: one byte a character, at
    the character's place), up to its last digit: ``str.find`` in a text of two bytes a
    character looks for the digit's low byte, which the Cyrillic letters U+0430-U+0439 (а
    to й) share with 0-9, so on a Russian page it stops at nearly every letter; in UTF-8,
    0x30-0x39 are the digits and nothing else.
    """
    if text.isascii():
        return _runs(_places(text.find, "0123456789"))
    data = text.encode("utf-8", "surrogatepass")
    if data.translate(None, _BELOW_U0640).strip(b"\xe2"):
        return [m.span() for m in _DIGITS.finditer(text)]
    last = max(map(data.rfind, b"0123456789"))
    first = data[:last + 1].translate(None, _CONTINUATION)
    return _runs(_places(first.find, b"0123456789"))


def _places(find: Callable[[Any, int], int], digits: str | bytes) -> list[int]:
    """Every place of each of ``digits`` that ``find`` (a text's or bytes' own) finds."""
    at: list[int] = []
    for digit in digits:
        i = find(digit, 0)
        while i != -1:
            at.append(i)
            i = find(digit, i + 1)
    return at


def _runs(places: list[int]) -> list[tuple[int, int]]:
    """The spans of the runs of consecutive ``places``, in order."""
    places.sort()
    runs: list[tuple[int, int]] = []
    for i in places:
        if runs and runs[-1][1] == i:
            runs[-1] = (runs[-1][0], i + 1)
        else:
            runs.append((i, i + 1))
    return runs


def _at_runs(pattern: re.Pattern[str], text: str, starts: list[int]
             ) -> Iterator[re.Match[str]]:
    """``pattern.finditer(text)`` for a pattern that can only match at the start of a digit
    run, given the starts of the runs where it can (``_digit_runs``, those of a length it
    reads): the same matches, not overlapping, in order."""
    end = 0
    match = pattern.match
    for start in starts:
        if start < end:
            continue
        found = match(text, start)
        if found is not None:
            yield found
            end = found.end()


_LAW_WORD = (r"(?:стать[яиейю]\w*|ст\.|article|art\.|бап\w*|бабы\w*|бабын\w*|"
             r"стаття\w*)")
_LAW_BEFORE = re.compile(rf"{_LAW_WORD}\s*(?:№\s*)?$", re.IGNORECASE)
_LAW_AFTER = re.compile(rf"\s*-?\s*{_LAW_WORD}", re.IGNORECASE)
# Words that may name a month (``month_of`` decides): a cheap filter for the date scans.
_MONTH_WORD = (r"(?i:январ|феврал|март|апрел|ма[йяюе]|июн|июл|август|сентябр|октябр|ноябр|"
               r"декабр|қаңтар|ақпан|наурыз|сәуір|мамыр|маусым|шілде|тамыз|қыркүйек|қазан|"
               r"қараша|желтоқсан|jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[^\W\d_]*")
_MONTH_FIRST = re.compile(rf"\b(?P<w>{_MONTH_WORD})\s+(?:(?P<y>(?:19|20)\d\d)(?!\d)|"
                          r"(?P<d>[0-3]?\d)(?![\d./:]))")
_DAY_MONTH = re.compile(r"(?<!\d)(?P<d>[0-3]?\d)(?:-?(?:го|ого|е|ші|шы|інші|ыншы|th|st|nd|rd))?"
                        rf"\s+(?P<w>{_MONTH_WORD}\.?)")
_YEAR_MONTH = re.compile(r"(?<!\d)(?P<y>(?:19|20)\d\d)\s*(?:жылғы|жылы|ж\.)?\s+"
                         rf"\b(?P<w>{_MONTH_WORD})")
_NUM_DATE = re.compile(r"(?<![\d.])(?P<d>[0-3]?\d)[./](?P<m>[01]?\d)[./](?P<y>(?:19|20)?\d\d)"
                       r"(?![\d])")
_ISO_DATE = re.compile(r"(?<!\d)(?P<y>(?:19|20)\d\d)-(?P<m>[01]\d)-(?P<d>[0-3]\d)(?!\d)")
_MONTH_NUM_YEAR = re.compile(r"(?<![\d.])(?P<m>[01]?\d)[./](?P<y>(?:19|20)\d\d)(?!\d)")


@dataclass(frozen=True)
class Match:
    """Whether one fact is on the page: ``passage`` (the text around it) and ``matched``
    (the page's words that matched) when found; ``how`` says which rule matched, or, when
    not found, what the page has instead if anything ("the page gives 100 000 тенге")."""

    found: bool
    passage: str | None = None
    matched: str | None = None
    how: str = ""


@functools.cache
def _morph():  # type: ignore[no-untyped-def]
    import pymorphy3

    return pymorphy3.MorphAnalyzer(lang="ru")


#: Whether the Russian analyser failed in this process (its words were then matched without
#: their forms): what was judged since is not the rules' judgement, and is not kept.
_analyser_failed = False


def analyser_failed() -> bool:
    """Whether the Russian analyser has failed in this process (see ``_analyser_failed``)."""
    return _analyser_failed


def _failed() -> None:
    global _analyser_failed
    _analyser_failed = True


def name_key(word: str) -> str:
    """The Latin key of one word: ``name_key("Тулесова") == name_key("Tulesova")``."""
    lowered = unicodedata.normalize("NFC", word.lower())
    out = []
    for ch in lowered:
        if ch in CYRILLIC:
            out.append(CYRILLIC[ch])
        elif ch in KAZAKH_LATIN:
            out.append(KAZAKH_LATIN[ch])
        elif "a" <= ch <= "z":
            out.append(ch)
        else:
            base = unicodedata.normalize("NFKD", ch)[:1]
            if "a" <= base <= "z":
                out.append(base)
    key = "".join(out)
    for old, new in _FOLDS:
        key = key.replace(old, new)
    return re.sub(r"(.)\1+", r"\1", key)


# Russian case endings of a masculine name, as keys (a, u, om, em, e, im, oi) → letters.
_CYR_ENDINGS = {name_key(e): e for e in ("а", "у", "ом", "ем", "е", "ым", "ой")}
_MASCULINE_ENDINGS = tuple(_CYR_ENDINGS)


def _cyrillic(word: str) -> bool:
    return any("\u0400" <= ch <= "\u04ff" for ch in word)


@functools.lru_cache(maxsize=65536)
def _word_keys(word: str) -> tuple[tuple[str, str], ...]:
    """(key, how) for one capitalised word of the page: itself, its Russian normal forms and
    nominatives, itself without a Kazakh ending."""
    keys: dict[str, str] = {}
    own = name_key(word)
    if own:
        keys[own] = "transliterated" if _cyrillic(word) else "as written"
    if _cyrillic(word):
        try:
            parses = _morph().parse(word)
        except Exception:  # an analyser failure must not stop the report
            _failed()
            parses = []
        for parse in parses:
            for form in (parse.normal_form, _nominative(parse)):
                if form:
                    key = name_key(form)
                    if key and key not in keys:
                        keys[key] = f"Russian form of {form.capitalize()} (pymorphy3)"
        low = word.lower()
        for ending in KAZAKH_ENDINGS:
            if low.endswith(ending) and len(low) - len(ending) >= 3:
                key = name_key(low[: -len(ending)])
                if key and key not in keys:
                    keys[key] = f"Kazakh ending -{ending}"
    return tuple(keys.items())


def _nominative(parse) -> str | None:  # type: ignore[no-untyped-def]
    try:
        inflected = parse.inflect({"nomn"})
    except Exception:  # the analyser's failure is a miss, not an error
        return None
    return inflected.word if inflected is not None else None


@functools.lru_cache(maxsize=4096)
def month_of(word: str) -> int | None:
    """The month a word names in English, Russian (any case, through pymorphy3) or Kazakh
    (any ending), else ``None``: ``month_of("августа") == month_of("тамызда") == 8``."""
    low = word.lower()
    if low in MONTHS:
        return MONTHS[low]
    if low.rstrip(".") in _EN_SHORT and (len(low) <= 4):
        return _EN_SHORT[low.rstrip(".")]
    if not _cyrillic(low):
        return None
    for stem, number in _KK_MONTHS.items():
        if low.startswith(stem) and len(low) - len(stem) <= 4:
            return number
    if low[:3] not in _RU_PREFIXES and not low.startswith("ма"):
        return None  # only words that can be a month go to the analyser
    try:
        for parse in _morph().parse(low):
            if parse.normal_form in _RU_MONTHS:
                return _RU_MONTHS[parse.normal_form]
    except Exception:  # the analyser's failure is a miss, not an error
        _failed()
        return None
    return None


def number_values(text: str) -> tuple[float, ...]:
    """The values a written figure can have: ``"138 900"`` → (138900,), ``"1,5"`` → (1.5,),
    ``"1,500"`` → (1500, 1.5), ``"1.500.000"`` → (1500000,)."""
    compact = _SEP_RE.sub("", text)
    if "." not in compact and "," not in compact:
        return (float(compact),)  # most figures: one value, nothing to choose
    values: list[float] = []
    seps = _POINT.findall(compact)
    parts = _POINT.split(compact)
    if not seps:
        values.append(float(compact))
    else:
        if all(len(p) == 3 for p in parts[1:]):
            values.append(float("".join(parts)))  # separators group thousands
        if len(seps) == 1:
            values.append(float(parts[0] + "." + parts[1]))  # a decimal comma or point
        elif len(set(seps)) == 2 and all(len(p) == 3 for p in parts[1:-1]):
            # "1,234.5" / "1.234,5": the last separator is the decimal one
            values.append(float("".join(parts[:-1]) + "." + parts[-1]))
    seen: list[float] = []
    for value in values:
        if value not in seen:
            seen.append(value)
    return tuple(seen)


def _fmt(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:g}"


class Evidence:
    """One text, indexed for fact lookups. Build once per text; ``find`` any number of
    facts. Never raises on any text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._names: dict[str, list[tuple[int, int, str]]] | None = None
        self._figures: list[tuple[int, int, tuple[float, ...], str | None]] | None = None
        self._dates: list[tuple[int, int, int | None, int | None, int | None]] | None = None
        self._spans: list[tuple[int, int]] | None = None

    def _runs(self) -> list[tuple[int, int]]:
        if self._spans is None:
            self._spans = _digit_runs(self.text)
        return self._spans

    # ── the indexes, built on first use ──────────────────────────────────────

    def names(self) -> dict[str, list[tuple[int, int, str]]]:
        """key → [(start, end, how)] for the capitalised words of the text."""
        if self._names is None:
            # The first place of each distinct capitalised word: a page repeats its names,
            # and one passage per fact is all the report shows.
            first: dict[str, tuple[int, int]] = {}
            for match in _CAPITALISED.finditer(self.text):
                word = match.group()
                if word[0].isupper() and word not in first:
                    first[word] = (match.start(), match.end())
            # Words come in the order of their first place, so each key's hits are in
            # order of place as they are added.
            index: dict[str, list[tuple[int, int, str]]] = {}
            for word, (start, end) in first.items():
                for key, how in _word_keys(word):
                    hits = index.get(key)
                    if hits is None:
                        index[key] = [(start, end, how)]
                    else:
                        hits.append((start, end, how))
            self._names = index
        return self._names

    def figures(self) -> list[tuple[int, int, tuple[float, ...], str | None]]:
        """(start, end, values, currency) for each figure of the text."""
        if self._figures is None:
            found = []
            for match in _at_runs(_NUMERAL, self.text, [s for s, _ in self._runs()]):
                try:
                    values = number_values(match.group())
                except ValueError:
                    continue
                end = match.end()
                mult = _MULTIPLIER.match(self.text, end)
                if mult:
                    factor = _multiplier(mult.group("mult"))
                    values = tuple(v * factor for v in values) + values
                    end = mult.end()
                cur = _CURRENCY.match(self.text, end)
                currency = None
                if cur:
                    currency = _currency_code(cur.group("cur"))
                    end = cur.end()
                found.append((match.start(), end, values, currency))
            self._figures = found
        return self._figures

    def dates(self) -> list[tuple[int, int, int | None, int | None, int | None]]:
        """(start, end, year, month, day) for each date or month-and-year of the text."""
        if self._dates is None:
            text = self.text
            # Each pattern reads a whole run of digits of a given length: a day or a month
            # has one or two, a year four; a numeric date has "." or "/" after its day or
            # month, an ISO date "-" after its year. Only those runs are tried.
            runs = self._runs()
            short = [s for s, e in runs if e - s <= 2]
            years = [(s, e) for s, e in runs if e - s == 4]
            dotted = [s for s, e in runs if e - s <= 2 and text[e:e + 1] in (".", "/")]
            found: list[tuple[int, int, int | None, int | None, int | None]] = []
            for match in _at_runs(_DAY_MONTH, text, short):
                month = month_of(match.group("w").rstrip("."))
                day = int(match.group("d"))
                if month and 1 <= day <= 31:
                    year = _year_after(text, match.end()) or _year_before(text, match.start())
                    found.append((match.start(), match.end(), year, month, day))
            for match in _at_runs(_YEAR_MONTH, text, [s for s, _ in years]):
                month = month_of(match.group("w"))
                if month:  # Kazakh order: "2020 жылғы қаңтарда"
                    found.append((match.start(), match.end(), int(match.group("y")), month,
                                  None))
            month_first = [s for s, e in runs if e - s in (1, 2, 4)]
            for match in _month_first(text, month_first):  # "August 18", "января 2020"
                month = month_of(match.group("w"))
                if not month:
                    continue
                if match.group("y"):
                    found.append((match.start(), match.end(), int(match.group("y")), month,
                                  None))
                elif 1 <= (day := int(match.group("d"))) <= 31:
                    year = _year_after(text, match.end())
                    found.append((match.start(), match.end(), year, month, day))
            iso = [s for s, e in years if text[e:e + 1] == "-"]
            for pattern, starts in ((_NUM_DATE, dotted), (_ISO_DATE, iso)):
                for match in _at_runs(pattern, text, starts):
                    day, month = int(match.group("d")), int(match.group("m"))
                    year = int(match.group("y"))
                    year = year + 2000 if year < 100 else year
                    if 1 <= day <= 31 and 1 <= month <= 12:
                        found.append((match.start(), match.end(), year, month, day))
            for match in _at_runs(_MONTH_NUM_YEAR, text, dotted):
                month = int(match.group("m"))
                if 1 <= month <= 12:
                    found.append((match.start(), match.end(), int(match.group("y")), month,
                                  None))
            self._dates = found
        return self._dates

    # ── lookups ──────────────────────────────────────────────────────────────

    def find(self, fact: Fact) -> Match:
        """Whether ``fact`` is in the text, with the passage. Never raises."""
        try:
            finder = {
                "person": self._person, "organisation": self._words,
                "place": self._words, "amount": self._amount, "number": self._number,
                "date": self._date, "law": self._law, "quote": self._quote,
            }.get(fact.kind, self._quote)
            return finder(fact)
        except (ValueError, RecursionError, OverflowError):  # pathological text: no match
            return Match(False, how="the text could not be read for this fact")

    def passage(self, start: int, end: int) -> str:
        """The text around ``[start, end)``, cut at word boundaries, whitespace collapsed."""
        text = self.text
        left = max(0, start - WINDOW)
        right = min(len(text), end + WINDOW)
        if left > 0:
            space = text.find(" ", left, start)
            left = space + 1 if space != -1 else left
        if right < len(text):
            space = text.rfind(" ", end, right)
            right = space if space != -1 else right
        snippet = " ".join(text[left:right].split())
        return ("… " if left > 0 else "") + snippet + (" …" if right < len(text) else "")

    def _hit(self, start: int, end: int, how: str) -> Match:
        return Match(True, self.passage(start, end), " ".join(self.text[start:end].split()),
                     how)

    def _person(self, fact: Fact) -> Match:
        words = [w for w in re.split(r"[\s-]+", fact.value) if w]
        if not words:
            return Match(False)
        surname = words[-1].removesuffix("'s").removesuffix("’s")
        hits = self.names().get(name_key(surname), [])
        if hits:
            start, end, how = hits[0]
            if how == "as written" and self.text[start:end].lower() != surname.lower():
                how = "another Latin spelling"
            return self._hit(start, end, f"the name {surname}: {how}")
        key = name_key(surname)
        if key and key[-1] not in "aeiou":
            # A masculine name the analyser does not know: the name plus a Russian case
            # ending (Агадил → Агадиле, Агадилом).
            for ending in _MASCULINE_ENDINGS:
                hits = self.names().get(key + ending, [])
                if hits:
                    start, end, _ = hits[0]
                    return self._hit(start, end, f"the name {surname}: Russian case ending "
                                                 f"-{_CYR_ENDINGS[ending]}")
        for given in words[:-1]:
            if self.names().get(name_key(given)):
                return Match(False, how=f"only the first name {given} is on the page")
        return Match(False)

    def _words(self, fact: Fact) -> Match:
        from archiver.support_facts import _GENERIC_ORG

        words = [w.removesuffix("'s").removesuffix("’s")
                 for w in re.split(r"[\s-]+", fact.value) if w]
        own = [w for w in words if w.lower() not in _GENERIC_ORG
               and w.lower() not in {"of", "the", "for", "and", "city", "new", "district",
                                     "region", "national", "international"}]
        if not own:
            return self._quote(fact)  # an English institution name: only verbatim
        first: tuple[int, int, str] | None = None
        for word in own:
            hits = self.names().get(name_key(word), [])
            if not hits:
                return Match(False)
            first = first or hits[0]
        assert first is not None
        return self._hit(first[0], first[1], f"{' '.join(own)}: {first[2]}")

    def _amount(self, fact: Fact) -> Match:
        number, currency = fact.value.split(" ")
        value = float(number)
        plain = None
        for start, end, values, cur in self.figures():
            if any(abs(v - value) < 1e-6 for v in values):
                if cur == currency:
                    return self._hit(start, end, f"the sum {_fmt(value)} {currency}")
                if cur is None and plain is None:
                    plain = (start, end)
        if plain is not None:
            return self._hit(plain[0], plain[1],
                             f"the figure {_fmt(value)} (no currency next to it)")
        others = [" ".join(self.text[s:e].split()) for s, e, _, cur in self.figures()
                  if cur == currency]
        if others:
            listed = ", ".join(dict.fromkeys(others[:3]))
            return Match(False, how=f"the page gives {listed}")
        return Match(False)

    def _number(self, fact: Fact) -> Match:
        value = float(fact.value)
        in_dates: list[tuple[int, int]] | None = None
        for start, end, values, _ in self.figures():
            if any(abs(v - value) < 1e-6 for v in values):
                if in_dates is None:
                    in_dates = [(s, e) for s, e, *_ in self.dates()]
                if any(s <= start < e for s, e in in_dates):
                    continue  # the day of "10 июня" is not "10 people"
                return self._hit(start, end, f"the figure {fact.value}")
        return Match(False)

    def _date(self, fact: Fact) -> Match:
        value = fact.value
        if _FOUR_DIGITS.fullmatch(value):
            for start, end in _occurrences(self.text, value, ""):
                return self._hit(start, end, f"the year {value}")
            return Match(False)
        want_y: int | None
        want_d: int | None
        if value.startswith("--"):
            want_y, want_m, want_d = None, int(value[2:4]), int(value[5:7])
        elif value.count("-") == 1:
            want_y, want_m, want_d = int(value[:4]), int(value[5:7]), None
        else:
            want_y, want_m, want_d = int(value[:4]), int(value[5:7]), int(value[8:10])
        other_year = None
        same_month: list[str] = []
        for start, end, year, month, day in self.dates():
            if month != want_m:
                continue
            if want_d is not None and day is not None and day != want_d:
                same_month.append(" ".join(self.text[start:end].split()))
            if want_d is not None and day != want_d:
                continue
            if want_d is None and want_y is not None and year != want_y:
                continue
            if want_y is not None and year is not None and year != want_y:
                other_year = other_year or f"{day or ''} {month:02d} {year}".strip()
                continue
            return self._hit(start, end, "the date" if day else "the month and year")
        if other_year:
            return Match(False, how=f"the page has that day in another year ({other_year})")
        if same_month:
            listed = ", ".join(dict.fromkeys(same_month[:3]))
            return Match(False, how=f"the page gives {listed}")
        return Match(False)

    def _law(self, fact: Fact) -> Match:
        # Find the number first (cheap), then an article word right before or after it.
        if not fact.value:
            return Match(False)
        for start, end in _occurrences(self.text, fact.value, "-"):
            head = _LAW_BEFORE.search(self.text, max(0, start - 24), start)
            if head:
                return self._hit(head.start(), end, f"article {fact.value}")
            tail = _LAW_AFTER.match(self.text, end)
            if tail:
                return self._hit(start, tail.end(), f"article {fact.value}")
        return Match(False)

    def _quote(self, fact: Fact) -> Match:
        words = [re.escape(w) for w in re.findall(r"\w+", fact.value)]
        if not words:
            return Match(False)
        pattern = re.compile(r"\b" + r"\W+".join(words) + r"\b", re.IGNORECASE)
        match = pattern.search(self.text)
        if match:
            return self._hit(match.start(), match.end(), "the words as quoted")
        return Match(False)


def _occurrences(text: str, figure: str, also: str) -> Iterator[tuple[int, int]]:
    """The spans of ``figure`` (not empty) in ``text`` that no digit (nor ``also``, one
    character or none) precedes and no digit follows, not overlapping: what
    ``re.finditer(rf"(?<![\\d{also}]){re.escape(figure)}(?!\\d)", text)`` finds, found with
    ``str.find`` instead of a lookbehind tried at every position of the page."""
    size = len(figure)
    at = text.find(figure)
    while at != -1:
        end = at + size
        if (at == 0 or not (text[at - 1].isdecimal() or text[at - 1] == also)) \
                and (end == len(text) or not text[end].isdecimal()):
            yield at, end
            at = text.find(figure, end)
        else:
            at = text.find(figure, at + 1)


def _month_first(text: str, starts: list[int]) -> Iterator[re.Match[str]]:
    """``_MONTH_FIRST.finditer(text)``, tried only where it can match.

    A match is a whole run of letters (the month word), a whole run of white space and a
    digit: so its start is the start of the letters before the white space before a digit
    run (``starts``: those of one, two or four digits, a day or a year). The pattern opens
    with ``\\b`` and an alternation in any case, which the engine would try at every
    position of the page."""
    match = _MONTH_FIRST.match
    for run in starts:
        space = run
        while space > 0 and text[space - 1].isspace():
            space -= 1
        if space == run:
            continue
        letters = _LETTERS_BEFORE.search(text, max(0, space - 24), space)
        if letters is None:
            continue
        start = letters.start()
        while start > 0 and _letter(text[start - 1]):  # a word longer than the window
            start -= 1
        if (found := match(text, start)) is not None:
            yield found


def _letter(ch: str) -> bool:
    """Whether ``ch`` is in the regex class ``[^\\W\\d_]`` (what ``_WORD`` reads)."""
    return ch.isalnum() and not ch.isdecimal()


def _year_before(text: str, start: int) -> int | None:
    """The year written before a day in Kazakh order: "2020 жылғы 18 тамызда"."""
    match = re.search(r"(?<!\d)(?P<y>(?:19|20)\d\d)\s*(?:жылғы|жылы|ж\.)\s*$",
                      text[max(0, start - 16):start])
    return int(match.group("y")) if match else None


def _year_after(text: str, end: int) -> int | None:
    match = re.match(r"[\s,]*(?P<y>(?:19|20)\d\d)(?!\d)", text[end:end + 12])
    return int(match.group("y")) if match else None


def _multiplier(word: str) -> float:
    low = word.lower()
    if low.startswith(("млрд", "миллиард", "billion")):
        return 1e9
    if low.startswith(("млн", "миллион", "million")):
        return 1e6
    return 1e3


def _currency_code(word: str) -> str:
    low = word.lower()
    if low.startswith("доллар"):
        return "USD"
    if low.startswith("руб"):
        return "RUB"
    return _CURRENCY_CODES.get(low, low.upper())


def iter_keys(text: str) -> Iterator[str]:
    """The name keys of every word of ``text`` (for tests and diagnostics)."""
    for match in _WORD.finditer(text):
        for key, _ in _word_keys(match.group()):
            yield key
