"""Helpers for testing code that uses resilience policies: a fake clock, and a local
Redis server started from an installed binary."""

from __future__ import annotations

from .._core.naming import present_as
from ._clock import FakeClock, LoopClock
from ._redis_server import RedisServer

__all__ = ["FakeClock", "LoopClock", "RedisServer"]

present_as("resilience.testing", globals(), __all__)
