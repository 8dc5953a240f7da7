"""Registry: reading, checking and building pipelines from config files, dicts and the
environment."""

from __future__ import annotations

import json
import math
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

from resilience import (
    Bulkhead,
    CircuitBreaker,
    CircuitOpen,
    ConfigError,
    CountWindow,
    Exponential,
    Fallback,
    Linear,
    Pipeline,
    Registry,
    Retry,
    RetryBudget,
    Timeout,
    TokenBucket,
)
from resilience.stores import MemoryStore
from resilience.testing import FakeClock

DESIGN_EXAMPLE = """
[store]                                  # optional: shared state

[defaults.circuit_breaker]               # defaults per policy kind
failure_rate = 0.5
minimum_calls = 20
open_for = "30s"

[pipelines.payments]                     # a named pipeline: its policies, outermost first
policies = ["retry", "circuit_breaker", "token_bucket", "bulkhead", "timeout"]
retry = { attempts = 3, backoff = { kind = "exponential", base = "100ms", max = "2s" } }
circuit_breaker = { failure_rate = 0.25, shared = true }    # overrides the defaults
token_bucket = { rate = "100/s", burst = 20 }
bulkhead = { max_concurrent = 10, max_queue = 20 }
timeout = "2s"
"""


def registry(data: dict[str, Any], **kwargs: Any) -> Registry:
    kwargs.setdefault("env", {})
    return Registry.from_dict(data, **kwargs)


def one(policy_table: dict[str, Any], kind: str = "") -> Any:
    """The single policy of a pipeline made of ``policy_table``."""
    pipeline = registry({"pipelines": {"p": policy_table}}).pipeline("p")
    (policy,) = pipeline.policies
    return policy


def config_error(data: dict[str, Any], **kwargs: Any) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        registry(data, **kwargs)
    return info.value


# -- files ------------------------------------------------------------------------------


def test_the_design_example_builds_the_payments_pipeline(tmp_path: Path) -> None:
    path = tmp_path / "resilience.toml"
    path.write_text(DESIGN_EXAMPLE)
    reg = Registry.from_file(path, env={})
    assert list(reg) == ["payments"]
    assert reg.source == path
    payments = reg.pipeline("payments")
    assert isinstance(payments, Pipeline)
    assert payments.name == "payments"
    retry, breaker, bucket, bulkhead, timeout = payments.policies
    assert isinstance(retry, Retry)
    assert retry.attempts == 3
    assert isinstance(retry.backoff, Exponential)
    assert retry.backoff.max == 2.0
    assert isinstance(breaker, CircuitBreaker)
    assert breaker.settings.failure_rate == 0.25  # the pipeline's own
    assert breaker.settings.minimum_calls == 20  # the defaults'
    assert breaker.settings.open_for == 30.0
    assert isinstance(reg.store, MemoryStore)
    assert isinstance(bucket, TokenBucket)
    assert (bucket.settings.rate, bucket.settings.per, bucket.settings.burst) == (100, 1, 20)
    assert isinstance(bulkhead, Bulkhead)
    assert (bulkhead.max_concurrent, bulkhead.max_queue) == (10, 20)
    assert isinstance(timeout, Timeout)
    assert timeout.seconds == 2.0
    assert all(p.name == "payments" for p in payments.policies)
    assert payments.call(lambda: 42) == 42


def test_yaml_and_json_files(tmp_path: Path) -> None:
    yaml_file = tmp_path / "resilience.yaml"
    yaml_file.write_text(
        "pipelines:\n"
        "  search:\n"
        "    retry: {attempts: 2, deadline: null}\n"
        "    circuit_breaker: {consecutive_failures: 5, failure_rate: null}\n"
        "    timeout: 250ms\n"
    )
    search = Registry.from_file(yaml_file, env={}).pipeline("search")
    retry, breaker, timeout = search.policies
    assert retry.attempts == 2
    assert breaker.settings.failure_rate is None
    assert breaker.settings.consecutive_failures == 5
    assert timeout.seconds == 0.25
    json_file = tmp_path / "resilience.json"
    json_file.write_text(json.dumps({"pipelines": {"geo": {"timeout": 1.5}}}))
    assert Registry.from_file(json_file, env={}).pipeline("geo").policies[0].seconds == 1.5
    empty = tmp_path / "empty.yml"
    empty.write_text("")
    assert len(Registry.from_file(empty, env={})) == 0


@pytest.mark.parametrize(
    ("name", "text", "kind"),
    [
        ("bad.toml", "[pipelines.p\ntimeout = 1", "TOML"),
        ("bad.yaml", "pipelines: [unclosed", "YAML"),
        ("bad.json", "{", "JSON"),
    ],
)
def test_unparsable_files_are_config_errors(
    tmp_path: Path, name: str, text: str, kind: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        Registry.from_file(path, env={})
    assert info.value.path == str(path)
    assert f"a valid {kind} document" in str(info.value)


def test_a_missing_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        Registry.from_file(tmp_path / "nope.toml")


def test_a_top_level_that_is_not_a_table(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="config: expected a table"):
        Registry.from_file(path, env={})


# -- values --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("250ms", 0.25),
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1m30s", 90.0),
        ("1.5s", 1.5),
        (" 2 s ", 2.0),
        (".5s", 0.5),
        (2, 2.0),
        (0.75, 0.75),
        (timedelta(milliseconds=1500), 1.5),
    ],
)
def test_durations(value: object, seconds: float) -> None:
    assert one({"timeout": value}).seconds == pytest.approx(seconds)
    assert one({"timeout": {"seconds": value}}).seconds == pytest.approx(seconds)


@pytest.mark.parametrize(
    "value", ["2 parsecs", "", "s", "5", "-1s", "1e3s", True, None, [1], "0s", 0, -1, math.inf]
)
def test_bad_durations(value: object) -> None:
    error = config_error({"pipelines": {"p": {"timeout": value}}})
    assert error.path == "pipelines.p.timeout"
    assert error.value == value or (error.value != error.value)
    assert "duration" in error.expected


@pytest.mark.parametrize(
    ("table", "rate", "per"),
    [
        ({"rate": "100/s"}, 100.0, 1.0),
        ({"rate": "6000/m"}, 6000.0, 60.0),
        ({"rate": "10/h"}, 10.0, 3600.0),
        ({"rate": "5/250ms"}, 5.0, 0.25),
        ({"rate": "3/30s"}, 3.0, 30.0),
        ({"rate": 7}, 7.0, 1.0),
        ({"rate": 7, "per": "2m"}, 7.0, 120.0),
        ({"rate": "2.5/s"}, 2.5, 1.0),
    ],
)
def test_rates(table: dict[str, Any], rate: float, per: float) -> None:
    bucket = one({"token_bucket": table})
    assert (bucket.settings.rate, bucket.settings.per) == (rate, per)


@pytest.mark.parametrize("value", ["100", "100/", "/s", "x/s", "0/s", "-1/s", "100/parsec", -5, 0])
def test_bad_rates(value: object) -> None:
    error = config_error({"pipelines": {"p": {"token_bucket": {"rate": value}}}})
    assert error.path == "pipelines.p.token_bucket.rate"
    assert "rate" in error.expected


def test_a_rate_with_its_period_cannot_also_have_per() -> None:
    error = config_error({"pipelines": {"p": {"token_bucket": {"rate": "5/s", "per": 2}}}})
    assert error.path == "pipelines.p.token_bucket.per"


def test_every_kind_and_its_settings() -> None:
    reg = registry(
        {
            "pipelines": {
                "all": {
                    "fallback": {"value": "stale", "on": ["ConnectionError", "TimeoutError"]},
                    "retry": {
                        "attempts": 4,
                        "backoff": {"kind": "linear", "base": "10ms", "step": "20ms"},
                        "retry_on": "ConnectionError",
                        "deadline": "5s",
                        "budget": {"ratio": 0.2, "min_per_second": 1, "window": "30s"},
                    },
                    "circuit_breaker": {
                        "failure_rate": "25%",
                        "minimum_calls": 4,
                        "consecutive_failures": 3,
                        "window": {"calls": 50},
                        "slow_call_duration": "800ms",
                        "slow_call_rate": 0.5,
                        "open_for": ["1s", "10s", "1m"],
                        "half_open_calls": 2,
                        "failure_on": ["OSError"],
                        "ignore": ["resilience.errors.RateLimited"],
                    },
                    "token_bucket": {"rate": "50/s", "burst": 5, "max_wait": "100ms", "key": "k"},
                    "bulkhead": {"max_concurrent": 3, "max_queue": 2, "max_wait": "1s"},
                    "timeout": {"seconds": "3s", "name": "custom"},
                }
            }
        }
    )
    fallback, retry, breaker, bucket, bulkhead, timeout = reg.pipeline("all").policies
    assert isinstance(fallback, Fallback)
    assert fallback.value == "stale"
    assert fallback.call(lambda: (_ for _ in ()).throw(TimeoutError())) == "stale"
    with pytest.raises(ValueError):
        fallback.call(lambda: int("x"))
    assert isinstance(retry.backoff, Linear)
    assert retry.backoff.delay(2, 0) == pytest.approx(0.03)
    assert retry.deadline == 5.0
    assert isinstance(retry.budget, RetryBudget)
    assert (retry.budget.ratio, retry.budget.window) == (0.2, 30.0)
    s = breaker.settings
    assert (s.failure_rate, s.minimum_calls, s.consecutive_failures) == (0.25, 4, 3)
    assert s.window == CountWindow(50)
    assert (s.slow_call_duration, s.slow_call_rate, s.half_open_calls) == (0.8, 0.5, 2)
    assert [s.open_duration(n, 0) for n in (1, 2, 3, 4)] == [1.0, 10.0, 60.0, 60.0]
    assert (bucket.settings.burst, bucket.max_wait, bucket.key) == (5, 0.1, "k")
    assert (bulkhead.max_concurrent, bulkhead.max_queue, bulkhead.max_wait) == (3, 2, 1.0)
    assert timeout.name == "custom"
    assert {p.name for p in (fallback, retry, breaker, bucket, bulkhead)} == {"all"}


def test_breaker_exception_names_classify_outcomes() -> None:
    breaker = one({"circuit_breaker": {"consecutive_failures": 1, "failure_on": "ConnectionError"}})
    with pytest.raises(KeyError):
        breaker.call(lambda: {}["x"])  # not a failure
    assert breaker.state == "closed"
    with pytest.raises(ConnectionError):
        breaker.call(lambda: (_ for _ in ()).throw(ConnectionError()))
    assert breaker.state == "open"


@pytest.mark.parametrize(
    ("table", "path"),
    [
        ({"retry": {"attempts": 0}}, "pipelines.p.retry.attempts"),
        ({"retry": {"attempts": "3"}}, "pipelines.p.retry.attempts"),
        ({"retry": {"attempts": 2.0}}, "pipelines.p.retry.attempts"),
        ({"retry": {"retry_on": ["NoSuchError"]}}, "pipelines.p.retry.retry_on[0]"),
        ({"retry": {"retry_on": "os.path"}}, "pipelines.p.retry.retry_on[0]"),
        ({"retry": {"retry_on": "no.such.module.Error"}}, "pipelines.p.retry.retry_on[0]"),
        ({"retry": {"retry_on": 3}}, "pipelines.p.retry.retry_on"),
        ({"retry": {"backoff": {"kind": "fibonacci"}}}, "pipelines.p.retry.backoff.kind"),
        ({"retry": {"backoff": {"base": 1}}}, "pipelines.p.retry.backoff.kind"),
        ({"retry": {"backoff": {"kind": "constant"}}}, "pipelines.p.retry.backoff.delay"),
        (
            {"retry": {"backoff": {"kind": "exponential", "jitter": "some"}}},
            "pipelines.p.retry.backoff.jitter",
        ),
        (
            {"retry": {"backoff": {"kind": "exponential", "factor": 0.5}}},
            "pipelines.p.retry.backoff.factor",
        ),
        (
            {"retry": {"backoff": {"kind": "exponential", "base": "2s", "max": "1s"}}},
            "pipelines.p.retry.backoff.max",
        ),
        ({"retry": {"budget": {"ratio": 2}}}, "pipelines.p.retry.budget.ratio"),
        ({"circuit_breaker": {"failure_rate": 1.5}}, "pipelines.p.circuit_breaker.failure_rate"),
        ({"circuit_breaker": {"failure_rate": "150%"}}, "pipelines.p.circuit_breaker.failure_rate"),
        ({"circuit_breaker": {"failure_rate": None}}, "pipelines.p.circuit_breaker.failure_rate"),
        ({"circuit_breaker": {"window": {"calls": 0}}}, "pipelines.p.circuit_breaker.window.calls"),
        ({"circuit_breaker": {"window": {}}}, "pipelines.p.circuit_breaker.window.calls"),
        ({"circuit_breaker": {"open_for": []}}, "pipelines.p.circuit_breaker.open_for"),
        ({"circuit_breaker": {"open_for": ["1s", "x"]}}, "pipelines.p.circuit_breaker.open_for[1]"),
        ({"circuit_breaker": {"failure_if": "x"}}, "pipelines.p.circuit_breaker.failure_if"),
        ({"token_bucket": {}}, "pipelines.p.token_bucket.rate"),
        ({"token_bucket": {"rate": 5, "burst": 0.5}}, "pipelines.p.token_bucket.burst"),
        ({"token_bucket": {"rate": 5, "key": " k"}}, "pipelines.p.token_bucket.key"),
        ({"bulkhead": {}}, "pipelines.p.bulkhead.max_concurrent"),
        ({"bulkhead": {"max_concurrent": 2, "max_queue": -1}}, "pipelines.p.bulkhead.max_queue"),
        ({"fallback": {}}, "pipelines.p.fallback.value"),
        ({"fallback": {"value": 1, "handler": "x"}}, "pipelines.p.fallback.handler"),
        ({"timeout": {"seconds": 1e12}}, "pipelines.p.timeout.seconds"),
        ({"timeout": {}}, "pipelines.p.timeout.seconds"),
        ({"retry": []}, "pipelines.p.retry"),
        ({"retry": 3}, "pipelines.p.retry"),
        ({"retry": {"kind": "timeout"}}, "pipelines.p.retry.kind"),
        ({"retry": {"name": ""}}, "pipelines.p.retry.name"),
        ({"retry": {"shared": True}}, "pipelines.p.retry.shared"),
    ],
)
def test_bad_values_name_their_key_path(table: dict[str, Any], path: str) -> None:
    error = config_error({"pipelines": {"p": table}})
    assert error.path == path
    assert str(error).startswith(f"{path}: expected ")


# -- unknown keys ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "path", "hint"),
    [
        ({"pipelnes": {}}, "pipelnes", "pipelines"),
        ({"defaults": {"retyr": {}}}, "defaults.retyr", "retry"),
        ({"defaults": {"retry": {"atempts": 2}}}, "defaults.retry.atempts", "attempts"),
        ({"defaults": {"retry": {"name": "x"}}}, "defaults.retry.name", None),
        ({"pipelines": {"p": {"retry": {"atempts": 2}}}}, "pipelines.p.retry.atempts", "attempts"),
        ({"pipelines": {"p": {"retyr": {}}}}, "pipelines.p.retyr", "retry"),
        (
            {"pipelines": {"p": {"retry": {"backoff": {"kind": "constant", "dealy": 1}}}}},
            "pipelines.p.retry.backoff.dealy",
            "delay",
        ),
        ({"store": {"redis_ur": "x"}}, "store.redis_ur", "redis_url"),
        (
            {"pipelines": {"p": {"policies": ["retry"], "timeout": 1}}},
            "pipelines.p.timeout",
            None,
        ),
        (
            {"pipelines": {"p": {"policies": ["retyr"]}}},
            "pipelines.p.policies[0]",
            "retry",
        ),
    ],
)
def test_unknown_keys_are_errors_with_a_hint(
    data: dict[str, Any], path: str, hint: str | None
) -> None:
    error = config_error(data)
    assert error.path == path
    if hint is None:
        assert error.hint is None or "did you mean" not in error.hint
    else:
        assert error.hint == f"did you mean {hint!r}?"
        assert str(error).endswith(f"did you mean {hint!r}?")


# -- structure -------------------------------------------------------------------------------


def test_without_a_policies_list_the_recommended_order_is_used() -> None:
    pipeline = registry(
        {
            "pipelines": {
                "p": {
                    "timeout": 1,
                    "bulkhead": {"max_concurrent": 1},
                    "retry": {},
                    "fallback": {"value": None},
                    "circuit_breaker": {},
                    "token_bucket": {"rate": 1},
                }
            }
        }
    ).pipeline("p")
    assert [p.kind for p in pipeline.policies] == [
        "fallback",
        "retry",
        "circuit_breaker",
        "token_bucket",
        "bulkhead",
        "timeout",
    ]


def test_a_listed_kind_without_a_table_uses_the_defaults() -> None:
    reg = registry(
        {
            "defaults": {"retry": {"attempts": 7}, "timeout": "3s"},
            "pipelines": {"p": {"policies": ["retry", "timeout"]}},
        }
    )
    retry, timeout = reg.pipeline("p").policies
    assert (retry.attempts, timeout.seconds) == (7, 3.0)


def test_entries_of_the_same_kind_under_their_own_names() -> None:
    reg = registry(
        {
            "pipelines": {
                "orders": {
                    "policies": ["total", "retry", "attempt"],
                    "total": {"kind": "timeout", "seconds": "10s"},
                    "attempt": {"kind": "timeout", "seconds": "1s"},
                }
            }
        }
    )
    total, retry, attempt = reg.pipeline("orders").policies
    assert (total.seconds, attempt.seconds) == (10.0, 1.0)
    assert (total.name, retry.name, attempt.name) == ("orders.total", "orders", "orders.attempt")
    assert [d.entry for d in reg.describe("orders")] == ["total", "retry", "attempt"]


def test_defaults_are_inherited_and_overridden_key_by_key() -> None:
    reg = registry(
        {
            "defaults": {
                "retry": {
                    "attempts": 5,
                    "backoff": {"kind": "exponential", "base": "50ms", "max": "1s"},
                },
                "circuit_breaker": {"minimum_calls": 30, "open_for": "1m"},
            },
            "pipelines": {
                "a": {"retry": {"backoff": {"max": "4s"}}, "circuit_breaker": {}},
                "b": {"retry": {"attempts": 2, "backoff": {"kind": "constant", "delay": 1}}},
            },
        }
    )
    retry_a, breaker_a = reg.pipeline("a").policies
    assert retry_a.attempts == 5
    assert isinstance(retry_a.backoff, Exponential)
    assert retry_a.backoff.max == 4.0  # merged into the default's backoff table
    assert retry_a.backoff.delay(1, 0) <= 0.05  # base from the defaults
    assert (breaker_a.settings.minimum_calls, breaker_a.settings.open_for) == (30, 60.0)
    (retry_b,) = reg.pipeline("b").policies
    assert retry_b.attempts == 2
    assert retry_b.backoff.delay(1, 0) == 1.0  # another kind replaces the table whole


def test_policies_list_errors() -> None:
    assert config_error({"pipelines": {"p": {"policies": "retry"}}}).path == "pipelines.p.policies"
    assert (
        config_error({"pipelines": {"p": {"policies": ["retry", "retry"]}}}).path
        == "pipelines.p.policies"
    )
    error = config_error({"pipelines": {"p": {"policies": ["own"], "own": {"seconds": 1}}}})
    assert error.path == "pipelines.p.own"
    assert "kind" in error.expected


def test_pipeline_names_and_lookup() -> None:
    reg = registry({"pipelines": {"payments": {"timeout": 1}, "search": {"timeout": 1}}})
    assert "payments" in reg
    assert "nope" not in reg
    assert len(reg) == 2
    assert sorted(reg) == ["payments", "search"]
    with pytest.raises(KeyError, match="did you mean 'payments'"):
        reg.pipeline("paymnts")
    assert repr(reg) == "Registry(pipelines=['payments', 'search'])"
    assert config_error({"pipelines": {" x": {}}}).path == "pipelines. x"
    assert config_error({"pipelines": {"x": []}}).path == "pipelines.x"
    assert config_error({"pipelines": []}).path == "pipelines"
    assert config_error({"defaults": 3}).path == "defaults"


def test_the_pipeline_decorates_sync_and_async_functions() -> None:
    reg = registry({"pipelines": {"p": {"retry": {"attempts": 3, "backoff": 0}}}})
    calls = []

    @reg.pipeline("p")
    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError
        return "ok"

    @reg.pipeline("p")
    async def aok() -> str:
        return "aok"

    assert flaky() == "ok"
    assert len(calls) == 3
    assert anyio.run(aok) == "aok"


def test_describe_shows_every_setting_in_force() -> None:
    reg = registry({"pipelines": {"p": {"retry": {"attempts": 2}, "timeout": "250ms"}}})
    retry, timeout = reg.describe("p")
    assert retry.kind == "retry"
    assert retry.name == "p"
    assert dict(retry.settings) == {
        "attempts": 2,
        "backoff": {
            "kind": "exponential",
            "base": 0.1,
            "factor": 2.0,
            "max": 10.0,
            "jitter": "full",
        },
        "retry_on": ("Exception",),
        "deadline": None,
        "budget": None,
    }
    assert retry.show() == (
        "attempts=2 backoff=exponential(base=100ms, factor=2, max=10s, jitter=full) "
        "retry_on=[Exception] deadline=none budget=none"
    )
    assert timeout.show() == "seconds=250ms"
    with pytest.raises(KeyError):
        reg.describe("nope")


# -- the store ---------------------------------------------------------------------------------


def test_shared_policies_need_a_store_section() -> None:
    error = config_error({"pipelines": {"p": {"circuit_breaker": {"shared": True}}}})
    assert error.path == "pipelines.p.circuit_breaker.shared"
    assert "[store]" in error.expected


def test_shared_breakers_share_state_through_the_store() -> None:
    clock = FakeClock()
    reg = registry(
        {
            "store": {},
            "defaults": {
                "circuit_breaker": {"failure_rate": None, "consecutive_failures": 1, "shared": True}
            },
            "pipelines": {
                "a": {"circuit_breaker": {"name": "inventory"}},
                "b": {"circuit_breaker": {"name": "inventory"}},
                "c": {"circuit_breaker": {"name": "inventory", "shared": False}},
            },
        },
        clock=clock,
    )
    with pytest.raises(ZeroDivisionError):
        reg.pipeline("a").call(lambda: 1 / 0)
    with pytest.raises(CircuitOpen):
        reg.pipeline("b").call(lambda: 1)  # the same breaker state
    assert reg.pipeline("c").call(lambda: 1) == 1  # its own


def test_a_redis_url_needs_the_redis_store(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    real = importlib.import_module

    def no_redis(name: str, package: str | None = None) -> Any:
        if name == "resilience.stores.redis":
            raise ImportError("not here")
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", no_redis)
    error = config_error({"store": {"redis_url": "redis://localhost:1/0"}})
    assert error.path == "store.redis_url"
    assert "resiliency[redis]" in error.expected


def test_store_keys() -> None:
    assert config_error({"store": {"prefix": "x"}}).path == "store.prefix"
    assert config_error({"store": {"redis_url": 5}}).path == "store.redis_url"
    assert config_error({"store": []}).path == "store"


# -- the environment -----------------------------------------------------------------------------


def test_environment_overrides() -> None:
    env = {
        "RESILIENCE__PIPELINES__PAYMENTS__RETRY__ATTEMPTS": "5",
        "RESILIENCE__PIPELINES__PAYMENTS__CIRCUIT_BREAKER__FAILURE_RATE": "0.1",
        "RESILIENCE__PIPELINES__PAYMENTS__TIMEOUT__SECONDS": "750ms",  # into a shorthand
        "RESILIENCE__PIPELINES__PAYMENTS__RETRY__BACKOFF__KIND": "constant",
        "RESILIENCE__PIPELINES__PAYMENTS__RETRY__BACKOFF__DELAY": "0",
        "RESILIENCE__DEFAULTS__BULKHEAD__MAX_CONCURRENT": "3",
        "RESILIENCE__PIPELINES__SEARCH_EU__TIMEOUT": "2s",  # matches "search-eu"
        "RESILIENCE__PIPELINES__NEW__POLICIES": '["bulkhead"]',
        "RESILIENCE__PIPELINES__PAYMENTS__CIRCUIT_BREAKER__CONSECUTIVE_FAILURES": "null",
        "RESILIENCE_SINGLE_UNDERSCORE": "ignored",
        "OTHER": "ignored",
    }
    reg = Registry.from_dict(
        {
            "pipelines": {
                "payments": {
                    "retry": {"attempts": 3},
                    "circuit_breaker": {"consecutive_failures": 4},
                    "timeout": "2s",
                },
                "search-eu": {"timeout": "1s"},
            }
        },
        env=env,
    )
    retry, breaker, timeout = reg.pipeline("payments").policies
    assert retry.attempts == 5
    assert retry.backoff.delay(1, 0) == 0
    assert breaker.settings.failure_rate == 0.1
    assert breaker.settings.consecutive_failures is None
    assert timeout.seconds == 0.75
    assert reg.pipeline("search-eu").policies[0].seconds == 2.0
    (bulkhead,) = reg.pipeline("new").policies
    assert bulkhead.max_concurrent == 3


def test_environment_overrides_default_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESILIENCE__PIPELINES__P__RETRY__ATTEMPTS", "9")
    data = {"pipelines": {"p": {"retry": {}}}}
    assert Registry.from_dict(data).pipeline("p").policies[0].attempts == 9
    assert Registry.from_dict(data, env={}).pipeline("p").policies[0].attempts == 3
    assert data == {"pipelines": {"p": {"retry": {}}}}  # the caller's dict is not changed


def test_environment_errors_say_which_variable() -> None:
    env = {"RESILIENCE__PIPELINES__P__RETRY__ATTEMPTS": "three"}
    error = config_error({"pipelines": {"p": {"retry": {}}}}, env=env)
    assert error.path == "pipelines.p.retry.attempts"
    assert error.value == "three"
    assert "RESILIENCE__PIPELINES__P__RETRY__ATTEMPTS" in str(error)
    error = config_error({}, env={"RESILIENCE__PIPELINES__P__RETRY__ATEMPTS": "3"})
    assert error.hint is not None
    assert "did you mean 'attempts'?" in error.hint
    assert "RESILIENCE__PIPELINES__P__RETRY__ATEMPTS" in error.hint
    assert config_error({}, env={"RESILIENCE__PIPELINES____X": "1"}).path == (
        "RESILIENCE__PIPELINES____X"
    )
    error = config_error(
        {"pipelines": {"p": {"retry": {"attempts": 2}}}},
        env={"RESILIENCE__PIPELINES__P__RETRY__ATTEMPTS__X": "1"},
    )
    assert error.path == "pipelines.p.retry.attempts"
