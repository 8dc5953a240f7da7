"""Argument checks shared by every constructor.

Each helper names the parameter and the bad value in its message, so that
``CircuitBreaker(failure_rate=1.5)`` says exactly what is wrong.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from .clock import SYSTEM_CLOCK, Clock

__all__ = [
    "MAX_SLOTS",
    "MIN_WINDOW",
    "check_bool",
    "check_clock",
    "check_duration",
    "check_exception_filter",
    "check_fraction",
    "check_mode",
    "check_name",
    "check_number",
    "check_positive_int",
    "check_predicate",
    "check_wait",
    "check_window",
    "show",
]

ExceptionFilter = Callable[[BaseException], bool]


def show(value: object) -> str:
    """``repr(value)`` for an error message, or a short stand-in for an int too long to
    write out (``repr`` itself raises ``ValueError`` past ``sys.get_int_max_str_digits()``)."""
    try:
        return repr(value)
    except ValueError:  # an int of more digits than sys.get_int_max_str_digits() allows
        if isinstance(value, int):
            return f"<{'negative ' if value < 0 else ''}int of {value.bit_length()} bits>"
        return f"<{type(value).__name__}>"


def _describe(value: object) -> str:
    return f"{show(value)} ({type(value).__name__})"


def _as_float(param: str, value: int | float, what: str) -> float:
    """``float(value)``; an int too large for a float is a ``ValueError`` naming ``param``."""
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"{param} must be a finite {what}, got {show(value)}") from None


def check_number(param: str, value: object) -> float:
    """A real, finite number (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{param} must be a number, got {_describe(value)}")
    result = _as_float(param, value, "number")
    if math.isnan(result) or math.isinf(result):
        raise ValueError(f"{param} must be a finite number, got {show(value)}")
    return result


def check_duration(param: str, value: object, *, positive: bool = False) -> float:
    """Seconds as a number or a ``timedelta``; never negative, NaN or infinite."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"{param} must be a duration in seconds (number or timedelta), got {_describe(value)}"
        )
    else:
        seconds = _as_float(param, value, "duration")
    if math.isnan(seconds) or math.isinf(seconds):
        raise ValueError(f"{param} must be a finite duration, got {show(value)}")
    if seconds < 0 or (positive and seconds == 0):
        need = "greater than 0" if positive else "0 or more"
        raise ValueError(f"{param} must be {need} seconds, got {show(value)}")
    return seconds


def check_wait(param: str, value: object, *, positive: bool = False) -> float:
    """A duration waited for with a real timeout (a lock's, a queue's, ``time.sleep``):
    at most ``threading.TIMEOUT_MAX``, the longest any of them takes."""
    seconds = check_duration(param, value, positive=positive)
    if seconds > threading.TIMEOUT_MAX:
        raise ValueError(
            f"{param} must be at most {threading.TIMEOUT_MAX:g} (threading.TIMEOUT_MAX), "
            f"got {show(value)}"
        )
    return seconds


#: The shortest time window, a microsecond (``timedelta``'s resolution): a window is cut
#: into buckets numbered by clock time divided by their width, which must stay a number.
MIN_WINDOW = 1e-6


def check_window(param: str, value: object, *, timed: bool = False) -> float:
    """The length of a time window: a duration of at least :data:`MIN_WINDOW`, and at
    most ``threading.TIMEOUT_MAX`` if ``timed`` (a timer waits for its buckets' ends)."""
    seconds = (
        check_wait(param, value, positive=True)
        if timed
        else check_duration(param, value, positive=True)
    )
    if seconds < MIN_WINDOW:
        raise ValueError(
            f"{param} must be at least {MIN_WINDOW:g} seconds (a microsecond), got {show(value)}"
        )
    return seconds


def check_fraction(param: str, value: object) -> float:
    """A rate in (0, 1]."""
    result = check_number(param, value)
    if not 0.0 < result <= 1.0:
        raise ValueError(f"{param} must be a number in (0, 1], got {show(value)}")
    return result


#: The most slots (or samples) a setting may ask for where each one is kept in memory:
#: a bulkhead's ``max_concurrent``, an adaptive limit's ``max_limit``, a learned hedging
#: delay's ``samples``. More would not fit in memory (or in an index, past ``sys.maxsize``).
MAX_SLOTS = 10_000_000


def check_positive_int(
    param: str, value: object, *, minimum: int = 1, maximum: int | None = None
) -> int:
    """An int (not a bool) of at least ``minimum``, and at most ``maximum`` if given."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{param} must be an int, got {_describe(value)}")
    if value < minimum:
        raise ValueError(f"{param} must be at least {minimum}, got {show(value)}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{param} must be at most {maximum:_}, got {show(value)}")
    return value


_CLOCK_METHODS = ("monotonic", "sleep", "asleep")


def check_clock(value: object) -> Clock:
    """A ``clock`` argument: None for the system clock, or an object (not a class) with
    the three methods of :class:`~resilience.Clock`."""
    if value is None:
        return SYSTEM_CLOCK
    if isinstance(value, type) or not all(
        callable(getattr(value, method, None)) for method in _CLOCK_METHODS
    ):
        hint = ""
        if isinstance(value, type):
            hint = f" (a class: give an instance, {value.__name__}())"
        raise TypeError(
            f"clock must have monotonic(), sleep() and asleep(), got {show(value)}{hint}"
        )
    return value  # type: ignore[return-value]


def check_bool(param: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{param} must be True or False, got {_describe(value)}")
    return value


#: The modes of policies that can refuse calls: ``enforce`` refuses, ``metrics_only``
#: (shadow mode) decides and reports as if it did, and lets every call through.
MODES = ("enforce", "metrics_only")


def check_mode(value: object) -> bool:
    """``mode`` of a refusing policy; True for shadow mode (``"metrics_only"``)."""
    if value not in MODES or not isinstance(value, str):
        raise ValueError(f"mode must be 'enforce' or 'metrics_only', got {show(value)}")
    return value == "metrics_only"


class _Missing:
    """The default of arguments for which None is a value like any other."""

    def __repr__(self) -> str:
        return "<no value>"


#: "Not given", where None would be a valid value (a fallback's value, a chaos result).
MISSING: Any = _Missing()


def check_name(value: object, param: str = "name") -> str | None:
    """A policy's name (or a store key): None, or a non-empty str without surrounding spaces."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{param} must be a str or None, got {_describe(value)}")
    if not value or value != value.strip():
        raise ValueError(f"{param} must be non-empty without surrounding spaces, got {value!r}")
    return value


def check_predicate(param: str, value: object) -> Callable[[Any], bool] | None:
    if value is None:
        return None
    if not callable(value):
        raise TypeError(f"{param} must be a callable or None, got {_describe(value)}")
    return value


def _exception_types(param: str, value: object) -> tuple[type[BaseException], ...] | None:
    if isinstance(value, type):
        value = (value,)
    if not isinstance(value, (tuple, list, frozenset, set)):
        return None
    for item in value:
        if not (isinstance(item, type) and issubclass(item, BaseException)):
            raise TypeError(
                f"{param} must hold exception types, got {_describe(item)} in {show(value)}"
            )
    return tuple(value)


def check_exception_filter(param: str, value: object) -> ExceptionFilter:
    """Exception types (one or a tuple) or a predicate ``(exc) -> bool``, as a predicate.

    A type tuple becomes a closure over ``isinstance``; an empty tuple matches nothing.
    """
    types = _exception_types(param, value)
    if types is not None:
        if not types:
            return _never
        return lambda exc: isinstance(exc, types)
    if callable(value):
        return value
    raise TypeError(
        f"{param} must be an exception type, a tuple of them, or a predicate, "
        f"got {_describe(value)}"
    )


def _never(exc: BaseException) -> bool:
    return False
