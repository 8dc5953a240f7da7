"""Where policies keep their state: in memory (default) or shared (``stores.redis``).

Store authors implement :class:`BreakerStore`, which hands out a
:class:`BreakerBackend` per breaker, and :class:`LimiterStore`, which hands out a
:class:`LimiterBackend` per token bucket; the other names here are the types that
cross those boundaries.
"""

from __future__ import annotations

from .._breaker_core import BreakerMetrics, BreakerSettings, Permit, TransitionCallback
from .._ratelimit_core import Decision, LimiterSettings, Reservation, Take
from .._store import BreakerBackend, BreakerStore, LimiterBackend, LimiterStore
from .memory import MemoryStore

__all__ = [
    "BreakerBackend",
    "BreakerMetrics",
    "BreakerSettings",
    "BreakerStore",
    "Decision",
    "LimiterBackend",
    "LimiterSettings",
    "LimiterStore",
    "MemoryStore",
    "Permit",
    "Reservation",
    "Take",
    "TransitionCallback",
]
