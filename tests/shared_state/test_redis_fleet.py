"""Fleet-wide policies across processes: each worker is a process with its own store
and connections (see redis_worker.py), all sharing one Redis."""

from __future__ import annotations

import os
import signal
import time

import pytest
import redis
from redis_helpers import Workers, store_args

from resilience import Bulkhead, BulkheadFull
from resilience.stores.redis import RedisStore

#: What a loaded 2-core machine may add to a bound that is about time: a process that
#: the scheduler left out for a while, a thread waiting for the GIL.
SLACK = 0.25


def test_six_processes_keep_their_retries_within_the_fleets_budget(
    workers: Workers, redis_url: str, prefix: str
) -> None:
    ratio, floor_per_second, window = 0.1, 10.0, 10.0
    args = {
        **store_args(redis_url, prefix),
        "budget": {"ratio": ratio, "min_per_second": floor_per_second, "window": window},
        "seconds": 1.5,  # well inside the window: nothing ages out
        "pause": 0.002,
    }
    results = workers.fleet(6, "retry_budget", args)
    calls = sum(r["calls"] for r in results)
    retries = sum(r["retries"] for r in results)
    allowed = ratio * calls + floor_per_second * window
    # Every process wanted two retries per call, far more than the budget: the fleet
    # got no more than it allows, and not much less (shares unspent when it stopped).
    assert retries <= allowed, (retries, allowed, results)
    assert retries >= 0.6 * allowed, (retries, allowed, results)
    assert all(r["retries"] > 0 for r in results)


# -- local-first breakers ------------------------------------------------------------------


def no_pub_sub_url(redis_url: str, prefix: str) -> str:
    """A user of the session server that may run scripts (and publish from them) but
    not subscribe: pub/sub cut, as on a managed Redis that forbids it."""
    user = f"{prefix}-nosub"
    with redis.Redis.from_url(redis_url) as admin:
        admin.execute_command(
            "ACL", "SETUSER", user, "reset", "on", ">pw", "~*", "&*", "+@all",
            "-subscribe", "-psubscribe", "-ssubscribe",
        )  # fmt: skip
    host = redis_url.split("://", 1)[1]
    return f"redis://{user}:pw@{host}"


@pytest.mark.parametrize("pub_sub", [True, False], ids=["pub_sub", "pub_sub_cut"])
def test_six_processes_learn_a_transition_in_time(
    workers: Workers, redis_url: str, prefix: str, pub_sub: bool
) -> None:
    flush_interval, poll_interval = 0.1, 0.5
    url = redis_url if pub_sub else no_pub_sub_url(redis_url, prefix)
    args = {
        **store_args(
            url,
            prefix,
            sync_mode="local-first",
            flush_interval=flush_interval,
            poll_interval=poll_interval,
        ),
        "breaker": {"name": "converge"},
        "target": "forced_open",
        "seconds": 5.0,
    }
    [parent] = workers.spawn(1, "fleet", {**args, "inner": "observe", "count": 6})
    start = Workers.start([parent])
    time.sleep(max(0.0, start + 0.5 - time.time()))  # every process watching, settled
    with RedisStore.from_url(redis_url, prefix=prefix, timeout=2.0) as admin:
        before = time.time()
        admin.force_breaker("converge", "open")
    [results] = Workers.results([parent])
    delays = [r["seen"] - before for r in results]
    # The bound each mode promises, plus slack for a loaded machine: with pub/sub a
    # message (milliseconds); without, the next poll.
    bound = flush_interval if pub_sub else poll_interval
    assert max(delays) <= bound + SLACK, delays
    assert min(delays) >= 0


def test_over_admission_after_a_failure_onset_stays_within_the_bound(
    workers: Workers, redis_url: str, prefix: str
) -> None:
    flush_interval, count = 0.1, 6
    size = 40
    breaker = {
        "name": "onset",
        "window": {"size": size},
        "failure_rate": 0.5,
        "minimum_calls": size,
        "open_for": 30.0,
    }
    args = {
        **store_args(redis_url, prefix, sync_mode="local-first", flush_interval=flush_interval),
        "breaker": breaker,
        "healthy": 0.6,
        "failing": 0.6,
        "pause": 0.002,
    }
    results = workers.fleet(count, "onset", args)
    with RedisStore.from_url(redis_url, prefix=prefix, timeout=2.0) as admin:
        status = admin.breaker_status("onset")
        read_at = time.time()
    assert status is not None
    assert status.state == "open"
    assert status.retry_after is not None
    opened_at = read_at + status.retry_after - 30.0
    rate = sum(r["before"] for r in results) / args["healthy"]  # the fleet's calls/s
    admitted = sum(r["after"] for r in results)
    # A strict breaker would admit the failures that tip its window (half of it), and
    # each call in flight: local-first adds at most a flush interval of the fleet's calls
    # (each instance reports within it) and the time the news takes to reach everyone.
    strict = size // 2 + count
    assert admitted <= strict + rate * (flush_interval + SLACK), (admitted, rate, results)
    for result in results:  # everyone learnt the transition by pub/sub
        assert result["rejected_at"] is not None
        assert result["rejected_at"] - opened_at <= SLACK, (opened_at, results)


def test_six_processes_leasing_tokens_stay_within_the_leased_bound(
    workers: Workers, redis_url: str, prefix: str
) -> None:
    rate, seconds, lease, count = 100, 2.0, 5, 6
    args = {
        **store_args(redis_url, prefix, sync_mode="local-first", lease_tokens=lease),
        "bucket": {"rate": rate, "key": "leased"},
        "seconds": seconds,
        "pause": 0.001,
    }
    results = workers.fleet(count, "bucket", args)
    admitted = sum(r["admitted"] for r in results)
    # As in the strict test (test_redis_processes), t is known within [t_min, t_max];
    # each instance may also spend, within t, tokens it leased before (lease_tokens at
    # most), and may end with leased tokens it never spent.
    first_before = min(r["first"][0] for r in results)
    first_after = min(r["first"][1] for r in results)
    last_before = max(r["last"][0] for r in results)
    last_after = max(r["last"][1] for r in results)
    t_min, t_max = last_before - first_after, last_after - first_before
    low, high = rate + rate * t_min, rate + rate * t_max
    assert admitted <= high + lease * count, (admitted, high, results)
    assert admitted >= 0.97 * low - lease * count, (admitted, low, results)


# -- the fleet's bulkhead --------------------------------------------------------------------


def test_six_processes_never_run_more_calls_than_the_fleets_bulkhead_allows(
    workers: Workers, redis_url: str, prefix: str
) -> None:
    limit = 4
    args = {
        **store_args(redis_url, prefix),
        "bulkhead": {"max_concurrent": limit, "max_queue": 2, "max_wait": 0.2, "name": "db"},
        "hold": 0.005,
        "seconds": 1.5,
    }
    results = workers.fleet(6, "bulkhead", args)
    with redis.Redis.from_url(redis_url) as client:
        most = int(client.get(f"{prefix}:test:most") or 0)
    assert most <= limit  # while every holder is healthy, never above the limit
    assert most == limit  # and the fleet did fill it: six processes wanted more
    assert all(r["ran"] > 0 for r in results)


def test_a_killed_holder_s_slot_comes_back_within_its_lease(
    workers: Workers, redis_url: str, prefix: str
) -> None:
    lease = 1.0
    settings = {"max_concurrent": 1, "name": "lease"}
    [holder] = workers.spawn(
        1, "hold_slot", {**store_args(redis_url, prefix, slot_lease=lease), "bulkhead": settings}
    )
    Workers.start([holder], delay=0.0)
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "holding"
    with RedisStore.from_url(redis_url, prefix=prefix, timeout=2.0, slot_lease=lease) as store:
        bulkhead = Bulkhead(store=store, **settings)  # type: ignore[arg-type]
        time.sleep(lease * 1.5)  # renewed in the meantime: still held
        with pytest.raises(BulkheadFull):
            bulkhead.call(lambda: None)
        os.kill(holder.pid, signal.SIGKILL)
        killed = time.monotonic()
        holder.wait()
        while True:
            try:
                bulkhead.call(lambda: None)
                break
            except BulkheadFull:
                assert time.monotonic() - killed <= lease + SLACK, "the slot never came back"
                time.sleep(0.01)
