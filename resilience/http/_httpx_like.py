"""The httpx transports, written once for httpx and for its fork httpx2, whose
transport interfaces are the same: each library's module (``resilience.http.httpx``,
``resilience.http.httpx2``) binds these classes to its own types."""

from __future__ import annotations

from collections.abc import Collection
from types import ModuleType
from typing import Any

from .._policy import Policy
from ._client import Protected, aclose_all
from ._exchange import (
    IDEMPOTENT_METHODS,
    RETRY_STATUSES,
    Exchange,
    network_budget,
    origin,
)

__all__ = ["AsyncTransportBase", "TransportBase"]

_TIMEOUT_KINDS = ("connect", "read", "write", "pool")


class _HttpxExchange(Exchange):
    __slots__ = ("timeouts",)

    timeouts: Any


class _Common(Protected):
    """Settings and request classification common to the sync and async transports."""

    #: The client library's module (httpx or httpx2).
    _lib: ModuleType
    #: Request body streams that can be sent again (one at a time; only
    #: ``ByteStream``, bytes in memory, twice at once).
    _replayable: tuple[type[Any], ...]

    def __init__(
        self,
        pipeline: Policy,
        transport: Any = None,
        *,
        per_host: bool = True,
        retry_statuses: Collection[int] = RETRY_STATUSES,
        failure_statuses: Collection[int] | None = None,
        retry_methods: Collection[str] = IDEMPOTENT_METHODS,
        max_hosts: int = 1024,
    ) -> None:
        super().__init__(
            pipeline,
            per_host=per_host,
            retry_statuses=retry_statuses,
            failure_statuses=failure_statuses,
            retry_methods=retry_methods,
            max_hosts=max_hosts,
        )
        #: The transport that sends each attempt.
        self.transport = self._check_transport(transport)

    #: The names, in the library, of the default transport and of the transports' base.
    _transport_kinds: tuple[str, str]

    def _check_transport(self, transport: Any) -> Any:
        default, base = self._transport_kinds
        if transport is None:
            return getattr(self._lib, default)()
        if not isinstance(transport, getattr(self._lib, base)):
            raise TypeError(
                f"transport must be a {self._lib.__name__}.{base} (or None for the default), "
                f"got {transport!r}"
            )
        return transport

    def _exchange(self, request: Any) -> _HttpxExchange:
        url = request.url
        extensions = request.extensions
        stream = request.stream
        exchange = _HttpxExchange(
            self._rules,
            origin(url.scheme, url.host, url.port),
            request.method,
            request,
            self._rules.may_retry(request.method, request.headers, extensions.get("idempotent")),
            isinstance(stream, self._replayable),
            isinstance(stream, self._lib.ByteStream),
        )
        exchange.timeouts = extensions.get("timeout")
        return exchange

    def _checked(self, response: Any) -> Any:
        if not isinstance(response, self._lib.Response):
            raise TypeError(
                f"the pipeline of {type(self).__name__} returned {response!r}; a Fallback in "
                f"it must return a {self._lib.__name__}.Response"
            )
        return response


def _prepare(exchange: _HttpxExchange, budget: float | None) -> Any:
    """The request of the next attempt: its own network timeouts, cut to ``budget``."""
    request = exchange.request
    timeouts = exchange.timeouts
    if budget is not None:
        given = timeouts or {}
        timeouts = {}
        for kind in _TIMEOUT_KINDS:
            value = given.get(kind)
            timeouts[kind] = budget if value is None or value > budget else value
    if timeouts is not None and request.extensions.get("timeout") is not timeouts:
        request.extensions = {**request.extensions, "timeout": timeouts}
    return request


def _close(response: Any) -> None:
    response.close()


async def _aclose(response: Any) -> None:
    await response.aclose()


class TransportBase(_Common):
    """The sync transport: ``handle_request`` runs each request through the pipeline."""

    _transport_kinds = ("HTTPTransport", "BaseTransport")

    def handle_request(self, request: Any) -> Any:
        """Send ``request`` through the pipeline (``httpx.BaseTransport`` interface)."""
        return self._checked(self._handle(self._exchange(request), _close))

    def _attempt(self, exchange: _HttpxExchange) -> Any:
        if exchange._failed:  # failed attempts' responses: nobody will read them
            for response in exchange.discarded():
                response.close()
        response = self.transport.handle_request(_prepare(exchange, network_budget(False)))
        if not exchange.receive(response, response.status_code, response.headers):
            response.close()  # nobody waits for this attempt any more
        return response

    def close(self) -> None:
        self.transport.close()


class AsyncTransportBase(_Common):
    """The async transport (asyncio and trio): ``handle_async_request``."""

    _async = True
    _transport_kinds = ("AsyncHTTPTransport", "AsyncBaseTransport")

    async def handle_async_request(self, request: Any) -> Any:
        """Send ``request`` through the pipeline (``httpx.AsyncBaseTransport`` interface)."""
        response = await self._ahandle(self._exchange(request), _aclose)
        return self._checked(response)

    async def _attempt(self, exchange: _HttpxExchange) -> Any:
        if exchange._failed:  # failed attempts' responses: nobody will read them
            await aclose_all(exchange.discarded(), _aclose)
        response = await self.transport.handle_async_request(
            _prepare(exchange, network_budget(True))
        )
        if not exchange.receive(response, response.status_code, response.headers):
            await aclose_all([response], _aclose)
        return response

    async def aclose(self) -> None:
        await self.transport.aclose()
