"""A worker process for the multi-process tests: ``python redis_worker.py MODE JSON``.

The worker builds its own store (its own connections, as another host would), prints
``ready``, waits for a start time (wall clock, seconds) on stdin, does its part, and
prints one line of JSON with what it saw.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from resilience import CircuitBreaker, CircuitOpen, RateLimited, TokenBucket
from resilience.stores.redis import RedisStore


def wait_for_start() -> float:
    print("ready", flush=True)
    start = float(sys.stdin.readline())
    time.sleep(max(0.0, start - time.time()))
    return start


def half_open(store: RedisStore, args: dict[str, Any]) -> dict[str, Any]:
    """Hammer a breaker that has just left OPEN; trials block longer than the storm."""
    breaker = CircuitBreaker(store=store, **args["breaker"])
    trials = rejected = 0

    def trial() -> None:
        nonlocal trials
        trials += 1
        time.sleep(args["trial_seconds"])

    start = wait_for_start()
    while time.time() < start + args["storm_seconds"]:
        try:
            breaker.call(trial)
        except CircuitOpen:
            rejected += 1
    return {"trials": trials, "rejected": rejected}


def hold_trial(store: RedisStore, args: dict[str, Any]) -> dict[str, Any]:
    """Take the one trial permit and never give it back (the parent kills us)."""
    breaker = CircuitBreaker(store=store, **args["breaker"])
    wait_for_start()

    def forever() -> None:
        print("holding", flush=True)
        time.sleep(3600)

    breaker.call(forever)
    return {}


def bucket(store: RedisStore, args: dict[str, Any]) -> dict[str, Any]:
    """Take tokens as fast as they come for a while; report when we tried."""
    limiter = TokenBucket(store=store, **args["bucket"])
    admitted = refused = 0
    start = wait_for_start()
    first = last_grant = time.time()
    while time.time() < start + args["seconds"]:
        try:
            limiter.acquire()
            last_grant = time.time()
            admitted += 1
        except RateLimited:
            refused += 1
        time.sleep(args["pause"])
    return {"admitted": admitted, "refused": refused, "first": first, "last": last_grant}


MODES = {"half_open": half_open, "hold_trial": hold_trial, "bucket": bucket}


def main() -> None:
    mode, raw = sys.argv[1], sys.argv[2]
    args = json.loads(raw)
    with RedisStore.from_url(args["url"], **args["store"]) as store:
        result = MODES[mode](store, args)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
