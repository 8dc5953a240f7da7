"""What the admin API reports, and how script replies become it.

Apart from the admin API itself (``_admin.py``): breakers parse status replies too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ._clients import as_text
from ._layout import STATES

__all__ = [
    "BreakerStatus",
    "BucketStatus",
    "BulkheadStatus",
    "parse_breaker_status",
    "parse_bucket_status",
]


@dataclass(frozen=True, slots=True)
class BreakerStatus:
    """One shared circuit breaker, as Redis holds it now.

    ``state`` is what a caller would meet (an open breaker whose open period has
    ended reads ``half_open``). ``retry_after``: seconds until an open breaker admits a
    trial (``None`` unless ``state`` is ``open``). The counts are those of the current
    window, in the closed state (zero otherwise). ``trials``: trial calls running now
    (half-open); ``trial_successes``: trials that succeeded in this half-open period.
    ``window``: ``"60s"`` for a time window, ``"100 calls"`` for a count window (empty
    before the first outcome). ``epoch`` grows by one on every transition.
    """

    name: str
    state: str
    retry_after: float | None
    calls: int
    failures: int
    slow_calls: int
    failure_rate: float
    slow_call_rate: float
    consecutive_failures: int
    consecutive_opens: int
    trials: int
    trial_successes: int
    window: str
    epoch: int


@dataclass(frozen=True, slots=True)
class BucketStatus:
    """One shared token bucket that is not full (a full bucket has no key in Redis).

    ``tokens``: free now (negative while reserved tokens refill); ``burst`` and
    ``rate`` (tokens per second) as the last instance to take from it gave them.
    """

    key: str
    tokens: float
    burst: float
    rate: float


@dataclass(frozen=True, slots=True)
class BulkheadStatus:
    """One shared bulkhead: ``held``, the slots taken now across the fleet (leases not
    ended); ``instances``, the processes holding a bulkhead built on this key, busy or
    idle (each heartbeats every ``slot_lease / 3``; reading the status does not count)."""

    key: str
    held: int
    instances: int


def _window(spec: str) -> str:
    if spec.startswith("c"):
        return f"{spec[1:]} calls"
    if spec.startswith("t"):
        return f"{float(spec[1:]) * 10 / 1e6:g}s"
    return ""


def parse_breaker_status(name: str, reply: Sequence[Any]) -> BreakerStatus | None:
    """The reply of ``cb_status`` (None: Redis has no state for ``name``)."""
    if not reply:
        return None
    code, epoch, remaining, opens, calls, failures, slow, consecutive, trials, successes = (
        int(value) for value in reply[:10]
    )
    state = STATES[code]
    if state == "open" and remaining <= 0:
        state = "half_open"  # as the next caller will find it
    return BreakerStatus(
        name=name,
        state=state,
        retry_after=remaining / 1e6 if state == "open" else None,
        calls=calls,
        failures=failures,
        slow_calls=slow,
        failure_rate=failures / calls if calls else 0.0,
        slow_call_rate=slow / calls if calls else 0.0,
        consecutive_failures=consecutive,
        consecutive_opens=opens,
        trials=trials,
        trial_successes=successes,
        window=_window(as_text(reply[10])),
        epoch=epoch,
    )


def parse_bucket_status(key: str, reply: Sequence[Any]) -> BucketStatus | None:
    """The reply of ``tb_peek`` (None: the bucket's key vanished, it is full)."""
    owed, interval, burst = (as_text(value) for value in reply)
    if not interval or not burst:
        return None
    interval_us = float(interval)
    size = float(burst)
    return BucketStatus(
        key=key,
        tokens=size - float(owed) / interval_us,
        burst=size,
        rate=1e6 / interval_us,
    )
