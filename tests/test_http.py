"""The HTTP integrations against real servers on 127.0.0.1: every client library and
calling style (see ``http_clients.py``), through the same tests."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from http_clients import KINDS, MAIN_KINDS, Harness, kind_id
from servers import RawServer, Upstream, running

from resilience import (
    AbandonedFinished,
    CircuitBreaker,
    CircuitOpen,
    Constant,
    Event,
    Fallback,
    Hedge,
    Pipeline,
    RateLimited,
    Retry,
    StateChange,
    Timeout,
    TimeoutExceeded,
    TokenBucket,
    listen,
)
from resilience.http import ResponseError, idempotent
from resilience.testing import FakeClock

_ids = itertools.count()


def fresh(path: str) -> str:
    """``path`` with a query id of its own, so server-side counts start at zero."""
    return f"{path}{'&' if '?' in path else '?'}id=t{next(_ids)}"


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    with running(Upstream()) as server:
        yield server


@pytest.fixture(scope="module")
def raw() -> Iterator[RawServer]:
    with running(RawServer()) as server:
        yield server


@pytest.fixture(params=KINDS, ids=kind_id)
def harness(request: pytest.FixtureRequest) -> Harness:
    return Harness(request.param)


@pytest.fixture
def anyio_backend(harness: Harness) -> str:
    return harness.backend


def retry(clock: FakeClock, attempts: int = 3, **kw: Any) -> Retry:
    return Retry(attempts, backoff=Constant(0.25), clock=clock, **kw)


def main_kinds(test: Any) -> Any:
    """Run ``test`` with one kind per library and style (not with every backend)."""
    return pytest.mark.parametrize(
        "harness", [Harness(kind) for kind in MAIN_KINDS], ids=kind_id_of
    )(test)


def kind_id_of(harness: Harness) -> str:
    return f"{harness.library}-{harness.mode}"


# -- retries and statuses ---------------------------------------------------------------


@pytest.mark.anyio
async def test_503_twice_then_200_is_retried(
    harness: Harness, upstream: Upstream, clock: FakeClock
) -> None:
    path = fresh("/status/503?times=2")
    async with harness.client(retry(clock)) as client:
        reply = await client.get(upstream.url + path)
    assert (reply.status, reply.text) == (200, "ok")
    assert upstream.hits[path.rsplit("=", 1)[1]] == 3
    assert clock.sleeps == [0.25, 0.25]


@pytest.mark.anyio
async def test_when_retries_run_out_the_last_response_is_returned(
    harness: Harness, upstream: Upstream, clock: FakeClock
) -> None:
    path = fresh("/status/502")
    async with harness.client(retry(clock)) as client:
        reply = await client.get(upstream.url + path)
        assert client.connections_in_use() == 0  # the two discarded 502s were closed
    assert (reply.status, reply.text) == (502, "status 502")  # unread until now
    assert upstream.hits[path.rsplit("=", 1)[1]] == 3


@pytest.mark.anyio
async def test_retry_after_in_seconds_is_the_delay(
    harness: Harness, upstream: Upstream, clock: FakeClock
) -> None:
    path = fresh("/status/429?times=1&retry_after=2")
    async with harness.client(retry(clock)) as client:
        assert (await client.get(upstream.url + path)).status == 200
    assert clock.sleeps == [2.0]


@pytest.mark.anyio
async def test_retry_after_as_an_http_date_counts_from_the_servers_date(
    harness: Harness, upstream: Upstream, clock: FakeClock
) -> None:
    path = fresh("/status/429?times=1&retry_after_date=3")
    async with harness.client(retry(clock)) as client:
        assert (await client.get(upstream.url + path)).status == 200
    assert clock.sleeps == [3.0]


@main_kinds
@pytest.mark.anyio
async def test_a_retry_after_longer_than_the_backoffs_max_returns_the_response_at_once(
    harness: Harness, upstream: Upstream, clock: FakeClock
) -> None:
    path = fresh("/status/503?times=1&retry_after=3600")
    pipeline = Retry(2, backoff=Constant(0.25, max=5.0), clock=clock)
    async with harness.client(pipeline) as client:
        reply = await client.get(upstream.url + path)
    assert reply.status == 503  # not retried into a certain refusal
    assert upstream.hits[path.rsplit("=", 1)[1]] == 1
    assert clock.sleeps == []


@main_kinds
@pytest.mark.anyio
async def test_a_retry_after_within_the_backoffs_max_is_waited_in_full(
    harness: Harness, upstream: Upstream, clock: FakeClock
) -> None:
    path = fresh("/status/503?times=1&retry_after=5")
    pipeline = Retry(2, backoff=Constant(0.25, max=5.0), clock=clock)
    async with harness.client(pipeline) as client:
        assert (await client.get(upstream.url + path)).status == 200
    assert clock.sleeps == [5.0]


@main_kinds
@pytest.mark.anyio
async def test_other_4xx_are_returned_and_count_as_successes(
    harness: Harness, upstream: Upstream, clock: FakeClock
) -> None:
    breaker = CircuitBreaker(consecutive_failures=1, clock=clock)
    async with harness.client(Pipeline(retry(clock), breaker)) as client:
        for status in (404, 400, 409):
            assert (await client.get(upstream.url + fresh(f"/status/{status}"))).status == status
        assert client.protection.policy_for(breaker, upstream.url).state == "closed"
    assert clock.sleeps == []


@main_kinds
@pytest.mark.anyio
async def test_retry_and_failure_statuses_are_separate(
    harness: Harness, upstream: Upstream, clock: FakeClock
) -> None:
    breaker = CircuitBreaker(consecutive_failures=2, clock=clock)
    options = {"retry_statuses": {429}, "failure_statuses": {500}}
    async with harness.client(Pipeline(retry(clock), breaker), **options) as client:
        # 429 is retried but is no failure: the breaker sees a success in the end...
        assert (await client.get(upstream.url + fresh("/status/429?times=2"))).status == 200
        metrics = client.protection.policy_for(breaker, upstream.url).metrics()
        assert (metrics.calls, metrics.failures) == (3, 0)
        # ...500 is a failure, returned at once; two of them open the breaker.
        for _ in range(2):
            assert (await client.get(upstream.url + fresh("/status/500"))).status == 500
        assert client.protection.policy_for(breaker, upstream.url).state == "open"
    assert clock.sleeps == [0.25, 0.25]


# -- which requests are retried ----------------------------------------------------------


@pytest.mark.anyio
async def test_post_is_not_retried_unless_told(
    harness: Harness, upstream: Upstream, clock: FakeClock
) -> None:
    async with harness.client(retry(clock)) as client:
        path = fresh("/status/503?times=1")
        reply = await client.request("POST", upstream.url + path, body=b"order")
        assert reply.status == 503
        assert upstream.hits[path.rsplit("=", 1)[1]] == 1
        path = fresh("/status/503?times=1")
        reply = await client.request("POST", upstream.url + path, body=b"order", idempotent=True)
        assert reply.status == 200
        assert upstream.hits[path.rsplit("=", 1)[1]] == 2
    assert clock.sleeps == [0.25]


@main_kinds
@pytest.mark.anyio
async def test_an_idempotency_key_or_retry_methods_allow_retrying_post(
    harness: Harness, upstream: Upstream, clock: FakeClock
) -> None:
    async with harness.client(retry(clock)) as client:
        reply = await client.request(
            "POST",
            upstream.url + fresh("/status/503?times=1"),
            body=b"order",
            headers={"Idempotency-Key": "order-17"},
        )
        assert reply.status == 200
    async with harness.client(retry(clock), retry_methods={"GET", "POST"}) as client:
        path = fresh("/status/503?times=1")
        assert (await client.request("POST", upstream.url + path, body=b"x")).status == 200
    assert clock.sleeps == [0.25, 0.25]


@main_kinds
@pytest.mark.anyio
async def test_idempotent_false_stops_retrying_a_get(
    harness: Harness, upstream: Upstream, clock: FakeClock
) -> None:
    async with harness.client(retry(clock)) as client:
        reply = await client.get(upstream.url + fresh("/status/503?times=1"), idempotent=False)
        assert reply.status == 503
        with idempotent(False):
            reply = await client.get(upstream.url + fresh("/status/503?times=1"))
        assert reply.status == 503
    assert clock.sleeps == []


@main_kinds
@pytest.mark.anyio
async def test_a_streamed_request_body_is_never_sent_twice(
    harness: Harness, upstream: Upstream, clock: FakeClock
) -> None:
    async with harness.client(retry(clock), retry_methods={"PUT", "POST"}) as client:
        path = fresh("/status/503?times=1")
        reply = await client.request("PUT", upstream.url + path, streamed_body=True)
        assert reply.status == 503
        assert upstream.hits[path.rsplit("=", 1)[1]] == 1
        # The same request with its body in memory is retried.
        reply = await client.request("PUT", upstream.url + "/echo", body=b"in memory")
        assert (reply.status, reply.text) == (200, "in memory")
    assert clock.sleeps == []


# -- connection errors and stalls ---------------------------------------------------------


@main_kinds
@pytest.mark.anyio
async def test_reset_connections_are_retried_and_counted(
    harness: Harness, raw: RawServer, clock: FakeClock
) -> None:
    breaker = CircuitBreaker(consecutive_failures=3, clock=clock)
    async with harness.client(Pipeline(retry(clock), breaker)) as client:
        before = raw.connections
        with pytest.raises(Exception) as caught:
            await client.get(raw.url + "/reset")
        assert raw.connections - before == 3
        notes = "".join(getattr(caught.value, "__notes__", []))
        if harness.library == "aiohttp" and isinstance(caught.value, CircuitOpen):
            # aiohttp resends an idempotent request once after a connection error, through
            # the middleware again: that second run meets the breaker the three resets
            # opened, and stops at once (its 30 s hint is longer than the backoff's max).
            assert "longer than the backoff's max" in notes
        else:
            assert "gave up: all 3 attempts failed" in notes
        with pytest.raises(CircuitOpen) as rejected:
            await client.get(raw.url + "/reset")
        assert rejected.value.host == raw.url
        assert raw.url in str(rejected.value)


@main_kinds
@pytest.mark.anyio
async def test_a_post_whose_connection_was_refused_is_retried(
    harness: Harness, clock: FakeClock
) -> None:
    closed = _closed_port_url()
    async with harness.client(retry(clock)) as client:
        with pytest.raises(Exception) as caught:
            await client.request("POST", closed + "/x", body=b"x")
    # Nothing was sent, so the POST was retried.
    assert "all 3 attempts failed" in "".join(getattr(caught.value, "__notes__", []))


@main_kinds
@pytest.mark.anyio
async def test_a_post_whose_connection_broke_is_not_retried(
    harness: Harness, raw: RawServer, clock: FakeClock
) -> None:
    async with harness.client(retry(clock)) as client:
        before = raw.connections
        with pytest.raises(Exception):  # each library has its own
            await client.request("POST", raw.url + "/reset", body=b"x")
        assert raw.connections - before == 1


@main_kinds
@pytest.mark.anyio
async def test_a_stalled_server_times_out_and_counts_as_a_failure(
    harness: Harness, upstream: Upstream, clock: FakeClock
) -> None:
    breaker = CircuitBreaker(consecutive_failures=2, clock=clock)
    pipeline = Pipeline(retry(clock, attempts=2), breaker, Timeout(0.2))
    async with harness.client(pipeline) as client:
        with pytest.raises(TimeoutExceeded) as caught:
            await client.get(upstream.url + fresh("/stall?seconds=5"))
        assert caught.value.host == upstream.url
        assert client.protection.policy_for(breaker, upstream.url).state == "open"


@main_kinds
@pytest.mark.anyio
async def test_a_get_is_hedged_and_a_post_is_not(harness: Harness, upstream: Upstream) -> None:
    async with harness.client(Hedge(0.05)) as client:
        path = fresh("/slow_first?seconds=1")
        reply = await client.get(upstream.url + path)
        # The first attempt stalls; the hedge, 50 ms later, is answered at once.
        assert (reply.status, reply.text) == (200, "answer 2")
        path = fresh("/slow_first?seconds=0.3")
        reply = await client.request("POST", upstream.url + path, body=b"order")
        # A POST must not be sent twice: one attempt, however slow.
        assert (reply.status, reply.text) == (200, "answer 1")
        assert upstream.hits[path.rsplit("=", 1)[1]] == 1


# -- per host -------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_the_failing_hosts_breaker_opens_and_the_other_host_is_served(
    harness: Harness, upstream: Upstream, clock: FakeClock
) -> None:
    failing, healthy = upstream.urls
    breaker = CircuitBreaker("api", consecutive_failures=4, open_for=60, clock=clock)
    async with harness.client(Pipeline(retry(clock, attempts=2), breaker)) as client:
        statuses = []
        for _ in range(6):
            try:
                statuses.append((await client.get(failing + fresh("/status/503"))).status)
            except CircuitOpen as exc:
                statuses.append(f"open {exc.name} {exc.host}")
            reply = await client.get(healthy + "/ok")
            assert (reply.status, reply.text) == (200, f"ok from {upstream.ports[1]}")
        assert statuses == [503, 503, *[f"open api {failing}"] * 4]
        protection = client.protection
        assert protection.policy_for(breaker, failing).state == "open"
        assert protection.policy_for(breaker, healthy).state == "closed"
        assert protection.hosts() == sorted(upstream.urls)
    assert breaker.state == "closed"  # the template itself serves no host


@main_kinds
@pytest.mark.anyio
async def test_without_per_host_one_breaker_guards_every_host(
    harness: Harness, upstream: Upstream, clock: FakeClock
) -> None:
    failing, healthy = upstream.urls
    breaker = CircuitBreaker(consecutive_failures=2, open_for=60, clock=clock)
    async with harness.client(breaker, per_host=False) as client:
        for _ in range(2):
            assert (await client.get(failing + fresh("/status/503"))).status == 503
        with pytest.raises(CircuitOpen) as caught:
            await client.get(healthy + "/ok")
        assert caught.value.host == healthy
        assert client.protection.policy_for(breaker, healthy) is breaker
    assert breaker.state == "open"


@main_kinds
@pytest.mark.anyio
async def test_each_host_has_its_own_rate_limit(
    harness: Harness, upstream: Upstream, clock: FakeClock
) -> None:
    first, second = upstream.urls
    async with harness.client(TokenBucket(1, burst=1, name="per-host", clock=clock)) as client:
        assert (await client.get(first + "/ok")).status == 200
        with pytest.raises(RateLimited) as caught:
            await client.get(first + "/ok")
        assert caught.value.host == first
        assert f"(host {first})" in str(caught.value)
        assert (await client.get(second + "/ok")).status == 200


# -- responses --------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_the_response_streams(harness: Harness, upstream: Upstream, clock: FakeClock) -> None:
    path = fresh("/stream")
    async with harness.client(retry(clock)) as client, client.stream(upstream.url + path) as chunks:
        received = b""
        async for chunk in chunks:
            received += chunk
            if received == b"first":
                # The server sends the rest only now: the first chunk came through the
                # transport before the response was complete.
                upstream.release(path.rsplit("=", 1)[1])
        assert received == b"firstsecond"


@pytest.mark.anyio
async def test_no_connection_leaks_after_many_retried_requests(
    harness: Harness, upstream: Upstream, clock: FakeClock
) -> None:
    requests = 1000
    async with harness.client(retry(clock, attempts=2)) as client:
        for _ in range(requests):
            reply = await client.get(upstream.url + fresh("/status/503?times=1"))
            assert reply.status == 200
        assert client.connections_in_use() == 0
        # Every discarded 503 was closed: the server has at most the one kept-alive
        # connection of this client left open (closes take a moment to reach it).
        deadline = time.monotonic() + 5
        while upstream.open_connections() > 1 and time.monotonic() < deadline:
            await anyio.sleep(0.01)
        assert upstream.open_connections() <= 1
    assert len(clock.sleeps) == requests


# -- events and fallback ----------------------------------------------------------------------


@main_kinds
@pytest.mark.anyio
async def test_events_carry_host_method_and_status(
    harness: Harness, upstream: Upstream, clock: FakeClock
) -> None:
    events: list[Event] = []
    stop = listen(events.append)
    try:
        breaker = CircuitBreaker("api", clock=clock)
        async with harness.client(Pipeline(retry(clock), breaker)) as client:
            await client.get(upstream.url + fresh("/status/503?times=1"))
    finally:
        stop()
    seen = [(e.kind, e.type, e.host, e.method, e.status) for e in events]
    assert seen == [
        ("circuit_breaker", "failure", upstream.url, "GET", 503),
        ("retry", "retry", upstream.url, "GET", 503),
        ("circuit_breaker", "success", upstream.url, "GET", 200),
        ("retry", "success", upstream.url, "GET", 200),
    ]


@main_kinds
@pytest.mark.anyio
async def test_listeners_on_the_transport_hear_every_hosts_policies(
    harness: Harness, upstream: Upstream, clock: FakeClock
) -> None:
    events: list[Event] = []
    breaker = CircuitBreaker("api", consecutive_failures=1, clock=clock)
    template_events: list[Event] = []
    breaker.listen(template_events.append)
    async with harness.client(breaker) as client:
        client.protection.listen(events.append)
        await client.get(upstream.urls[0] + fresh("/status/503"))
        await client.get(upstream.urls[1] + "/ok")
    changes = [(e.host, e.details) for e in events if e.type == "state_change"]
    assert changes == [(upstream.urls[0], StateChange(from_state="closed", to_state="open"))]
    assert [e.type for e in events if e.type != "state_change"] == ["failure", "success"]
    # Listeners the template had when a host's copy was made hear that copy too.
    assert [e.type for e in template_events] == [e.type for e in events]


@main_kinds
@pytest.mark.anyio
async def test_a_fallback_may_answer_with_the_failed_response_or_its_own(
    harness: Harness, upstream: Upstream, clock: FakeClock
) -> None:
    seen: list[Any] = []

    def handler(exc: BaseException) -> Any:
        seen.append(exc)
        assert isinstance(exc, ResponseError)
        return exc.response

    async with harness.client(Pipeline(Fallback(handler=handler), retry(clock))) as client:
        reply = await client.get(upstream.url + fresh("/status/503"))
    assert reply.status == 503
    assert [(e.status, e.host, e.failure, e.retry) for e in seen] == [
        (503, upstream.url, True, True)
    ]
    async with harness.client(Fallback("not a response")) as client:
        with pytest.raises(TypeError, match="must return"):
            await client.get(upstream.url + fresh("/status/503"))


def _closed_port_url() -> str:
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now: connections are refused
    return f"http://127.0.0.1:{port}"


@pytest.mark.anyio
async def test_a_deadline_nothing_else_enforces_shortens_the_network_timeout(
    harness: Harness, raw: RawServer
) -> None:
    # A sync Timeout cannot interrupt its worker thread: the request running there (sync,
    # or async in an event loop of its own) must end near the deadline by itself, through
    # a network timeout cut to remaining(), instead of the client's default (5 s for
    # httpx, 5 minutes for aiohttp).
    timeout = Timeout(0.2)
    finished: list[Event] = []
    timeout.listen(lambda e: finished.append(e) if e.type == "abandoned_finished" else None)

    async def fetch() -> None:
        async with harness.client(Pipeline()) as client:
            await client.get(raw.url + "/stall")

    started = time.monotonic()
    try:
        timeout.call(anyio.run, fetch, backend=harness.backend)
    except TimeoutExceeded:
        deadline = time.monotonic() + 3
        while not finished and time.monotonic() < deadline:
            await anyio.sleep(0.01)
        (event,) = finished  # the worker ended on its own, soon after
        assert isinstance(event.details, AbandonedFinished)
        duration, error = event.details.duration, event.exception
    except Exception as exc:  # the worker's own timeout came first (a close race)
        duration, error = time.monotonic() - started, exc
    assert timeout.abandoned == 0
    assert duration < 1.0
    assert "timeout" in type(error).__name__.lower()
