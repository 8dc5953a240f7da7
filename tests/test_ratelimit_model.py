"""The token bucket against a small reference model (hypothesis).

The model is the textbook token bucket, in exact fractions: ``tokens`` refill at one
per ``interval`` up to ``burst``, a request takes ``cost`` tokens at once if they are
there, else (if the wait is within ``max_wait``) takes them on credit and is admitted
when the debt has refilled, else is refused with the wait as ``retry_after``. Granted
requests form a stack; a cancelled reservation is marked, and cancelled entries on top
of the stack give their tokens back (an entry below a live one cannot: later callers
are already promised the slots behind it).

Two machines drive the real thing side by side with the model:

- the decision core (``BucketCore``) directly, with reservations held across steps and
  cancelled at random, which a sequential caller of the policy cannot do;
- the policy (``TokenBucket.acquire``) on a ``FakeClock``, through several limiters of
  different ``max_wait`` sharing one bucket in a ``MemoryStore``: a waiting caller sleeps
  on the clock, so its admission time is the clock's time when ``acquire`` returns.

Both check every decision (granted now, admitted at which time, or refused with which
``retry_after``), the tokens available, and the bound: for every two admission times
``t1 <= t2``, the tokens admitted in ``[t1, t2]`` never exceed
``burst + rate * (t2 - t1) / per``. Rates, periods, costs and times are small binary
fractions, so the core's floating point is exact and the comparison can be exact too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from resilience import RateLimited, TokenBucket
from resilience._core.bucket import BucketCore, LimiterSettings, Reservation
from resilience.stores import LimiterStore, MemoryStore
from resilience.testing import FakeClock

RATES = [1, 2, 4, 8]
PERS = [0.5, 1.0, 2.0]
BURSTS = [1, 1.5, 2, 3, 5]
COSTS = [1, 1, 1, 0.5, 1.5, 2, 3]
MAX_WAITS = [0.0, 0.25, 1.0, 4.0, math.inf]
INF = math.inf


@dataclass
class Entry:
    """A granted request in the model: tokens taken, when it is admitted."""

    cost: Fraction
    slot: Fraction
    cancelled: bool = False


class Model:
    """The textbook bucket (tokens may go negative: the debt of reservations)."""

    def __init__(self, rate: float, per: float, burst: float, now: Fraction) -> None:
        self.interval = Fraction(per) / Fraction(rate)
        self.burst = Fraction(burst)
        self.tokens = self.burst
        self.last = now
        self.stack: list[Entry] = []

    def refill(self, now: Fraction) -> None:
        assert now >= self.last
        self.tokens = min(self.burst, self.tokens + (now - self.last) / self.interval)
        self.last = now

    def request(
        self, now: Fraction, cost: Fraction, max_wait: float
    ) -> tuple[str, Fraction, Entry | None]:
        """("granted", now) | ("reserved", slot) | ("refused", retry_after)."""
        self.refill(now)
        if self.tokens >= cost:
            self.tokens -= cost
            entry = Entry(cost, now)
            self.stack.append(entry)
            return "granted", now, entry
        wait = (cost - self.tokens) * self.interval
        if max_wait != INF and wait > Fraction(max_wait):
            return "refused", wait, None
        self.tokens -= cost
        entry = Entry(cost, now + wait)
        self.stack.append(entry)
        return "reserved", now + wait, entry

    def cancel(self, now: Fraction, entry: Entry) -> None:
        self.refill(now)
        entry.cancelled = True
        while self.stack and self.stack[-1].cancelled:
            self.tokens = min(self.burst, self.tokens + self.stack.pop().cost)

    def admitted(self) -> list[tuple[Fraction, Fraction]]:
        return sorted((e.slot, e.cost) for e in self.stack if not e.cancelled)


def check_bound(admitted: list[tuple[Fraction, Fraction]], model: Model) -> None:
    """Every interval between two admission times holds at most burst + its refill."""
    for i, (start, _) in enumerate(admitted):
        total = Fraction(0)
        for end, cost in admitted[i:]:
            total += cost
            limit = model.burst + (end - start) / model.interval
            assert total <= limit, (
                f"{total} tokens admitted in [{start}, {end}], more than {limit}: {admitted}"
            )
    # Same-time admissions are all counted from the first of them: sorted order puts
    # them together, and the loop above starts at each of them.


def exact(value: float) -> Fraction:
    return Fraction(value)


# -- the decision core, with reservations held and cancelled ------------------------------


class CoreMachine(RuleBasedStateMachine):
    """``BucketCore`` and the model take the same requests, advances and cancellations."""

    @initialize(
        rate=st.sampled_from(RATES),
        per=st.sampled_from(PERS),
        burst=st.sampled_from(BURSTS),
        start=st.sampled_from([0.0, 3.5, 1000.0]),
    )
    def setup(self, rate: int, per: float, burst: float, start: float) -> None:
        self.clock = FakeClock(start)
        self.core = self.make_core(LimiterSettings(float(rate), per, float(burst)), self.clock)
        self.model = self.model_class(rate, per, burst, exact(start))
        self.pending: list[tuple[Reservation, Entry]] = []

    model_class = Model

    def make_core(self, settings: LimiterSettings, clock: FakeClock) -> BucketCore:
        """The backend under test (a shared store's tests substitute theirs)."""
        return BucketCore(settings, clock)

    def now(self) -> Fraction:
        return exact(self.clock.monotonic())

    @rule(sixteenths=st.integers(0, 40))
    def advance(self, sixteenths: int) -> None:
        self.clock.advance(sixteenths / 16)
        now = self.now()
        # Reservations whose slot has come are admitted: they can no longer be cancelled.
        self.pending = [(r, e) for r, e in self.pending if e.slot > now]

    @rule(cost=st.sampled_from(COSTS), max_wait=st.sampled_from(MAX_WAITS))
    def request(self, cost: float, max_wait: float) -> None:
        if cost > self.core.settings.burst:
            return  # the policy refuses such a cost before asking the core
        now = self.now()
        decision = self.core.acquire(float(cost), max_wait)
        kind, when, entry = self.model.request(now, exact(cost), max_wait)
        if kind == "granted":
            assert decision is None, f"the model grants {cost} at once, the core says {decision}"
        elif kind == "refused":
            assert isinstance(decision, float), f"the model refuses, the core says {decision}"
            assert exact(decision) == when, "retry_after differs from the model's"
        else:
            assert isinstance(decision, Reservation), f"the model reserves, core: {decision}"
            assert exact(decision.delay) > 0
            assert now + exact(decision.delay) == when, "admitted at another time than the model"
            assert entry is not None
            self.pending.append((decision, entry))

    @precondition(lambda self: self.pending)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        index = data.draw(st.integers(0, len(self.pending) - 1), label="cancelled waiter")
        reservation, entry = self.pending.pop(index)
        self.core.cancel(reservation)
        self.model.cancel(self.now(), entry)

    @invariant()
    def same_tokens(self) -> None:
        now = self.now()
        self.model.refill(now)
        assert exact(self.core.available()) == self.model.tokens

    @invariant()
    def bounded(self) -> None:
        check_bound(self.model.admitted(), self.model)


TestCore = CoreMachine.TestCase
TestCore.settings = settings(
    max_examples=300,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


# -- the policy: sequential callers of limiters sharing one bucket --------------------------


steps = st.lists(
    st.tuples(
        st.integers(0, 40),  # sixteenths of a second before the call
        st.sampled_from(COSTS),
        st.integers(0, len(MAX_WAITS) - 1),  # which limiter (each has its own max_wait)
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(
    rate=st.sampled_from(RATES),
    per=st.sampled_from(PERS),
    burst=st.sampled_from(BURSTS),
    schedule=steps,
)
def test_policy_matches_the_model(
    rate: int, per: float, burst: float, schedule: list[tuple[int, float, int]]
) -> None:
    check_policy(MemoryStore(), rate, per, burst, schedule)


def check_policy(
    store: LimiterStore, rate: int, per: float, burst: float, schedule: list[tuple[int, float, int]]
) -> None:
    """Run ``schedule`` through limiters sharing bucket "k" of ``store``, checking each
    decision against the model (a shared store's tests run this too)."""
    clock = FakeClock()
    limiters = [
        TokenBucket(
            rate, per, burst, max_wait=None if w == INF else w, store=store, key="k", clock=clock
        )
        for w in MAX_WAITS
    ]
    model = Model(rate, per, burst, Fraction(0))
    for sixteenths, cost, which in schedule:
        clock.advance(sixteenths / 16)
        if cost > burst:
            with pytest.raises(ValueError, match="cost must be at most burst"):
                limiters[which].acquire(cost)
            continue
        now = exact(clock.monotonic())
        kind, when, _ = model.request(now, exact(cost), MAX_WAITS[which])
        if kind == "refused":
            with pytest.raises(RateLimited) as info:
                limiters[which].acquire(cost)
            assert info.value.retry_after is not None
            assert exact(info.value.retry_after) == when
            assert clock.monotonic() == now, "a refused call must not wait"
        else:
            waited = limiters[which].acquire(cost)
            # The caller goes ahead when acquire returns: exactly at its slot.
            assert exact(clock.monotonic()) == when
            assert exact(waited) == when - now
    check_bound(model.admitted(), model)
