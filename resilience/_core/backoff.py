"""Backoff strategies: how long to wait before each retry.

A strategy is immutable and keeps no per-call state (the previous delay is passed
in), so one Retry can serve any number of concurrent calls.
"""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any, Literal, Protocol, runtime_checkable

from .validation import check_duration, check_number, show

__all__ = ["Backoff", "Constant", "DecorrelatedJitter", "Exponential", "Linear"]

Jitter = Literal["none", "full", "equal"]
_DEFAULT_MAX = 10.0


@runtime_checkable
class Backoff(Protocol):
    """``delay(retry, previous)`` for the ``retry``-th retry (1 for the first).

    ``max`` is also the longest delay hint (``retry_after``) a Retry waits for: a longer
    hint makes it give up at once.
    """

    max: float

    def delay(self, retry: int, previous: float) -> float: ...


def _max(param: str, value: object, floor: float) -> float:
    result = _DEFAULT_MAX if value is None else check_duration(param, value)
    if value is None:
        result = max(result, floor)
    elif result < floor:
        raise ValueError(f"{param} must be at least the base delay {floor:g}, got {value!r}")
    return result


class Constant:
    """The same ``delay`` before every retry.

    ``max`` bounds the delay hints a Retry waits for, nothing else; by default it is
    10 s (or ``delay``, if larger).
    """

    __slots__ = ("_delay", "max")

    def __init__(self, delay: float | timedelta, *, max: float | timedelta | None = None) -> None:
        self._delay = check_duration("Constant.delay", delay)
        self.max = _max("Constant.max", max, self._delay)

    def delay(self, retry: int, previous: float) -> float:
        return self._delay

    def __repr__(self) -> str:
        return f"Constant({self._delay!r}, max={self.max!r})"

    def _described(self) -> dict[str, Any]:
        return {"kind": "constant", "delay": self._delay, "max": self.max}


class Linear:
    """``base + step * (retry - 1)`` seconds, at most ``max``."""

    __slots__ = ("_base", "_step", "max")

    def __init__(
        self,
        base: float | timedelta = 0.1,
        step: float | timedelta = 0.1,
        max: float | timedelta | None = None,
    ) -> None:
        self._base = check_duration("Linear.base", base)
        self._step = check_duration("Linear.step", step)
        self.max = _max("Linear.max", max, self._base)

    def delay(self, retry: int, previous: float) -> float:
        return min(self.max, self._base + self._step * (retry - 1))

    def __repr__(self) -> str:
        return f"Linear(base={self._base!r}, step={self._step!r}, max={self.max!r})"

    def _described(self) -> dict[str, Any]:
        return {"kind": "linear", "base": self._base, "step": self._step, "max": self.max}


class Exponential:
    """``base * factor ** (retry - 1)`` seconds, at most ``max``, with optional jitter.

    ``jitter="full"`` draws uniformly from [0, d]; ``"equal"`` from [d/2, d]; ``"none"``
    waits exactly d.
    """

    __slots__ = ("_base", "_factor", "_jitter", "max")

    def __init__(
        self,
        base: float | timedelta = 0.1,
        factor: float = 2.0,
        max: float | timedelta | None = None,
        jitter: Jitter = "full",
    ) -> None:
        self._base = check_duration("Exponential.base", base)
        self._factor = check_number("Exponential.factor", factor)
        if self._factor < 1.0:
            raise ValueError(f"Exponential.factor must be at least 1, got {factor!r}")
        self.max = _max("Exponential.max", max, self._base)
        if jitter not in ("none", "full", "equal"):
            raise ValueError(
                f"Exponential.jitter must be 'none', 'full' or 'equal', got {show(jitter)}"
            )
        self._jitter = jitter

    def delay(self, retry: int, previous: float) -> float:
        try:
            capped = min(self.max, self._base * self._factor ** (retry - 1))
        except OverflowError:  # factor ** 2000 and the like: far past any max
            capped = self.max if self._base > 0 else 0.0
        if self._jitter == "full":
            return random.uniform(0.0, capped)
        if self._jitter == "equal":
            return capped / 2 + random.uniform(0.0, capped / 2)
        return capped

    def __repr__(self) -> str:
        return (
            f"Exponential(base={self._base!r}, factor={self._factor!r}, "
            f"max={self.max!r}, jitter={self._jitter!r})"
        )

    def _described(self) -> dict[str, Any]:
        return {
            "kind": "exponential",
            "base": self._base,
            "factor": self._factor,
            "max": self.max,
            "jitter": self._jitter,
        }


class DecorrelatedJitter:
    """AWS's decorrelated jitter: ``uniform(base, previous * 3)``, at most ``max``.

    Spreads retries of many clients apart while still growing roughly exponentially.
    """

    __slots__ = ("_base", "max")

    def __init__(self, base: float | timedelta = 0.1, max: float | timedelta | None = None) -> None:
        self._base = check_duration("DecorrelatedJitter.base", base)
        self.max = _max("DecorrelatedJitter.max", max, self._base)

    def delay(self, retry: int, previous: float) -> float:
        previous = max(previous, self._base)
        return min(self.max, random.uniform(self._base, previous * 3))

    def __repr__(self) -> str:
        return f"DecorrelatedJitter(base={self._base!r}, max={self.max!r})"

    def _described(self) -> dict[str, Any]:
        return {"kind": "decorrelated_jitter", "base": self._base, "max": self.max}
