"""A token bucket that always has a token, around ``f(x) = x + 1``: ours against the peers.

Every limiter allows 10^9 calls per second, so no call ever waits or is refused: this is
what each library adds to every admitted call (the price of one admission decision).
Ours is measured decorated (the primary row), through ``limiter.acquire()`` /
``await limiter.aacquire()`` and ``with limiter:`` / ``async with limiter:`` inside the
function, and through ``limiter.call`` / ``acall``.

Peers on the same job, each with in-memory state:

- ``limits``: ``FixedWindowRateLimiter`` and ``MovingWindowRateLimiter`` over
  ``MemoryStorage``, ``limiter.hit(item)`` (async: ``limits.aio``);
- ``pyrate-limiter``: ``Limiter(InMemoryBucket([Rate(...)]))``,
  ``try_acquire(name, blocking=False)`` (async: ``try_acquire_async``);
- ``aiolimiter`` (async only): ``async with AsyncLimiter(...)``;
- ``hyx`` (async only, optional: skipped if it is not installed): ``@tokenbucket(...)``.

A peer whose admission says "no" makes the case raise, as ours would.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Awaitable, Callable
from typing import Any

import aiolimiter
import limits
import limits.aio.storage
import limits.aio.strategies
import limits.storage
import limits.strategies
from pyrate_limiter import Duration, InMemoryBucket, Limiter, Rate

from resilience import TokenBucket

RATE = 10**9  # tokens per second: the bucket never runs dry


def f(x: int) -> int:
    return x + 1


async def af(x: int) -> int:
    return x + 1


# -- ours --------------------------------------------------------------------------------


def ours_acquire() -> Callable[[int], int]:
    acquire = TokenBucket(RATE).acquire

    def g(x: int) -> int:
        acquire()
        return x + 1

    return g


def ours_with() -> Callable[[int], int]:
    limiter = TokenBucket(RATE)

    def g(x: int) -> int:
        with limiter:
            return x + 1

    return g


def ours_aacquire() -> Callable[[int], Awaitable[int]]:
    aacquire = TokenBucket(RATE).aacquire

    async def g(x: int) -> int:
        await aacquire()
        return x + 1

    return g


def ours_async_with() -> Callable[[int], Awaitable[int]]:
    limiter = TokenBucket(RATE)

    async def g(x: int) -> int:
        async with limiter:
            return x + 1

    return g


# -- peers -------------------------------------------------------------------------------


class Refused(Exception):
    """A peer limiter said no: the benchmark setup is wrong."""


def limits_sync(strategy: type[limits.strategies.RateLimiter]) -> Callable[[], Any]:
    def make() -> Callable[[int], int]:
        hit = strategy(limits.storage.MemoryStorage()).hit
        item = limits.RateLimitItemPerSecond(RATE)

        def g(x: int) -> int:
            if not hit(item):
                raise Refused
            return x + 1

        return g

    return make


def limits_async(strategy: type[Any]) -> Callable[[], Any]:
    def make() -> Callable[[int], Awaitable[int]]:
        hit = strategy(limits.aio.storage.MemoryStorage()).hit
        item = limits.RateLimitItemPerSecond(RATE)

        async def g(x: int) -> int:
            if not await hit(item):
                raise Refused
            return x + 1

        return g

    return make


def pyrate_limiter() -> Limiter:
    return Limiter(InMemoryBucket([Rate(RATE, Duration.SECOND)]))


def pyrate_sync() -> Callable[[int], int]:
    try_acquire = pyrate_limiter().try_acquire

    def g(x: int) -> int:
        if not try_acquire("bench", blocking=False):
            raise Refused
        return x + 1

    return g


def pyrate_async() -> Callable[[int], Awaitable[int]]:
    try_acquire = pyrate_limiter().try_acquire_async

    async def g(x: int) -> int:
        if not await try_acquire("bench", blocking=False):
            raise Refused
        return x + 1

    return g


def aiolimiter_with() -> Callable[[int], Awaitable[int]]:
    limiter = aiolimiter.AsyncLimiter(RATE, 1)

    async def g(x: int) -> int:
        async with limiter:
            return x + 1

    return g


def hyx_tokenbucket() -> Callable[[int], Awaitable[int]]:
    from hyx.ratelimit import tokenbucket

    async def build() -> Callable[[int], Awaitable[int]]:
        # hyx reads the running loop at construction (only for ``loop.time()``, which is
        # the monotonic clock on any loop), and cases are made outside the batch loop.
        return tokenbucket(max_executions=RATE, per_time_secs=1)(af)

    return asyncio.run(build())


HYX = importlib.util.find_spec("hyx") is not None

CASES = {
    "limiter-sync": [
        ("bare", "bare call `f(x)`", "baseline", lambda: f),
        (
            "ours",
            "resilience `@TokenBucket(rate)`",
            "ours",
            lambda: TokenBucket(RATE)(f),
            "primary",
        ),
        ("ours-acquire", "resilience `limiter.acquire()` in `f`", "ours", ours_acquire),
        ("ours-with", "resilience `with limiter:` in `f`", "ours", ours_with),
        (
            "ours-call",
            "resilience `limiter.call(f, x)`",
            "ours",
            lambda: (TokenBucket(RATE).call, f),
        ),
        (
            "limits-fixed",
            "limits `FixedWindowRateLimiter(MemoryStorage()).hit(item)`",
            "peer",
            limits_sync(limits.strategies.FixedWindowRateLimiter),
        ),
        (
            "limits-moving",
            "limits `MovingWindowRateLimiter(MemoryStorage()).hit(item)`",
            "peer",
            limits_sync(limits.strategies.MovingWindowRateLimiter),
        ),
        (
            "pyrate",
            "pyrate-limiter `Limiter(InMemoryBucket(...)).try_acquire(name)`",
            "peer",
            pyrate_sync,
        ),
    ],
    "limiter-async": [
        ("bare", "bare call `await af(x)`", "baseline", lambda: af),
        (
            "ours",
            "resilience `@TokenBucket(rate)`",
            "ours",
            lambda: TokenBucket(RATE)(af),
            "primary",
        ),
        ("ours-aacquire", "resilience `await limiter.aacquire()` in `af`", "ours", ours_aacquire),
        ("ours-with", "resilience `async with limiter:` in `af`", "ours", ours_async_with),
        (
            "ours-call",
            "resilience `await limiter.acall(af, x)`",
            "ours",
            lambda: (TokenBucket(RATE).acall, af),
        ),
        ("aiolimiter", "aiolimiter `async with AsyncLimiter(...)`", "peer", aiolimiter_with),
        *(
            [("hyx", "hyx `@tokenbucket(...)`", "peer", hyx_tokenbucket)]
            if HYX
            else []  # optional peer: not installed here
        ),
        (
            "limits-fixed",
            "limits.aio `FixedWindowRateLimiter(MemoryStorage()).hit(item)`",
            "peer",
            limits_async(limits.aio.strategies.FixedWindowRateLimiter),
        ),
        (
            "limits-moving",
            "limits.aio `MovingWindowRateLimiter(MemoryStorage()).hit(item)`",
            "peer",
            limits_async(limits.aio.strategies.MovingWindowRateLimiter),
        ),
        (
            "pyrate",
            "pyrate-limiter `await Limiter(InMemoryBucket(...)).try_acquire_async(name)`",
            "peer",
            pyrate_async,
        ),
    ],
}


def test_ratelimit(case, run_case):
    run_case(case)
