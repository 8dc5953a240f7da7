"""TokenBucket with a RedisStore: one bucket for every store and process."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import pytest
import test_ratelimit_model as model
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import run_state_machine_as_test

from resilience import RateLimited, TokenBucket
from resilience._core.bucket import LimiterSettings, Reservation
from resilience.stores.redis import RedisStore
from resilience.testing import FakeClock


def test_two_stores_share_one_bucket(make_store: Callable[..., RedisStore]) -> None:
    clock = FakeClock()
    here = TokenBucket(10, burst=5, store=make_store(), key="api", clock=clock)
    there = TokenBucket(10, burst=5, store=make_store(), key="api", clock=clock)
    for limiter in (here, there, here, there, here):
        assert limiter.acquire() == 0.0
    with pytest.raises(RateLimited) as refused:
        there.acquire()
    assert refused.value.retry_after == pytest.approx(0.1)
    clock.advance(0.25)  # 2.5 tokens back
    assert there.available == pytest.approx(2.5)
    here.acquire(2)
    assert here.available == pytest.approx(0.5)


def test_a_waiting_caller_reserves_its_slot(make_store: Callable[..., RedisStore]) -> None:
    clock = FakeClock()
    store = make_store()
    waiting = TokenBucket(2, burst=1, max_wait=1.0, store=store, key="wait", clock=clock)
    impatient = TokenBucket(2, burst=1, store=store, key="wait", clock=clock)
    assert waiting.acquire() == 0.0
    assert waiting.acquire() == 0.5  # slept 0.5 s on the clock for its reservation
    assert clock.sleeps == [0.5]
    with pytest.raises(RateLimited) as refused:
        impatient.acquire()
    assert refused.value.retry_after == 0.5


def test_cancelling_the_newest_reservation_gives_it_back(
    make_store: Callable[..., RedisStore],
) -> None:
    clock = FakeClock()
    bucket = make_store().token_bucket("cancel", LimiterSettings(1.0, 1.0, 1.0), clock)
    assert bucket.acquire(1.0, 0.0) is None
    first = bucket.acquire(1.0, math.inf)
    second = bucket.acquire(1.0, math.inf)
    assert isinstance(first, Reservation)
    assert isinstance(second, Reservation)
    assert (first.delay, second.delay) == (1.0, 2.0)
    bucket.cancel(first)  # not the newest: its tokens stay spent
    assert bucket.available() == -2.0
    bucket.cancel(second)  # the newest: back
    assert bucket.available() == -1.0


def test_a_full_bucket_has_no_key(make_store: Callable[..., RedisStore], prefix: str) -> None:
    store = make_store()
    limiter = TokenBucket(10, store=store, key="gc")  # real time: one token per 0.1 s
    limiter.acquire()
    key = f"{prefix}:tb:{{gc}}"
    assert 0 < store.client.pttl(key) <= 101  # full again 0.1 s after the take
    time.sleep(0.15)
    assert store.client.exists(key) == 0
    assert limiter.available == 10.0


def test_reshaping_keeps_the_free_tokens(make_store: Callable[..., RedisStore]) -> None:
    clock = FakeClock()
    bucket = make_store().token_bucket("shape", LimiterSettings(10.0, 1.0, 10.0), clock)
    for _ in range(6):
        assert bucket.acquire(1.0, 0.0) is None
    bucket.configure(LimiterSettings(1.0, 1.0, 20.0))
    assert bucket.available() == pytest.approx(4.0)  # 4 free, now refilling at 1/s
    clock.advance(2.0)
    assert bucket.available() == pytest.approx(6.0)


def test_limiters_need_a_key(make_store: Callable[..., RedisStore]) -> None:
    with pytest.raises(ValueError, match="needs a key"):
        TokenBucket(10, store=make_store())
    named = TokenBucket(10, store=make_store(), name="by-name")
    assert named.key == "by-name"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rate=st.sampled_from(model.RATES),
    per=st.sampled_from(model.PERS),
    burst=st.sampled_from(model.BURSTS),
    schedule=model.steps,
)
def test_the_policy_on_redis_matches_the_model(
    redis_url: str, rate: int, per: float, burst: float, schedule: list[tuple[int, float, int]]
) -> None:
    with RedisStore.from_url(redis_url, prefix=f"m-{uuid.uuid4().hex[:8]}", timeout=2.0) as store:
        model.check_policy(store, rate, per, burst, schedule)


class NewestOnlyModel(model.Model):
    """A shared bucket gives a cancelled reservation back only while it is the newest
    entry; any other stays spent (a hole the bound allows)."""

    def cancel(self, now: Fraction, entry: model.Entry) -> None:
        self.refill(now)
        entry.cancelled = True
        if self.stack and self.stack[-1] is entry:
            self.tokens = min(self.burst, self.tokens + self.stack.pop().cost)


def test_the_bucket_on_redis_matches_the_model_with_cancellations(redis_url: str) -> None:
    class RedisCoreMachine(model.CoreMachine):
        model_class = NewestOnlyModel

        def make_core(self, settings: LimiterSettings, clock: FakeClock) -> Any:
            self.store = RedisStore.from_url(
                redis_url, prefix=f"c-{uuid.uuid4().hex[:8]}", timeout=2.0
            )
            return self.store.token_bucket("k", settings, clock)

        def teardown(self) -> None:
            store = getattr(self, "store", None)
            if store is not None:
                store.close()

    run_state_machine_as_test(
        RedisCoreMachine,
        settings=settings(
            max_examples=60,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
