"""CircuitBreaker with a RedisStore: one state for every store and process."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import pytest
import redis
from redis_helpers import Boom, eventually, fail

from resilience import (
    CircuitBreaker,
    CircuitOpen,
    CountWindow,
    Event,
    StateChange,
    TokenBucket,
    listen,
)
from resilience.stores.redis import RedisStore
from resilience.testing import FakeClock


def test_failures_through_one_store_open_the_breaker_for_another(
    make_store: Callable[..., RedisStore],
) -> None:
    one, other = make_store(), make_store()
    settings = {"failure_rate": 0.5, "minimum_calls": 4, "open_for": 30.0}
    here = CircuitBreaker("payments", store=one, **settings)
    there = CircuitBreaker("payments", store=other, **settings)
    assert here.call(lambda: 1) == 1
    fail(here, 2)
    assert there.state == "closed"  # 2 failures of 3 calls: under minimum_calls
    assert there.metrics().calls == 3
    fail(there)  # 3 of 4 failed: the fleet's breaker opens
    with pytest.raises(CircuitOpen) as rejected:
        here.call(lambda: 1)
    assert rejected.value.name == "payments"
    assert rejected.value.state == "open"
    assert 29.0 < rejected.value.retry_after <= 30.0  # type: ignore[operator]
    assert here.state == there.state == "open"


def test_manual_open_through_one_store_rejects_calls_through_another(
    make_store: Callable[..., RedisStore],
) -> None:
    one, other = make_store(), make_store()
    here = CircuitBreaker("search", store=one)
    there = CircuitBreaker("search", store=other)
    here.open()
    with pytest.raises(CircuitOpen) as rejected:
        there.call(lambda: 1)
    assert rejected.value.retry_after is None
    assert rejected.value.state == "forced_open"
    there.close()
    assert here.call(lambda: 2) == 2
    here.disable()
    fail(there, 20)  # disabled: admits everything, counts nothing
    assert there.metrics().calls == 0
    there.reset()
    # ``state`` answers without I/O, from the last reply or pub/sub message: soon.
    eventually(lambda: here.state == "closed")


def test_state_changes_reach_every_process_as_events(
    make_store: Callable[..., RedisStore],
) -> None:
    """Transitions made elsewhere arrive by pub/sub and become state_change events."""
    one, other = make_store(), make_store()
    here = CircuitBreaker("inventory", store=one, consecutive_failures=2, open_for=0.2)
    there = CircuitBreaker("inventory", store=other, consecutive_failures=2, open_for=0.2)
    seen: list[tuple[str, str]] = []

    def on_event(event: Event) -> None:
        assert isinstance(event.details, StateChange)
        seen.append((event.details.from_state, event.details.to_state))

    there.listen(on_event)
    here.call(lambda: 1)
    fail(here, 2)
    eventually(lambda: ("closed", "open") in seen)
    assert there.state == "open"
    time.sleep(0.2)
    assert here.call(lambda: 1) == 1  # the trial succeeds: closed again
    expected = [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]
    eventually(lambda: seen == expected, message=lambda: f"{seen} != {expected}")
    assert there.state == "closed"


def test_the_state_machine_runs_on_virtual_time(make_store: Callable[..., RedisStore]) -> None:
    """With a FakeClock, the scripts take its time instead of Redis TIME."""
    clock = FakeClock(1000.0)
    breaker = CircuitBreaker(
        "fake",
        store=make_store(),
        clock=clock,
        minimum_calls=2,
        window=CountWindow(4),
        open_for=lambda opens: 10.0 * opens,
        half_open_calls=2,
    )
    fail(breaker, 2)
    with pytest.raises(CircuitOpen) as rejected:
        breaker.call(lambda: 1)
    assert rejected.value.retry_after == 10.0
    clock.advance(10.0)
    assert breaker.state == "half_open"
    fail(breaker)  # a trial fails: open again, for longer
    assert breaker.state == "open"
    assert breaker.metrics().consecutive_opens == 2
    clock.advance(19.5)
    with pytest.raises(CircuitOpen) as rejected:
        breaker.call(lambda: 1)
    assert rejected.value.retry_after == 0.5
    clock.advance(0.5)
    breaker.call(lambda: 1)
    assert breaker.state == "half_open"  # one of two trials done
    breaker.call(lambda: 1)
    assert breaker.state == "closed"
    assert breaker.metrics().consecutive_opens == 0


def test_exactly_half_open_calls_trials_run_at_once(
    make_store: Callable[..., RedisStore],
) -> None:
    clock = FakeClock()
    stores = [make_store() for _ in range(3)]
    breakers = [
        CircuitBreaker("trials", store=s, clock=clock, consecutive_failures=1, half_open_calls=2)
        for s in stores
    ]
    fail(breakers[0])
    clock.advance(30.0)
    admitted, retry_afters = [], []
    for breaker in breakers * 2:
        try:
            breaker.__enter__()
        except CircuitOpen as exc:
            retry_afters.append(exc.retry_after)
        else:
            admitted.append(breaker)
    assert retry_afters == [0.0] * 4  # half-open: a trial may be free any moment
    assert len(admitted) == 2
    for breaker in admitted:
        breaker.__exit__(None, None, None)
    eventually(lambda: all(breaker.state == "closed" for breaker in breakers))


def test_a_trial_whose_holder_vanishes_frees_its_slot_after_the_lease(
    make_store: Callable[..., RedisStore],
) -> None:
    clock = FakeClock()
    store = make_store(trial_lease=5.0)
    breaker = CircuitBreaker("lease", store=store, clock=clock, consecutive_failures=1)
    fail(breaker)
    clock.advance(30.0)
    breaker.__enter__()  # a trial that never ends (its process died, say)
    clock.advance(4.9)
    with pytest.raises(CircuitOpen):
        breaker.call(lambda: 1)
    clock.advance(0.1)
    assert breaker.call(lambda: 1) == 1  # the lease ended: a new trial, which closes it
    assert breaker.state == "closed"


def test_a_cancelled_trial_gives_its_slot_back_at_once(
    make_store: Callable[..., RedisStore],
) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(
        "cancel", store=make_store(), clock=clock, consecutive_failures=1, ignore=KeyError
    )
    fail(breaker)
    clock.advance(30.0)
    with pytest.raises(KeyError):
        breaker.call(lambda: {}["x"])  # ignored: no outcome, the trial's lease is released
    assert breaker.call(lambda: 1) == 1
    assert breaker.state == "closed"


def test_outcomes_from_an_earlier_epoch_are_ignored(make_store: Callable[..., RedisStore]) -> None:
    clock = FakeClock()
    one, other = make_store(), make_store()
    here = CircuitBreaker("late", store=one, clock=clock, consecutive_failures=1)
    there = CircuitBreaker("late", store=other, clock=clock, consecutive_failures=1)
    here.__enter__()  # a slow call starts while closed
    there.open()
    there.close()  # a new epoch
    here.__exit__(Boom, Boom(), None)  # would trip with consecutive_failures=1: stale
    assert there.state == "closed"
    assert there.metrics().calls == 0


@pytest.mark.parametrize("window", [10.0, CountWindow(3)])
def test_slow_calls_and_windows_count_as_in_memory(
    make_store: Callable[..., RedisStore], window: float | CountWindow
) -> None:
    """The same calls on the same virtual time: Redis and memory agree at every step."""
    clocks = [FakeClock(), FakeClock()]
    breakers = [
        CircuitBreaker(
            "slow",
            store=store,
            clock=clock,
            failure_rate=0.75,
            slow_call_duration=1.0,
            slow_call_rate=0.5,
            minimum_calls=3,
            window=window,
        )
        for store, clock in zip([None, make_store()], clocks, strict=True)
    ]
    steps = ["ok", "slow", "ok", 9.0, "slow", "fail", "ok", "slow", 4.5, "slow", "slow", "slow"]
    for step in steps:
        for breaker, clock in zip(breakers, clocks, strict=True):
            if isinstance(step, float):
                clock.advance(step)
            elif breaker.state != "open":
                if step == "fail":
                    fail(breaker)
                else:
                    breaker.call(lambda c=clock, s=step: c.advance(1.0 if s == "slow" else 0.0))
        memory, shared = (breaker.metrics() for breaker in breakers)
        assert shared == memory, step
    assert breakers[1].state == "open"


def test_breakers_of_one_name_in_one_store_share_a_backend(
    make_store: Callable[..., RedisStore],
) -> None:
    store = make_store()
    a = CircuitBreaker("same", store=store)
    b = CircuitBreaker("same", store=store)
    a.open()
    assert b.state == "forced_open"
    with pytest.raises(ValueError, match="other settings"):
        CircuitBreaker("same", store=store, minimum_calls=3)
    with pytest.raises(ValueError, match="needs a name"):
        CircuitBreaker(store=store)


def test_keys_expire_when_idle_and_forced_states_persist(
    make_store: Callable[..., RedisStore], prefix: str
) -> None:
    store = make_store(key_ttl=120)
    breaker = CircuitBreaker("ttl", store=store, window=CountWindow(5))
    breaker.call(lambda: 1)
    client = store.client
    keys = sorted(key.decode() for key in client.scan_iter(match=f"{prefix}:*"))
    assert keys == [f"{prefix}:cb:{{ttl}}:{part}" for part in ("r", "s", "w")]
    for key in keys:
        assert 0 < client.pttl(key) <= 120_000
    breaker.open()
    assert client.pttl(f"{prefix}:cb:{{ttl}}:s") == -1  # set by hand: stays until undone
    breaker.close()
    assert 0 < client.pttl(f"{prefix}:cb:{{ttl}}:s") <= 120_000


def test_a_window_of_another_shape_restarts_counting_with_a_warning(
    make_store: Callable[..., RedisStore], caplog: pytest.LogCaptureFixture
) -> None:
    one, other = make_store(), make_store()
    counted = CircuitBreaker("shape", store=one, window=CountWindow(10))
    timed = CircuitBreaker("shape", store=other, window=60.0)
    counted.call(lambda: 1)
    counted.call(lambda: 1)
    with caplog.at_level(logging.WARNING, logger="resilience"):
        timed.call(lambda: 1)
    assert timed.metrics().calls == 1
    assert "another shape" in caplog.text


def test_concurrent_threads_count_every_outcome(make_store: Callable[..., RedisStore]) -> None:
    breaker = CircuitBreaker("threads", store=make_store(), window=CountWindow(1000))

    def work() -> None:
        for _ in range(50):
            breaker.call(lambda: 1)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert breaker.metrics().calls == 400


def test_store_arguments_are_checked(redis_url: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        RedisStore.from_url(redis_url, prefix="a{b}")
    with pytest.raises(ValueError, match="on_store_error"):
        RedisStore.from_url(redis_url, on_store_error="open")
    with pytest.raises(ValueError, match="timeout"):
        RedisStore.from_url(redis_url, timeout=0)
    with pytest.raises(ValueError, match="trial_lease"):
        RedisStore.from_url(redis_url, trial_lease=-1)
    with pytest.raises(ValueError, match="errors_to_cut_off"):
        RedisStore.from_url(redis_url, errors_to_cut_off=0)
    with pytest.raises(TypeError, match=r"client must be a redis\.Redis"):
        RedisStore("redis://localhost")  # type: ignore[arg-type]


def test_a_client_without_a_short_timeout_gets_a_warning(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)  # redis-py defaults: 5 s, retries
    with pytest.warns(RuntimeWarning, match="socket_timeout"):
        store = RedisStore(client, prefix="warned")
    store.close()
    client.close()
    quiet = redis.Redis.from_url(redis_url, socket_timeout=0.2, retry=None)
    RedisStore(quiet, prefix="quiet").close()  # no warning (warnings are errors here)
    quiet.close()


def test_events_of_the_store_are_plain_events(make_store: Callable[..., RedisStore]) -> None:
    """Nothing is emitted while Redis answers."""
    events: list[Event] = []
    stop = listen(events.append)
    try:
        breaker = CircuitBreaker("quiet", store=make_store())
        breaker.call(lambda: 1)
    finally:
        stop()
    assert [e.type for e in events if e.kind == "store"] == []


def test_a_store_does_not_keep_dropped_policies(make_store: Callable[..., RedisStore]) -> None:
    import gc

    store = make_store()
    for i in range(20):
        CircuitBreaker(f"host-{i}", store=store).call(lambda: 1)
        TokenBucket(10, store=store, key=f"host-{i}").acquire()
    gc.collect()
    assert len(store._breakers.items) == 0
    assert len(store._buckets.items) == 0
    assert len(store.breakers()) == 20  # their state stays in Redis until it expires


@pytest.mark.parametrize("window", [60.0, CountWindow(20)])
def test_min_instances_keeps_one_bad_instance_from_opening_the_fleets_breaker(
    make_store: Callable[..., RedisStore], window: float | CountWindow
) -> None:
    stores = [make_store(min_instances=2) for _ in range(3)]
    settings = {"failure_rate": 0.5, "minimum_calls": 4, "window": window}
    one, two, three = (CircuitBreaker("guarded", store=s, **settings) for s in stores)
    fail(one, 10)  # one instance's failures only: well over the rate, but alone
    assert two.state == "closed"
    assert two.metrics().failures == 10
    assert three.call(lambda: 3) == 3
    fail(two)  # a second instance reports a failure: the guard is met
    assert two.state == "open"
    eventually(lambda: one.state == three.state == "open")  # told by pub/sub


def test_min_instances_also_guards_consecutive_failures(
    make_store: Callable[..., RedisStore],
) -> None:
    here, there = (
        CircuitBreaker("streak", store=make_store(min_instances=2), consecutive_failures=3)
        for _ in range(2)
    )
    fail(here, 5)
    assert there.state == "closed"
    fail(there)
    assert there.state == "open"


def test_store_options_are_checked(make_store: Callable[..., RedisStore]) -> None:
    with pytest.raises(ValueError, match="min_instances"):
        make_store(min_instances=0)
    with pytest.raises(ValueError, match="sync_mode must be 'strict' or 'local-first'"):
        make_store(sync_mode="eventual")
    with pytest.raises(ValueError, match="flush_interval"):
        make_store(flush_interval=0)
    with pytest.raises(ValueError, match="poll_interval must be at least flush_interval"):
        make_store(flush_interval=0.5, poll_interval=0.1)
    store = make_store()
    with pytest.raises(ValueError, match="slot_lease"):
        store.with_options(slot_lease=-1)
    guarded = store.with_options(min_instances=3)
    assert (guarded.min_instances, store.min_instances) == (3, None)
    assert guarded.with_options(flush_interval=0.2).min_instances == 3
    assert guarded.with_options(min_instances=None).min_instances is None


def test_a_name_is_shared_one_way_in_a_store(make_store: Callable[..., RedisStore]) -> None:
    store = make_store()
    kept = CircuitBreaker("one-way", store=store)
    with pytest.raises(ValueError, match="other store options"):
        CircuitBreaker("one-way", store=store.with_options(min_instances=2))
    assert kept.state == "closed"


def test_a_store_and_its_views_share_one_transition_listener(
    make_store: Callable[..., RedisStore],
) -> None:
    store = make_store()
    view = store.with_options(min_instances=2)
    CircuitBreaker("via-view", store=view)
    CircuitBreaker("via-store", store=store)
    CircuitBreaker("via-another-view", store=store.with_options(min_instances=3))
    name = f"resilience-redis-listener-{store.prefix}"
    listeners = [thread for thread in threading.enumerate() if thread.name == name]
    assert len(listeners) == 1
    view.close()  # closing a view closes the store, and stops its listener
    assert not listeners[0].is_alive()
