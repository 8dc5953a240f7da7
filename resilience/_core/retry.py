"""Retry's decision: after an attempt failed, wait how long and try again, or stop.

A call's retries are a small state (:class:`RetryState`: which attempt this is, when the
first began, the last delay) and one decision per failed attempt, over the settings in
force (:class:`RetryRules`, immutable: a reconfigured Retry swaps in new rules, and a
call in progress keeps deciding by the ones it started with, read once per decision).

The decision, in order (docs/retry.md, "What happens on each attempt"):

1. is the outcome worth another attempt at all? An integration running the call may
   forbid or allow it (a POST must not be sent twice); otherwise ``retry_on`` (or
   ``retry_if_result``) decides, and a refusal by another policy that gives no idea when
   it would accept (``retry_after`` is None) is not retried: trying again would only
   repeat it. Not worth it: :data:`NOT_RETRYABLE`, and the outcome goes through as is.
2. the last attempt: give up.
3. the delay is the backoff's, raised to the outcome's ``retry_after`` hint: never sooner
   than the hint, since an attempt before it would be refused again. A hint longer than
   the backoff's ``max`` means this Retry would never wait for it: give up now.
4. a wait that would pass the deadline: give up now, rather than sleep in vain.
5. a retry budget that refuses: give up.

The answer is :class:`Wait` or :class:`GiveUp` (with the reason, for the note on the
re-raised exception). The drivers in ``resilience._policies.retry`` sleep, emit the
events and add the note; nothing here waits or does I/O. The budget is an engine behind
the small :class:`RetryBudgetLike` protocol (in process, or shared through a store).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final, Protocol, runtime_checkable

from ..errors import ResilienceError
from .backoff import Backoff
from .call import CURRENT_CALL
from .classify import judge
from .clock import Clock

__all__ = [
    "NOT_RETRYABLE",
    "GiveUp",
    "RetryBudgetLike",
    "RetryRules",
    "RetryState",
    "Wait",
    "after_exception",
    "after_result",
    "hint_of",
]


@runtime_checkable
class RetryBudgetLike(Protocol):
    """What Retry needs from a budget: count calls, and allow or refuse each retry."""

    def record_call(self) -> None: ...

    def try_retry(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class RetryRules:
    """A Retry's settings, checked (by the policy) and frozen."""

    attempts: int
    backoff: Backoff
    retry_on: Callable[[BaseException], object]
    retry_if_result: Callable[[Any], object] | None
    deadline: float | None
    budget: RetryBudgetLike | None


class RetryState:
    """One call's retries: the attempt running now (1 for the first), when the first
    began (read only with a deadline), and the delay before the current attempt."""

    __slots__ = ("attempt", "previous", "started")

    def __init__(self, started: float) -> None:
        self.attempt = 1
        self.previous = 0.0
        self.started = started


@dataclass(frozen=True, slots=True)
class Wait:
    """Sleep ``delay`` seconds, then run the next attempt."""

    delay: float


@dataclass(frozen=True, slots=True)
class GiveUp:
    """Stop: the last outcome is the call's. ``reason`` completes "Retry ... gave up: "."""

    reason: str


class _NotRetryable:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NOT_RETRYABLE"


#: The outcome is not one to retry: it goes through unchanged (no note, no event).
NOT_RETRYABLE: Final = _NotRetryable()

Decision = Wait | GiveUp | _NotRetryable


def hint_of(exc: BaseException) -> float | None:
    """An exception's ``retry_after`` in seconds (a number or a timedelta; negative counts
    as 0), or None if it has none that makes sense."""
    hint = getattr(exc, "retry_after", None)
    if isinstance(hint, timedelta):
        hint = hint.total_seconds()
    if isinstance(hint, (int, float)) and not isinstance(hint, bool) and math.isfinite(hint):
        return max(0.0, float(hint))
    return None


def _attempts(n: int) -> str:
    return "1 attempt" if n == 1 else f"{n} attempts"


def after_exception(rules: RetryRules, state: RetryState, exc: Exception, clock: Clock) -> Decision:
    """What to do after attempt ``state.attempt`` raised ``exc``."""
    call = CURRENT_CALL.get()
    verdict = None if call is None else call.retryable(exc)
    if verdict is None:
        if not judge("retry_on", rules.retry_on, exc, False):
            return NOT_RETRYABLE
        if isinstance(exc, ResilienceError) and exc._refusal and exc.retry_after is None:
            return NOT_RETRYABLE  # a policy refused with no idea when it would accept
    elif not verdict:
        return NOT_RETRYABLE  # the integration running the call forbids sending it again
    return _next(rules, state, hint_of(exc), clock)


def after_result(rules: RetryRules, state: RetryState, result: object, clock: Clock) -> Decision:
    """What to do after attempt ``state.attempt`` returned ``result``, which
    ``retry_if_result`` matched."""
    call = CURRENT_CALL.get()
    if call is not None and call.retryable(result) is False:
        return NOT_RETRYABLE
    return _next(rules, state, None, clock)


def _next(rules: RetryRules, state: RetryState, hint: float | None, clock: Clock) -> Decision:
    attempt = state.attempt
    if attempt >= rules.attempts:
        return GiveUp(
            "the only attempt failed" if attempt == 1 else f"all {attempt} attempts failed"
        )
    backoff = rules.backoff
    delay = backoff.delay(attempt, state.previous)
    hinted = False
    if hint is not None and hint > delay:
        if hint > backoff.max:
            return GiveUp(
                f"{_attempts(attempt)}; the failure asks to wait {hint:.3f}s "
                f"(retry_after), longer than the backoff's max of {backoff.max:g}s"
            )
        delay, hinted = hint, True
    if rules.deadline is not None:
        elapsed = clock.monotonic() - state.started
        if elapsed + delay > rules.deadline:
            waiting = "the failure's retry_after" if hinted else "the backoff"
            return GiveUp(
                f"{_attempts(attempt)} in {elapsed:.3f}s; waiting {delay:.3f}s more "
                f"({waiting}) would pass the {rules.deadline:g}s deadline"
            )
    if rules.budget is not None and not rules.budget.try_retry():
        return GiveUp(f"{_attempts(attempt)}; the retry budget is spent")
    state.previous = delay
    state.attempt = attempt + 1
    return Wait(delay)
