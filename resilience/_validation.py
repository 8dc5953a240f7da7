"""Argument checks shared by every constructor.

Each helper names the parameter and the bad value in its message, so that
``CircuitBreaker(failure_rate=1.5)`` says exactly what is wrong.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import timedelta
from typing import Any

__all__ = [
    "check_bool",
    "check_duration",
    "check_exception_filter",
    "check_fraction",
    "check_mode",
    "check_name",
    "check_number",
    "check_positive_int",
    "check_predicate",
]

ExceptionFilter = Callable[[BaseException], bool]


def _describe(value: object) -> str:
    return f"{value!r} ({type(value).__name__})"


def check_number(param: str, value: object) -> float:
    """A real, finite number (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{param} must be a number, got {_describe(value)}")
    result = float(value)
    if math.isnan(result) or math.isinf(result):
        raise ValueError(f"{param} must be a finite number, got {value!r}")
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
        seconds = float(value)
    if math.isnan(seconds) or math.isinf(seconds):
        raise ValueError(f"{param} must be a finite duration, got {value!r}")
    if seconds < 0 or (positive and seconds == 0):
        need = "greater than 0" if positive else "0 or more"
        raise ValueError(f"{param} must be {need} seconds, got {value!r}")
    return seconds


def check_fraction(param: str, value: object) -> float:
    """A rate in (0, 1]."""
    result = check_number(param, value)
    if not 0.0 < result <= 1.0:
        raise ValueError(f"{param} must be a number in (0, 1], got {value!r}")
    return result


def check_positive_int(param: str, value: object, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{param} must be an int, got {_describe(value)}")
    if value < minimum:
        raise ValueError(f"{param} must be at least {minimum}, got {value!r}")
    return value


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
        raise ValueError(f"mode must be 'enforce' or 'metrics_only', got {value!r}")
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
                f"{param} must hold exception types, got {_describe(item)} in {value!r}"
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


def exception_types_or_none(param: str, value: object) -> tuple[type[BaseException], ...] | None:
    """The type tuple when ``value`` is types (for fast ``except`` clauses), else None."""
    return _exception_types(param, value)
