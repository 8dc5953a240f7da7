"""CircuitBreaker: the policy, its arguments, and thin sync/async drivers.

Decisions (admit, count, trip, close) belong to the backend the store hands out
(``_breaker_core.BreakerCore`` by default). This module validates arguments, classifies
outcomes, emits events, and drives the backend from sync and async code.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Mapping
from dataclasses import fields
from datetime import timedelta
from types import TracebackType
from typing import Any

import anyio

from .._core.breaker import (
    BreakerCore,
    BreakerMetrics,
    BreakerSettings,
    Permit,
)
from .._core.classify import failed, judge
from .._core.clock import Clock
from .._core.protocols import BreakerBackend, BreakerStore
from .._core.validation import (
    check_duration,
    check_exception_filter,
    check_fraction,
    check_mode,
    check_name,
    check_positive_int,
    check_predicate,
    check_window,
    show,
)
from .._core.windows import INF, CountWindow
from ..errors import CircuitOpen
from .events import GLOBAL_LISTENERS, CallOutcome, Event, Rejected, StateChange, emit
from .mode import ShadowMode
from .policy import AsyncRunner, Runner

__all__ = ["CircuitBreaker"]

# A verdict on one call: failed (True/False, or None for "no outcome": cancelled or
# ignored), slow, and how long it took (None when not measured).
_Verdict = tuple[bool | None, bool, float | None]


class CircuitBreaker(ShadowMode):
    """Stops calling a dependency that keeps failing, and probes it before trusting it again.

    See the docs page "Circuit breaker" for the state machine. Every argument is checked
    here; a bad one raises ``ValueError`` or ``TypeError`` naming it.
    """

    kind = "circuit_breaker"
    per_dependency = True
    reconfigurable = frozenset(
        {
            "failure_rate",
            "minimum_calls",
            "consecutive_failures",
            "window",
            "slow_call_duration",
            "slow_call_rate",
            "open_for",
            "half_open_calls",
            "failure_on",
            "ignore",
            "failure_if",
            "mode",
        }
    )

    def __init__(
        self,
        name: str | None = None,
        *,
        failure_rate: float | None = 0.5,
        minimum_calls: int = 10,
        consecutive_failures: int | None = None,
        window: float | timedelta | CountWindow = 60.0,
        slow_call_duration: float | timedelta | None = None,
        slow_call_rate: float = 1.0,
        open_for: float | timedelta | Callable[[int], float | timedelta] = 30.0,
        half_open_calls: int = 1,
        failure_on: type[BaseException]
        | tuple[type[BaseException], ...]
        | Callable[[BaseException], bool] = (Exception,),
        ignore: type[BaseException]
        | tuple[type[BaseException], ...]
        | Callable[[BaseException], bool] = (),
        failure_if: Callable[[Any], bool] | None = None,
        store: BreakerStore | None = None,
        key: str | None = None,
        mode: str = "enforce",
        clock: Clock | None = None,
    ) -> None:
        super().__init__(name, clock)
        #: The name of the breaker's state in its store (the breaker's name unless given).
        self.key: str | None = check_name(key, "key") if key is not None else self.name
        # Shadow mode: the state machine runs as usual, but calls it would reject run
        # anyway (their outcomes are not recorded: an enforcing breaker would not have
        # run them). Read only where a call would be rejected, never on the fast path.
        self._shadow = check_mode(mode)
        self._failure_on = check_exception_filter("failure_on", failure_on)
        self._ignore = check_exception_filter("ignore", ignore)
        self._failure_if = check_predicate("failure_if", failure_if)
        settings = _settings(
            failure_rate=failure_rate,
            minimum_calls=minimum_calls,
            consecutive_failures=consecutive_failures,
            window=window,
            slow_call_duration=slow_call_duration,
            slow_call_rate=slow_call_rate,
            open_for=open_for,
            half_open_calls=half_open_calls,
        )
        self._slow_after = settings.slow_call_duration
        # No slow-call timing and no result check: a success needs no verdict at all.
        self._plain = self._slow_after is None and self._failure_if is None
        # ...and nobody listening: one list cell the runners read on every call, kept
        # up to date by _listeners_changed.
        self._fast = [False]
        self._listeners_changed()
        if store is None:
            backend: BreakerBackend = BreakerCore(settings, self._clock, self._on_transition)
        elif isinstance(store, BreakerStore):
            backend = store.circuit_breaker(self.key, settings, self._clock, self._on_transition)
        else:
            raise TypeError(f"store must be a breaker store (or None), got {show(store)}")
        self._backend = backend
        # Permits held by ``with breaker:`` blocks, per thread/task.
        self._held: contextvars.ContextVar[tuple[tuple[Permit | None, float | None], ...]] = (
            contextvars.ContextVar(f"resilience-breaker-{id(self)}", default=())
        )
        self._compose()

    def _listeners_changed(self) -> None:
        fast = getattr(self, "_fast", None)  # None while __init__ has not set it yet
        if fast is not None:
            fast[0] = self._plain and not GLOBAL_LISTENERS and not self._listeners

    def _reconfigure(self, arguments: Mapping[str, object]) -> None:
        """New thresholds and classification, in place. The state is kept (an open
        breaker stays open), and the window's counts too unless its shape (size or
        duration) changes."""
        current = self.settings
        settings = _settings(**{field.name: arguments[field.name] for field in fields(current)})
        failure_on = check_exception_filter("failure_on", arguments["failure_on"])
        ignore = check_exception_filter("ignore", arguments["ignore"])
        failure_if = check_predicate("failure_if", arguments["failure_if"])
        self._failure_on, self._ignore = failure_on, ignore
        # Timing and the result check first, the fast flag last: a call that still takes
        # the fast path counts a success untimed, never a slow call as fast.
        self._slow_after = settings.slow_call_duration
        self._failure_if = failure_if
        self._plain = self._slow_after is None and self._failure_if is None
        self._listeners_changed()
        if settings != current:
            self._backend.configure(settings)

    # -- state and manual control --------------------------------------------------

    @property
    def settings(self) -> BreakerSettings:
        """The validated thresholds in force."""
        return self._backend.settings

    @property
    def state(self) -> str:
        """``closed``, ``open``, ``half_open``, ``forced_open`` or ``disabled`` (in shadow
        mode: the state it would be in)."""
        return self._backend.state

    def _live_settings(self) -> dict[str, Any]:
        settings = self.settings
        return {field.name: getattr(settings, field.name) for field in fields(settings)}

    def open(self) -> None:
        """Reject every call until :meth:`close` or :meth:`reset` (state ``forced_open``)."""
        self._backend.force("open")

    def close(self) -> None:
        """Close the breaker (from any state) with a fresh window; no-op when closed."""
        self._backend.force("close")

    def reset(self) -> None:
        """Back to the initial state: closed, empty window, no open streak."""
        self._backend.force("reset")

    def disable(self) -> None:
        """Admit every call and record nothing, until :meth:`close` or :meth:`reset`."""
        self._backend.force("disable")

    def metrics(self) -> BreakerMetrics:
        """State and outcome counts of the current window."""
        return self._backend.snapshot()

    # -- verdicts and events -------------------------------------------------------

    def _on_transition(self, from_state: str, to_state: str) -> None:
        if GLOBAL_LISTENERS or self._listeners:
            emit(
                self._listeners,
                Event(
                    self.kind,
                    self.name,
                    "state_change",
                    self._clock.monotonic(),
                    StateChange(from_state, to_state),
                    None,
                    self._shadow,
                ),
            )

    def _start(self) -> float | None:
        return None if self._fast[0] else self._clock.monotonic()

    def _judge(self, failed: bool | None, start: float | None) -> _Verdict:
        if start is None:
            return failed, False, None
        duration = self._clock.monotonic() - start
        slow_after = self._slow_after
        return failed, slow_after is not None and duration >= slow_after, duration

    def _judge_exception(self, exc: BaseException, start: float | None) -> _Verdict:
        return self._judge(failed(exc, self._failure_on, self._ignore), start)

    def _judge_result(self, result: Any, start: float | None) -> _Verdict:
        failure_if = self._failure_if
        failed = failure_if is not None and judge("failure_if", failure_if, result, True)
        return self._judge(failed, start)

    def _emit_outcome(self, verdict: _Verdict, exc: BaseException | None) -> None:
        failed, _, duration = verdict
        kind = "ignored" if failed is None else "failure" if failed else "success"
        emit(
            self._listeners,
            Event(
                self.kind,
                self.name,
                kind,
                self._clock.monotonic(),
                CallOutcome(duration),
                exc,
                self._shadow,
            ),
        )

    def _finish(self, permit: Permit, verdict: _Verdict, exc: BaseException | None) -> None:
        failed, slow, _ = verdict
        if failed is None:
            self._backend.release(permit)
        else:
            self._backend.record(permit, failed, slow)
        if GLOBAL_LISTENERS or self._listeners:
            self._emit_outcome(verdict, exc)

    async def _afinish(self, permit: Permit, verdict: _Verdict, exc: BaseException | None) -> None:
        failed, slow, _ = verdict
        # Shielded: a cancelled caller must still hand its permit back.
        with anyio.CancelScope(shield=True):
            if failed is None:
                await self._backend.arelease(permit)
            else:
                await self._backend.arecord(permit, failed, slow)
        if GLOBAL_LISTENERS or self._listeners:
            self._emit_outcome(verdict, exc)

    def _rejected(self) -> CircuitOpen:
        retry_after = self._backend.retry_after()
        if GLOBAL_LISTENERS or self._listeners:
            emit(
                self._listeners,
                Event(
                    self.kind,
                    self.name,
                    "rejected",
                    self._clock.monotonic(),
                    Rejected(retry_after),
                    None,
                    self._shadow,
                ),
            )
        return CircuitOpen(self.name, retry_after, self._backend.state)

    def _would_reject(self) -> None:
        """Shadow mode, where an enforcing breaker would reject: report it, let it run."""
        if GLOBAL_LISTENERS or self._listeners:
            self._rejected()

    # -- drivers -------------------------------------------------------------------

    def _sync_runner(self, inner: Runner) -> Runner:
        backend = self._backend
        acquire, record = backend.acquire, backend.record
        now = self._clock.monotonic
        judge_exception, judge_result = self._judge_exception, self._judge_result
        finish, rejected = self._finish, self._rejected
        fast = self._fast
        would_reject = self._would_reject

        def run(*args: Any, **kwargs: Any) -> Any:
            permit = backend.standing
            if permit is None:
                permit = acquire()
                if permit is None:
                    if not self._shadow:  # read per refusal: the mode can change
                        raise rejected()
                    would_reject()
                    return inner(*args, **kwargs)
            plain = fast[0]
            start = None if plain else now()
            try:
                result = inner(*args, **kwargs)
            except BaseException as exc:
                finish(permit, judge_exception(exc, start), exc)
                raise
            if plain:  # the common case: count the success, without building a verdict
                ok_until = permit.ok_until
                if ok_until is INF or now() < ok_until:
                    next(permit.ok)  # type: ignore[arg-type]
                else:
                    record(permit, False, False)
            else:
                finish(permit, judge_result(result, start), None)
            return result

        return run

    def _async_runner(self, inner: AsyncRunner) -> AsyncRunner:
        backend = self._backend
        nonblocking = backend.nonblocking
        acquire, record = backend.acquire, backend.record
        now = self._clock.monotonic
        judge_exception, judge_result = self._judge_exception, self._judge_result
        finish, afinish, rejected = self._finish, self._afinish, self._rejected
        fast = self._fast
        would_reject = self._would_reject

        async def asked(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            """A call without a standing permit: ask the backend (awaiting it unless it
            never blocks), and hand the outcome back the same way."""
            permit = acquire() if nonblocking else await backend.aacquire()
            if permit is None:
                if not self._shadow:
                    raise rejected()
                would_reject()
                return await inner(*args, **kwargs)
            start = now()
            try:
                result = await inner(*args, **kwargs)
            except BaseException as exc:
                verdict = judge_exception(exc, start)
                if nonblocking:
                    finish(permit, verdict, exc)
                else:
                    await afinish(permit, verdict, exc)
                raise
            if nonblocking:
                finish(permit, judge_result(result, start), None)
            else:
                await afinish(permit, judge_result(result, start), None)
            return result

        async def run(*args: Any, **kwargs: Any) -> Any:
            # A standing permit's outcomes never block (BreakerBackend's rule), whatever
            # the backend: the common case runs as with the in-memory breaker.
            permit = backend.standing
            if permit is None:
                return await asked(args, kwargs)
            plain = fast[0]
            start = None if plain else now()
            try:
                result = await inner(*args, **kwargs)
            except BaseException as exc:
                finish(permit, judge_exception(exc, start), exc)
                raise
            if plain:
                ok_until = permit.ok_until
                if ok_until is INF or now() < ok_until:
                    next(permit.ok)  # type: ignore[arg-type]
                else:
                    record(permit, False, False)
            else:
                finish(permit, judge_result(result, start), None)
            return result

        return run

    # -- context managers ------------------------------------------------------------

    def _enter(self, permit: Permit | None) -> None:
        if permit is None:
            if not self._shadow:
                raise self._rejected()
            self._would_reject()  # the block runs without a permit; nothing is recorded
        self._held.set((*self._held.get(), (permit, self._start())))

    def _exit(self, exc: BaseException | None) -> tuple[Permit | None, _Verdict]:
        held = self._held.get()
        if not held:
            raise RuntimeError(f"{self!r}: __exit__ without a matching __enter__")
        permit, start = held[-1]
        self._held.set(held[:-1])
        if exc is None:
            return permit, self._judge(False, start)
        return permit, self._judge_exception(exc, start)

    def __enter__(self) -> CircuitBreaker:
        self._enter(self._backend.acquire())
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        permit, verdict = self._exit(exc)
        if permit is not None:
            self._finish(permit, verdict, exc)

    async def __aenter__(self) -> CircuitBreaker:
        backend = self._backend
        self._enter(backend.acquire() if backend.nonblocking else await backend.aacquire())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        permit, verdict = self._exit(exc)
        if permit is not None:
            await self._afinish(permit, verdict, exc)


def _settings(
    *,
    failure_rate: object,
    minimum_calls: object,
    consecutive_failures: object,
    window: object,
    slow_call_duration: object,
    slow_call_rate: object,
    open_for: object,
    half_open_calls: object,
) -> BreakerSettings:
    rate = None if failure_rate is None else check_fraction("failure_rate", failure_rate)
    consecutive = (
        None
        if consecutive_failures is None
        else check_positive_int("consecutive_failures", consecutive_failures)
    )
    if rate is None and consecutive is None and slow_call_duration is None:
        raise ValueError(
            "failure_rate=None disables the failure-rate trigger; give consecutive_failures "
            "or slow_call_duration, or the breaker can never open"
        )
    window_spec: float | CountWindow
    if isinstance(window, CountWindow):
        window_spec = window
    else:
        # Timed: the ticker waits for the end of each of its buckets.
        window_spec = check_window("window", window, timed=True)
    slow = (
        None
        if slow_call_duration is None
        else check_duration("slow_call_duration", slow_call_duration, positive=True)
    )
    open_spec: float | Callable[[int], float]
    if callable(open_for) and not isinstance(open_for, timedelta):
        try:
            first = open_for(1)
        except Exception as exc:  # a wrong callable: say which argument it is
            error = TypeError if isinstance(exc, TypeError) else ValueError
            raise error(
                f"open_for must be a duration or a callable (consecutive_opens) -> duration; "
                f"open_for(1) raised {exc!r}"
            ) from exc
        check_duration("open_for(1)", first)  # fail at construction, not at the first trip
        open_spec = open_for
    else:
        open_spec = check_duration("open_for", open_for)
    return BreakerSettings(
        failure_rate=rate,
        minimum_calls=check_positive_int("minimum_calls", minimum_calls),
        consecutive_failures=consecutive,
        window=window_spec,
        slow_call_duration=slow,
        slow_call_rate=check_fraction("slow_call_rate", slow_call_rate),
        open_for=open_spec,
        half_open_calls=check_positive_int("half_open_calls", half_open_calls),
    )
