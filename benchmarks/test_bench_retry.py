"""A retry whose first attempt succeeds: ours against tenacity, stamina and backoff.

Each library is set up to do the same work as ``Retry()`` (3 attempts in all, on any
``Exception``, exponential backoff with full jitter, no overall deadline):

- tenacity: ``retry(stop=stop_after_attempt(3), wait=wait_random_exponential(0.1, max=10),
  reraise=True)``, decorated and as a reused ``Retrying`` object;
- stamina: ``retry(on=Exception, attempts=3, timeout=None)`` (stamina is active, as by
  default; the conftest checks);
- backoff: ``on_exception(expo, Exception, max_tries=3)`` (full jitter by default).

``f`` never fails, so no one sleeps: this is the price of the success path.
"""

from __future__ import annotations

import backoff
import stamina
import tenacity

from resilience import Retry


def f(x: int) -> int:
    return x + 1


async def af(x: int) -> int:
    return x + 1


TENACITY = {
    "stop": tenacity.stop_after_attempt(3),
    "wait": tenacity.wait_random_exponential(multiplier=0.1, max=10),
    "reraise": True,
}


def tenacity_retry():
    return tenacity.retry(**TENACITY)


def stamina_retry():
    return stamina.retry(on=Exception, attempts=3, timeout=None)


def backoff_retry():
    return backoff.on_exception(backoff.expo, Exception, max_tries=3)


CASES = {
    "retry-sync": [
        ("bare", "bare call `f(x)`", "baseline", lambda: f),
        ("ours", "resilience `@Retry()`", "ours", lambda: Retry()(f), "primary"),
        ("ours-call", "resilience `retry.call(f, x)`", "ours", lambda: (Retry().call, f)),
        ("tenacity", "tenacity `@retry(...)`", "peer", lambda: tenacity_retry()(f)),
        (
            "tenacity-call",
            "tenacity `Retrying(...)(f, x)`",
            "peer",
            lambda: (tenacity.Retrying(**TENACITY), f),
        ),
        ("stamina", "stamina `@retry(...)`", "peer", lambda: stamina_retry()(f)),
        ("backoff", "backoff `@on_exception(...)`", "peer", lambda: backoff_retry()(f)),
    ],
    "retry-async": [
        ("bare", "bare call `await af(x)`", "baseline", lambda: af),
        ("ours", "resilience `@Retry()`", "ours", lambda: Retry()(af), "primary"),
        ("ours-call", "resilience `await retry.acall(af, x)`", "ours", lambda: (Retry().acall, af)),
        ("tenacity", "tenacity `@retry(...)`", "peer", lambda: tenacity_retry()(af)),
        (
            "tenacity-call",
            "tenacity `await AsyncRetrying(...)(af, x)`",
            "peer",
            lambda: (tenacity.AsyncRetrying(**TENACITY), af),
        ),
        ("stamina", "stamina `@retry(...)`", "peer", lambda: stamina_retry()(af)),
        ("backoff", "backoff `@on_exception(...)`", "peer", lambda: backoff_retry()(af)),
    ],
}


def test_retry(case, run_case):
    run_case(case)
