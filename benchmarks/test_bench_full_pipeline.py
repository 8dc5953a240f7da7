"""The recommended pipeline on a call that succeeds: every policy on one call.

``Pipeline(Fallback(None), Retry(), CircuitBreaker(), TokenBucket(1e9, burst=1e9),
Bulkhead(1_000_000))`` (the recommended order, first outermost, without its ``Timeout``)
around ``f(x) = x + 1``. Every call succeeds on its first attempt, the breaker stays
closed, the bucket always has a token and the bulkhead always has a slot, so this is
the price of going through all of them when nothing goes wrong. Measured decorated
(the primary row, sync and async) and through ``call``/``acall``; async also with
``Timeout(60)`` innermost, the whole recommended pipeline (an async timeout arms and
disarms an anyio cancel scope on every call, the largest single cost here; sync, a
Timeout would hand every call to a worker thread, see the timeout groups).

The peers have no pipeline object; for context, each group has the same policies built
by hand from the peers of the other groups, decorators stacked in the same order:

- sync: ``try``/``except Exception: return None`` over backoff
  ``on_exception(expo, Exception, max_tries=3)`` over circuitbreaker's ``@circuit`` over
  limits ``FixedWindowRateLimiter(MemoryStorage()).hit(item)`` (10^9 per second) over
  ``with threading.BoundedSemaphore(1_000_000)``;
- async: the same fallback, backoff and circuitbreaker over aiolimiter
  ``async with AsyncLimiter(10**9, 1)`` over ``async with asyncio.Semaphore(1_000_000)``,
  and in the timeout group ``with anyio.fail_after(60)`` innermost.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import aiolimiter
import anyio
import backoff
import circuitbreaker
import limits
import limits.storage
import limits.strategies

from resilience import Bulkhead, CircuitBreaker, Fallback, Pipeline, Retry, Timeout, TokenBucket

RATE = 10**9  # tokens per second: the bucket never runs dry
SLOTS = 1_000_000  # the bulkhead always has a free slot
SECONDS = 60.0  # the timeout is never hit


def f(x: int) -> int:
    return x + 1


async def af(x: int) -> int:
    return x + 1


# -- ours --------------------------------------------------------------------------------


def policies() -> list[Any]:
    return [Fallback(None), Retry(), CircuitBreaker(), TokenBucket(1e9, burst=1e9), Bulkhead(SLOTS)]


def ours() -> Pipeline:
    return Pipeline(*policies())


def ours_with_timeout() -> Pipeline:
    return Pipeline(*policies(), Timeout(SECONDS))


# -- the peer stacks ---------------------------------------------------------------------

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


class Refused(Exception):
    """A peer limiter said no: the benchmark setup is wrong."""


def fallback_none(fn: Callable[[int], int]) -> Callable[[int], int | None]:
    @functools.wraps(fn)
    def g(x: int) -> int | None:
        try:
            return fn(x)
        except Exception:
            return None

    return g


def afallback_none(fn: Callable[[int], Awaitable[int]]) -> Callable[[int], Awaitable[int | None]]:
    @functools.wraps(fn)
    async def g(x: int) -> int | None:
        try:
            return await fn(x)
        except Exception:
            return None

    return g


def limits_hit(fn: Callable[[int], int]) -> Callable[[int], int]:
    hit = limits.strategies.FixedWindowRateLimiter(limits.storage.MemoryStorage()).hit
    item = limits.RateLimitItemPerSecond(RATE)

    @functools.wraps(fn)
    def g(x: int) -> int:
        if not hit(item):
            raise Refused
        return fn(x)

    return g


def semaphore(fn: Callable[[int], int]) -> Callable[[int], int]:
    sem = threading.BoundedSemaphore(SLOTS)

    @functools.wraps(fn)
    def g(x: int) -> int:
        with sem:
            return fn(x)

    return g


def aiolimiter_with(fn: Callable[[int], Awaitable[int]]) -> Callable[[int], Awaitable[int]]:
    limiter = aiolimiter.AsyncLimiter(RATE, 1)

    @functools.wraps(fn)
    async def g(x: int) -> int:
        async with limiter:
            return await fn(x)

    return g


def asemaphore(fn: Callable[[int], Awaitable[int]]) -> Callable[[int], Awaitable[int]]:
    sem = asyncio.Semaphore(SLOTS)

    @functools.wraps(fn)
    async def g(x: int) -> int:
        async with sem:
            return await fn(x)

    return g


def fail_after(fn: Callable[[int], Awaitable[int]]) -> Callable[[int], Awaitable[int]]:
    @functools.wraps(fn)
    async def g(x: int) -> int:
        with anyio.fail_after(SECONDS):
            return await fn(x)

    return g


def backoff_retry(fn: Callable[..., Any]) -> Callable[..., Any]:
    return backoff.on_exception(backoff.expo, Exception, max_tries=3)(fn)


def circuit(fn: Callable[..., Any]) -> Callable[..., Any]:
    return circuitbreaker.CircuitBreaker()(fn)


def stack(fn: Callable[..., Any], *decorators: Decorator) -> Callable[[], Callable[..., Any]]:
    """``decorators[0]`` outermost, as in a pipeline; built fresh for every case."""

    def make() -> Callable[..., Any]:
        g = fn
        for decorate in reversed(decorators):
            g = decorate(g)
        return g

    return make


SYNC_PEERS = (fallback_none, backoff_retry, circuit, limits_hit, semaphore)
ASYNC_PEERS = (afallback_none, backoff_retry, circuit, aiolimiter_with, asemaphore)

OURS = "resilience `@Pipeline(Fallback, Retry, CircuitBreaker, TokenBucket, Bulkhead)`"
OURS_TIMEOUT = (
    "resilience `@Pipeline(Fallback, Retry, CircuitBreaker, TokenBucket, Bulkhead, Timeout)`"
)
PEERS = "fallback over backoff over circuitbreaker over {limiter} over {semaphore}"

CASES = {
    "full-pipeline-sync": [
        ("bare", "bare call `f(x)`", "baseline", lambda: f),
        ("ours", OURS, "ours", lambda: ours()(f), "primary"),
        ("ours-call", "resilience `pipeline.call(f, x)`", "ours", lambda: (ours().call, f)),
        (
            "peer-stack",
            PEERS.format(limiter="limits", semaphore="`threading.BoundedSemaphore`"),
            "peer-stack",
            stack(f, *SYNC_PEERS),
        ),
    ],
    "full-pipeline-async": [
        ("bare", "bare call `await af(x)`", "baseline", lambda: af),
        ("ours", OURS, "ours", lambda: ours()(af), "primary"),
        (
            "ours-call",
            "resilience `await pipeline.acall(af, x)`",
            "ours",
            lambda: (ours().acall, af),
        ),
        (
            "peer-stack",
            PEERS.format(limiter="aiolimiter", semaphore="`asyncio.Semaphore`"),
            "peer-stack",
            stack(af, *ASYNC_PEERS),
        ),
    ],
    "full-pipeline-timeout-async": [
        ("bare", "bare call `await af(x)`", "baseline", lambda: af),
        ("ours", OURS_TIMEOUT, "ours", lambda: ours_with_timeout()(af), "primary"),
        (
            "ours-call",
            "resilience `await pipeline.acall(af, x)`",
            "ours",
            lambda: (ours_with_timeout().acall, af),
        ),
        (
            "peer-stack",
            PEERS.format(limiter="aiolimiter", semaphore="`asyncio.Semaphore`")
            + " over `anyio.fail_after`",
            "peer-stack",
            stack(af, *ASYNC_PEERS, fail_after),
        ),
    ],
}


def test_full_pipeline(case, run_case):
    run_case(case)
