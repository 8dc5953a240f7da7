"""One HTTP request's way through a pipeline: how its outcomes are classified, and
which responses it has received.

Policies see an HTTP request as a call of the transport's *attempt* function. A
response whose status the transport treats specially (``retry_statuses``,
``failure_statuses``) is raised as a :class:`ResponseError`, so that breakers count it
and Retry retries it like any failed call; the transport turns the last one back into
the response it returns. The :class:`Exchange` is the request's
:class:`~resilience._call.CallContext`: it tells Retry what may be sent again (method,
body) and breakers which statuses are failures, and it keeps the responses received so
that every one the caller does not get is closed.
"""

from __future__ import annotations

import contextlib
import email.utils
import re
import threading
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextvars import ContextVar
from datetime import timezone
from typing import Any

from .._core.call import CallContext
from .._core.deadline import CURRENT
from ..errors import ResilienceError

__all__ = [
    "IDEMPOTENT_METHODS",
    "RETRY_STATUSES",
    "Exchange",
    "ResponseError",
    "Rules",
    "idempotent",
    "network_budget",
    "origin",
    "origin_of",
    "parse_retry_after",
]

#: Methods retried by default: the idempotent ones of RFC 9110 (section 9.2.2).
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
#: Statuses retried and counted as failures by default.
RETRY_STATUSES = frozenset({429, 502, 503, 504})

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


class ResponseError(Exception):
    """A response whose status is in the transport's ``retry_statuses`` or
    ``failure_statuses``, raised inside the pipeline so that its policies see a failed
    attempt.

    It never reaches the caller: when retries run out the transport returns
    ``response`` itself (unread). A ``Fallback`` in the pipeline receives it (its
    handler may return ``exc.response`` or another response); listeners see it as the
    ``exception`` of events. ``retry_after`` is the response's ``Retry-After`` in seconds
    (None without one), ``failure`` whether breakers count it as a failure, ``retry``
    whether its status is retried.
    """

    def __init__(
        self,
        response: Any,
        status: int,
        host: str,
        retry_after: float | None,
        failure: bool,
        retry: bool,
    ) -> None:
        super().__init__(f"HTTP {status} from {host}")
        self.response = response
        self.status = status
        self.host = host
        self.retry_after = retry_after
        self.failure = failure
        self.retry = retry
        self._exchange: Exchange | None = None


# -- what a request is -------------------------------------------------------------


_ORIGINS: dict[tuple[str, str, int | None], str] = {}


def origin(scheme: str, host: str, port: int | None) -> str:
    """``scheme://host:port``, the port spelled out even when it is the default (``host``
    as sent: an IDN in its ASCII form). Remembered: requests ask for few origins."""
    key = (scheme, host, port)
    found = _ORIGINS.get(key)
    if found is None:
        if len(_ORIGINS) > 4096:  # a bound; clearing (even from two threads) is harmless
            _ORIGINS.clear()
        found = _ORIGINS[key] = _format_origin(scheme, host, port)
    return found


def _format_origin(scheme: str, host: str, port: int | None) -> str:
    if port is None:
        port = _DEFAULT_PORTS.get(scheme)
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    return f"{scheme}://{host}" if port is None else f"{scheme}://{host}:{port}"


def origin_of(url: object) -> str:
    """The origin of a URL given as text (or anything whose ``str`` is a URL)."""
    from urllib.parse import urlsplit

    text = str(url)
    parts = urlsplit(text if "://" in text else f"//{text}")
    if not parts.scheme or not parts.hostname:
        raise ValueError(f"url must be an absolute URL such as 'https://host', got {url!r}")
    host = parts.hostname.lower()
    if not host.isascii():
        with contextlib.suppress(UnicodeError):  # as sent: IDNA (ASCII) form
            host = host.encode("idna").decode("ascii")
    return origin(parts.scheme.lower(), host, parts.port)


_FORCED: ContextVar[bool | None] = ContextVar("resilience-http-idempotent", default=None)


@contextlib.contextmanager
def idempotent(retry: bool = True) -> Iterator[None]:
    """Declare the requests made in this block idempotent (``retry=True``: retry them
    whatever their method, a POST included) or not (``retry=False``: never retry them,
    not even a GET). For aiohttp, and for httpx as an alternative to the request
    extension ``"idempotent"``."""
    if not isinstance(retry, bool):
        raise TypeError(f"retry must be a bool, got {retry!r}")
    token = _FORCED.set(retry)
    try:
        yield
    finally:
        _FORCED.reset(token)


def network_budget(in_async: bool) -> float | None:
    """Seconds the network may take for the next attempt, when a deadline is active that
    nothing else enforces (the remaining time, and a moment more), else None.

    In async code the Timeout that set the deadline cancels the attempt when it passes
    (its cancel scope belongs to this thread's event loop): a network timeout of the
    same length would only race it. Elsewhere (a sync Timeout, whose worker thread
    nothing can interrupt) the network timeout is what ends the attempt on time.
    """
    deadline = CURRENT.get()
    if deadline is None or (in_async and deadline[2] == threading.get_ident()):
        return None
    # A little past the deadline: the Timeout that set it gives up first and reports it
    # (TimeoutExceeded), then the network gives up too, and the attempt's worker is free.
    return max(deadline[0] - deadline[1].monotonic(), 0.0) + _GRACE


_GRACE = 0.05

_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def parse_retry_after(value: str | None, date: str | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds, or an HTTP-date
    taken relative to the response's ``Date`` (the server's clock; this machine's clock
    without one). None when absent or unreadable; never negative."""
    if value is None:
        return None
    value = value.strip()
    if _SECONDS.fullmatch(value):
        return float(value)
    when = _http_date(value)
    if when is None:
        return None
    now = _http_date(date) if date is not None else None
    return max(0.0, when - (time.time() if now is None else now))


def _http_date(value: str) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # HTTP-dates are GMT
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


# -- the transport's settings --------------------------------------------------------


class Rules:
    """What the transport retries and counts as failures (validated once)."""

    __slots__ = (
        "duplicable",
        "failure_statuses",
        "replayable",
        "retry_methods",
        "retry_statuses",
        "special",
        "unsent",
    )

    def __init__(
        self,
        retry_statuses: Collection[int],
        failure_statuses: Collection[int] | None,
        retry_methods: Collection[str],
        unsent: tuple[type[BaseException], ...] = (),
        replayable: tuple[type[Any], ...] = (),
        duplicable: tuple[type[Any], ...] = (),
    ) -> None:
        self.retry_statuses = _statuses("retry_statuses", retry_statuses)
        self.failure_statuses = (
            self.retry_statuses
            if failure_statuses is None
            else _statuses("failure_statuses", failure_statuses)
        )
        self.special = self.retry_statuses | self.failure_statuses
        self.retry_methods = _methods(retry_methods)
        #: The client library's exceptions that prove the request never left (safe to
        #: retry for any method), and its request bodies that can be sent again (one at
        #: a time), or twice at once.
        self.unsent = unsent
        self.replayable = replayable
        self.duplicable = duplicable

    def may_retry(self, method: str, headers: Mapping[str, str], explicit: object) -> bool:
        """Whether a request may be sent again at all: the request's own word
        (``explicit``: an extension), the ``idempotent()`` block around it, then its
        method and whether it carries an ``Idempotency-Key``."""
        if isinstance(explicit, bool):
            return explicit
        forced = _FORCED.get()
        if forced is not None:
            return forced
        return method in self.retry_methods or "idempotency-key" in headers


def _statuses(param: str, value: object) -> frozenset[int]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Collection):
        raise TypeError(f"{param} must be a collection of HTTP statuses, got {value!r}")
    for status in value:
        if isinstance(status, bool) or not isinstance(status, int):
            raise TypeError(f"{param} must hold int statuses, got {status!r} in {value!r}")
        if not 100 <= status <= 599:
            raise ValueError(f"{param} must hold statuses from 100 to 599, got {status!r}")
    return frozenset(value)


def _methods(value: object) -> frozenset[str]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Collection):
        raise TypeError(f"retry_methods must be a collection of method names, got {value!r}")
    for method in value:
        if not isinstance(method, str) or not method.isalpha():
            raise TypeError(f"retry_methods must hold method names, got {method!r} in {value!r}")
    return frozenset(method.upper() for method in value)


# -- one request -------------------------------------------------------------------


class Exchange(CallContext):
    """One request on its way through the pipeline (all its attempts).

    What only a failure needs to know (may the request be sent again?) is worked out
    when a failure asks (``may_retry``, ``can_resend``, ``can_duplicate``: each client
    library's exchange reads its own request), not for every request.

    Responses are tracked in two lists: those of failed attempts (raised as
    ResponseError), which the next attempt closes when it starts (a newer attempt
    supersedes them), and the others, which may still be returned (a hedged attempt's
    may win while another starts) and are closed when the request ends, all but the one
    returned. No lock, though a sync Timeout's abandoned worker may deliver a response
    from another thread at any moment: a response is appended before ``_over`` is read,
    and ``_over`` is set before the lists are read, so each late response is closed by
    its worker, by ``end``, or (harmlessly) by both.
    """

    __slots__ = ("_failed", "_over", "_responses", "request", "rules")

    def __init__(self, rules: Rules, host: str, method: str, request: Any) -> None:
        self.host = host
        self.method = method
        self.status = None
        self.rules = rules
        self.request = request
        self._over = False
        self._failed: list[Any] = []
        self._responses: list[Any] = []

    def may_retry(self) -> bool:
        """Whether the request may be sent again at all (its method, what it says)."""
        raise NotImplementedError

    def can_resend(self) -> bool:
        """Whether the request's body can be sent again."""
        raise NotImplementedError

    def can_duplicate(self) -> bool:
        """Whether the request's body can be sent twice at the same time."""
        raise NotImplementedError

    # -- classification (CallContext) --------------------------------------------------

    def failure(self, exc: BaseException) -> bool | None:
        return exc.failure if isinstance(exc, ResponseError) else None

    def retryable(self, outcome: object) -> bool | None:
        if isinstance(outcome, ResilienceError) and outcome._refusal:
            return None  # refused before sending: Retry's own rules (retry after the hint)
        if not self.can_resend():
            return False
        if isinstance(outcome, ResponseError):
            return outcome.retry and self.may_retry()
        if self.may_retry() or isinstance(outcome, self.rules.unsent):
            return None
        return False

    def may_duplicate(self) -> bool:
        return self.may_retry() and self.can_duplicate()

    def receive(self, response: Any, status: int, headers: Mapping[str, str]) -> bool:
        """Take in an attempt's response: True when the attempt returns it, False when
        the request is already over (an abandoned attempt delivered late: the caller
        must close it). Raises a ResponseError for a status the rules single out."""
        rules = self.rules
        special = status in rules.special
        (self._failed if special else self._responses).append(response)
        if self._over:
            return False
        self.status = status
        if not special:
            return True
        error = ResponseError(
            response,
            status,
            self.host or "",
            parse_retry_after(headers.get("retry-after"), headers.get("date")),
            status in rules.failure_statuses,
            status in rules.retry_statuses,
        )
        error._exchange = self
        raise error

    # -- responses -----------------------------------------------------------------

    def discarded(self) -> list[Any]:
        """At the start of an attempt: the responses of failed attempts, to close."""
        return _drain(self._failed)

    def end(self, final: Any) -> Sequence[Any]:
        """The request is over: the responses to close (all but ``final``)."""
        self._over = True
        responses = self._responses
        if not self._failed and len(responses) == 1 and responses[0] is final:
            return ()  # the common case: one attempt, its response returned
        return [r for r in (*_drain(self._failed), *_drain(responses)) if r is not final]

    def unwrap(self, exc: BaseException) -> Any:
        """The response behind this request's own ResponseError; re-raises anything
        else, naming the host on errors the policies raised."""
        if isinstance(exc, ResponseError) and exc._exchange is self:
            return exc.response
        if isinstance(exc, ResilienceError) and exc.host is None:
            exc.host = self.host
        raise exc


def _drain(responses: list[Any]) -> list[Any]:
    """Empty ``responses`` (each pop is atomic: another thread may append meanwhile)."""
    drained = []
    while responses:
        drained.append(responses.pop())
    return drained
