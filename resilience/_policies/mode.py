"""Shadow mode: ``mode`` ("enforce" or "metrics_only"), owned by one mixin.

A policy with a shadow mode (CircuitBreaker, TokenBucket, Bulkhead and so
AdaptiveConcurrency, AdaptiveThrottle) derives from :class:`ShadowMode`, sets
``self._shadow = check_mode(mode)`` in its constructor, and reads ``self._shadow`` only
where it would refuse, queue or delay a call. This class owns the rest: the ``mode``
property and its setter (which switches the copies that follow the policy too, and
remembers the mode for later clones and ``describe()``), and ``mode`` as a setting of
``reconfigure()``.
"""

from __future__ import annotations

from .._core.validation import check_mode
from .policy import SETTINGS_LOCK, Policy

__all__ = ["ShadowMode"]


class ShadowMode(Policy):
    """A policy that can run in shadow mode (``mode="metrics_only"``): it decides as
    usual and reports what it decided (events with ``shadow=True``), but never
    rejects, queues nor delays a call."""

    @property
    def mode(self) -> str:
        """``enforce``, or ``metrics_only`` (shadow mode: decide and report, but never
        reject, queue nor delay a call). Settable at run time, keeping the policy's
        state; copies that follow this policy (the HTTP integrations' per-host copies)
        switch with it, and later clones take it."""
        return "metrics_only" if self._shadow else "enforce"

    @mode.setter
    def mode(self, mode: str) -> None:
        shadow = check_mode(mode)
        with SETTINGS_LOCK:
            for target in (self, *self._following()):
                target._shadow = shadow
                target._remember_settings({"mode": mode})

    def reconfigure(self, **settings: object) -> None:
        """:meth:`Policy.reconfigure`, where ``mode`` is a setting too: it is switched
        (as by the ``mode`` property) once the other settings have changed."""
        if "mode" not in settings:
            super().reconfigure(**settings)
            return
        shadow = check_mode(settings.pop("mode"))  # before anything changes
        with SETTINGS_LOCK:
            super().reconfigure(**settings)
            if shadow != self._shadow:
                self.mode = "metrics_only" if shadow else "enforce"
