"""Whatever a config holds, a registry either builds or raises ConfigError: never a
TypeError, KeyError, OverflowError... from deep inside."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resilience import ConfigError, Registry

KEYS = [
    "store",
    "redis_url",
    "prefix",
    "defaults",
    "pipelines",
    "policies",
    "kind",
    "name",
    "shared",
    "fallback",
    "value",
    "on",
    "retry",
    "attempts",
    "backoff",
    "base",
    "factor",
    "max",
    "jitter",
    "delay",
    "step",
    "retry_on",
    "deadline",
    "budget",
    "ratio",
    "min_per_second",
    "window",
    "calls",
    "circuit_breaker",
    "failure_rate",
    "minimum_calls",
    "consecutive_failures",
    "slow_call_duration",
    "slow_call_rate",
    "open_for",
    "half_open_calls",
    "failure_on",
    "ignore",
    "token_bucket",
    "rate",
    "per",
    "burst",
    "max_wait",
    "key",
    "bulkhead",
    "max_concurrent",
    "max_queue",
    "timeout",
    "seconds",
    "exponential",
    "constant",
    "linear",
    "decorrelated_jitter",
    "full",
    "none",
    "equal",
    "mode",
    "enforce",
    "metrics_only",
    "chaos",
    "fault",
    "latency",
    "result",
    "enabled",
    "seed",
    "hedge",
    "max_hedges",
    "hedge_on",
    "quantile",
    "min_samples",
    "initial",
    "adaptive_throttle",
    "k",
    "adaptive_concurrency",
    "algorithm",
    "gradient",
    "aimd",
    "latency_quantile",
    "samples",
    "initial_limit",
    "min_limit",
    "max_limit",
    "dropped_on",
]

WORDS = st.sampled_from(
    [
        *KEYS,
        "250ms",
        "30s",
        "5m",
        "1h",
        "0s",
        "-1s",
        "1e400s",
        "100/s",
        "6000/m",
        "0/s",
        "1/0s",
        "25%",
        "150%",
        "nan%",
        "ConnectionError",
        "Exception",
        "KeyboardInterrupt",
        "int",
        "os.path",
        "resilience.errors.RateLimited",
        "no_such_module.Error",
        "",
        " ",
        "x",
    ]
)

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.integers(min_value=10**308, max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    WORDS,
    st.text(max_size=8),
)

JUNK = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(WORDS, st.integers(0, 3)), children, max_size=4),
    ),
    max_leaves=12,
)

VALID = {
    "store": {},
    "defaults": {
        "circuit_breaker": {"failure_rate": 0.5, "minimum_calls": 20, "open_for": "30s"},
        "retry": {"backoff": {"kind": "exponential", "base": "100ms", "max": "2s"}},
        "timeout": "5s",
    },
    "pipelines": {
        "payments": {
            "policies": [
                "fallback",
                "retry",
                "circuit_breaker",
                "token_bucket",
                "bulkhead",
                "timeout",
            ],
            "fallback": {"value": "n/a", "on": ["ConnectionError"]},
            "retry": {"attempts": 3, "budget": {"ratio": 0.1}, "deadline": "10s"},
            "circuit_breaker": {
                "failure_rate": 0.25,
                "shared": True,
                "window": {"calls": 50},
                "open_for": ["1s", "5s"],
            },
            "token_bucket": {"rate": "100/s", "burst": 20, "max_wait": "50ms"},
            "bulkhead": {"max_concurrent": 10, "max_queue": 20},
            "timeout": "2s",
        },
        "search": {"total": {"kind": "timeout", "seconds": 3}, "retry": {"attempts": 2}},
        "extras": {
            "chaos": {"rate": 0.1, "latency": "50ms", "enabled": False, "seed": 1},
            "hedge": {
                "delay": {"kind": "latency_quantile", "quantile": 0.9, "initial": "100ms"},
                "max_hedges": 1,
            },
            "adaptive_throttle": {"k": 2, "window": "1m", "mode": "metrics_only"},
            "adaptive_concurrency": {"initial_limit": 4, "max_limit": 16},
        },
    },
}


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found.extend(paths(value, (*prefix, key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found.extend(paths(value, (*prefix, index)))
    return found


def mutate(data: Any, draw: st.DrawFn) -> Any:
    """Replace, delete or add something at a random place of ``data``."""
    data = copy.deepcopy(data)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths(data)))
        if not path:
            continue
        parent = data
        for step in path[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(JUNK)
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(WORDS)] = draw(JUNK)
        else:
            parent.append(draw(JUNK))
    return data


SEGMENTS = st.sampled_from([*KEYS, "payments", "search", "PAYMENTS", ""])
ENV_VALUES = st.sampled_from(["5", "0.5", "true", "null", "[1", '["retry"]'])
ENV = st.dictionaries(
    st.lists(SEGMENTS, max_size=5).map(
        lambda parts: "RESILIENCE__" + "__".join(part.upper() for part in parts)
    ),
    st.one_of(WORDS, st.text(max_size=6), ENV_VALUES),
    max_size=3,
)


def builds_or_config_error(data: Any, env: dict[str, str]) -> None:
    error: ConfigError | None = None
    try:
        registry = Registry.from_dict(data, env=env)
    except ConfigError as exc:
        error = exc
    if error is not None:
        assert str(error).startswith(error.path)  # a message that names the key
        return
    for name in registry:
        for description in registry.describe(name):
            description.show()


def test_the_valid_config_builds() -> None:
    registry = Registry.from_dict(VALID, env={})
    assert sorted(registry) == ["extras", "payments", "search"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_configs_build_or_raise_config_error(data: st.DataObject) -> None:
    builds_or_config_error(mutate(VALID, data.draw), data.draw(ENV))


@settings(max_examples=200, deadline=None)
@given(config=JUNK, env=ENV)
def test_random_configs_build_or_raise_config_error(config: Any, env: dict[str, str]) -> None:
    builds_or_config_error(config, env)


@settings(max_examples=200, deadline=None)
@given(
    pipelines=st.dictionaries(
        WORDS,
        st.dictionaries(WORDS, JUNK, max_size=4),
        max_size=3,
    ),
    defaults=st.dictionaries(WORDS, st.dictionaries(WORDS, JUNK, max_size=3), max_size=2),
)
def test_random_pipelines_build_or_raise_config_error(
    pipelines: dict[str, Any], defaults: dict[str, Any]
) -> None:
    builds_or_config_error({"pipelines": pipelines, "defaults": defaults}, {})
