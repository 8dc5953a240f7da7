"""Where policies keep their state: in memory (default) or shared (``stores.redis``)."""

from __future__ import annotations

from .._store import BreakerBackend, BreakerStore
from .memory import MemoryStore

__all__ = ["BreakerBackend", "BreakerStore", "MemoryStore"]
