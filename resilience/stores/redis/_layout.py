"""Key names, state codes and the options every backend of one store shares.

All keys of one policy share the hash tag ``{<name>}``, so each script touches one
Redis Cluster slot::

    <prefix>:cb:{<name>}:s    breaker state (hash)
    <prefix>:cb:{<name>}:w    breaker window counts (hash)
    <prefix>:cb:{<name>}:r    count-window ring (string)
    <prefix>:cb:{<name>}:hp   half-open trial leases (sorted set)
    <prefix>:cb:{<name>}:ev   transitions (pub/sub channel)
    <prefix>:tb:{<key>}       token bucket (hash)
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from ..._breaker_core import CLOSED, DISABLED, FORCED_OPEN, HALF_OPEN, OPEN
from ..._clock import Clock, SystemClock

__all__ = [
    "STATES",
    "StoreOptions",
    "breaker_keys",
    "breaker_name",
    "bucket_key",
    "bucket_name",
    "glob_escape",
    "script_time",
]

#: Breaker states by their code in the scripts.
STATES = (CLOSED, OPEN, HALF_OPEN, FORCED_OPEN, DISABLED)


@dataclass(frozen=True, slots=True)
class StoreOptions:
    """What a store tells each of its backends."""

    prefix: str
    #: "local": decide from local state when Redis fails; "closed": refuse.
    on_store_error: str
    trial_lease: float
    key_ttl: float
    #: Unique per store object: trial permit ids start with it.
    instance: str


def breaker_keys(prefix: str, name: str) -> tuple[tuple[str, str, str, str], str]:
    """The four keys of breaker ``name`` (state, window, ring, trials) and its channel."""
    base = f"{prefix}:cb:{{{name}}}"
    return (f"{base}:s", f"{base}:w", f"{base}:r", f"{base}:hp"), f"{base}:ev"


def breaker_name(prefix: str, key_or_channel: str) -> str:
    """The breaker name in a state key or channel name."""
    return key_or_channel[len(prefix) + 5 : key_or_channel.rindex("}")]


def bucket_key(prefix: str, key: str) -> str:
    return f"{prefix}:tb:{{{key}}}"


def bucket_name(prefix: str, redis_key: str) -> str:
    return redis_key[len(prefix) + 5 : -1]


_GLOB = re.compile(r"([*?\[\]\\])")


def glob_escape(text: str) -> str:
    """``text`` as a literal in a Redis glob pattern (SCAN MATCH, PSUBSCRIBE)."""
    return _GLOB.sub(r"\\\1", text)


def _server_time() -> str:
    return ""


def script_time(clock: Clock) -> Callable[[], str]:
    """What the scripts' optional last argument, ``now``, gets on each call: ``""``
    (read Redis ``TIME``) for the system clock; for any other clock (a test's
    ``FakeClock``), its time in microseconds, so tests run on virtual time."""
    if isinstance(clock, SystemClock):
        return _server_time
    monotonic = clock.monotonic
    return lambda: str(round(monotonic() * 1e6))
