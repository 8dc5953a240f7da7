"""CircuitBreaker against a small reference model (hypothesis stateful testing).

A ``RuleBasedStateMachine`` drives a real breaker on a ``FakeClock`` and, side by side,
a plain-Python model of the semantics in docs/circuit-breaker.md: a list of outcomes
(time window) or a deque (count window), the state, ``open_until``, the open streak and
the half-open trial bookkeeping. After every step the two must agree on the reported state and on
``metrics()``; every call (``call``, ``acall`` on asyncio, or a ``with breaker:`` block
held open across steps) checks admission, ``CircuitOpen.retry_after`` and the
exception's state; with a listener attached, the emitted events must match too.

Times and durations are multiples of 1/8 and time windows are 2.5, 5, 10 or 20 seconds
(bucket widths 0.25 .. 2), so all the clock arithmetic is exact in binary floating point
and the model can use the same formulas as the contract without rounding surprises.
"""

from __future__ import annotations

import contextvars
import dataclasses
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from resilience import (
    CallOutcome,
    CircuitBreaker,
    CircuitOpen,
    CountWindow,
    Event,
    StateChange,
)
from resilience import Rejected as RejectedDetails
from resilience.testing import FakeClock

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
FORCED_OPEN, DISABLED = "forced_open", "disabled"
BUCKETS = 10
BAD = "bad result"


class Boom(Exception):
    """Counts as a failure (``failure_on=(Boom,)``)."""


class Ignored(Boom):
    """Ignored (``ignore=(Ignored,)``), although it is also a Boom: ignore wins."""


class Benign(ValueError):
    """Not in ``failure_on``: the call counts as a success."""


class Cancelled(BaseException):
    """Not an Exception (like a cancellation): no outcome, the permit is given back."""


class Weird(Exception):
    """The classifying predicates raise on it (with ``predicates``): it must count as a
    failure (``ignore`` raising means "not ignored"). Without them: a success."""


WEIRD = "weird result"  # failure_if raises on it: a failure


def is_bad(result: object) -> bool:
    if result == WEIRD:
        raise RuntimeError("failure_if is broken")
    return result == BAD


def is_failure(exc: BaseException) -> bool:
    if isinstance(exc, Weird):
        raise RuntimeError("failure_on is broken")
    return isinstance(exc, Boom)


def is_ignored(exc: BaseException) -> bool:
    if isinstance(exc, Weird):
        raise RuntimeError("ignore is broken")
    return isinstance(exc, Ignored)


# -- open_for callables (named, so that hypothesis prints readable repros) -------------


@dataclass(frozen=True)
class OpenForLinear:
    step: float

    def __call__(self, consecutive_opens: int) -> float:
        return self.step * consecutive_opens


@dataclass(frozen=True)
class OpenForTable:
    """Durations by streak; a bad entry (negative) or a missing one (IndexError) makes
    the breaker stay open as long as the previous time."""

    durations: tuple[float, ...]

    def __call__(self, consecutive_opens: int) -> float:
        return self.durations[consecutive_opens - 1]


# -- configurations ----------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    window: float | CountWindow
    minimum_calls: int
    failure_rate: float | None
    consecutive_failures: int | None
    slow_call_duration: float | None
    slow_call_rate: float
    open_for: float | Callable[[int], float]
    half_open_calls: int
    failure_if: bool
    predicates: bool  # failure_on and ignore as predicates instead of exception types
    listen: bool
    eager_metrics: bool  # check metrics() after every step, or only in a rule
    start: float


@st.composite
def configs(draw: st.DrawFn, window: st.SearchStrategy[float | CountWindow]) -> Config:
    failure_rate = draw(st.none() | st.sampled_from([0.25, 0.28, 0.3, 0.5, 0.6, 0.75, 1.0]))
    consecutive = draw(st.none() | st.integers(1, 4))
    slow = draw(st.none() | st.sampled_from([0.5, 1.0, 2.0]))
    if failure_rate is None and consecutive is None and slow is None:
        consecutive = draw(st.integers(1, 4))
    return Config(
        window=draw(window),
        minimum_calls=draw(st.integers(1, 6)),
        failure_rate=failure_rate,
        consecutive_failures=consecutive,
        slow_call_duration=slow,
        slow_call_rate=draw(st.sampled_from([0.25, 0.3, 0.5, 0.6, 0.7, 1.0])),
        open_for=draw(
            st.sampled_from(
                [
                    0.0,
                    1.0,
                    5.0,
                    30.0,
                    OpenForLinear(2.0),
                    OpenForTable((1.0, -1.0, 4.0)),
                ]
            )
        ),
        half_open_calls=draw(st.integers(1, 3)),
        failure_if=draw(st.booleans()),
        predicates=draw(st.booleans()),
        listen=draw(st.booleans()),
        eager_metrics=draw(st.booleans()),
        start=draw(st.sampled_from([0.0, 3.0, 1000.0])),
    )


TIME_WINDOWS = st.sampled_from([2.5, 5.0, 10.0, 20.0])
COUNT_WINDOWS = st.integers(1, 6).map(CountWindow)

ADVANCES = st.sampled_from([0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 10.0, 30.0]) | st.integers(0, 400).map(
    lambda k: k / 8
)
DURATIONS = st.sampled_from([0.0, 0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0])
# Failures are frequent so that the breaker trips often and the open/half-open paths run.
CALL_KINDS = st.sampled_from(
    [
        "success",
        "success",
        "failure",
        "failure",
        "failure",
        "bad_result",
        "ignored",
        "benign",
        "cancel",
        "weird",
        "weird_result",
    ]
)
EXIT_KINDS = st.sampled_from(["success", "failure", "ignored", "benign", "cancel", "weird"])
RESULTS = {"bad_result": BAD, "weird_result": WEIRD}


def make_exception(kind: str) -> BaseException | None:
    return {
        "failure": Boom("boom"),
        "ignored": Ignored("ignored"),
        "benign": Benign("benign"),
        "cancel": Cancelled("cancelled"),
        "weird": Weird("weird"),
    }.get(kind)


# -- the reference model -------------------------------------------------------------------


@dataclass(frozen=True)
class ModelPermit:
    epoch: int
    trial: bool
    ident: int


@dataclass(frozen=True)
class Rejected:
    retry_after: float | None


def at_least(part: int, whole: int, rate: float) -> bool:
    """``part / whole >= rate``, exactly, with ``rate`` meant as the decimal it is written
    as (0.28 of 25 calls is 7 calls)."""
    return Fraction(part, whole) >= Fraction(repr(rate))


# An expected event: (type, from_state, to_state, retry_after, duration, exception).
ExpectedEvent = tuple[str, str | None, str | None, float | None, float | None, BaseException | None]


class Model:
    """The breaker as the contract describes it, written for clarity, not speed."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.state = CLOSED
        self.epoch = 0
        self.open_until = 0.0
        self.last_open_duration = 0.0  # what a failing open_for callable falls back to
        self.opens = 0
        self.consecutive = 0
        self.trials_in_flight: set[int] = set()
        self.trials_ok = 0
        self.trials_slow = 0
        self.outcomes: list[tuple[float, bool, bool]] | deque[tuple[bool, bool]]
        self.outcomes = self._fresh_window()
        self.events: list[ExpectedEvent] = []
        self._ids = 0

    # window ---------------------------------------------------------------------

    def _fresh_window(self) -> list[tuple[float, bool, bool]] | deque[tuple[bool, bool]]:
        if isinstance(self.cfg.window, CountWindow):
            return deque(maxlen=self.cfg.window.size)
        return []

    def _bucket_end(self, t: float) -> float:
        assert not isinstance(self.cfg.window, CountWindow)
        width = self.cfg.window / BUCKETS
        return (t // width + 1) * width

    def _add(self, now: float, failed: bool, slow: bool) -> None:
        if isinstance(self.outcomes, deque):
            self.outcomes.append((failed, slow))
        else:
            self.outcomes.append((self._bucket_end(now), failed, slow))

    def _kept(self, now: float) -> list[tuple[bool, bool]]:
        if isinstance(self.outcomes, deque):
            return list(self.outcomes)
        assert not isinstance(self.cfg.window, CountWindow)
        oldest = self._bucket_end(now) - self.cfg.window
        return [(f, s) for end, f, s in self.outcomes if end > oldest]

    def totals(self, now: float) -> tuple[int, int, int]:
        kept = self._kept(now)
        return len(kept), sum(f for f, _ in kept), sum(s for _, s in kept)

    # reading ----------------------------------------------------------------------

    def reported_state(self, now: float) -> str:
        if self.state == OPEN and now >= self.open_until:
            return HALF_OPEN
        return self.state

    def metrics(self, now: float) -> dict[str, Any]:
        if self.state == DISABLED:
            calls = failures = slow = 0
        else:
            calls, failures, slow = self.totals(now)
        return {
            "state": self.reported_state(now),
            "calls": calls,
            "failures": failures,
            "slow_calls": slow,
            "failure_rate": failures / calls if calls else 0.0,
            "slow_call_rate": slow / calls if calls else 0.0,
            "consecutive_failures": self.consecutive,
            "consecutive_opens": self.opens,
        }

    # transitions ------------------------------------------------------------------

    def _open_duration(self) -> float:
        spec = self.cfg.open_for
        if not callable(spec):
            return spec
        try:
            seconds = float(spec(self.opens))
        except Exception:
            return self.last_open_duration
        if not math.isfinite(seconds) or seconds < 0:
            return self.last_open_duration
        return seconds

    def transition(self, to: str, now: float) -> None:
        came_from = self.state
        self.state = to
        self.epoch += 1
        self.trials_in_flight.clear()
        self.trials_ok = self.trials_slow = 0
        self.consecutive = 0
        self.outcomes = self._fresh_window()
        if to == OPEN:
            self.opens += 1
            self.last_open_duration = self._open_duration()
            self.open_until = now + self.last_open_duration
        elif to in (CLOSED, DISABLED):
            self.opens = 0
        if came_from != to:
            self.events.append(("state_change", came_from, to, None, None, None))

    def force(self, action: str, now: float) -> None:
        if action == "open":
            self.transition(FORCED_OPEN, now)
        elif action == "disable":
            self.transition(DISABLED, now)
        elif action == "close":
            if self.state != CLOSED:
                self.transition(CLOSED, now)
        elif action == "reset":
            self.transition(CLOSED, now)
        else:
            raise AssertionError(action)

    # calls --------------------------------------------------------------------------

    def acquire(self, now: float) -> ModelPermit | Rejected:
        result = self._acquire(now)
        if isinstance(result, Rejected):
            self.events.append(("rejected", None, None, result.retry_after, None, None))
        return result

    def _acquire(self, now: float) -> ModelPermit | Rejected:
        self._ids += 1
        if self.state in (CLOSED, DISABLED):
            return ModelPermit(self.epoch, False, self._ids)
        if self.state == FORCED_OPEN:
            return Rejected(None)
        if self.state == OPEN:
            if now < self.open_until:
                return Rejected(self.open_until - now)
            self.transition(HALF_OPEN, now)
        assert self.state == HALF_OPEN
        if len(self.trials_in_flight) + self.trials_ok < self.cfg.half_open_calls:
            self.trials_in_flight.add(self._ids)
            return ModelPermit(self.epoch, True, self._ids)
        return Rejected(0.0)

    def finish(
        self,
        permit: ModelPermit,
        failed: bool | None,
        start: float,
        now: float,
        exc: BaseException | None,
    ) -> None:
        """The call admitted with ``permit`` at ``start`` ended at ``now``, raising ``exc``.

        ``failed`` is None when there is no outcome (ignored exception, cancellation).
        """
        duration = now - start
        slow = self.cfg.slow_call_duration is not None and duration >= self.cfg.slow_call_duration
        if failed is None:
            self.trials_in_flight.discard(permit.ident)
        elif permit.trial:
            if permit.ident in self.trials_in_flight:
                self._finish_trial(permit, failed, slow, now)
        elif self.state == CLOSED and permit.epoch == self.epoch:
            self._finish_closed(failed, slow, now)
        kind = "ignored" if failed is None else "failure" if failed else "success"
        self.events.append((kind, None, None, None, duration, exc))

    def _finish_trial(self, permit: ModelPermit, failed: bool, slow: bool, now: float) -> None:
        self.trials_in_flight.discard(permit.ident)
        if failed:
            self.transition(OPEN, now)
            return
        self.trials_ok += 1
        self.trials_slow += slow
        needed = self.cfg.half_open_calls
        if self.trials_ok < needed:
            return
        if self.cfg.slow_call_duration is not None and at_least(
            self.trials_slow, needed, self.cfg.slow_call_rate
        ):
            self.transition(OPEN, now)
        else:
            self.transition(CLOSED, now)

    def _finish_closed(self, failed: bool, slow: bool, now: float) -> None:
        cfg = self.cfg
        self._add(now, failed, slow)
        if failed:
            self.consecutive += 1
            if (
                cfg.consecutive_failures is not None
                and self.consecutive >= cfg.consecutive_failures
            ):
                self.transition(OPEN, now)
                return
        else:
            self.consecutive = 0
            if not slow:
                return  # a plain success never trips the breaker
        calls, failures, slow_calls = self.totals(now)
        minimum = cfg.minimum_calls
        if isinstance(cfg.window, CountWindow):
            # A count window never holds more than its size: minimum_calls is capped
            # there (as in resilience4j) instead of the rates never being evaluated.
            minimum = min(minimum, cfg.window.size)
        if calls < minimum:
            return
        too_many_failures = cfg.failure_rate is not None and at_least(
            failures, calls, cfg.failure_rate
        )
        too_many_slow = cfg.slow_call_duration is not None and at_least(
            slow_calls, calls, cfg.slow_call_rate
        )
        if too_many_failures or too_many_slow:
            self.transition(OPEN, now)


# -- the state machine -----------------------------------------------------------------------


@dataclass
class Held:
    """A ``with breaker:`` block entered and not yet exited."""

    ctx: contextvars.Context
    own_context: bool  # False: entered in the shared context, so exited LIFO
    permit: ModelPermit
    start: float


def observed(event: Event) -> ExpectedEvent:
    details = event.details
    if event.type == "state_change":
        assert isinstance(details, StateChange)
        assert event.exception is None
        return (event.type, details.from_state, details.to_state, None, None, None)
    if event.type == "rejected":
        assert isinstance(details, RejectedDetails)
        assert event.exception is None
        return (event.type, None, None, details.retry_after, None, None)
    assert isinstance(details, CallOutcome)
    return (event.type, None, None, None, details.duration, event.exception)


class BreakerMachine(RuleBasedStateMachine):
    window: st.SearchStrategy[float | CountWindow] = TIME_WINDOWS

    def __init__(self) -> None:
        super().__init__()
        self.breaker: CircuitBreaker | None = None
        self.held: list[Held] = []
        self.events: list[Event] = []
        self.shared_ctx = contextvars.Context()

    @initialize(data=st.data())
    def setup(self, data: st.DataObject) -> None:
        self.start(data.draw(configs(self.window), label="config"))

    def start(self, cfg: Config) -> None:
        self.cfg = cfg
        self.clock = FakeClock(cfg.start)
        self.breaker = CircuitBreaker(
            "model",
            failure_rate=cfg.failure_rate,
            minimum_calls=cfg.minimum_calls,
            consecutive_failures=cfg.consecutive_failures,
            window=cfg.window,
            slow_call_duration=cfg.slow_call_duration,
            slow_call_rate=cfg.slow_call_rate,
            open_for=cfg.open_for,
            half_open_calls=cfg.half_open_calls,
            failure_on=is_failure if cfg.predicates else (Boom,),
            ignore=is_ignored if cfg.predicates else (Ignored,),
            failure_if=is_bad if cfg.failure_if else None,
            clock=self.clock,
            store=self.make_store(),
        )
        if cfg.listen:
            self.breaker.listen(self.events.append)
        self.model = Model(cfg)

    def make_store(self) -> Any:
        """The breaker's ``store=`` (None: in memory); shared stores run the same machine."""
        return None

    @property
    def now(self) -> float:
        return self.clock.monotonic()

    def check_rejection(self, expected: ModelPermit | Rejected, exc: CircuitOpen) -> None:
        assert isinstance(expected, Rejected), f"breaker rejected, model admits: {exc}"
        assert exc.retry_after == expected.retry_after, (exc.retry_after, expected.retry_after)
        assert exc.name == "model"
        assert exc.state == self.model.reported_state(self.now)

    def verdict(self, kind: str) -> bool | None:
        """What the model counts a call ending in ``kind`` as (None: no outcome)."""
        if kind in ("ignored", "cancel"):
            return None
        if kind in ("bad_result", "weird_result"):
            return self.cfg.failure_if
        if kind == "weird":
            return self.cfg.predicates
        return kind == "failure"

    # rules ------------------------------------------------------------------------------

    @rule(seconds=ADVANCES)
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(kind=CALL_KINDS, duration=DURATIONS, use_async=st.sampled_from([False] * 4 + [True]))
    def call(self, kind: str, duration: float, use_async: bool = False) -> None:
        """``breaker.call(fn)``, or ``await breaker.acall(afn)`` (on asyncio), where the
        function takes ``duration`` seconds of fake time and ends as ``kind`` says."""
        assert self.breaker is not None
        breaker = self.breaker
        start = self.now
        expected = self.model.acquire(start)
        ran: list[bool] = []
        exc = make_exception(kind)

        def fn() -> str:
            ran.append(True)
            self.clock.advance(duration)
            if exc is not None:
                raise exc
            return RESULTS.get(kind, "ok")

        async def afn() -> str:
            return fn()

        async def acall() -> str:
            return await breaker.acall(afn)

        raised: BaseException | None = None
        result = None
        try:
            result = anyio.run(acall) if use_async else breaker.call(fn)
        except (Exception, Cancelled) as caught:
            raised = caught
        if isinstance(raised, CircuitOpen):
            assert not ran, "a rejected call ran the function"
            self.check_rejection(expected, raised)
            return
        assert raised is exc, f"the call raised {raised!r}, the function raised {exc!r}"
        if exc is None:
            assert result == RESULTS.get(kind, "ok")
        assert ran
        assert isinstance(expected, ModelPermit), "breaker admitted, model rejects"
        self.model.finish(expected, self.verdict(kind), start, self.now, exc)

    @rule(duration=DURATIONS)
    def succeed(self, duration: float) -> None:
        """A call that returns normally (as ``call``; a rule of its own so that runs of
        successes, which close a half-open breaker, are common)."""
        self.call("success", duration)

    @precondition(lambda self: len(self.held) < 4)
    @rule(own_context=st.booleans())
    def enter(self, own_context: bool) -> None:
        """Start a call with ``with breaker:`` and keep it running."""
        assert self.breaker is not None
        ctx = contextvars.Context() if own_context else self.shared_ctx
        expected = self.model.acquire(self.now)
        try:
            ctx.run(self.breaker.__enter__)
        except CircuitOpen as rejected:
            self.check_rejection(expected, rejected)
            return
        assert isinstance(expected, ModelPermit), "breaker admitted, model rejects"
        self.held.append(Held(ctx, own_context, expected, self.now))

    @precondition(lambda self: self.held)
    @rule(index=st.integers(0, 3), kind=EXIT_KINDS)
    def exit(self, index: int, kind: str) -> None:
        """Finish a held call; blocks of the shared context are finished innermost first."""
        assert self.breaker is not None
        held = self.held[index % len(self.held)]
        if not held.own_context:
            held = [h for h in self.held if not h.own_context][-1]
        self.held.remove(held)
        exc = make_exception(kind)
        exc_type = None if exc is None else type(exc)
        suppress = held.ctx.run(self.breaker.__exit__, exc_type, exc, None)
        assert not suppress
        self.model.finish(held.permit, self.verdict(kind), held.start, self.now, exc)

    @rule(action=st.sampled_from(["open", "close", "reset", "disable"]), roll=st.integers(0, 3))
    def manual(self, action: str, roll: int) -> None:
        """Manual control, on one step in four: each action undoes most of the state the
        other rules build up, so it should not happen too often."""
        assert self.breaker is not None
        if roll:
            return
        getattr(self.breaker, action)()
        self.model.force(action, self.now)

    @rule()
    def metrics(self) -> None:
        self.check_metrics()

    # checks -----------------------------------------------------------------------------

    def check_metrics(self) -> None:
        assert self.breaker is not None
        actual = dataclasses.asdict(self.breaker.metrics())
        assert actual == self.model.metrics(self.now)

    @invariant()
    def agrees(self) -> None:
        if self.breaker is None:
            return
        assert self.breaker.state == self.model.reported_state(self.now)
        if self.cfg.eager_metrics:
            self.check_metrics()
        if self.cfg.listen:
            assert [observed(e) for e in self.events] == self.model.events

    def teardown(self) -> None:
        if self.breaker is not None:
            self.check_metrics()


SETTINGS = settings(
    max_examples=300,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


class TimeWindowMachine(BreakerMachine):
    window = TIME_WINDOWS


class CountWindowMachine(BreakerMachine):
    window = COUNT_WINDOWS


TestTimeWindowBreaker = TimeWindowMachine.TestCase
TestTimeWindowBreaker.settings = SETTINGS
TestCountWindowBreaker = CountWindowMachine.TestCase
TestCountWindowBreaker.settings = SETTINGS


# -- replayed scenarios ------------------------------------------------------------------------
#
# Paths that random runs reach only now and then, replayed step by step through the same
# machine (same model, same checks after every step).

BASE = Config(
    window=10.0,
    minimum_calls=1,
    failure_rate=0.5,
    consecutive_failures=None,
    slow_call_duration=None,
    slow_call_rate=1.0,
    open_for=5.0,
    half_open_calls=1,
    failure_if=False,
    predicates=False,
    listen=True,
    eager_metrics=True,
    start=0.0,
)

Step = tuple[str, dict[str, Any]]


def fail(duration: float = 0.0) -> Step:
    return ("call", {"kind": "failure", "duration": duration})


def succeed(duration: float = 0.0) -> Step:
    return ("call", {"kind": "success", "duration": duration})


def advance(seconds: float) -> Step:
    return ("advance", {"seconds": seconds})


def enter(own_context: bool = False) -> Step:
    return ("enter", {"own_context": own_context})


def leave(index: int, kind: str) -> Step:
    return ("exit", {"index": index, "kind": kind})


CHECK_METRICS: Step = ("metrics", {})


# name: (config, steps, the transitions the scenario must go through)
SCENARIOS: dict[str, tuple[Config, list[Step], list[str]]] = {
    # A slow success is evaluated like a failure, against both rates: here the failure
    # rate (1 of 2 >= 0.5) trips, the slow rate (1 of 2 < 1.0) would not.
    "slow success trips on the failure rate": (
        dataclasses.replace(BASE, minimum_calls=2, slow_call_duration=1.0),
        [fail(), succeed(1.0), succeed()],
        ["closed->open"],
    ),
    # ...and a plain success never trips, even with the failure rate over the threshold.
    "plain success never trips": (
        dataclasses.replace(BASE, minimum_calls=2),
        [fail(), succeed(), succeed(), fail()],
        ["closed->open"],
    ),
    # 7 failures in 25 calls is a rate of 0.28 (7 >= 0.28 * 25 is false in floats).
    "rate compared exactly": (
        dataclasses.replace(BASE, window=CountWindow(25), minimum_calls=25, failure_rate=0.28),
        [*[succeed()] * 18, *[fail()] * 6, CHECK_METRICS, fail(), succeed()],
        ["closed->open"],
    ),
    # open_for(2) is invalid and open_for(4) raises: each time the breaker stays open as
    # long as the time before (1s, then 4s).
    "open_for fallback": (
        dataclasses.replace(BASE, open_for=OpenForTable((1.0, -1.0, 4.0))),
        [
            fail(),
            succeed(),
            advance(1.0),
            fail(),
            succeed(),
            advance(0.5),
            succeed(),
            advance(0.5),
            fail(),
            succeed(),
            advance(4.0),
            fail(),
            succeed(),
            advance(3.875),
            succeed(),
            advance(0.125),
            succeed(),
            succeed(),
        ],
        [
            "closed->open",
            *["open->half_open", "half_open->open"] * 3,
            "open->half_open",
            "half_open->closed",
        ],
    ),
    # Held trials: the second is admitted while the first runs, a third is rejected
    # (retry_after 0), an abandoned one gives its slot back; one slow trial of two is a
    # slow rate of 0.5 and reopens, two fast ones close.
    "held trials": (
        dataclasses.replace(BASE, half_open_calls=2, slow_call_duration=1.0, slow_call_rate=0.5),
        [
            fail(),
            advance(5.0),
            enter(own_context=True),
            enter(),
            succeed(),
            leave(0, "cancel"),
            enter(),
            leave(1, "success"),
            advance(1.0),
            leave(0, "success"),
            succeed(),
            advance(5.0),
            succeed(),
            succeed(),
        ],
        [
            "closed->open",
            "open->half_open",
            "half_open->open",
            "open->half_open",
            "half_open->closed",
        ],
    ),
    # An outcome of a call admitted before a transition is not evidence any more.
    "stale outcomes ignored": (
        dataclasses.replace(BASE, minimum_calls=2, consecutive_failures=2),
        [
            enter(),
            enter(),
            fail(),
            fail(),
            leave(0, "failure"),
            advance(5.0),
            succeed(),
            leave(0, "failure"),
            CHECK_METRICS,
        ],
        ["closed->open", "open->half_open", "half_open->closed"],
    ),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_replayed_scenario(name: str) -> None:
    replay(BreakerMachine(), name)


def replay(machine: BreakerMachine, name: str) -> None:
    """Run scenario ``name`` on ``machine`` (shared stores' tests replay them too)."""
    cfg, steps, transitions = SCENARIOS[name]
    machine.start(cfg)
    machine.agrees()
    for rule_name, kwargs in steps:
        getattr(machine, rule_name)(**kwargs)
        machine.agrees()
    machine.teardown()
    seen = [f"{e[1]}->{e[2]}" for e in machine.model.events if e[0] == "state_change"]
    assert seen == transitions


# -- a few fixed scenarios the machine must be able to reach ---------------------------------


@pytest.mark.parametrize("window", [10.0, CountWindow(4)])
def test_model_and_breaker_trip_and_recover_together(window: float | CountWindow) -> None:
    """A scripted run through the main path, so a model that agrees with a breaker that
    never trips (both broken the same way) would still be caught."""
    clock = FakeClock()
    breaker = CircuitBreaker(
        failure_rate=0.5,
        minimum_calls=2,
        window=window,
        open_for=OpenForLinear(2.0),
        half_open_calls=2,
        clock=clock,
    )

    def fail() -> None:
        raise Boom

    breaker.call(lambda: None)
    with pytest.raises(Boom):
        breaker.call(fail)
    assert breaker.state == OPEN
    with pytest.raises(CircuitOpen) as info:
        breaker.call(lambda: None)
    assert info.value.retry_after == 2.0
    clock.advance(2.0)
    assert breaker.state == HALF_OPEN
    with pytest.raises(Boom):
        breaker.call(fail)
    assert breaker.metrics().consecutive_opens == 2
    clock.advance(4.0)
    breaker.call(lambda: None)
    assert breaker.state == HALF_OPEN
    breaker.call(lambda: None)
    assert breaker.state == CLOSED
    assert breaker.metrics().consecutive_opens == 0
