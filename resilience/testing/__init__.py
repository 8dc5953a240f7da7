"""Helpers for testing code that uses resilience policies: a fake clock, and a local
Redis server started from an installed binary."""

from __future__ import annotations

from .clock import FakeClock, LoopClock
from .redis_server import RedisServer

__all__ = ["FakeClock", "LoopClock", "RedisServer"]
