"""The retry policy, in one place: what is retried, how long to wait, when to stop.

One predicate decides (``retryable``): timeouts, dropped or reset connections, HTTP 408, 429
and 5xx are retried, and so is an answer whose body was cut by a stall or a dropped
connection (``truncated`` ``"time"`` or ``"disconnect"``: a timeout or drop mid-body; a body
cut at ``max_body`` is not, it would be cut again); DNS failures, TLS failures, refusals by
the address guard, invalid URLs and every other status are not. Waits grow exponentially
with full jitter (``backoff_base * 2**n``, capped at ``backoff_max``); a ``Retry-After``
header (seconds or an HTTP-date) replaces the backoff, capped at ``retry_after_cap``. No wait
may run past the URL's deadline: when the next wait would, the policy stops and the last
outcome stands.

tenacity does the looping; it stays private to this module so that the rest of the code sees
one function, ``run_with_retries``.

Testing: ``testing()`` (a context manager) or the environment variable ``ARCHIVER_TESTING=1``
turns every sleep off, so retry tests run in milliseconds; ``testing(False)`` turns sleeping
back on inside a test that must show the wait really happens.
"""

from __future__ import annotations

import contextlib
import os
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol, TypeVar

import anyio
import tenacity

__all__ = [
    "RETRYABLE_STATUSES",
    "Outcome",
    "RetryPolicy",
    "backoff",
    "parse_retry_after",
    "retryable",
    "run_with_retries",
    "testing",
]

RETRYABLE_STATUSES = frozenset({408, 429})

# Failure kinds (the fetcher's vocabulary) that a later attempt may cure.
RETRYABLE_KINDS = frozenset({"timeout", "connection_error"})

# WARC-Truncated reasons of a body cut by the network (a stall, a drop) rather than by a bound.
RETRYABLE_TRUNCATIONS = frozenset({"time", "disconnect"})


class Outcome(Protocol):
    """What one attempt produced, as far as the policy cares."""

    @property
    def kind(self) -> str:
        """``"response"`` or a failure kind (``"timeout"``, ``"dns_error"``, ...)."""
        ...

    @property
    def status(self) -> int | None: ...

    @property
    def retry_after(self) -> str | None:
        """The raw ``Retry-After`` header of a response, if any."""
        ...

    @property
    def truncated(self) -> str | None:
        """The ``WARC-Truncated`` reason of a response whose body was cut, else ``None``."""
        ...


OutcomeT = TypeVar("OutcomeT", bound=Outcome)


def retryable(outcome: Outcome) -> bool:
    """The one predicate: may another attempt give a different answer?"""
    if outcome.kind == "response":
        status = outcome.status or 0
        if outcome.truncated in RETRYABLE_TRUNCATIONS:
            return True
        return status in RETRYABLE_STATUSES or 500 <= status <= 599
    return outcome.kind in RETRYABLE_KINDS


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP-date; ``None`` if absent
    or unparseable. A date in the past means "now" (0)."""
    if value is None:
        return None
    value = value.strip()
    # ASCII digits only (RFC 9110's DIGIT): str.isdigit holds for '²' too, which float
    # refuses; such a value falls through to the date, which it is not either.
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now or datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())


def backoff(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Full-jitter exponential backoff after failed attempt number ``attempt`` (1-based)."""
    ceiling = min(cap, base * (2 ** (attempt - 1)))
    return (rng or random).uniform(0, ceiling) if ceiling > 0 else 0.0


@dataclass(frozen=True)
class RetryPolicy:
    """The numbers: ``retries`` after the first attempt, backoff and Retry-After caps."""

    retries: int = 3
    backoff_base: float = 1.0
    backoff_max: float = 30.0
    retry_after_cap: float = 120.0

    def wait(self, attempt: int, outcome: Outcome) -> float:
        """Seconds to wait after failed attempt ``attempt`` that produced ``outcome``."""
        advised = parse_retry_after(outcome.retry_after) if outcome.kind == "response" else None
        if advised is not None:
            return min(advised, self.retry_after_cap)
        return backoff(attempt, self.backoff_base, self.backoff_max)


_testing: bool | None = None


@contextlib.contextmanager
def testing(enabled: bool = True) -> Iterator[None]:
    """Within the block, sleeps between attempts are skipped (``enabled``) or forced on."""
    global _testing
    previous, _testing = _testing, enabled
    try:
        yield
    finally:
        _testing = previous


def _sleeps_off() -> bool:
    if _testing is not None:
        return _testing
    return os.environ.get("ARCHIVER_TESTING") == "1"


async def run_with_retries(
    attempt: Callable[[int], Awaitable[OutcomeT]],
    policy: RetryPolicy,
    *,
    deadline: Callable[[], float],
    on_outcome: Callable[[int, OutcomeT, float], None] | None = None,
    cleanup: Callable[[OutcomeT], None] | None = None,
) -> tuple[OutcomeT, int]:
    """Call ``attempt(n)`` (n = 1, 2, ...) until it gives a non-retryable outcome, the retries
    are spent, or the next wait would pass ``deadline()`` (a ``time.monotonic()`` value, read
    after each attempt because the caller's clock may start late).

    Returns the last outcome and the number of attempts. ``on_outcome(n, outcome, waited)`` is
    called after each attempt with the seconds slept before it; ``cleanup(outcome)`` on each
    outcome that is superseded by a retry. Exceptions raised by ``attempt`` itself propagate
    (they are bugs or run-stopping errors, not URL failures).
    """
    waited_before: dict[int, float] = {1: 0.0}

    def _wait(state: tenacity.RetryCallState) -> float:
        outcome = state.outcome.result()  # type: ignore[union-attr]
        seconds = policy.wait(state.attempt_number, outcome)
        waited_before[state.attempt_number + 1] = 0.0 if _sleeps_off() else seconds
        return seconds

    def _stop(state: tenacity.RetryCallState) -> bool:
        if state.attempt_number > policy.retries:
            return True
        upcoming = state.upcoming_sleep if not _sleeps_off() else 0.0
        return time.monotonic() + upcoming >= deadline()

    async def _sleep(seconds: float) -> None:
        if seconds > 0 and not _sleeps_off():
            await anyio.sleep(seconds)

    last: OutcomeT | None = None
    count = 0

    async def _one() -> OutcomeT:
        nonlocal last, count
        count += 1
        if last is not None and cleanup is not None:
            cleanup(last)
        outcome = await attempt(count)
        last = outcome
        if on_outcome is not None:
            on_outcome(count, outcome, waited_before.get(count, 0.0))
        return outcome

    # Most first attempts are final: they are made without building the retry machinery.
    # Otherwise tenacity takes over with that first outcome as its own attempt 1, so its
    # waits and stops are exactly as if it had made it.
    first = await _one()
    if not retryable(first):
        return first, count
    pending: list[OutcomeT] = [first]

    async def _next() -> OutcomeT:
        return pending.pop() if pending else await _one()

    retrying = tenacity.AsyncRetrying(
        retry=tenacity.retry_if_result(retryable),
        wait=_wait,
        stop=_stop,
        sleep=_sleep,
        retry_error_callback=lambda state: state.outcome.result(),  # type: ignore[union-attr]
        reraise=True,
    )

    result: Any = await retrying(_next)
    return (result if result is not None else last), count  # type: ignore[return-value]
