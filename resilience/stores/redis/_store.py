"""RedisStore and AsyncRedisStore: what they share, and the little that differs.

Both hand out the same backends (``RedisBreaker``, ``RedisBucket``) over a
:class:`Link`; they differ only in the two functions the link runs scripts with. The
sync store runs them on its ``redis.Redis`` (or ``RedisCluster``) client, and from
async code in a worker thread. The asyncio store awaits its ``redis.asyncio`` client
on the hot path and keeps a small sync client for everything that cannot await:
manual control and metrics (synchronous in the policy API), the admin API, the health
probe and the pub/sub listener, which run on threads in both stores.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import logging
import math
import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from datetime import timedelta
from types import TracebackType
from typing import Any, Generic, TypeVar

import anyio.to_thread
import redis
import redis.asyncio

from ..._core.backoff import Backoff, Exponential
from ..._core.breaker import BreakerSettings, TransitionCallback
from ..._core.bucket import LimiterSettings
from ..._core.budget import BudgetSettings
from ..._core.clock import Clock
from ..._core.validation import check_duration, check_positive_int
from ._admin import (
    BreakerStatus,
    BucketStatus,
    BulkheadStatus,
    parse_breaker_status,
    parse_bucket_status,
)
from ._background import Worker
from ._breaker import RedisBreaker
from ._budget import RedisBudget
from ._bulkhead import RedisBulkhead
from ._clients import (
    adrop_idle_connections,
    async_client,
    check_client,
    drop_idle_connections,
    open_pubsub,
    sync_client,
    sync_twin,
)
from ._layout import (
    LOCAL_FIRST,
    STRICT,
    Instance,
    StoreOptions,
    breaker_keys,
    breaker_name,
    bucket_key,
    bucket_name,
    bulkhead_keys,
    bulkhead_name,
    glob_escape,
)
from ._limiter import LeasedBucket, RedisBucket
from ._link import Link, StoreMisuse
from ._local_first import LocalFirstBreaker
from ._scripts import (
    BH_STATUS,
    CB_FORCE,
    CB_STATUS,
    PING,
    SCRIPTS,
    TB_PEEK,
    Script,
    aevalsha,
    evalsha,
)

__all__ = ["AsyncRedisStore", "RedisStore"]

_log = logging.getLogger("resilience")

SyncClient = redis.Redis | redis.RedisCluster
AsyncClient = redis.asyncio.Redis | redis.asyncio.RedisCluster
_ON_STORE_ERROR = ("local", "closed")
_SYNC_MODES = (STRICT, LOCAL_FIRST)
#: How long the first breaker of a store waits for the transition listener to subscribe.
_SUBSCRIBE_WAIT = 1.0
_ACTIONS = ("open", "close", "reset", "disable")
#: Stores alive in this process, told when it forks.
_STORES: weakref.WeakSet[_SharedStore] = weakref.WeakSet()

B = TypeVar("B", RedisBreaker, RedisBucket, RedisBudget, RedisBulkhead)
StoreT = TypeVar("StoreT", bound="_SharedStore")


def _default_reconnect() -> Backoff:
    return Exponential(base=0.1, factor=2.0, max=5.0, jitter="full")


def _check_prefix(prefix: object) -> str:
    if not isinstance(prefix, str):
        raise TypeError(f"prefix must be a str, got {prefix!r} ({type(prefix).__name__})")
    if not prefix or prefix != prefix.strip() or "{" in prefix or "}" in prefix:
        raise ValueError(
            f"prefix must be non-empty, without surrounding spaces or braces "
            f"(braces are Redis Cluster hash tags), got {prefix!r}"
        )
    return prefix


class _Registry(Generic[B]):
    """Backends by name: one per name and store, shared by policies of that name.

    Held weakly: a policy dropped by its owner (say, a per-host breaker evicted by
    ``per_key``) takes its backend with it, so a store serving many names does not grow
    without bound.
    """

    def __init__(self, what: str) -> None:
        self._what = what
        self._lock = threading.Lock()
        self.items: weakref.WeakValueDictionary[str, B] = weakref.WeakValueDictionary()
        self.variants: dict[int, object] = {}

    def get(
        self, name: str, settings: object, make: Callable[[], B], variant: object = None
    ) -> tuple[B, bool]:
        """The backend of ``name``, made if there is none. ``variant``: how the store
        shares it (say, ``sync_mode``), which must match too."""
        with self._lock:
            backend = self.items.get(name)
            if backend is None:
                backend = self.items[name] = make()
                self.variants[id(backend)] = variant
                weakref.finalize(backend, self.variants.pop, id(backend), None)
                return backend, True
        if backend.settings != settings:
            raise ValueError(
                f"{self._what} {name!r} already exists in this store with other settings "
                f"({backend.settings}); give this one another name or the same settings"
            )
        if self.variants.get(id(backend)) != variant:
            raise ValueError(
                f"{self._what} {name!r} already exists in this store with other store "
                f"options ({self.variants.get(id(backend))}, not {variant}); give this one "
                "another name or the same options"
            )
        return backend, False


class _Unset:
    """The default of ``with_options`` arguments whose ``None`` means something."""

    def __repr__(self) -> str:
        return "<unset>"


UNSET = _Unset()


class _Life:
    """What a store and its views (``with_options``) share about being open."""

    __slots__ = ("closed",)

    def __init__(self) -> None:
        self.closed = False


class _SharedStore:
    """Everything a Redis store does apart from running scripts."""

    _client: SyncClient
    #: True when the store made its clients (from_url), and so closes them.
    _owns_client: bool
    #: The store this one is a view of (itself for a store made by a constructor).
    _root: _SharedStore

    def __init__(
        self,
        client: SyncClient,
        *,
        call: Callable[[Script, Sequence[str], Sequence[object]], Any],
        acall: Callable[[Script, Sequence[str], Sequence[object]], Any],
        prefix: str,
        on_store_error: str,
        errors_to_cut_off: int,
        reconnect: Backoff | None,
        trial_lease: float | timedelta,
        key_ttl: float | timedelta,
        sync_mode: str = STRICT,
        flush_interval: float | timedelta = 0.1,
        poll_interval: float | timedelta = 1.0,
        min_instances: int | None = None,
        lease_tokens: int | None = None,
        slot_lease: float | timedelta = 5.0,
    ) -> None:
        self.prefix = _check_prefix(prefix)
        if on_store_error not in _ON_STORE_ERROR:
            raise ValueError(f"on_store_error must be 'local' or 'closed', got {on_store_error!r}")
        self.on_store_error = on_store_error
        if reconnect is not None and not isinstance(reconnect, Backoff):
            raise TypeError(f"reconnect must be a backoff strategy, got {reconnect!r}")
        self._options = StoreOptions(
            prefix=self.prefix,
            on_store_error=on_store_error,
            trial_lease=check_duration("trial_lease", trial_lease, positive=True),
            key_ttl=check_duration("key_ttl", key_ttl, positive=True),
            instance=Instance(),
            **_fleet_options(
                sync_mode=sync_mode,
                flush_interval=flush_interval,
                poll_interval=poll_interval,
                min_instances=min_instances,
                lease_tokens=lease_tokens,
                slot_lease=slot_lease,
            ),
        )
        self._root = self
        self._life = _Life()
        self._client = client
        self._link = Link(
            self.prefix,
            call,
            acall,
            self._probe,
            errors_to_cut_off=check_positive_int("errors_to_cut_off", errors_to_cut_off),
            reconnect=reconnect or _default_reconnect(),
        )
        self._breakers: _Registry[RedisBreaker] = _Registry("circuit breaker")
        self._buckets: _Registry[RedisBucket] = _Registry("token bucket")
        self._budgets: _Registry[RedisBudget] = _Registry("retry budget")
        self._bulkheads: _Registry[RedisBulkhead] = _Registry("bulkhead")
        self._listener: _TransitionListener | None = None
        self._worker = Worker(self.prefix)
        self._link.on_cut_off(self._worker.link_changed)
        self._link.on_recovered(self._worker.link_changed)
        _STORES.add(self)

    # -- options ------------------------------------------------------------------------

    @property
    def sync_mode(self) -> str:
        """``"strict"`` or ``"local-first"``: how breakers and token buckets of this store
        (or view) share their state."""
        return self._options.sync_mode

    @property
    def flush_interval(self) -> float:
        return self._options.flush_interval

    @property
    def poll_interval(self) -> float:
        return self._options.poll_interval

    @property
    def min_instances(self) -> int | None:
        return self._options.min_instances

    @property
    def lease_tokens(self) -> int | None:
        return self._options.lease_tokens

    @property
    def slot_lease(self) -> float:
        return self._options.slot_lease

    def with_options(
        self: StoreT,
        *,
        sync_mode: str | None = None,
        flush_interval: float | timedelta | None = None,
        poll_interval: float | timedelta | None = None,
        min_instances: int | _Unset | None = UNSET,
        lease_tokens: int | _Unset | None = UNSET,
        slot_lease: float | timedelta | None = None,
    ) -> StoreT:
        """A view of this store whose policies share their state another way: the same
        connections, background threads and outage handling, other options for the
        policies given it (``store=store.with_options(sync_mode="local-first")``).
        Options not given keep this store's values. Closing a view closes the store."""
        current = self._options
        changes = _fleet_options(
            sync_mode=current.sync_mode if sync_mode is None else sync_mode,
            flush_interval=current.flush_interval if flush_interval is None else flush_interval,
            poll_interval=current.poll_interval if poll_interval is None else poll_interval,
            min_instances=current.min_instances
            if isinstance(min_instances, _Unset)
            else min_instances,
            lease_tokens=current.lease_tokens if isinstance(lease_tokens, _Unset) else lease_tokens,
            slot_lease=current.slot_lease if slot_lease is None else slot_lease,
        )
        view = copy.copy(self)
        view._options = dataclasses.replace(current, **changes)
        return view

    def _variant(self, *names: str) -> tuple[object, ...]:
        """The options named, as a registry compares them (see ``_Registry.get``)."""
        return tuple(getattr(self._options, name) for name in names)

    # -- the store protocols ------------------------------------------------------------

    def circuit_breaker(
        self,
        name: str | None,
        settings: BreakerSettings,
        clock: Clock,
        notify: TransitionCallback,
    ) -> RedisBreaker:
        """The shared breaker ``name`` (``BreakerStore`` protocol)."""
        if name is None:
            raise ValueError(
                "a circuit breaker shared through Redis needs a name: it is the key "
                "every instance shares, e.g. CircuitBreaker('payments', store=store)"
            )
        self._check_open()
        options = self._options

        def make() -> RedisBreaker:
            if options.sync_mode == LOCAL_FIRST:
                worker = self._worker
                return LocalFirstBreaker(self._link, options, worker, name, settings, clock, notify)
            return RedisBreaker(self._link, options, name, settings, clock, notify)

        variant: tuple[object, ...] = self._variant("sync_mode", "min_instances")
        if options.sync_mode == LOCAL_FIRST:
            variant += self._variant("flush_interval", "poll_interval")
        backend, made = self._breakers.get(name, settings, make, variant)
        if made:
            self._listen()
            if isinstance(backend, LocalFirstBreaker):
                backend.sync(time.monotonic(), force=True)  # learn, or make, the state
                self._worker.add(backend)
            else:
                backend.refresh()
        else:
            backend.subscribe(notify)
        return backend

    def token_bucket(self, key: str | None, settings: LimiterSettings, clock: Clock) -> RedisBucket:
        """The shared bucket ``key`` (``LimiterStore`` protocol)."""
        if key is None:
            raise ValueError(
                "a token bucket shared through Redis needs a key (or a name): "
                "TokenBucket(100, key='search-api', store=store)"
            )
        self._check_open()
        options = self._options
        if options.sync_mode == LOCAL_FIRST:
            backend, _ = self._buckets.get(
                key,
                settings,
                lambda: LeasedBucket(self._link, options, key, settings, clock),
                self._variant("sync_mode", "lease_tokens", "flush_interval"),
            )
        else:
            backend, _ = self._buckets.get(
                key,
                settings,
                lambda: RedisBucket(self._link, options, key, settings, clock),
                self._variant("sync_mode"),
            )
        return backend

    def retry_budget(self, key: str | None, settings: BudgetSettings, clock: Clock) -> RedisBudget:
        """The fleet's retry budget ``key`` (``BudgetStore`` protocol): decided from
        what this process last learned, reported in the background."""
        if key is None:
            raise ValueError(
                "a retry budget shared through Redis needs a key: it is the name every "
                "instance shares, e.g. RetryBudget(0.1, store=store, key='payments')"
            )
        self._check_open()
        options = self._options
        backend, made = self._budgets.get(
            key,
            settings,
            lambda: RedisBudget(self._link, options, key, settings, clock, self._worker.wake),
            self._variant("flush_interval", "poll_interval"),
        )
        if made:
            backend.report()
            self._worker.add(backend)
        return backend

    def bulkhead(self, key: str | None, max_concurrent: int, max_queue: int) -> RedisBulkhead:
        """The fleet's bulkhead ``key`` (``BulkheadStore`` protocol): ``max_concurrent``
        slots across every instance, each a lease of ``slot_lease`` seconds renewed
        while its call runs."""
        if key is None:
            raise ValueError(
                "a bulkhead shared through Redis needs a key (or a name): it is the name "
                "every instance shares, e.g. Bulkhead(10, name='db', store=store)"
            )
        self._check_open()
        options = self._options
        backend, made = self._bulkheads.get(
            key,
            (max_concurrent, max_queue),
            lambda: RedisBulkhead(
                self._link, options, self._worker, key, max_concurrent, max_queue
            ),
            self._variant("slot_lease"),
        )
        if made:
            backend.sync(time.monotonic(), force=True)  # say this instance is alive
            self._worker.add(backend)
        return backend

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
        keys = sorted({bulkhead_name(self.prefix, _text(key)) for key in self._scan(pattern)})
        statuses = (self.bulkhead_status(key) for key in keys)
        return [status for status in statuses if status.held or status.instances]

    def flush(self) -> None:
        """Do now, in this thread, what the store's background worker would do soon:
        send the outcome counts and calls not reported yet, learn the state of every
        local-first policy, renew slot leases. (The worker does it on its own; this is
        for tests and for a process about to stop.)"""
        self._worker.flush()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")

    @property
    def _closed(self) -> bool:
        return self._life.closed

    # -- health ------------------------------------------------------------------------

    @property
    def available(self) -> bool:
        """False while the store is cut off from Redis (policies decide locally)."""
        return self._link.up

    def _probe(self) -> None:
        """Is Redis back? Reloads the scripts (a restarted server has none) and runs
        one that writes, so a server that answers PING but cannot run our scripts
        (``CLIENT PAUSE WRITE``, a read-only replica after a failover) is not taken for
        healthy."""
        client = self._client
        drop_idle_connections(client)
        client.ping()
        for script in SCRIPTS:
            client.script_load(script.source)
        evalsha(client, PING, (f"{self.prefix}:probe",), ())

    def _listen(self) -> None:
        """Start the transition listener with the first breaker, and wait (briefly)
        until it is subscribed (transitions from then on reach this process), or its
        first attempt failed (Redis down: the breaker must not wait for it)."""
        if self._listener is None:
            with self._breakers._lock:
                if self._listener is None:
                    self._listener = _TransitionListener(self)
            if self._link.up:
                self._listener.settled.wait(_SUBSCRIBE_WAIT)

    # -- admin API ---------------------------------------------------------------------

    def breakers(self) -> list[BreakerStatus]:
        """Every circuit breaker Redis holds under this store's prefix, by name.

        Talks to Redis directly (not through the store's own breaker): Redis errors
        propagate, as an operator wants to see them.
        """
        pattern = f"{glob_escape(self.prefix)}:cb:*:s"
        names = {breaker_name(self.prefix, _text(key)) for key in self._scan(pattern)}
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
        keys = sorted({bucket_name(self.prefix, _text(key)) for key in self._scan(pattern)})
        statuses = (self.bucket_status(key) for key in keys)
        return [status for status in statuses if status is not None]

    def bucket_status(self, key: str) -> BucketStatus | None:
        """The shared bucket ``key``, or None when it is full (no state in Redis)."""
        reply = evalsha(self._client, TB_PEEK, (bucket_key(self.prefix, key),), ("",))
        return parse_bucket_status(key, reply)

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

    # -- construction from a URL --------------------------------------------------------

    @classmethod
    def from_url(
        cls: type[StoreT],
        url: str,
        prefix: str = "resilience",
        *,
        cluster: bool = False,
        timeout: float | timedelta = 0.1,
        max_connections: int = 50,
        on_store_error: str = "local",
        errors_to_cut_off: int = 3,
        reconnect: Backoff | None = None,
        trial_lease: float | timedelta = 10.0,
        key_ttl: float | timedelta = 86400.0,
        sync_mode: str = "strict",
        flush_interval: float | timedelta = 0.1,
        poll_interval: float | timedelta = 1.0,
        min_instances: int | None = None,
        lease_tokens: int | None = None,
        slot_lease: float | timedelta = 5.0,
        **client_options: Any,
    ) -> StoreT:
        """A store with clients of its own for ``url`` (``redis://``, ``rediss://``,
        ``unix://``; ``cluster=True`` for Redis Cluster): for ``RedisStore`` a sync
        client, for ``AsyncRedisStore`` a ``redis.asyncio`` client for calls and a small
        sync one for the rest. Other keyword arguments go to the redis-py clients
        (``password=``, ``ssl_ca_certs=``...)."""
        seconds, connections = _client_settings(timeout, max_connections)
        options = _store_options(
            prefix,
            on_store_error,
            errors_to_cut_off,
            reconnect,
            trial_lease,
            key_ttl,
            sync_mode,
            flush_interval,
            poll_interval,
            min_instances,
            lease_tokens,
            slot_lease,
        )
        store = cls.__new__(cls)
        store._owns_client = True
        store._connect(url, cluster, seconds, connections, client_options, options)
        return store

    def _connect(
        self,
        url: str,
        cluster: bool,
        timeout: float,
        max_connections: int,
        client_options: dict[str, Any],
        options: dict[str, Any],
    ) -> None:
        """Make this store's clients for ``url`` and initialise it with them."""
        raise NotImplementedError

    # -- lifetime ----------------------------------------------------------------------

    def _close_threads(self) -> None:
        root = self._root
        root._life.closed = True
        root._worker.close()  # after a last round: counts still pending reach Redis
        root._link.close()
        listener = root._listener
        if listener is not None:
            listener.stop()

    def _after_fork(self) -> None:
        # The parent's identity (its trial permits, its bulkhead slots) stays the
        # parent's: the child is another instance.
        self._options.instance.renew()
        for registry in (self._breakers, self._buckets, self._budgets, self._bulkheads):
            registry._lock = threading.Lock()
            for backend in registry.items.values():
                backend._lock = threading.Lock()
                if isinstance(backend, RedisBreaker):
                    backend._report_lock = threading.RLock()
                backend.after_fork()
        self._link.after_fork()
        self._worker.after_fork()
        if self._listener is not None and not self._closed:
            self._listener = _TransitionListener(self)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "available" if self._link.up else "cut off"
        return f"{type(self).__name__}(prefix={self.prefix!r}, {state})"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _after_fork_in_child() -> None:
    for store in list(_STORES):
        store._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class _TransitionListener:
    """A thread that hears every breaker transition under the store's prefix (pub/sub)
    and tells the backend of that name, so each process emits ``state_change`` events
    for the fleet's transitions and answers ``state`` without asking Redis. Best
    effort: a lost message is made up for by the next reply."""

    def __init__(self, store: _SharedStore) -> None:
        self._store = store
        self._stop = threading.Event()
        #: Set once the first subscription is in place, or failed.
        self.settled = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"resilience-redis-listener-{store.prefix}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        store = self._store
        link = store._link
        pattern = f"{glob_escape(store.prefix)}:cb:*:ev"
        failures = 0
        while not self._stop.is_set():
            if not link.up:
                self._stop.wait(0.1)
                continue
            generation = link.generation
            pubsub = None
            try:
                pubsub = open_pubsub(store._client)
                pubsub.psubscribe(pattern)
                failures = 0
                # A new link generation (Redis came back) means a new connection too.
                while not self._stop.is_set() and link.generation == generation:
                    message = pubsub.get_message(timeout=0.05)
                    if message is None:
                        continue
                    if message.get("type") == "pmessage":
                        self._deliver(_text(message["channel"]), _text(message["data"]))
                    elif message.get("type") == "psubscribe":
                        self._refresh_all()
                        self.settled.set()
            except Exception as exc:
                self.settled.set()
                failures += 1
                _log.debug("redis store %s: transition listener: %r", store.prefix, exc)
                self._stop.wait(min(0.1 * 2**failures, 5.0))
            finally:
                if pubsub is not None:
                    try:
                        pubsub.close()
                    except Exception:  # a broken connection may fail to close
                        _log.debug("redis store %s: closing pub/sub failed", store.prefix)

    def _refresh_all(self) -> None:
        """Messages may have been missed before (re)subscribing: learn the state now.
        (A function of its own, so that this thread's frame keeps no backend alive.)"""
        for backend in list(self._store._breakers.items.values()):
            backend.refresh()

    def _deliver(self, channel: str, data: str) -> None:
        store = self._store
        backend = store._breakers.items.get(breaker_name(store.prefix, channel))
        if backend is None:
            return
        try:
            code, epoch, remaining, _ = (int(part) for part in data.split())
        except ValueError:
            _log.warning("redis store %s: bad transition message %r", store.prefix, data)
            return
        backend.learn(code, epoch, remaining)


def _fleet_options(
    *,
    sync_mode: object,
    flush_interval: object,
    poll_interval: object,
    min_instances: object,
    lease_tokens: object,
    slot_lease: object,
) -> dict[str, Any]:
    """The options of local-first sharing and of the fleet-wide policies, checked."""
    if sync_mode not in _SYNC_MODES:
        raise ValueError(f"sync_mode must be 'strict' or 'local-first', got {sync_mode!r}")
    flush = check_duration("flush_interval", flush_interval, positive=True)
    poll = check_duration("poll_interval", poll_interval, positive=True)
    if poll < flush:
        raise ValueError(
            f"poll_interval must be at least flush_interval ({flush!r}), got {poll_interval!r}"
        )
    return {
        "sync_mode": sync_mode,
        "flush_interval": flush,
        "poll_interval": poll,
        "min_instances": None
        if min_instances is None
        else check_positive_int("min_instances", min_instances),
        "lease_tokens": None
        if lease_tokens is None
        else check_positive_int("lease_tokens", lease_tokens),
        "slot_lease": check_duration("slot_lease", slot_lease, positive=True),
    }


def _store_options(
    prefix: str,
    on_store_error: str,
    errors_to_cut_off: int,
    reconnect: Backoff | None,
    trial_lease: float | timedelta,
    key_ttl: float | timedelta,
    sync_mode: str = STRICT,
    flush_interval: float | timedelta = 0.1,
    poll_interval: float | timedelta = 1.0,
    min_instances: int | None = None,
    lease_tokens: int | None = None,
    slot_lease: float | timedelta = 5.0,
) -> dict[str, Any]:
    return {
        "prefix": prefix,
        "on_store_error": on_store_error,
        "errors_to_cut_off": errors_to_cut_off,
        "reconnect": reconnect,
        "trial_lease": trial_lease,
        "key_ttl": key_ttl,
        "sync_mode": sync_mode,
        "flush_interval": flush_interval,
        "poll_interval": poll_interval,
        "min_instances": min_instances,
        "lease_tokens": lease_tokens,
        "slot_lease": slot_lease,
    }


def _client_settings(timeout: object, max_connections: object) -> tuple[float, int]:
    return (
        check_duration("timeout", timeout, positive=True),
        check_positive_int("max_connections", max_connections),
    )


class RedisStore(_SharedStore):
    """Breaker and limiter state shared through Redis, for sync code (and async code,
    which it serves from worker threads; prefer :class:`AsyncRedisStore` on asyncio).

    Build it with :meth:`from_url`, which makes a client with the settings a store
    needs, or give it a ``redis.Redis`` / ``redis.RedisCluster`` of yours. See the docs
    page "Sharing state across instances".
    """

    def __init__(
        self,
        client: SyncClient,
        *,
        prefix: str = "resilience",
        on_store_error: str = "local",
        errors_to_cut_off: int = 3,
        reconnect: Backoff | None = None,
        trial_lease: float | timedelta = 10.0,
        key_ttl: float | timedelta = 86400.0,
        sync_mode: str = "strict",
        flush_interval: float | timedelta = 0.1,
        poll_interval: float | timedelta = 1.0,
        min_instances: int | None = None,
        lease_tokens: int | None = None,
        slot_lease: float | timedelta = 5.0,
    ) -> None:
        if not isinstance(client, (redis.Redis, redis.RedisCluster)):
            raise TypeError(
                f"client must be a redis.Redis or redis.RedisCluster, got {client!r} "
                "(for a redis.asyncio client, use AsyncRedisStore)"
            )
        if not getattr(self, "_owns_client", False):  # from_url's clients need no check
            check_client(client, stacklevel=2)
            self._owns_client = False

        async def acall(script: Script, keys: Sequence[str], args: Sequence[object]) -> Any:
            return await anyio.to_thread.run_sync(evalsha, client, script, keys, args)

        super().__init__(
            client,
            call=lambda script, keys, args: evalsha(client, script, keys, args),
            acall=acall,
            **_store_options(
                prefix,
                on_store_error,
                errors_to_cut_off,
                reconnect,
                trial_lease,
                key_ttl,
                sync_mode,
                flush_interval,
                poll_interval,
                min_instances,
                lease_tokens,
                slot_lease,
            ),
        )

    def _connect(
        self,
        url: str,
        cluster: bool,
        timeout: float,
        max_connections: int,
        client_options: dict[str, Any],
        options: dict[str, Any],
    ) -> None:
        client = sync_client(
            url,
            cluster=cluster,
            timeout=timeout,
            max_connections=max_connections,
            options=client_options,
        )
        try:
            self.__init__(client, **options)  # type: ignore[misc]
        except BaseException:
            _close_sync(client)
            raise

    @property
    def client(self) -> SyncClient:
        """The redis-py client the store uses."""
        return self._client

    def close(self) -> None:
        """Stop the background threads; close the client if the store made it."""
        if self._closed:
            return
        self._close_threads()
        if self._owns_client:
            _close_sync(self._client)

    def __enter__(self) -> RedisStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _close_sync(client: SyncClient) -> None:
    client.close()
    if isinstance(client, redis.Redis):
        client.connection_pool.disconnect()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _require_asyncio() -> asyncio.AbstractEventLoop:
    loop = _running_loop()
    if loop is None:
        raise StoreMisuse(
            "AsyncRedisStore needs an asyncio event loop (redis.asyncio runs on asyncio "
            "only); under trio, use RedisStore, whose async methods run each Redis call "
            "in a worker thread"
        )
    return loop


class AsyncRedisStore(_SharedStore):
    """Breaker and limiter state shared through Redis, for asyncio code: every call of
    a protected coroutine awaits the ``redis.asyncio`` client.

    Bound to the event loop it is first used in (as redis.asyncio clients are), and to
    asyncio: under trio it refuses with a clear error (use :class:`RedisStore` there).
    Sync work (manual control, ``metrics()``, the admin API, the health probe and the
    transition listener) uses a small sync client to the same server: ``sync_client``,
    or one derived from ``client``'s connection settings.
    """

    def __init__(
        self,
        client: AsyncClient,
        *,
        sync_client: SyncClient | None = None,
        prefix: str = "resilience",
        on_store_error: str = "local",
        errors_to_cut_off: int = 3,
        reconnect: Backoff | None = None,
        trial_lease: float | timedelta = 10.0,
        key_ttl: float | timedelta = 86400.0,
        sync_mode: str = "strict",
        flush_interval: float | timedelta = 0.1,
        poll_interval: float | timedelta = 1.0,
        min_instances: int | None = None,
        lease_tokens: int | None = None,
        slot_lease: float | timedelta = 5.0,
    ) -> None:
        if not isinstance(client, (redis.asyncio.Redis, redis.asyncio.RedisCluster)):
            raise TypeError(
                f"client must be a redis.asyncio.Redis or RedisCluster, got {client!r} "
                "(for a sync client, use RedisStore)"
            )
        owned = getattr(self, "_owns_client", False)  # from_url's clients need no check
        if not owned:
            check_client(client, stacklevel=2)
        self._owns_client = self._owns_twin = owned
        if sync_client is None:
            if isinstance(client, redis.asyncio.RedisCluster):
                raise TypeError(
                    "an asyncio RedisCluster client needs sync_client=redis.RedisCluster(...) "
                    "reaching the same cluster (or use AsyncRedisStore.from_url)"
                )
            sync_client = sync_twin(client)
            self._owns_twin = True
        elif not isinstance(sync_client, (redis.Redis, redis.RedisCluster)):
            raise TypeError(
                f"sync_client must be a redis.Redis or RedisCluster, got {sync_client!r}"
            )
        self._aclient = client
        self._loop: asyncio.AbstractEventLoop | None = None
        # Set when Redis comes back: the asyncio pool's idle connections may be dead.
        self._stale = False
        twin = sync_client

        async def acall(script: Script, keys: Sequence[str], args: Sequence[object]) -> Any:
            loop = _require_asyncio()
            if loop is not self._loop:
                self._bind(loop)
            if self._stale:
                self._stale = False
                await adrop_idle_connections(client)
            return await aevalsha(client, script, keys, args)

        super().__init__(
            twin,
            call=lambda script, keys, args: evalsha(twin, script, keys, args),
            acall=acall,
            **_store_options(
                prefix,
                on_store_error,
                errors_to_cut_off,
                reconnect,
                trial_lease,
                key_ttl,
                sync_mode,
                flush_interval,
                poll_interval,
                min_instances,
                lease_tokens,
                slot_lease,
            ),
        )
        self._link.on_recovered(self._mark_stale)

    def _mark_stale(self) -> None:
        self._stale = True

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._loop is None:
            self._loop = loop
            return
        raise StoreMisuse(
            f"{self!r} is bound to the event loop it was first used in (its redis.asyncio "
            "connections belong to that loop); make one store per event loop"
        )

    def _connect(
        self,
        url: str,
        cluster: bool,
        timeout: float,
        max_connections: int,
        client_options: dict[str, Any],
        options: dict[str, Any],
    ) -> None:
        settings = {"cluster": cluster, "timeout": timeout, "options": client_options}
        aclient = async_client(url, max_connections=max_connections, **settings)  # type: ignore[arg-type]
        twin = sync_client(url, max_connections=4, **settings)  # type: ignore[arg-type]
        try:
            self.__init__(aclient, sync_client=twin, **options)  # type: ignore[misc]
        except BaseException:
            _close_sync(twin)
            raise

    @property
    def client(self) -> AsyncClient:
        """The redis.asyncio client the store uses for calls."""
        return self._aclient

    @property
    def sync_client(self) -> SyncClient:
        """The sync client the store uses for everything that cannot await."""
        return self._client

    def close(self) -> None:
        """Stop the background threads and close the sync client if the store made
        it. The asyncio client needs :meth:`aclose`."""
        if self._closed:
            return
        self._close_threads()
        if self._owns_twin:
            _close_sync(self._client)

    async def aclose(self) -> None:
        """:meth:`close`, then close the asyncio client if the store made it (on
        asyncio: under another event loop it cannot have connected)."""
        closing = not self._closed
        await anyio.to_thread.run_sync(self.close)
        if closing and self._owns_client and _running_loop() is not None:
            client = self._aclient
            await client.aclose()
            if isinstance(client, redis.asyncio.Redis):  # its pool was made for it
                await client.connection_pool.disconnect()

    async def __aenter__(self) -> AsyncRedisStore:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
