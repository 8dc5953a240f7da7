"""The exceptions policies raise on their own behalf.

Everything here derives from :class:`ResilienceError`, so ``except ResilienceError``
separates "a policy refused or cut the call" from "the call itself failed".
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

__all__ = [
    "BulkheadFull",
    "CircuitOpen",
    "ConfigError",
    "RateLimited",
    "ResilienceError",
    "Throttled",
    "TimeoutExceeded",
]


class ResilienceError(Exception):
    """Base class of every error a policy raises itself.

    ``retry_after`` is a hint, in seconds, of when trying again could succeed, or
    ``None`` when the policy has no such hint; ``host`` names the HTTP origin of a
    request it stopped (see ``resilience.http``). A :class:`~resilience.Retry` only retries
    a ``ResilienceError`` raised inside it when it carries a hint (``TimeoutExceeded``,
    a failed attempt rather than a refusal, is retried like any other failure).
    """

    retry_after: float | None = None
    #: The origin (``scheme://host:port``) of the HTTP request the error stopped, set by
    #: the HTTP integrations (``resilience.http``); None for other calls.
    host: str | None = None
    #: True for errors that mean "refused without calling"; Retry gives up on these
    #: unless they carry a ``retry_after`` hint.
    _refusal = True

    def __str__(self) -> str:
        text = super().__str__()
        return text if self.host is None else f"{text} (host {self.host})"


class CircuitOpen(ResilienceError):
    """The circuit breaker ``name`` refused the call without running it.

    ``retry_after`` is the number of seconds until the breaker admits a trial call, or
    ``None`` when it was opened by hand and only a person can close it.
    """

    def __init__(self, name: str | None, retry_after: float | None, state: str = "open") -> None:
        self.name = name
        self.retry_after = retry_after
        self.state = state
        if retry_after is None:
            when = "until closed by hand"
        else:
            when = f"trial allowed in {retry_after:.3f}s"
        super().__init__(f"circuit breaker {name or '<unnamed>'} is {state} ({when})")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.name, self.retry_after, self.state), self.__dict__)


class RateLimited(ResilienceError):
    """The rate limiter ``name`` had no token for the call within its ``max_wait``."""

    def __init__(self, name: str | None, retry_after: float) -> None:
        self.name = name
        self.retry_after = retry_after
        super().__init__(
            f"rate limiter {name or '<unnamed>'} has no token (next in {retry_after:.3f}s)"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.name, self.retry_after), self.__dict__)


class BulkheadFull(ResilienceError):
    """The bulkhead ``name`` had no free slot and no room (or time) to wait for one."""

    def __init__(self, name: str | None, max_concurrent: int, max_queue: int) -> None:
        self.name = name
        self.max_concurrent = max_concurrent
        self.max_queue = max_queue
        super().__init__(
            f"bulkhead {name or '<unnamed>'} is full "
            f"({max_concurrent} running, {max_queue} queued at most)"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.name, self.max_concurrent, self.max_queue), self.__dict__)


class Throttled(ResilienceError):
    """The adaptive throttle ``name`` rejected the call locally, with probability
    ``probability``, because the dependency has been refusing requests lately.

    ``retry_after`` is None: a throttled call is best not retried at once (the throttle
    exists to take load off the dependency), so a Retry gives up on it.
    """

    def __init__(self, name: str | None, probability: float) -> None:
        self.name = name
        self.probability = probability
        super().__init__(
            f"adaptive throttle {name or '<unnamed>'} rejected the call locally "
            f"(rejection probability {probability:.3f})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.name, self.probability), self.__dict__)


if sys.version_info >= (3, 11):
    _Timeout = TimeoutError
else:

    class _Timeout(TimeoutError, asyncio.TimeoutError):
        """Python 3.10's asyncio.TimeoutError is not yet the built-in TimeoutError: a
        timeout derives from both, so that ``except asyncio.TimeoutError`` (and aiohttp,
        which re-wraps any other OSError escaping a client middleware) sees it as one."""


class TimeoutExceeded(ResilienceError, _Timeout):
    """The call ran past the ``timeout`` seconds that the policy ``name`` allows it.

    Also a :class:`TimeoutError` (and ``asyncio.TimeoutError``), so code that already
    handles timeouts keeps working. It describes a failed attempt, not a refusal, so a
    Retry retries it.
    """

    _refusal = False

    def __init__(self, name: str | None, timeout: float) -> None:
        self.name = name
        self.timeout = timeout
        super().__init__(f"timeout {name or '<unnamed>'}: call exceeded {timeout:g}s")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.name, self.timeout), self.__dict__)


class ConfigError(ResilienceError):
    """A configuration value is wrong: ``path`` names the key
    (``pipelines.payments.retry.attempts``), ``value`` the bad value, ``expected`` what
    would have been right, and ``hint`` (or None) a likely fix, such as the known key
    closest to a misspelt one."""

    def __init__(self, path: str, value: object, expected: str, hint: str | None = None) -> None:
        self.path = path
        self.value = value
        self.expected = expected
        self.hint = hint
        message = f"{path}: expected {expected}, got {value!r}"
        super().__init__(f"{message}; {hint}" if hint else message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path, self.value, self.expected, self.hint), self.__dict__)
