"""Where policies get time from.

Every policy takes a ``clock``; production code uses :data:`SYSTEM_CLOCK`, tests use
:class:`resilience.testing.FakeClock`. Keeping sleep on the clock (and not calling
``time.sleep`` / ``anyio.sleep`` directly) is what lets tests run retries and breakers
without real waiting.
"""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable

import anyio

__all__ = ["SYSTEM_CLOCK", "Clock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """Monotonic time in seconds, plus the two ways to wait for it to pass."""

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...

    async def asleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock: ``time.monotonic``, ``time.sleep`` and ``anyio.sleep``."""

    __slots__ = ()

    monotonic = staticmethod(time.monotonic)
    sleep = staticmethod(time.sleep)

    async def asleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK = SystemClock()
