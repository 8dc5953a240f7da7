"""resilience: circuit breaker, retry, timeout, rate limiting, bulkhead and fallback for
outbound calls, composed into pipelines, sync and async (asyncio and trio)."""

from __future__ import annotations

from ._backoff import Backoff, Constant, DecorrelatedJitter, Exponential, Linear
from ._breaker import CircuitBreaker
from ._breaker_core import BreakerMetrics
from ._budget import RetryBudget
from ._clock import Clock, SystemClock
from ._events import Event, listen
from ._pipeline import Pipeline
from ._policy import Policy
from ._retry import Attempt, Retry
from ._windows import CountWindow
from .errors import (
    BulkheadFull,
    CircuitOpen,
    ConfigError,
    RateLimited,
    ResilienceError,
    TimeoutExceeded,
)

__all__ = [
    "Attempt",
    "Backoff",
    "BreakerMetrics",
    "BulkheadFull",
    "CircuitBreaker",
    "CircuitOpen",
    "Clock",
    "ConfigError",
    "Constant",
    "CountWindow",
    "DecorrelatedJitter",
    "Event",
    "Exponential",
    "Linear",
    "Pipeline",
    "Policy",
    "RateLimited",
    "ResilienceError",
    "Retry",
    "RetryBudget",
    "SystemClock",
    "TimeoutExceeded",
    "listen",
]
