"""Reading config values: durations, rates, numbers, exception names, each checked.

Every reader takes the key path (``pipelines.payments.retry.attempts``) and the raw value
and returns a plain, normalised value, or raises :class:`ConfigError` naming the path,
the bad value and what was expected. Nothing here raises anything else, whatever the
value (the config tests feed them random data).
"""

from __future__ import annotations

import builtins
import difflib
import importlib
import math
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import Any

from ..errors import ConfigError

__all__ = [
    "DURATION_EXPECTED",
    "check_keys",
    "read_bool",
    "read_duration",
    "read_exceptions",
    "read_fraction",
    "read_int",
    "read_number",
    "read_optional",
    "read_rate",
    "read_str",
    "read_table",
]

Reader = Callable[[str, Any], Any]

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m|h)")
_DURATION = re.compile(r"\s*(?:(?:\d+(?:\.\d+)?|\.\d+)\s*(?:ms|s|m|h)\s*)+")
DURATION_EXPECTED = 'a duration: seconds as a number, or a string like "250ms", "30s", "5m", "1h"'
_RATE_EXPECTED = (
    'a rate: a number of calls per `per` seconds, or a string like "100/s", "6000/m", "10/30s"'
)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def read_number(path: str, value: object, expected: str = "a finite number") -> float:
    if not _is_number(value):
        raise ConfigError(path, value, expected)
    try:
        result = float(value)  # type: ignore[arg-type]
    except OverflowError:  # an int too large for a float
        raise ConfigError(path, value, expected) from None
    if not math.isfinite(result):
        raise ConfigError(path, value, expected)
    return result


def read_int(path: str, value: object, minimum: int = 1) -> int:
    expected = f"an integer of at least {minimum}"
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(path, value, expected)
    return value


def read_fraction(path: str, value: object) -> float:
    """A rate in (0, 1]: a number, or a percentage string like "25%"."""
    expected = 'a number in (0, 1], or a percentage like "25%"'
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            number = float(value.strip()[:-1]) / 100
        except ValueError:
            raise ConfigError(path, value, expected) from None
    else:
        number = read_number(path, value, expected)
    if not 0.0 < number <= 1.0:
        raise ConfigError(path, value, expected)
    return number


def read_bool(path: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(path, value, "true or false")
    return value


def read_str(path: str, value: object) -> str:
    if not isinstance(value, str) or not value or value != value.strip():
        raise ConfigError(path, value, "a non-empty string without surrounding spaces")
    return value


def read_duration(path: str, value: object, *, positive: bool = False) -> float:
    """Seconds: a number, a ``timedelta``, or a string of number+unit parts ("1m30s")."""
    expected = DURATION_EXPECTED + (", greater than 0" if positive else "")
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, str):
        if not _DURATION.fullmatch(value):
            raise ConfigError(path, value, expected)
        seconds = sum(float(n) * _UNITS[unit] for n, unit in _PART.findall(value))
    else:
        seconds = read_number(path, value, expected)
    if not math.isfinite(seconds) or seconds < 0 or (positive and seconds == 0):
        raise ConfigError(path, value, expected)
    return seconds


def read_rate(path: str, value: object) -> tuple[float, float | None]:
    """``(rate, per)``: a number (``per`` unsaid: None) or "N/unit" / "N/duration"."""
    if isinstance(value, str):
        count, slash, period = value.partition("/")
        if not slash:
            raise ConfigError(path, value, _RATE_EXPECTED)
        try:
            rate = float(count)
        except ValueError:
            raise ConfigError(path, value, _RATE_EXPECTED) from None
        period = period.strip()
        per_text = f"1{period}" if period in _UNITS else period
        try:
            per = read_duration(path, per_text, positive=True)
        except ConfigError:
            raise ConfigError(path, value, _RATE_EXPECTED) from None
    else:
        rate, per = read_number(path, value, _RATE_EXPECTED), None
    if not math.isfinite(rate) or rate <= 0:
        raise ConfigError(path, value, _RATE_EXPECTED + ", greater than 0")
    return rate, per


def read_optional(reader: Reader) -> Reader:
    """``reader``, or None for a null (YAML ``null``, Python ``None``)."""

    def optional(path: str, value: Any) -> Any:
        return None if value is None else reader(path, value)

    return optional


def read_table(path: str, value: object) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(path, value, "a table (mapping of keys to values)")
    for key in value:
        if not isinstance(key, str):
            raise ConfigError(f"{path}.{key!r}", key, "a string key")
    return value


def _exception_type(path: str, name: object) -> type[BaseException]:
    expected = 'an exception class name: a builtin ("ConnectionError") or "module.Class"'
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(path, name, expected)
    module_name, dot, attribute = name.strip().rpartition(".")
    found: object = None
    if not dot:
        found = getattr(builtins, attribute, None)
    elif module_name and attribute:
        try:
            found = getattr(importlib.import_module(module_name), attribute, None)
        except Exception:  # not importable, or failed while importing
            found = None
    if not (isinstance(found, type) and issubclass(found, BaseException)):
        raise ConfigError(path, name, expected)
    return found


def read_exceptions(path: str, value: object) -> tuple[str, ...]:
    """Exception class names (one, or a list), checked to name exception classes."""
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, (list, tuple)):
        raise ConfigError(path, value, "an exception class name, or a list of them")
    for position, name in enumerate(names):
        _exception_type(f"{path}[{position}]", name)
    return tuple(str(name).strip() for name in names)


def exception_types(names: Iterable[str]) -> tuple[type[BaseException], ...]:
    """The classes of names that :func:`read_exceptions` accepted."""
    return tuple(_exception_type("", name) for name in names)


def check_keys(path: str, table: Mapping[str, Any], allowed: Iterable[str], what: str) -> None:
    """Unknown keys are errors, with the closest known key as a hint."""
    known = list(allowed)
    for key in table:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}?" if close else None
            raise ConfigError(
                f"{path}.{key}" if path else key,
                key,
                f"{what}: one of {', '.join(known)}",
                hint=hint,
            )
