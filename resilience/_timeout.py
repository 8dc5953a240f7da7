"""Timeout and remaining(): placeholder, being built (issue 3)."""

from __future__ import annotations

__all__ = ["Timeout", "remaining"]


class Timeout:
    """Placeholder."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise NotImplementedError("Timeout is being built")


def remaining() -> float | None:
    """Placeholder."""
    return None
