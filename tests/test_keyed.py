"""per_key: one policy per key, created on first use, least recently used evicted."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from resilience import CircuitBreaker, CircuitOpen, Event, KeyedPolicy, Pipeline, Retry, per_key
from resilience.testing import FakeClock


def host_of(url: str, **kwargs: Any) -> str:
    return url.split("/")[2]


def fetch(url: str, *, fail: bool = False) -> str:
    if fail:
        raise ConnectionError(url)
    return url


def breakers(clock: FakeClock, **kwargs: Any) -> KeyedPolicy:
    return per_key(
        lambda host: CircuitBreaker(host, consecutive_failures=2, clock=clock),
        key=host_of,
        **kwargs,
    )


def test_one_dead_key_does_not_open_the_others(clock: FakeClock) -> None:
    keyed = breakers(clock)
    for _ in range(2):
        with pytest.raises(ConnectionError):
            keyed.call(fetch, "http://a.example/x", fail=True)
    with pytest.raises(CircuitOpen) as info:
        keyed.call(fetch, "http://a.example/y")
    assert info.value.name == "a.example"
    assert keyed.call(fetch, "http://b.example/z") == "http://b.example/z"
    assert keyed.get("a.example").state == "open"  # type: ignore[attr-defined]
    assert keyed.get("b.example").state == "closed"  # type: ignore[attr-defined]


def test_the_key_sees_the_callers_arguments_on_every_path(clock: FakeClock) -> None:
    seen: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def key(*args: Any, **kwargs: Any) -> str:
        seen.append((args, kwargs))
        return "k"

    keyed = per_key(lambda k: CircuitBreaker(k, clock=clock), key=key)
    keyed.call(fetch, "http://a/x", fail=False)

    @keyed
    def decorated(url: str, *, fail: bool = False) -> str:
        return url

    decorated("http://a/y", fail=False)
    in_pipeline = Pipeline(Retry(clock=clock), keyed)
    in_pipeline.call(fetch, "http://a/z")
    assert seen == [
        (("http://a/x",), {"fail": False}),
        (("http://a/y",), {"fail": False}),
        (("http://a/z",), {}),
    ]


def test_least_recently_used_key_is_evicted(clock: FakeClock) -> None:
    made: list[str] = []

    def factory(host: str) -> CircuitBreaker:
        made.append(host)
        return CircuitBreaker(host, clock=clock)

    keyed = per_key(factory, key=host_of, max_keys=2)
    for host in ("a", "b", "a", "c"):  # "b" is the least recently used when "c" arrives
        keyed.call(fetch, f"http://{host}/")
    assert keyed.keys() == ["a", "c"]
    keyed.call(fetch, "http://b/")
    assert made == ["a", "b", "c", "b"]  # b was rebuilt: its state went with it
    assert len(keyed) == 2


def test_state_persists_per_key_across_calls(clock: FakeClock) -> None:
    keyed = breakers(clock)
    with pytest.raises(ConnectionError):
        keyed.call(fetch, "http://a/", fail=True)
    assert keyed.get("a").metrics().failures == 1  # type: ignore[attr-defined]


def test_listeners_hear_every_per_key_policy_and_stop(clock: FakeClock) -> None:
    keyed = breakers(clock)
    keyed.call(fetch, "http://early/")  # created before anyone listened
    events: list[Event] = []
    stop = keyed.listen(events.append)
    with pytest.raises(ConnectionError):
        keyed.call(fetch, "http://early/", fail=True)
    with pytest.raises(ConnectionError):
        keyed.call(fetch, "http://late/", fail=True)
    assert {e.name for e in events} == {"early", "late"}
    stop()
    events.clear()
    with pytest.raises(ConnectionError):
        keyed.call(fetch, "http://late/", fail=True)
    assert events == []
    # and nothing stays attached to the per-key policies once nobody listens
    assert not keyed.get("early")._listeners


def test_concurrent_first_use_creates_one_policy_per_key(clock: FakeClock) -> None:
    made: list[str] = []
    lock = threading.Lock()

    def factory(host: str) -> CircuitBreaker:
        with lock:
            made.append(host)
        return CircuitBreaker(host, clock=clock)

    keyed = per_key(factory, key=host_of)
    start = threading.Barrier(16)

    def worker(i: int) -> None:
        start.wait()
        for _ in range(50):
            keyed.call(fetch, f"http://h{i % 4}/")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(made) == ["h0", "h1", "h2", "h3"]


@pytest.mark.anyio
async def test_async_calls_are_keyed_too(clock: FakeClock) -> None:
    keyed = breakers(clock)

    async def afetch(url: str, *, fail: bool = False) -> str:
        return fetch(url, fail=fail)

    for _ in range(2):
        with pytest.raises(ConnectionError):
            await keyed.acall(afetch, "http://a/", fail=True)
    with pytest.raises(CircuitOpen):
        await keyed.acall(afetch, "http://a/")
    assert await keyed.acall(afetch, "http://b/") == "http://b/"


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match="factory"):
        per_key(3, key=host_of)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="key"):
        per_key(lambda k: Retry(), key="host")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_keys"):
        per_key(lambda k: Retry(), key=host_of, max_keys=0)
    keyed = per_key(lambda k: "not a policy", key=host_of)  # type: ignore[arg-type, return-value]
    with pytest.raises(TypeError, match="must return a policy"):
        keyed.call(fetch, "http://a/")
