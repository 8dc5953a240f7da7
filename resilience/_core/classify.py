"""Calling user predicates that classify outcomes, without letting them break a call.

A predicate (``failure_if``, ``retry_on``...) that raises is a bug in configuration,
but it runs after the protected call has produced its own result or exception: that
outcome must reach the caller, and the policy must still finish its bookkeeping.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ..errors import ResilienceError
from .call import CURRENT_CALL

__all__ = ["failed", "judge"]

_log = logging.getLogger("resilience")


def judge(param: str, predicate: Callable[[Any], object], value: object, on_error: bool) -> bool:
    """``bool(predicate(value))``, or ``on_error`` (logged) if the predicate raises."""
    try:
        return bool(predicate(value))
    except Exception:
        _log.exception("%s raised on %r; treating it as %s", param, value, on_error)
        return on_error


def failed(
    exc: BaseException,
    failure_on: Callable[[BaseException], object],
    ignore: Callable[[BaseException], object],
) -> bool | None:
    """What an exception says about the dependency, for policies that count outcomes
    (a breaker, a throttle): True (a failure), False (a success), or None (no outcome:
    a cancellation or interruption, an ``ignore``d exception, or a refusal by a policy
    inside, such as a limiter or a bulkhead, which says nothing about the dependency).
    Inside a call made by an integration, the integration's verdict on its own errors
    comes before ``failure_on``."""
    if (
        not isinstance(exc, Exception)
        or (isinstance(exc, ResilienceError) and exc._refusal)
        or judge("ignore", ignore, exc, False)
    ):
        return None
    call = CURRENT_CALL.get()
    if call is not None:  # an integration classifies its own errors (an HTTP 503...)
        verdict = call.failure(exc)
        if verdict is not None:
            return verdict
    return judge("failure_on", failure_on, exc, True)
