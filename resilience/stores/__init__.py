"""Where policies keep their state: in memory (default) or shared (``stores.redis``).

Store authors implement :class:`BreakerStore`, which hands out a
:class:`BreakerBackend` per breaker; the other names here are the types that cross
that boundary.
"""

from __future__ import annotations

from .._breaker_core import BreakerMetrics, BreakerSettings, Permit, TransitionCallback
from .._store import BreakerBackend, BreakerStore
from .memory import MemoryStore

__all__ = [
    "BreakerBackend",
    "BreakerMetrics",
    "BreakerSettings",
    "BreakerStore",
    "MemoryStore",
    "Permit",
    "TransitionCallback",
]
