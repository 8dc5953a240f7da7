"""Breaker and rate-limiter state shared through Redis (the ``redis`` extra).

``RedisStore.from_url(url)`` for sync code (and async code on any event loop, through
worker threads), ``AsyncRedisStore.from_url(url)`` for asyncio code. Give either as
``store=`` to a :class:`~resilience.CircuitBreaker` or :class:`~resilience.TokenBucket`
and every process using the same Redis and prefix shares that policy's state. Their
options (``prefix=``, ``sync_mode=``...) are those of :class:`StoreOptions`. See the
docs page "Sharing state across instances".
"""

from __future__ import annotations

try:
    import redis as _redis  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "resilience.stores.redis needs the redis client: pip install 'resiliency[redis]'"
    ) from exc

from ..._core.naming import present_as
from ._async_store import AsyncRedisStore
from ._options import StoreOptions
from ._status import BreakerStatus, BucketStatus, BulkheadStatus
from ._store import RedisStore

__all__ = [
    "AsyncRedisStore",
    "BreakerStatus",
    "BucketStatus",
    "BulkheadStatus",
    "RedisStore",
    "StoreOptions",
]

present_as("resilience.stores.redis", globals(), __all__)
