"""StoreOptions: the one place a Redis store's options are checked, whichever way
they come (the constructors, ``from_url``, ``with_options``, or a ``StoreOptions``)."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis
import redis.asyncio

from resilience import Exponential
from resilience.stores.redis import AsyncRedisStore, RedisStore, StoreOptions
from resilience.stores.redis._options import StoreOptionArgs, ViewOptionArgs

#: A bad value of each option (and one bad pair), and the error it gets.
BAD: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"prefix": "a{b}"}, ValueError, "prefix must be non-empty"),
    ({"prefix": 3}, TypeError, r"prefix must be a str, got 3 \(int\)"),
    ({"on_store_error": "open"}, ValueError, "on_store_error must be 'local' or 'closed'"),
    ({"errors_to_cut_off": 0}, ValueError, "errors_to_cut_off"),
    ({"reconnect": "fast"}, TypeError, "reconnect must be a backoff strategy, got 'fast'"),
    ({"trial_lease": -1}, ValueError, "trial_lease"),
    ({"key_ttl": "long"}, TypeError, "key_ttl must be a duration"),
    ({"sync_mode": "eventual"}, ValueError, "sync_mode must be 'strict' or 'local-first'"),
    ({"flush_interval": 0}, ValueError, "flush_interval"),
    (
        {"flush_interval": 0.5, "poll_interval": 0.1},
        ValueError,
        r"poll_interval must be at least flush_interval \(0\.5\), got 0\.1",
    ),
    ({"min_instances": 0}, ValueError, "min_instances"),
    ({"lease_tokens": 1.5}, TypeError, "lease_tokens"),
    ({"slot_lease": -1}, ValueError, "slot_lease"),
]
VIEW_OPTIONS = set(ViewOptionArgs.__annotations__)


def message(options: dict[str, Any]) -> tuple[type[Exception], str]:
    """What StoreOptions itself says of ``options``."""
    with pytest.raises(Exception) as caught:
        StoreOptions(**options)
    return type(caught.value), str(caught.value)


@pytest.fixture
def quiet_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, socket_timeout=0.2, retry=None)
    yield client
    client.close()


@pytest.mark.parametrize(("options", "error", "match"), BAD)
def test_a_bad_option_gets_the_same_error_through_every_entry_point(
    options: dict[str, Any],
    error: type[Exception],
    match: str,
    redis_url: str,
    quiet_client: redis.Redis,
    make_store: Callable[..., RedisStore],
) -> None:
    expected = message(options)
    assert expected[0] is error
    assert re.search(match, expected[1])
    aclient = redis.asyncio.Redis.from_url(redis_url, socket_timeout=0.2, retry=None)
    entries: list[Callable[[], object]] = [
        lambda: RedisStore(quiet_client, **options),
        lambda: RedisStore(quiet_client, options=StoreOptions(), **options),
        lambda: RedisStore.from_url(redis_url, **options),
        lambda: AsyncRedisStore(aclient, **options),
        lambda: AsyncRedisStore.from_url(redis_url, **options),
        lambda: dataclasses.replace(StoreOptions(), **options),
    ]
    if set(options) <= VIEW_OPTIONS:
        entries.append(lambda: make_store().with_options(**options))
    for entry in entries:
        with pytest.raises(error) as caught:
            entry()
        assert (type(caught.value), str(caught.value)) == expected
    asyncio.run(aclient.aclose())


def test_the_typed_keywords_are_the_fields_of_store_options() -> None:
    fields = [field.name for field in dataclasses.fields(StoreOptions)]
    assert set(StoreOptionArgs.__annotations__) == set(fields)
    assert VIEW_OPTIONS.issubset(fields)
    assert not StoreOptionArgs.__required_keys__


def test_store_options_keep_durations_as_seconds() -> None:
    # Typed as seconds; a timedelta is taken too (as the stores' keywords take one).
    three, quarter = timedelta(seconds=3), timedelta(seconds=0.25)
    options = StoreOptions(trial_lease=three, flush_interval=quarter)  # type: ignore[arg-type]
    assert (options.trial_lease, options.flush_interval) == (3.0, 0.25)
    assert StoreOptions() == StoreOptions(prefix="resilience", sync_mode="strict")


def test_keywords_override_the_options_given(redis_url: str, prefix: str) -> None:
    backoff = Exponential(base=0.2, max=1.0)
    base = StoreOptions(prefix="not-this", sync_mode="local-first", reconnect=backoff)
    with RedisStore.from_url(redis_url, prefix, options=base, flush_interval=0.2) as store:
        assert (store.prefix, store.sync_mode, store.flush_interval) == (
            prefix,
            "local-first",
            0.2,
        )
        assert store._options == dataclasses.replace(base, prefix=prefix, flush_interval=0.2)
    with RedisStore.from_url(redis_url, options=StoreOptions(prefix=prefix)) as store:
        assert store.prefix == prefix  # not from_url's default prefix
    assert base.prefix == "not-this"  # frozen: a store copies it


def test_options_must_be_store_options(quiet_client: redis.Redis) -> None:
    with pytest.raises(TypeError, match="options must be a StoreOptions, got"):
        RedisStore(quiet_client, options={"prefix": "x"})  # type: ignore[arg-type]


def test_unknown_keywords_are_refused_as_python_refuses_them(
    quiet_client: redis.Redis, make_store: Callable[..., RedisStore]
) -> None:
    with pytest.raises(TypeError, match=r"RedisStore\.__init__\(\) got an unexpected keyword"):
        RedisStore(quiet_client, prefix_="x")  # type: ignore[call-arg]
    store = make_store()
    with pytest.raises(
        TypeError, match=r"RedisStore\.with_options\(\) got an unexpected keyword argument 'prefix'"
    ):
        store.with_options(prefix="other")  # type: ignore[call-arg]


def test_none_keeps_a_views_option_unless_none_is_a_value(
    make_store: Callable[..., RedisStore],
) -> None:
    store = make_store(flush_interval=0.2, poll_interval=0.5, min_instances=2)
    # None for flush_interval: as before, though no longer in the type.
    view = store.with_options(flush_interval=None, min_instances=None)  # type: ignore[arg-type]
    assert (view.flush_interval, view.poll_interval, view.min_instances) == (0.2, 0.5, None)
