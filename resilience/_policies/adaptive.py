"""AdaptiveConcurrency: a bulkhead whose limit follows the dependency's latency.

It is a :class:`~resilience.Bulkhead` (same slots, queue, waiting, shadow mode and
events), whose runners also time every call and hand the sample to
``_adaptive_core.LimitCore``; when a window of samples moves the limit, the bulkhead's
core is resized in place. The algorithms are described by :class:`AIMD` and
:class:`Gradient`.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Mapping
from datetime import timedelta
from types import TracebackType
from typing import Any

from .._core.adaptive import AIMDState, GradientState, LimitCore, LimitState
from .._core.classify import judge
from .._core.clock import Clock
from .._core.random import make_random
from .._core.validation import (
    MAX_SLOTS,
    check_duration,
    check_exception_filter,
    check_number,
    check_positive_int,
    check_predicate,
    show,
)
from .bulkhead import Bulkhead
from .bulkhead import _limits as _bulkhead_limits
from .events import GLOBAL_LISTENERS, LimitChanged
from .policy import AsyncRunner, Runner

__all__ = ["AIMD", "AdaptiveConcurrency", "Gradient"]


def _check_range(param: str, value: object, low: float, high: float, closed: str) -> float:
    number = check_number(param, value)
    low_ok = number >= low if closed[0] == "[" else number > low
    high_ok = number <= high if closed[1] == "]" else number < high
    if not (low_ok and high_ok):
        raise ValueError(
            f"{param} must be a number in {closed[0]}{low:g}, {high:g}{closed[1]}, got {value!r}"
        )
    return number


class AIMD:
    """Additive increase, multiplicative decrease (loss-based), as Netflix's AIMDLimit.

    After a window with a dropped call (or whose average latency passed
    ``slow_call_duration``) the limit is multiplied by ``backoff_ratio``; after any other
    window that used at least half the limit, it grows by one.
    """

    __slots__ = ("backoff_ratio", "slow_call_duration")

    def __init__(
        self,
        *,
        backoff_ratio: float = 0.9,
        slow_call_duration: float | timedelta | None = None,
    ) -> None:
        self.backoff_ratio = _check_range("backoff_ratio", backoff_ratio, 0.0, 1.0, "()")
        self.slow_call_duration = (
            None
            if slow_call_duration is None
            else check_duration("slow_call_duration", slow_call_duration, positive=True)
        )

    def _start(self) -> LimitState:
        return AIMDState(self.backoff_ratio, self.slow_call_duration)

    def _described(self) -> dict[str, Any]:
        """As ``describe()`` and config files write it."""
        return {
            "kind": "aimd",
            "backoff_ratio": self.backoff_ratio,
            "slow_call_duration": self.slow_call_duration,
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AIMD):
            return NotImplemented
        return (self.backoff_ratio, self.slow_call_duration) == (
            other.backoff_ratio,
            other.slow_call_duration,
        )

    def __hash__(self) -> int:
        return hash(("aimd", self.backoff_ratio, self.slow_call_duration))

    def __repr__(self) -> str:
        return (
            f"AIMD(backoff_ratio={self.backoff_ratio!r}, "
            f"slow_call_duration={self.slow_call_duration!r})"
        )


class Gradient:
    """Delay-based, as Netflix's GradientLimit: the limit settles where latency is
    ``tolerance`` times the no-load latency (the lowest seen).

    After each window the limit moves to ``limit * gradient + queue_size``, where
    ``gradient = clamp(tolerance * no_load / latency, 0.5, 1)``; decreases are smoothed
    by ``smoothing``. A window with a dropped call multiplies the limit by
    ``backoff_ratio``. Every ``probe_interval`` windows (jittered up to twice that; None:
    never) the limit restarts from ``queue_size`` and the no-load latency is measured
    again. ``queue_size`` None is ``max(4, sqrt(limit))``. ``seed`` seeds the jitter.
    """

    __slots__ = ("backoff_ratio", "probe_interval", "queue_size", "seed", "smoothing", "tolerance")

    def __init__(
        self,
        *,
        tolerance: float = 1.5,
        smoothing: float = 0.2,
        backoff_ratio: float = 0.9,
        probe_interval: int | None = 1000,
        queue_size: float | None = None,
        seed: int | None = None,
    ) -> None:
        tolerance_value = check_number("tolerance", tolerance)
        if tolerance_value < 1.0:
            raise ValueError(f"tolerance must be at least 1, got {tolerance!r}")
        self.tolerance = tolerance_value
        self.smoothing = _check_range("smoothing", smoothing, 0.0, 1.0, "(]")
        self.backoff_ratio = _check_range("backoff_ratio", backoff_ratio, 0.0, 1.0, "()")
        self.probe_interval = (
            None if probe_interval is None else check_positive_int("probe_interval", probe_interval)
        )
        if queue_size is None:
            self.queue_size: float | None = None
        else:
            queue = check_number("queue_size", queue_size)
            if queue < 1:
                raise ValueError(f"queue_size must be at least 1, got {queue_size!r}")
            self.queue_size = queue
        make_random(seed)  # checks it
        self.seed = seed

    def _start(self) -> LimitState:
        return GradientState(
            self.tolerance,
            self.smoothing,
            self.backoff_ratio,
            self.probe_interval,
            self.queue_size,
            make_random(self.seed).random,
        )

    def _described(self) -> dict[str, Any]:
        """As ``describe()`` and config files write it."""
        return {
            "kind": "gradient",
            "tolerance": self.tolerance,
            "smoothing": self.smoothing,
            "backoff_ratio": self.backoff_ratio,
            "probe_interval": self.probe_interval,
            "queue_size": self.queue_size,
            "seed": self.seed,
        }

    def _key(self) -> tuple[Any, ...]:
        return (
            self.tolerance,
            self.smoothing,
            self.backoff_ratio,
            self.probe_interval,
            self.queue_size,
            self.seed,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Gradient):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(("gradient", *self._key()))

    def __repr__(self) -> str:
        return (
            f"Gradient(tolerance={self.tolerance!r}, smoothing={self.smoothing!r}, "
            f"backoff_ratio={self.backoff_ratio!r}, probe_interval={self.probe_interval!r}, "
            f"queue_size={self.queue_size!r})"
        )


def _check_algorithm(algorithm: object) -> AIMD | Gradient:
    """An ``algorithm`` argument (None: ``Gradient()``)."""
    if algorithm is None:
        return Gradient()
    if not isinstance(algorithm, (AIMD, Gradient)):
        raise TypeError(f"algorithm must be AIMD(...) or Gradient(...), got {show(algorithm)}")
    return algorithm


#: The limit to start from when none is given (moved into [min_limit, max_limit]).
INITIAL_LIMIT = 20


def _limits(min_limit: object, max_limit: object, initial_limit: object) -> tuple[int, int, int]:
    # The limit becomes the bulkhead's max_concurrent: at most MAX_SLOTS.
    minimum = check_positive_int("min_limit", min_limit, maximum=MAX_SLOTS)
    maximum = check_positive_int("max_limit", max_limit, maximum=MAX_SLOTS)
    if maximum < minimum:
        raise ValueError(f"max_limit must be at least min_limit ({minimum}), got {max_limit!r}")
    if initial_limit is None:
        return minimum, maximum, min(maximum, max(minimum, INITIAL_LIMIT))
    initial = check_positive_int("initial_limit", initial_limit, maximum=MAX_SLOTS)
    if not minimum <= initial <= maximum:
        raise ValueError(
            f"initial_limit must be within [min_limit, max_limit] = [{minimum}, {maximum}], "
            f"got {initial_limit!r}"
        )
    return minimum, maximum, initial


class AdaptiveConcurrency(Bulkhead):
    """A bulkhead whose limit adapts to the dependency's latency.

    It starts at ``initial_limit`` concurrent calls (None: 20, or the nearest bound) and
    moves between ``min_limit`` and ``max_limit`` as ``algorithm`` (:class:`Gradient`
    by default, or :class:`AIMD`) reads the latencies of the calls it admits. A call
    that raises one of ``dropped_on`` (a timeout, by default) or returns a result
    ``dropped_if`` matches is *dropped*: a sign of overload. Otherwise it behaves as a
    :class:`Bulkhead` whose ``max_concurrent`` is the current limit: ``max_queue`` calls
    may wait, for at most ``max_wait`` seconds, and the rest get ``BulkheadFull``.

    See the docs page "Adaptive concurrency".
    """

    kind = "adaptive_concurrency"
    reconfigurable = frozenset(
        {
            "algorithm",
            "initial_limit",
            "min_limit",
            "max_limit",
            "max_queue",
            "max_wait",
            "dropped_on",
            "dropped_if",
            "mode",
        }
    )

    def __init__(
        self,
        algorithm: AIMD | Gradient | None = None,
        *,
        initial_limit: int | None = None,
        min_limit: int = 1,
        max_limit: int = 200,
        max_queue: int = 0,
        max_wait: float | timedelta | None = None,
        dropped_on: type[BaseException]
        | tuple[type[BaseException], ...]
        | Callable[[BaseException], bool] = (TimeoutError,),
        dropped_if: Callable[[Any], bool] | None = None,
        mode: str = "enforce",
        name: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        checked_algorithm = _check_algorithm(algorithm)
        minimum, maximum, initial = _limits(min_limit, max_limit, initial_limit)
        self._limits = LimitCore(checked_algorithm._start(), initial, minimum, maximum)
        self._algorithm = checked_algorithm
        self._min_limit, self._max_limit = minimum, maximum
        self._dropped_on = check_exception_filter("dropped_on", dropped_on)
        self._dropped_if = check_predicate("dropped_if", dropped_if)
        # Start times of ``with`` blocks, per thread or task (calls time themselves).
        self._starts: contextvars.ContextVar[tuple[float, ...]] = contextvars.ContextVar(
            f"resilience-adaptive-{id(self)}", default=()
        )
        super().__init__(initial, max_queue, max_wait, mode=mode, name=name, clock=clock)

    def _reconfigure(self, arguments: Mapping[str, object]) -> None:
        """New settings, in place: the limit in force is kept (moved into the new
        ``[min_limit, max_limit]`` if outside); a different algorithm starts from it with
        no history. ``initial_limit`` only matters to later clones (it is checked
        against the new bounds all the same)."""
        algorithm = _check_algorithm(arguments["algorithm"])
        # A new algorithm's state, or None to keep the one in use.
        state = algorithm._start() if algorithm != self._algorithm else None
        minimum, maximum, _ = _limits(
            arguments["min_limit"], arguments["max_limit"], arguments["initial_limit"]
        )
        limit = min(maximum, max(minimum, self._max_concurrent))
        concurrent, queue, wait = _bulkhead_limits(
            limit, arguments["max_queue"], arguments["max_wait"]
        )
        dropped_on = check_exception_filter("dropped_on", arguments["dropped_on"])
        dropped_if = check_predicate("dropped_if", arguments["dropped_if"])
        # Everything checked: change.
        self._limits.configure(state, minimum, maximum, limit)
        self._algorithm, self._min_limit, self._max_limit = algorithm, minimum, maximum
        self._dropped_on, self._dropped_if = dropped_on, dropped_if
        self._resize_to(concurrent, queue, wait)

    # -- reading -----------------------------------------------------------------------

    @property
    def limit(self) -> int:
        """The concurrency limit in force now (``max_concurrent``)."""
        return self._max_concurrent

    @property
    def algorithm(self) -> AIMD | Gradient:
        """How the limit adapts."""
        return self._algorithm

    @property
    def min_limit(self) -> int:
        return self._min_limit

    @property
    def max_limit(self) -> int:
        return self._max_limit

    def _description(self) -> dict[str, Any]:
        settings = super()._description()
        settings["limit"] = self._max_concurrent
        return settings

    def __repr__(self) -> str:
        return (
            f"AdaptiveConcurrency({self._algorithm!r}, limit={self._max_concurrent}, "
            f"min_limit={self._min_limit}, max_limit={self._max_limit}, name={self.name!r})"
        )

    # -- samples -------------------------------------------------------------------------

    def _sampled(self, start: float, dropped: bool | None) -> None:
        """A call admitted at ``start`` ended (``dropped``, or None: no sample)."""
        if dropped is None:
            return
        new = self._limits.sample(start, self._clock.monotonic(), self._core.in_flight, dropped)
        if new is not None:
            self._resize(new)

    def _resize(self, limit: int) -> None:
        self._max_concurrent = limit
        self._core.resize(limit, self._max_queue)
        if GLOBAL_LISTENERS or self._listeners:
            self._emit_event("limit_change", LimitChanged(limit))

    def _dropped_by(self, exc: BaseException) -> bool | None:
        if not isinstance(exc, Exception):
            return None  # cancelled or interrupted: says nothing about the dependency
        return judge("dropped_on", self._dropped_on, exc, False)

    def _dropped_result(self, result: Any) -> bool:
        check = self._dropped_if
        return check is not None and judge("dropped_if", check, result, False)

    # -- drivers: a bulkhead's, around a timed call ------------------------------------------

    def _sync_runner(self, inner: Runner) -> Runner:
        now = self._clock.monotonic
        sampled, dropped_by, dropped_result = (
            self._sampled,
            self._dropped_by,
            self._dropped_result,
        )

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = now()
            try:
                result = inner(*args, **kwargs)
            except BaseException as exc:
                sampled(start, dropped_by(exc))
                raise
            sampled(start, dropped_result(result))
            return result

        return super()._sync_runner(timed)

    def _async_runner(self, inner: AsyncRunner) -> AsyncRunner:
        now = self._clock.monotonic
        sampled, dropped_by, dropped_result = (
            self._sampled,
            self._dropped_by,
            self._dropped_result,
        )

        async def timed(*args: Any, **kwargs: Any) -> Any:
            start = now()
            try:
                result = await inner(*args, **kwargs)
            except BaseException as exc:
                sampled(start, dropped_by(exc))
                raise
            sampled(start, dropped_result(result))
            return result

        return super()._async_runner(timed)

    # -- context managers: a bulkhead's, timed -------------------------------------------

    def _block_started(self) -> None:
        self._starts.set((*self._starts.get(), self._clock.monotonic()))

    def _block_ended(self, exc: BaseException | None) -> None:
        starts = self._starts.get()
        if starts:  # else an unmatched exit: the bulkhead's __exit__ says so
            self._starts.set(starts[:-1])
            self._sampled(starts[-1], False if exc is None else self._dropped_by(exc))

    def __enter__(self) -> AdaptiveConcurrency:
        super().__enter__()
        self._block_started()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._block_ended(exc)
        super().__exit__(exc_type, exc, tb)

    async def __aenter__(self) -> AdaptiveConcurrency:
        await super().__aenter__()
        self._block_started()
        return self

    # __aexit__ is the bulkhead's, which leaves through __exit__ above.
