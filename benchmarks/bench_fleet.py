"""Fleet scale: what local-first sharing costs per call, per process and per transition.

Starts its own ``redis-server`` on a free loopback port (``resilience.testing.RedisServer``)
and measures three things:

1. **Per-call overhead** of a closed local-first breaker (``sync_mode="local-first"``)
   against the in-memory breaker: ``breaker.call(f, x)`` sync, ``await breaker.acall(af,
   x)`` on asyncio, in batches of ``--batch`` calls timed together, cases interleaved
   over ``--rounds`` rounds, best round per case (a shared machine adds noise, never
   removes it). Overhead is the case minus the bare call; the target is a ratio of at
   most 1.5 to the in-memory breaker's, with 0 round trips per call from the caller's
   thread (round trips are counted per thread by a counting connection class).
2. **Redis traffic per process at 10,000 calls/s**: calls paced at that rate for
   ``--seconds``; round trips sent by the process (all threads: the background worker's
   reports and polls included) and commands the server ran (``INFO commandstats``,
   commands inside scripts included), per second. Cases: a local-first breaker, a strict
   one (which cannot keep up with 10,000 calls/s on one core: its rate is what it
   reached, and its per-call cost is what matters), a local-first token bucket (quota
   leasing), a fleet-wide retry budget, an idle local-first breaker.
3. **Convergence after a transition**: six forked processes, each with its own store
   and a local-first breaker, watch its state; the parent forces the shared breaker open
   and closed through the admin API and each process notes when it first sees each new
   state. Delays (p50, p99, max) with pub/sub, with pub/sub cut (a Redis user that may
   not subscribe) for processes that are calling (they learn from the replies to their
   reports) and for idle ones (they learn from polls).

Run from the repository root (about a minute and a half)::

    .venv/bin/python benchmarks/bench_fleet.py               # print the tables
    .venv/bin/python benchmarks/bench_fleet.py --write-docs  # and docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import redis
import redis.asyncio

from resilience import CircuitBreaker, RetryBudget, TokenBucket
from resilience.stores.redis import AsyncRedisStore, RedisStore
from resilience.testing import RedisServer

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- fleet-results:start -->", "<!-- fleet-results:end -->"
TARGET_RATIO = 1.5


class Counting(redis.Connection):
    """Counts requests sent (one per pipeline), per thread."""

    sent: ClassVar[dict[int, int]] = {}

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        me = threading.get_ident()
        Counting.sent[me] = Counting.sent.get(me, 0) + 1
        super().send_packed_command(command, check_health)


class ACounting(redis.asyncio.Connection):
    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        me = threading.get_ident()
        Counting.sent[me] = Counting.sent.get(me, 0) + 1
        await super().send_packed_command(command, check_health)


def sent(thread: int | None = None) -> int:
    counts = dict(Counting.sent)
    return counts.get(thread, 0) if thread is not None else sum(counts.values())


def sync_client(url: str) -> redis.Redis:
    pool = redis.ConnectionPool.from_url(
        url, connection_class=Counting, socket_timeout=1.0, socket_connect_timeout=1.0
    )
    return redis.Redis(connection_pool=pool)


def async_client(url: str) -> redis.asyncio.Redis:
    pool = redis.asyncio.ConnectionPool.from_url(
        url, connection_class=ACounting, socket_timeout=1.0, socket_connect_timeout=1.0
    )
    return redis.asyncio.Redis(connection_pool=pool)


def f(x: int) -> int:
    return x + 1


async def af(x: int) -> int:
    return x + 1


# -- 1. per-call overhead ----------------------------------------------------------------


@dataclass
class Overhead:
    group: str
    label: str
    role: str  # "bare" | "memory" | "local-first"
    ns: float = float("inf")  # best per-call time
    caller_trips: float = 0.0  # round trips from the caller's thread, per call
    all_trips: float = 0.0  # from every thread of the process, per call


def measure_overhead(url: str, batch: int, rounds: int) -> list[Overhead]:
    store = RedisStore(sync_client(url), prefix="bench-lf", sync_mode="local-first")
    astore = AsyncRedisStore(
        async_client(url), sync_client=sync_client(url), prefix="bench-alf", sync_mode="local-first"
    )
    memory = CircuitBreaker()
    shared = CircuitBreaker("overhead", store=store)
    amemory = CircuitBreaker()
    ashared = CircuitBreaker("overhead-threads", store=store)
    aio_shared = CircuitBreaker("overhead-asyncio", store=astore)
    sync_cases: list[tuple[Overhead, Callable[[], Any]]] = [
        (Overhead("sync", "bare call `f(x)`", "bare"), lambda: f),
        (Overhead("sync", "in-memory `breaker.call(f, x)`", "memory"), lambda: memory.call),
        (
            Overhead("sync", "local-first `breaker.call(f, x)`, `RedisStore`", "local-first"),
            lambda: shared.call,
        ),
    ]
    async_cases: list[tuple[Overhead, Callable[[], Any]]] = [
        (Overhead("async", "bare call `await af(x)`", "bare"), lambda: af),
        (Overhead("async", "in-memory `await breaker.acall(af, x)`", "memory"), lambda: amemory),
        (
            Overhead(
                "async", "local-first `await breaker.acall(af, x)`, `RedisStore`", "local-first"
            ),
            lambda: ashared,
        ),
        (
            Overhead(
                "async",
                "local-first `await breaker.acall(af, x)`, `AsyncRedisStore`",
                "local-first",
            ),
            lambda: aio_shared,
        ),
    ]
    loop = asyncio.new_event_loop()
    me = threading.get_ident()

    def run_sync(row: Overhead, make: Callable[[], Any]) -> None:
        target = make()
        clock = time.perf_counter_ns
        caller, total = sent(me), sent()
        if row.role == "bare":
            start = clock()
            for _ in range(batch):
                target(1)
        else:
            start = clock()
            for _ in range(batch):
                target(f, 1)
        elapsed = clock() - start
        row.ns = min(row.ns, elapsed / batch)
        row.caller_trips += (sent(me) - caller) / (batch * rounds)
        row.all_trips += (sent() - total) / (batch * rounds)

    async def run_async(row: Overhead, make: Callable[[], Any]) -> None:
        target = make()
        clock = time.perf_counter_ns
        caller, total = sent(me), sent()
        if row.role == "bare":
            start = clock()
            for _ in range(batch):
                await target(1)
        else:
            call = target.acall
            start = clock()
            for _ in range(batch):
                await call(af, 1)
        elapsed = clock() - start
        row.ns = min(row.ns, elapsed / batch)
        row.caller_trips += (sent(me) - caller) / (batch * rounds)
        row.all_trips += (sent() - total) / (batch * rounds)

    try:
        for row, make in sync_cases:  # warm-up (the async store binds to this loop)
            run_sync(row, make)
        for row, make in async_cases:
            loop.run_until_complete(run_async(row, make))
        for row, _ in [*sync_cases, *async_cases]:
            row.ns, row.caller_trips, row.all_trips = float("inf"), 0.0, 0.0
        for _ in range(rounds):
            for row, make in sync_cases:
                run_sync(row, make)
            for row, make in async_cases:
                loop.run_until_complete(run_async(row, make))
    finally:
        store.close()
        loop.run_until_complete(astore.aclose())
        loop.close()
    return [row for row, _ in [*sync_cases, *async_cases]]


def overhead_table(rows: list[Overhead]) -> list[str]:
    lines = [
        "| Case | ns / call | Overhead ns | ÷ in-memory | Round trips / call (caller) "
        "| Round trips / call (process) |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for group in ("sync", "async"):
        mine = [r for r in rows if r.group == group]
        bare = next(r for r in mine if r.role == "bare")
        memory = next(r for r in mine if r.role == "memory")
        for r in mine:
            added = r.ns - bare.ns
            ratio = "" if r.role == "bare" else f"{added / (memory.ns - bare.ns):.2f}"
            trips = "" if r.role != "local-first" else f"{r.caller_trips:.0f}"
            process = "" if r.role != "local-first" else f"{r.all_trips:.6f}"
            overhead = "" if r.role == "bare" else f"{added:.0f}"
            label = f"**{r.label}**" if r.role == "local-first" else r.label
            lines.append(f"| {label} | {r.ns:.0f} | {overhead} | {ratio} | {trips} | {process} |")
    return lines


def overhead_checks(rows: list[Overhead]) -> list[str]:
    out = []
    for group in ("sync", "async"):
        mine = [r for r in rows if r.group == group]
        bare = next(r for r in mine if r.role == "bare")
        memory = next(r for r in mine if r.role == "memory")
        for r in mine:
            if r.role != "local-first":
                continue
            ratio = (r.ns - bare.ns) / (memory.ns - bare.ns)
            ok = ratio <= TARGET_RATIO and r.caller_trips == 0
            out.append(
                f"- {'PASS' if ok else 'MISS'}: {r.label} ({group}): {ratio:.2f}x the in-memory "
                f"breaker's overhead (target at most {TARGET_RATIO}x), "
                f"{r.caller_trips:.0f} round trips per call from the caller (target 0)"
            )
    return out


# -- 2. Redis traffic per process at 10,000 calls/s --------------------------------------


@dataclass
class Traffic:
    label: str
    rate: float  # calls per second reached
    trips: float  # round trips per second, every thread of the process
    commands: float  # server commands per second


def server_commands(server: RedisServer) -> int:
    info = server.command("INFO", "commandstats")
    assert isinstance(info, str)
    total = 0
    for line in info.splitlines():
        if line.startswith("cmdstat_") and not line.startswith(("cmdstat_config", "cmdstat_info")):
            total += int(line.split("calls=", 1)[1].split(",", 1)[0])
    return total


def paced(call: Callable[[], Any], rate: float, seconds: float) -> float:
    """Run ``call`` at ``rate`` per second (in slices of 1 ms) for ``seconds``; returns
    the rate reached."""
    per_slice = max(1, round(rate / 1000))
    start = time.perf_counter()
    done = 0
    while (now := time.perf_counter()) < start + seconds:
        due = int((now - start) * rate)
        while done < due:
            for _ in range(per_slice):
                call()
            done += per_slice
        time.sleep(0.0005)
    return done / (time.perf_counter() - start)


def measure_traffic(server: RedisServer, seconds: float) -> list[Traffic]:
    url = server.url
    rate = 10_000.0
    rows = []

    def case(label: str, make: Callable[[RedisStore], Callable[[], Any]], **options: Any) -> None:
        store = RedisStore(sync_client(url), prefix=f"traffic-{len(rows)}", **options)
        try:
            call = make(store)
            # Warm-up: the policy's keys exist, leases have grown, reports are due
            # every flush interval: the steady state of a busy process.
            paced(call, rate, 1.0)
            server.command("CONFIG", "RESETSTAT")
            before = sent()
            started = time.perf_counter()
            reached = paced(call, rate, seconds) if label != "idle" else 0.0
            if label == "idle":
                time.sleep(seconds)
            elapsed = time.perf_counter() - started
            trips = (sent() - before) / elapsed
            commands = server_commands(server) / elapsed
        finally:
            store.close()
        rows.append(Traffic(label, reached, trips, commands))

    def breaker(store: RedisStore) -> Callable[[], Any]:
        protected = CircuitBreaker("traffic", store=store)
        return lambda: protected.call(f, 1)

    def bucket(store: RedisStore) -> Callable[[], Any]:
        limiter = TokenBucket(20_000, store=store, key="traffic")
        return lambda: limiter.call(f, 1)

    def budget(store: RedisStore) -> Callable[[], Any]:
        fleet = RetryBudget(0.1, store=store, key="traffic")
        return fleet.record_call

    def idle(store: RedisStore) -> Callable[[], Any]:
        CircuitBreaker("idle", store=store)
        kept.append(store)
        return lambda: None

    kept: list[Any] = []
    case("local-first breaker, `breaker.call(f, x)`", breaker, sync_mode="local-first")
    case("strict breaker, `breaker.call(f, x)`", breaker)
    case("local-first token bucket (leases), `limiter.call(f, x)`", bucket, sync_mode="local-first")
    case("strict token bucket, `limiter.call(f, x)`", bucket)
    case("retry budget, `record_call()` per call", budget)
    rows[-1].label = "fleet retry budget, one call counted per call"
    case("idle", idle, sync_mode="local-first")
    rows[-1].label = "local-first breaker, no calls (polls only)"
    return rows


def traffic_table(rows: list[Traffic]) -> list[str]:
    lines = [
        "| Case | Calls/s reached | Round trips/s | Server commands/s "
        "| Round trips per 1,000 calls |",
        "|---|--:|--:|--:|--:|",
    ]
    for r in rows:
        per = "" if not r.rate else f"{r.trips / r.rate * 1000:.2f}"
        rate = f"{r.rate:,.0f}" if r.rate else "0"
        lines.append(f"| {r.label} | {rate} | {r.trips:,.1f} | {r.commands:,.1f} | {per} |")
    return lines


# -- 3. convergence ---------------------------------------------------------------------------


def no_pub_sub_url(url: str) -> str:
    with redis.Redis.from_url(url) as admin:
        admin.execute_command(
            "ACL", "SETUSER", "nosub", "reset", "on", ">pw", "~*", "&*", "+@all",
            "-subscribe", "-psubscribe", "-ssubscribe",
        )  # fmt: skip
    return url.replace("redis://", "redis://nosub:pw@")


def watcher(url: str, prefix: str, options: dict[str, Any], busy: bool, out: int, go: int) -> None:
    """A forked process: watch the breaker's state and write when each state was first
    seen (after each change) as JSON lines; stop when ``go`` is closed."""
    seen: list[tuple[float, str]] = []
    with RedisStore.from_url(url, prefix=prefix, timeout=2.0, **options) as store:
        breaker = CircuitBreaker("converge", store=store)
        os.write(out, b"ready\n")
        stop = threading.Event()
        threading.Thread(target=lambda: (os.read(go, 1), stop.set()), daemon=True).start()
        state = None
        while not stop.is_set():
            if busy:
                with contextlib.suppress(Exception):  # rejected while open
                    breaker.call(f, 1)
            now_state = breaker.state
            if now_state != state:
                state = now_state
                seen.append((time.time(), state))
            time.sleep(0.001)
    os.write(out, (json.dumps(seen) + "\n").encode())


def converge(url: str, prefix: str, options: dict[str, Any], busy: bool, transitions: int,
             spacing: float, only_open: bool, count: int = 6) -> list[float]:  # fmt: skip
    children = []
    for _ in range(count):
        out_r, out_w = os.pipe()
        go_r, go_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(out_r)
                os.close(go_w)
                for _, reader, go in children:  # the other children's ends
                    reader.close()
                    os.close(go)
                watcher(url, prefix, options, busy, out_w, go_r)
            finally:
                os._exit(0)
        os.close(out_w)
        os.close(go_r)
        children.append((pid, os.fdopen(out_r), go_w))
    for _, reader, _ in children:
        assert reader.readline() == "ready\n"
    time.sleep(0.5)
    changes: list[tuple[float, str]] = []
    with RedisStore.from_url(url, prefix=prefix, timeout=2.0) as admin:
        for i in range(transitions):
            target = "forced_open" if i % 2 == 0 else "closed"
            before = time.time()
            admin.force_breaker("converge", "open" if target == "forced_open" else "close")
            changes.append((before, target))
            time.sleep(spacing)
    delays = []
    for pid, reader, go in children:
        os.close(go)
        seen = json.loads(reader.readline())
        reader.close()
        os.waitpid(pid, 0)
        for before, target in changes:
            if only_open and target != "forced_open":
                continue
            first = next((t for t, state in seen if t >= before and state == target), None)
            if first is not None:
                delays.append(first - before)
    return delays


@dataclass
class Convergence:
    label: str
    delays: list[float]
    expected: int
    bound: str


def measure_convergence(server: RedisServer) -> list[Convergence]:
    url = server.url
    cut = no_pub_sub_url(url)
    rows = []
    lf = {"sync_mode": "local-first", "flush_interval": 0.1}
    delays = converge(url, "conv-a", {**lf, "poll_interval": 1.0}, False, 40, 0.25, False)
    rows.append(Convergence("pub/sub, idle processes", delays, 6 * 40, "milliseconds"))
    # A close is learnt by polls only (no calls are reported while the breaker is
    # open), so transitions are spaced wider than the poll interval.
    delays = converge(cut, "conv-b", {**lf, "poll_interval": 0.5}, True, 16, 0.7, True)
    rows.append(
        Convergence(
            "pub/sub cut, processes calling (1,000 calls/s each)",
            delays,
            6 * 8,
            "`flush_interval` (0.1 s)",
        )
    )
    delays = converge(cut, "conv-c", {**lf, "poll_interval": 0.5}, False, 16, 0.6, False)
    rows.append(
        Convergence("pub/sub cut, idle processes", delays, 6 * 16, "`poll_interval` (0.5 s)")
    )
    return rows


def convergence_table(rows: list[Convergence]) -> list[str]:
    lines = [
        "| Case | Samples | p50 ms | p99 ms | max ms | Promised within |",
        "|---|--:|--:|--:|--:|---|",
    ]
    for r in rows:
        ordered = sorted(r.delays)
        p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
        lines.append(
            f"| {r.label} | {len(ordered)} of {r.expected} | "
            f"{statistics.median(ordered) * 1000:.1f} | {p99 * 1000:.1f} | "
            f"{ordered[-1] * 1000:.1f} | {r.bound} |"
        )
    return lines


# -- the report -------------------------------------------------------------------------------


def report(
    overhead: list[Overhead],
    traffic: list[Traffic],
    convergence: list[Convergence],
    args: argparse.Namespace,
    version: str,
) -> str:
    when = time.strftime("%Y-%m-%d")
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    return "\n".join(
        [
            f"Measured {when} on {platform.python_implementation()} "
            f"{platform.python_version()}, {platform.machine()}, Redis {version} on "
            f"loopback, redis-py {redis.__version__}; overhead: {args.batch} calls per "
            f"batch, best of {args.rounds} rounds; traffic: {args.seconds:g} s per case; "
            f"load average {load}.",
            "",
            "Per-call overhead of a closed breaker:",
            "",
            *overhead_table(overhead),
            "",
            *overhead_checks(overhead),
            "",
            "Redis traffic of one process calling at 10,000 calls/s:",
            "",
            *traffic_table(traffic),
            "",
            "Convergence: how long after a transition each of six processes first sees it:",
            "",
            *convergence_table(convergence),
        ]
    )


def write_docs(text: str) -> None:
    page = DOCS.read_text()
    if START not in page or END not in page:
        raise SystemExit(f"{DOCS} has no {START} ... {END} section")
    head, rest = page.split(START, 1)
    _, tail = rest.split(END, 1)
    DOCS.write_text(f"{head}{START}\n{text}\n{END}{tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args(argv)
    with RedisServer() as server:
        info = server.command("INFO", "server")
        assert isinstance(info, str)
        version = info.split("redis_version:", 1)[1].split()[0]
        convergence = measure_convergence(server)  # first: forks before any thread starts
        overhead = measure_overhead(server.url, args.batch, args.rounds)
        traffic = measure_traffic(server, args.seconds)
    text = report(overhead, traffic, convergence, args, version)
    print(text)
    if args.write_docs:
        write_docs(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
