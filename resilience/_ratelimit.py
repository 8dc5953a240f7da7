"""TokenBucket: placeholder, being built (issue 3)."""

from __future__ import annotations

__all__ = ["TokenBucket"]


class TokenBucket:
    """Placeholder."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise NotImplementedError("TokenBucket is being built")
