"""The registry builds and reloads Hedge, AdaptiveConcurrency, AdaptiveThrottle and Chaos,
and shadow mode, from config: keys are constructor parameter names, kinds the
snake_case class names."""

from __future__ import annotations

from typing import Any

import pytest

from resilience import (
    AIMD,
    AdaptiveConcurrency,
    AdaptiveThrottle,
    Bulkhead,
    Chaos,
    CircuitBreaker,
    CircuitOpen,
    ConfigError,
    Gradient,
    Hedge,
    LatencyQuantile,
    Registry,
    TokenBucket,
)
from resilience.testing import FakeClock


def registry(pipelines: dict[str, Any], **options: Any) -> Registry:
    return Registry.from_dict({"pipelines": pipelines}, env={}, **options)


def test_every_new_kind_from_config() -> None:
    reg = registry(
        {
            "search": {
                "policies": ["hedge", "adaptive_throttle", "adaptive_concurrency", "chaos"],
                "hedge": {
                    "delay": {"kind": "latency_quantile", "quantile": 0.9, "initial": "50ms"},
                    "max_hedges": 2,
                    "hedge_on": ["ConnectionError", "TimeoutError"],
                },
                "adaptive_throttle": {"k": 1.5, "window": "1m", "seed": 3},
                "adaptive_concurrency": {
                    "algorithm": {"kind": "aimd", "backoff_ratio": 0.5},
                    "initial_limit": 8,
                    "max_limit": 50,
                    "dropped_on": "TimeoutError",
                },
                "chaos": {"rate": 0.1, "fault": "ConnectionError", "enabled": False, "seed": 7},
            }
        }
    )
    hedge, throttle, adaptive, chaos = registry_policies(reg, "search")
    assert isinstance(hedge, Hedge)
    assert hedge._delay_spec == LatencyQuantile(0.9, initial=0.05)
    assert hedge.max_hedges == 2
    assert isinstance(throttle, AdaptiveThrottle)
    assert (throttle.k, throttle.window) == (1.5, 60.0)
    assert isinstance(adaptive, AdaptiveConcurrency)
    assert adaptive.algorithm == AIMD(backoff_ratio=0.5)
    assert (adaptive.limit, adaptive.max_limit) == (8, 50)
    assert isinstance(chaos, Chaos)
    assert (chaos.rate, chaos.injects, chaos.enabled) == (0.1, "fault", False)
    assert chaos.call(lambda: "disabled: no fault") == "disabled: no fault"
    shown = {d.entry: d.show() for d in reg.describe("search")}
    assert (
        "delay=latency_quantile(quantile=0.9, samples=100, min_samples=20, initial=50ms)"
        in (shown["hedge"])
    )
    assert (
        "algorithm=aimd(backoff_ratio=0.5, slow_call_duration=none)"
        in (shown["adaptive_concurrency"])
    )


def registry_policies(reg: Registry, name: str) -> tuple[Any, ...]:
    return tuple(reg.pipeline(name).policies)


def test_defaults_and_the_recommended_order() -> None:
    reg = registry(
        {
            "p": {
                "chaos": {"rate": 1, "latency": "10ms"},
                "timeout": "1s",
                "adaptive_concurrency": {},
                "hedge": {"delay": "100ms"},
                "circuit_breaker": {},
                "retry": {},
            }
        }
    )
    kinds = [p.kind for p in reg.pipeline("p").policies]
    assert kinds == [
        "retry",
        "hedge",
        "circuit_breaker",
        "adaptive_concurrency",
        "timeout",
        "chaos",
    ]
    adaptive = reg.pipeline("p").policies[3]
    assert adaptive.algorithm == Gradient()
    assert reg.pipeline("p").describe().warnings == ()


def test_shadow_mode_from_config() -> None:
    reg = registry(
        {
            "p": {
                "circuit_breaker": {"mode": "metrics_only"},
                "token_bucket": {"rate": 5, "mode": "metrics_only"},
                "bulkhead": {"max_concurrent": 2, "mode": "metrics_only"},
                "adaptive_throttle": {"mode": "metrics_only"},
            }
        }
    )
    policies = reg.pipeline("p").policies
    assert [type(p) for p in policies] == [
        CircuitBreaker,
        AdaptiveThrottle,
        TokenBucket,
        Bulkhead,
    ]
    assert all(p.mode == "metrics_only" for p in policies)
    assert "mode=metrics_only" in reg.describe("p")[0].show()


@pytest.mark.parametrize(
    ("table", "path", "message"),
    [
        ({"bulkhead": {"max_concurrent": 1, "mode": "shadow"}}, "bulkhead.mode", "metrics_only"),
        ({"hedge": {}}, "hedge.delay", "a hedge needs delay"),
        ({"hedge": {"delay": {"kind": "p95"}}}, "hedge.delay.kind", "latency_quantile"),
        (
            {"hedge": {"delay": {"kind": "latency_quantile", "quantile": 2}}},
            "hedge.delay.quantile",
            "a number",
        ),
        (
            {"hedge": {"delay": {"kind": "latency_quantile", "window": 9}}},
            "hedge.delay.window",
            "one of kind, quantile, samples",
        ),
        (
            {"adaptive_concurrency": {"algorithm": {"kind": "vegas"}}},
            "adaptive_concurrency.algorithm.kind",
            "gradient, aimd",
        ),
        (
            {"adaptive_concurrency": {"algorithm": {"kind": "gradient", "tolerance": 0.5}}},
            "adaptive_concurrency.algorithm.tolerance",
            "at least 1",
        ),
        (
            {"adaptive_concurrency": {"initial_limit": 500}},
            "adaptive_concurrency.initial_limit",
            "initial_limit must be within",
        ),
        ({"adaptive_throttle": {"k": 0.5}}, "adaptive_throttle.k", "at least 1"),
        ({"chaos": {"fault": "ValueError"}}, "chaos.rate", "a chaos needs rate"),
        ({"chaos": {"rate": 1.5, "latency": "1s"}}, "chaos.rate", "[0, 1]"),
        ({"chaos": {"rate": 0.5}}, "chaos", "exactly one of fault, latency and result"),
        ({"chaos": {"rate": 0.5, "fault": "NoSuchError"}}, "chaos.fault[0]", "exception"),
        ({"hedge": {"delay": 1, "hedge_if_result": 1}}, "hedge.hedge_if_result", "in code"),
    ],
)
def test_config_errors_name_the_key(table: dict[str, Any], path: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        registry({"p": table})
    assert info.value.path == f"pipelines.p.{path}"
    assert message in str(info.value)


def test_reload_changes_the_new_policies_in_place(clock: FakeClock) -> None:
    before = {
        "hedge": {"delay": "100ms"},
        "adaptive_throttle": {"k": 2, "seed": 1},
        "adaptive_concurrency": {"algorithm": {"kind": "aimd"}, "max_limit": 50},
        "chaos": {"rate": 1, "fault": "ConnectionError", "enabled": False},
    }
    reg = registry({"p": before}, clock=clock)
    hedge, throttle, adaptive, chaos = reg.pipeline("p").policies
    for _ in range(3):
        with pytest.raises(ConnectionError):
            throttle.call(_fail)
    after = {
        "hedge": {"delay": "250ms", "max_hedges": 3},
        "adaptive_throttle": {"k": 3, "seed": 1},
        "adaptive_concurrency": {"algorithm": {"kind": "aimd"}, "max_limit": 10},
        "chaos": {"rate": 1, "fault": "ConnectionError", "enabled": True},
    }
    changes = {str(change) for change in reg.reload({"pipelines": {"p": after}})}
    assert "pipelines.p.hedge.delay: 100ms -> 250ms" in changes
    assert "pipelines.p.chaos.enabled: false -> true" in changes
    assert (hedge.delay, hedge.max_hedges) == (0.25, 3)
    assert throttle.k == 3.0
    assert throttle.requests == 3  # same window: the counts are kept
    assert (adaptive.max_limit, adaptive.limit) == (10, 10)  # 20 moved into [1, 10]
    with pytest.raises(ConnectionError):
        chaos.call(lambda: "unused")  # switched on from config
    described = reg.pipeline("p").describe().policies
    assert described[0].settings["delay"] == 0.25
    assert described[3].settings["enabled"] is True


def _fail() -> None:
    raise ConnectionError


def test_reload_switches_shadow_mode_in_place() -> None:
    """The shadow-mode workflow: tune in shadow mode, then enforce, without a restart."""
    shadow = {"consecutive_failures": 1, "failure_rate": None, "mode": "metrics_only"}
    reg = registry({"p": {"circuit_breaker": shadow, "bulkhead": {"max_concurrent": 1}}})
    breaker, bulkhead = registry_policies(reg, "p")
    guarded = reg.pipeline("p")(lambda: "ran")
    with pytest.raises(ConnectionError):
        reg.pipeline("p").call(_fail)
    assert breaker.state == "open"
    assert guarded() == "ran"  # shadow mode: would have rejected
    enforcing = {k: v for k, v in shadow.items() if k != "mode"}  # the default: enforce
    changes = reg.reload(
        {
            "pipelines": {
                "p": {
                    "circuit_breaker": enforcing,
                    "bulkhead": {"max_concurrent": 1, "mode": "metrics_only"},
                }
            }
        }
    )
    assert {(c.path, c.old, c.new) for c in changes} == {
        ("pipelines.p.circuit_breaker.mode", "metrics_only", "enforce"),
        ("pipelines.p.bulkhead.mode", "enforce", "metrics_only"),
    }
    assert registry_policies(reg, "p") == (breaker, bulkhead)  # the same live policies
    assert (breaker.mode, bulkhead.mode) == ("enforce", "metrics_only")
    assert breaker.state == "open"  # its state kept
    with pytest.raises(CircuitOpen):
        guarded()
