"""A closed circuit breaker around ``f(x) = x + 1``: ours against pybreaker and circuitbreaker.

Every breaker is at its defaults and stays closed (``f`` never fails), so this is the
cost each library adds to every successful call. Ours is measured decorated (the
default 60 s time window, and ``CountWindow(100)``) and through ``breaker.call``.
pybreaker has no asyncio support (its ``call_async`` needs Tornado), so it has no async
row; circuitbreaker decorates coroutine functions natively.
"""

from __future__ import annotations

import circuitbreaker
import pybreaker

from resilience import CircuitBreaker, CountWindow


def f(x: int) -> int:
    return x + 1


async def af(x: int) -> int:
    return x + 1


CASES = {
    "breaker-sync": [
        ("bare", "bare call `f(x)`", "baseline", lambda: f),
        ("ours", "resilience `@CircuitBreaker()`", "ours", lambda: CircuitBreaker()(f), "primary"),
        (
            "ours-count",
            "resilience `@CircuitBreaker(window=CountWindow(100))`",
            "ours",
            lambda: CircuitBreaker(window=CountWindow(100))(f),
        ),
        (
            "ours-call",
            "resilience `breaker.call(f, x)`",
            "ours",
            lambda: (CircuitBreaker().call, f),
        ),
        (
            "pybreaker",
            "pybreaker `@CircuitBreaker()`",
            "peer",
            lambda: pybreaker.CircuitBreaker()(f),
        ),
        (
            "pybreaker-call",
            "pybreaker `breaker.call(f, x)`",
            "peer",
            lambda: (pybreaker.CircuitBreaker().call, f),
        ),
        (
            "circuitbreaker",
            "circuitbreaker `@circuit`",
            "peer",
            lambda: circuitbreaker.CircuitBreaker()(f),
        ),
        (
            "circuitbreaker-call",
            "circuitbreaker `breaker.call(f, x)`",
            "peer",
            lambda: (circuitbreaker.CircuitBreaker().call, f),
        ),
    ],
    "breaker-async": [
        ("bare", "bare call `await af(x)`", "baseline", lambda: af),
        ("ours", "resilience `@CircuitBreaker()`", "ours", lambda: CircuitBreaker()(af), "primary"),
        (
            "ours-count",
            "resilience `@CircuitBreaker(window=CountWindow(100))`",
            "ours",
            lambda: CircuitBreaker(window=CountWindow(100))(af),
        ),
        (
            "ours-call",
            "resilience `await breaker.acall(af, x)`",
            "ours",
            lambda: (CircuitBreaker().acall, af),
        ),
        (
            "circuitbreaker",
            "circuitbreaker `@circuit`",
            "peer",
            lambda: circuitbreaker.CircuitBreaker()(af),
        ),
        (
            "circuitbreaker-call",
            "circuitbreaker `await breaker.call_async(af, x)`",
            "peer",
            lambda: (circuitbreaker.CircuitBreaker().call_async, af),
        ),
    ],
}


def test_breaker(case, run_case):
    run_case(case)
