"""Randomness for policies that decide by chance (chaos, adaptive throttling): one
``random.Random`` per policy, seeded for reproducible runs and tests."""

from __future__ import annotations

import random

__all__ = ["make_random"]


def make_random(seed: object) -> random.Random:
    """A generator of its own for one policy; ``seed`` is an int, or None for a random one."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise TypeError(f"seed must be an int or None, got {seed!r} ({type(seed).__name__})")
    return random.Random(seed)
