"""What RedisStore and AsyncRedisStore share: everything a store does apart from
running scripts.

Both hand out the same backends (``RedisBreaker``, ``RedisBucket``...) over a
:class:`Link`; they differ only in the two functions the link runs scripts with (see
``_store.py`` and ``_async_store.py``), which each store gives :meth:`SharedStore._setup`
together with its checked :class:`StoreOptions`. Here: the store protocols, views
(``with_options``), health, ``from_url``, closing, and what a forked child redoes. The
admin API is :class:`StoreAdmin`, the transition listener ``_listener.py``.
"""

from __future__ import annotations

import copy
import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from ..._core.breaker import BreakerSettings, TransitionCallback
from ..._core.bucket import LimiterSettings
from ..._core.budget import BudgetSettings
from ..._core.clock import Clock
from ..._core.validation import check_duration, check_positive_int
from ._admin import StoreAdmin
from ._background import Worker
from ._breaker import RedisBreaker
from ._budget import RedisBudget
from ._bulkhead import RedisBulkhead
from ._clients import SyncClient, drop_idle_connections
from ._layout import Instance
from ._limiter import LeasedBucket, RedisBucket
from ._link import Link
from ._listener import TransitionListener
from ._local_first import LocalFirstBreaker
from ._options import (
    LOCAL_FIRST,
    OPTION_NAMES,
    UNSET,
    VIEW_OPTION_NAMES,
    StoreOptions,
    Unset,
    default_reconnect,
    merge_options,
    view_changes,
)
from ._registry import Registry
from ._scripts import PING, SCRIPTS, Script, evalsha

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ._options import ViewOptionArgs

__all__ = ["SharedStore"]

#: How long the first breaker of a store waits for the transition listener to subscribe.
_SUBSCRIBE_WAIT = 1.0
#: Stores alive in this process, told when it forks.
_STORES: weakref.WeakSet[SharedStore] = weakref.WeakSet()

StoreT = TypeVar("StoreT", bound="SharedStore")
Call = Callable[[Script, Sequence[str], Sequence[object]], Any]


class SharedStore(StoreAdmin):
    """Everything a Redis store does apart from running scripts."""

    _client: SyncClient
    #: True when the store made its clients (from_url), and so closes them.
    _owns_client: bool
    #: The store this one is a view of (itself for a store made by a constructor).
    _root: SharedStore

    def _setup(
        self,
        client: SyncClient,
        *,
        call: Call,
        acall: Call,
        options: StoreOptions,
        owns_client: bool,
    ) -> None:
        """Set the store up (once, from the constructor or ``from_url``): ``call`` and
        ``acall`` run a script, ``client`` serves everything else."""
        self.prefix = options.prefix
        self.on_store_error = options.on_store_error
        self._options = options
        self._owns_client = owns_client
        self._instance = Instance()
        self._root = self
        self._is_closed = False
        self._client = client
        self._link = Link(
            self.prefix,
            call,
            acall,
            self._probe,
            errors_to_cut_off=options.errors_to_cut_off,
            reconnect=options.reconnect or default_reconnect(),
        )
        self._breakers: Registry[RedisBreaker] = Registry("circuit breaker")
        self._buckets: Registry[RedisBucket] = Registry("token bucket")
        self._budgets: Registry[RedisBudget] = Registry("retry budget")
        self._bulkheads: Registry[RedisBulkhead] = Registry("bulkhead")
        # The listener is the root's: views reach it through ``_root``.
        self._listener: TransitionListener | None = None
        self._listener_lock = threading.Lock()
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

    def with_options(self: StoreT, **changes: Unpack[ViewOptionArgs]) -> StoreT:
        """A view of this store whose policies share their state another way: the same
        connections, background threads and outage handling, other options for the
        policies given it (``store=store.with_options(sync_mode="local-first")``).
        Options not given keep this store's values. Closing a view closes the store."""
        options = merge_options(
            self._options,
            view_changes(changes),
            caller=f"{type(self).__name__}.with_options",
            allowed=VIEW_OPTION_NAMES,
        )
        view = copy.copy(self)
        view._options = options
        return view

    def _variant(self, *names: str) -> tuple[object, ...]:
        """The options named, as a registry compares them (see ``Registry.get``)."""
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
        options, instance = self._options, self._instance

        def make() -> RedisBreaker:
            if options.sync_mode == LOCAL_FIRST:
                worker = self._worker
                return LocalFirstBreaker(
                    self._link, options, instance, worker, name, settings, clock, notify
                )
            return RedisBreaker(self._link, options, instance, name, settings, clock, notify)

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
        options, instance, wake = self._options, self._instance, self._worker.wake
        backend, made = self._budgets.get(
            key,
            settings,
            lambda: RedisBudget(self._link, options, instance, key, settings, clock, wake),
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
        options, instance, worker = self._options, self._instance, self._worker
        backend, made = self._bulkheads.get(
            key,
            (max_concurrent, max_queue),
            lambda: RedisBulkhead(
                self._link, options, instance, worker, key, max_concurrent, max_queue
            ),
            self._variant("slot_lease"),
        )
        if made:
            backend.sync(time.monotonic(), force=True)  # say this instance is alive
            self._worker.add(backend)
        return backend

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
        return self._root._is_closed

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
        """Start the transition listener with the first breaker (of the store or any of
        its views: there is one listener, the root's), and wait (briefly) until it is
        subscribed (transitions from then on reach this process), or its first attempt
        failed (Redis down: the breaker must not wait for it)."""
        root = self._root
        listener = root._listener
        if listener is None:
            with root._listener_lock:
                listener = root._listener
                if listener is None:
                    listener = root._listener = TransitionListener(
                        self.prefix, self._client, self._link, self._breakers
                    )
            if self._link.up:
                listener.settled.wait(_SUBSCRIBE_WAIT)

    # -- construction from a URL --------------------------------------------------------

    @classmethod
    def from_url(
        cls: type[StoreT],
        url: str,
        prefix: str | Unset = UNSET,
        *,
        cluster: bool = False,
        timeout: float | timedelta = 0.1,
        max_connections: int = 50,
        options: StoreOptions | None = None,
        **kwargs: Any,
    ) -> StoreT:
        """A store with clients of its own for ``url`` (``redis://``, ``rediss://``,
        ``unix://``; ``cluster=True`` for Redis Cluster): for ``RedisStore`` a sync
        client, for ``AsyncRedisStore`` a ``redis.asyncio`` client for calls and a small
        sync one for the rest. ``prefix`` and the other options of :class:`StoreOptions`
        (``sync_mode=``...) as keywords, or as ``options`` (keywords override it; the
        defaults without it: ``prefix`` not given is ``options.prefix``, "resilience").
        Other keyword arguments go to the redis-py clients (``password=``,
        ``ssl_ca_certs=``...)."""
        seconds = check_duration("timeout", timeout, positive=True)
        connections = check_positive_int("max_connections", max_connections)
        changes = {name: kwargs.pop(name) for name in list(kwargs) if name in OPTION_NAMES}
        if not isinstance(prefix, Unset):
            changes["prefix"] = prefix
        checked = merge_options(options, changes, caller=f"{cls.__name__}.from_url")
        return cls._connect(
            url,
            cluster=cluster,
            timeout=seconds,
            max_connections=connections,
            client_options=kwargs,
            options=checked,
        )

    @classmethod
    def _connect(
        cls: type[StoreT],
        url: str,
        *,
        cluster: bool,
        timeout: float,
        max_connections: int,
        client_options: dict[str, Any],
        options: StoreOptions,
    ) -> StoreT:
        """A store of this class with clients of its own for ``url``."""
        raise NotImplementedError

    # -- lifetime ----------------------------------------------------------------------

    def _close_threads(self) -> None:
        root = self._root
        root._is_closed = True
        root._worker.close()  # after a last round: counts still pending reach Redis
        root._link.close()
        listener = root._listener
        if listener is not None:
            listener.stop()

    def _after_fork(self) -> None:
        # The parent's identity (its trial permits, its bulkhead slots) stays the
        # parent's: the child is another instance.
        self._instance.renew()
        self._listener_lock = threading.Lock()
        for registry in (self._breakers, self._buckets, self._budgets, self._bulkheads):
            registry.after_fork()  # each backend resets its own locks and counts
        self._link.after_fork()
        self._worker.after_fork()
        if self._listener is not None and not self._closed:
            self._listener = TransitionListener(
                self.prefix, self._client, self._link, self._breakers
            )

    def __repr__(self) -> str:
        state = "closed" if self._closed else "available" if self._link.up else "cut off"
        return f"{type(self).__name__}(prefix={self.prefix!r}, {state})"


def _after_fork_in_child() -> None:
    for store in list(_STORES):
        store._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
