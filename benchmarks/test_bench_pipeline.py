"""``Pipeline(Retry(), CircuitBreaker())`` (retry outside, breaker inside) on a call that succeeds.

The peers have no pipeline object; their equivalent is a retry decorator stacked on a
breaker decorator, configured as in the retry and breaker benchmarks. The target for
our pipeline is stricter than these stacks: its total time per call must be under the
fastest peer *breaker alone* (from the breaker groups of the same run).
pybreaker has no asyncio support, so the async stacks use circuitbreaker.
"""

from __future__ import annotations

import backoff
import circuitbreaker
import pybreaker
import stamina
import tenacity

from resilience import CircuitBreaker, Pipeline, Retry


def f(x: int) -> int:
    return x + 1


async def af(x: int) -> int:
    return x + 1


def ours():
    return Pipeline(Retry(), CircuitBreaker())


def tenacity_retry():
    return tenacity.retry(
        stop=tenacity.stop_after_attempt(3),
        wait=tenacity.wait_random_exponential(multiplier=0.1, max=10),
        reraise=True,
    )


def stamina_retry():
    return stamina.retry(on=Exception, attempts=3, timeout=None)


def backoff_retry():
    return backoff.on_exception(backoff.expo, Exception, max_tries=3)


def stack(retry, breaker, fn):
    return lambda: retry()(breaker()(fn))


CASES = {
    "pipeline-sync": [
        ("bare", "bare call `f(x)`", "baseline", lambda: f),
        (
            "ours",
            "resilience `@Pipeline(Retry(), CircuitBreaker())`",
            "ours",
            lambda: ours()(f),
            "primary",
        ),
        ("ours-call", "resilience `pipeline.call(f, x)`", "ours", lambda: (ours().call, f)),
        (
            "backoff+circuitbreaker",
            "backoff over circuitbreaker",
            "peer-stack",
            stack(backoff_retry, circuitbreaker.CircuitBreaker, f),
        ),
        (
            "tenacity+pybreaker",
            "tenacity over pybreaker",
            "peer-stack",
            stack(tenacity_retry, pybreaker.CircuitBreaker, f),
        ),
        (
            "stamina+circuitbreaker",
            "stamina over circuitbreaker",
            "peer-stack",
            stack(stamina_retry, circuitbreaker.CircuitBreaker, f),
        ),
    ],
    "pipeline-async": [
        ("bare", "bare call `await af(x)`", "baseline", lambda: af),
        (
            "ours",
            "resilience `@Pipeline(Retry(), CircuitBreaker())`",
            "ours",
            lambda: ours()(af),
            "primary",
        ),
        (
            "ours-call",
            "resilience `await pipeline.acall(af, x)`",
            "ours",
            lambda: (ours().acall, af),
        ),
        (
            "backoff+circuitbreaker",
            "backoff over circuitbreaker",
            "peer-stack",
            stack(backoff_retry, circuitbreaker.CircuitBreaker, af),
        ),
        (
            "tenacity+circuitbreaker",
            "tenacity over circuitbreaker",
            "peer-stack",
            stack(tenacity_retry, circuitbreaker.CircuitBreaker, af),
        ),
        (
            "stamina+circuitbreaker",
            "stamina over circuitbreaker",
            "peer-stack",
            stack(stamina_retry, circuitbreaker.CircuitBreaker, af),
        ),
    ],
}


def test_pipeline(case, run_case):
    run_case(case)
