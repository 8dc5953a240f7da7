"""Retry: the policy, its per-call decision core, and its drivers.

``_Run`` holds one call's retry state and makes every decision (retry or give up, and
how long to wait). The four drivers (sync and async runners, sync and async attempt
iterators) only run attempts and sleep. State is per call, never on the Retry object,
so concurrent calls through one Retry do not share attempt counts.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from types import TracebackType
from typing import Any, Protocol, runtime_checkable

from .._core.backoff import Backoff, Exponential
from .._core.call import CURRENT_CALL
from .._core.classify import judge
from .._core.clock import Clock
from .._core.notes import add_note
from .._core.validation import (
    check_duration,
    check_exception_filter,
    check_positive_int,
    check_predicate,
    show,
)
from ..errors import ResilienceError
from .events import GLOBAL_LISTENERS
from .policy import AsyncRunner, Policy, Runner

__all__ = ["Attempt", "Retry", "RetryBudgetLike"]


@runtime_checkable
class RetryBudgetLike(Protocol):
    """What Retry needs from a budget: count calls, and allow or refuse each retry."""

    def record_call(self) -> None: ...

    def try_retry(self) -> bool: ...


def _hint(exc: BaseException) -> float | None:
    hint = getattr(exc, "retry_after", None)
    if isinstance(hint, timedelta):
        hint = hint.total_seconds()
    if isinstance(hint, (int, float)) and not isinstance(hint, bool) and math.isfinite(hint):
        return max(0.0, float(hint))
    return None


def _attempts(n: int) -> str:
    return "1 attempt" if n == 1 else f"{n} attempts"


class _Run:
    """One call's retries: which attempt this is, when it started, the last delay."""

    __slots__ = ("attempt", "previous", "retry", "started")

    def __init__(self, retry: Retry, started: float) -> None:
        self.retry = retry
        self.started = started
        self.attempt = 1
        self.previous = 0.0

    def after_exception(self, exc: Exception) -> float | None:
        """Seconds to wait before the next attempt, or None to re-raise ``exc``."""
        call = CURRENT_CALL.get()
        verdict = None if call is None else call.retryable(exc)
        if verdict is None:
            if not judge("retry_on", self.retry._retry_on, exc, False):
                return None
            if isinstance(exc, ResilienceError) and exc._refusal and exc.retry_after is None:
                return None  # a policy refused with no idea when it would accept
        elif not verdict:
            return None  # the integration running the call forbids sending it again
        return self._next(exc, _hint(exc))

    def after_result(self, result: Any) -> float | None:
        """Seconds to wait before the next attempt, or None to return ``result``."""
        call = CURRENT_CALL.get()
        if call is not None and call.retryable(result) is False:
            return None
        return self._next(None, None)

    def _next(self, exc: BaseException | None, hint: float | None) -> float | None:
        retry = self.retry
        attempt = self.attempt
        if attempt >= retry.attempts:
            return self._give_up(
                exc, "the only attempt failed" if attempt == 1 else f"all {attempt} attempts failed"
            )
        delay = retry.backoff.delay(attempt, self.previous)
        hinted = False
        if hint is not None and hint > delay:
            hinted = True
            # Never sooner than the hint: the next attempt would only be refused again.
            # A hint beyond what this retry would ever wait means stopping now, rather
            # than waiting less and retrying into a certain refusal.
            if hint > retry.backoff.max:
                return self._give_up(
                    exc,
                    f"{_attempts(attempt)}; the failure asks to wait {hint:.3f}s "
                    f"(retry_after), longer than the backoff's max of {retry.backoff.max:g}s",
                )
            delay = hint
        if retry.deadline is not None:
            elapsed = retry._clock.monotonic() - self.started
            if elapsed + delay > retry.deadline:
                waiting = "the failure's retry_after" if hinted else "the backoff"
                return self._give_up(
                    exc,
                    f"{_attempts(attempt)} in {elapsed:.3f}s; waiting {delay:.3f}s more "
                    f"({waiting}) would pass the {retry.deadline:g}s deadline",
                )
        if retry.budget is not None and not retry.budget.try_retry():
            return self._give_up(exc, f"{_attempts(attempt)}; the retry budget is spent")
        self.previous = delay
        self.attempt = attempt + 1
        if GLOBAL_LISTENERS or retry._listeners:
            retry._emit("retry", attempt, delay=delay, exception=exc)
        return delay

    def _give_up(self, exc: BaseException | None, why: str) -> float | None:
        retry = self.retry
        if exc is not None:
            add_note(exc, f"resilience: Retry {retry.name or '<unnamed>'} gave up: {why}")
        if GLOBAL_LISTENERS or retry._listeners:
            retry._emit("give_up", self.attempt, exception=exc)
        return None  # no delay: give up

    def succeeded(self) -> None:
        if GLOBAL_LISTENERS or self.retry._listeners:
            self.retry._emit("success", self.attempt)


class Retry(Policy):
    """Calls again when a call fails, waiting a backoff between attempts."""

    kind = "retry"

    def __init__(
        self,
        attempts: int = 3,
        *,
        backoff: Backoff | None = None,
        retry_on: type[BaseException]
        | tuple[type[BaseException], ...]
        | Callable[[BaseException], bool] = (Exception,),
        retry_if_result: Callable[[Any], bool] | None = None,
        deadline: float | timedelta | None = None,
        budget: RetryBudgetLike | None = None,
        name: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(name, clock)
        self._configure(attempts, backoff, retry_on, retry_if_result, deadline, budget)
        self._compose()

    def _configure(
        self,
        attempts: int = 3,
        backoff: Backoff | None = None,
        retry_on: type[BaseException]
        | tuple[type[BaseException], ...]
        | Callable[[BaseException], bool] = (Exception,),
        retry_if_result: Callable[[Any], bool] | None = None,
        deadline: float | timedelta | None = None,
        budget: RetryBudgetLike | None = None,
    ) -> None:
        """Set every setting (the constructor's, and ``Registry.reload``'s in place): the
        runners read them on each decision, so calls starting from now on use them."""
        checked_attempts = check_positive_int("attempts", attempts)
        if backoff is None:
            backoff = Exponential(base=0.1, factor=2.0, max=10.0, jitter="full")
        elif isinstance(backoff, type) or not isinstance(backoff, Backoff):
            raise TypeError(
                f"backoff must be a backoff strategy (Constant, Linear, Exponential, "
                f"DecorrelatedJitter), got {show(backoff)}"
            )
        checked_retry_on = check_exception_filter("retry_on", retry_on)
        checked_if_result = check_predicate("retry_if_result", retry_if_result)
        checked_deadline = (
            None if deadline is None else check_duration("deadline", deadline, positive=True)
        )
        if budget is not None and not isinstance(budget, RetryBudgetLike):
            raise TypeError(f"budget must be a RetryBudget or None, got {show(budget)}")
        self.attempts = checked_attempts
        self.backoff = backoff
        self._retry_on = checked_retry_on
        self._retry_if_result = checked_if_result
        self.deadline = checked_deadline
        self.budget = budget

    def _emit(
        self,
        type_: str,
        attempt: int,
        *,
        delay: float | None = None,
        exception: BaseException | None = None,
    ) -> None:
        self._emit_event(type_, attempt=attempt, delay=delay, exception=exception)

    def _live_settings(self) -> dict[str, Any]:
        return {
            "attempts": self.attempts,
            "backoff": self.backoff,
            "deadline": self.deadline,
            "budget": self.budget,
        }

    def _begin(self) -> float:
        """Per-call bookkeeping before the first attempt; returns its start time."""
        if self.budget is not None:
            self.budget.record_call()
        return self._clock.monotonic() if self.deadline is not None else 0.0

    # -- drivers -------------------------------------------------------------------

    def _sync_runner(self, inner: Runner) -> Runner:
        sleep = self._clock.sleep
        begin = self._begin

        def run(*args: Any, **kwargs: Any) -> Any:
            started = begin()
            state = None
            while True:
                try:
                    result = inner(*args, **kwargs)
                except Exception as exc:
                    if state is None:
                        state = _Run(self, started)
                    delay = state.after_exception(exc)
                    if delay is None:
                        raise
                else:
                    check = self._retry_if_result
                    if check is None or not judge("retry_if_result", check, result, False):
                        if state is not None:
                            state.succeeded()
                        return result
                    if state is None:
                        state = _Run(self, started)
                    delay = state.after_result(result)
                    if delay is None:
                        return result
                sleep(delay)

        return run

    def _async_runner(self, inner: AsyncRunner) -> AsyncRunner:
        asleep = self._clock.asleep
        begin = self._begin

        async def run(*args: Any, **kwargs: Any) -> Any:
            started = begin()
            state = None
            while True:
                try:
                    result = await inner(*args, **kwargs)
                except Exception as exc:
                    if state is None:
                        state = _Run(self, started)
                    delay = state.after_exception(exc)
                    if delay is None:
                        raise
                else:
                    check = self._retry_if_result
                    if check is None or not judge("retry_if_result", check, result, False):
                        if state is not None:
                            state.succeeded()
                        return result
                    if state is None:
                        state = _Run(self, started)
                    delay = state.after_result(result)
                    if delay is None:
                        return result
                await asleep(delay)

        return run

    def __iter__(self) -> Iterator[Attempt]:
        """``for attempt in retry: with attempt: ...`` runs the block until it succeeds."""
        state = _Run(self, self._begin())
        while True:
            attempt = Attempt(state)
            yield attempt
            if attempt._delay is None:
                return
            self._clock.sleep(attempt._delay)

    def __aiter__(self) -> AsyncIterator[Attempt]:
        """``async for attempt in retry: with attempt: ...`` (or ``async with``)."""
        return _AsyncAttempts(_Run(self, self._begin()))


class _AsyncAttempts:
    """The async attempt iterator. A class rather than an async generator: leaving an
    ``async for`` early abandons the iterator, and an abandoned async generator makes
    trio warn about unfinalized generators."""

    __slots__ = ("_last", "_state")

    def __init__(self, state: _Run) -> None:
        self._state = state
        self._last: Attempt | None = None

    def __aiter__(self) -> _AsyncAttempts:
        return self

    async def __anext__(self) -> Attempt:
        last = self._last
        if last is not None:
            if last._delay is None:
                raise StopAsyncIteration
            await self._state.retry._clock.asleep(last._delay)
        self._last = Attempt(self._state)
        return self._last


class Attempt:
    """One attempt of a ``for attempt in retry`` loop; use it as a context manager.

    A retryable exception inside the block is swallowed and the loop goes on; the last
    one (or any that is not retryable) propagates. ``number`` is 1 for the first attempt.
    """

    __slots__ = ("_delay", "_state", "number")

    def __init__(self, state: _Run) -> None:
        self._state = state
        self.number = state.attempt
        self._delay: float | None = None

    def __enter__(self) -> Attempt:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if exc is None:
            if self.number > 1:
                self._state.succeeded()
            return False
        if not isinstance(exc, Exception):
            return False
        self._delay = self._state.after_exception(exc)
        return self._delay is not None

    async def __aenter__(self) -> Attempt:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        return self.__exit__(exc_type, exc, tb)

    def __repr__(self) -> str:
        return f"Attempt(number={self.number})"
