"""Calling user predicates that classify outcomes, without letting them break a call.

A predicate (``failure_if``, ``retry_on``...) that raises is a bug in configuration,
but it runs after the protected call has produced its own result or exception: that
outcome must reach the caller, and the policy must still finish its bookkeeping.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

__all__ = ["judge"]

_log = logging.getLogger("resilience")


def judge(param: str, predicate: Callable[[Any], object], value: object, on_error: bool) -> bool:
    """``bool(predicate(value))``, or ``on_error`` (logged) if the predicate raises."""
    try:
        return bool(predicate(value))
    except Exception:
        _log.exception("%s raised on %r; treating it as %s", param, value, on_error)
        return on_error
