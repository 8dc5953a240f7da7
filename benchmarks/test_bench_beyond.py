"""Hot-path cost of shadow mode, hedging, adaptive concurrency, adaptive throttling and
chaos, around ``f(x) = x + 1``.

- Shadow mode: breaker, token bucket and bulkhead with free capacity, enforcing and in
  ``mode="metrics_only"``. The point: shadow mode costs an admitted call nothing, and an
  enforcing policy's fast path is the one it always had.
- Hedge, first attempt answering at once: async, ``@Hedge(1.0)`` and with a learned
  delay, next to the least any async hedge does (the call as a task of an anyio task
  group, its result handed back); sync, next to a ``ThreadPoolExecutor`` round trip
  (every sync attempt runs on a worker thread).
- AdaptiveConcurrency with room under its limit, next to ``Bulkhead`` and the
  semaphores one would use by hand.
- AdaptiveThrottle with a healthy dependency (probability 0: one draw and two short
  locked updates per call), and Chaos enabled with rate 0 (one draw per call) or
  disabled, next to a ``TokenBucket`` with free tokens for scale.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio

from resilience import (
    AdaptiveConcurrency,
    AdaptiveThrottle,
    Bulkhead,
    Chaos,
    CircuitBreaker,
    Hedge,
    LatencyQuantile,
    TokenBucket,
)

RATE = 1e9  # tokens per second: never runs out


def f(x: int) -> int:
    return x + 1


async def af(x: int) -> int:
    return x + 1


def in_loop(make: Callable[[], Any]) -> Any:
    async def build() -> Any:
        return make()

    return asyncio.run(build())


def task_group_hedge() -> Callable[[int], Awaitable[int]]:
    """The least an async hedge does: the call as a task, its result handed back."""

    async def g(x: int) -> int:
        box: list[int] = []

        async def attempt() -> None:
            box.append(await af(x))

        async with anyio.create_task_group() as tg:
            tg.start_soon(attempt)
        return box[0]

    return g


def executor_round_trip() -> Callable[[int], int]:
    pool = ThreadPoolExecutor(4)

    def g(x: int) -> int:
        return pool.submit(f, x).result(timeout=1.0)

    return g


def with_sync(sem: Any) -> Callable[[int], int]:
    def g(x: int) -> int:
        with sem:
            return f(x)

    return g


def with_async(sem: Any) -> Callable[[int], Awaitable[int]]:
    async def g(x: int) -> int:
        async with sem:
            return await af(x)

    return g


SHADOW = "metrics_only"


def shadow_rows(fn: Any) -> list[tuple[Any, ...]]:
    return [
        (
            "breaker-enforce",
            "`@CircuitBreaker()`",
            "alternative",
            lambda: CircuitBreaker()(fn),
        ),
        (
            "breaker-shadow",
            '`@CircuitBreaker(mode="metrics_only")`',
            "ours",
            lambda: CircuitBreaker(mode=SHADOW)(fn),
            "primary",
        ),
        (
            "bucket-enforce",
            "`@TokenBucket(1e9)`",
            "alternative",
            lambda: TokenBucket(RATE)(fn),
        ),
        (
            "bucket-shadow",
            '`@TokenBucket(1e9, mode="metrics_only")`',
            "ours",
            lambda: TokenBucket(RATE, mode=SHADOW)(fn),
        ),
        ("bulkhead-enforce", "`@Bulkhead(5)`", "alternative", lambda: Bulkhead(5)(fn)),
        (
            "bulkhead-shadow",
            '`@Bulkhead(5, mode="metrics_only")`',
            "ours",
            lambda: Bulkhead(5, mode=SHADOW)(fn),
        ),
    ]


def local_rows(fn: Any) -> list[tuple[Any, ...]]:
    return [
        (
            "throttle",
            "`@AdaptiveThrottle()`",
            "ours",
            lambda: AdaptiveThrottle()(fn),
            "primary",
        ),
        (
            "chaos",
            "`@Chaos.fault(0.0, ValueError)`",
            "ours",
            lambda: Chaos.fault(0.0, ValueError)(fn),
        ),
        (
            "chaos-off",
            "`@Chaos.fault(1.0, ValueError, enabled=False)`",
            "ours",
            lambda: Chaos.fault(1.0, ValueError, enabled=False)(fn),
        ),
        ("bucket", "`@TokenBucket(1e9)`", "alternative", lambda: TokenBucket(RATE)(fn)),
    ]


CASES = {
    "shadow-sync": [("bare", "bare call `f(x)`", "baseline", lambda: f), *shadow_rows(f)],
    "shadow-async": [("bare", "bare call `await af(x)`", "baseline", lambda: af), *shadow_rows(af)],
    "hedge-sync": [
        ("bare", "bare call `f(x)`", "baseline", lambda: f),
        ("ours", "resilience `@Hedge(1.0)`", "ours", lambda: Hedge(1.0)(f), "primary"),
        (
            "executor",
            "`ThreadPoolExecutor(4).submit(f, x).result(timeout=1.0)`",
            "peer",
            executor_round_trip,
        ),
    ],
    "hedge-async": [
        ("bare", "bare call `await af(x)`", "baseline", lambda: af),
        ("ours", "resilience `@Hedge(1.0)`", "ours", lambda: Hedge(1.0)(af), "primary"),
        (
            "ours-learned",
            "resilience `@Hedge(LatencyQuantile(0.95))`",
            "ours",
            lambda: Hedge(LatencyQuantile(0.95))(af),
        ),
        (
            "task-group",
            "the call as a task of an anyio task group, its result handed back",
            "peer",
            task_group_hedge,
        ),
    ],
    "adaptive-sync": [
        ("bare", "bare call `f(x)`", "baseline", lambda: f),
        (
            "ours",
            "resilience `@AdaptiveConcurrency()`",
            "ours",
            lambda: AdaptiveConcurrency()(f),
            "primary",
        ),
        ("bulkhead", "resilience `@Bulkhead(20)`", "alternative", lambda: Bulkhead(20)(f)),
        (
            "threading-bounded",
            "`with threading.BoundedSemaphore(20): f(x)`",
            "peer",
            lambda: with_sync(threading.BoundedSemaphore(20)),
        ),
    ],
    "adaptive-async": [
        ("bare", "bare call `await af(x)`", "baseline", lambda: af),
        (
            "ours",
            "resilience `@AdaptiveConcurrency()`",
            "ours",
            lambda: AdaptiveConcurrency()(af),
            "primary",
        ),
        ("bulkhead", "resilience `@Bulkhead(20)`", "alternative", lambda: Bulkhead(20)(af)),
        (
            "asyncio-semaphore",
            "`async with asyncio.Semaphore(20): await af(x)`",
            "peer",
            lambda: with_async(asyncio.Semaphore(20)),
        ),
        (
            "anyio-limiter",
            "`async with anyio.CapacityLimiter(20): await af(x)`",
            "peer",
            lambda: with_async(in_loop(lambda: anyio.CapacityLimiter(20))),
        ),
    ],
    "local-sync": [("bare", "bare call `f(x)`", "baseline", lambda: f), *local_rows(f)],
    "local-async": [("bare", "bare call `await af(x)`", "baseline", lambda: af), *local_rows(af)],
}


def test_beyond(case, run_case):
    run_case(case)
