"""Log what policies do through the standard library: ``resilience.listen(LoggingListener())``.

Only what an operator wants to read is logged: breaker state changes, rejections,
retries giving up, timeouts and fallbacks (and, at DEBUG, each retry). Per-call events
(successes, tokens taken, slots released) never are. Every record carries structured
``extra`` fields for JSON formatters and log pipelines.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from .._policies.events import Event, GaveUp, Rejected, RetryScheduled, StateChange, TimedOut

__all__ = ["LoggingListener"]

#: Levels by event; ``state_change`` is the level of transitions to a healthy state
#: (closed, half_open, disabled): opening logs at ``WARNING``.
DEFAULT_LEVELS: Mapping[str, int] = {
    "state_change": logging.INFO,
    "rejected": logging.INFO,
    "give_up": logging.WARNING,
    "timeout": logging.WARNING,
    "fallback": logging.INFO,
    "retry": logging.DEBUG,
}

_OPEN_STATES = frozenset({"open", "forced_open"})
_REASONS = {
    "circuit_breaker": "circuit open",
    "token_bucket": "rate limited",
    "bulkhead": "bulkhead full",
    "adaptive_concurrency": "concurrency limit reached",
    "adaptive_throttle": "throttled",
}
_CALL_FIELDS = ("host", "method", "status")


class LoggingListener:
    """A listener that logs transitions, rejections, give-ups, timeouts and fallbacks.

    ``logger`` is a ``logging.Logger`` or a logger name (default ``"resilience.events"``).
    ``levels`` overrides the level per event type (keys: ``state_change``, ``rejected``,
    ``give_up``, ``timeout``, ``fallback``, ``retry``). A breaker opening always logs at
    ``WARNING`` or above.

    Rejections come in floods while a breaker is open, so they are summarised: at most
    one record per policy every ``rejection_interval`` seconds (policy clock), counting
    the ones in between (``resilience_suppressed``). ``0`` logs every one.

    Extra fields of every record: ``resilience_policy`` (the kind), ``resilience_name``,
    ``resilience_event`` (the event type), ``resilience_error`` (the exception's type
    name, or None); each field of the event's ``details`` that is not None, as
    ``resilience_<field>`` (``resilience_from_state``, ``resilience_attempt``,
    ``resilience_retry_after``...); and when they apply ``resilience_host``,
    ``resilience_method``, ``resilience_status``, ``resilience_suppressed``,
    ``resilience_shadow``.
    """

    def __init__(
        self,
        logger: logging.Logger | str = "resilience.events",
        *,
        levels: Mapping[str, int] | None = None,
        rejection_interval: float = 1.0,
    ) -> None:
        if isinstance(logger, str):
            logger = logging.getLogger(logger)
        elif not isinstance(logger, logging.Logger):
            raise TypeError(f"logger must be a logging.Logger or a name, got {logger!r}")
        self.logger = logger
        merged = dict(DEFAULT_LEVELS)
        for key, level in (levels or {}).items():
            if key not in DEFAULT_LEVELS:
                raise ValueError(
                    f"levels: unknown event type {key!r}; expected one of "
                    f"{', '.join(DEFAULT_LEVELS)}"
                )
            if isinstance(level, bool) or not isinstance(level, int):
                raise TypeError(f"levels[{key!r}] must be a logging level (int), got {level!r}")
            merged[key] = level
        self.levels: Mapping[str, int] = merged
        if (
            isinstance(rejection_interval, bool)
            or not isinstance(rejection_interval, (int, float))
            or not rejection_interval >= 0
        ):
            raise ValueError(
                f"rejection_interval must be a number of seconds >= 0, got {rejection_interval!r}"
            )
        self.rejection_interval = float(rejection_interval)
        self._lock = threading.Lock()
        # (kind, name) -> (time of the last logged rejection, rejections since then)
        self._rejections: dict[tuple[str, str | None], tuple[float, int]] = {}

    def __call__(self, event: Event) -> None:
        type_ = event.type
        if type_ not in self.levels or (type_ == "rejected" and event.kind not in _REASONS):
            return
        level = self.levels[type_]
        suppressed = None
        if (
            type_ == "state_change"
            and isinstance(event.details, StateChange)
            and event.details.to_state in _OPEN_STATES
            and not event.shadow
        ):
            level = max(level, logging.WARNING)  # a shadow breaker would open: no alarm
        if not self.logger.isEnabledFor(level):
            return
        if type_ == "rejected" and self.rejection_interval > 0:
            suppressed = self._throttle(event)
            if suppressed is None:
                return
        self.logger.log(level, _message(event, suppressed), extra=_extra(event, suppressed))

    def _throttle(self, event: Event) -> int | None:
        """None to skip this rejection; else how many were skipped since the last one."""
        key = (event.kind, event.name)
        with self._lock:
            last = self._rejections.get(key)
            if last is not None and event.time - last[0] < self.rejection_interval:
                self._rejections[key] = (last[0], last[1] + 1)
                return None
            self._rejections[key] = (event.time, 0)
            return 0 if last is None else last[1]

    def __repr__(self) -> str:
        return f"LoggingListener(logger={self.logger.name!r})"


def _label(event: Event) -> str:
    kind = event.kind.replace("_", " ")
    return f"{kind} {event.name}" if event.name is not None else f"{kind} <unnamed>"


def _message(event: Event, suppressed: int | None) -> str:
    who = _label(event)
    type_ = event.type
    if event.host is not None:
        who += f" ({event.method + ' ' if event.method else ''}{event.host})"
    error = f": {type(event.exception).__name__}: {event.exception}" if event.exception else ""
    details = event.details
    if type_ == "state_change" and isinstance(details, StateChange):
        shadow = " (shadow mode: would be)" if event.shadow else ""
        return f"{who}: {details.from_state} -> {details.to_state}{shadow}"
    if type_ == "rejected":
        verb = "would have rejected a call, let it run" if event.shadow else "call rejected"
        text = f"{who}: {verb} ({_REASONS[event.kind]}"
        if isinstance(details, Rejected) and details.retry_after is not None:
            text += f", retry after {details.retry_after:.3f}s"
        text += ")"
        if suppressed:
            text += f"; {suppressed} more rejected since the last report"
        return text
    if type_ == "give_up" and isinstance(details, GaveUp):
        return f"{who}: gave up after attempt {details.attempt}{error}"
    if type_ == "retry" and isinstance(details, RetryScheduled):
        return f"{who}: attempt {details.attempt} failed, retrying in {details.delay:.3f}s{error}"
    if type_ == "timeout" and isinstance(details, TimedOut):
        return f"{who}: call exceeded {details.limit:g}s"
    if type_ == "fallback":
        return f"{who}: fallback used{error}"
    return f"{who}: {type_}{error}"  # an event of this type from elsewhere, without details


def _extra(event: Event, suppressed: int | None) -> dict[str, Any]:
    extra: dict[str, Any] = {
        "resilience_policy": event.kind,
        "resilience_name": event.name,
        "resilience_event": event.type,
        "resilience_error": None if event.exception is None else type(event.exception).__name__,
    }
    details = event.details
    if details is not None:
        for field in fields(details):  # type: ignore[arg-type]  # every details class is one
            value = getattr(details, field.name)
            if value is not None:
                extra[f"resilience_{field.name}"] = value
    for name in _CALL_FIELDS:
        value = getattr(event, name)
        if value is not None:
            extra[f"resilience_{name}"] = value
    if suppressed is not None:
        extra["resilience_suppressed"] = suppressed
    if event.shadow:
        extra["resilience_shadow"] = True
    return extra
