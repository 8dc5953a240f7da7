"""The admin API of both stores (:class:`StoreAdmin`): the state of every shared policy
under the store's prefix, and manual control of breakers.

Apart from the store's core: these methods talk to Redis directly on the store's sync
client, not through its link or its backends (Redis errors propagate, as an operator
wants to see them), and the store's policies never call them. What they report is in
``_status.py``.
"""

from __future__ import annotations

import math
from typing import Any

import anyio.to_thread

from ._breaker import RedisBreaker
from ._clients import SyncClient, as_text
from ._layout import (
    breaker_keys,
    breaker_name,
    bucket_key,
    bucket_name,
    bulkhead_keys,
    bulkhead_name,
    glob_escape,
)
from ._options import StoreOptions
from ._registry import Registry
from ._scripts import BH_STATUS, CB_FORCE, CB_STATUS, TB_PEEK, evalsha
from ._status import (
    BreakerStatus,
    BucketStatus,
    BulkheadStatus,
    parse_breaker_status,
    parse_bucket_status,
)

__all__ = ["StoreAdmin"]

_ACTIONS = ("open", "close", "reset", "disable")


class StoreAdmin:
    """The admin API of a Redis store (a base of both stores): the state of every
    shared policy under the store's prefix, and manual control of breakers."""

    # Of the store.
    prefix: str
    _client: SyncClient
    _options: StoreOptions
    _breakers: Registry[RedisBreaker]

    def breakers(self) -> list[BreakerStatus]:
        """Every circuit breaker Redis holds under this store's prefix, by name.

        Talks to Redis directly (not through the store's own breaker): Redis errors
        propagate, as an operator wants to see them.
        """
        pattern = f"{glob_escape(self.prefix)}:cb:*:s"
        names = {breaker_name(self.prefix, as_text(key)) for key in self._scan(pattern)}
        statuses = (self.breaker_status(name) for name in sorted(names))
        return [status for status in statuses if status is not None]

    def breaker_status(self, name: str) -> BreakerStatus | None:
        """The shared breaker ``name`` as Redis holds it, or None if Redis has no state
        for it (never used, or expired after ``key_ttl`` idle)."""
        keys, _ = breaker_keys(self.prefix, name)
        return parse_breaker_status(name, evalsha(self._client, CB_STATUS, keys, ("",)))

    def force_breaker(self, name: str, action: str) -> BreakerStatus:
        """Manual control of breaker ``name`` for every instance: ``"open"`` (forced
        open until closed or reset), ``"close"``, ``"reset"`` (closed, open streak
        forgotten) or ``"disable"`` (admit everything, record nothing). Works for a
        name no instance has used yet. Returns the new status."""
        if action not in _ACTIONS:
            raise ValueError(f"action must be one of {', '.join(_ACTIONS)}; got {action!r}")
        keys, _ = breaker_keys(self.prefix, name)
        idle = str(math.ceil(self._options.key_ttl * 1000))
        reply = evalsha(self._client, CB_FORCE, keys, (action, idle, ""))
        backend = self._breakers.items.get(name)
        if backend is not None:
            backend.learn(int(reply[0]), int(reply[1]), 0)
        status = self.breaker_status(name)
        assert status is not None  # the script just wrote it
        return status

    def buckets(self) -> list[BucketStatus]:
        """Every token bucket under this prefix that is not full (a full bucket's key
        expires), by key."""
        pattern = f"{glob_escape(self.prefix)}:tb:*"
        keys = sorted({bucket_name(self.prefix, as_text(key)) for key in self._scan(pattern)})
        statuses = (self.bucket_status(key) for key in keys)
        return [status for status in statuses if status is not None]

    def bucket_status(self, key: str) -> BucketStatus | None:
        """The shared bucket ``key``, or None when it is full (no state in Redis)."""
        reply = evalsha(self._client, TB_PEEK, (bucket_key(self.prefix, key),), ("",))
        return parse_bucket_status(key, reply)

    def bulkhead_status(self, key: str) -> BulkheadStatus:
        """The shared bulkhead ``key`` as Redis holds it now (zero slots held and no
        instance for a name nobody used)."""
        horizon = str(math.ceil(self._options.slot_lease * 1e6))
        reply = evalsha(self._client, BH_STATUS, bulkhead_keys(self.prefix, key), (horizon, ""))
        return BulkheadStatus(key=key, held=int(reply[0]), instances=int(reply[1]))

    def bulkheads(self) -> list[BulkheadStatus]:
        """Every shared bulkhead under this prefix that an instance used recently (its
        slots held now and the instances alive), by key. Like :meth:`breakers`, talks
        to Redis directly: Redis errors propagate."""
        pattern = f"{glob_escape(self.prefix)}:bh:*:i"
        keys = sorted({bulkhead_name(self.prefix, as_text(key)) for key in self._scan(pattern)})
        statuses = (self.bulkhead_status(key) for key in keys)
        return [status for status in statuses if status.held or status.instances]

    def _scan(self, pattern: str) -> list[Any]:
        return list(self._client.scan_iter(match=pattern, count=1000))

    async def abreakers(self) -> list[BreakerStatus]:
        """:meth:`breakers` for async code (runs in a worker thread)."""
        return await anyio.to_thread.run_sync(self.breakers)

    async def abreaker_status(self, name: str) -> BreakerStatus | None:
        """:meth:`breaker_status` for async code (runs in a worker thread)."""
        return await anyio.to_thread.run_sync(self.breaker_status, name)

    async def aforce_breaker(self, name: str, action: str) -> BreakerStatus:
        """:meth:`force_breaker` for async code (runs in a worker thread)."""
        return await anyio.to_thread.run_sync(self.force_breaker, name, action)

    async def abuckets(self) -> list[BucketStatus]:
        """:meth:`buckets` for async code (runs in a worker thread)."""
        return await anyio.to_thread.run_sync(self.buckets)

    async def abucket_status(self, key: str) -> BucketStatus | None:
        """:meth:`bucket_status` for async code (runs in a worker thread)."""
        return await anyio.to_thread.run_sync(self.bucket_status, key)

    async def abulkheads(self) -> list[BulkheadStatus]:
        """:meth:`bulkheads` for async code (runs in a worker thread)."""
        return await anyio.to_thread.run_sync(self.bulkheads)

    async def abulkhead_status(self, key: str) -> BulkheadStatus:
        """:meth:`bulkhead_status` for async code (runs in a worker thread)."""
        return await anyio.to_thread.run_sync(self.bulkhead_status, key)
