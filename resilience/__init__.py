"""resilience: circuit breaker, retry, timeout, rate limiting, bulkhead and fallback for
outbound calls, composed into pipelines, sync and async (asyncio and trio)."""

from __future__ import annotations

from ._core.backoff import Backoff, Constant, DecorrelatedJitter, Exponential, Linear
from ._core.breaker import BreakerMetrics
from ._core.clock import Clock, SystemClock
from ._core.naming import present_as
from ._core.windows import CountWindow
from ._policies.adaptive import AIMD, AdaptiveConcurrency, Gradient
from ._policies.breaker import CircuitBreaker
from ._policies.bucket import TokenBucket
from ._policies.budget import RetryBudget
from ._policies.bulkhead import Bulkhead
from ._policies.chaos import Chaos
from ._policies.describe import DescribedPolicy, PipelineDescription
from ._policies.events import (
    AbandonedFinished,
    Acquired,
    BulkheadRejected,
    CallOutcome,
    Event,
    EventDetails,
    GaveUp,
    HedgeLaunched,
    HedgeWon,
    LatencyInjected,
    LimitChanged,
    Rejected,
    Released,
    ReservationCancelled,
    RetryScheduled,
    RetrySucceeded,
    StateChange,
    StoreRecovered,
    ThrottleRejected,
    TimedOut,
    WaitCancelled,
    listen,
)
from ._policies.fallback import Fallback
from ._policies.hedge import Hedge, LatencyQuantile
from ._policies.keyed import KeyedPolicy, per_key
from ._policies.pipeline import Pipeline
from ._policies.policy import Policy
from ._policies.retry import Attempt, Retry
from ._policies.throttle import AdaptiveThrottle
from ._policies.timeout import Timeout, remaining
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
    "AbandonedFinished",
    "Acquired",
    "AdaptiveConcurrency",
    "AdaptiveThrottle",
    "Attempt",
    "Backoff",
    "BreakerMetrics",
    "Bulkhead",
    "BulkheadFull",
    "BulkheadRejected",
    "CallOutcome",
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
    "EventDetails",
    "Exponential",
    "Fallback",
    "GaveUp",
    "Gradient",
    "Hedge",
    "HedgeLaunched",
    "HedgeWon",
    "KeyedPolicy",
    "LatencyInjected",
    "LatencyQuantile",
    "LimitChanged",
    "Linear",
    "Pipeline",
    "PipelineDescription",
    "Policy",
    "RateLimited",
    "Registry",
    "Rejected",
    "Released",
    "ReservationCancelled",
    "ResilienceError",
    "Retry",
    "RetryBudget",
    "RetryScheduled",
    "RetrySucceeded",
    "StateChange",
    "StoreRecovered",
    "SystemClock",
    "ThrottleRejected",
    "Throttled",
    "TimedOut",
    "Timeout",
    "TimeoutExceeded",
    "TokenBucket",
    "WaitCancelled",
    "listen",
    "per_key",
    "remaining",
]

present_as("resilience", globals(), __all__)
