"""Settings written as a config file writes them: ``show(key, value)`` for ``describe()``,
the command and config messages alike (durations as "250ms", "1m30s")."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["DURATIONS", "format_duration", "show"]

#: The settings that are durations, written with a unit.
DURATIONS = frozenset(
    {
        "slow_call_duration",
        "open_for",
        "window",
        "deadline",
        "seconds",
        "per",
        "max_wait",
        "delay",
        "initial",
        "latency",
        "learned_delay",
        "base",
        "step",
        "max",
        "flush_interval",
        "poll_interval",
        "slot_lease",
    }
)


def show(key: str, value: Any) -> str:
    """A setting as a config file would write it."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        if "calls" in value and len(value) == 1:
            return f"{value['calls']} calls"
        inner = ", ".join(f"{k}={show(k, v)}" for k, v in value.items() if k != "kind")
        kind = value.get("kind")
        return f"{kind}({inner})" if kind else f"({inner})"
    if isinstance(value, tuple):
        if key in DURATIONS:
            return "[" + ", ".join(format_duration(v) for v in value) + "]"
        return "[" + ", ".join(str(v) for v in value) + "]"
    if key in DURATIONS and isinstance(value, (int, float)):
        return format_duration(float(value))
    if isinstance(value, float):
        return f"{value:g}"
    return repr(value) if isinstance(value, str) and key == "value" else str(value)


def format_duration(seconds: float) -> str:
    """250 ms -> "250ms", 90 -> "1m30s", 30 -> "30s", 1.5 -> "1.5s"."""
    if seconds == 0:
        return "0s"
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    if seconds < 60 or seconds != int(seconds):
        return f"{seconds:g}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
    return text + (f"{secs}s" if secs else "")
