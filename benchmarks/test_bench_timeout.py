"""A timeout that is not hit, around ``f(x) = x + 1``: ours against anyio and asyncio.

Async: ``@Timeout(1.0)`` and ``timeout.acall`` against ``anyio.fail_after(1.0)`` and
(Python 3.11+) ``asyncio.timeout(1.0)`` wrapping the same ``await af(x)`` in a coroutine
function, so every row pays one coroutine layer over the bare call. All of them arm and
disarm a timer on the event loop on every call; ours also publishes the deadline for
``resilience.remaining()``.

Sync: our Timeout runs the call on a pooled worker thread and waits for it, so it costs
a thread handoff each way; for reference, the usual hand-made equivalent submits to a
``concurrent.futures.ThreadPoolExecutor`` and waits on ``future.result(timeout)``.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio

from resilience import Timeout

SECONDS = 1.0


def f(x: int) -> int:
    return x + 1


async def af(x: int) -> int:
    return x + 1


async def fail_after_af(x: int) -> int:
    with anyio.fail_after(SECONDS):
        return await af(x)


async def asyncio_timeout_af(x: int) -> int:
    async with asyncio.timeout(SECONDS):  # type: ignore[attr-defined,unused-ignore]
        return await af(x)


def executor_f() -> Callable[[int], int]:
    executor = ThreadPoolExecutor(max_workers=1)
    submit = executor.submit

    def run(x: int) -> int:
        return submit(f, x).result(timeout=SECONDS)

    return run


ASYNC_PEERS: list[tuple[Any, ...]] = [
    (
        "anyio-fail-after",
        "anyio `with fail_after(1.0): await af(x)`",
        "peer",
        lambda: fail_after_af,
    ),
]
if sys.version_info >= (3, 11):
    ASYNC_PEERS.append(
        (
            "asyncio-timeout",
            "asyncio `async with timeout(1.0): await af(x)`",
            "peer",
            lambda: asyncio_timeout_af,
        )
    )

CASES = {
    "timeout-async": [
        ("bare", "bare call `await af(x)`", "baseline", lambda: af),
        ("ours", "resilience `@Timeout(1.0)`", "ours", lambda: Timeout(SECONDS)(af), "primary"),
        (
            "ours-call",
            "resilience `await timeout.acall(af, x)`",
            "ours",
            lambda: (Timeout(SECONDS).acall, af),
        ),
        *ASYNC_PEERS,
    ],
    "timeout-sync": [
        ("bare", "bare call `f(x)`", "baseline", lambda: f),
        (
            "ours",
            "resilience `@Timeout(1.0)` (worker thread)",
            "ours",
            lambda: Timeout(SECONDS)(f),
            "primary",
        ),
        (
            "ours-call",
            "resilience `timeout.call(f, x)` (worker thread)",
            "ours",
            lambda: (Timeout(SECONDS).call, f),
        ),
        (
            "executor",
            "`ThreadPoolExecutor(1).submit(f, x).result(timeout=1.0)`",
            "peer",
            executor_f,
        ),
    ],
}


def test_timeout(case, run_case):
    run_case(case)
