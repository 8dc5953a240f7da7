"""A bulkhead with a free slot around ``f(x) = x + 1``: ours against the semaphores.

Nothing else runs, so every call finds a free slot and nobody waits: this is the cost a
bulkhead adds to every call that it admits at once. Ours (``Bulkhead(5)``) is measured
decorated, through ``call``/``acall`` and as a ``with``/``async with`` block; the peers
are the semaphores one would guard the call with by hand: ``threading.Semaphore`` and
``BoundedSemaphore`` (sync), ``asyncio.Semaphore``, ``anyio.Semaphore`` (by default,
and with ``fast_acquire=True``, which skips the checkpoint anyio otherwise makes on
every acquire) and ``anyio.CapacityLimiter`` (async), each as ``with sem: f(x)``.

anyio's primitives are created inside a running asyncio loop, as in an application;
created outside one, anyio hands out an adapter that is slower per call.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from resilience import Bulkhead

SLOTS = 5


def f(x: int) -> int:
    return x + 1


async def af(x: int) -> int:
    return x + 1


def in_loop(make: Callable[[], Any]) -> Any:
    """Build an async primitive inside a running asyncio loop (anyio picks its backend)."""

    async def build() -> Any:
        return make()

    return asyncio.run(build())


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


CASES = {
    "bulkhead-sync": [
        ("bare", "bare call `f(x)`", "baseline", lambda: f),
        ("ours", "resilience `@Bulkhead(5)`", "ours", lambda: Bulkhead(SLOTS)(f), "primary"),
        (
            "ours-call",
            "resilience `bulkhead.call(f, x)`",
            "ours",
            lambda: (Bulkhead(SLOTS).call, f),
        ),
        (
            "ours-with",
            "resilience `with bulkhead: f(x)`",
            "ours",
            lambda: with_sync(Bulkhead(SLOTS)),
        ),
        (
            "threading-semaphore",
            "`with threading.Semaphore(5): f(x)`",
            "peer",
            lambda: with_sync(threading.Semaphore(SLOTS)),
        ),
        (
            "threading-bounded",
            "`with threading.BoundedSemaphore(5): f(x)`",
            "peer",
            lambda: with_sync(threading.BoundedSemaphore(SLOTS)),
        ),
    ],
    "bulkhead-async": [
        ("bare", "bare call `await af(x)`", "baseline", lambda: af),
        ("ours", "resilience `@Bulkhead(5)`", "ours", lambda: Bulkhead(SLOTS)(af), "primary"),
        (
            "ours-call",
            "resilience `await bulkhead.acall(af, x)`",
            "ours",
            lambda: (Bulkhead(SLOTS).acall, af),
        ),
        (
            "ours-with",
            "resilience `async with bulkhead: await af(x)`",
            "ours",
            lambda: with_async(Bulkhead(SLOTS)),
        ),
        (
            "asyncio-semaphore",
            "`async with asyncio.Semaphore(5): await af(x)`",
            "peer",
            lambda: with_async(asyncio.Semaphore(SLOTS)),
        ),
        (
            "anyio-semaphore",
            "`async with anyio.Semaphore(5): await af(x)`",
            "peer",
            lambda: with_async(in_loop(lambda: anyio.Semaphore(SLOTS))),
        ),
        (
            "anyio-semaphore-fast",
            "`async with anyio.Semaphore(5, fast_acquire=True): await af(x)`",
            "peer",
            lambda: with_async(in_loop(lambda: anyio.Semaphore(SLOTS, fast_acquire=True))),
        ),
        (
            "anyio-limiter",
            "`async with anyio.CapacityLimiter(5): await af(x)`",
            "peer",
            lambda: with_async(in_loop(lambda: anyio.CapacityLimiter(SLOTS))),
        ),
    ],
}


def test_bulkhead(case, run_case):
    run_case(case)
