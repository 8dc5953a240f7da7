"""resilience: circuit breaker, retry, timeout, rate limiting, bulkhead and fallback for
outbound calls, composed into pipelines, sync and async (asyncio and trio)."""

from __future__ import annotations

from ._adaptive import AIMD, AdaptiveConcurrency, Gradient
from ._backoff import Backoff, Constant, DecorrelatedJitter, Exponential, Linear
from ._breaker import CircuitBreaker
from ._breaker_core import BreakerMetrics
from ._budget import RetryBudget
from ._bulkhead import Bulkhead
from ._chaos import Chaos
from ._clock import Clock, SystemClock
from ._describe import DescribedPolicy, PipelineDescription
from ._events import Event, listen
from ._fallback import Fallback
from ._hedge import Hedge, LatencyQuantile
from ._keyed import KeyedPolicy, per_key
from ._pipeline import Pipeline
from ._policy import Policy
from ._ratelimit import TokenBucket
from ._retry import Attempt, Retry
from ._throttle import AdaptiveThrottle
from ._timeout import Timeout, remaining
from ._windows import CountWindow
from .config import Registry
from .errors import (
    BulkheadFull,
    CircuitOpen,
    ConfigError,
    RateLimited,
    ResilienceError,
    Throttled,
    TimeoutExceeded,
)

__all__ = [
    "AIMD",
    "AdaptiveConcurrency",
    "AdaptiveThrottle",
    "Attempt",
    "Backoff",
    "BreakerMetrics",
    "Bulkhead",
    "BulkheadFull",
    "Chaos",
    "CircuitBreaker",
    "CircuitOpen",
    "Clock",
    "ConfigError",
    "Constant",
    "CountWindow",
    "DecorrelatedJitter",
    "DescribedPolicy",
    "Event",
    "Exponential",
    "Fallback",
    "Gradient",
    "Hedge",
    "KeyedPolicy",
    "LatencyQuantile",
    "Linear",
    "Pipeline",
    "PipelineDescription",
    "Policy",
    "RateLimited",
    "Registry",
    "ResilienceError",
    "Retry",
    "RetryBudget",
    "SystemClock",
    "Throttled",
    "Timeout",
    "TimeoutExceeded",
    "TokenBucket",
    "listen",
    "per_key",
    "remaining",
]
