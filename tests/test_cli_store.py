"""``resilience status`` and ``resilience open|close|reset NAME`` against a real Redis
server the tests start (never the one on 6379), run as the installed command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from resilience import Bulkhead, CircuitBreaker, TokenBucket
from resilience.stores.redis import RedisStore
from resilience.testing import RedisServer

COMMAND = Path(sys.executable).parent / "resilience"


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    with RedisServer() as redis_server:
        yield redis_server


@pytest.fixture
def store(server: RedisServer) -> Iterator[RedisStore]:
    redis_store = RedisStore.from_url(server.url, prefix=f"cli-{os.getpid()}-{id(server)}")
    redis_store.client.flushdb()
    yield redis_store
    redis_store.close()


def run(*args: str, env: dict[str, str] | None = None) -> Any:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("RESILIENCE__")}
    environment.update(env or {})
    return subprocess.run(
        [str(COMMAND), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=environment,
    )


def opened(store: RedisStore, name: str) -> CircuitBreaker:
    breaker = CircuitBreaker(name, failure_rate=None, consecutive_failures=1, store=store)
    with pytest.raises(ZeroDivisionError):
        breaker.call(lambda: 1 / 0)
    assert breaker.state == "open"
    return breaker


def test_status_lists_breakers_buckets_and_bulkheads(
    server: RedisServer, store: RedisStore
) -> None:
    opened(store, "payments")
    CircuitBreaker("search", store=store).call(lambda: 1)
    bucket = TokenBucket(1, per=60, burst=5, store=store, name="api")
    for _ in range(3):
        bucket.acquire()
    with Bulkhead(4, name="db", store=store):
        proc = run("status", "--redis", server.url, "--prefix", store.prefix)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"store: Redis at {server.url} (prefix {store.prefix!r})"
    assert lines[1].split() == [
        "BREAKER",
        "STATE",
        "TRIAL",
        "IN",
        "CALLS",
        "FAILURES",
        "RATE",
        "SLOW",
        "WINDOW",
        "OPENS",
    ]
    payments = lines[2].split()
    assert payments[:2] == ["payments", "open"]
    assert payments[2].endswith("s")  # seconds until a trial
    assert payments[-1] == "1"  # opened once
    search = lines[3].split()
    assert search[:2] == ["search", "closed"]
    assert lines[4].split() == ["TOKEN", "BUCKET", "TOKENS", "BURST", "RATE"]
    api = lines[5].split()
    assert api[0] == "api"
    assert float(api[1]) == pytest.approx(2.0, abs=0.1)
    assert api[2:] == ["5", f"{1 / 60:g}/s"]
    assert lines[6].split() == ["BULKHEAD", "HELD", "INSTANCES"]
    assert lines[7].split() == ["db", "1", "1"]


def test_status_as_json(server: RedisServer, store: RedisStore) -> None:
    opened(store, "payments")
    proc = run("status", "--json", "--redis", server.url, "--prefix", store.prefix)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    (breaker,) = data["breakers"]
    assert (breaker["name"], breaker["state"], breaker["consecutive_opens"]) == (
        "payments",
        "open",
        1,
    )
    assert data["buckets"] == []
    assert data["bulkheads"] == []


def heard(breakers: tuple[CircuitBreaker, ...], state: str) -> bool:
    """Whether every breaker heard of ``state`` (pub/sub: the CLI has returned once
    Redis changed, the message reaches this process a moment later)."""
    deadline = time.monotonic() + 5
    while any(breaker.state != state for breaker in breakers):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def test_open_close_and_reset_reach_every_instance(server: RedisServer, store: RedisStore) -> None:
    breaker = opened(store, "payments")
    other = RedisStore.from_url(server.url, prefix=store.prefix)  # another instance
    try:
        twin = CircuitBreaker("payments", failure_rate=None, consecutive_failures=1, store=other)
        proc = run("close", "payments", "--redis", server.url, "--prefix", store.prefix)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith("circuit breaker payments: closed (was open)")
        assert heard((breaker, twin), "closed")
        proc = run("open", "payments", "--redis", server.url, "--prefix", store.prefix)
        assert "forced_open (was closed)" in proc.stdout
        assert heard((breaker, twin), "forced_open")
        proc = run("reset", "payments", "--redis", server.url, "--prefix", store.prefix)
        assert "closed (was forced_open)" in proc.stdout
        assert heard((breaker, twin), "closed")
        assert store.breaker_status("payments").consecutive_opens == 0  # type: ignore[union-attr]
    finally:
        other.close()


def test_opening_a_name_no_instance_used_yet(server: RedisServer, store: RedisStore) -> None:
    proc = run("open", "reports", "--redis", server.url, "--prefix", store.prefix)
    assert proc.returncode == 0, proc.stderr
    assert "forced_open (was unknown to Redis until now)" in proc.stdout
    assert CircuitBreaker("reports", store=store).state == "forced_open"


def test_the_store_from_a_config_file_or_the_environment(
    tmp_path: Path, server: RedisServer, store: RedisStore
) -> None:
    opened(store, "payments")
    config = tmp_path / "resilience.toml"
    config.write_text(f'[store]\nredis_url = "{server.url}"\nprefix = "{store.prefix}"\n')
    proc = run("status", "--config", str(config))
    assert proc.returncode == 0, proc.stderr
    assert "payments  open" in proc.stdout
    env = {"RESILIENCE__STORE__REDIS_URL": server.url, "RESILIENCE__STORE__PREFIX": store.prefix}
    proc = run("status", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "payments  open" in proc.stdout


def test_errors_exit_1_with_a_message(tmp_path: Path) -> None:
    proc = run("status")
    assert proc.returncode == 1
    assert "which Redis? give --redis URL" in proc.stderr
    proc = run("close", "payments", "--redis", "redis://127.0.0.1:1/0", "--timeout", "0.5")
    assert proc.returncode == 1
    assert "Redis at redis://127.0.0.1:1/0" in proc.stderr
    assert "Traceback" not in proc.stderr
    config = tmp_path / "memory.toml"
    config.write_text("[store]\n")
    proc = run("status", "--config", str(config))
    assert proc.returncode == 1
    assert "has no [store] redis_url" in proc.stderr
    proc = run("status", "--redis", "redis://user:secret@127.0.0.1:1/0", "--timeout", "0.5")
    assert "secret" not in proc.stderr
    assert "redis://user:***@127.0.0.1:1/0" in proc.stderr


def test_demo_with_workers_sharing_state_through_redis(server: RedisServer) -> None:
    proc = run("demo", "--duration", "3", "--rate", "20", "--redis", server.url, "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "in 2 worker processes sharing their breaker and bucket through Redis" in " ".join(
        out.split()
    )
    assert "closed (all 2 workers)" in out or "(all 2 workers)" in out
    made = next(line for line in out.splitlines() if "calls made" in line)
    assert made.split()[-4:] == ["60", "│", "60", "│"]
    # The demo cleans up after itself: no key of its own is left in Redis.
    check = RedisStore.from_url(server.url)
    try:
        assert check.client.keys("resilience-demo-*") == []
    finally:
        check.close()


def test_demo_with_an_unreachable_redis() -> None:
    proc = run("demo", "--duration", "1", "--redis", "redis://127.0.0.1:1/0")
    assert proc.returncode == 1
    assert "cannot reach Redis at redis://127.0.0.1:1/0" in proc.stderr
