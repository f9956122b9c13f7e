"""The link-history rules (archiver.history): states, outages, what changed, text drift.

Pure functions, so plain values in and out; hypothesis checks the rules' invariants."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archiver.config import CheckSettings
from archiver.history import (
    MIN_HOSTS,
    NEVER_DEAD,
    LinkStatus,
    changes,
    hosts_tested,
    is_offline,
    is_outage,
    link_status,
    normalise_tokens,
    text_fingerprint,
    text_similarity,
)
from archiver.models import ChangeKind, FetchFailure, Judgement, LinkState, Verdict

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
RULES = CheckSettings()  # dead after 3 failures spanning 3 days


@dataclass(frozen=True)
class R:
    verdict: Verdict
    checked_at: datetime
    outage: bool = False


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


def fails(*days: float, verdict: Verdict = Verdict.NOT_FOUND) -> list[R]:
    return [R(verdict, day(d)) for d in days]


# ── link_status ──────────────────────────────────────────────────────────────


def test_never_checked_is_ok_and_unchecked() -> None:
    status = link_status([], RULES)
    assert status.state is LinkState.OK
    assert not status.checked
    assert status.last_verdict is None


def test_failing_once_is_failing_not_dead() -> None:
    status = link_status([R(Verdict.OK, day(-7)), *fails(0)], RULES)
    assert status.state is LinkState.FAILING
    assert status.consecutive_failures == 1
    assert status.failing_since == day(0)
    assert status.last_ok == day(-7)
    assert status.last_verdict is Verdict.NOT_FOUND


def test_configured_failures_spread_over_configured_days_is_dead() -> None:
    status = link_status(fails(0, 1.5, 3), RULES)
    assert status.state is LinkState.DEAD
    assert status.consecutive_failures == 3
    assert status.failing_since == day(0)
    assert status.last_ok is None


def test_three_failures_in_one_day_stay_failing() -> None:
    status = link_status(fails(0, 0.1, 0.2), RULES)
    assert status.state is LinkState.FAILING
    assert status.consecutive_failures == 3
    # a fourth failure once three days have passed since the first makes it dead
    assert link_status(fails(0, 0.1, 0.2, 3), RULES).state is LinkState.DEAD


def test_enough_days_but_too_few_failures_stay_failing() -> None:
    assert link_status(fails(0, 10), RULES).state is LinkState.FAILING


def test_just_under_the_day_span_stays_failing() -> None:
    almost = 3 - 1 / (24 * 3600)
    assert link_status(fails(0, 1, almost), RULES).state is LinkState.FAILING
    assert link_status(fails(0, 1, 3), RULES).state is LinkState.DEAD


def test_rules_come_from_settings() -> None:
    strict = CheckSettings(dead_after=5, dead_after_days=14)
    four_over_month = fails(0, 10, 20, 30)
    assert link_status(four_over_month, RULES).state is LinkState.DEAD
    assert link_status(four_over_month, strict).state is LinkState.FAILING
    assert link_status(fails(0, 10, 20, 30, 31), strict).state is LinkState.DEAD
    instant = CheckSettings(dead_after=1, dead_after_days=0)
    assert link_status(fails(0), instant).state is LinkState.DEAD


def test_a_healthy_check_breaks_the_streak_and_recovers() -> None:
    history = [*fails(0, 1, 2), R(Verdict.REDIRECTED, day(3)), *fails(4, 5)]
    status = link_status(history, RULES)
    assert status.state is LinkState.FAILING  # only 2 failures since the recovery
    assert status.consecutive_failures == 2
    assert status.failing_since == day(4)
    assert status.last_ok == day(3)

    recovered = link_status([*fails(0, 2, 4), R(Verdict.OK, day(5))], RULES)
    assert recovered.state is LinkState.OK
    assert recovered.consecutive_failures == 0
    assert recovered.failing_since is None
    assert recovered.last_ok == day(5)


def test_outage_results_are_ignored_entirely() -> None:
    # an outage neither fails a healthy link ...
    healthy = [R(Verdict.OK, day(0)), R(Verdict.DNS_ERROR, day(1), outage=True)]
    assert link_status(healthy, RULES) == link_status(healthy[:1], RULES)
    assert link_status(healthy, RULES).state is LinkState.OK
    # ... nor breaks a streak of failures, nor counts in it
    streak = [*fails(0, 1.5), R(Verdict.OK, day(2), outage=True), *fails(3)]
    assert link_status(streak, RULES).state is LinkState.DEAD
    only_outages = [R(Verdict.TIMEOUT, day(d), outage=True) for d in range(10)]
    assert link_status([R(Verdict.OK, day(-1)), *only_outages], RULES).state is LinkState.OK


def test_blocked_is_failing_but_never_dead() -> None:
    blocked = fails(0, 5, 10, 15, 20, verdict=Verdict.BLOCKED)
    status = link_status(blocked, RULES)
    assert status.state is LinkState.FAILING
    assert status.consecutive_failures == 5
    assert status.last_verdict is Verdict.BLOCKED


def test_a_dead_link_that_turns_blocked_is_failing_again() -> None:
    history = [*fails(0, 2, 4), R(Verdict.BLOCKED, day(6))]
    assert link_status(history[:3], RULES).state is LinkState.DEAD
    status = link_status(history, RULES)
    assert status.state is LinkState.FAILING
    assert status.failing_since == day(0)  # the streak is not broken by the blocked result


def test_blocked_results_inside_a_streak_do_not_count_as_evidence() -> None:
    history = [*fails(0), R(Verdict.BLOCKED, day(1)), *fails(2)]
    assert link_status(history, RULES).state is LinkState.FAILING
    # two blocked and two not-found over four days: not three pieces of evidence
    history = [*fails(0), *fails(1, 2, verdict=Verdict.BLOCKED), *fails(4)]
    assert link_status(history, RULES).state is LinkState.FAILING
    assert link_status([*history, *fails(5)], RULES).state is LinkState.DEAD


def test_input_order_does_not_matter() -> None:
    history = [R(Verdict.OK, day(0)), *fails(1, 2, 4.5)]
    shuffled = list(reversed(history))
    assert link_status(shuffled, RULES) == link_status(history, RULES)
    assert link_status(history, RULES).state is LinkState.DEAD


# hypothesis: random histories of verdicts on distinct days

verdicts = st.sampled_from(list(Verdict))
histories = st.lists(
    st.tuples(verdicts, st.booleans()), min_size=0, max_size=12
).flatmap(
    # distinct minutes: two checks of one URL never share a timestamp
    lambda items: st.lists(
        st.integers(min_value=0, max_value=60 * 24 * 60),
        min_size=len(items), max_size=len(items), unique=True,
    ).map(lambda minutes: [R(v, T0 + timedelta(minutes=m), outage)
                           for (v, outage), m in zip(items, minutes, strict=True)])
)
rules = st.builds(
    CheckSettings,
    dead_after=st.integers(min_value=1, max_value=5),
    dead_after_days=st.floats(min_value=0, max_value=10),
)


@settings(max_examples=300, deadline=None)
@given(histories, rules)
def test_property_state_follows_the_newest_real_check(history: list[R], rule: CheckSettings
                                                      ) -> None:
    status = link_status(history, rule)
    real = sorted((r for r in history if not r.outage), key=lambda r: r.checked_at)
    if not real:
        assert status == LinkStatus(state=LinkState.OK)
        return
    newest = real[-1]
    assert status.last_verdict is newest.verdict
    assert status.last_checked == newest.checked_at
    assert (status.state is LinkState.OK) == newest.verdict.healthy
    if status.state is LinkState.DEAD:
        assert newest.verdict is not Verdict.BLOCKED
        assert status.consecutive_failures >= rule.dead_after
        assert status.failing_since is not None
        assert newest.checked_at - status.failing_since >= timedelta(days=rule.dead_after_days)
    if status.state is not LinkState.OK:
        streak = real[len(real) - status.consecutive_failures:]
        assert all(not r.verdict.healthy for r in streak)
        assert status.failing_since == streak[0].checked_at
        if status.consecutive_failures < len(real):
            assert real[-status.consecutive_failures - 1].verdict.healthy


@settings(max_examples=200, deadline=None)
@given(histories, st.lists(st.tuples(verdicts, st.floats(0, 60)), max_size=5), rules)
def test_property_outages_change_nothing(history: list[R], extra: list[tuple[Verdict, float]],
                                         rule: CheckSettings) -> None:
    with_outages = history + [R(v, day(d), outage=True) for v, d in extra]
    random.Random(len(with_outages)).shuffle(with_outages)
    assert link_status(with_outages, rule) == link_status(history, rule)


@settings(max_examples=200, deadline=None)
@given(histories, rules, st.sampled_from([v for v in Verdict if not v.healthy]))
def test_property_one_more_failure_never_heals(history: list[R], rule: CheckSettings,
                                               verdict: Verdict) -> None:
    later = max((r.checked_at for r in history), default=T0) + timedelta(days=1)
    before = link_status(history, rule)
    after = link_status([*history, R(verdict, later)], rule)
    assert after.state is not LinkState.OK
    assert after.consecutive_failures == before.consecutive_failures + 1
    if before.state is LinkState.DEAD and verdict not in NEVER_DEAD:
        assert after.state is LinkState.DEAD


# ── outages ──────────────────────────────────────────────────────────────────


def test_no_network_at_all_is_offline_and_an_outage() -> None:
    results = {
        "https://a.example/1": Verdict.DNS_ERROR,
        "https://a.example/2": Verdict.DNS_ERROR,
        "https://b.example/": Verdict.CONNECTION_ERROR,
        "http://c.example/x": Verdict.TIMEOUT,
        "https://d.example/": Verdict.TLS_ERROR,
        "https://e.example/": Verdict.DNS_ERROR,
        "notaurl": Verdict.INVALID_URL,  # involves no network: left out
    }
    assert is_offline(results)
    assert is_outage(results, RULES)


def test_a_few_hosts_all_failing_are_real_failures_not_an_outage() -> None:
    # Four dead domains and no network look alike: below the minimum (5 hosts) the
    # failures count as the links' own, so that dead domains can be declared dead.
    four = {f"https://dead{i}.example/": Verdict.DNS_ERROR for i in range(4)}
    assert hosts_tested(four) == 4 and RULES.outage_min_hosts == MIN_HOSTS == 5
    assert not is_offline(four)
    assert not is_outage(four, RULES)
    assert is_outage(four, replace(RULES, outage_min_hosts=4))
    five = {**four, "https://dead4.example/": Verdict.TIMEOUT}
    assert is_offline(five) and is_outage(five, RULES)
    # the ratio alone is not enough either: 4 of 4 hosts down, but only 4
    four_down = {**four, "https://up.example/": Verdict.OK}
    assert not is_outage(four_down, replace(RULES, outage_ratio=0.5))


def test_one_host_failing_is_not_offline() -> None:
    # A single dead domain must still be able to die.
    results = {f"https://gone.example/{i}": Verdict.DNS_ERROR for i in range(5)}
    assert not is_offline(results)
    assert not is_outage(results, RULES)


def test_ports_count_as_distinct_hosts() -> None:
    results = {
        "http://127.0.0.1:8001/": Verdict.CONNECTION_ERROR,
        "http://127.0.0.1:8002/": Verdict.CONNECTION_ERROR,
    }
    assert hosts_tested(results) == 2
    assert is_offline(results, min_hosts=2)


def test_nearly_every_host_down_is_an_outage() -> None:
    results = {f"https://host{i}.example/page": Verdict.TIMEOUT for i in range(9)}
    results["https://up.example/page"] = Verdict.OK
    assert not is_offline(results)
    assert is_outage(results, RULES)  # 9 of 10 hosts > 0.8


def test_ratio_and_minimum_hosts_come_from_settings() -> None:
    results = {f"https://host{i}.example/": Verdict.DNS_ERROR for i in range(8)}
    results.update({f"https://up{i}.example/": Verdict.NOT_FOUND for i in range(2)})
    assert not is_outage(results, RULES)  # 8 of 10 is not more than 0.8
    assert is_outage(results, replace(RULES, outage_ratio=0.7))
    two_down = {"https://a.example/": Verdict.TIMEOUT, "https://b.example/": Verdict.TIMEOUT,
                "https://c.example/": Verdict.OK}
    assert not is_outage(two_down, replace(RULES, outage_ratio=0.5))  # fewer than 3 hosts down
    assert is_outage(two_down, replace(RULES, outage_ratio=0.5, outage_min_hosts=2))


def test_http_level_failures_are_not_an_outage() -> None:
    results = {f"https://host{i}.example/": Verdict.NOT_FOUND for i in range(10)}
    results.update({f"https://srv{i}.example/": Verdict.SERVER_ERROR for i in range(10)})
    assert not is_offline(results)
    assert not is_outage(results, RULES)


def test_a_host_that_answers_any_url_is_up() -> None:
    results = {}
    for i in range(5):
        results[f"https://host{i}.example/slow"] = Verdict.TIMEOUT
        results[f"https://host{i}.example/fast"] = Verdict.OK
    assert not is_outage(results, RULES)


def test_urls_that_were_already_unreachable_say_nothing_about_the_network() -> None:
    # a resumed run retries only what failed: two dead domains are not "no network"
    results = {"https://dead-a.example/": Verdict.DNS_ERROR,
               "https://dead-b.example/": Verdict.DNS_ERROR}
    assert is_offline(results, min_hosts=2)  # without history it looks like no network
    previous = {url: R(Verdict.DNS_ERROR, day(0)) for url in results}
    assert not is_offline(results, previous=previous, min_hosts=2)
    assert not is_outage(results, RULES, previous=previous)
    # but hosts that answered last time and fail now do count
    many = {f"https://h{i}.example/": Verdict.CONNECTION_ERROR for i in range(6)}
    many.update(results)
    was_up = {url: Verdict.OK for url in many if url not in results}
    assert is_offline(many, previous={**previous, **was_up, "https://h0.example/": None})
    assert is_outage(many, RULES, previous={**previous, **was_up})


def test_outage_accepts_judgements_failures_and_host_overrides() -> None:
    results = {
        "https://a.example/": Judgement(Verdict.DNS_ERROR, "no such host"),
        "https://b.example/": FetchFailure("https://b.example/", Verdict.TIMEOUT, "timed out"),
    }
    assert is_offline(results, min_hosts=2)
    same_host = {url: "one-host" for url in results}
    assert not is_offline(results, same_host, min_hosts=2)
    # The override holds for every test of the outage, each host grouped as it says.
    two = replace(RULES, outage_min_hosts=2)
    assert hosts_tested(results) == 2 and hosts_tested(results, same_host) == 1
    assert is_outage(results, two) and not is_outage(results, two, same_host)
    with pytest.raises(TypeError):
        is_outage({"https://a.example/": "dns_error"}, RULES)


# ── changes ──────────────────────────────────────────────────────────────────

URL = "https://www.example.org/report"


def status_of(history: list[R]) -> LinkStatus:
    return link_status(history, RULES)


def judged(verdict: Verdict, reason: str = "") -> Judgement:
    return Judgement(verdict, reason or verdict.value)


def test_the_weekly_story_of_one_link() -> None:
    """ok → fails → still failing → dead → outage → still dead → recovers."""
    history: list[R] = [R(Verdict.OK, day(0))]
    kinds = []
    plan = [(Verdict.NOT_FOUND, 7), (Verdict.NOT_FOUND, 8), (Verdict.NOT_FOUND, 10),
            (Verdict.NOT_FOUND, 17), (Verdict.OK, 24)]
    for verdict, when in plan:
        before = status_of(history)
        history.append(R(verdict, day(when)))
        after = status_of(history)
        found = changes({URL: before}, {URL: (judged(verdict), after, None)}, RULES,
                        outage=False)
        assert len(found) == 1
        kinds.append(found[0].kind)
    assert kinds == [ChangeKind.NEWLY_FAILING, ChangeKind.STILL_FAILING, ChangeKind.NEWLY_DEAD,
                     ChangeKind.STILL_FAILING, ChangeKind.RECOVERED]


def test_still_failing_says_since_when() -> None:
    before = status_of(fails(0))
    after = status_of(fails(0, 1))
    [change] = changes({URL: before}, {URL: (judged(Verdict.GONE, "410 Gone"), after, None)},
                       RULES)
    assert change.kind is ChangeKind.STILL_FAILING
    assert change.since == day(0)
    assert change.verdict is Verdict.GONE
    assert change.previous_verdict is Verdict.NOT_FOUND
    assert "410 Gone" in change.reason
    assert "2026-01-05" in change.reason


def test_newly_dead_and_recovered_carry_since() -> None:
    dead = status_of(fails(0, 2, 4))
    [change] = changes({URL: status_of(fails(0, 2))},
                       {URL: (judged(Verdict.NOT_FOUND), dead, None)}, RULES)
    assert change.kind is ChangeKind.NEWLY_DEAD
    assert change.since == day(0)
    assert "dead" in change.reason

    healed = status_of([*fails(0, 2, 4), R(Verdict.OK, day(5))])
    [change] = changes({URL: dead}, {URL: (judged(Verdict.OK), healed, 0.97)}, RULES)
    assert change.kind is ChangeKind.RECOVERED
    assert change.since == day(0)
    assert change.previous_verdict is Verdict.NOT_FOUND


def test_drift_only_when_healthy_both_times_and_below_threshold() -> None:
    ok_before = status_of([R(Verdict.OK, day(0))])
    ok_now = status_of([R(Verdict.OK, day(0)), R(Verdict.OK, day(7))])
    [change] = changes({URL: ok_before}, {URL: (judged(Verdict.OK), ok_now, 0.42)}, RULES)
    assert change.kind is ChangeKind.DRIFTED
    assert change.similarity == 0.42
    assert "42%" in change.reason
    assert changes({URL: ok_before}, {URL: (judged(Verdict.OK), ok_now, 0.95)}, RULES) == []
    assert changes({URL: ok_before}, {URL: (judged(Verdict.OK), ok_now, None)}, RULES) == []
    # just recovered: reported as recovered, not drifted
    failing = status_of(fails(0))
    healed = status_of([*fails(0), R(Verdict.OK, day(7))])
    [change] = changes({URL: failing}, {URL: (judged(Verdict.OK), healed, 0.1)}, RULES)
    assert change.kind is ChangeKind.RECOVERED


def test_new_urls_report_only_failures() -> None:
    fresh_ok = status_of([R(Verdict.OK, day(0))])
    fresh_bad = status_of(fails(0))
    found = changes(
        {"https://a.example/": None, "https://b.example/": LinkStatus(LinkState.OK)},
        {"https://a.example/": (judged(Verdict.OK), fresh_ok, None),
         "https://b.example/": (judged(Verdict.NOT_FOUND), fresh_bad, None)},
        RULES,
    )
    assert [(c.url, c.kind) for c in found] == [("https://b.example/", ChangeKind.NEWLY_FAILING)]


def test_an_unchanged_healthy_check_reports_nothing() -> None:
    before = status_of([R(Verdict.OK, day(0))])
    after = status_of([R(Verdict.OK, day(0)), R(Verdict.OK, day(7))])
    current = {f"https://h{i}.example/": (judged(Verdict.OK), after, 1.0) for i in range(5)}
    assert changes(dict.fromkeys(current, before), current, RULES) == []


def test_an_outage_check_reports_no_changes() -> None:
    before = status_of([R(Verdict.OK, day(0))])
    # the results were recorded as outage results, so the status is unchanged
    after = status_of([R(Verdict.OK, day(0)), R(Verdict.DNS_ERROR, day(7), outage=True)])
    assert after == before
    current = {f"https://h{i}.example/": (judged(Verdict.DNS_ERROR), after, None)
               for i in range(5)}
    assert changes(dict.fromkeys(current, before), current, RULES) == []  # detected
    failing_now = status_of(fails(7))
    current_failing = {URL: (judged(Verdict.NOT_FOUND), failing_now, None)}
    assert changes({URL: before}, current_failing, RULES, outage=True) == []  # told


def test_previous_results_as_the_pipeline_passes_them() -> None:
    """``previous`` = last stored results; ``before`` = statuses before the check."""
    history = fails(0, 2)
    before = status_of(history)
    now_dead = status_of([*history, *fails(4)])
    current = {URL: (judged(Verdict.NOT_FOUND), now_dead, None)}
    [change] = changes({URL: history[-1]}, current, RULES, before={URL: before})
    assert change.kind is ChangeKind.NEWLY_DEAD
    assert change.previous_verdict is Verdict.NOT_FOUND
    # already dead before: still failing, not "newly dead" again
    later = status_of([*history, *fails(4, 5)])
    [change] = changes({URL: R(Verdict.NOT_FOUND, day(4))},
                       {URL: (judged(Verdict.NOT_FOUND), later, None)}, RULES,
                       before={URL: now_dead})
    assert change.kind is ChangeKind.STILL_FAILING
    # from stored results alone: a healthy one, then a failure, is newly failing ...
    [change] = changes({URL: R(Verdict.OK, day(0))},
                       {URL: (judged(Verdict.GONE), status_of(fails(7)), None)}, RULES)
    assert change.kind is ChangeKind.NEWLY_FAILING
    assert change.previous_verdict is Verdict.OK
    # ... and a failing one, then a healthy result, is recovered since that failure
    [change] = changes({URL: R(Verdict.TIMEOUT, day(3))},
                       {URL: (judged(Verdict.OK), status_of([R(Verdict.OK, day(7))]), 0.99)},
                       RULES)
    assert change.kind is ChangeKind.RECOVERED
    assert change.since == day(3)
    assert changes({URL: None}, {URL: (judged(Verdict.OK), status_of([R(Verdict.OK, day(7))]),
                                       None)}, RULES, before={URL: LinkStatus(LinkState.OK)}) == []


def test_two_dead_domains_are_not_mistaken_for_an_outage() -> None:
    urls = ["https://dead-a.example/", "https://dead-b.example/"]
    before = status_of(fails(0, verdict=Verdict.DNS_ERROR))
    after = status_of(fails(0, 7, verdict=Verdict.DNS_ERROR))
    current = {url: (judged(Verdict.DNS_ERROR), after, None) for url in urls}
    found = changes(dict.fromkeys(urls, R(Verdict.DNS_ERROR, day(0))), current, RULES)
    assert [c.kind for c in found] == [ChangeKind.STILL_FAILING] * 2
    found = changes({}, current, RULES, before=dict.fromkeys(urls, before))
    assert [c.kind for c in found] == [ChangeKind.STILL_FAILING] * 2
    # the same failures after a healthy check are real failures with two hosts ...
    was_ok = status_of([R(Verdict.OK, day(0))])
    found = changes(dict.fromkeys(urls, R(Verdict.OK, day(0))), current, RULES,
                    before=dict.fromkeys(urls, was_ok))
    assert [c.kind for c in found] == [ChangeKind.NEWLY_FAILING] * 2
    # ... and look like the network went down with five
    urls = [f"https://host{i}.example/" for i in range(5)]
    current = {url: (judged(Verdict.DNS_ERROR), after, None) for url in urls}
    assert changes(dict.fromkeys(urls, R(Verdict.OK, day(0))), current, RULES,
                   before=dict.fromkeys(urls, was_ok)) == []


def test_blocked_still_failing_says_not_dead() -> None:
    before = status_of(fails(0, verdict=Verdict.BLOCKED))
    after = status_of(fails(0, 9, verdict=Verdict.BLOCKED))
    [change] = changes({URL: before},
                       {URL: (judged(Verdict.BLOCKED, "403 Forbidden"), after, None)}, RULES)
    assert change.kind is ChangeKind.STILL_FAILING
    assert "not dead" in change.reason


def test_changes_are_ordered_by_seriousness_and_carry_footnotes() -> None:
    ok_before = status_of([R(Verdict.OK, day(0))])
    current = {
        "https://drift.example/": (judged(Verdict.OK),
                                   status_of([R(Verdict.OK, day(0)), R(Verdict.OK, day(7))]),
                                   0.5),
        "https://new-fail.example/": (judged(Verdict.GONE), status_of(fails(7)), None),
        "https://dead.example/": (judged(Verdict.GONE), status_of(fails(0, 3, 7)), None),
    }
    previous = {
        "https://drift.example/": ok_before,
        "https://new-fail.example/": ok_before,
        "https://dead.example/": status_of(fails(0, 3)),
    }
    found = changes(previous, current, RULES, footnotes={"https://dead.example/": (3, 14)})
    assert [c.kind for c in found] == [ChangeKind.NEWLY_DEAD, ChangeKind.NEWLY_FAILING,
                                       ChangeKind.DRIFTED]
    assert found[0].footnotes == (3, 14)
    assert found[1].footnotes == ()


# ── text similarity ──────────────────────────────────────────────────────────

ARTICLE = (
    "Kazakhstan: the authorities detained peaceful protesters in Almaty and Nur-Sultan. "
    "Human rights defenders were charged with spreading false information during the "
    "state of emergency. The organisation calls for their immediate release. "
)


def test_identical_and_reformatted_texts_are_the_same() -> None:
    assert text_similarity(ARTICLE, ARTICLE) == 1.0
    squashed = "  ".join(ARTICLE.upper().split())
    assert text_similarity(ARTICLE, squashed) == 1.0


def test_dates_times_and_counters_are_ignored() -> None:
    a = f"Published 24 November 2020, 10:32 UTC. 1,204 views. {ARTICLE} Share: 15"
    b = f"Published 3 December 2021, 18:05 UTC. 98,311 views. {ARTICLE} Share: 4,210"
    assert text_similarity(a, b) == 1.0
    assert text_fingerprint(a) == text_fingerprint(b)
    ru_a = "Опубликовано 5 ноября 2020 г. Просмотров: 120. Власти задержали активистов."
    ru_b = "Опубликовано 17 марта 2021 г. Просмотров: 5821. Власти задержали активистов."
    assert text_similarity(ru_a, ru_b) == 1.0
    assert normalise_tokens(ru_a) == ["опубликовано", "г", "просмотров", "власти",
                                      "задержали", "активистов"]


def test_different_texts_score_low_and_edits_score_in_between() -> None:
    other = "Parked domain. This domain is for sale. Contact the registrar for offers today."
    assert text_similarity(ARTICLE, other) < 0.2
    rng = random.Random(3)
    vocabulary = sorted(set(normalise_tokens(ARTICLE + other)))
    words = [rng.choice(vocabulary) for _ in range(3000)]
    long_text = " ".join(words)
    edited = list(words)
    for index in rng.sample(range(len(words)), 30):  # 1% of the words replaced
        edited[index] = "changed"
    score = text_similarity(long_text, " ".join(edited) + " A correction was appended.")
    # 2 * 2970 matched / (3000 + 3004) = 0.9893 at best; difflib may find a little less
    assert 0.97 < score < 0.99
    half = " ".join(words[:1500] + [rng.choice(vocabulary) for _ in range(1500)])
    assert 0.4 < text_similarity(long_text, half) < 0.9


def test_empty_texts() -> None:
    assert text_similarity("", "") == 1.0
    assert text_similarity("2020-11-01 12:00", "") == 1.0  # only numbers: nothing to compare
    assert text_similarity(ARTICLE, "") == 0.0
    assert text_fingerprint("") != text_fingerprint(ARTICLE)


def test_large_texts_use_the_order_blind_fallback() -> None:
    rng = random.Random(7)
    words = [f"w{chr(97 + rng.randrange(26))}{chr(97 + rng.randrange(26))}x" for _ in range(500)]
    a_tokens = [rng.choice(words) for _ in range(70_000)]
    b_tokens = list(a_tokens)
    b_tokens[1000:69_000] = list(reversed(b_tokens[1000:69_000]))  # same words, new order
    score = text_similarity(" ".join(a_tokens), " ".join(b_tokens))
    assert score == 1.0  # the documented upper bound: a multiset overlap
    b_tokens[5000:6000] = ["unrelated"] * 1000
    assert 0.97 < text_similarity(" ".join(a_tokens), " ".join(b_tokens)) < 1.0


def test_large_repetitive_texts_are_not_underrated() -> None:
    # 20,000 tokens of five stop words: every token is "frequent", which leaves difflib's
    # autojunk heuristic no anchor at all; the multiset overlap takes over.
    rng = random.Random(5)
    base = [rng.choice(["the", "of", "and", "to", "in"]) for _ in range(20_000)]
    edited = list(base)
    edited[100] = "changed"
    edited[19_900] = "changed"
    score = text_similarity(" ".join(base), " ".join(edited))
    assert 0.999 < score < 1.0


def test_numbers_inside_words_are_dropped_with_the_word() -> None:
    assert normalise_tokens("Item v2 and 3rd place, 2nd-hand x_1 Ёлка") == [
        "item", "and", "place", "hand", "ёлка"]


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300), st.text(max_size=300))
def test_property_similarity_is_a_fraction_and_reflexive(a: str, b: str) -> None:
    score = text_similarity(a, b)
    assert 0.0 <= score <= 1.0
    assert text_similarity(a, a) == 1.0
    if text_fingerprint(a) == text_fingerprint(b):
        assert score == 1.0


@pytest.mark.parametrize("text", [
    "The report of 12 May 2020: police detained_2 activists; may_be, Monday's news.",
    "Суд 12 мая вынес приговор; қаңтар айында — жаңа іс.",
    "\u017fome KELVIN \u212a sign ﬁne Straße, March marchers",  # fold to ASCII and beyond
    "",
])
def test_fingerprint_is_the_digest_of_the_normalised_tokens(text: str) -> None:
    expected = hashlib.sha256(" ".join(normalise_tokens(text)).encode("utf-8"))
    assert text_fingerprint(text) == expected.hexdigest()[:32]
