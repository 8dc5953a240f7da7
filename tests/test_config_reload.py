"""Registry.reload: new thresholds reach live policies (and functions decorated before
the reload) in place, without losing state; what cannot change in place is refused
before anything changes."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from holders import Holders

from resilience import (
    BulkheadFull,
    CircuitOpen,
    ConfigError,
    Constant,
    CountWindow,
    RateLimited,
    Registry,
    TimeoutExceeded,
)
from resilience.config import Change
from resilience.testing import FakeClock


def fail() -> None:
    raise ConnectionError("down")


def config(**pipelines: dict[str, Any]) -> dict[str, Any]:
    return {"pipelines": pipelines}


def test_an_open_breaker_stays_open_with_new_thresholds(clock: FakeClock) -> None:
    reg = Registry.from_dict(
        config(p={"circuit_breaker": {"failure_rate": 0.5, "minimum_calls": 2, "open_for": 10}}),
        env={},
        clock=clock,
    )
    (breaker,) = reg.pipeline("p").policies
    for _ in range(2):
        with pytest.raises(ConnectionError):
            breaker.call(fail)
    assert breaker.state == "open"
    changes = reg.reload(
        config(p={"circuit_breaker": {"failure_rate": 0.9, "minimum_calls": 5, "open_for": 60}})
    )
    assert reg.pipeline("p") is not None
    assert reg.pipeline("p").policies[0] is breaker  # the same live object
    assert breaker.state == "open"
    assert breaker.settings.failure_rate == 0.9
    assert [str(c) for c in changes] == [
        "pipelines.p.circuit_breaker.failure_rate: 0.5 -> 0.9",
        "pipelines.p.circuit_breaker.minimum_calls: 2 -> 5",
        "pipelines.p.circuit_breaker.open_for: 10s -> 1m",
    ]
    clock.advance(10)  # the current open period keeps its length
    breaker.call(lambda: 1)
    assert breaker.state == "closed"


def test_window_counts_are_kept_when_the_window_keeps_its_shape(clock: FakeClock) -> None:
    data = {"circuit_breaker": {"window": {"calls": 20}, "minimum_calls": 10}}
    reg = Registry.from_dict(config(p=data), env={}, clock=clock)
    (breaker,) = reg.pipeline("p").policies
    for _ in range(3):
        breaker.call(lambda: 1)
    with pytest.raises(ConnectionError):
        breaker.call(fail)
    assert breaker.metrics().calls == 4
    reg.reload(config(p={"circuit_breaker": {"window": {"calls": 20}, "minimum_calls": 4}}))
    assert (breaker.metrics().calls, breaker.metrics().failures) == (4, 1)
    reg.reload(config(p={"circuit_breaker": {"window": {"calls": 30}, "minimum_calls": 4}}))
    assert breaker.metrics().calls == 0  # a new shape starts a new window
    assert breaker.settings.window == CountWindow(30)


def test_retry_changes_reach_functions_decorated_before(clock: FakeClock) -> None:
    reg = Registry.from_dict(
        config(p={"retry": {"attempts": 2, "backoff": "1s"}}), env={}, clock=clock
    )
    calls: list[float] = []

    @reg.pipeline("p")
    def flaky() -> None:
        calls.append(clock.monotonic())
        raise ConnectionError

    @reg.pipeline("p")
    async def aflaky() -> None:
        calls.append(clock.monotonic())
        raise ConnectionError

    with pytest.raises(ConnectionError):
        flaky()
    assert len(calls) == 2
    reg.reload(config(p={"retry": {"attempts": 4, "backoff": "2s"}}))
    calls.clear()
    with pytest.raises(ConnectionError):
        flaky()
    assert len(calls) == 4
    assert clock.sleeps[-3:] == [2.0, 2.0, 2.0]
    calls.clear()
    with pytest.raises(ConnectionError):
        anyio.run(aflaky)
    assert len(calls) == 4


def test_timeout_changes_reach_functions_decorated_before() -> None:
    reg = Registry.from_dict(config(p={"timeout": "50ms"}), env={})
    gate = threading.Event()

    @reg.pipeline("p")
    def slow() -> str:
        gate.wait(0.3)
        return "done"

    with pytest.raises(TimeoutExceeded):
        slow()
    reg.reload(config(p={"timeout": "5s"}))
    assert reg.pipeline("p").policies[0].seconds == 5.0
    assert slow() == "done"  # waited 0.3 s: the new limit is in force
    gate.set()


@pytest.mark.anyio
async def test_async_timeout_changes_reach_functions_decorated_before() -> None:
    reg = Registry.from_dict(config(p={"timeout": "20ms"}), env={})

    @reg.pipeline("p")
    async def slow() -> str:
        await anyio.sleep(0.1)
        return "done"

    with pytest.raises(TimeoutExceeded):
        await slow()
    reg.reload(config(p={"timeout": "5s"}))
    assert await slow() == "done"
    reg.reload(config(p={"timeout": "20ms"}))
    with pytest.raises(TimeoutExceeded):
        await reg.pipeline("p").acall(slow.__wrapped__)  # type: ignore[attr-defined]


def test_token_bucket_keeps_its_tokens_and_takes_a_new_max_wait(clock: FakeClock) -> None:
    reg = Registry.from_dict(
        config(p={"token_bucket": {"rate": 1, "burst": 3}}), env={}, clock=clock
    )
    (bucket,) = reg.pipeline("p").policies

    @reg.pipeline("p")
    def call() -> int:
        return 1

    call()
    call()
    assert bucket.available == pytest.approx(1)
    reg.reload(config(p={"token_bucket": {"rate": 10, "burst": 5}}))
    assert bucket.available == pytest.approx(1)  # the tokens free are still free
    call()
    with pytest.raises(RateLimited):
        call()  # nothing left, and no waiting allowed
    reg.reload(config(p={"token_bucket": {"rate": 10, "burst": 5, "max_wait": "1s"}}))
    assert bucket.max_wait == 1.0
    before = len(clock.sleeps)
    assert call() == 1  # now it waits for the next token (0.1 s)
    assert clock.sleeps[before:] == [pytest.approx(0.1)]


def test_bulkhead_resizes_with_calls_running() -> None:
    reg = Registry.from_dict(config(p={"bulkhead": {"max_concurrent": 3}}), env={})
    (bulkhead,) = reg.pipeline("p").policies
    holders = Holders(bulkhead, 3)
    assert bulkhead.in_flight == 3
    reg.reload(config(p={"bulkhead": {"max_concurrent": 1}}))
    assert (bulkhead.max_concurrent, bulkhead.in_flight, bulkhead.queued) == (1, 3, 0)
    with pytest.raises(BulkheadFull):
        bulkhead.call(lambda: None)
    holders.finish(0)
    holders.finish(1)
    assert bulkhead.in_flight == 1
    with pytest.raises(BulkheadFull):
        bulkhead.call(lambda: None)  # one running, one slot: full
    holders.finish(2)
    assert bulkhead.in_flight == 0
    assert bulkhead.call(lambda: "in") == "in"
    reg.reload(config(p={"bulkhead": {"max_concurrent": 2, "max_queue": 1}}))
    assert (bulkhead.max_concurrent, bulkhead.max_queue) == (2, 1)
    assert bulkhead.call(lambda: "in") == "in"
    assert bulkhead.in_flight == 0


def test_bulkhead_growth_lets_queued_calls_in() -> None:
    reg = Registry.from_dict(config(p={"bulkhead": {"max_concurrent": 1, "max_queue": 2}}), env={})
    (bulkhead,) = reg.pipeline("p").policies
    release = threading.Event()
    running = threading.Event()
    results: list[str] = []

    def first() -> None:
        running.set()
        release.wait(5)

    holder = threading.Thread(target=bulkhead.call, args=(first,))
    holder.start()
    running.wait(5)
    waiters = [
        threading.Thread(target=lambda: results.append(bulkhead.call(lambda: "ran")))
        for _ in range(2)
    ]
    for thread in waiters:
        thread.start()
    deadline = time.monotonic() + 5
    while bulkhead.queued < 2 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert bulkhead.queued == 2
    reg.reload(config(p={"bulkhead": {"max_concurrent": 3, "max_queue": 2}}))
    for thread in waiters:
        thread.join(5)
    assert results == ["ran", "ran"]  # let in by the new slots, the first still running
    release.set()
    holder.join(5)
    assert (bulkhead.in_flight, bulkhead.queued) == (0, 0)


def test_fallback_value_changes() -> None:
    reg = Registry.from_dict(config(p={"fallback": {"value": "old"}}), env={})

    @reg.pipeline("p")
    def broken() -> str:
        raise ConnectionError

    assert broken() == "old"
    reg.reload(config(p={"fallback": {"value": "new", "on": "KeyError"}}))
    with pytest.raises(ConnectionError):
        broken()  # no longer one of `on`
    reg.reload(config(p={"fallback": {"value": "new"}}))
    assert broken() == "new"


def test_retry_budget_keeps_its_counts_when_its_window_is_unchanged() -> None:
    reg = Registry.from_dict(
        config(p={"retry": {"budget": {"ratio": 0.1, "window": "10s"}}}), env={}
    )
    (retry,) = reg.pipeline("p").policies
    budget = retry.budget
    reg.reload(config(p={"retry": {"budget": {"ratio": 0.5, "window": "10s"}}}))
    assert retry.budget is budget
    assert budget.ratio == 0.5
    reg.reload(config(p={"retry": {"budget": {"ratio": 0.5, "window": "20s"}}}))
    assert retry.budget is not budget
    assert retry.budget.window == 20.0


def test_added_and_removed_pipelines_and_no_changes() -> None:
    reg = Registry.from_dict(config(a={"timeout": 1}, b={"timeout": 1}), env={})
    b = reg.pipeline("b")
    changes = reg.reload(config(a={"timeout": 1}, c={"retry": {}, "timeout": 2}))
    assert changes == [
        Change("pipelines.c", None, ["retry", "timeout"], "added"),
        Change("pipelines.b", ["timeout"], None, "removed"),
    ]
    assert [str(c) for c in changes] == [
        "pipelines.c: added (retry, timeout)",
        "pipelines.b: removed",
    ]
    assert sorted(reg) == ["a", "c"]
    assert b.call(lambda: "still works") == "still works"
    assert reg.reload(config(a={"timeout": 1}, c={"retry": {}, "timeout": 2})) == []


@pytest.mark.parametrize(
    "new",
    [
        config(p={"retry": {}, "timeout": 1, "bulkhead": {"max_concurrent": 2}}),
        config(p={"timeout": 1, "retry": {}, "policies": ["timeout", "retry"]}),
        config(p={"retry": {"name": "other"}, "timeout": 1}),
        config(p={"retry": {}}),
    ],
)
def test_changing_a_pipelines_shape_is_refused_and_changes_nothing(new: dict[str, Any]) -> None:
    reg = Registry.from_dict(config(p={"retry": {}, "timeout": 1}, q={"timeout": 1}), env={})
    before = reg.pipeline("q").policies[0]
    new["pipelines"]["q"] = {"timeout": 9}  # a valid change elsewhere: not applied either
    with pytest.raises(ConfigError) as info:
        reg.reload(new)
    assert info.value.path == "pipelines.p"
    assert "needs a new registry" in info.value.expected
    assert before.seconds == 1.0
    assert reg.describe("q")[0].settings["seconds"] == 1.0


def test_shared_key_and_store_changes_are_refused() -> None:
    data = {"store": {}, "pipelines": {"p": {"token_bucket": {"rate": 1, "shared": True}}}}
    reg = Registry.from_dict(data, env={})
    with pytest.raises(ConfigError, match="needs a new registry"):
        reg.reload({"store": {}, "pipelines": {"p": {"token_bucket": {"rate": 1}}}})
    with pytest.raises(ConfigError, match="needs a new registry"):
        reg.reload(
            {
                "store": {},
                "pipelines": {"p": {"token_bucket": {"rate": 1, "shared": True, "key": "k"}}},
            }
        )
    with pytest.raises(ConfigError) as info:
        reg.reload({"pipelines": {"p": {"token_bucket": {"rate": 1}}}})
    assert info.value.path == "store"


def test_an_invalid_reload_changes_nothing(clock: FakeClock) -> None:
    reg = Registry.from_dict(
        config(p={"retry": {"attempts": 2}, "timeout": 1}), env={}, clock=clock
    )
    retry, timeout = reg.pipeline("p").policies
    with pytest.raises(ConfigError) as info:
        reg.reload(config(p={"retry": {"attempts": 5}, "timeout": "soon"}))
    assert info.value.path == "pipelines.p.timeout"
    assert (retry.attempts, timeout.seconds) == (2, 1.0)
    with pytest.raises(ConfigError):  # fails only when the policy is built
        reg.reload(config(p={"retry": {"attempts": 5}, "timeout": 1e12}))
    assert retry.attempts == 2


def test_reload_rereads_the_file_and_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "resilience.toml"
    path.write_text('[pipelines.p]\nretry = { attempts = 2 }\ntimeout = "1s"\n')
    env: dict[str, str] = {}
    reg = Registry.from_file(path, env=env)
    retry, timeout = reg.pipeline("p").policies
    path.write_text('[pipelines.p]\nretry = { attempts = 4 }\ntimeout = "1s"\n')
    env["RESILIENCE__PIPELINES__P__TIMEOUT"] = "3s"
    changes = reg.reload()
    assert [str(c) for c in changes] == [
        "pipelines.p.retry.attempts: 2 -> 4",
        "pipelines.p.timeout.seconds: 1s -> 3s",
    ]
    assert (retry.attempts, timeout.seconds) == (4, 3.0)
    other = tmp_path / "other.toml"
    other.write_text('[pipelines.p]\nretry = { attempts = 1 }\ntimeout = "3s"\n')
    reg.reload(other)
    assert reg.source == other
    assert retry.attempts == 1


def test_reload_logs_what_changed(caplog: pytest.LogCaptureFixture) -> None:
    reg = Registry.from_dict(config(p={"retry": {"attempts": 2}}), env={})
    with caplog.at_level("INFO", logger="resilience"):
        reg.reload(config(p={"retry": {"attempts": 3}}))
    assert "resilience config reloaded: pipelines.p.retry.attempts: 2 -> 3" in caplog.text


def test_reloading_under_load_loses_no_call() -> None:
    reg = Registry.from_dict(
        config(
            p={
                "retry": {"attempts": 2, "backoff": 0},
                "circuit_breaker": {"minimum_calls": 10**6},
                "token_bucket": {"rate": 10**9},
                "bulkhead": {"max_concurrent": 4, "max_queue": 100},
            }
        ),
        env={},
    )
    pipeline = reg.pipeline("p")
    stop = threading.Event()
    done: list[int] = []
    errors: list[BaseException] = []

    def work() -> None:
        count = 0
        while not stop.is_set():
            try:
                pipeline.call(lambda: None)
                count += 1
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)
                return
        done.append(count)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for i in range(50):
        reg.reload(
            config(
                p={
                    "retry": {"attempts": 2 + i % 3, "backoff": 0},
                    "circuit_breaker": {"minimum_calls": 10**6 + i},
                    "token_bucket": {"rate": 10**9 + i},
                    "bulkhead": {"max_concurrent": 1 + i % 4, "max_queue": 100},
                }
            )
        )
    stop.set()
    for thread in threads:
        thread.join(10)
    assert errors == []
    assert len(done) == 4
    bulkhead = pipeline.policies[3]
    assert (bulkhead.in_flight, bulkhead.queued) == (0, 0)


def test_breaker_reload_keeps_a_closed_breaker_counting(clock: FakeClock) -> None:
    reg = Registry.from_dict(
        config(p={"circuit_breaker": {"minimum_calls": 4, "failure_rate": 0.9}}),
        env={},
        clock=clock,
    )
    (breaker,) = reg.pipeline("p").policies
    for _ in range(2):
        with pytest.raises(ConnectionError):
            breaker.call(fail)
    breaker.call(lambda: 1)
    breaker.call(lambda: 1)
    assert breaker.state == "closed"  # 2 of 4 < 0.9
    reg.reload(config(p={"circuit_breaker": {"minimum_calls": 4, "failure_rate": 0.5}}))
    with pytest.raises(ConnectionError):
        breaker.call(fail)  # 3 of 5 >= 0.5, with the counts from before the reload
    assert breaker.state == "open"
    with pytest.raises(CircuitOpen):
        breaker.call(lambda: 1)


def test_slow_call_threshold_can_be_turned_on(clock: FakeClock) -> None:
    reg = Registry.from_dict(
        config(p={"circuit_breaker": {"minimum_calls": 1, "failure_rate": 1.0}}),
        env={},
        clock=clock,
    )
    (breaker,) = reg.pipeline("p").policies

    def slow() -> None:
        clock.advance(2)

    breaker.call(slow)
    assert breaker.metrics().slow_calls == 0
    reg.reload(
        config(
            p={
                "circuit_breaker": {
                    "minimum_calls": 1,
                    "failure_rate": 1.0,
                    "slow_call_duration": "1s",
                    "slow_call_rate": 0.5,
                }
            }
        )
    )
    breaker.call(slow)
    assert breaker.state == "open"  # the slow call counted


def test_backoff_object_is_replaced() -> None:
    reg = Registry.from_dict(config(p={"retry": {"backoff": "1s"}}), env={})
    (retry,) = reg.pipeline("p").policies
    assert isinstance(retry.backoff, Constant)
    reg.reload(config(p={"retry": {"backoff": {"kind": "exponential"}}}))
    assert type(retry.backoff).__name__ == "Exponential"


def test_reload_reaches_the_per_host_copies_of_http_transports() -> None:
    import http.server

    import httpx

    from resilience.http.httpx import ResilientTransport

    class Ok(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        reg = Registry.from_dict(
            config(
                api={
                    "circuit_breaker": {"consecutive_failures": 5},
                    "token_bucket": {"rate": 100, "burst": 100},
                    "bulkhead": {"max_concurrent": 4},
                }
            ),
            env={},
        )
        template_breaker, template_bucket, template_bulkhead = reg.pipeline("api").policies
        transport = ResilientTransport(reg.pipeline("api"))  # per host
        with httpx.Client(transport=transport) as client:
            assert client.get(f"{base}/").status_code == 200
            breaker = transport.policy_for(template_breaker, base)
            bucket = transport.policy_for(template_bucket, base)
            assert breaker is not template_breaker
            reg.reload(
                config(
                    api={
                        "circuit_breaker": {"consecutive_failures": 2},
                        "token_bucket": {"rate": 10, "burst": 10},
                        "bulkhead": {"max_concurrent": 1},
                    }
                )
            )
            # The copy serving this host changed in place...
            assert breaker.settings.consecutive_failures == 2
            assert (bucket.settings.rate, bucket.settings.burst) == (10, 10)
            assert transport.policy_for(template_bulkhead, base).max_concurrent == 1
            # ...and a host seen after the reload gets a copy with the new settings.
            other = transport.policy_for(template_breaker, "http://other.example")
            assert other.settings.consecutive_failures == 2
            assert client.get(f"{base}/").status_code == 200
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
