"""Bulkhead: placeholder, being built (issue 3)."""

from __future__ import annotations

__all__ = ["Bulkhead"]


class Bulkhead:
    """Placeholder."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise NotImplementedError("Bulkhead is being built")
