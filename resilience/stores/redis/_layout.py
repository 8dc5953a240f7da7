"""Key names, state codes and the identity of this process in Redis.

All keys of one policy share the hash tag ``{<name>}``, so each script touches one
Redis Cluster slot::

    <prefix>:cb:{<name>}:s    breaker state (hash)
    <prefix>:cb:{<name>}:w    breaker window counts (hash)
    <prefix>:cb:{<name>}:r    count-window ring (string)
    <prefix>:cb:{<name>}:hp   half-open trial leases (sorted set)
    <prefix>:cb:{<name>}:in   instances that reported failures (sorted set)
    <prefix>:cb:{<name>}:ev   transitions (pub/sub channel)
    <prefix>:tb:{<key>}       token bucket (hash)
    <prefix>:rb:{<key>}       retry budget: calls and retries per time bucket (hash)
    <prefix>:rb:{<key>}:i     retry budget: instances reporting (sorted set)
    <prefix>:bh:{<key>}:h     bulkhead: slot leases by holder (sorted set)
    <prefix>:bh:{<key>}:i     bulkhead: instances alive (sorted set)
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from ..._core.breaker import CLOSED, DISABLED, FORCED_OPEN, HALF_OPEN, OPEN
from ..._core.clock import Clock, SystemClock

__all__ = [
    "STATES",
    "Instance",
    "breaker_keys",
    "breaker_name",
    "bucket_key",
    "bucket_name",
    "budget_keys",
    "bulkhead_keys",
    "bulkhead_name",
    "glob_escape",
    "script_time",
]

#: Breaker states by their code in the scripts.
STATES = (CLOSED, OPEN, HALF_OPEN, FORCED_OPEN, DISABLED)


class Instance:
    """This process's identity in Redis (trial permits, bulkhead holders, the
    reporters a guard counts): one per store, and a new one in a forked child."""

    __slots__ = ("id",)

    def __init__(self) -> None:
        self.id = uuid.uuid4().hex[:12]

    def renew(self) -> None:
        self.id = uuid.uuid4().hex[:12]


def breaker_keys(prefix: str, name: str) -> tuple[tuple[str, str, str, str, str], str]:
    """The five keys of breaker ``name`` (state, window, ring, trials, failure
    reporters) and its channel."""
    base = f"{prefix}:cb:{{{name}}}"
    return (
        f"{base}:s",
        f"{base}:w",
        f"{base}:r",
        f"{base}:hp",
        f"{base}:in",
    ), f"{base}:ev"


def budget_keys(prefix: str, key: str) -> tuple[str, str]:
    base = f"{prefix}:rb:{{{key}}}"
    return base, f"{base}:i"


def bulkhead_keys(prefix: str, key: str) -> tuple[str, str]:
    base = f"{prefix}:bh:{{{key}}}"
    return f"{base}:h", f"{base}:i"


def bulkhead_name(prefix: str, instances_key: str) -> str:
    """The bulkhead key in the key of its instances (``prefix:bh:{key}:i``)."""
    return instances_key[len(prefix) + 5 : -3]


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
