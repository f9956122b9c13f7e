"""A link's history across checks: its state, outages, and what changed since the last check.

Pure functions over values; no I/O. The catalog stores every check's result and hands them
here, or, for many links with long histories, their sums (``Streak``, which ``status_of``
judges as ``link_status`` judges the results); the pipeline calls ``changes`` to write
"what changed since the last check".

The rules, in one place:

* **Healthy** means ``Verdict.healthy`` (``ok`` or ``redirected``). Anything else is a failure.
* **Outage results are ignored** entirely: a check in which the network itself was down says
  nothing about any link (see ``is_outage``), so it neither starts, extends nor breaks a streak.
* **Dead** (``LinkState.DEAD``): the newest results form a streak of failures, and at least
  ``settings.dead_after`` of them (``dead_after_days`` apart from first to last) count as
  evidence of death: the three-failures-three-days rule of Wikipedia's dead-link bot. Until
  then the link is **failing**. Three failures on one day stay "failing".
* **Blocked is not dead.** A ``blocked`` verdict (401/403/451, bot challenge, 429 that outlasted
  the retries) says the site refuses the archiver, not that the evidence is gone: a reader with
  a browser may well see it. So a blocked result keeps a link *failing* (it is not healthy
  either, the archiver could not verify the page) but never makes it dead: a link whose newest
  result is ``blocked`` is ``failing`` however long the streak, and blocked results inside a
  streak are not counted as evidence of death (nor do they break the streak).
* **Incomplete is not dead** either, for the same reason: the site answered with content, the
  archiver could only not hold all of it (a cut body), so it is failing, never dead.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from itertools import filterfalse
from typing import Protocol
from urllib.parse import urlsplit

from archiver.config import CheckSettings
from archiver.models import Change, ChangeKind, Judgement, LinkState, Verdict, isoformat

__all__ = [
    "MIN_HOSTS",
    "NEVER_DEAD",
    "NOT_A_NETWORK_TEST",
    "LinkStatus",
    "ResultLike",
    "Streak",
    "changes",
    "host_of",
    "hosts_tested",
    "is_offline",
    "is_outage",
    "link_status",
    "normalise_tokens",
    "status_of",
    "streak_of",
    "text_fingerprint",
    "text_similarity",
]

#: Verdicts that keep a link failing but never make it dead (see the module docstring).
NEVER_DEAD: frozenset[Verdict] = frozenset({Verdict.BLOCKED, Verdict.INCOMPLETE})

#: The fewest distinct hosts whose failures can say "no network" (``is_offline``); the
#: ``[check] outage_min_hosts`` setting, whose default this is, governs runs and checks.
MIN_HOSTS = 5

#: Verdicts that say nothing about the network (the URL itself is unfetchable or refused
#: before any connection), so they are left out of outage counting.
NOT_A_NETWORK_TEST: frozenset[Verdict] = frozenset(
    {Verdict.INVALID_URL, Verdict.PRIVATE_ADDRESS}
)


class ResultLike(Protocol):
    """What ``link_status`` and ``streak_of`` need of one stored check result
    (``catalog.StoredResult`` fits)."""

    @property
    def verdict(self) -> Verdict: ...

    @property
    def checked_at(self) -> datetime: ...

    @property
    def outage(self) -> bool: ...


@dataclass(frozen=True)
class LinkStatus:
    """A link's state after its checks so far.

    ``consecutive_failures`` counts the newest unbroken run of failed (non-outage) checks,
    blocked ones included; ``failing_since`` is the time of the first of them. ``last_verdict``
    is the newest non-outage verdict (``None``: never checked), ``last_ok`` the time of the
    newest healthy check. A link never checked is ``ok``: nothing says it is failing.
    """

    state: LinkState
    consecutive_failures: int = 0
    failing_since: datetime | None = None
    last_verdict: Verdict | None = None
    last_ok: datetime | None = None
    last_checked: datetime | None = None

    @property
    def checked(self) -> bool:
        return self.last_verdict is not None


@dataclass(frozen=True)
class Streak:
    """What a link's state is made from (``status_of``), summed up from its results (outage
    ones left out): its newest verdict and when it was given, when the link was last
    healthy, and the failures since then: how many, when the first was, and, of those that
    count as evidence of death (not ``NEVER_DEAD``), how many and the first's and last's
    times. ``streak_of`` sums up a list of results; the catalog sums up a long history in
    SQL, the same way (``Catalog.link_streaks``). No results: every field empty."""

    newest: Verdict | None = None
    newest_at: datetime | None = None
    last_ok: datetime | None = None
    failures: int = 0
    failing_since: datetime | None = None
    evidence: int = 0
    evidence_first: datetime | None = None
    evidence_last: datetime | None = None


def streak_of(results: Iterable[ResultLike]) -> Streak:
    """The ``Streak`` of ``results`` (any order; equal times keep the order given)."""
    ordered = sorted((r for r in results if not r.outage), key=lambda r: r.checked_at)
    if not ordered:
        return Streak()
    newest = ordered[-1]
    last_ok = next((r.checked_at for r in reversed(ordered) if r.verdict.healthy), None)
    streak: list[ResultLike] = []
    for result in reversed(ordered):
        if result.verdict.healthy:
            break
        streak.append(result)
    streak.reverse()
    evidence = [r for r in streak if r.verdict not in NEVER_DEAD]
    return Streak(
        newest=newest.verdict,
        newest_at=newest.checked_at,
        last_ok=last_ok,
        failures=len(streak),
        failing_since=streak[0].checked_at if streak else None,
        evidence=len(evidence),
        evidence_first=evidence[0].checked_at if evidence else None,
        evidence_last=evidence[-1].checked_at if evidence else None,
    )


def status_of(streak: Streak, settings: CheckSettings) -> LinkStatus:
    """The state of a link whose results sum up to ``streak`` (see the module docstring)."""
    if streak.newest is None:
        return LinkStatus(state=LinkState.OK)
    if not streak.failures:
        return LinkStatus(
            state=LinkState.OK,
            last_verdict=streak.newest,
            last_ok=streak.last_ok,
            last_checked=streak.newest_at,
        )
    dead = (
        streak.newest not in NEVER_DEAD
        and streak.evidence >= max(settings.dead_after, 1)
        and streak.evidence_first is not None and streak.evidence_last is not None
        and streak.evidence_last - streak.evidence_first
        >= timedelta(days=settings.dead_after_days)
    )
    return LinkStatus(
        state=LinkState.DEAD if dead else LinkState.FAILING,
        consecutive_failures=streak.failures,
        failing_since=streak.failing_since,
        last_verdict=streak.newest,
        last_ok=streak.last_ok,
        last_checked=streak.newest_at,
    )


def link_status(results: Iterable[ResultLike], settings: CheckSettings) -> LinkStatus:
    """The state of one link from its check results (any order; outage results ignored).

    See the module docstring for the rules. Never raises for well-formed input.
    """
    return status_of(streak_of(results), settings)


# ── outages ──────────────────────────────────────────────────────────────────


def _verdict_of(value: object) -> Verdict:
    """A ``Verdict`` from a ``Verdict``, a ``Judgement``, a ``FetchFailure``, a stored result."""
    if isinstance(value, Verdict):
        return value
    verdict = getattr(value, "verdict", None)
    if isinstance(verdict, Verdict):
        return verdict
    raise TypeError(f"expected a Verdict or something with a .verdict, got {value!r}")


def host_of(url: str) -> str:
    """The host (with an explicit port, so that servers on one address count apart)."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError:
        return url
    return f"{host}:{port}" if port else host or url


def _network_tests(
    results: Mapping[str, object],
    hosts: Mapping[str, str] | None,
    previous: Mapping[str, object | None] | None,
) -> dict[str, list[Verdict]]:
    """Verdicts grouped by host, leaving out those that can say nothing about the network."""
    by_host: dict[str, list[Verdict]] = {}
    for url, value in results.items():
        verdict = _verdict_of(value)
        if verdict in NOT_A_NETWORK_TEST:
            continue
        before = previous.get(url) if previous else None
        if before is not None and _verdict_of(before).network_level and verdict.network_level:
            continue  # unreachable last time too: no news about the network
        host = hosts.get(url) if hosts else None
        if host is None:
            host = host_of(url)
        by_host.setdefault(host, []).append(verdict)
    return by_host


def hosts_tested(
    results: Mapping[str, object],
    hosts: Mapping[str, str] | None = None,
    *,
    previous: Mapping[str, object | None] | None = None,
) -> int:
    """How many distinct hosts ``results`` tested the network on (as ``is_offline`` counts
    them): fewer than the minimum, and the outage test does not apply."""
    return len(_network_tests(results, hosts, previous))


def is_offline(
    results: Mapping[str, object],
    hosts: Mapping[str, str] | None = None,
    *,
    previous: Mapping[str, object | None] | None = None,
    min_hosts: int = MIN_HOSTS,
) -> bool:
    """True when nothing could be reached at all: every URL of a check failed at network level
    (timeout, DNS, connection, TLS: a laptop offline, a sandbox, a captive portal), on at least
    ``min_hosts`` distinct hosts (default ``MIN_HOSTS``, 5).

    ``results`` maps each URL to its ``Verdict`` (or a ``Judgement``/``FetchFailure``/stored
    result); ``hosts`` optionally overrides the host of a URL. Left out of the count:
    ``invalid_url`` and ``private_address`` (they involve no network), and, when ``previous``
    (URL → last verdict or stored result) is given, URLs that already failed at network level
    last time: a resumed run that retries only its dead domains is not "offline". A few hosts
    are never "offline": with a handful of hosts, a network that is down and domains that died
    look alike, and calling it offline would keep those domains from ever being declared dead
    (their failures are recorded as real results instead). Five hosts all failing at once,
    none of them already failing before, is very unlikely without a network fault.
    """
    return _offline(_network_tests(results, hosts, previous), min_hosts)


def _offline(by_host: Mapping[str, list[Verdict]], min_hosts: int) -> bool:
    """``is_offline`` of the network tests ``by_host`` (``_network_tests``)."""
    if len(by_host) < max(min_hosts, 2):
        return False
    return all(v.network_level for verdicts in by_host.values() for v in verdicts)


def is_outage(
    results: Mapping[str, object],
    settings: CheckSettings,
    hosts: Mapping[str, str] | None = None,
    *,
    previous: Mapping[str, object | None] | None = None,
) -> bool:
    """True when a check's failures say more about the network than about the links.

    An outage is either ``is_offline`` (with ``settings.outage_min_hosts`` as its minimum) or:
    at least ``settings.outage_min_hosts`` distinct hosts, making up more than
    ``settings.outage_ratio`` of the hosts checked, failed at network level on every one of
    their URLs at once (``hosts`` and ``previous`` as for ``is_offline``). An outage check
    changes no link's state (its results are recorded with ``outage=True`` and
    ``link_status`` ignores them).
    """
    by_host = _network_tests(results, hosts, previous)
    if _offline(by_host, settings.outage_min_hosts):
        return True
    if not by_host:
        return False
    down = sum(1 for verdicts in by_host.values() if all(v.network_level for v in verdicts))
    return down >= settings.outage_min_hosts and down / len(by_host) > settings.outage_ratio


# ── what changed ─────────────────────────────────────────────────────────────

_KIND_ORDER = {
    ChangeKind.NEWLY_DEAD: 0,
    ChangeKind.NEWLY_FAILING: 1,
    ChangeKind.STILL_FAILING: 2,
    ChangeKind.RECOVERED: 3,
    ChangeKind.DRIFTED: 4,
}


def _day(moment: datetime | None) -> str:
    return isoformat(moment)[:10] if moment else "?"


def _failing_reason(judgement: Judgement, status: LinkStatus, kind: ChangeKind) -> str:
    checks = status.consecutive_failures
    plural = "check" if checks == 1 else "checks"
    cause = judgement.reason or judgement.verdict.value
    if kind is ChangeKind.NEWLY_DEAD:
        return f"{cause}; dead: failed on {checks} {plural} since {_day(status.failing_since)}"
    if kind is ChangeKind.NEWLY_FAILING:
        return f"{cause}; failing (not yet dead)"
    note = "dead" if status.state is LinkState.DEAD else "failing"
    if judgement.verdict in NEVER_DEAD:
        note = "blocked, not dead: the site refuses the archiver"
    return f"{cause}; {note} since {_day(status.failing_since)} ({checks} {plural})"


def _prior(
    url: str,
    previous: Mapping[str, LinkStatus | ResultLike | None],
    before: Mapping[str, LinkStatus | None] | None,
) -> LinkStatus | None:
    """A URL's status before this check: ``before``'s when given, else what ``previous``
    holds (a status, or a stored result, of which only the verdict is known)."""
    if before is not None and before.get(url) is not None:
        return before[url]
    value = previous.get(url)
    if value is None or isinstance(value, LinkStatus):
        return value
    if value.verdict.healthy:
        return LinkStatus(LinkState.OK, last_verdict=value.verdict, last_ok=value.checked_at,
                          last_checked=value.checked_at)
    return LinkStatus(LinkState.FAILING, consecutive_failures=1, failing_since=value.checked_at,
                      last_verdict=value.verdict, last_checked=value.checked_at)


def changes(
    previous: Mapping[str, LinkStatus | ResultLike | None],
    current: Mapping[str, tuple[Judgement, LinkStatus, float | None]],
    settings: CheckSettings,
    *,
    before: Mapping[str, LinkStatus | None] | None = None,
    outage: bool | None = None,
    footnotes: Mapping[str, tuple[int, ...]] | None = None,
) -> list[Change]:
    """What changed since the previous check.

    ``previous`` maps a URL to its last result before this check (a stored result such as
    ``catalog.last_result(url)``, or a ``LinkStatus``; ``None``: first check of that URL).
    ``before`` maps a URL to its ``LinkStatus`` before this check
    (``catalog.link_statuses(urls, settings, started)``); when given it is preferred, and it is
    needed to tell a link that just died from one that was already dead (from a lone result,
    a failing link is taken to have been "failing"). ``current`` maps a URL to this check's
    ``Judgement``, its ``LinkStatus`` after recording it, and the text similarity to the last
    capture (``None`` when not compared). One ``Change`` per URL that changed, most serious
    first (newly dead, newly failing, still failing, recovered, drifted), otherwise in the
    order of ``current``:

    * healthy now, failing or dead before → ``recovered``;
    * healthy both times and similarity below ``settings.drift_threshold`` → ``drifted``;
    * dead now, not dead before → ``newly_dead``;
    * failing now, healthy (or unchecked) before → ``newly_failing``;
    * failing now and before → ``still_failing`` with ``since`` (reported on every check
      while it lasts; filter on ``kind`` for "only news").

    A new URL that is healthy is not a change. ``outage`` makes the result empty: an outage is
    reported on its own. Pass the value the results were recorded with; when ``None`` it is
    computed with ``is_outage`` from the current and previous verdicts.
    ``footnotes`` fills each change's ``footnotes``.
    """
    if outage is None:
        last = {url: _prior(url, previous, before) for url in current}
        outage = is_outage(
            {url: item[0] for url, item in current.items()},
            settings,
            previous={u: s.last_verdict for u, s in last.items() if s and s.last_verdict},
        )
    if outage:
        return []
    found: list[Change] = []
    for url, (judgement, status, similarity) in current.items():
        prior = _prior(url, previous, before)
        before_state = prior.state if prior is not None and prior.checked else None
        before_verdict = prior.last_verdict if prior is not None else None
        base = Change(
            url=url,
            kind=ChangeKind.STILL_FAILING,
            verdict=judgement.verdict,
            previous_verdict=before_verdict,
            similarity=similarity,
            footnotes=tuple(footnotes.get(url, ())) if footnotes else (),
        )

        if status.state is LinkState.OK:
            if prior is not None and before_state in (LinkState.FAILING, LinkState.DEAD):
                was = before_verdict.value if before_verdict else "failing"
                found.append(replace(
                    base,
                    kind=ChangeKind.RECOVERED,
                    since=prior.failing_since,
                    reason=f"answers again (was {was} since {_day(prior.failing_since)})",
                ))
            elif (
                before_state is LinkState.OK
                and similarity is not None
                and similarity < settings.drift_threshold
            ):
                found.append(replace(
                    base,
                    kind=ChangeKind.DRIFTED,
                    reason=f"text {similarity:.0%} similar to the last capture",
                ))
            continue

        if status.state is LinkState.DEAD and before_state is not LinkState.DEAD:
            kind = ChangeKind.NEWLY_DEAD
        elif before_state in (None, LinkState.OK):
            kind = ChangeKind.NEWLY_FAILING
        else:
            kind = ChangeKind.STILL_FAILING
        found.append(replace(
            base,
            kind=kind,
            since=status.failing_since,
            reason=_failing_reason(judgement, status, kind),
        ))

    found.sort(key=lambda c: _KIND_ORDER[c.kind])  # stable: keeps ``current``'s order within
    return found


# ── content drift ────────────────────────────────────────────────────────────

_WORD_WITHOUT_DIGITS = re.compile(r"(?<!\w)[^\W\d]+(?!\w)")

# Month and weekday names change with every "updated on" line; they are dropped like numbers.
_CALENDAR_TEXT = """
    january february march april may june july august september october november december
    jan feb mar apr jun jul aug sep sept oct nov dec
    monday tuesday wednesday thursday friday saturday sunday mon tue wed thu fri sat sun
    am pm utc gmt
    январь февраль март апрель май июнь июль август сентябрь октябрь ноябрь декабрь
    января февраля марта апреля мая июня июля августа сентября октября ноября декабря
    янв фев мар апр июн июл авг сен сент окт ноя дек
    понедельник вторник среда четверг пятница суббота воскресенье
    пн вт ср чт пт сб вс
    қаңтар ақпан наурыз сәуір мамыр маусым шілде тамыз қыркүйек қазан қараша желтоқсан
"""
_CALENDAR_WORDS = frozenset(_CALENDAR_TEXT.split())
_ASCII_WORD_WITHOUT_DIGITS = re.compile(rb"(?<!\w)[^\W\d]+(?!\w)")
_CALENDAR_BYTES = frozenset(word.encode() for word in _CALENDAR_WORDS if word.isascii())

#: Beyond this many tokens (after trimming the common start and end), the order-aware match
#: would take seconds; a multiset overlap is used instead (documented in ``text_similarity``).
_MAX_ALIGNED_TOKENS = 60_000
#: Above this many pairs of equal tokens, difflib's "autojunk" heuristic keeps the match fast.
_EXACT_PAIR_BUDGET = 1_000_000
#: ... unless the frequent tokens make up more than this share of the text: too few anchors.
_MAX_JUNK_SHARE = 0.9


def normalise_tokens(text: str) -> list[str]:
    """The words of ``text`` as compared for drift: case-folded, without numbers (dates, times,
    counters, anything with a digit), month and weekday names (English, Russian, Kazakh);
    whitespace and punctuation do not count."""
    return list(_words(text))


def _words(text: str) -> Iterator[str]:
    # The regex takes whole words without a digit in one C-speed pass, and filterfalse drops
    # the calendar's without a Python step per word: a per-word test in Python cost more
    # than parsing the page.
    return filterfalse(_CALENDAR_WORDS.__contains__, _WORD_WITHOUT_DIGITS.findall(text.casefold()))


def text_fingerprint(text: str) -> str:
    """A short digest of ``normalise_tokens(text)``: equal fingerprints mean similarity 1.0."""
    folded = text.casefold()
    if folded.isascii():
        # The same words found in bytes, where the regex needs no Unicode tables: on ASCII,
        # \w and \d mean the same either way, and the joined words encode to these bytes.
        joined = b" ".join(filterfalse(_CALENDAR_BYTES.__contains__,
                                       _ASCII_WORD_WITHOUT_DIGITS.findall(folded.encode())))
    else:
        joined = " ".join(filterfalse(_CALENDAR_WORDS.__contains__,
                                      _WORD_WITHOUT_DIGITS.findall(folded))).encode("utf-8")
    return hashlib.sha256(joined).hexdigest()[:32]


def text_similarity(a: str, b: str) -> float:
    """How alike two extracted texts are, in [0, 1] (1.0: the same words in the same order).

    The measure is difflib's ratio over normalised word tokens (``normalise_tokens``):
    ``2 * M / (len(a) + len(b))`` where M is the number of tokens in matching blocks. The
    common leading and trailing tokens are matched directly, and only the middle goes through
    ``SequenceMatcher``. That runs exact while the middles hold fewer than a million pairs of
    equal tokens (any page up to ~5,000 words, and short repetitive ones); beyond, difflib's
    "autojunk" heuristic ignores tokens making up over 1% of the text as match anchors, which
    measured within 0.01 of the exact ratio on prose with up to 90% such tokens (see
    ``bench/bench_catalog.py``). Past that (a huge text of a few words repeated), or when the
    differing middles exceed 60,000 tokens each, the order-blind multiset overlap (difflib's
    ``quick_ratio``, an upper bound of the ratio) is used instead. Two empty texts are
    identical (1.0); one empty text against a non-empty one scores 0.0.
    """
    return _token_similarity(normalise_tokens(a), normalise_tokens(b))


def _token_similarity(ta: Sequence[str], tb: Sequence[str]) -> float:
    total = len(ta) + len(tb)
    if total == 0:
        return 1.0
    if not ta or not tb:
        return 0.0
    if ta == tb:
        return 1.0
    limit = min(len(ta), len(tb))
    head = 0
    while head < limit and ta[head] == tb[head]:
        head += 1
    tail = 0
    while tail < limit - head and ta[-1 - tail] == tb[-1 - tail]:
        tail += 1
    mid_a = ta[head : len(ta) - tail]
    mid_b = tb[head : len(tb) - tail]
    return min(1.0, 2.0 * (head + tail + _matched(mid_a, mid_b)) / total)


def _matched(a: Sequence[str], b: Sequence[str]) -> int:
    """How many tokens of ``a`` and ``b`` match, in order (see ``text_similarity``)."""
    if not a or not b:
        return 0
    count_a, count_b = Counter(a), Counter(b)
    if min(len(a), len(b)) <= _MAX_ALIGNED_TOKENS:
        # SequenceMatcher's work grows with the pairs of equal tokens: below the budget run
        # it exact; above, ignore very frequent tokens as anchors ("autojunk"), which stays
        # accurate while enough rarer tokens remain to anchor the matches.
        pairs = sum(n * count_b[token] for token, n in count_a.items())
        if pairs <= _EXACT_PAIR_BUDGET:
            matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
            return sum(block.size for block in matcher.get_matching_blocks())
        popular = len(b) // 100 + 1  # difflib's autojunk rule
        junk = sum(n for n in count_b.values() if n > popular)
        if junk <= _MAX_JUNK_SHARE * len(b):
            matcher = difflib.SequenceMatcher(None, a, b, autojunk=True)
            return sum(block.size for block in matcher.get_matching_blocks())
    return sum((count_a & count_b).values())
