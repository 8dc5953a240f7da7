"""httpx2 transports that run every request through a pipeline (httpx2 is the maintained
fork of httpx, with the same transport interface; it needs Python 3.11 or later).

``httpx2.Client(transport=ResilientTransport(pipeline))`` and
``httpx2.AsyncClient(transport=AsyncResilientTransport(pipeline))``; see the docs page
"HTTP clients".
"""

from __future__ import annotations

try:
    import httpx2
    from httpx2._multipart import MultipartStream
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "resilience.http.httpx2 needs httpx2: pip install 'resiliency[httpx2]'"
    ) from exc

from ._httpx_like import AsyncTransportBase, TransportBase

__all__ = ["AsyncResilientTransport", "ResilientTransport"]

_UNSENT = (httpx2.ConnectError, httpx2.ConnectTimeout, httpx2.PoolTimeout)


class ResilientTransport(TransportBase, httpx2.BaseTransport):
    """A sync httpx2 transport: each request goes through ``pipeline`` (per host with
    ``per_host=True``), then to ``transport`` (default: ``httpx2.HTTPTransport()``)."""

    _lib = httpx2
    _replayable = (httpx2.ByteStream, MultipartStream)
    _unsent = _UNSENT


class AsyncResilientTransport(AsyncTransportBase, httpx2.AsyncBaseTransport):
    """An async httpx2 transport (asyncio and trio): each request goes through
    ``pipeline`` (per host with ``per_host=True``), then to ``transport`` (default:
    ``httpx2.AsyncHTTPTransport()``)."""

    _lib = httpx2
    _replayable = (httpx2.ByteStream, MultipartStream)
    _unsent = _UNSENT
