"""The Redis clients a store makes for itself, and the checks on clients it is given.

A store's own clients wait for Redis at most ``timeout`` seconds per connect and per
reply, never retry on their own (the store decides what a failure means), and keep a
bounded pool (a standalone pool blocks up to ``timeout`` for a free connection).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, cast

import redis
import redis.asyncio
import redis.asyncio.retry
import redis.client
from redis.backoff import NoBackoff
from redis.retry import Retry

__all__ = [
    "AsyncClient",
    "SyncClient",
    "as_text",
    "async_client",
    "check_client",
    "close_sync",
    "open_pubsub",
    "sync_client",
    "sync_twin",
]

SyncClient = redis.Redis | redis.RedisCluster
AsyncClient = redis.asyncio.Redis | redis.asyncio.RedisCluster

#: A user's client whose timeout is above this gets a warning.
SLOW_TIMEOUT = 1.0


def _no_retries() -> Retry:
    return Retry(NoBackoff(), 0)


def _no_async_retries() -> redis.asyncio.retry.Retry:
    # An asyncio client needs the asyncio Retry class: redis-py 8.2 converts a sync one
    # with a warning, and older releases would call its sync sleep from the event loop.
    return redis.asyncio.retry.Retry(NoBackoff(), 0)


def _connection_options(timeout: float, options: dict[str, Any]) -> dict[str, Any]:
    return {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        **options,
    }


def sync_client(
    url: str, *, cluster: bool, timeout: float, max_connections: int, options: dict[str, Any]
) -> redis.Redis | redis.RedisCluster:
    connection = _connection_options(timeout, options)
    if cluster:
        return redis.RedisCluster.from_url(
            url, retry=_no_retries(), max_connections=max_connections, **connection
        )
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout,
        retry=_no_retries(),
        **connection,
    )
    return redis.Redis(connection_pool=pool)


def async_client(
    url: str, *, cluster: bool, timeout: float, max_connections: int, options: dict[str, Any]
) -> redis.asyncio.Redis | redis.asyncio.RedisCluster:
    connection = _connection_options(timeout, options)
    if cluster:
        return redis.asyncio.RedisCluster.from_url(
            url, retry=_no_async_retries(), max_connections=max_connections, **connection
        )
    pool = redis.asyncio.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout,
        retry=_no_async_retries(),
        **connection,
    )
    return redis.asyncio.Redis(connection_pool=pool)


#: Connection settings that mean the same to the sync and the asyncio client.
_PORTABLE = (
    "host",
    "port",
    "db",
    "username",
    "password",
    "credential_provider",
    "socket_timeout",
    "socket_connect_timeout",
    "client_name",
    "protocol",
)


def sync_twin(client: redis.asyncio.Redis) -> redis.Redis:
    """A small sync client reaching the same server as an asyncio ``client``: for the
    calls that cannot await (manual control, metrics, the admin API, the probe and the
    pub/sub listener). Plain TCP connections only; otherwise pass ``sync_client=``."""
    pool = client.connection_pool
    if pool.connection_class is not redis.asyncio.Connection:
        raise TypeError(
            f"cannot derive a sync client from {client!r} ({pool.connection_class.__name__} "
            "connections): pass sync_client=redis.Redis(...) reaching the same server"
        )
    kwargs = {key: value for key, value in pool.connection_kwargs.items() if key in _PORTABLE}
    # Typed through a cast: redis-py annotates this constructor in some releases only.
    blocking_pool = cast(
        "Callable[..., redis.BlockingConnectionPool]", redis.BlockingConnectionPool
    )
    return redis.Redis(
        connection_pool=blocking_pool(
            max_connections=4, timeout=kwargs.get("socket_timeout"), retry=_no_retries(), **kwargs
        )
    )


def close_sync(client: SyncClient) -> None:
    """Close a sync client the store made, and its pool (a ``redis.Redis`` made with
    its own pool does not close it)."""
    client.close()
    if isinstance(client, redis.Redis):
        client.connection_pool.disconnect()


def as_text(value: Any) -> str:
    """A key, channel or message as a ``str``: clients answer ``bytes`` unless made with
    ``decode_responses=True``."""
    return value.decode() if isinstance(value, bytes) else str(value)


def open_pubsub(client: redis.Redis | redis.RedisCluster) -> redis.client.PubSub:
    """``client.pubsub()``, typed the same with every supported redis-py release (it is
    annotated from 8.2 on only)."""
    pubsub = cast("Callable[[], redis.client.PubSub]", client.pubsub)
    return pubsub()


def _settings(client: Any) -> dict[str, Any]:
    for path in ("connection_pool.connection_kwargs", "nodes_manager.connection_kwargs"):
        target = client
        for attribute in path.split("."):
            target = getattr(target, attribute, None)
        if isinstance(target, dict):
            return target
    return dict(getattr(client, "connection_kwargs", {}) or {})


def check_client(client: Any, *, stacklevel: int) -> None:
    """Warn about a user's client that could hold calls up for long: no socket
    timeout, a long one, or retries of its own."""
    settings = _settings(client)
    timeout = settings.get("socket_timeout")
    problems = []
    if timeout is None:
        problems.append("no socket_timeout (a silent network would hang calls)")
    elif timeout > SLOW_TIMEOUT:
        problems.append(f"socket_timeout={timeout!r} (a stalled Redis would hold each call)")
    retry = settings.get("retry") or getattr(client, "retry", None)
    retries = getattr(retry, "_retries", 0)
    if retries:
        problems.append(f"{retries} retries on errors (each call could wait for all of them)")
    if problems:
        warnings.warn(
            f"Redis client {client!r} has {'; '.join(problems)}. The store falls back to "
            "local state only after the client gives up: prefer from_url(), or "
            f"socket_timeout <= {SLOW_TIMEOUT:g}s and retry=Retry(NoBackoff(), 0)",
            RuntimeWarning,
            stacklevel=stacklevel + 1,
        )


def drop_idle_connections(client: redis.Redis | redis.RedisCluster) -> None:
    """Close the pooled connections nobody is using: after an outage they may lead
    nowhere (a partition can leave sockets that never answer again)."""
    if isinstance(client, redis.RedisCluster):
        nodes = cast("Callable[[], list[Any]]", client.get_nodes)()
        pools = [
            node.redis_connection.connection_pool
            for node in nodes
            if node.redis_connection is not None
        ]
    else:
        pools = [client.connection_pool]
    for pool in pools:
        try:
            pool.disconnect(inuse_connections=False)
        except TypeError:
            # redis-py < 7: BlockingConnectionPool.disconnect() takes no argument and
            # closes every connection. The store calls this only while its link is cut
            # off (nothing of ours is using a connection), so that is safe too.
            pool.disconnect()


async def adrop_idle_connections(
    client: redis.asyncio.Redis | redis.asyncio.RedisCluster,
) -> None:
    """:func:`drop_idle_connections` for a ``redis.asyncio`` client."""
    if isinstance(client, redis.asyncio.RedisCluster):
        for node in client.get_nodes():
            free = getattr(node, "disconnect_free_connections", None)
            if free is not None:
                await free()
    else:
        await client.connection_pool.disconnect(inuse_connections=False)
