"""AdaptiveThrottle: the policy, its arguments, and thin sync/async drivers.

Counting and the rejection rule belong to ``_throttle_core.ThrottleCore``; this module
validates arguments, classifies outcomes (as a circuit breaker does), draws the random
numbers, raises ``Throttled`` and emits events.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from .._core.classify import failed, judge
from .._core.clock import Clock
from .._core.random import make_random
from .._core.throttle import ThrottleCore
from .._core.validation import (
    MISSING,
    check_exception_filter,
    check_mode,
    check_number,
    check_predicate,
    check_window,
)
from ..errors import Throttled
from .events import GLOBAL_LISTENERS, ThrottleRejected
from .mode import ShadowMode
from .policy import AsyncRunner, Runner

__all__ = ["AdaptiveThrottle"]


class AdaptiveThrottle(ShadowMode):
    """Client-side adaptive throttling (Google SRE book): while the dependency refuses
    requests, reject a share of calls locally, before they add to its load.

    Over the last ``window`` seconds it counts requests (every call, including those it
    rejects) and accepts (calls the dependency accepted), and rejects a call with
    probability ``max(0, (requests - k * accepts) / (requests + 1))``, raising
    :class:`~resilience.Throttled`. A call is *not accepted* when it raises one of
    ``failure_on`` (and not one of ``ignore``) or returns a result ``failure_if``
    matches; cancellations and refusals by policies inside count as nothing.

    See the docs page "Adaptive throttle". Every argument is checked here; a bad one
    raises ``ValueError`` or ``TypeError`` naming it.
    """

    kind = "adaptive_throttle"
    per_dependency = True
    reconfigurable = frozenset(
        {"k", "window", "failure_on", "ignore", "failure_if", "mode", "seed"}
    )

    def __init__(
        self,
        k: float = 2.0,
        window: float | timedelta = 120.0,
        *,
        failure_on: type[BaseException]
        | tuple[type[BaseException], ...]
        | Callable[[BaseException], bool] = (Exception,),
        ignore: type[BaseException]
        | tuple[type[BaseException], ...]
        | Callable[[BaseException], bool] = (),
        failure_if: Callable[[Any], bool] | None = None,
        mode: str = "enforce",
        seed: int | None = None,
        name: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(name, clock)
        self._shadow = check_mode(mode)
        self._seed: object = MISSING
        self._window = 0.0
        self._set(k, window, failure_on=failure_on, ignore=ignore, failure_if=failure_if, seed=seed)
        self._compose()

    def _reconfigure(self, arguments: Mapping[str, object]) -> None:
        self._set(
            arguments["k"],
            arguments["window"],
            failure_on=arguments["failure_on"],
            ignore=arguments["ignore"],
            failure_if=arguments["failure_if"],
            seed=arguments["seed"],
        )

    def _set(
        self,
        k: object,
        window: object,
        *,
        failure_on: object,
        ignore: object,
        failure_if: object,
        seed: object,
    ) -> None:
        """Check and set the settings (the constructor's, and ``reconfigure()``'s). The
        counts are kept unless ``window`` changes; the random sequence goes on unless
        ``seed`` changes."""
        k_value = check_number("k", k)
        if k_value < 1.0:
            raise ValueError(
                f"k must be at least 1 (below 1 it rejects calls the dependency would "
                f"accept), got {k!r}"
            )
        checked_window = check_window("window", window)
        checked_failure_on = check_exception_filter("failure_on", failure_on)
        checked_ignore = check_exception_filter("ignore", ignore)
        checked_failure_if = check_predicate("failure_if", failure_if)
        if seed != self._seed:
            self._random = make_random(seed).random
            self._seed = seed
        self._failure_on, self._ignore = checked_failure_on, checked_ignore
        self._failure_if = checked_failure_if
        core: ThrottleCore | None = getattr(self, "_core", None)
        if core is None or checked_window != self._window:
            core = ThrottleCore(k_value, checked_window, self._clock.monotonic)
        core.k = k_value
        self._window, self._core = checked_window, core

    # -- reading -------------------------------------------------------------------------

    @property
    def k(self) -> float:
        """The multiplier: requests may reach about ``k`` times the accepts."""
        return self._core.k

    @property
    def window(self) -> float:
        """Seconds of history the counts cover."""
        return self._window

    @property
    def requests(self) -> int:
        """Requests in the window: calls that ended with an outcome, and local rejections."""
        return self._core.totals()[0]

    @property
    def accepts(self) -> int:
        """Requests in the window that the dependency accepted."""
        return self._core.totals()[1]

    @property
    def probability(self) -> float:
        """The probability that a call made now is rejected locally."""
        return self._core.probability()

    def __repr__(self) -> str:
        return f"AdaptiveThrottle(k={self.k!r}, window={self._window!r}, name={self.name!r})"

    # -- deciding and counting -------------------------------------------------------------

    def _rejected(self, probability: float) -> Throttled:
        if GLOBAL_LISTENERS or self._listeners:
            self._emit_event("rejected", ThrottleRejected(probability))
        return Throttled(self.name, probability)

    def _admit(self) -> bool:
        """Whether the call goes ahead (raises ``Throttled`` when it does not). In shadow
        mode a would-be rejection is reported, and the call goes ahead and is counted."""
        draw = self._random()
        if self._shadow:
            probability = self._core.admit(draw, count=False)
            if probability is not None:
                self._rejected(probability)
            return True
        probability = self._core.admit(draw)
        if probability is not None:
            raise self._rejected(probability)
        return True

    def _record_exception(self, exc: BaseException) -> None:
        outcome = failed(exc, self._failure_on, self._ignore)
        if outcome is not None:
            self._core.record(not outcome)

    def _record_result(self, result: Any) -> None:
        check = self._failure_if
        self._core.record(check is None or not judge("failure_if", check, result, True))

    # -- drivers -------------------------------------------------------------------------

    def _sync_runner(self, inner: Runner) -> Runner:
        admit, record_exception, record_result = (
            self._admit,
            self._record_exception,
            self._record_result,
        )

        def run(*args: Any, **kwargs: Any) -> Any:
            admit()
            try:
                result = inner(*args, **kwargs)
            except BaseException as exc:
                record_exception(exc)
                raise
            record_result(result)
            return result

        return run

    def _async_runner(self, inner: AsyncRunner) -> AsyncRunner:
        admit, record_exception, record_result = (
            self._admit,
            self._record_exception,
            self._record_result,
        )

        async def run(*args: Any, **kwargs: Any) -> Any:
            admit()
            try:
                result = await inner(*args, **kwargs)
            except BaseException as exc:
                record_exception(exc)
                raise
            record_result(result)
            return result

        return run
