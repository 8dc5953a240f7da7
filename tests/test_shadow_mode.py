"""Shadow mode (``mode="metrics_only"``): breakers, token buckets and bulkheads decide as
usual and report what they would have done, but never reject, queue or delay a call."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import anyio
import pytest
from holders import Holders
from hypothesis import given, settings
from hypothesis import strategies as st

from resilience import (
    Acquired,
    AdaptiveConcurrency,
    AdaptiveThrottle,
    Bulkhead,
    BulkheadFull,
    CallOutcome,
    CircuitBreaker,
    CircuitOpen,
    Event,
    EventDetails,
    RateLimited,
    Rejected,
    StateChange,
    Throttled,
    TokenBucket,
)
from resilience.http.httpx import ResilientTransport
from resilience.testing import FakeClock

# -- arguments -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda mode: CircuitBreaker(mode=mode),
        lambda mode: TokenBucket(1, mode=mode),
        lambda mode: Bulkhead(1, mode=mode),
    ],
    ids=["breaker", "bucket", "bulkhead"],
)
def test_mode_is_checked_and_reported(make: Callable[[Any], Any]) -> None:
    assert make("enforce").mode == "enforce"
    assert make("metrics_only").mode == "metrics_only"
    for bad in ("shadow", "METRICS_ONLY", None, 1):
        with pytest.raises(ValueError, match=r"mode must be 'enforce' or 'metrics_only', got"):
            make(bad)


# -- circuit breaker -----------------------------------------------------------------------


def fail() -> None:
    raise ConnectionError("down")


def test_shadow_breaker_runs_every_call_and_reports_what_it_would_have_done(
    clock: FakeClock,
) -> None:
    breaker = CircuitBreaker(
        "pay",
        failure_rate=None,
        consecutive_failures=2,
        open_for=10,
        mode="metrics_only",
        clock=clock,
    )
    seen: list[Event] = []
    breaker.listen(seen.append)
    for _ in range(2):
        with pytest.raises(ConnectionError):
            breaker.call(fail)
    assert breaker.state == "open"  # the state it would be in
    ran = []
    assert breaker.call(lambda: ran.append(1) or "ok") == "ok"  # not rejected: it ran
    with pytest.raises(ConnectionError):  # a would-be rejected call's own failure passes
        breaker.call(fail)
    assert ran == [1]
    assert breaker.state == "open"  # calls it would have rejected are not evidence
    clock.advance(10)
    assert breaker.call(lambda: "trial") == "trial"  # the trial it would have admitted
    assert breaker.state == "closed"
    assert all(e.shadow for e in seen)
    assert [(e.type, e.details) for e in seen] == [
        ("failure", CallOutcome(duration=0.0)),
        ("state_change", StateChange(from_state="closed", to_state="open")),
        ("failure", CallOutcome(duration=0.0)),
        ("rejected", Rejected(retry_after=10.0)),
        ("rejected", Rejected(retry_after=10.0)),
        ("state_change", StateChange(from_state="open", to_state="half_open")),
        ("state_change", StateChange(from_state="half_open", to_state="closed")),
        ("success", CallOutcome(duration=0.0)),
    ]


def test_shadow_breaker_in_half_open_lets_the_calls_beyond_the_trials_run(
    clock: FakeClock,
) -> None:
    breaker = CircuitBreaker(
        failure_rate=None, consecutive_failures=1, open_for=1, mode="metrics_only", clock=clock
    )
    with pytest.raises(ConnectionError):
        breaker.call(fail)
    clock.advance(1)
    rejected = []
    breaker.listen(lambda e: rejected.append(e) if e.type == "rejected" else None)

    def nested() -> str:
        # The trial is running: an enforcing breaker would reject this second call.
        return breaker.call(lambda: "inner")

    assert breaker.call(nested) == "inner"
    assert len(rejected) == 1
    assert breaker.state == "closed"  # the trial succeeded


def test_shadow_breaker_forced_open_still_runs_calls(clock: FakeClock) -> None:
    breaker = CircuitBreaker(mode="metrics_only", clock=clock)
    breaker.open()
    assert breaker.state == "forced_open"
    assert breaker.call(lambda: 5) == 5
    with breaker:
        pass
    assert breaker.state == "forced_open"


def test_shadow_breaker_with_blocks(clock: FakeClock) -> None:
    breaker = CircuitBreaker(
        failure_rate=None, consecutive_failures=1, open_for=5, mode="metrics_only", clock=clock
    )
    with pytest.raises(ConnectionError), breaker:
        fail()
    assert breaker.state == "open"
    seen: list[Event] = []
    breaker.listen(seen.append)
    with pytest.raises(ConnectionError), breaker:  # would be rejected: runs, not recorded
        fail()
    assert [e.type for e in seen] == ["rejected"]
    clock.advance(5)
    with breaker:  # the trial
        pass
    assert breaker.state == "closed"


async def test_shadow_breaker_async(clock: FakeClock, anyio_backend: str) -> None:
    breaker = CircuitBreaker(
        failure_rate=None, consecutive_failures=1, open_for=5, mode="metrics_only", clock=clock
    )
    seen: list[Event] = []
    breaker.listen(seen.append)

    async def afail() -> None:
        raise ConnectionError("down")

    async def ok() -> str:
        return "ok"

    with pytest.raises(ConnectionError):
        await breaker.acall(afail)
    assert await breaker.acall(ok) == "ok"
    async with breaker:
        pass
    assert breaker.state == "open"
    assert [e.type for e in seen] == ["state_change", "failure", "rejected", "rejected"]


def test_enforcing_breaker_is_unchanged(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failure_rate=None, consecutive_failures=1, clock=clock)
    seen: list[Event] = []
    breaker.listen(seen.append)
    with pytest.raises(ConnectionError):
        breaker.call(fail)
    with pytest.raises(CircuitOpen):
        breaker.call(lambda: None)
    assert not any(e.shadow for e in seen)


# The shadow breaker's state machine is the enforcing one's: fed the same outcomes at the
# same times, it makes the same transitions, and reports as rejected exactly the calls
# the enforcing breaker rejects.

step = st.one_of(
    st.tuples(st.just("call"), st.booleans(), st.sampled_from([0.0, 0.5, 3.0])),
    st.tuples(st.just("wait"), st.sampled_from([1.0, 5.0, 20.0]), st.just(0.0)),
)


@settings(max_examples=150, deadline=None)
@given(
    steps=st.lists(step, max_size=60),
    half_open_calls=st.integers(1, 3),
    window=st.sampled_from([10.0, 60.0]),
)
def test_shadow_breaker_matches_an_enforcing_one(
    steps: list[tuple[str, Any, float]], half_open_calls: int, window: float
) -> None:
    options: dict[str, Any] = {
        "failure_rate": 0.5,
        "minimum_calls": 4,
        "consecutive_failures": 3,
        "slow_call_duration": 2.0,
        "window": window,
        "open_for": 4.0,
        "half_open_calls": half_open_calls,
    }
    clocks = FakeClock(), FakeClock()  # one each: a rejected call takes no time
    enforcing = CircuitBreaker(clock=clocks[0], **options)
    shadow = CircuitBreaker(mode="metrics_only", clock=clocks[1], **options)
    real: list[Event] = []
    shadowed: list[Event] = []
    enforcing.listen(real.append)
    shadow.listen(shadowed.append)

    def call(ok: bool, duration: float, clock: FakeClock) -> str:
        clock.advance(duration)
        if not ok:
            raise ConnectionError("down")
        return "ok"

    for kind, arg, duration in steps:
        if kind == "wait":
            for clock in clocks:
                clock.advance(arg)
            continue
        for breaker, clock in zip((enforcing, shadow), clocks, strict=True):
            try:
                breaker.call(call, arg, duration, clock)
            except ConnectionError:
                pass
            except CircuitOpen:
                assert breaker is enforcing
                clock.advance(duration)  # the shadow ran it: keep the clocks together
        assert shadow.state == enforcing.state

    def summary(events: list[Event]) -> list[tuple[str, EventDetails | None]]:
        return [(e.type, e.details) for e in events]

    assert summary(shadowed) == summary(real)
    assert all(e.shadow for e in shadowed)
    assert not any(e.shadow for e in real)


# -- token bucket --------------------------------------------------------------------------


def test_shadow_bucket_never_refuses_nor_waits(clock: FakeClock) -> None:
    limiter = TokenBucket(1, burst=2, max_wait=1.0, mode="metrics_only", name="api", clock=clock)
    seen: list[Event] = []
    limiter.listen(seen.append)
    assert [limiter.call(int, n) for n in range(5)] == [0, 1, 2, 3, 4]
    assert clock.sleeps == []  # nobody waited
    assert all(e.shadow for e in seen)
    # Two tokens free, one reserved (a 1 s wait), then refusals that take nothing.
    assert [(e.type, e.details) for e in seen] == [
        ("acquired", Acquired(waited=0.0)),
        ("acquired", Acquired(waited=0.0)),
        ("acquired", Acquired(waited=1.0)),
        ("rejected", Rejected(retry_after=2.0)),
        ("rejected", Rejected(retry_after=2.0)),
    ]
    assert limiter.available == -1.0  # the reserved token is spent, as when enforcing
    assert limiter.acquire() == 0.0
    with limiter:
        pass


async def test_shadow_bucket_async(clock: FakeClock, anyio_backend: str) -> None:
    limiter = TokenBucket(1, burst=1, max_wait=5.0, mode="metrics_only", clock=clock)
    seen: list[Event] = []
    limiter.listen(seen.append)

    async def one() -> int:
        return 1

    assert [await limiter.acall(one) for _ in range(3)] == [1, 1, 1]
    assert await limiter.aacquire() == 0.0
    async with limiter:
        pass
    assert clock.sleeps == []
    assert [(e.type, e.details) for e in seen] == [
        ("acquired", Acquired(waited=0.0)),
        ("acquired", Acquired(waited=1.0)),
        ("acquired", Acquired(waited=2.0)),
        ("acquired", Acquired(waited=3.0)),
        ("acquired", Acquired(waited=4.0)),
    ]


def test_shadow_bucket_reports_the_decisions_of_an_enforcing_one(clock: FakeClock) -> None:
    enforcing = TokenBucket(2, burst=3, clock=clock)
    shadow = TokenBucket(2, burst=3, mode="metrics_only", clock=clock)
    would_refuse: list[float | None] = []

    def on_event(e: Event) -> None:
        if e.type == "rejected":
            assert isinstance(e.details, Rejected)
            would_refuse.append(e.details.retry_after)

    shadow.listen(on_event)
    refused = []
    for gap in [0, 0, 0, 0, 0.2, 0.5, 0, 0, 1.5, 0, 0, 0, 0]:
        clock.advance(gap)
        shadow.call(lambda: None)
        try:
            enforcing.call(lambda: None)
        except RateLimited as exc:
            refused.append(exc.retry_after)
    assert refused
    assert would_refuse == refused


# -- bulkhead ------------------------------------------------------------------------------


def test_shadow_bulkhead_lets_everyone_in_and_reports_queue_and_rejections() -> None:
    bulkhead = Bulkhead(2, max_queue=1, mode="metrics_only", name="db")
    seen: list[Event] = []
    bulkhead.listen(seen.append)
    counts = []

    def nest(depth: int) -> int:
        counts.append(bulkhead.in_flight)
        if depth == 0:
            return 0
        return 1 + bulkhead.call(nest, depth - 1)

    assert bulkhead.call(nest, 4) == 4  # five calls at once: two slots, one queue place
    assert counts == [1, 2, 3, 4, 5]
    assert (bulkhead.in_flight, bulkhead.queued) == (0, 0)
    types = [e.type for e in seen if e.type != "released"]
    assert types == ["acquired", "acquired", "queued", "rejected", "rejected"]
    assert all(e.shadow for e in seen)
    assert bulkhead._core.free == [None, None]  # every slot came back, no debt left
    assert not bulkhead._core.waiters


def test_shadow_bulkhead_without_queue_reports_rejections_only() -> None:
    bulkhead = Bulkhead(1, max_queue=3, max_wait=0, mode="metrics_only")
    seen: list[str] = []
    bulkhead.listen(lambda e: seen.append(e.type))
    with bulkhead, bulkhead:
        pass
    assert seen == ["acquired", "rejected", "released", "released"]


def test_shadow_bulkhead_under_threads_leaks_nothing() -> None:
    bulkhead = Bulkhead(3, mode="metrics_only")
    running = 0
    peak = 0
    lock = threading.Lock()
    go = threading.Barrier(12)

    def work() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        with lock:
            running -= 1

    def worker() -> None:
        go.wait()
        for _ in range(300):
            bulkhead.call(work)
            with bulkhead:
                pass

    threads = [threading.Thread(target=worker) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    core = bulkhead._core
    assert (len(core.free), len(core.waiters), bulkhead.in_flight) == (3, 0, 0)


async def test_shadow_bulkhead_tasks(anyio_backend: str) -> None:
    bulkhead = Bulkhead(2, max_queue=0, mode="metrics_only")
    release = anyio.Event()
    inside = []

    async def hold(n: int) -> None:
        inside.append(n)
        await release.wait()

    async with anyio.create_task_group() as tg:
        for n in range(5):
            tg.start_soon(bulkhead.acall, hold, n)
        while len(inside) < 5:
            await anyio.sleep(0)
        assert bulkhead.in_flight == 5  # nobody rejected, nobody waiting
        assert bulkhead.queued == 0
        release.set()
    assert bulkhead.in_flight == 0
    async with bulkhead:
        assert bulkhead.in_flight == 1


# -- switching at run time -----------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: CircuitBreaker(),
        lambda: TokenBucket(1),
        lambda: Bulkhead(1),
        lambda: AdaptiveConcurrency(),
        lambda: AdaptiveThrottle(),
    ],
    ids=["breaker", "bucket", "bulkhead", "adaptive", "throttle"],
)
def test_mode_can_be_set_and_a_bad_one_is_refused(make: Callable[[], Any]) -> None:
    policy = make()
    policy.mode = "metrics_only"
    assert policy.mode == "metrics_only"
    with pytest.raises(ValueError, match=r"mode must be 'enforce' or 'metrics_only', got 'off'"):
        policy.mode = "off"
    assert policy.mode == "metrics_only"  # unchanged by the refused value
    policy.mode = "enforce"
    assert policy.mode == "enforce"


def test_a_breaker_switched_to_enforce_rejects_from_the_state_it_reached(
    clock: FakeClock,
) -> None:
    breaker = CircuitBreaker(
        failure_rate=None, consecutive_failures=1, open_for=5, mode="metrics_only", clock=clock
    )
    guarded = breaker(lambda: "ran")  # composed before the switch
    with pytest.raises(ConnectionError):
        breaker.call(fail)
    assert breaker.state == "open"
    assert guarded() == "ran"
    breaker.mode = "enforce"
    with pytest.raises(CircuitOpen):
        guarded()
    with pytest.raises(CircuitOpen), breaker:
        pass
    breaker.mode = "metrics_only"
    assert guarded() == "ran"


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
@pytest.mark.anyio
async def test_an_async_breaker_switches_both_ways(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failure_rate=None, consecutive_failures=1, open_for=5, clock=clock)

    @breaker
    async def guarded() -> str:
        return "ran"

    breaker.open()
    with pytest.raises(CircuitOpen):
        await guarded()
    breaker.mode = "metrics_only"
    assert await guarded() == "ran"
    breaker.mode = "enforce"
    with pytest.raises(CircuitOpen):
        await guarded()


def test_a_bucket_switched_to_enforce_refuses_what_shadow_mode_let_through(
    clock: FakeClock,
) -> None:
    bucket = TokenBucket(1, burst=1, mode="metrics_only", clock=clock)
    guarded = bucket(lambda: "ran")
    assert [guarded() for _ in range(3)] == ["ran"] * 3  # two over the rate, let through
    bucket.mode = "enforce"
    with pytest.raises(RateLimited):
        guarded()
    clock.advance(1.0)
    assert guarded() == "ran"


def test_a_bulkhead_switched_to_enforce_admits_again_once_below_its_limit() -> None:
    bulkhead = Bulkhead(1, mode="metrics_only")
    guarded = bulkhead(lambda: "ran")
    with bulkhead, bulkhead:  # two calls running, one over the limit
        bulkhead.mode = "enforce"
        with pytest.raises(BulkheadFull):
            guarded()
        assert bulkhead.in_flight == 2
    assert bulkhead.in_flight == 0
    assert guarded() == "ran"
    with bulkhead, pytest.raises(BulkheadFull):
        guarded()  # the limit holds again


def test_a_bulkhead_still_over_its_limit_after_one_call_ends_keeps_refusing() -> None:
    bulkhead = Bulkhead(1, mode="metrics_only")
    holders = Holders(bulkhead, 2)  # two calls running, one over the limit
    bulkhead.mode = "enforce"
    holders.finish(0)
    assert bulkhead.in_flight == 1
    with pytest.raises(BulkheadFull):  # the slot went to the call over the limit
        bulkhead.call(lambda: None)
    holders.finish(1)
    assert bulkhead.call(lambda: "ran") == "ran"


def test_a_throttle_switched_to_enforce_rejects(clock: FakeClock) -> None:
    throttle = AdaptiveThrottle(seed=3, mode="metrics_only", clock=clock)
    for _ in range(20):
        with pytest.raises(ConnectionError):
            throttle.call(fail)
    assert throttle.probability > 0.5
    assert [throttle.call(lambda: "ran") for _ in range(3)] == ["ran"] * 3
    throttle.mode = "enforce"
    outcomes = []
    for _ in range(20):
        try:
            outcomes.append(throttle.call(lambda: "ran"))
        except Throttled:
            outcomes.append("throttled")
    assert "throttled" in outcomes


def test_per_host_copies_switch_with_their_template() -> None:
    breaker = CircuitBreaker("api", mode="metrics_only")
    transport = ResilientTransport(breaker)
    before = transport.policy_for(breaker, "http://one.test")
    assert before is not breaker
    assert before.mode == "metrics_only"
    breaker.mode = "enforce"
    after = transport.policy_for(breaker, "http://two.test")  # a host first seen now
    assert (before.mode, after.mode) == ("enforce", "enforce")
