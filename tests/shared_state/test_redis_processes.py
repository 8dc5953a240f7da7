"""Several processes, one shared state: each worker is a ``python redis_worker.py``
process with its own store and connections (see redis_worker.py)."""

from __future__ import annotations

import os
import signal
import time

import pytest
from redis_helpers import Workers, store_args

from resilience import CircuitBreaker, CircuitOpen
from resilience.stores.redis import RedisStore


def test_eight_processes_race_a_half_open_breaker(
    workers: Workers, redis_url: str, prefix: str
) -> None:
    settings = {"name": "race", "consecutive_failures": 1, "open_for": 0.1, "half_open_calls": 3}
    with RedisStore.from_url(redis_url, prefix=prefix, timeout=2.0) as store:
        breaker = CircuitBreaker(store=store, **settings)  # type: ignore[arg-type]
        with pytest.raises(ZeroDivisionError):
            breaker.call(lambda: 1 / 0)
        assert breaker.state == "open"
    args = {
        **store_args(redis_url, prefix),
        "breaker": settings,
        "storm_seconds": 0.5,
        "trial_seconds": 1.0,  # longer than the storm: no trial ends during it
    }
    time.sleep(0.1)  # the open period is over: the breaker will be half-open
    results = workers.fleet(8, "half_open", args)
    assert sum(r["trials"] for r in results) == 3
    assert sum(r["rejected"] for r in results) > 100  # they really raced


def test_a_killed_trial_holder_frees_its_lease_in_time(
    workers: Workers, redis_url: str, prefix: str
) -> None:
    settings = {"name": "holder", "consecutive_failures": 1, "open_for": 0.05}
    lease = 1.0
    with RedisStore.from_url(redis_url, prefix=prefix, timeout=2.0) as store:
        breaker = CircuitBreaker(store=store, **settings)  # type: ignore[arg-type]
        with pytest.raises(ZeroDivisionError):
            breaker.call(lambda: 1 / 0)
        time.sleep(0.06)
        [holder] = workers.spawn(
            1,
            "hold_trial",
            {
                **store_args(redis_url, prefix, trial_lease=lease),
                "breaker": settings,
            },
        )
        Workers.start([holder], delay=0.0)
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "holding"
        granted = time.monotonic()  # the lease began just before
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
        with pytest.raises(CircuitOpen) as rejected:
            breaker.call(lambda: "too early")
        assert rejected.value.state == "half_open"
        while True:
            try:
                assert breaker.call(lambda: "trial") == "trial"
                break
            except CircuitOpen:
                assert time.monotonic() - granted < lease + 2.0, "the lease never ended"
                time.sleep(0.02)
        assert time.monotonic() - granted >= lease * 0.9  # not before the lease ended
        assert breaker.state == "closed"


def test_four_processes_share_a_bucket_exactly(
    workers: Workers, redis_url: str, prefix: str
) -> None:
    rate, seconds = 100, 5.0
    args = {
        **store_args(redis_url, prefix),
        "bucket": {"rate": rate, "key": "shared-100"},
        "seconds": seconds,
        "pause": 0.001,
    }
    results = workers.fleet(4, "bucket", args)
    admitted = sum(r["admitted"] for r in results)
    # t runs from the first grant to the last, as the server decided them. Clients only
    # know that each decision fell between their times just before and just after the
    # call, so t is known within [t_min, t_max] (tight on a quiet machine, looser when
    # the scheduler delays a process); tokens that refill after the last grant are
    # admitted by nobody.
    first_before = min(r["first"][0] for r in results)
    first_after = min(r["first"][1] for r in results)
    last_before = max(r["last"][0] for r in results)
    last_after = max(r["last"][1] for r in results)
    t_min, t_max = last_before - first_after, last_after - first_before
    assert t_min > seconds - 0.5
    low, high = rate + rate * t_min, rate + rate * t_max  # burst (= rate) + rate * t
    assert admitted <= high + 1, "more than the bucket allows"
    assert 0.99 * low <= admitted <= 1.01 * high, (admitted, low, high)
    assert all(r["admitted"] > 0 for r in results)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() on this platform")
@pytest.mark.parametrize("sync_mode", ["strict", "local-first"])
def test_a_fork_mid_call_leaves_no_lock_held_in_the_child(
    workers: Workers, redis_url: str, prefix: str, sync_mode: str
) -> None:
    """Another thread held every backend's locks at the fork: each backend resets its
    own in the child, whose calls through every kind of policy go through."""
    [parent] = workers.spawn(
        1, "forked_mid_call", store_args(redis_url, prefix, sync_mode=sync_mode)
    )
    Workers.start([parent], delay=0.0)
    [report] = Workers.results([parent])
    assert report == {
        "breaker": 2,
        "opened": "forced_open",
        "bucket": 3,
        "retry": "bool",
        "bulkhead": 4,
    }


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() on this platform")
@pytest.mark.parametrize("sync_mode", ["strict", "local-first"])
def test_a_store_made_before_fork_works_in_the_child(
    workers: Workers, redis_url: str, prefix: str, sync_mode: str
) -> None:
    """gunicorn --preload and the like: the app (and its store) exist before fork. The
    child's calls reach Redis (local-first: through the child's own worker), each once
    (1 call in the parent before the fork, 3 in the child), and the child hears a
    transition through its own listener."""
    store = store_args(redis_url, prefix, sync_mode=sync_mode)
    args = {**store, "breaker": {"name": "forked"}}
    [parent] = workers.spawn(1, "forked", args)
    Workers.start([parent], delay=0.0)
    [report] = Workers.results([parent])
    assert report == {
        "calls": [2, 2, 2],
        "heard": "forced_open",
        "calls_seen": 0,
        "fleet_calls": 4,
    }
