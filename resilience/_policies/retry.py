"""Retry: the policy and its drivers.

Every decision (retry or give up, and how long to wait) is made by the core in
``resilience._core.retry`` over the rules in force and one call's :class:`RetryState`;
the four drivers here (sync and async runners, sync and async attempt iterators) only
run attempts, sleep, emit events and add the note on giving up. State is per call, never
on the Retry object, so concurrent calls through one Retry do not share attempt counts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from datetime import timedelta
from types import TracebackType
from typing import Any

from .._core.backoff import Backoff, Exponential
from .._core.classify import judge
from .._core.clock import Clock
from .._core.notes import add_note
from .._core.retry import (
    GiveUp,
    RetryBudgetLike,
    RetryRules,
    RetryState,
    Wait,
    after_exception,
    after_result,
)
from .._core.validation import (
    check_duration,
    check_exception_filter,
    check_positive_int,
    check_predicate,
    show,
)
from .events import GLOBAL_LISTENERS, GaveUp, RetryScheduled, RetrySucceeded
from .policy import AsyncRunner, Policy, Runner

__all__ = ["Attempt", "Retry", "RetryBudgetLike"]


class _Run:
    """One call's retries, as the drivers see them: asks the core, and reports what it
    decided (an event per retry, a note and an event on giving up)."""

    __slots__ = ("retry", "rules", "state")

    def __init__(self, retry: Retry, rules: RetryRules, started: float) -> None:
        self.retry = retry
        self.rules = rules  # those the call started with: a reload does not mix two sets
        self.state = RetryState(started)

    def after_exception(self, exc: Exception) -> float | None:
        """Seconds to wait before the next attempt, or None to re-raise ``exc``."""
        return self._report(after_exception(self.rules, self.state, exc, self.retry._clock), exc)

    def after_result(self, result: Any) -> float | None:
        """Seconds to wait before the next attempt, or None to return ``result``."""
        return self._report(after_result(self.rules, self.state, result, self.retry._clock), None)

    def _report(self, decision: object, exc: BaseException | None) -> float | None:
        retry = self.retry
        if type(decision) is Wait:
            if GLOBAL_LISTENERS or retry._listeners:
                attempt = self.state.attempt - 1  # the one that failed
                retry._emit_event("retry", RetryScheduled(attempt, decision.delay), exc)
            return decision.delay
        if type(decision) is GiveUp:
            if exc is not None:
                add_note(
                    exc, f"resilience: Retry {retry.name or '<unnamed>'} gave up: {decision.reason}"
                )
            if GLOBAL_LISTENERS or retry._listeners:
                retry._emit_event("give_up", GaveUp(self.state.attempt), exc)
        return None  # not retryable, or given up

    def succeeded(self) -> None:
        if GLOBAL_LISTENERS or self.retry._listeners:
            self.retry._emit_event("success", RetrySucceeded(self.state.attempt))


class Retry(Policy):
    """Calls again when a call fails, waiting a backoff between attempts."""

    kind = "retry"
    reconfigurable = frozenset(
        {"attempts", "backoff", "retry_on", "retry_if_result", "deadline", "budget"}
    )

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
        self._set(
            attempts=attempts,
            backoff=backoff,
            retry_on=retry_on,
            retry_if_result=retry_if_result,
            deadline=deadline,
            budget=budget,
        )
        self._compose()

    def _reconfigure(self, arguments: Mapping[str, object]) -> None:
        self._set(
            attempts=arguments["attempts"],
            backoff=arguments["backoff"],
            retry_on=arguments["retry_on"],
            retry_if_result=arguments["retry_if_result"],
            deadline=arguments["deadline"],
            budget=arguments["budget"],
        )

    def _set(
        self,
        *,
        attempts: object,
        backoff: object,
        retry_on: object,
        retry_if_result: object,
        deadline: object,
        budget: object,
    ) -> None:
        """Check and set every setting (the constructor's, and ``reconfigure()``'s): the
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
        # One object, swapped whole: a call reads the rules once, so it never sees half
        # of a reload.
        self._rules = RetryRules(
            checked_attempts, backoff, checked_retry_on, checked_if_result, checked_deadline, budget
        )

    @property
    def attempts(self) -> int:
        """The most attempts a call makes, the first included."""
        return self._rules.attempts

    @property
    def backoff(self) -> Backoff:
        """The backoff between attempts."""
        return self._rules.backoff

    @property
    def deadline(self) -> float | None:
        """The longest a call spends in this Retry, in seconds, or None."""
        return self._rules.deadline

    @property
    def budget(self) -> RetryBudgetLike | None:
        """The retry budget, or None."""
        return self._rules.budget

    def _live_settings(self) -> dict[str, Any]:
        return {
            "attempts": self.attempts,
            "backoff": self.backoff,
            "deadline": self.deadline,
            "budget": self.budget,
        }

    def _begin(self, rules: RetryRules) -> float:
        """Per-call bookkeeping before the first attempt; returns its start time (read
        only when there is a deadline)."""
        if rules.budget is not None:
            rules.budget.record_call()
        return self._clock.monotonic() if rules.deadline is not None else 0.0

    def _start(self) -> _Run:
        rules = self._rules
        return _Run(self, rules, self._begin(rules))

    # -- drivers -------------------------------------------------------------------

    def _sync_runner(self, inner: Runner) -> Runner:
        sleep = self._clock.sleep
        begin = self._begin

        def run(*args: Any, **kwargs: Any) -> Any:
            rules = self._rules  # once per call: the runner's hot path reads no more
            started = 0.0
            if rules.budget is not None or rules.deadline is not None:
                started = begin(rules)
            state = None
            while True:
                try:
                    result = inner(*args, **kwargs)
                except Exception as exc:
                    if state is None:
                        state = _Run(self, rules, started)
                    delay = state.after_exception(exc)
                    if delay is None:
                        raise
                else:
                    check = rules.retry_if_result
                    if check is None or not judge("retry_if_result", check, result, False):
                        if state is not None:
                            state.succeeded()
                        return result
                    if state is None:
                        state = _Run(self, rules, started)
                    delay = state.after_result(result)
                    if delay is None:
                        return result
                sleep(delay)

        return run

    def _async_runner(self, inner: AsyncRunner) -> AsyncRunner:
        asleep = self._clock.asleep
        begin = self._begin

        async def run(*args: Any, **kwargs: Any) -> Any:
            rules = self._rules  # once per call: the runner's hot path reads no more
            started = 0.0
            if rules.budget is not None or rules.deadline is not None:
                started = begin(rules)
            state = None
            while True:
                try:
                    result = await inner(*args, **kwargs)
                except Exception as exc:
                    if state is None:
                        state = _Run(self, rules, started)
                    delay = state.after_exception(exc)
                    if delay is None:
                        raise
                else:
                    check = rules.retry_if_result
                    if check is None or not judge("retry_if_result", check, result, False):
                        if state is not None:
                            state.succeeded()
                        return result
                    if state is None:
                        state = _Run(self, rules, started)
                    delay = state.after_result(result)
                    if delay is None:
                        return result
                await asleep(delay)

        return run

    def __iter__(self) -> Iterator[Attempt]:
        """``for attempt in retry: with attempt: ...`` runs the block until it succeeds."""
        state = self._start()
        while True:
            attempt = Attempt(state)
            yield attempt
            if attempt._delay is None:
                return
            self._clock.sleep(attempt._delay)

    def __aiter__(self) -> AsyncIterator[Attempt]:
        """``async for attempt in retry: with attempt: ...`` (or ``async with``)."""
        return _AsyncAttempts(self._start())


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
        self.number = state.state.attempt
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
