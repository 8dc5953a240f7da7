"""Where policies keep their state: in memory (default) or shared (``stores.redis``).

Store authors implement :class:`BreakerStore`, which hands out a
:class:`BreakerBackend` per breaker, :class:`LimiterStore` (a :class:`LimiterBackend`
per token bucket), :class:`BudgetStore` (a :class:`BudgetBackend` per retry budget) and
:class:`BulkheadStore` (a :class:`BulkheadBackend` per bulkhead); the other names here
are the types that cross those boundaries.
"""

from __future__ import annotations

from .._core.breaker import BreakerMetrics, BreakerSettings, Permit, TransitionCallback
from .._core.bucket import Decision, LimiterSettings, Reservation, Take
from .._core.budget import BudgetSettings
from .._core.bulkhead import Waiter
from .._core.naming import present_as
from .._core.protocols import (
    BreakerBackend,
    BreakerStore,
    BudgetBackend,
    BudgetStore,
    BulkheadBackend,
    BulkheadStore,
    LimiterBackend,
    LimiterStore,
)
from .memory import MemoryStore

__all__ = [
    "BreakerBackend",
    "BreakerMetrics",
    "BreakerSettings",
    "BreakerStore",
    "BudgetBackend",
    "BudgetSettings",
    "BudgetStore",
    "BulkheadBackend",
    "BulkheadStore",
    "Decision",
    "LimiterBackend",
    "LimiterSettings",
    "LimiterStore",
    "MemoryStore",
    "Permit",
    "Reservation",
    "Take",
    "TransitionCallback",
    "Waiter",
]

present_as("resilience.stores", globals(), __all__)
