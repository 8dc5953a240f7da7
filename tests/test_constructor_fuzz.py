"""Every public constructor, given a value of the wrong kind or size for one parameter,
refuses it with a ValueError or TypeError whose message names that parameter (never an
OverflowError, AttributeError, MemoryError... from deep inside), and builds with every
value that parameter legitimately takes.

``TABLE`` gives, per constructor, a valid value for each parameter and what the
parameter accepts (an oracle written from the docs' "Valid values" columns). Each test
substitutes one value for one parameter, the others staying valid: NaN, infinities,
huge ints, negative and zero durations and counts, bools where numbers are expected
(every number parameter refuses them), str, list, object(), None, classes, callables...
"""

from __future__ import annotations

import math
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resilience import (
    AIMD,
    AdaptiveConcurrency,
    AdaptiveThrottle,
    Backoff,
    Bulkhead,
    Chaos,
    CircuitBreaker,
    Constant,
    CountWindow,
    DecorrelatedJitter,
    Exponential,
    Fallback,
    Gradient,
    Hedge,
    KeyedPolicy,
    LatencyQuantile,
    Linear,
    Pipeline,
    Policy,
    Registry,
    Retry,
    RetryBudget,
    SystemClock,
    Timeout,
    TokenBucket,
    per_key,
)
from resilience._core.validation import MAX_SLOTS, MIN_WINDOW, show
from resilience.stores import BreakerStore, BudgetStore, BulkheadStore, LimiterStore, MemoryStore
from resilience.testing import FakeClock, LoopClock

Accepts = Callable[[Any], bool]
TIMEOUT_MAX = threading.TIMEOUT_MAX

# -- what a parameter accepts ---------------------------------------------------------------


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _finite(value: object) -> float | None:
    """The value as a float if it is a real, finite number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def count(minimum: int = 1, maximum: float = math.inf, *, none: bool = False) -> Accepts:
    def accepts(value: object) -> bool:
        if value is None:
            return none
        return _is_int(value) and minimum <= value <= maximum  # type: ignore[operator]

    return accepts


def number(
    low: float = -math.inf,
    high: float = math.inf,
    *,
    open_low: bool = False,
    open_high: bool = False,
    none: bool = False,
) -> Accepts:
    def accepts(value: object) -> bool:
        if value is None:
            return none
        x = _finite(value)
        if x is None:
            return False
        return (x > low if open_low else x >= low) and (x < high if open_high else x <= high)

    return accepts


FRACTION = number(0.0, 1.0, open_low=True)  # (0, 1]


def duration(
    *, positive: bool = False, at_least: float = 0.0, at_most: float = math.inf, none: bool = False
) -> Accepts:
    """Seconds as a number or a timedelta: finite, >= 0 (> 0 if positive), in range."""

    def accepts(value: object) -> bool:
        if value is None:
            return none
        seconds = _seconds(value)
        if seconds is None or seconds < at_least or (positive and seconds == 0):
            return False
        return seconds <= at_most

    return accepts


def _seconds(value: object) -> float | None:
    return value.total_seconds() if isinstance(value, timedelta) else _finite(value)


def instance_of(*types: type, none: bool = False) -> Accepts:
    def accepts(value: object) -> bool:
        return (none and value is None) or (
            not isinstance(value, type) and isinstance(value, types)
        )

    return accepts


def either(*oracles: Accepts) -> Accepts:
    return lambda value: any(accepts(value) for accepts in oracles)


def ANY(value: object) -> bool:
    return True


def NAME(value: object) -> bool:
    return value is None or (isinstance(value, str) and value != "" and value == value.strip())


def MODE(value: object) -> bool:
    return isinstance(value, str) and value in ("enforce", "metrics_only")


def SEED(value: object) -> bool:
    return value is None or _is_int(value)


def CLOCK(value: object) -> bool:
    if value is None:
        return True
    methods = ("monotonic", "sleep", "asleep")
    return not isinstance(value, type) and all(callable(getattr(value, m, None)) for m in methods)


def CALLABLE(value: object) -> bool:
    return callable(value)


def PREDICATE(value: object) -> bool:
    return value is None or callable(value)


def _exception_type(value: object) -> bool:
    return isinstance(value, type) and issubclass(value, BaseException)


def EXCEPTIONS(value: object) -> bool:
    """Exception types (one or a collection of them), or a predicate."""
    if isinstance(value, type):
        return _exception_type(value)
    if isinstance(value, (tuple, list, set, frozenset)):
        return all(_exception_type(item) for item in value)
    return callable(value)


def FAULT(value: object) -> bool:
    """An exception, an exception class, or a callable making one (checked per fault)."""
    return isinstance(value, BaseException) or callable(value)


def ENABLED(value: object) -> bool:
    return isinstance(value, bool) or callable(value)


def OPEN_FOR(value: object) -> bool:
    """A duration >= 0, or a callable whose open_for(1) is one (called at construction)."""
    if duration()(value):
        return True
    if not callable(value) or isinstance(value, timedelta):
        return False
    try:
        return duration()(value(1))
    except Exception:
        return False


def JITTER(value: object) -> bool:
    return isinstance(value, str) and value in ("none", "full", "equal")


def BACKOFF(value: object) -> bool:
    return value is None or (not isinstance(value, type) and isinstance(value, Backoff))


# -- the constructors ---------------------------------------------------------------------------

CLOCK_VALUE = FakeClock()
WAIT = duration(at_most=TIMEOUT_MAX, none=True)  # None: as long as it takes
WINDOW = duration(at_least=MIN_WINDOW)  # cut into buckets: at least a microsecond


def _token_interval(per: object, rate: object) -> bool:
    """A bucket's rate and per, when the seconds between two tokens are a number > 0."""
    rate_value, per_value = _finite(rate), _finite(per)
    if rate_value is None or per_value is None or rate_value <= 0:
        return False
    return 0 < per_value / rate_value < math.inf


def _policy(_key: object) -> Policy:
    return Timeout(1)


def _key(*args: object, **kwargs: object) -> object:
    return "one"


def _handler(reason: object) -> object:
    return "substitute"


def _in_store(make: Callable[..., object]) -> Callable[..., object]:
    """``make(**kwargs)`` with a fresh MemoryStore: shared state, keyed."""
    return lambda **kwargs: make(**kwargs, store=MemoryStore())


CONFIG = {"pipelines": {"payments": {"timeout": {"seconds": 1}}}}

#: label -> (constructor, {parameter: (valid value, what the parameter accepts)})
TABLE: dict[str, tuple[Callable[..., object], dict[str, tuple[Any, Accepts]]]] = {
    "AIMD": (
        AIMD,
        {
            "backoff_ratio": (0.9, number(0.0, 1.0, open_low=True, open_high=True)),
            "slow_call_duration": (1.0, duration(positive=True, none=True)),
        },
    ),
    "Gradient": (
        Gradient,
        {
            "tolerance": (1.5, number(1.0)),
            "smoothing": (0.2, FRACTION),
            "backoff_ratio": (0.9, number(0.0, 1.0, open_low=True, open_high=True)),
            "probe_interval": (1000, count(none=True)),
            "queue_size": (4.0, number(1.0, none=True)),
            "seed": (1, SEED),
        },
    ),
    "AdaptiveConcurrency": (
        AdaptiveConcurrency,
        {
            "algorithm": (AIMD(), instance_of(AIMD, Gradient, none=True)),
            "initial_limit": (5, count(1, 200, none=True)),  # within [min_limit, max_limit]
            "min_limit": (1, count(1, 5)),
            "max_limit": (200, count(5, MAX_SLOTS)),
            "max_queue": (0, count(0, sys.maxsize)),
            "max_wait": (1.0, WAIT),
            "dropped_on": ((TimeoutError,), EXCEPTIONS),
            "dropped_if": (None, PREDICATE),
            "mode": ("enforce", MODE),
            "name": ("limit", NAME),
            "clock": (CLOCK_VALUE, CLOCK),
        },
    ),
    "AdaptiveThrottle": (
        AdaptiveThrottle,
        {
            "k": (2.0, number(1.0)),
            "window": (120.0, WINDOW),
            "failure_on": ((Exception,), EXCEPTIONS),
            "ignore": ((), EXCEPTIONS),
            "failure_if": (None, PREDICATE),
            "mode": ("enforce", MODE),
            "seed": (1, SEED),
            "name": ("throttle", NAME),
            "clock": (CLOCK_VALUE, CLOCK),
        },
    ),
    "Bulkhead": (
        Bulkhead,
        {
            "max_concurrent": (2, count(1, MAX_SLOTS)),
            "max_queue": (1, count(0, sys.maxsize)),
            "max_wait": (1.0, WAIT),
            "mode": ("enforce", MODE),
            "store": (None, instance_of(BulkheadStore, none=True)),
            "key": ("slots", NAME),
            "name": ("bulkhead", NAME),
            "clock": (CLOCK_VALUE, CLOCK),
        },
    ),
    "Bulkhead(store=MemoryStore())": (
        _in_store(Bulkhead),
        {
            "max_concurrent": (2, count(1, MAX_SLOTS)),
            "max_queue": (1, count(0, sys.maxsize)),
            "key": ("slots", NAME),
        },
    ),
    "CircuitBreaker": (
        CircuitBreaker,
        {
            "name": ("breaker", NAME),
            "failure_rate": (0.5, either(FRACTION, lambda v: v is None)),
            "minimum_calls": (10, count()),
            "consecutive_failures": (3, count(none=True)),
            # A timer waits for the end of each of its ten buckets: at most TIMEOUT_MAX.
            "window": (
                60.0,
                either(
                    duration(at_least=MIN_WINDOW, at_most=TIMEOUT_MAX), instance_of(CountWindow)
                ),
            ),
            "slow_call_duration": (1.0, duration(positive=True, none=True)),
            "slow_call_rate": (1.0, FRACTION),
            "open_for": (30.0, OPEN_FOR),
            "half_open_calls": (1, count()),
            "failure_on": ((Exception,), EXCEPTIONS),
            "ignore": ((), EXCEPTIONS),
            "failure_if": (None, PREDICATE),
            "store": (None, instance_of(BreakerStore, none=True)),
            "key": ("state", NAME),
            "mode": ("enforce", MODE),
            "clock": (CLOCK_VALUE, CLOCK),
        },
    ),
    "CircuitBreaker(store=MemoryStore())": (
        _in_store(CircuitBreaker),
        {
            "name": ("breaker", NAME),
            "minimum_calls": (10, count()),
            "open_for": (30.0, OPEN_FOR),
            "key": ("state", NAME),
        },
    ),
    "Chaos(fault=)": (
        Chaos,
        {
            "rate": (0.5, number(0.0, 1.0)),
            "fault": (ValueError, FAULT),
            "enabled": (True, ENABLED),
            "seed": (1, SEED),
            "name": ("chaos", NAME),
            "clock": (CLOCK_VALUE, CLOCK),
        },
    ),
    "Chaos(latency=)": (
        Chaos,
        {
            "rate": (0.5, number(0.0, 1.0)),
            "latency": (1.0, duration(positive=True, at_most=TIMEOUT_MAX)),
        },
    ),
    "Chaos(result=)": (Chaos, {"rate": (0.5, number(0.0, 1.0)), "result": (1, ANY)}),
    "Chaos.fault": (
        Chaos.fault,
        {"rate": (0.5, number(0.0, 1.0)), "exc": (ValueError("injected"), FAULT)},
    ),
    "Chaos.latency": (
        Chaos.latency,
        {
            "rate": (0.5, number(0.0, 1.0)),
            "seconds": (1.0, duration(positive=True, at_most=TIMEOUT_MAX)),
        },
    ),
    "Chaos.result": (Chaos.result, {"rate": (0.5, number(0.0, 1.0)), "value": (1, ANY)}),
    # Backoffs: max is None (10 s, or the base if larger) or a duration >= the base.
    "Constant": (
        Constant,
        {"delay": (0.1, duration()), "max": (None, duration(at_least=0.1, none=True))},
    ),
    "Linear": (
        Linear,
        {
            "base": (0.1, duration()),
            "step": (0.1, duration()),
            "max": (None, duration(at_least=0.1, none=True)),
        },
    ),
    "Exponential": (
        Exponential,
        {
            "base": (0.1, duration()),
            "factor": (2.0, number(1.0)),
            "max": (None, duration(at_least=0.1, none=True)),
            "jitter": ("full", JITTER),
        },
    ),
    "DecorrelatedJitter": (
        DecorrelatedJitter,
        {"base": (0.1, duration()), "max": (None, duration(at_least=0.1, none=True))},
    ),
    "CountWindow": (CountWindow, {"size": (10, count())}),
    "FakeClock": (FakeClock, {"start": (0.0, number())}),
    "Fallback(value)": (
        Fallback,
        {
            "value": ("substitute", ANY),
            "on": ((Exception,), EXCEPTIONS),
            "if_result": (None, PREDICATE),
            "name": ("fallback", NAME),
            "clock": (CLOCK_VALUE, CLOCK),
        },
    ),
    "Fallback(handler=)": (Fallback, {"handler": (_handler, CALLABLE)}),
    "Hedge": (
        Hedge,
        {
            "delay": (0.1, either(duration(at_most=TIMEOUT_MAX), instance_of(LatencyQuantile))),
            "max_hedges": (1, count()),
            "hedge_on": ((Exception,), EXCEPTIONS),
            "hedge_if_result": (None, PREDICATE),
            "name": ("hedge", NAME),
            "clock": (CLOCK_VALUE, CLOCK),
        },
    ),
    "LatencyQuantile": (
        LatencyQuantile,
        {
            "quantile": (0.95, number(0.0, 1.0, open_low=True, open_high=True)),
            "samples": (100, count(20, MAX_SLOTS)),  # at least min_samples
            "min_samples": (20, count(1, 100)),  # at most samples
            "initial": (1.0, duration(at_most=TIMEOUT_MAX)),
        },
    ),
    # What LatencyQuantile accepts, a Hedge must take too.
    "Hedge(LatencyQuantile(...))": (
        lambda **kwargs: Hedge(LatencyQuantile(**kwargs)),
        {
            "samples": (100, count(20, MAX_SLOTS)),
            "min_samples": (20, count(1, 100)),
            "initial": (1.0, duration(at_most=TIMEOUT_MAX)),
        },
    ),
    "KeyedPolicy": (
        KeyedPolicy,
        {
            "factory": (_policy, CALLABLE),
            "key": (_key, CALLABLE),
            "max_keys": (10, count()),
            "name": ("keyed", NAME),
        },
    ),
    "per_key": (
        per_key,
        {
            "factory": (_policy, CALLABLE),
            "key": (_key, CALLABLE),
            "max_keys": (10, count()),
            "name": ("keyed", NAME),
        },
    ),
    "Pipeline": (
        lambda policies, name: Pipeline(policies, name=name),
        {"policies": (Timeout(1), instance_of(Policy)), "name": ("pipeline", NAME)},
    ),
    "Registry": (
        lambda **kwargs: Registry(CONFIG, **kwargs),
        {
            "env": ({}, instance_of(Mapping, none=True)),
            "clock": (CLOCK_VALUE, CLOCK),
            "source": (None, instance_of(str, os.PathLike, none=True)),
        },
    ),
    "Retry": (
        Retry,
        {
            "attempts": (3, count()),
            "backoff": (Constant(0.1), BACKOFF),
            "retry_on": ((Exception,), EXCEPTIONS),
            "retry_if_result": (None, PREDICATE),
            "deadline": (10.0, duration(positive=True, none=True)),
            "budget": (None, instance_of(RetryBudget, none=True)),
            "name": ("retry", NAME),
            "clock": (CLOCK_VALUE, CLOCK),
        },
    ),
    "RetryBudget": (
        RetryBudget,
        {
            "ratio": (0.1, FRACTION),
            "min_per_second": (10.0, number(0.0)),
            "window": (10.0, WINDOW),
            "store": (None, instance_of(BudgetStore, none=True)),
            "key": ("budget", NAME),
            "clock": (CLOCK_VALUE, CLOCK),
        },
    ),
    "RetryBudget(store=MemoryStore())": (
        _in_store(RetryBudget),
        {"ratio": (0.1, FRACTION), "window": (10.0, WINDOW)},
    ),
    "Timeout": (
        Timeout,
        {
            "seconds": (1.0, duration(positive=True, at_most=TIMEOUT_MAX)),
            "name": ("timeout", NAME),
            "clock": (CLOCK_VALUE, CLOCK),
        },
    ),
    "TokenBucket": (
        TokenBucket,
        {
            "rate": (10.0, lambda rate: _token_interval(1.0, rate)),
            "per": (1.0, lambda per: duration()(per) and _token_interval(_seconds(per), 10.0)),
            "burst": (5.0, number(1.0, none=True)),
            "max_wait": (0.0, duration(none=True)),  # None: as long as it takes
            "store": (None, instance_of(LimiterStore, none=True)),
            "key": ("bucket", NAME),
            "mode": ("enforce", MODE),
            "name": ("bucket", NAME),
            "clock": (CLOCK_VALUE, CLOCK),
        },
    ),
    "TokenBucket(store=MemoryStore())": (
        _in_store(TokenBucket),
        {
            "rate": (10.0, lambda rate: _token_interval(1.0, rate)),
            "burst": (5.0, number(1.0, none=True)),
            "key": ("bucket", NAME),
        },
    ),
    # Constructors without settings: they build, that is all.
    "MemoryStore": (MemoryStore, {}),
    "SystemClock": (SystemClock, {}),
    "LoopClock": (LoopClock, {}),
}

PARAMETERS = [(label, param) for label, (_, params) in TABLE.items() for param in params]

# -- the values ---------------------------------------------------------------------------------


class Opaque:
    """A class: callable (it makes instances), yet no exception, clock or predicate."""


def anything(*args: object, **kwargs: object) -> None:
    """A callable taking anything, returning None."""


#: An int whose repr() raises ValueError (more digits than sys.get_int_max_str_digits()).
HUGE = 10**5000

#: Values of the wrong kind and size, and a few right ones, each tried on every parameter.
SPECIAL: list[Any] = [
    # numbers: non-finite, huge (past float, past repr's digit limit), around 0, bools
    math.nan,
    math.inf,
    -math.inf,
    10**30,
    -(10**30),
    10**400,
    -(10**400),
    HUGE,
    2**63,
    -(2**63),
    sys.maxsize,
    MAX_SLOTS,
    MAX_SLOTS + 1,
    TIMEOUT_MAX,
    TIMEOUT_MAX * 2,
    1e308,
    -1e308,
    5e-324,
    -5e-324,
    -1,
    -1.0,
    -0.5,
    0,
    0.0,
    -0.0,
    0.5,
    1,
    1.5,
    2,
    True,
    False,
    1j,
    Decimal("1"),
    Fraction(1, 2),
    # durations
    timedelta(0),
    timedelta(seconds=-1),
    timedelta(microseconds=1),
    timedelta(seconds=1),
    timedelta.max,
    timedelta.min,
    # other kinds
    None,
    "",
    "1",
    " padded ",
    "enforce",
    "full",
    b"1",
    [],
    [1],
    [ValueError],
    (),
    (ValueError, 1),
    {},
    {"a": "b"},
    set(),
    object(),
    ValueError,
    ValueError("boom"),
    int,
    Opaque,
    anything,
    time,  # a module with monotonic() and sleep() but no asleep()
    FakeClock,  # the class, not a clock
    FakeClock(),
    CountWindow(5),
    LatencyQuantile(),
    Gradient(),
    Timeout(1),
]

VALUES = st.one_of(
    st.sampled_from(SPECIAL),
    st.integers(),
    st.floats(),
    st.timedeltas(),
    st.text(max_size=4),
)

# -- the checks ---------------------------------------------------------------------------------


def check(label: str, param: str, value: object) -> None:
    """Build ``label`` with ``value`` for ``param``: it must build if the parameter accepts
    the value, else raise ValueError or TypeError naming the parameter."""
    make, params = TABLE[label]
    kwargs = {name: valid for name, (valid, _) in params.items()}
    kwargs[param] = value
    if params[param][1](value):
        make(**kwargs)
        return
    try:
        make(**kwargs)
    except (ValueError, TypeError) as exc:
        error = exc
    else:
        pytest.fail(f"{label} accepted {param}={show(value):.80}")
    assert re.search(rf"\b{re.escape(param)}\b", str(error)), (
        f"{label}({param}=...): the message does not name {param!r}: {error}"
    )


def test_the_reported_inputs() -> None:
    with pytest.raises(
        ValueError, match=r"^max_concurrent must be at most 10_000_000, got 10{30}$"
    ):
        Bulkhead(max_concurrent=10**30)
    with pytest.raises(
        TypeError, match=r"^clock must have monotonic\(\), sleep\(\) and asleep\(\), got 1$"
    ):
        RetryBudget(clock=1)  # type: ignore[arg-type]


@pytest.mark.parametrize("label", TABLE)
def test_valid_values_construct(label: str) -> None:
    make, params = TABLE[label]
    make(**{name: valid for name, (valid, _) in params.items()})
    for name, (valid, accepts) in params.items():  # the table agrees with itself
        assert accepts(valid), (label, name)


@pytest.mark.parametrize(("label", "param"), PARAMETERS)
def test_every_special_value(label: str, param: str) -> None:
    for value in SPECIAL:
        check(label, param, value)


@pytest.mark.parametrize(("label", "param"), PARAMETERS)
@settings(max_examples=15, deadline=None)
@given(value=VALUES)
def test_any_value(label: str, param: str, value: object) -> None:
    check(label, param, value)


def test_the_table_covers_every_public_constructor() -> None:
    import resilience

    covered = {label.split("(")[0].split(".")[0] for label in TABLE}
    # Not constructors taking settings: protocols, errors, records and functions.
    others = {
        "Attempt",
        "Backoff",
        "BreakerMetrics",
        "BulkheadFull",
        "CircuitOpen",
        "Clock",
        "ConfigError",
        "DescribedPolicy",
        "Event",
        "PipelineDescription",
        "Policy",
        "RateLimited",
        "ResilienceError",
        "Throttled",
        "TimeoutExceeded",
        "listen",
        "remaining",
    }
    # Event details are records too (EventDetails and its subclasses).
    others |= {
        name
        for name in resilience.__all__
        if isinstance(getattr(resilience, name), type)
        and issubclass(getattr(resilience, name), resilience.EventDetails)
    }
    assert set(resilience.__all__) - others <= covered, set(resilience.__all__) - others - covered
