"""What sharing state through Redis costs per protected call, next to the peers.

Starts its own ``redis-server`` on a free loopback port (``resilience.testing.RedisServer``)
and measures, for each case, over the same server:

- **round trips per call**: request/response exchanges with Redis, counted by a
  connection class that counts ``send_packed_command`` (a pipeline is one), and the
  commands the server ran per call (``INFO commandstats``, after ``CONFIG RESETSTAT``);
- **latency**: each call timed alone (``perf_counter_ns``), p50 and p99 over the calls of
  a round; a case runs ``--rounds`` rounds interleaved with the others and reports its
  round with the lowest p50 (a shared machine adds noise, never removes it);
- **added latency**: the case's p50 minus the bare call's p50, and that divided by a
  bare ``PING``'s p50 (how many PING-sized round trips the case costs).

Cases: the bare call ``f(x) = x + 1``, a bare ``PING``; ours (a closed breaker and a
token bucket with free tokens through ``RedisStore``, ``AsyncRedisStore`` and, from
async code, ``RedisStore`` through worker threads; and both once the store is cut off
from a dead server); pybreaker's ``CircuitRedisStorage``; limits' ``RedisStorage`` (fixed
window, moving window, sliding window counter; ``limits.aio`` with redis.asyncio).

Run from the repository root (about a minute)::

    .venv/bin/python benchmarks/bench_redis_calls.py               # print the tables
    .venv/bin/python benchmarks/bench_redis_calls.py --write-docs  # and docs/benchmarks.md

Targets (the issue's): 2 round trips for a strict breaker call, 1 for a limiter take.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import os
import platform
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import limits
import limits.aio.storage
import limits.aio.strategies
import limits.storage
import limits.strategies
import pybreaker
import redis
import redis.asyncio
from redis.backoff import NoBackoff
from redis.retry import Retry

from resilience import CircuitBreaker, TokenBucket
from resilience.stores.redis import AsyncRedisStore, RedisStore
from resilience.testing import RedisServer

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- redis-results:start -->", "<!-- redis-results:end -->"


class Counting(redis.Connection):
    sent = 0

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        Counting.sent += 1
        super().send_packed_command(command, check_health)


class ACounting(redis.asyncio.Connection):
    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        Counting.sent += 1
        await super().send_packed_command(command, check_health)


def f(x: int) -> int:
    return x + 1


async def af(x: int) -> int:
    return x + 1


@dataclass
class Case:
    group: str  # "sync" | "async"
    label: str
    role: str  # "baseline" | "ping" | "ours" | "peer"
    run: Callable[[], Any] | Callable[[], Awaitable[Any]]
    redis: bool = True  # counts round trips
    target_rtt: int | None = None


@dataclass
class Result:
    case: Case
    p50: float
    p99: float
    rtt: float
    commands: float


def pool_options(timeout: float = 1.0) -> dict[str, Any]:
    return {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(NoBackoff(), 0),
    }


def sync_client(url: str) -> redis.Redis:
    pool = redis.ConnectionPool.from_url(url, connection_class=Counting, **pool_options())
    return redis.Redis(connection_pool=pool)


def async_client(url: str) -> redis.asyncio.Redis:
    pool = redis.asyncio.ConnectionPool.from_url(url, connection_class=ACounting, **pool_options())
    return redis.asyncio.Redis(connection_pool=pool)


def build_cases(url: str, dead_url: str) -> tuple[list[Case], list[Any]]:
    """The cases, and what to close afterwards."""
    closers: list[Any] = []
    client = sync_client(url)
    aclient = async_client(url)
    store = RedisStore(sync_client(url), prefix="bench")
    astore = AsyncRedisStore(async_client(url), sync_client=sync_client(url), prefix="bench-a")
    dead = RedisStore.from_url(dead_url, prefix="bench-dead")
    closers += [client, store, astore, dead]

    breaker = CircuitBreaker("sync", store=store)
    limiter = TokenBucket(1e9, store=store, key="sync")
    abreaker = CircuitBreaker("async", store=astore)
    alimiter = TokenBucket(1e9, store=astore, key="async")
    tbreaker = CircuitBreaker("thread", store=store)
    tlimiter = TokenBucket(1e9, store=store, key="thread")
    dbreaker = CircuitBreaker("dead", store=dead)
    dlimiter = TokenBucket(1e9, store=dead, key="dead")
    for _ in range(5):  # cut the dead store off: 3 failures, then local decisions
        dbreaker.call(f, 1)
    assert not dead.available

    pystore = pybreaker.CircuitRedisStorage(pybreaker.STATE_CLOSED, sync_client(url), "bench")
    pyb = pybreaker.CircuitBreaker(state_storage=pystore)
    item = limits.RateLimitItemPerSecond(10**9)
    lstorage = limits.storage.RedisStorage(
        url,
        connection_pool=redis.ConnectionPool.from_url(
            url, connection_class=Counting, **pool_options()
        ),
    )
    fixed = limits.strategies.FixedWindowRateLimiter(lstorage)
    moving = limits.strategies.MovingWindowRateLimiter(lstorage)
    sliding = limits.strategies.SlidingWindowCounterRateLimiter(lstorage)
    alstorage = limits.aio.storage.RedisStorage(
        "async+" + url,
        implementation="redispy",
        connection_pool=redis.asyncio.ConnectionPool.from_url(
            url, connection_class=ACounting, **pool_options()
        ),
    )
    afixed = limits.aio.strategies.FixedWindowRateLimiter(alstorage)
    amoving = limits.aio.strategies.MovingWindowRateLimiter(alstorage)

    def hit(strategy: Any) -> Callable[[], int]:
        key = type(strategy).__name__

        def run() -> int:
            strategy.hit(item, key)
            return f(1)

        return run

    def ahit(strategy: Any) -> Callable[[], Awaitable[int]]:
        key = f"async-{type(strategy).__name__}"

        async def run() -> int:
            await strategy.hit(item, key)
            return await af(1)

        return run

    async def alimit(limiter: TokenBucket) -> int:
        await limiter.aacquire()
        return await af(1)

    cases = [
        Case("sync", "bare call `f(x)`", "baseline", lambda: f(1), redis=False),
        Case("sync", "bare `PING` (redis-py)", "ping", client.ping),
        Case(
            "sync",
            "resilience `breaker.call(f, x)`, `RedisStore`",
            "ours",
            lambda: breaker.call(f, 1),
            target_rtt=2,
        ),
        Case(
            "sync",
            "resilience `limiter.call(f, x)`, `RedisStore`",
            "ours",
            lambda: limiter.call(f, 1),
            target_rtt=1,
        ),
        Case(
            "sync",
            "resilience breaker, store cut off (Redis dead)",
            "ours",
            lambda: dbreaker.call(f, 1),
            target_rtt=0,
        ),
        Case(
            "sync",
            "resilience limiter, store cut off (Redis dead)",
            "ours",
            lambda: dlimiter.call(f, 1),
            target_rtt=0,
        ),
        Case("sync", "pybreaker `CircuitRedisStorage`", "peer", lambda: pyb.call(f, 1)),
        Case("sync", "limits `RedisStorage`, fixed window", "peer", hit(fixed)),
        Case("sync", "limits `RedisStorage`, moving window", "peer", hit(moving)),
        Case("sync", "limits `RedisStorage`, sliding window counter", "peer", hit(sliding)),
        Case("async", "bare call `await af(x)`", "baseline", lambda: af(1), redis=False),
        Case("async", "bare `await PING` (redis.asyncio)", "ping", aclient.ping),
        Case(
            "async",
            "resilience `await breaker.acall(af, x)`, `AsyncRedisStore`",
            "ours",
            lambda: abreaker.acall(af, 1),
            target_rtt=2,
        ),
        Case(
            "async",
            "resilience `aacquire()` + `af(x)`, `AsyncRedisStore`",
            "ours",
            lambda: alimit(alimiter),
            target_rtt=1,
        ),
        Case(
            "async",
            "resilience `await breaker.acall(af, x)`, `RedisStore` (worker threads)",
            "ours",
            lambda: tbreaker.acall(af, 1),
            target_rtt=2,
        ),
        Case(
            "async",
            "resilience `aacquire()` + `af(x)`, `RedisStore` (worker threads)",
            "ours",
            lambda: alimit(tlimiter),
            target_rtt=1,
        ),
        Case(
            "async", "limits.aio `RedisStorage` (redis.asyncio), fixed window", "peer", ahit(afixed)
        ),
        Case(
            "async",
            "limits.aio `RedisStorage` (redis.asyncio), moving window",
            "peer",
            ahit(amoving),
        ),
    ]
    return cases, closers


def percentile(sorted_values: list[float], fraction: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))]


def measure_sync(case: Case, calls: int) -> tuple[list[float], float]:
    run = case.run
    clock = time.perf_counter_ns
    samples = []
    before = Counting.sent
    for _ in range(calls):
        start = clock()
        run()
        samples.append((clock() - start) / 1000)
    return samples, (Counting.sent - before) / calls


async def measure_async(case: Case, calls: int) -> tuple[list[float], float]:
    run = case.run
    clock = time.perf_counter_ns
    samples = []
    before = Counting.sent
    for _ in range(calls):
        start = clock()
        await run()  # type: ignore[misc]
        samples.append((clock() - start) / 1000)
    return samples, (Counting.sent - before) / calls


def commands(server: RedisServer) -> int:
    info = server.command("INFO", "commandstats")
    assert isinstance(info, str)
    total = 0
    for line in info.splitlines():
        if line.startswith("cmdstat_") and not line.startswith(("cmdstat_config", "cmdstat_info")):
            total += int(line.split("calls=", 1)[1].split(",", 1)[0])
    return total


def run_all(server: RedisServer, cases: list[Case], calls: int, rounds: int) -> list[Result]:
    loop = asyncio.new_event_loop()
    best: dict[int, Result] = {}
    try:
        for case in cases:  # warm-up: connections, scripts, code paths
            if case.group == "sync":
                measure_sync(case, 200)
            else:
                loop.run_until_complete(measure_async(case, 200))
        for _ in range(rounds):
            for index, case in enumerate(cases):
                server.command("CONFIG", "RESETSTAT")
                if case.group == "sync":
                    samples, rtt = measure_sync(case, calls)
                else:
                    samples, rtt = loop.run_until_complete(measure_async(case, calls))
                ran = commands(server) / calls
                samples.sort()
                result = Result(case, percentile(samples, 0.5), percentile(samples, 0.99), rtt, ran)
                if index not in best or result.p50 < best[index].p50:
                    best[index] = result
    finally:
        loop.close()
    return [best[i] for i in range(len(cases))]


def table(results: list[Result], group: str) -> list[str]:
    rows = [r for r in results if r.case.group == group]
    bare = next(r for r in rows if r.case.role == "baseline")
    ping = next(r for r in rows if r.case.role == "ping")
    ping_added = ping.p50 - bare.p50
    lines = [
        "| Case | Round trips / call | Commands / call | p50 µs | p99 µs | Added p50 µs | ÷ PING |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        added = r.p50 - bare.p50
        ratio = "" if r.case.role == "baseline" else f"{added / ping_added:.2f}"
        rtt = f"{r.rtt:.2f}" if r.case.redis else ""
        cmds = f"{r.commands:.2f}" if r.case.redis else ""
        added_text = "" if r.case.role == "baseline" else f"{added:.1f}"
        label = f"**{r.case.label}**" if r.case.role == "ours" else r.case.label
        lines.append(
            f"| {label} | {rtt} | {cmds} | {r.p50:.1f} | {r.p99:.1f} | {added_text} | {ratio} |"
        )
    return lines


def checks(results: list[Result]) -> list[str]:
    lines = []
    for r in results:
        if r.case.target_rtt is None:
            continue
        ok = round(r.rtt, 2) == r.case.target_rtt
        lines.append(
            f"- {'PASS' if ok else 'MISS'}: {r.case.label} ({r.case.group}): "
            f"{r.rtt:.2f} round trips per call (target {r.case.target_rtt})"
        )
    return lines


def report(results: list[Result], calls: int, rounds: int, version: str) -> str:
    when = time.strftime("%Y-%m-%d")
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    out = [
        f"Measured {when} on {platform.python_implementation()} {platform.python_version()}, "
        f"{platform.machine()}, Redis {version} on loopback, redis-py {redis.__version__}, "
        f"pybreaker {importlib.metadata.version('pybreaker')}, "
        f"limits {limits.__version__}; {calls} calls per round, best of {rounds} rounds; "
        f"load average {load}.",
        "",
        "Sync:",
        "",
        *table(results, "sync"),
        "",
        "Async (asyncio):",
        "",
        *table(results, "async"),
        "",
        "Round-trip targets:",
        "",
        *checks(results),
    ]
    return "\n".join(out)


def write_docs(text: str) -> None:
    page = DOCS.read_text()
    if START not in page or END not in page:
        raise SystemExit(f"{DOCS} has no {START} ... {END} section")
    head, rest = page.split(START, 1)
    _, tail = rest.split(END, 1)
    DOCS.write_text(f"{head}{START}\n{text}\n{END}{tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls per case per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (best p50 is kept)")
    parser.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args(argv)
    with RedisServer() as server, RedisServer() as doomed:
        version = str(server.command("INFO", "server")).split("redis_version:", 1)[1].split()[0]
        dead_url = doomed.url
        doomed.kill()
        cases, closers = build_cases(server.url, dead_url)
        try:
            results = run_all(server, cases, args.calls, args.rounds)
        finally:
            for closer in closers:
                closer.close()
    text = report(results, args.calls, args.rounds, version)
    print(text)
    if args.write_docs:
        write_docs(text)
    return 0 if all("MISS" not in line for line in checks(results)) else 1


if __name__ == "__main__":
    sys.exit(main())
