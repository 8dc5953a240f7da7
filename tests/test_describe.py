"""policy.describe(): the policies in order, their settings in force, and order warnings."""

from __future__ import annotations

from datetime import timedelta

import pytest

from resilience import (
    AIMD,
    AdaptiveConcurrency,
    AdaptiveThrottle,
    Bulkhead,
    Chaos,
    CircuitBreaker,
    Constant,
    CountWindow,
    DescribedPolicy,
    Fallback,
    Hedge,
    LatencyQuantile,
    Pipeline,
    PipelineDescription,
    Retry,
    RetryBudget,
    Timeout,
    TokenBucket,
    per_key,
)


def recommended() -> Pipeline:
    return Pipeline(
        Fallback("cached"),
        Retry(3, backoff=Constant(0.5)),
        CircuitBreaker("pay", window=CountWindow(50)),
        TokenBucket(100, burst=20),
        Bulkhead(10, max_queue=5),
        Timeout(2),
        name="payments",
    )


def test_the_recommended_order_has_no_warnings() -> None:
    description = recommended().describe()
    assert isinstance(description, PipelineDescription)
    assert description.name == "payments"
    assert [(p.kind, p.name) for p in description.policies] == [
        ("fallback", None),
        ("retry", None),
        ("circuit_breaker", "pay"),
        ("token_bucket", None),
        ("bulkhead", None),
        ("timeout", None),
    ]
    assert description.warnings == ()


def test_settings_are_the_constructor_arguments_in_force() -> None:
    fallback, retry, breaker, bucket, bulkhead, timeout = recommended().describe().policies
    assert isinstance(retry, DescribedPolicy)
    assert retry.settings["attempts"] == 3
    assert retry.settings["backoff"] == {"kind": "constant", "delay": 0.5, "max": 10.0}
    assert retry.settings["retry_on"] == ("Exception",)
    assert breaker.settings["window"] == {"calls": 50}
    assert breaker.settings["failure_rate"] == 0.5  # a default, filled in
    assert breaker.settings["mode"] == "enforce"
    assert bucket.settings["burst"] == 20.0
    assert bucket.settings["max_wait"] == 0.0
    assert bulkhead.settings == {
        "max_concurrent": 10,
        "max_queue": 5,
        "max_wait": None,
        "mode": "enforce",
        "store": None,
        "key": None,
    }
    assert timeout.settings == {"seconds": 2.0}
    assert fallback.settings["value"] == "cached"
    assert "name" not in breaker.settings
    assert "clock" not in breaker.settings


def test_plain_values() -> None:
    class Mine(Exception):
        pass

    def is_503(status: int) -> bool:
        return status == 503

    breaker = CircuitBreaker(
        failure_on=(ConnectionError, Mine),
        failure_if=is_503,
        slow_call_duration=timedelta(milliseconds=250),
    )
    (described,) = breaker.describe().policies
    assert described.settings["failure_on"] == (
        "ConnectionError",
        f"{__name__}.test_plain_values.<locals>.Mine",
    )
    assert described.settings["failure_if"] == "test_plain_values.<locals>.is_503()"
    assert described.settings["slow_call_duration"] == 0.25
    retry = Retry(budget=RetryBudget(ratio=0.2))
    (described,) = retry.describe().policies
    assert described.settings["budget"] == {"ratio": 0.2, "min_per_second": 10.0, "window": 10.0}


def test_new_policies_describe_what_they_learned() -> None:
    hedge = Hedge(LatencyQuantile(0.9, initial=0.5), 2)
    adaptive = AdaptiveConcurrency(AIMD(), initial_limit=8)
    chaos = Chaos.latency(0.1, 2)
    throttle = AdaptiveThrottle(k=1.5)
    h, a, c, t = Pipeline(hedge, adaptive, chaos, throttle).describe().policies
    assert h.settings["delay"] == {
        "kind": "latency_quantile",
        "quantile": 0.9,
        "samples": 100,
        "min_samples": 20,
        "initial": 0.5,
    }
    assert h.settings["learned_delay"] == 0.5
    assert a.settings["algorithm"] == {
        "kind": "aimd",
        "backoff_ratio": 0.9,
        "slow_call_duration": None,
    }
    assert a.settings["limit"] == 8
    assert c.settings == {"rate": 0.1, "latency": 2, "enabled": True, "seed": None}
    assert t.settings["k"] == 1.5


def test_nested_pipelines_are_flattened() -> None:
    inner = Pipeline(CircuitBreaker("b"), Timeout(1), name="inner")
    outer = Pipeline(Retry(), inner, name="outer")
    assert [p.kind for p in outer.describe().policies] == ["retry", "circuit_breaker", "timeout"]
    assert Pipeline().describe().policies == ()


def test_keyed_policies_say_how_many_keys() -> None:
    keyed = per_key(lambda host: CircuitBreaker(host), key=str, name="hosts")
    keyed.get("a")
    (described,) = keyed.describe().policies
    assert (described.kind, described.settings["keys"], described.settings["max_keys"]) == (
        "keyed",
        1,
        1024,
    )


# -- warnings ----------------------------------------------------------------------------------


def warnings_of(*policies: object) -> tuple[str, ...]:
    return Pipeline(*policies).describe().warnings  # type: ignore[arg-type]


def test_breaker_outside_retry() -> None:
    (warning,) = warnings_of(CircuitBreaker("db"), Retry(name="db"))
    assert warning.startswith("circuit breaker 'db' (#1) is outside retry 'db' (#2)")
    assert "put the breaker inside the retry" in warning
    (warning,) = warnings_of(CircuitBreaker(), Hedge(0.1))
    assert "is outside hedge (#2)" in warning


def test_fallback_inside_retry() -> None:
    (warning,) = warnings_of(Retry(), Fallback(None))
    assert warning.startswith("fallback (#2) is inside retry (#1)")
    assert "nothing is ever retried" in warning


def test_single_timeout_outside_retry() -> None:
    (warning,) = warnings_of(Timeout(5), Retry())
    assert warning.startswith("timeout (#1) is outside retry (#2) and no timeout is inside it")
    assert warnings_of(Timeout(5), Retry(), Timeout(1)) == ()  # per-attempt timeout: fine
    assert warnings_of(Retry(), Timeout(1)) == ()


def test_timeout_inside_a_shorter_one() -> None:
    (warning,) = warnings_of(Timeout(1), Retry(), Timeout(2))
    assert (
        warning
        == "timeout (#3) (2s) is inside timeout (#1) (1s) and not shorter: it can never fire"
    )


def test_chaos_outside_the_policies_it_should_exercise() -> None:
    (warning,) = warnings_of(Chaos.fault(0.1, ValueError), Retry())
    assert warning.startswith("chaos (#1) is outside retry (#2)")
    assert warnings_of(Retry(), CircuitBreaker(), Chaos.fault(0.1, ValueError)) == ()


def test_str_lists_policies_and_warnings() -> None:
    text = str(Pipeline(CircuitBreaker("b"), Retry(2), name="p").describe())
    lines = text.splitlines()
    assert lines[0] == "pipeline 'p', outermost first:"
    assert lines[1].startswith("  1. circuit_breaker 'b': failure_rate=0.5 minimum_calls=10")
    assert lines[2].startswith("  2. retry: attempts=2 backoff=exponential(")
    assert lines[3].startswith("warning: circuit breaker 'b' (#1) is outside retry (#2)")
    assert str(Pipeline().describe()).endswith("(no policies: calls go straight through)")


@pytest.mark.parametrize("policy", [Timeout(1), Retry(), Bulkhead(2)])
def test_a_single_policy_describes_itself(policy: object) -> None:
    description = policy.describe()  # type: ignore[attr-defined]
    assert len(description.policies) == 1
    assert description.warnings == ()
