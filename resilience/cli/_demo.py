"""``resilience demo``: a client through a pipeline against a flaky local upstream,
next to the same client without it, shown live.

Two identical flaky upstreams (``_demo_upstream``) run on 127.0.0.1. Two clients send
them the same steady stream of requests (``--rate`` per second each, for
``--duration`` seconds): an httpx client whose transport runs every request through
the pipeline of the bundled ``demo.toml`` (or ``--config``), and a bare one. A listener
on the pipeline counts what every policy does; the terminal shows it live (on a
terminal) or as a log (otherwise), then a summary compares success rate and latency.

With ``--redis URL`` the clients run in ``--workers`` processes that share their
breaker and token bucket through Redis: one worker's evidence opens the breaker of
all, and the bucket's rate is the fleet's.

Needs the ``cli`` extra (httpx for the clients, rich for the terminal).
"""

from __future__ import annotations

import contextlib
import importlib.resources
import itertools
import math
import multiprocessing
import os
import queue
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .._policies.breaker import CircuitBreaker
from .._policies.bucket import TokenBucket
from .._policies.bulkhead import Bulkhead
from .._policies.events import Acquired, Event, StateChange
from .._policies.pipeline import Pipeline
from .._policies.timeout import Timeout
from ..config._registry import Registry, load_file
from ..errors import ResilienceError, TimeoutExceeded
from ._demo_upstream import Upstream

__all__ = ["DemoOptions", "run"]

#: The pipeline the bundled config defines.
DEMO_PIPELINE = "upstream"
#: A call that succeeds after this many seconds counts as late in the summary.
SLO = 1.0
WITH, WITHOUT = "with the pipeline", "without"


@dataclass(frozen=True)
class DemoOptions:
    duration: float = 20.0
    rate: float = 30.0
    seed: int = 1
    config: Path | None = None
    pipeline: str = DEMO_PIPELINE
    live: bool | None = None  # None: live when the output is a terminal
    redis: str | None = None  # share state through this Redis, in worker processes
    workers: int = 3

    def __post_init__(self) -> None:
        for name in ("duration", "rate"):
            value = getattr(self, name)
            if not 0 < value < math.inf:
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers!r}")


class UpstreamStatus(Exception):
    """The call ended with an error status from the upstream (for the summary)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


def fetch(client: Any, url: str) -> int:
    """One GET; anything but a 200 raises. Through the demo's pipeline, the client's
    ``ResilientTransport`` retries error statuses (honouring ``Retry-After``) and returns
    the last response when retries run out."""
    status = int(client.get(url).status_code)
    if status != 200:
        raise UpstreamStatus(status)
    return status


def _failure(exc: BaseException) -> str:
    """A short name for why a call failed, for the summary."""
    if isinstance(exc, UpstreamStatus):
        return f"HTTP {exc.status}"
    if isinstance(exc, TimeoutExceeded) or type(exc).__name__.endswith("Timeout"):
        return "timed out"
    if isinstance(exc, ResilienceError):
        return f"refused: {type(exc).__name__}"
    return type(exc).__name__


# -- measuring a client ---------------------------------------------------------------------


@dataclass(frozen=True)
class Results:
    """What happened to one client's calls (a snapshot; several add up)."""

    latencies: tuple[float, ...] = ()
    succeeded: int = 0
    on_time: int = 0
    failures: Mapping[str, int] = field(default_factory=dict)

    def __add__(self, other: Results) -> Results:
        return Results(
            self.latencies + other.latencies,
            self.succeeded + other.succeeded,
            self.on_time + other.on_time,
            dict(Counter(self.failures) + Counter(other.failures)),
        )

    @property
    def done(self) -> int:
        return len(self.latencies)

    def success_rate(self) -> float:
        return self.succeeded / self.done if self.done else 0.0

    def on_time_rate(self) -> float:
        """Calls that succeeded within ``SLO`` seconds: later is too late for most callers."""
        return self.on_time / self.done if self.done else 0.0

    def quantile(self, q: float) -> float | None:
        data = sorted(self.latencies)
        if not data:
            return None
        return data[min(len(data) - 1, max(0, math.ceil(q * len(data)) - 1))]


class Client:
    """One client making calls, and what happened to them."""

    def __init__(self, call: Callable[[], object]) -> None:
        self._call = call
        self._lock = threading.Lock()
        self._latencies: list[float] = []
        self._succeeded = self._on_time = 0
        self._failures: Counter[str] = Counter()

    def one(self, scheduled: float) -> None:
        try:
            self._call()
        except Exception as exc:
            ok, why = False, _failure(exc)
        else:
            ok, why = True, ""
        latency = time.monotonic() - scheduled  # from when the caller wanted it
        with self._lock:
            self._latencies.append(latency)
            if ok:
                self._succeeded += 1
                self._on_time += latency <= SLO
            else:
                self._failures[why] += 1

    def results(self) -> Results:
        with self._lock:
            return Results(
                tuple(self._latencies), self._succeeded, self._on_time, dict(self._failures)
            )

    def drive(self, rate: float, duration: float, start: float, stop: threading.Event) -> None:
        """Start a call every 1/rate seconds from ``start`` until ``duration`` is over:
        the same steady demand on both clients, whatever their calls cost."""
        with ThreadPoolExecutor(max_workers=64, thread_name_prefix="demo-client") as pool:
            for i in itertools.count():
                at = start + i / rate
                if at - start >= duration or stop.is_set():
                    break
                delay = at - time.monotonic()
                if delay > 0 and stop.wait(delay):
                    break
                pool.submit(self.one, at)


# -- what the policies do ---------------------------------------------------------------------


class Narrator:
    """A listener that counts what each policy of the pipeline does, and notes its
    transitions (``log`` is told each one)."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self._log = log
        self._lock = threading.Lock()
        self.counts: Counter[tuple[str, str]] = Counter()
        self.wait_seconds = 0.0

    def __call__(self, event: Event) -> None:
        details = event.details
        with self._lock:
            self.counts[(event.kind, event.type)] += 1
            if event.kind == "token_bucket" and isinstance(details, Acquired) and details.waited:
                self.counts[(event.kind, "waited")] += 1
                self.wait_seconds += details.waited
        if isinstance(details, StateChange):
            self._log(
                f"{event.kind.replace('_', ' ')} {event.name}: "
                f"{details.from_state} -> {details.to_state}"
            )


@dataclass(frozen=True)
class PolicyRow:
    """One policy: what it did so far (counts of its events) and its state now."""

    kind: str
    name: str
    detail: str  # a setting worth showing (the timeout's seconds)
    counts: Mapping[str, int]
    wait_seconds: float
    now: tuple[str, ...]  # one entry per process running it


def policy_rows(pipeline: Pipeline, narrator: Narrator) -> list[PolicyRow]:
    rows = []
    for policy in pipeline.policies:
        kind = policy.kind
        now, detail = "", ""
        if isinstance(policy, CircuitBreaker):
            now = policy.state
        elif isinstance(policy, TokenBucket):
            now = f"{max(policy.available, 0):.0f} tokens free"
        elif isinstance(policy, Bulkhead):
            now = f"{policy.in_flight} running, {policy.queued} waiting"
        elif isinstance(policy, Timeout):
            detail = f"{policy.seconds:g} s"
        counts = {t: n for (k, t), n in narrator.counts.items() if k == kind}
        wait = narrator.wait_seconds if kind == "token_bucket" else 0.0
        rows.append(PolicyRow(kind, str(policy.name), detail, counts, wait, (now,)))
    return rows


def merge_rows(per_worker: Sequence[Sequence[PolicyRow]]) -> list[PolicyRow]:
    """The rows of several processes running the same pipeline, added up (but a shared
    breaker's transitions, which every process sees, counted once)."""
    merged = list(per_worker[0])
    for rows in per_worker[1:]:
        merged = [
            replace(
                a,
                counts=_merge_counts(a.kind, a.counts, b.counts),
                wait_seconds=a.wait_seconds + b.wait_seconds,
                now=a.now + b.now,
            )
            for a, b in zip(merged, rows, strict=True)
        ]
    return merged


def _merge_counts(kind: str, a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
    total = dict(Counter(a) + Counter(b))
    if kind == "circuit_breaker":
        total["state_change"] = max(a.get("state_change", 0), b.get("state_change", 0))
    return total


def describe(row: PolicyRow) -> tuple[str, str, str]:
    """(policy, what it did so far, its state now) for the table."""
    count = row.counts.get
    if row.kind == "retry":
        done = (
            f"{count('retry', 0)} retries; {count('success', 0)} calls saved, "
            f"{count('give_up', 0)} gave up"
        )
    elif row.kind == "circuit_breaker":
        done = (
            f"{count('rejected', 0)} calls rejected at once; "
            f"{count('state_change', 0)} state changes"
        )
    elif row.kind == "token_bucket":
        waited = count("waited", 0)
        average = row.wait_seconds / waited * 1000 if waited else 0.0
        done = (
            f"{waited} calls waited for a token ({average:.0f} ms on average); "
            f"{count('rejected', 0)} rejected"
        )
    elif row.kind == "bulkhead":
        done = f"{count('queued', 0)} calls queued; {count('rejected', 0)} rejected"
    elif row.kind == "timeout":
        done = f"{count('timeout', 0)} attempts cut short at {row.detail}"
    elif row.kind == "fallback":
        done = f"{count('fallback', 0)} calls answered by the fallback"
    else:
        done = ", ".join(f"{n} {t}" for t, n in sorted(row.counts.items()))
    nows = [now for now in row.now if now]
    if len(set(nows)) == 1 and len(nows) > 1:
        now = f"{nows[0]} (all {len(nows)} workers)"
    else:
        now = " | ".join(nows)
    return (f"{row.kind} {row.name}", done, now)


# -- showing it -----------------------------------------------------------------------------------


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def comparison(results: Mapping[str, Results], upstream_requests: Mapping[str, int]) -> Any:
    from rich.table import Table

    table = Table(title="with and without the pipeline", title_justify="left")
    table.add_column("")
    sides = list(results.values())
    for label in results:
        table.add_column(label, justify="right")
    rows: list[list[str]] = [
        ["calls made", *[str(s.done) for s in sides]],
        ["succeeded", *[f"{s.success_rate():.1%}" for s in sides]],
        [f"succeeded within {SLO:g} s", *[f"{s.on_time_rate():.1%}" for s in sides]],
        ["latency p50", *[_ms(s.quantile(0.5)) for s in sides]],
        ["latency p95", *[_ms(s.quantile(0.95)) for s in sides]],
        ["latency p99", *[_ms(s.quantile(0.99)) for s in sides]],
        ["requests the upstream got", *[str(upstream_requests[label]) for label in results]],
    ]
    for why in sorted({why for s in sides for why in s.failures}):
        rows.append([f"failed: {why}", *[str(s.failures.get(why, 0)) for s in sides]])
    for row in rows:
        table.add_row(*row)
    return table


def policies_table(name: str, rows: Sequence[PolicyRow]) -> Any:
    from rich.table import Table

    table = Table(title=f"what the pipeline {name} did", title_justify="left")
    table.add_column("policy")
    table.add_column("so far")
    table.add_column("now")
    for row in rows:
        table.add_row(*describe(row))
    return table


def verdict(with_: Results, without: Results) -> str:
    return (
        f"With the pipeline {with_.success_rate():.1%} of the calls succeeded "
        f"({with_.on_time_rate():.1%} within {SLO:g} s); without it "
        f"{without.success_rate():.1%} ({without.on_time_rate():.1%} within {SLO:g} s). "
        f"95% of the calls took at most {_ms(with_.quantile(0.95))} with it, "
        f"{_ms(without.quantile(0.95))} without."
    )


# -- running the clients --------------------------------------------------------------------------


@contextlib.contextmanager
def _config_path(config: Path | None) -> Iterator[Path]:
    if config is not None:
        yield config
        return
    with importlib.resources.as_file(
        importlib.resources.files("resilience.cli").joinpath("demo.toml")
    ) as path:
        yield path


def _shared(data: Mapping[str, Any], pipeline: str, redis_url: str, prefix: str) -> dict[str, Any]:
    """The config with a Redis ``[store]``, and the pipeline's breakers and buckets
    sharing their state through it."""
    config = {key: value for key, value in data.items() if key != "store"}
    config["store"] = {"redis_url": redis_url, "prefix": prefix}
    pipelines = dict(config.get("pipelines", {}))
    table = dict(pipelines.get(pipeline, {}))
    for entry in table.get("policies", list(table)):
        value = table.get(entry, {})
        kind = value.get("kind", entry) if isinstance(value, Mapping) else entry
        if kind in ("circuit_breaker", "token_bucket"):
            table[entry] = {**(value if isinstance(value, Mapping) else {}), "shared": True}
    pipelines[pipeline] = table
    config["pipelines"] = pipelines
    return config


class Clients:
    """The two clients of one process, their pipeline, and its narrator."""

    def __init__(
        self,
        registry: Registry,
        pipeline_name: str,
        urls: Mapping[str, str],
        log: Callable[[str], None],
    ) -> None:
        import httpx

        from ..http.httpx import ResilientTransport

        self.pipeline = registry.pipeline(pipeline_name)
        self.narrator = Narrator(log)
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
        # The pipeline's own policies serve the demo's one host (per_host=False), so the
        # table can show them. A 429 says the upstream is busy, not broken: retried, but
        # not a failure for the breaker.
        transport = ResilientTransport(
            self.pipeline,
            httpx.HTTPTransport(limits=limits),
            per_host=False,
            failure_statuses={500, 502, 503, 504},
        )
        self._http = [httpx.Client(transport=transport), httpx.Client(limits=limits)]
        with_client, bare_client = self._http
        self.clients = {
            WITH: Client(lambda: fetch(with_client, urls[WITH])),
            WITHOUT: Client(lambda: fetch(bare_client, urls[WITHOUT])),
        }
        self._unlisten = self.pipeline.listen(self.narrator)

    def run(self, rate: float, duration: float, start: float, stop: threading.Event) -> None:
        drivers = [
            threading.Thread(target=client.drive, args=(rate, duration, start, stop))
            for client in self.clients.values()
        ]
        for driver in drivers:
            driver.start()
        for driver in drivers:
            driver.join()

    def results(self) -> dict[str, Results]:
        return {label: client.results() for label, client in self.clients.items()}

    def rows(self) -> list[PolicyRow]:
        return policy_rows(self.pipeline, self.narrator)

    def close(self) -> None:
        self._unlisten()
        for http in self._http:
            http.close()


def _worker(
    index: int,
    config: dict[str, Any],
    pipeline_name: str,
    urls: dict[str, str],
    rate: float,
    duration: float,
    start_wall: float,
    reports: Any,
) -> None:
    """A worker process of ``--redis`` mode: its share of both clients' calls, through
    a pipeline whose breaker and bucket live in Redis; reports go to ``reports``."""
    registry = Registry.from_dict(config)
    transitions: list[str] = []
    clients = Clients(registry, pipeline_name, urls, transitions.append)
    start = time.monotonic() + (start_wall - time.time())
    stop = threading.Event()
    runner = threading.Thread(target=clients.run, args=(rate, duration, start, stop))
    runner.start()
    try:
        while runner.is_alive():
            runner.join(0.25)
            reports.put((index, clients.results(), clients.rows(), transitions[:], False))
            transitions.clear()
    except KeyboardInterrupt:
        stop.set()
        runner.join()
    finally:
        reports.put((index, clients.results(), clients.rows(), transitions[:], True))
        clients.close()
        registry.store.close()


# -- the demo -------------------------------------------------------------------------------------


def run(options: DemoOptions) -> int:
    try:
        import httpx  # noqa: F401
        from rich.console import Console, Group
        from rich.live import Live
        from rich.progress_bar import ProgressBar
        from rich.table import Table
    except ImportError as exc:
        print(
            f"resilience demo needs the cli extra ({exc.name} is missing): "
            "pip install 'resiliency[cli]'",
            file=sys.stderr,
        )
        return 1

    console = Console(highlight=False)
    live = console.is_terminal if options.live is None else options.live
    if live and not console.is_terminal:
        console = Console(highlight=False, force_terminal=True)
    elif not console.is_terminal:
        console = Console(highlight=False, width=110)  # a log file: wide enough for the tables
    with _config_path(options.config) as path:
        data = load_file(path)
        config_name = path.name
    registry = Registry.from_dict(data)  # checks the config (and the pipeline's name)
    pipeline = registry.pipeline(options.pipeline)

    duration = options.duration
    upstreams = {WITH: Upstream(duration, options.seed), WITHOUT: Upstream(duration, options.seed)}
    urls = {label: f"{upstream.url}/item" for label, upstream in upstreams.items()}
    log_lines: deque[str] = deque(maxlen=8)
    print_lock = threading.Lock()
    started = time.monotonic()

    def log(message: str) -> None:
        line = f"[{time.monotonic() - started:5.1f}s] {message}"
        with print_lock:
            log_lines.append(line)
            if not live:
                console.print(line)

    how = (
        f"in {options.workers} worker processes sharing their breaker and bucket through "
        f"Redis at {options.redis}"
        if options.redis
        else "in this process"
    )
    console.print(
        f"resilience demo: {duration:g} s of {options.rate:g} requests/s against two flaky "
        f"upstreams on 127.0.0.1, one client through the pipeline {pipeline.name!r} of "
        f"{config_name}, one without, {how}."
    )
    stop = threading.Event()
    if options.redis:
        prefix = f"resilience-demo-{os.getpid()}-{int(time.time())}"
        shared = _shared(data, options.pipeline, options.redis, prefix)
        probe = Registry.from_dict(shared).store  # a bad URL fails here, once
        try:
            probe.client.ping()
        except Exception as exc:
            raise OSError(f"cannot reach Redis at {options.redis}: {exc}") from None
        finally:
            probe.close()
        fleet: Fleet | Local = Fleet(shared, options, urls, log)
    else:
        fleet = Local(registry, options.pipeline, urls, log)

    def view() -> Any:
        elapsed = min(max(time.monotonic() - started, 0.0), duration)
        phase = upstreams[WITH].phase(elapsed)
        header = Table.grid(padding=(0, 1))
        header.add_row(
            ProgressBar(total=duration, completed=elapsed, width=30),
            f"{elapsed:4.1f}/{duration:g} s",
            f"upstream: [bold]{phase.name}[/bold] ({phase.description})",
        )
        with print_lock:
            lines = "\n".join(log_lines)
        return Group(
            header,
            policies_table(pipeline.name or "", fleet.rows()),
            comparison(fleet.results(), requests()),
            lines,
        )

    def requests() -> dict[str, int]:
        return {label: sum(up.requests.values()) for label, up in upstreams.items()}

    interrupted = False
    try:
        started = fleet.start_time()
        for upstream in upstreams.values():
            upstream.start(at=started)
        fleet.start(options.rate, duration, started, stop)
        last_phase = None
        screen_context: Any = contextlib.nullcontext()
        if live:
            screen_context = Live(view(), console=console, refresh_per_second=8)
        with screen_context as screen:
            while fleet.running():
                fleet.poll()
                now = time.monotonic()
                phase = upstreams[WITH].phase()
                if phase != last_phase and started <= now < started + duration:
                    last_phase = phase
                    log(f"upstream: {phase.name} ({phase.description})")
                if screen is not None:
                    screen.update(view())
                time.sleep(0.1)
            fleet.poll()
            if screen is not None:
                screen.update(view())
    except KeyboardInterrupt:
        interrupted = True
        stop.set()
        fleet.finish()
    finally:
        fleet.close()
        for upstream in upstreams.values():
            upstream.stop()
    results = fleet.results()
    if not live:
        console.print(policies_table(pipeline.name or "", fleet.rows()))
        console.print(comparison(results, requests()))
    console.print(
        verdict(results[WITH], results[WITHOUT]) + (" (interrupted)" if interrupted else "")
    )
    return 130 if interrupted else 0


class Local:
    """Both clients in this process."""

    def __init__(
        self, registry: Registry, pipeline: str, urls: Mapping[str, str], log: Callable[[str], None]
    ) -> None:
        self._clients = Clients(registry, pipeline, urls, log)
        self._thread: threading.Thread | None = None

    def start_time(self) -> float:
        return time.monotonic()

    def start(self, rate: float, duration: float, start: float, stop: threading.Event) -> None:
        self._thread = threading.Thread(
            target=self._clients.run, args=(rate, duration, start, stop)
        )
        self._thread.start()

    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def poll(self) -> None:
        return None

    def finish(self) -> None:
        if self._thread is not None:
            self._thread.join()

    def results(self) -> dict[str, Results]:
        return self._clients.results()

    def rows(self) -> list[PolicyRow]:
        return self._clients.rows()

    def close(self) -> None:
        self._clients.close()


class Fleet:
    """Both clients in ``workers`` processes, each with its share of the rate."""

    def __init__(
        self,
        config: dict[str, Any],
        options: DemoOptions,
        urls: Mapping[str, str],
        log: Callable[[str], None],
    ) -> None:
        self._config = config
        self._options = options
        self._urls = dict(urls)
        self._log = log
        context = multiprocessing.get_context("spawn")
        self._reports: Any = context.Queue()
        self._context = context
        self._processes: list[Any] = []
        self._latest: dict[int, tuple[dict[str, Results], list[PolicyRow]]] = {}
        self._done: set[int] = set()
        self._recent: deque[tuple[float, str]] = deque(maxlen=32)
        self._start_wall = 0.0

    def start_time(self) -> float:
        # Worker processes take a moment to start: everyone begins at the same time.
        self._start_wall = time.time() + 2.0
        return time.monotonic() + 2.0

    def start(self, rate: float, duration: float, start: float, stop: threading.Event) -> None:
        workers = self._options.workers
        for index in range(workers):
            process = self._context.Process(
                target=_worker,
                args=(
                    index,
                    self._config,
                    self._options.pipeline,
                    self._urls,
                    rate / workers,
                    duration,
                    self._start_wall,
                    self._reports,
                ),
                daemon=True,
            )
            process.start()
            self._processes.append(process)

    def running(self) -> bool:
        return len(self._done) < len(self._processes) and any(p.is_alive() for p in self._processes)

    def poll(self) -> None:
        while True:
            try:
                index, results, rows, transitions, final = self._reports.get_nowait()
            except queue.Empty:
                return
            self._latest[index] = (results, rows)
            if final:
                self._done.add(index)
            for line in transitions:
                # Every worker sees each shared transition: log it once.
                now = time.monotonic()
                if not any(text == line and now - at < 0.5 for at, text in self._recent):
                    self._recent.append((now, line))
                    self._log(line)

    def finish(self) -> None:
        for process in self._processes:
            process.join(10)
        self.poll()

    def results(self) -> dict[str, Results]:
        total = {WITH: Results(), WITHOUT: Results()}
        for results, _ in self._latest.values():
            for label in total:
                total[label] = total[label] + results[label]
        return total

    def rows(self) -> list[PolicyRow]:
        per_worker = [rows for _, (_, rows) in sorted(self._latest.items())]
        return merge_rows(per_worker) if per_worker else []

    def close(self) -> None:
        for process in self._processes:
            process.join(10)
            if process.is_alive():  # pragma: no cover - a worker that hung
                process.terminate()
        self._cleanup()

    def _cleanup(self) -> None:
        """Delete the demo's keys from Redis."""
        try:
            registry = Registry.from_dict(self._config)
            store = registry.store
            prefix = self._config["store"]["prefix"]
            keys = list(store.client.scan_iter(match=f"{prefix}:*", count=1000))
            if keys:
                store.client.delete(*keys)
            store.close()
        except Exception:  # pragma: no cover - Redis gone: the keys expire on their own
            pass
