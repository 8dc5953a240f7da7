"""httpx transports that run every request through a pipeline.

``httpx.Client(transport=ResilientTransport(pipeline))`` and
``httpx.AsyncClient(transport=AsyncResilientTransport(pipeline))``; see the docs page
"HTTP clients".
"""

from __future__ import annotations

try:
    import httpx
    from httpx._multipart import MultipartStream
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("resilience.http.httpx needs httpx: pip install 'resiliency[httpx]'") from exc

from ._httpx_like import AsyncTransportBase, TransportBase

__all__ = ["AsyncResilientTransport", "ResilientTransport"]

_UNSENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


class ResilientTransport(TransportBase, httpx.BaseTransport):
    """A sync httpx transport: each request goes through ``pipeline`` (per host with
    ``per_host=True``), then to ``transport`` (default: ``httpx.HTTPTransport()``)."""

    _lib = httpx
    _replayable = (httpx.ByteStream, MultipartStream)
    _unsent = _UNSENT


class AsyncResilientTransport(AsyncTransportBase, httpx.AsyncBaseTransport):
    """An async httpx transport (asyncio and trio): each request goes through
    ``pipeline`` (per host with ``per_host=True``), then to ``transport`` (default:
    ``httpx.AsyncHTTPTransport()``)."""

    _lib = httpx
    _replayable = (httpx.ByteStream, MultipartStream)
    _unsent = _UNSENT
