"""A worker process for the multi-process tests: ``python redis_worker.py MODE JSON``.

The worker builds its own store (its own connections, as another host would), prints
``ready``, waits for a start time (wall clock, seconds) on stdin, does its part, and
prints one line of JSON with what it saw.

``fleet`` mode (``{"inner": MODE, "count": N, ...}``) forks N children first, each of
which builds its own store after the fork and runs MODE; the worker relays the start
time to them and prints the list of their results. Forking one interpreter that has
already imported everything starts a fleet in milliseconds, where spawning N
interpreters takes seconds on a busy machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

from resilience import (
    Bulkhead,
    BulkheadFull,
    CircuitBreaker,
    CircuitOpen,
    Constant,
    CountWindow,
    RateLimited,
    Retry,
    RetryBudget,
    TokenBucket,
)
from resilience.stores.redis import RedisStore

Begin = Callable[[], float]


def from_stdin() -> float:
    """Say ready on stdout, read the start time on stdin, sleep until it."""
    print("ready", flush=True)
    start = float(sys.stdin.readline())
    time.sleep(max(0.0, start - time.time()))
    return start


def half_open(store: RedisStore, args: dict[str, Any], begin: Begin) -> dict[str, Any]:
    """Hammer a breaker that has just left OPEN; trials block longer than the storm."""
    breaker = CircuitBreaker(store=store, **args["breaker"])
    trials = rejected = 0

    def trial() -> None:
        nonlocal trials
        trials += 1
        time.sleep(args["trial_seconds"])

    start = begin()
    while time.time() < start + args["storm_seconds"]:
        try:
            breaker.call(trial)
        except CircuitOpen:
            rejected += 1
    return {"trials": trials, "rejected": rejected}


def hold_trial(store: RedisStore, args: dict[str, Any], begin: Begin) -> dict[str, Any]:
    """Take the one trial permit and never give it back (the parent kills us)."""
    breaker = CircuitBreaker(store=store, **args["breaker"])
    begin()

    def forever() -> None:
        print("holding", flush=True)
        time.sleep(3600)

    breaker.call(forever)
    return {}


def bucket(store: RedisStore, args: dict[str, Any], begin: Begin) -> dict[str, Any]:
    """Take tokens as fast as they come for a while. Report how many, and the client
    times just before and just after the first and the last grant (the server decided
    each somewhere in between)."""
    limiter = TokenBucket(store=store, **args["bucket"])
    admitted = refused = 0
    grants: list[tuple[float, float]] = []
    start = begin()
    while time.time() < start + args["seconds"]:
        before = time.time()
        try:
            limiter.acquire()
        except RateLimited:
            refused += 1
        else:
            admitted += 1
            grants.append((before, time.time()))
        time.sleep(args["pause"])
    return {"admitted": admitted, "refused": refused, "first": grants[0], "last": grants[-1]}


def forked(store: RedisStore, args: dict[str, Any], begin: Begin) -> dict[str, Any]:
    """A store made before fork() (a pre-forking server's app), used in the child."""
    breaker = CircuitBreaker(store=store, **args["breaker"])
    breaker.call(lambda: 1)  # the transition listener runs in the parent
    begin()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its own threads, its own connections
        report: dict[str, Any] = {}
        try:
            report["calls"] = [breaker.call(lambda: 2) for _ in range(3)]
            store.flush()  # the child's counts, by the child's worker (local-first)
            os.write(write, b"go\n")  # the parent now opens the breaker by hand
            deadline = time.monotonic() + 10
            while breaker.state != "forced_open" and time.monotonic() < deadline:
                time.sleep(0.01)
            report["heard"] = breaker.state  # through the child's own listener
            report["calls_seen"] = breaker.metrics().calls
        finally:
            with os.fdopen(write, "w") as out:
                out.write(json.dumps(report) + "\n")
            os._exit(0)
    with os.fdopen(read) as child:
        assert child.readline() == "go\n"
        store.flush()  # the parent's own counts, if not sent before the fork
        status = store.breaker_status(args["breaker"]["name"])
        store.force_breaker(args["breaker"]["name"], "open")
        report = json.loads(child.readline())
    # Each call counted once: the child reports its own calls, not the parent's.
    report["fleet_calls"] = None if status is None else status.calls
    os.waitpid(pid, 0)
    return report


def forked_mid_call(store: RedisStore, args: dict[str, Any], begin: Begin) -> dict[str, Any]:
    """fork() while another thread holds every lock of the store's backends and
    registries (as a thread mid-call would): the child resets them (each backend its
    own), so its calls do not wait forever for a thread that does not exist there."""
    breaker = CircuitBreaker("mid-call", store=store)
    bucket = TokenBucket(100, key="mid-call", store=store)
    budget = RetryBudget(0.5, key="mid-call", store=store)
    bulkhead = Bulkhead(4, name="mid-call", store=store)
    breaker.call(lambda: 1)
    locks = [
        lock
        for registry in (store._breakers, store._buckets, store._budgets, store._bulkheads)
        for lock in (
            registry._lock,
            *(getattr(b, name, None) for b in registry.items.values() for name in _LOCKS),
        )
        if lock is not None
    ]
    begin()
    holding, forked_yet = threading.Event(), threading.Event()

    def hold() -> None:
        with contextlib.ExitStack() as held:
            for lock in locks:
                held.enter_context(lock)
            holding.set()
            forked_yet.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    holding.wait(10)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        signal.alarm(20)  # a deadlocked child dies, and the parent reads no report
        report: dict[str, Any] = {}
        try:
            report["breaker"] = breaker.call(lambda: 2)
            breaker.open()  # a transition: learnt and reported under the breaker's locks
            report["opened"] = breaker.state
            breaker.close()
            report["bucket"] = bucket.call(lambda: 3)
            budget.record_call()
            report["retry"] = type(budget.try_retry()).__name__  # decided, either way
            report["bulkhead"] = bulkhead.call(lambda: 4)
            store.flush()
        finally:
            with os.fdopen(write, "w") as out:
                out.write(json.dumps(report) + "\n")
            os._exit(0)
    forked_yet.set()
    holder.join()
    os.close(write)
    with os.fdopen(read) as child:
        line = child.readline()
    os.waitpid(pid, 0)
    return json.loads(line) if line else {"child": "no report"}


#: The locks of a backend (those it has).
_LOCKS = ("_lock", "_report_lock")


def retry_budget(store: RedisStore, args: dict[str, Any], begin: Begin) -> dict[str, Any]:
    """Call a dependency that always fails, through a Retry that would retry every call
    twice, under the fleet's budget. Report the calls made and the retries granted."""
    budget = RetryBudget(store=store, key="fleet", **args["budget"])
    retry = Retry(attempts=3, backoff=Constant(0), budget=budget)
    attempts = calls = 0

    def fails() -> None:
        nonlocal attempts
        attempts += 1
        raise OSError("down")

    start = begin()
    while time.time() < start + args["seconds"]:
        calls += 1
        with contextlib.suppress(OSError):
            retry.call(fails)
        time.sleep(args["pause"])
    return {"calls": calls, "retries": attempts - calls}


def observe(store: RedisStore, args: dict[str, Any], begin: Begin) -> dict[str, Any]:
    """Watch a breaker's state (no calls, so no reports: only pub/sub and polls can
    tell this process) until it reads ``target``: report the wall time it did."""
    breaker = CircuitBreaker(store=store, **args["breaker"])
    start = begin()
    seen = None
    while time.time() < start + args["seconds"]:
        if breaker.state == args["target"]:
            seen = time.time()
            break
        time.sleep(0.001)
    return {"seen": seen}


class Boom(Exception):
    pass


def onset(store: RedisStore, args: dict[str, Any], begin: Begin) -> dict[str, Any]:
    """Call through a breaker a dependency that starts failing at a fixed instant: report
    the calls admitted before and after it, and when the first call was rejected."""
    settings = dict(args["breaker"])
    settings["window"] = CountWindow(settings["window"]["size"])
    breaker = CircuitBreaker(store=store, **settings)
    before = after = 0
    rejected_at = None
    start = begin()
    failing_from = start + args["healthy"]

    def dependency() -> None:
        nonlocal before, after
        if time.time() < failing_from:
            before += 1
            return
        after += 1
        raise Boom

    while time.time() < failing_from + args["failing"]:
        try:
            breaker.call(dependency)
        except Boom:
            pass
        except CircuitOpen:
            if rejected_at is None:
                rejected_at = time.time()
        time.sleep(args["pause"])
    return {"before": before, "after": after, "rejected_at": rejected_at}


#: Counts the calls running across the fleet and keeps the highest count seen.
ENTER = """
local running = redis.call('INCR', KEYS[1])
if running > tonumber(redis.call('GET', KEYS[2]) or '0') then
  redis.call('SET', KEYS[2], running)
end
return running
"""


def bulkhead(store: RedisStore, args: dict[str, Any], begin: Begin) -> dict[str, Any]:
    """Call through the fleet's bulkhead as fast as possible; every call counts itself
    in Redis while it runs (a key of its own, outside the store's)."""
    limiter = Bulkhead(store=store, **args["bulkhead"])
    counter = redis.Redis.from_url(args["url"])
    keys = (f"{args['store']['prefix']}:test:running", f"{args['store']['prefix']}:test:most")
    enter = counter.register_script(ENTER)
    ran = rejected = 0

    def call() -> None:
        enter(keys=keys)
        try:
            time.sleep(args["hold"])
        finally:
            counter.decr(keys[0])

    start = begin()
    while time.time() < start + args["seconds"]:
        try:
            limiter.call(call)
            ran += 1
        except BulkheadFull:
            rejected += 1
    counter.close()
    return {"ran": ran, "rejected": rejected}


def hold_slot(store: RedisStore, args: dict[str, Any], begin: Begin) -> dict[str, Any]:
    """Take a slot of the fleet's bulkhead and keep it (the parent kills us)."""
    limiter = Bulkhead(store=store, **args["bulkhead"])
    begin()

    def forever() -> None:
        print("holding", flush=True)
        time.sleep(3600)

    limiter.call(forever)
    return {}


MODES = {
    "bulkhead": bulkhead,
    "hold_slot": hold_slot,
    "observe": observe,
    "onset": onset,
    "half_open": half_open,
    "hold_trial": hold_trial,
    "bucket": bucket,
    "forked": forked,
    "forked_mid_call": forked_mid_call,
    "retry_budget": retry_budget,
}


def run(mode: str, args: dict[str, Any], begin: Begin) -> Any:
    with RedisStore.from_url(args["url"], **args["store"]) as store:
        return MODES[mode](store, args, begin)


def fleet(args: dict[str, Any]) -> list[Any]:
    children = []
    for _ in range(args["count"]):
        down_read, down_write = os.pipe()  # the start time, to the child
        up_read, up_write = os.pipe()  # "ready", then the result, from the child
        pid = os.fork()
        if pid == 0:
            os.close(down_write)
            os.close(up_read)
            with os.fdopen(down_read) as down, os.fdopen(up_write, "w") as up:

                def begin() -> float:
                    up.write("ready\n")
                    up.flush()
                    start = float(down.readline())
                    time.sleep(max(0.0, start - time.time()))
                    return start

                result = run(args["inner"], args, begin)
                up.write(json.dumps(result) + "\n")
            os._exit(0)
        os.close(down_read)
        os.close(up_write)
        children.append((pid, os.fdopen(down_write, "w"), os.fdopen(up_read)))
    for _, _, up in children:
        assert up.readline() == "ready\n"
    print("ready", flush=True)
    start = sys.stdin.readline()
    for _, down, _ in children:
        down.write(start)
        down.flush()
    results = []
    for pid, down, up in children:
        results.append(json.loads(up.readline()))
        down.close()
        up.close()
        os.waitpid(pid, 0)
    return results


def main() -> None:
    mode, raw = sys.argv[1], sys.argv[2]
    args = json.loads(raw)
    if mode == "fleet":
        result: Any = fleet(args)
    else:
        result = run(mode, args, from_stdin)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
