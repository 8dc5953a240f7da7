"""HTTP clients protected by a pipeline: ``resilience.http.httpx`` (httpx transports),
``resilience.http.httpx2`` (the same for the httpx2 fork) and
``resilience.http.aiohttp`` (an aiohttp client middleware).

This package itself needs no client library: it holds what the integrations share.
"""

from __future__ import annotations

from .._core.naming import present_as
from ._exchange import IDEMPOTENT_METHODS, RETRY_STATUSES, ResponseError, idempotent

__all__ = ["IDEMPOTENT_METHODS", "RETRY_STATUSES", "ResponseError", "idempotent"]

present_as("resilience.http", globals(), __all__)
