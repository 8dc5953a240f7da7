"""Registry configs that share state through Redis: the store's fleet options in the
[store] section, a policy's own in its table."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from resilience import ConfigError, Registry
from resilience.stores.redis._breaker import RedisBreaker
from resilience.stores.redis._budget import RedisBudget
from resilience.stores.redis._bulkhead import RedisBulkhead
from resilience.stores.redis._limiter import LeasedBucket
from resilience.stores.redis._local_first import LocalFirstBreaker


@pytest.fixture
def registry(redis_url: str, prefix: str) -> Iterator[Callable[..., Registry]]:
    made: list[Registry] = []

    def make(pipelines: dict[str, Any], **store: Any) -> Registry:
        config = {"store": {"redis_url": redis_url, "prefix": prefix, **store}}
        made.append(Registry.from_dict({**config, "pipelines": pipelines}, env={}))
        return made[-1]

    yield make
    for each in made:
        each.store.close()


def backend(registry: Registry, pipeline: str, entry: int) -> Any:
    policy = registry.pipeline(pipeline).policies[entry]
    return getattr(policy, "_backend", None) or policy._core  # a bulkhead's: _core


def test_the_store_section_sets_the_fleet_options(registry: Callable[..., Registry]) -> None:
    config = registry(
        {"api": {"circuit_breaker": {"shared": True}}},
        sync_mode="local-first",
        flush_interval="50ms",
        poll_interval="2s",
        min_instances=2,
        slot_lease="3s",
    )
    store = config.store
    assert (store.sync_mode, store.flush_interval, store.poll_interval) == (
        "local-first",
        0.05,
        2.0,
    )
    assert (store.min_instances, store.slot_lease) == (2, 3.0)
    assert type(backend(config, "api", 0)) is LocalFirstBreaker


def test_a_policy_sets_its_own_store_options(registry: Callable[..., Registry]) -> None:
    config = registry(
        {
            "hot": {
                "circuit_breaker": {
                    "shared": True,
                    "sync_mode": "local-first",
                    "flush_interval": "20ms",
                },
                "token_bucket": {"rate": "1000/s", "shared": True, "sync_mode": "local-first"},
                "bulkhead": {"max_concurrent": 5, "shared": True, "slot_lease": "2s"},
            },
            "cold": {"circuit_breaker": {"shared": True}},
            "retrying": {"retry": {"budget": {"ratio": 0.2, "shared": True}}},
        }
    )
    breaker = backend(config, "hot", 0)
    assert type(breaker) is LocalFirstBreaker
    assert breaker._options.flush_interval == 0.02
    assert type(backend(config, "hot", 1)) is LeasedBucket
    bulkhead = backend(config, "hot", 2)
    assert type(bulkhead) is RedisBulkhead
    assert bulkhead._options.slot_lease == 2.0
    assert type(backend(config, "cold", 0)) is RedisBreaker
    budget = config.pipeline("retrying").policies[0].budget
    assert type(budget._backend) is RedisBudget
    assert budget.key == "retrying"
    [described] = [d for d in config.describe("hot") if d.kind == "circuit_breaker"]
    assert "sync_mode=local-first" in described.show()


@pytest.mark.parametrize(
    ("table", "key", "expected"),
    [
        ({"sync_mode": "local-first"}, "sync_mode", "shared = true"),
        ({"shared": True, "sync_mode": "eventual"}, "sync_mode", "local-first"),
        ({"shared": True, "lease_tokens": 5}, "lease_tokens", "a circuit_breaker setting"),
    ],
)
def test_bad_store_options_are_config_errors(
    registry: Callable[..., Registry], table: dict[str, Any], key: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        registry({"p": {"circuit_breaker": table}})
    assert raised.value.path == f"pipelines.p.circuit_breaker.{key}"
    assert expected in str(raised.value)


def test_store_options_need_a_redis_store() -> None:
    guarded = {"circuit_breaker": {"shared": True, "min_instances": 2}}
    with pytest.raises(ConfigError) as raised:
        Registry.from_dict({"store": {}, "pipelines": {"p": guarded}}, env={})
    assert raised.value.path == "pipelines.p.circuit_breaker.min_instances"
    with pytest.raises(ConfigError) as raised:
        Registry.from_dict({"store": {"sync_mode": "local-first"}}, env={})
    assert raised.value.path == "store.sync_mode"
    with pytest.raises(ConfigError) as raised:
        Registry.from_dict({"pipelines": {"p": {"retry": {"budget": {"shared": True}}}}}, env={})
    assert raised.value.path == "pipelines.p.retry.budget.shared"


def test_a_bad_store_option_names_its_key(redis_url: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Registry.from_dict(
            {"store": {"redis_url": redis_url, "flush_interval": "1s", "poll_interval": "10ms"}},
            env={},
        )
    assert raised.value.path == "store.poll_interval"


def test_reloading_a_shared_budget(registry: Callable[..., Registry]) -> None:
    pipelines = {"r": {"retry": {"budget": {"ratio": 0.2, "shared": True}}}}
    config = registry(pipelines)
    budget = config.pipeline("r").policies[0].budget
    pipelines["r"]["retry"]["budget"]["ratio"] = 0.5
    config.reload({"store": config._data["store"], "pipelines": pipelines})
    assert config.pipeline("r").policies[0].budget is budget  # the same, in place
    assert budget.ratio == 0.5
    pipelines["r"]["retry"]["budget"]["window"] = "20s"
    with pytest.raises(ConfigError, match="needs a new registry"):
        config.reload({"store": config._data["store"], "pipelines": pipelines})
    moved = {"r": {"retry": {"budget": {"ratio": 0.5, "shared": True}}}}
    moved["r"]["circuit_breaker"] = {"shared": True, "sync_mode": "local-first"}
    with pytest.raises(ConfigError, match="needs a new registry"):
        config.reload({"store": config._data["store"], "pipelines": moved})
