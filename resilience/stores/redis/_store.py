"""RedisStore: the store for sync code (and async code, through worker threads).

It runs scripts on its ``redis.Redis`` (or ``RedisCluster``) client, and from async code
in a worker thread. All else is :class:`SharedStore`'s; the asyncio store is
``_async_store.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import anyio.to_thread
import redis

from ._clients import SyncClient, check_client, close_sync, sync_client
from ._options import StoreOptions, merge_options
from ._scripts import Script, evalsha
from ._shared import SharedStore

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ._options import StoreOptionArgs

__all__ = ["RedisStore"]

_R = TypeVar("_R", bound="RedisStore")


class RedisStore(SharedStore):
    """Breaker and limiter state shared through Redis, for sync code (and async code,
    which it serves from worker threads; prefer :class:`AsyncRedisStore` on asyncio).

    Build it with :meth:`from_url`, which makes a client with the settings a store
    needs, or give it a ``redis.Redis`` / ``redis.RedisCluster`` of yours. The options
    (``prefix=``, ``sync_mode=``...) are those of :class:`StoreOptions`, as keywords or
    as ``options`` (keywords override it). See the docs page "Sharing state across
    instances".
    """

    def __init__(
        self,
        client: SyncClient,
        *,
        options: StoreOptions | None = None,
        **changes: Unpack[StoreOptionArgs],
    ) -> None:
        if not isinstance(client, (redis.Redis, redis.RedisCluster)):
            raise TypeError(
                f"client must be a redis.Redis or redis.RedisCluster, got {client!r} "
                "(for a redis.asyncio client, use AsyncRedisStore)"
            )
        check_client(client, stacklevel=2)  # from_url's clients need no check
        checked = merge_options(options, changes, caller="RedisStore.__init__")
        self._start(client, checked, owns_client=False)

    @classmethod
    def _connect(
        cls: type[_R],
        url: str,
        *,
        cluster: bool,
        timeout: float,
        max_connections: int,
        client_options: dict[str, Any],
        options: StoreOptions,
    ) -> _R:
        client = sync_client(
            url,
            cluster=cluster,
            timeout=timeout,
            max_connections=max_connections,
            options=client_options,
        )
        store = cls.__new__(cls)
        try:
            store._start(client, options, owns_client=True)
        except BaseException:
            close_sync(client)
            raise
        return store

    def _start(self, client: SyncClient, options: StoreOptions, *, owns_client: bool) -> None:
        async def acall(script: Script, keys: Sequence[str], args: Sequence[object]) -> Any:
            return await anyio.to_thread.run_sync(evalsha, client, script, keys, args)

        self._setup(
            client,
            call=lambda script, keys, args: evalsha(client, script, keys, args),
            acall=acall,
            options=options,
            owns_client=owns_client,
        )

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
            close_sync(self._client)

    def __enter__(self) -> RedisStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
