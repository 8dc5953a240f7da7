"""AsyncRedisStore: the store for asyncio code.

It awaits its ``redis.asyncio`` client on the hot path and keeps a small sync client for
everything that cannot await: manual control and metrics (synchronous in the policy
API), the admin API, the health probe and the pub/sub listener, which run on threads in
both stores. Apart from ``RedisStore`` for what only it has: two clients, and the event
loop its asyncio client is bound to.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import anyio.to_thread
import redis
import redis.asyncio

from ._clients import (
    AsyncClient,
    SyncClient,
    adrop_idle_connections,
    async_client,
    check_client,
    close_sync,
    sync_twin,
)
from ._clients import sync_client as new_sync_client
from ._link import StoreMisuse
from ._options import StoreOptions, merge_options
from ._scripts import Script, aevalsha, evalsha
from ._shared import SharedStore

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ._options import StoreOptionArgs

__all__ = ["AsyncRedisStore"]

_A = TypeVar("_A", bound="AsyncRedisStore")


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


class AsyncRedisStore(SharedStore):
    """Breaker and limiter state shared through Redis, for asyncio code: every call of
    a protected coroutine awaits the ``redis.asyncio`` client.

    Bound to the event loop it is first used in (as redis.asyncio clients are), and to
    asyncio: under trio it refuses with a clear error (use :class:`RedisStore` there).
    Sync work (manual control, ``metrics()``, the admin API, the health probe and the
    transition listener) uses a small sync client to the same server: ``sync_client``,
    or one derived from ``client``'s connection settings. The options are those of
    :class:`StoreOptions`, as keywords or as ``options`` (keywords override it).
    """

    #: True when the store made its sync client (from_url, or derived), and so closes it.
    _owns_twin: bool

    def __init__(
        self,
        client: AsyncClient,
        *,
        sync_client: SyncClient | None = None,
        options: StoreOptions | None = None,
        **changes: Unpack[StoreOptionArgs],
    ) -> None:
        if not isinstance(client, (redis.asyncio.Redis, redis.asyncio.RedisCluster)):
            raise TypeError(
                f"client must be a redis.asyncio.Redis or RedisCluster, got {client!r} "
                "(for a sync client, use RedisStore)"
            )
        check_client(client, stacklevel=2)  # from_url's clients need no check
        derive_from: redis.asyncio.Redis | None = None
        if sync_client is None:
            if isinstance(client, redis.asyncio.RedisCluster):
                raise TypeError(
                    "an asyncio RedisCluster client needs sync_client=redis.RedisCluster(...) "
                    "reaching the same cluster (or use AsyncRedisStore.from_url)"
                )
            derive_from = client
        elif not isinstance(sync_client, (redis.Redis, redis.RedisCluster)):
            raise TypeError(
                f"sync_client must be a redis.Redis or RedisCluster, got {sync_client!r}"
            )
        checked = merge_options(options, changes, caller="AsyncRedisStore.__init__")
        if derive_from is not None:
            twin = sync_twin(derive_from)
            self._start(client, twin, checked, owned=False, owns_twin=True)
        else:
            assert sync_client is not None
            self._start(client, sync_client, checked, owned=False, owns_twin=False)

    @classmethod
    def _connect(
        cls: type[_A],
        url: str,
        *,
        cluster: bool,
        timeout: float,
        max_connections: int,
        client_options: dict[str, Any],
        options: StoreOptions,
    ) -> _A:
        aclient = async_client(
            url,
            cluster=cluster,
            timeout=timeout,
            max_connections=max_connections,
            options=client_options,
        )
        twin = new_sync_client(
            url, cluster=cluster, timeout=timeout, max_connections=4, options=client_options
        )
        store = cls.__new__(cls)
        try:
            store._start(aclient, twin, options, owned=True, owns_twin=True)
        except BaseException:
            close_sync(twin)
            raise
        return store

    def _start(
        self,
        client: AsyncClient,
        twin: SyncClient,
        options: StoreOptions,
        *,
        owned: bool,
        owns_twin: bool,
    ) -> None:
        """Set the store up on ``client`` (for calls) and ``twin`` (for the rest);
        ``owned``: the store made ``client``, and closes it in :meth:`aclose`."""
        self._aclient = client
        self._owns_twin = owns_twin
        self._loop: asyncio.AbstractEventLoop | None = None
        # Set when Redis comes back: the asyncio pool's idle connections may be dead.
        self._stale = False

        async def acall(script: Script, keys: Sequence[str], args: Sequence[object]) -> Any:
            loop = _require_asyncio()
            if loop is not self._loop:
                self._bind(loop)
            if self._stale:
                self._stale = False
                await adrop_idle_connections(client)
            return await aevalsha(client, script, keys, args)

        self._setup(
            twin,
            call=lambda script, keys, args: evalsha(twin, script, keys, args),
            acall=acall,
            options=options,
            owns_client=owned,
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
            close_sync(self._client)

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
