"""The metrics every exporter publishes, and how events and live policies feed them.

One catalogue, two kinds of sources:

- *event metrics* (counters and histograms) are updated from events as they arrive.
  ``Handlers`` turns an event into the updates it causes; the updates for one
  (kind, type, name[, host]) are resolved once into a small function, so an exporter's
  per-event work is a dict lookup and a few increments.
- *live metrics* (gauges) are read from the policies themselves when the exporter is
  collected (a scrape): a breaker's state, a bulkhead's occupancy. Reading the state
  then, rather than replaying transitions, is what makes "exactly one state gauge at 1"
  hold for a breaker that never changed state, or one created before the exporter.

Exporters (Prometheus, OpenTelemetry) only say how to make an instrument.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol, cast

from .._policies.events import (
    GLOBAL_LISTENERS,
    WATCHERS,
    Acquired,
    CallOutcome,
    Event,
    HedgeWon,
    Released,
    StateChange,
)

__all__ = [
    "EVENT_METRICS",
    "LIVE_METRICS",
    "Handlers",
    "Instruments",
    "MetricSpec",
    "sample_live",
]

_log = logging.getLogger("resilience")

#: Label value for events of unnamed policies.
UNNAMED = ""
#: Label value that replaces names once a metric set has seen ``max_names`` of them.
OVERFLOW = "_other"

BREAKER_STATES = ("closed", "open", "half_open", "forced_open", "disabled")

#: Call latency buckets, in seconds: outbound calls from a millisecond to half a minute.
LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
#: Waiting-time buckets, in seconds; the first one counts calls that did not wait.
WAIT_BUCKETS = (0.0, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True)
class MetricSpec:
    """One metric. ``name`` is the Prometheus name after the namespace, without the
    ``_total`` a counter gets; ``otel`` is the OpenTelemetry instrument name."""

    name: str
    type: Literal["counter", "histogram", "gauge"]
    labels: tuple[str, ...]
    help: str
    otel: str
    unit: str = ""
    #: Takes a ``host`` label (last) when the exporter is asked for one.
    per_host: bool = False
    buckets: tuple[float, ...] = ()


CALLS = MetricSpec(
    "calls",
    "counter",
    ("policy", "name", "outcome"),
    "Calls that ended in a circuit breaker or a bulkhead, by outcome: success, failure, "
    "ignored (neither, for the breaker), rejected (refused without running), cancelled.",
    "resilience.calls",
    "{call}",
    per_host=True,
)
REJECTIONS = MetricSpec(
    "rejections",
    "counter",
    ("policy", "name", "reason"),
    "Calls a policy refused or cut short, by reason: open (circuit breaker), rate_limited "
    "(token bucket), bulkhead_full (bulkhead), timeout (timeout).",
    "resilience.rejections",
    "{call}",
    per_host=True,
)
RETRIES = MetricSpec(
    "retries",
    "counter",
    ("name",),
    "Retries: failed attempts that another attempt followed.",
    "resilience.retries",
    "{retry}",
    per_host=True,
)
RETRY_CALLS = MetricSpec(
    "retry_calls",
    "counter",
    ("name", "outcome"),
    "Calls that a retry policy had to act on, by outcome: success_after_retry, or gave_up "
    "(attempts, deadline or budget ran out).",
    "resilience.retry.calls",
    "{call}",
    per_host=True,
)
TRANSITIONS = MetricSpec(
    "circuit_breaker_transitions",
    "counter",
    ("name", "from_state", "to_state"),
    "Circuit breaker state changes (open periods shorter than a scrape interval show here).",
    "resilience.circuit_breaker.transitions",
    "{transition}",
)
FALLBACKS = MetricSpec(
    "fallbacks",
    "counter",
    ("name",),
    "Calls answered by a fallback instead of the protected call.",
    "resilience.fallbacks",
    "{call}",
    per_host=True,
)
CALL_DURATION = MetricSpec(
    "call_duration_seconds",
    "histogram",
    ("policy", "name"),
    "Duration of calls measured by a circuit breaker (each attempt) or a bulkhead (the "
    "time a call held its slot), in seconds.",
    "resilience.call.duration",
    "s",
    per_host=True,
    buckets=LATENCY_BUCKETS,
)
LIMITER_WAIT = MetricSpec(
    "token_bucket_wait_seconds",
    "histogram",
    ("name",),
    "Seconds a call waited for a token bucket's tokens (0 when they were free).",
    "resilience.token_bucket.wait.duration",
    "s",
    buckets=WAIT_BUCKETS,
)
BULKHEAD_WAIT = MetricSpec(
    "bulkhead_wait_seconds",
    "histogram",
    ("name",),
    "Seconds a call waited in a bulkhead's queue for a slot (0 when one was free).",
    "resilience.bulkhead.wait.duration",
    "s",
    buckets=WAIT_BUCKETS,
)

BREAKER_STATE = MetricSpec(
    "circuit_breaker_state",
    "gauge",
    ("name", "state"),
    "Circuit breaker state: one series per state, 1 for the current one, 0 for the others.",
    "resilience.circuit_breaker.state",
)
BREAKER_FAILURE_RATE = MetricSpec(
    "circuit_breaker_failure_rate",
    "gauge",
    ("name",),
    "Failures / calls in the circuit breaker's current window (0 when it is empty).",
    "resilience.circuit_breaker.failure_rate",
    "1",
)
BREAKER_SLOW_RATE = MetricSpec(
    "circuit_breaker_slow_call_rate",
    "gauge",
    ("name",),
    "Slow calls / calls in the circuit breaker's current window (0 when it is empty).",
    "resilience.circuit_breaker.slow_call_rate",
    "1",
)
BREAKER_WINDOW_CALLS = MetricSpec(
    "circuit_breaker_window_calls",
    "gauge",
    ("name",),
    "Calls in the circuit breaker's current window (rates count from minimum_calls).",
    "resilience.circuit_breaker.window.calls",
    "{call}",
)
BULKHEAD_IN_FLIGHT = MetricSpec(
    "bulkhead_in_flight",
    "gauge",
    ("name",),
    "Slots of a bulkhead taken now (running calls).",
    "resilience.bulkhead.in_flight",
    "{call}",
)
BULKHEAD_QUEUED = MetricSpec(
    "bulkhead_queued",
    "gauge",
    ("name",),
    "Calls waiting in a bulkhead's queue now.",
    "resilience.bulkhead.queued",
    "{call}",
)
BULKHEAD_MAX_CONCURRENT = MetricSpec(
    "bulkhead_max_concurrent",
    "gauge",
    ("name",),
    "A bulkhead's max_concurrent: its number of slots.",
    "resilience.bulkhead.max_concurrent",
    "{call}",
)
BULKHEAD_MAX_QUEUE = MetricSpec(
    "bulkhead_max_queue",
    "gauge",
    ("name",),
    "A bulkhead's max_queue: how many calls may wait.",
    "resilience.bulkhead.max_queue",
    "{call}",
)
LIMITER_AVAILABLE = MetricSpec(
    "token_bucket_available_tokens",
    "gauge",
    ("name",),
    "Tokens free in a token bucket now (negative while tokens reserved by waiting calls refill).",
    "resilience.token_bucket.available",
    "{token}",
)
TIMEOUT_ABANDONED = MetricSpec(
    "timeout_abandoned_threads",
    "gauge",
    ("name",),
    "Worker threads still running sync calls whose caller a timeout stopped waiting for.",
    "resilience.timeout.abandoned",
    "{thread}",
)

SHADOW_REJECTIONS = MetricSpec(
    "shadow_rejections",
    "counter",
    ("policy", "name", "reason"),
    'Calls a policy in shadow mode (mode="metrics_only") would have refused, and let run, '
    "by reason: open, rate_limited, bulkhead_full, concurrency_limit, throttled.",
    "resilience.shadow.rejections",
    "{call}",
    per_host=True,
)
HEDGES = MetricSpec(
    "hedges",
    "counter",
    ("name",),
    "Extra attempts a hedge started (not counting the first attempt of each call).",
    "resilience.hedges",
    "{attempt}",
    per_host=True,
)
HEDGE_CALLS = MetricSpec(
    "hedge_calls",
    "counter",
    ("name", "outcome"),
    "Calls through a hedge, by outcome: first (the first attempt won), hedge (a later "
    "attempt won), gave_up (every attempt failed).",
    "resilience.hedge.calls",
    "{call}",
    per_host=True,
)
CHAOS_INJECTIONS = MetricSpec(
    "chaos_injections",
    "counter",
    ("name", "injected"),
    "What chaos policies injected, by kind: fault, latency, result.",
    "resilience.chaos.injections",
    "{call}",
)
STORE_OUTAGES = MetricSpec(
    "store_outages",
    "counter",
    ("name",),
    "Times a shared store (name: its prefix) stopped reaching Redis and fell back to local state.",
    "resilience.store.outages",
    "{outage}",
)

EVENT_METRICS = (
    CALLS,
    REJECTIONS,
    RETRIES,
    RETRY_CALLS,
    TRANSITIONS,
    FALLBACKS,
    CALL_DURATION,
    LIMITER_WAIT,
    BULKHEAD_WAIT,
    SHADOW_REJECTIONS,
    HEDGES,
    HEDGE_CALLS,
    CHAOS_INJECTIONS,
    STORE_OUTAGES,
)
ADAPTIVE_LIMIT = MetricSpec(
    "adaptive_concurrency_limit",
    "gauge",
    ("name",),
    "An adaptive concurrency limit's limit now: how many calls it admits at once.",
    "resilience.adaptive_concurrency.limit",
    "{call}",
)
ADAPTIVE_IN_FLIGHT = MetricSpec(
    "adaptive_concurrency_in_flight",
    "gauge",
    ("name",),
    "Calls an adaptive concurrency limit admitted that are running now.",
    "resilience.adaptive_concurrency.in_flight",
    "{call}",
)
THROTTLE_PROBABILITY = MetricSpec(
    "adaptive_throttle_rejection_probability",
    "gauge",
    ("name",),
    "The probability that an adaptive throttle rejects a call made now.",
    "resilience.adaptive_throttle.rejection_probability",
    "1",
)
HEDGE_DELAY = MetricSpec(
    "hedge_delay_seconds",
    "gauge",
    ("name",),
    "A hedge's delay now (learned from recent latencies, with a LatencyQuantile).",
    "resilience.hedge.delay",
    "s",
)
SHADOW_MODE = MetricSpec(
    "shadow_mode",
    "gauge",
    ("policy", "name"),
    'Policies in shadow mode (mode="metrics_only"), each 1: their state and would-be '
    "rejections are reported, but they refuse nothing.",
    "resilience.shadow_mode",
)

LIVE_METRICS = (
    BREAKER_STATE,
    BREAKER_FAILURE_RATE,
    BREAKER_SLOW_RATE,
    BREAKER_WINDOW_CALLS,
    BULKHEAD_IN_FLIGHT,
    BULKHEAD_QUEUED,
    BULKHEAD_MAX_CONCURRENT,
    BULKHEAD_MAX_QUEUE,
    LIMITER_AVAILABLE,
    TIMEOUT_ABANDONED,
    ADAPTIVE_LIMIT,
    ADAPTIVE_IN_FLIGHT,
    THROTTLE_PROBABILITY,
    HEDGE_DELAY,
    SHADOW_MODE,
)


# -- event metrics ---------------------------------------------------------------------

Update = Callable[[float], object]
Handler = Callable[[Event], None]


class Instruments(Protocol):
    """How an exporter records: an ``update(value)`` function for one labelled series."""

    def update(self, spec: MetricSpec, labels: tuple[str, ...]) -> Update: ...


def _ignore(event: Event) -> None:
    return None


def _outcome_of_release(event: Event) -> str:
    exc = event.exception
    if exc is None:
        return "success"
    return "failure" if isinstance(exc, Exception) else "cancelled"


_KINDS = frozenset(
    {
        "circuit_breaker",
        "retry",
        "timeout",
        "token_bucket",
        "bulkhead",
        "fallback",
        "hedge",
        "adaptive_concurrency",
        "adaptive_throttle",
        "chaos",
        "store",
    }
)


def check_options(host: object, max_names: object) -> None:
    """The arguments every exporter takes."""
    if not isinstance(host, bool):
        raise TypeError(f"host must be True or False, got {host!r}")
    if isinstance(max_names, bool) or not isinstance(max_names, int) or max_names < 1:
        raise ValueError(f"max_names must be an int of at least 1, got {max_names!r}")


class Handlers:
    """Event -> metric updates, resolved once per (kind, type, name[, host]).

    ``record(event)`` is the listener. Past ``max_names`` distinct names of one policy
    kind (or ``max_names`` hosts), further ones are recorded as ``_other``, so that a
    policy per tenant or calls to many hosts cannot explode a metric's series, nor this
    object's memory.

    A handler is built for one (kind, type), which fixes the class of the event's
    ``details`` (docs/events.md), so it reads them without checking their class (the
    ``cast`` lines name it for mypy: a cast costs a call, no check).
    """

    def __init__(self, instruments: Instruments, *, host: bool, max_names: int) -> None:
        self._instruments = instruments
        self._host = host
        self._max_names = max_names
        self._lock = threading.Lock()
        # Keyed by the event's own (kind, type, name[, host]): the hot lookup.
        self._cache: dict[tuple[Any, ...], Handler] = {}
        # Keyed by label values (several overflowing names share one entry).
        self._by_labels: dict[tuple[str, ...], Handler] = {}
        self._names: dict[tuple[str, str], str] = {}
        self._hosts: set[str] = set()
        self._per_kind: dict[str, int] = {}
        self._warned: set[str] = set()
        #: (kind, name) of every named policy whose events were recorded by name.
        self.seen: set[tuple[str, str]] = set()

    def record(self, event: Event) -> None:
        """Record ``event``."""
        if self._host:
            key: tuple[Any, ...] = (event.kind, event.type, event.name, event.host)
        else:
            key = (event.kind, event.type, event.name)
        handler = self._cache.get(key)
        if handler is None:
            if event.kind not in _KINDS:
                return  # another kind of policy: nothing to record
            handler = self._resolve(key, event)
        handler(event)

    def _overflow(self, what: str) -> str:
        if what not in self._warned:
            self._warned.add(what)
            _log.warning(
                "resilience metrics: more than %d distinct %s; further ones are recorded as %r",
                self._max_names,
                what,
                OVERFLOW,
            )
        return OVERFLOW

    def _name_label(self, kind: str, name: str | None) -> str:
        if name is None:
            return UNNAMED
        label = self._names.get((kind, name))
        if label is not None:
            return label
        count = self._per_kind.get(kind, 0)
        if count >= self._max_names:
            return self._overflow(f"{kind} names")
        self._per_kind[kind] = count + 1
        self._names[(kind, name)] = name
        self.seen.add((kind, name))
        return name

    def _host_label(self, host: str | None) -> tuple[str, ...]:
        if not self._host:
            return ()
        if host is None:
            return ("",)
        if host not in self._hosts:
            if len(self._hosts) >= self._max_names:
                return (self._overflow("hosts"),)
            self._hosts.add(host)
        return (host,)

    def _resolve(self, key: tuple[Any, ...], event: Event) -> Handler:
        with self._lock:
            name = self._name_label(event.kind, event.name)
            host = self._host_label(event.host)
            labels = (event.kind, event.type, name, *host)
            handler = self._by_labels.get(labels)
            if handler is None:
                handler = self._by_labels[labels] = self._build(event.kind, event.type, name, host)
            if name != OVERFLOW and OVERFLOW not in host:
                self._cache[key] = handler
            return handler

    def _series(self, spec: MetricSpec, labels: tuple[str, ...], host: tuple[str, ...]) -> Update:
        if spec.per_host:
            labels += host
        return self._instruments.update(spec, labels)

    def _count(self, spec: MetricSpec, labels: tuple[str, ...], host: tuple[str, ...]) -> Handler:
        add = self._series(spec, labels, host)

        def count(event: Event) -> None:
            add(1.0)

        return count

    def _build(self, kind: str, type_: str, name: str, host: tuple[str, ...]) -> Handler:
        series, count = self._series, self._count
        if kind == "circuit_breaker":
            if type_ in ("success", "failure", "ignored"):
                return self._finished(
                    series(CALLS, (kind, name, type_), host),
                    series(CALL_DURATION, (kind, name), host),
                )
            if type_ == "rejected":
                return self._rejected(kind, name, "open", host)
            if type_ == "state_change":
                return self._transitions(name)
        elif kind == "retry":
            if type_ == "retry":
                return count(RETRIES, (name,), host)
            if type_ == "give_up":
                return count(RETRY_CALLS, (name, "gave_up"), host)
            if type_ == "success":
                return count(RETRY_CALLS, (name, "success_after_retry"), host)
        elif kind == "timeout":
            if type_ == "timeout":
                return count(REJECTIONS, (kind, name, "timeout"), host)
        elif kind == "token_bucket":
            if type_ == "acquired":
                return self._waited(series(LIMITER_WAIT, (name,), host))
            if type_ == "rejected":
                return self._rejected(kind, name, "rate_limited", host, calls=False)
        elif kind in ("bulkhead", "adaptive_concurrency"):
            if type_ == "acquired" and kind == "bulkhead":
                return self._waited(series(BULKHEAD_WAIT, (name,), host))
            if type_ == "released":
                return self._released(kind, name, host)
            if type_ == "rejected":
                reason = "bulkhead_full" if kind == "bulkhead" else "concurrency_limit"
                return self._rejected(kind, name, reason, host)
            if type_ == "cancelled":
                return count(CALLS, (kind, name, "cancelled"), host)
        elif kind == "fallback" and type_ == "fallback":
            return count(FALLBACKS, (name,), host)
        elif kind == "adaptive_throttle" and type_ == "rejected":
            return self._rejected(kind, name, "throttled", host, calls=False)
        elif kind == "hedge":
            if type_ == "hedge":
                return count(HEDGES, (name,), host)
            if type_ == "success":
                return self._won(name, host)
            if type_ == "give_up":
                return count(HEDGE_CALLS, (name, "gave_up"), host)
        elif kind == "chaos" and type_ in ("fault", "latency", "result"):
            return count(CHAOS_INJECTIONS, (name, type_), host)
        elif kind == "store" and type_ == "unavailable":
            return count(STORE_OUTAGES, (name,), host)
        return _ignore

    def _won(self, name: str, host: tuple[str, ...]) -> Handler:
        first = self._series(HEDGE_CALLS, (name, "first"), host)
        later = self._series(HEDGE_CALLS, (name, "hedge"), host)

        def won(event: Event) -> None:
            details = cast(HedgeWon, event.details)
            (first if details.attempt == 1 else later)(1.0)

        return won

    @staticmethod
    def _finished(add: Update, observe: Update) -> Handler:
        def finished(event: Event) -> None:
            add(1.0)
            details = cast(CallOutcome, event.details)
            duration = details.duration
            if duration is not None:
                observe(duration)

        return finished

    def _rejected(
        self, kind: str, name: str, reason: str, host: tuple[str, ...], *, calls: bool = True
    ) -> Handler:
        """A refusal; from a policy in shadow mode, one it would have made (the call ran)."""
        call = self._series(CALLS, (kind, name, "rejected"), host) if calls else None
        reject = self._series(REJECTIONS, (kind, name, reason), host)
        would = self._series(SHADOW_REJECTIONS, (kind, name, reason), host)

        def rejected(event: Event) -> None:
            if event.shadow:
                would(1.0)
                return
            if call is not None:
                call(1.0)
            reject(1.0)

        return rejected

    @staticmethod
    def _waited(observe: Update) -> Handler:
        def waited(event: Event) -> None:
            details = cast(Acquired, event.details)
            observe(details.waited)

        return waited

    def _released(self, kind: str, name: str, host: tuple[str, ...]) -> Handler:
        by_outcome = {
            outcome: self._series(CALLS, (kind, name, outcome), host)
            for outcome in ("success", "failure", "cancelled")
        }
        observe = self._series(CALL_DURATION, (kind, name), host)

        def released(event: Event) -> None:
            by_outcome[_outcome_of_release(event)](1.0)
            details = cast(Released, event.details)
            held = details.held
            if held is not None:
                observe(held)

        return released

    def _transitions(self, name: str) -> Handler:
        updates: dict[tuple[str, str], Update] = {}
        update = self._instruments.update

        def transition(event: Event) -> None:
            details = cast(StateChange, event.details)
            pair = (details.from_state, details.to_state)
            add = updates.get(pair)
            if add is None:
                add = updates[pair] = update(TRANSITIONS, (name, *pair))
            add(1.0)

        return transition


# -- live metrics -----------------------------------------------------------------------

Sample = tuple[MetricSpec, tuple[str, ...], float]
_LIVE_KINDS = frozenset(
    {
        "circuit_breaker",
        "bulkhead",
        "token_bucket",
        "timeout",
        "adaptive_concurrency",
        "adaptive_throttle",
        "hedge",
    }
)


def _live_policies() -> list[Any]:
    # Another thread may create a policy while we copy the weak set; try again then.
    for _ in range(10):
        try:
            return list(WATCHERS)
        except RuntimeError:
            continue
    return []


def tracked_by(listener: object, seen: set[tuple[str, str]]) -> Callable[[Any], bool]:
    """Which policies ``listener`` reports on: all of them when it listens globally;
    else those it listens to, or whose events it has seen (per-key policies)."""

    def tracked(policy: Any) -> bool:
        return (
            any(item is listener for item in GLOBAL_LISTENERS)
            or any(item is listener for item in policy._listeners)
            or (policy.kind, policy.name) in seen
        )

    return tracked


def _sample_policy(policy: Any) -> Iterator[Sample]:
    kind, name = policy.kind, policy.name
    if kind == "circuit_breaker":
        snapshot = policy.metrics()
        for state in BREAKER_STATES:
            yield BREAKER_STATE, (name, state), 1.0 if snapshot.state == state else 0.0
        yield BREAKER_FAILURE_RATE, (name,), snapshot.failure_rate
        yield BREAKER_SLOW_RATE, (name,), snapshot.slow_call_rate
        yield BREAKER_WINDOW_CALLS, (name,), float(snapshot.calls)
    elif kind == "bulkhead":
        yield BULKHEAD_IN_FLIGHT, (name,), float(policy.in_flight)
        yield BULKHEAD_QUEUED, (name,), float(policy.queued)
        yield BULKHEAD_MAX_CONCURRENT, (name,), float(policy.max_concurrent)
        yield BULKHEAD_MAX_QUEUE, (name,), float(policy.max_queue)
    elif kind == "token_bucket":
        yield LIMITER_AVAILABLE, (name,), float(policy.available)
    elif kind == "timeout":
        yield TIMEOUT_ABANDONED, (name,), float(policy.abandoned)
    elif kind == "adaptive_concurrency":
        yield ADAPTIVE_LIMIT, (name,), float(policy.limit)
        yield ADAPTIVE_IN_FLIGHT, (name,), float(policy.in_flight)
    elif kind == "adaptive_throttle":
        yield THROTTLE_PROBABILITY, (name,), policy.probability
    elif kind == "hedge":
        yield HEDGE_DELAY, (name,), float(policy.delay)
    if policy._shadow:
        yield SHADOW_MODE, (kind, name), 1.0


def _host_of(policy: Any) -> str:
    """The host a per-host copy of the HTTP integrations serves (its store key is
    ``"{key}@{scheme://host:port}"``), or "" for any other policy."""
    key = getattr(policy, "key", None)
    return key.partition("@")[2] if isinstance(key, str) else ""


def sample_live(tracked: Callable[[Any], bool], host: bool = False) -> list[Sample]:
    """The live metrics of the named policies ``tracked`` accepts, in name order, with
    a ``host`` label last when ``host`` is true.

    Policies sharing a kind and a name (sharing a store's state) are reported once;
    with ``host``, once per host (the HTTP integrations' per-host copies share their
    template's name). A policy whose state cannot be read now (a shared store that is
    down) is left out of this collection rather than failing it.
    """
    chosen: dict[tuple[str, str, str], Any] = {}
    for policy in _live_policies():
        kind, name = policy.kind, policy.name
        if kind not in _LIVE_KINDS or name is None:
            continue
        key = (kind, name, _host_of(policy) if host else "")
        if key not in chosen and tracked(policy):
            chosen[key] = policy
    samples: list[Sample] = []
    for key in sorted(chosen):
        extra = (key[2],) if host else ()
        try:
            samples.extend(
                (spec, labels + extra, value) for spec, labels, value in _sample_policy(chosen[key])
            )
        except Exception:
            _log.warning("resilience metrics: cannot read %s %r now", *key[:2], exc_info=True)
    return samples
