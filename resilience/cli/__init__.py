"""The ``resilience`` command (``main``) and its demo."""

from __future__ import annotations

from .._core.naming import present_as
from ._main import main

__all__ = ["main"]

present_as("resilience.cli", globals(), __all__)
