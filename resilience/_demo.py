"""``resilience demo``: a client through a pipeline against a flaky local upstream,
next to the same client without it, shown live.

Two identical flaky upstreams (``_demo_upstream``) run on 127.0.0.1. Two clients send
them the same steady stream of requests (``--rate`` per second each, for
``--duration`` seconds): one through the pipeline of the bundled ``demo.toml`` (or
``--config``), one bare. A listener on the pipeline counts what every policy does;
the terminal shows it live (on a terminal) or as a log (otherwise), then a summary
compares success rate and latency.

Needs the ``cli`` extra (httpx for the clients, rich for the terminal).
"""

from __future__ import annotations

import contextlib
import importlib.resources
import itertools
import math
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._demo_upstream import Upstream
from ._events import Event
from ._pipeline import Pipeline
from .config import Registry
from .errors import ResilienceError, TimeoutExceeded

__all__ = ["DemoOptions", "run"]

#: The pipeline the bundled config defines.
DEMO_PIPELINE = "upstream"
#: A call that succeeds after this many seconds counts as late in the summary.
SLO = 1.0


@dataclass(frozen=True)
class DemoOptions:
    duration: float = 20.0
    rate: float = 30.0
    seed: int = 1
    config: Path | None = None
    pipeline: str = DEMO_PIPELINE
    live: bool | None = None  # None: live when the output is a terminal

    def __post_init__(self) -> None:
        for name in ("duration", "rate"):
            value = getattr(self, name)
            if not 0 < value < math.inf:
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")


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


@dataclass
class Side:
    """One client and what happened to its calls."""

    label: str
    upstream: Upstream
    call: Callable[[], object]
    lock: threading.Lock = field(default_factory=threading.Lock)
    latencies: list[float] = field(default_factory=list)
    succeeded: int = 0
    on_time: int = 0
    failures: Counter[str] = field(default_factory=Counter)

    def one(self, scheduled: float) -> None:
        try:
            self.call()
        except Exception as exc:
            ok, why = False, _failure(exc)
        else:
            ok, why = True, ""
        latency = time.monotonic() - scheduled  # from when the caller wanted it
        with self.lock:
            self.latencies.append(latency)
            if ok:
                self.succeeded += 1
                self.on_time += latency <= SLO
            else:
                self.failures[why] += 1

    @property
    def done(self) -> int:
        return len(self.latencies)

    def success_rate(self) -> float:
        return self.succeeded / self.done if self.done else 0.0

    def on_time_rate(self) -> float:
        """Calls that succeeded within ``SLO`` seconds: later is too late for most callers."""
        return self.on_time / self.done if self.done else 0.0

    def quantile(self, q: float) -> float | None:
        with self.lock:
            data = sorted(self.latencies)
        if not data:
            return None
        return data[min(len(data) - 1, max(0, math.ceil(q * len(data)) - 1))]


def drive(side: Side, rate: float, duration: float, start: float, stop: threading.Event) -> None:
    """Start a call every 1/rate seconds from ``start`` until ``duration`` is over: the
    same steady demand on both clients, whatever their calls cost."""
    with ThreadPoolExecutor(max_workers=64, thread_name_prefix=f"demo-{side.label}") as pool:
        for i in itertools.count():
            at = start + i / rate
            if at - start >= duration or stop.is_set():
                break
            delay = at - time.monotonic()
            if delay > 0 and stop.wait(delay):
                break
            pool.submit(side.one, at)


# -- what the policies do ---------------------------------------------------------------------


class Narrator:
    """A listener that counts what each policy of the pipeline does, and logs transitions."""

    def __init__(self, log: Callable[[str], None], start: float) -> None:
        self._log = log
        self._start = start
        self._lock = threading.Lock()
        self.counts: Counter[tuple[str, str]] = Counter()
        self.waited = 0
        self.wait_seconds = 0.0

    def __call__(self, event: Event) -> None:
        with self._lock:
            self.counts[(event.kind, event.type)] += 1
            if event.kind == "token_bucket" and event.type == "acquired" and event.delay:
                self.waited += 1
                self.wait_seconds += event.delay
        if event.type == "state_change":
            self._log(
                f"{event.kind.replace('_', ' ')} {event.name}: "
                f"{event.from_state} -> {event.to_state}"
            )

    def count(self, kind: str, type_: str) -> int:
        return self.counts[(kind, type_)]


def describe(policy: Any, narrator: Narrator) -> tuple[str, str, str]:
    """(policy, what it did, its state now) for the live table."""
    kind = policy.kind
    count = narrator.count
    label = f"{kind} {policy.name}"
    if kind == "retry":
        return (
            label,
            f"{count(kind, 'retry')} retries; {count(kind, 'success')} calls saved, "
            f"{count(kind, 'give_up')} gave up",
            "",
        )
    if kind == "circuit_breaker":
        changes = count(kind, "state_change")
        return (
            label,
            f"{count(kind, 'rejected')} calls rejected at once; {changes} state changes",
            policy.state,
        )
    if kind == "token_bucket":
        average = narrator.wait_seconds / narrator.waited * 1000 if narrator.waited else 0.0
        return (
            label,
            f"{narrator.waited} calls waited for a token ({average:.0f} ms on average); "
            f"{count(kind, 'rejected')} rejected",
            f"{max(policy.available, 0):.0f} tokens free",
        )
    if kind == "bulkhead":
        return (
            label,
            f"{count(kind, 'queued')} calls queued; {count(kind, 'rejected')} rejected",
            f"{policy.in_flight} running, {policy.queued} waiting",
        )
    if kind == "timeout":
        return (label, f"{count(kind, 'timeout')} attempts cut short at {policy.seconds:g} s", "")
    if kind == "fallback":
        return (label, f"{count(kind, 'fallback')} calls answered by the fallback", "")
    return (label, "", "")


# -- showing it -----------------------------------------------------------------------------------


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def comparison(sides: list[Side]) -> Any:
    from rich.table import Table

    table = Table(title="with and without the pipeline", title_justify="left")
    table.add_column("")
    for side in sides:
        table.add_column(side.label, justify="right")
    rows: list[list[str]] = [
        ["calls made", *[str(s.done) for s in sides]],
        ["succeeded", *[f"{s.success_rate():.1%}" for s in sides]],
        [f"succeeded within {SLO:g} s", *[f"{s.on_time_rate():.1%}" for s in sides]],
        ["latency p50", *[_ms(s.quantile(0.5)) for s in sides]],
        ["latency p95", *[_ms(s.quantile(0.95)) for s in sides]],
        ["latency p99", *[_ms(s.quantile(0.99)) for s in sides]],
        ["requests the upstream got", *[str(sum(s.upstream.requests.values())) for s in sides]],
    ]
    reasons = sorted({why for s in sides for why in s.failures})
    for why in reasons:
        rows.append([f"failed: {why}", *[str(s.failures[why]) for s in sides]])
    for row in rows:
        table.add_row(*row)
    return table


def policies_table(pipeline: Pipeline, narrator: Narrator) -> Any:
    from rich.table import Table

    table = Table(title=f"what the pipeline {pipeline.name} did", title_justify="left")
    table.add_column("policy")
    table.add_column("so far")
    table.add_column("now")
    for policy in pipeline.policies:
        table.add_row(*describe(policy, narrator))
    return table


def verdict(with_: Side, without: Side) -> str:
    return (
        f"With the pipeline {with_.success_rate():.1%} of the calls succeeded "
        f"({with_.on_time_rate():.1%} within {SLO:g} s); without it "
        f"{without.success_rate():.1%} ({without.on_time_rate():.1%} within {SLO:g} s). "
        f"95% of the calls took at most {_ms(with_.quantile(0.95))} with it, "
        f"{_ms(without.quantile(0.95))} without."
    )


# -- the demo -------------------------------------------------------------------------------------


@contextlib.contextmanager
def _config_path(options: DemoOptions) -> Iterator[Path]:
    if options.config is not None:
        yield options.config
        return
    with importlib.resources.as_file(
        importlib.resources.files("resilience").joinpath("demo.toml")
    ) as path:
        yield path


def run(options: DemoOptions) -> int:
    try:
        import httpx
        from rich.console import Console, Group
        from rich.live import Live
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        from .http.httpx import ResilientTransport
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
    with _config_path(options) as path:
        registry = Registry.from_file(path)
    pipeline = registry.pipeline(options.pipeline)

    duration = options.duration
    protected = Upstream(duration, options.seed)
    bare = Upstream(duration, options.seed)
    log_lines: deque[str] = deque(maxlen=8)
    print_lock = threading.Lock()
    start = time.monotonic()

    def log(message: str) -> None:
        line = f"[{time.monotonic() - start:5.1f}s] {message}"
        with print_lock:
            log_lines.append(line)
            if not live:
                console.print(line)

    narrator = Narrator(log, start)
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    # The pipeline's own policies serve the demo's one host (per_host=False), so the
    # table can show them. A 429 says the upstream is busy, not broken: retried, but not
    # a failure for the breaker.
    transport = ResilientTransport(
        pipeline,
        httpx.HTTPTransport(limits=limits),
        per_host=False,
        failure_statuses={500, 502, 503, 504},
    )
    with (
        httpx.Client(transport=transport) as with_client,
        httpx.Client(limits=limits) as bare_client,
    ):
        with_url, bare_url = f"{protected.url}/item", f"{bare.url}/item"
        sides = [
            Side("with the pipeline", protected, lambda: fetch(with_client, with_url)),
            Side("without", bare, lambda: fetch(bare_client, bare_url)),
        ]
        console.print(
            f"resilience demo: {duration:g} s of {options.rate:g} requests/s against two "
            f"flaky upstreams on 127.0.0.1, one client through the pipeline "
            f"{pipeline.name!r} of {path.name}, one without."
        )

        def view() -> Any:
            elapsed = min(time.monotonic() - start, duration)
            phase = protected.phase(elapsed)
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
                policies_table(pipeline, narrator),
                comparison(sides),
                lines,
            )

        stop = threading.Event()
        unlisten = pipeline.listen(narrator)
        for upstream in (protected, bare):
            upstream.start()
        start = time.monotonic()
        drivers = [
            threading.Thread(target=drive, args=(side, options.rate, duration, start, stop))
            for side in sides
        ]
        for driver in drivers:
            driver.start()
        last_phase = None
        interrupted = False
        try:
            screen_context: Any = (
                Live(view(), console=console, refresh_per_second=8)
                if live
                else contextlib.nullcontext()
            )
            with screen_context as screen:
                while any(driver.is_alive() for driver in drivers):
                    phase = protected.phase()
                    if phase != last_phase and time.monotonic() - start < duration:
                        last_phase = phase
                        log(f"upstream: {phase.name} ({phase.description})")
                    if screen is not None:
                        screen.update(view())
                    time.sleep(0.1)
                if screen is not None:
                    screen.update(view())
        except KeyboardInterrupt:
            interrupted = True
            stop.set()
            for driver in drivers:
                driver.join()
        finally:
            unlisten()
            for upstream in (protected, bare):
                upstream.stop()
    if not live:
        console.print(policies_table(pipeline, narrator))
        console.print(comparison(sides))
    console.print(verdict(sides[0], sides[1]) + (" (interrupted)" if interrupted else ""))
    return 130 if interrupted else 0
