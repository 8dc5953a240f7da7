"""Hedge: the policy, its arguments, and its drivers (tasks for async, threads for sync).

Decisions (launch another attempt, who won, when the call has lost) belong to
``_hedge_core.Race``. The async driver runs the first attempt in the caller's task,
inside an anyio task group (asyncio and trio) where a "hedger" task starts the other
attempts as the hedging delay passes, on the event loop's clock; whoever settles the
race cancels the attempts still running. The sync driver runs every
attempt on a pooled worker thread (the Timeout's pool) and waits on a queue with a
timeout; losing attempts cannot be stopped and finish in the background, their
outcomes dropped.

Latencies are measured on the policy's clock: those of winning attempts feed a learned
delay (``LatencyQuantile``).
"""

from __future__ import annotations

import math
import queue
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from .._core.call import CURRENT_CALL
from .._core.clock import Clock
from .._core.deadline import current_backend
from .._core.hedge import FATAL, NEXT, WAIT, WON, Latencies, Outcome, Race
from .._core.notes import add_note
from .._core.validation import (
    MAX_SLOTS,
    check_exception_filter,
    check_number,
    check_positive_int,
    check_predicate,
    check_wait,
)
from .events import GLOBAL_LISTENERS, GaveUp, HedgeLaunched, HedgeWon
from .policy import AsyncRunner, Policy, Runner
from .timeout import run_detached

__all__ = ["Hedge", "LatencyQuantile"]


def _check_delay(param: str, value: object) -> float:
    return check_wait(param, value)  # a queue's timeout: at most threading.TIMEOUT_MAX


class LatencyQuantile:
    """A hedging delay learned from recent calls: the ``quantile`` of the latencies of
    the last ``samples`` winning attempts (``initial`` seconds until ``min_samples`` of
    them have been seen).

    ``Hedge(LatencyQuantile(0.95))`` hedges the calls slower than 95% of recent ones.
    """

    __slots__ = ("initial", "min_samples", "quantile", "samples")

    def __init__(
        self,
        quantile: float = 0.95,
        *,
        samples: int = 100,
        min_samples: int = 20,
        initial: float | timedelta = 1.0,
    ) -> None:
        q = check_number("quantile", quantile)
        if not 0.0 < q < 1.0:
            raise ValueError(f"quantile must be a number in (0, 1), got {quantile!r}")
        self.quantile = q
        # The samples are kept (a deque of at most ``samples``): at most MAX_SLOTS.
        self.samples = check_positive_int("samples", samples, maximum=MAX_SLOTS)
        self.min_samples = check_positive_int("min_samples", min_samples, maximum=MAX_SLOTS)
        if self.min_samples > self.samples:
            raise ValueError(
                f"min_samples must be at most samples ({self.samples}), got {min_samples!r}"
            )
        self.initial = _check_delay("initial", initial)

    def _described(self) -> dict[str, Any]:
        """As ``describe()`` and config files write it."""
        quantile, samples, min_samples, initial = self._state()
        return {
            "kind": "latency_quantile",
            "quantile": quantile,
            "samples": samples,
            "min_samples": min_samples,
            "initial": initial,
        }

    def _state(self) -> tuple[float, int, int, float]:
        return self.quantile, self.samples, self.min_samples, self.initial

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LatencyQuantile):
            return NotImplemented
        return self._state() == other._state()

    def __hash__(self) -> int:
        return hash(self._state())

    def __repr__(self) -> str:
        return (
            f"LatencyQuantile({self.quantile!r}, samples={self.samples!r}, "
            f"min_samples={self.min_samples!r}, initial={self.initial!r})"
        )


class Hedge(Policy):
    """For idempotent calls: when the first attempt has not finished after ``delay``
    seconds, start another one (up to ``max_hedges`` more), take the first success and
    cancel the rest.

    ``delay`` is a duration (0: start every attempt at once), or a
    :class:`LatencyQuantile` learned from recent calls. An attempt that raises one of
    ``hedge_on`` (or returns a result ``hedge_if_result`` matches) has failed: the next
    attempt starts at once, and if every attempt fails the last failure is the call's.
    Any other exception ends the call at once.

    Async calls run their attempts as tasks (asyncio and trio); sync calls run them on
    worker threads, where a losing attempt cannot be stopped and finishes in the
    background. See the docs page "Hedging".
    """

    kind = "hedge"
    reconfigurable = frozenset({"delay", "max_hedges", "hedge_on", "hedge_if_result"})

    def __init__(
        self,
        delay: float | timedelta | LatencyQuantile,
        max_hedges: int = 1,
        *,
        hedge_on: type[BaseException]
        | tuple[type[BaseException], ...]
        | Callable[[BaseException], bool] = (Exception,),
        hedge_if_result: Callable[[Any], bool] | None = None,
        name: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(name, clock)
        self._learned: Latencies | None = None
        self._delay_spec: object = None  # as given: a duration or a LatencyQuantile
        self._set(delay, max_hedges, hedge_on=hedge_on, hedge_if_result=hedge_if_result)
        self._compose()

    def _reconfigure(self, arguments: Mapping[str, object]) -> None:
        self._set(
            arguments["delay"],
            arguments["max_hedges"],
            hedge_on=arguments["hedge_on"],
            hedge_if_result=arguments["hedge_if_result"],
        )

    def _set(
        self,
        delay: object,
        max_hedges: object,
        *,
        hedge_on: object,
        hedge_if_result: object,
    ) -> None:
        """Check and set the settings (the constructor's, and ``reconfigure()``'s): calls
        starting from now on use them. A learned delay keeps what it learned unless its
        own settings change."""
        if isinstance(delay, LatencyQuantile):
            learned = self._learned
            if learned is None or delay != self._delay_spec:
                learned = Latencies(delay.quantile, delay.samples, delay.min_samples, delay.initial)
            fixed = delay.initial
        else:
            learned, fixed = None, _check_delay("delay", delay)
        hedges = check_positive_int("max_hedges", max_hedges)
        checked_hedge_on = check_exception_filter("hedge_on", hedge_on)
        checked_if_result = check_predicate("hedge_if_result", hedge_if_result)
        self._learned, self._fixed, self._delay_spec = learned, fixed, delay
        self._max_hedges, self._hedge_on = hedges, checked_hedge_on
        self._hedge_if_result = checked_if_result

    # -- reading -----------------------------------------------------------------------

    @property
    def delay(self) -> float:
        """The hedging delay in force now, in seconds (learned, with a LatencyQuantile)."""
        learned = self._learned
        return self._fixed if learned is None else learned.delay

    @property
    def max_hedges(self) -> int:
        """How many attempts a call may start beyond the first."""
        return self._max_hedges

    def _description(self) -> dict[str, Any]:
        settings = super()._description()
        if self._learned is not None:
            settings["learned_delay"] = self._learned.delay
        return settings

    def __repr__(self) -> str:
        return f"Hedge({self._delay_spec!r}, max_hedges={self._max_hedges}, name={self.name!r})"

    # -- bookkeeping shared by both drivers ----------------------------------------------

    def _race(self) -> Race:
        return Race(1 + self._max_hedges, self._hedge_on, self._hedge_if_result)

    def _hedged(self, attempt: int, delay: float, after: Outcome | None) -> None:
        """Attempt number ``attempt`` was launched: ``delay`` after the previous one, or
        at once (``after`` the failure of another)."""
        if GLOBAL_LISTENERS or self._listeners:
            self._emit_event(
                "hedge",
                HedgeLaunched(attempt, delay),
                None if after is None else after.exception,
            )

    def _settle(self, race: Race, outcome: Outcome, verdict: str) -> Any:
        """The call's result (or exception), once the race is decided."""
        if verdict is WON:
            if self._learned is not None:
                self._learned.record(outcome.duration)
            if GLOBAL_LISTENERS or self._listeners:
                self._emit_event("success", HedgeWon(outcome.attempt, outcome.duration))
            return outcome.result
        if verdict is FATAL:
            raise outcome.exception  # type: ignore[misc]
        last = race.last
        assert last is not None
        exc = last.exception
        if GLOBAL_LISTENERS or self._listeners:
            self._emit_event("give_up", GaveUp(race.launched), exc)
        if exc is None:
            return last.result
        add_note(
            exc,
            f"resilience: Hedge {self.name or '<unnamed>'} gave up: "
            f"all {race.launched} attempts failed",
        )
        raise exc

    # -- drivers -------------------------------------------------------------------------

    def _sync_runner(self, inner: Runner) -> Runner:
        now = self._clock.monotonic
        race_for, hedged, settle = self._race, self._hedged, self._settle

        def run(*args: Any, **kwargs: Any) -> Any:
            call = CURRENT_CALL.get()
            if call is not None and not call.may_duplicate():
                return inner(*args, **kwargs)  # e.g. a POST: sent once, never hedged
            race = race_for()
            outcomes: queue.SimpleQueue[Outcome] = queue.SimpleQueue()

            def attempt(number: int) -> None:
                start = now()
                try:
                    result = inner(*args, **kwargs)
                except BaseException as exc:
                    outcomes.put(Outcome(number, exc, None, now() - start))
                else:
                    outcomes.put(Outcome(number, None, result, now() - start))

            delay = self.delay
            run_detached(attempt, race.launch())
            while True:
                try:
                    outcome = outcomes.get(timeout=delay) if race.can_launch else outcomes.get()
                except queue.Empty:  # the delay passed: hedge
                    number = race.launch()
                    hedged(number, delay, None)
                    run_detached(attempt, number)
                    continue
                verdict = race.judge(outcome)
                if verdict is NEXT:
                    number = race.launch()
                    hedged(number, 0.0, outcome)
                    run_detached(attempt, number)
                elif verdict is not WAIT:
                    # Losing attempts still running finish in the background; nobody
                    # reads their outcomes.
                    return settle(race, outcome, verdict)

        return run

    def _async_runner(self, inner: AsyncRunner) -> AsyncRunner:
        # The first attempt runs in the caller's own task, inside a task group; a
        # "hedger" task launches the others as the delay passes. Whoever settles the race
        # (a winner, a fatal error, the last failure) cancels the group: the attempts
        # still running, the hedger, and the caller's own attempt if it lost. When the
        # first attempt answers before the delay, the group cost one task that never ran.
        now = self._clock.monotonic
        race_for, hedged, settle = self._race, self._hedged, self._settle
        backend_of = current_backend

        async def run(*args: Any, **kwargs: Any) -> Any:
            call = CURRENT_CALL.get()
            if call is not None and not call.may_duplicate():
                return await inner(*args, **kwargs)  # e.g. a POST: sent once, never hedged
            backend = backend_of()
            cancelled = backend.cancelled_exception_class()
            race = race_for()
            delay = self.delay
            decided: list[tuple[Outcome, str]] = []
            last_launch = [backend.current_time()]
            # Tasks asleep (the hedger, this one once its own attempt ended) that settling
            # the race must wake by cancelling the group.
            asleep = [0]

            async with backend.create_task_group() as tg:
                scope = tg.cancel_scope

                def conclude(outcome: Outcome) -> None:
                    verdict = race.judge(outcome)
                    if verdict is NEXT:
                        number = race.launch()
                        last_launch[0] = backend.current_time()
                        hedged(number, 0.0, outcome)
                        tg.start_soon(attempt, number)
                    elif verdict is not WAIT:
                        decided.append((outcome, verdict))
                        if race.running or asleep[0]:
                            scope.cancel()
                        # else only a hedger that has not run yet is left: it will see
                        # the race is over and end, which costs less than cancelling it.

                async def attempt(number: int) -> None:
                    start = now()
                    try:
                        result = await inner(*args, **kwargs)
                    except cancelled:
                        raise  # the race is over (or the caller was cancelled)
                    except BaseException as exc:
                        if not decided:
                            conclude(Outcome(number, exc, None, now() - start))
                        return
                    if not decided:
                        conclude(Outcome(number, None, result, now() - start))

                async def hedger() -> None:
                    while race.can_launch and not decided:
                        wait = last_launch[0] + delay - backend.current_time()
                        if wait > 0:
                            asleep[0] += 1
                            await backend.sleep(wait)
                            asleep[0] -= 1
                            continue  # look again: an attempt may have started meanwhile
                        number = race.launch()
                        last_launch[0] = backend.current_time()
                        hedged(number, delay, None)
                        tg.start_soon(attempt, number)

                race.launch()
                tg.start_soon(hedger)
                await attempt(1)
                if not decided:
                    asleep[0] += 1
                    await backend.sleep(math.inf)  # until whoever settles the race cancels us
            outcome, verdict = decided[0]
            return settle(race, outcome, verdict)

        return run
