"""The HTTP integration's parts that need no server: Retry-After, origins, settings,
the call context the policies consult, and the optional-extra imports."""

from __future__ import annotations

import contextlib
import email.utils
import importlib
import pickle
import re
import subprocess
import sys
import time
from typing import Any

import pytest

from resilience import (
    AdaptiveConcurrency,
    AdaptiveThrottle,
    Bulkhead,
    CircuitBreaker,
    CircuitOpen,
    Constant,
    Event,
    Hedge,
    Pipeline,
    RateLimited,
    Registry,
    Retry,
    Timeout,
    TokenBucket,
    listen,
)
from resilience._core.call import CURRENT_CALL, CallContext
from resilience.http import IDEMPOTENT_METHODS, RETRY_STATUSES
from resilience.http._exchange import origin, origin_of, parse_retry_after
from resilience.http.aiohttp import ResilienceMiddleware
from resilience.http.httpx import AsyncResilientTransport, ResilientTransport
from resilience.testing import FakeClock

# -- Retry-After ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("120", 120.0), (" 3 ", 3.0), ("0", 0.0), ("1.5", 1.5), ("9999999999", 9999999999.0)],
)
def test_retry_after_seconds(value: str, seconds: float) -> None:
    assert parse_retry_after(value) == seconds


@pytest.mark.parametrize(
    "value", [None, "", "-1", "soon", "1e3", "\uff11\uff12", "Thu, 99 Foo 2024"]
)
def test_unreadable_retry_after_is_no_hint(value: str | None) -> None:
    assert parse_retry_after(value) is None


def test_retry_after_date_counts_from_the_responses_date() -> None:
    date = "Wed, 21 Oct 2015 07:28:00 GMT"
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", date) == 30.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", date) == 0.0  # past: no wait


def test_retry_after_date_without_a_date_counts_from_this_machines_clock() -> None:
    later = email.utils.formatdate(time.time() + 100, usegmt=True)
    hint = parse_retry_after(later)
    assert hint is not None
    assert 95 <= hint <= 100
    hint = parse_retry_after(later, "not a date")  # an unreadable Date is no Date
    assert hint is not None
    assert 95 <= hint <= 100


# -- origins --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://API.Example.com/x?y=1", "https://api.example.com:443"),
        ("http://example.com", "http://example.com:80"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
        ("http://[::1]:8080/", "http://[::1]:8080"),
        ("HTTP://user:pw@example.com:81", "http://example.com:81"),
        ("https://Bücher.example/", "https://xn--bcher-kva.example:443"),  # as sent
    ],
)
def test_origin_of_a_url(url: str, expected: str) -> None:
    assert origin_of(url) == expected


def test_origin_of_a_relative_url_is_refused() -> None:
    with pytest.raises(ValueError, match="absolute URL"):
        origin_of("/path")


def test_origin_spells_out_default_ports_and_brackets_ipv6() -> None:
    assert origin("https", "a.example", None) == "https://a.example:443"
    assert origin("http", "::1", None) == "http://[::1]:80"
    assert origin("unix", "sock", None) == "unix://sock"


# -- settings -------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [ResilientTransport, AsyncResilientTransport, ResilienceMiddleware])
def test_defaults(cls: Any) -> None:
    protection = cls(Retry())
    assert protection.retry_statuses == RETRY_STATUSES == {429, 502, 503, 504}
    assert protection.failure_statuses == RETRY_STATUSES
    assert protection.retry_methods == IDEMPOTENT_METHODS
    assert protection.per_host is True


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"retry_statuses": "503"}, TypeError, "retry_statuses must be a collection"),
        ({"retry_statuses": {503, True}}, TypeError, "retry_statuses must hold int"),
        ({"failure_statuses": {99}}, ValueError, "failure_statuses must hold statuses from"),
        ({"failure_statuses": [600]}, ValueError, "got 600"),
        ({"retry_methods": "GET"}, TypeError, "retry_methods must be a collection"),
        ({"retry_methods": {"GET", 1}}, TypeError, "retry_methods must hold method names"),
        ({"per_host": "yes"}, TypeError, "per_host must be True or False"),
        ({"max_hosts": 0}, ValueError, "max_hosts"),
    ],
)
@pytest.mark.parametrize("cls", [ResilientTransport, ResilienceMiddleware])
def test_bad_settings_are_refused_by_name(
    cls: Any, kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        cls(Retry(), **kwargs)


def test_the_pipeline_and_the_transport_are_checked() -> None:
    with pytest.raises(TypeError, match="pipeline must be a policy"):
        ResilientTransport(object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"transport must be a httpx.BaseTransport"):
        ResilientTransport(Retry(), object())
    with pytest.raises(TypeError, match=r"transport must be a httpx.AsyncBaseTransport"):
        AsyncResilientTransport(Retry(), ResilientTransport(Retry()))


def test_methods_are_upper_cased() -> None:
    assert ResilientTransport(Retry(), retry_methods=["get", "Post"]).retry_methods == {
        "GET",
        "POST",
    }


def test_per_host_copies_only_stateful_policies() -> None:
    retry, breaker, bucket = Retry(), CircuitBreaker("api"), TokenBucket(10, name="lim")
    bulkhead, timeout, throttle = Bulkhead(2), Timeout(1), AdaptiveThrottle()
    adaptive, hedge = AdaptiveConcurrency(), Hedge(0.1)
    transport = ResilientTransport(
        Pipeline(retry, hedge, Pipeline(breaker, bucket), throttle, bulkhead, adaptive, timeout)
    )
    url = "https://a.example/x"
    for shared in (retry, timeout, hedge):
        assert transport.policy_for(shared, url) is shared
    for template in (breaker, bucket, bulkhead, throttle, adaptive):
        copy = transport.policy_for(template, url)
        assert type(copy) is type(template)
        assert copy is not template
        assert copy is transport.policy_for(template, "https://A.example:443/other")
        assert copy is not transport.policy_for(template, "http://a.example")
    assert transport.policy_for(breaker, url).key == "api@https://a.example:443"
    assert transport.policy_for(bucket, url).key == "lim@https://a.example:443"
    assert transport.policy_for(breaker, url).name == "api"  # names stay bounded
    assert transport.hosts() == ["http://a.example:80", "https://a.example:443"]
    with pytest.raises(ValueError, match="not a policy of this client's pipeline"):
        transport.policy_for(CircuitBreaker(), url)


def test_max_hosts_bounds_the_hosts_kept() -> None:
    breaker = CircuitBreaker()
    transport = ResilientTransport(breaker, max_hosts=2)
    for host in ("a", "b", "c"):
        transport.policy_for(breaker, f"http://{host}.example")
    assert transport.hosts() == ["http://b.example:80", "http://c.example:80"]


def test_without_per_host_the_pipeline_is_used_as_it_is() -> None:
    breaker = CircuitBreaker()
    transport = ResilientTransport(Pipeline(Retry(), breaker), per_host=False)
    assert transport.policy_for(breaker, "http://a.example") is breaker
    assert transport.hosts() == []


# -- the call context that policies consult ------------------------------------------------


class _Verdicts(CallContext):
    __slots__ = ("failed", "retry")

    def __init__(self, failed: bool | None, retry: bool | None) -> None:
        super().__init__("https://a.example:443", "GET")
        self.failed = failed
        self.retry = retry

    def failure(self, exc: BaseException) -> bool | None:
        return self.failed

    def retryable(self, outcome: object) -> bool | None:
        return self.retry


def _within(context: CallContext | None, fn: Any) -> Any:
    token = CURRENT_CALL.set(context)
    try:
        return fn()
    finally:
        CURRENT_CALL.reset(token)


class _Flaky:
    def __init__(self, failures: int, exc: type[Exception] = ValueError) -> None:
        self.calls = 0
        self.failures = failures
        self.exc = exc

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.exc("flaky")
        return "ok"


@pytest.mark.parametrize(
    ("retry", "retry_on", "calls"),
    [
        (None, ValueError, 2),  # the Retry's own rules: retried
        (None, KeyError, 1),  # ...not retried
        (False, ValueError, 1),  # the integration forbids it
        (True, KeyError, 2),  # the integration allows it whatever retry_on says
    ],
)
def test_retry_asks_the_call_context(
    clock: FakeClock, retry: bool | None, retry_on: type[Exception], calls: int
) -> None:
    flaky = _Flaky(1)
    policy = Retry(3, backoff=Constant(0), retry_on=retry_on, clock=clock)
    with contextlib.suppress(ValueError):
        _within(_Verdicts(None, retry), lambda: policy.call(flaky))
    assert flaky.calls == calls


def test_retry_asks_the_call_context_about_results_too(clock: FakeClock) -> None:
    policy = Retry(3, backoff=Constant(0), retry_if_result=lambda r: r == "again", clock=clock)
    calls = []

    def again() -> str:
        calls.append(1)
        return "again"

    assert _within(_Verdicts(None, False), lambda: policy.call(again)) == "again"
    assert len(calls) == 1
    assert _within(_Verdicts(None, None), lambda: policy.call(again)) == "again"
    assert len(calls) == 4


@pytest.mark.parametrize(("failed", "failures"), [(None, 1), (True, 1), (False, 0)])
def test_the_breaker_asks_the_call_context(
    clock: FakeClock, failed: bool | None, failures: int
) -> None:
    breaker = CircuitBreaker(clock=clock)
    with pytest.raises(ValueError, match="flaky"):
        _within(_Verdicts(failed, None), lambda: breaker.call(_Flaky(1)))
    assert (breaker.metrics().calls, breaker.metrics().failures) == (1, failures)


def test_the_breaker_never_counts_a_refusal_whatever_the_context_says(clock: FakeClock) -> None:
    breaker = CircuitBreaker(clock=clock)
    with pytest.raises(RateLimited):
        _within(_Verdicts(True, None), lambda: breaker.call(_Flaky(1, _refusal)))
    assert breaker.metrics().calls == 0


def _refusal(message: str) -> RateLimited:
    return RateLimited("inner", 1.0)


def test_events_in_a_call_context_carry_its_host_method_and_status(clock: FakeClock) -> None:
    events: list[Event] = []
    stop = listen(events.append)
    context = _Verdicts(None, None)
    context.status = 503
    try:
        breaker = CircuitBreaker("api", clock=clock)
        _within(context, lambda: breaker.call(lambda: "ok"))
        breaker.call(lambda: "ok")
    finally:
        stop()
    assert [(e.host, e.method, e.status) for e in events] == [
        ("https://a.example:443", "GET", 503),
        (None, None, None),
    ]


# -- errors name the host ---------------------------------------------------------------------


def test_a_resilience_error_names_its_host_when_it_has_one() -> None:
    exc = CircuitOpen("api", 3.0)
    assert exc.host is None
    assert "host" not in str(exc)
    exc.host = "https://a.example:443"
    assert (
        str(exc)
        == "circuit breaker api is open (trial allowed in 3.000s) (host https://a.example:443)"
    )
    restored = pickle.loads(pickle.dumps(exc))
    assert (restored.host, str(restored)) == (exc.host, str(exc))


# -- optional extras -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "library", "extra"),
    [
        ("resilience.http.httpx", "httpx", "resiliency[httpx]"),
        ("resilience.http.httpx2", "httpx2", "resiliency[httpx2]"),
        ("resilience.http.aiohttp", "aiohttp", "resiliency[aiohttp]"),
    ],
)
def test_an_integration_without_its_library_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, module: str, library: str, extra: str
) -> None:
    monkeypatch.setitem(sys.modules, library, None)  # None: "import fails"
    monkeypatch.delitem(sys.modules, module, raising=False)
    with pytest.raises(ImportError, match=re.escape(f"pip install '{extra}'")):
        importlib.import_module(module)


def test_resilience_http_itself_needs_no_client_library() -> None:
    code = (
        "import sys\n"
        "for name in ('httpx', 'httpx2', 'aiohttp'): sys.modules[name] = None\n"
        "import resilience.http\n"
        "print(sorted(resilience.http.__all__))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "ResponseError" in done.stdout


# -- a config reload reaches every host --------------------------------------------------


def test_a_reload_reaches_the_hosts_copies_and_later_hosts(clock: FakeClock) -> None:
    def config(minimum_calls: int, burst: int) -> dict[str, Any]:
        return {
            "pipelines": {
                "api": {
                    "circuit_breaker": {"minimum_calls": minimum_calls},
                    "token_bucket": {"rate": "100/s", "burst": burst},
                }
            }
        }

    registry = Registry.from_dict(config(10, 20), env={}, clock=clock)
    breaker, bucket = registry.pipeline("api").policies
    transport = ResilientTransport(registry.pipeline("api"))
    before = transport.policy_for(breaker, "https://a.example")
    before.open()  # state a reload must keep
    registry.reload(config(3, 5))
    assert before.settings.minimum_calls == 3
    assert before.state == "forced_open"
    assert transport.policy_for(bucket, "https://a.example").settings.burst == 5
    later = transport.policy_for(breaker, "https://b.example")
    assert (later.settings.minimum_calls, later.state) == (3, "closed")
    assert transport.policy_for(bucket, "https://b.example").settings.burst == 5
    assert breaker.clone().settings.minimum_calls == 3  # clones take what is in force
