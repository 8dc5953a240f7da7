"""An aiohttp client middleware that runs every request through a pipeline.

``aiohttp.ClientSession(middlewares=[ResilienceMiddleware(pipeline)])`` (aiohttp 3.12 or
later); see the docs page "HTTP clients".
"""

from __future__ import annotations

from typing import Any

try:
    import aiohttp
    from aiohttp import ClientResponse
    from aiohttp.client_middlewares import ClientHandlerType
    from aiohttp.payload import BytesPayload
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "resilience.http.aiohttp needs aiohttp 3.12 or later: pip install 'resiliency[aiohttp]'"
    ) from exc

import anyio

from ._client import Protected, aclose_all
from ._exchange import Exchange, network_budget, origin

__all__ = ["ResilienceMiddleware"]


class _AiohttpExchange(Exchange):
    __slots__ = ("handler",)

    handler: ClientHandlerType

    def may_retry(self) -> bool:
        request = self.request
        return self.rules.may_retry(request.method, request.headers, None)

    def can_resend(self) -> bool:
        # aiohttp knows whether a body can be written again: bytes can, a stream that
        # was read cannot.
        body = self.request.body
        if not body:
            return True
        consumed = getattr(body, "consumed", None)
        if consumed is not None:
            return not consumed
        return isinstance(body, BytesPayload)

    def can_duplicate(self) -> bool:
        body = self.request.body
        return not body or isinstance(body, BytesPayload)


class ResilienceMiddleware(Protected):
    """For ``aiohttp.ClientSession(middlewares=[...])``: each request (each redirect
    hop) goes through ``pipeline``, per host with ``per_host=True``."""

    _unsent = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)
    _async = True

    #: The middleware: ``await middleware(request, handler)``, as aiohttp calls it.
    __call__ = Protected._ahandle

    def _exchange(self, request: Any, handler: Any = None) -> _AiohttpExchange:
        url = request.url
        exchange = _AiohttpExchange(
            self._rules, origin(url.scheme, url.raw_host or "", url.port), request.method, request
        )
        exchange.handler = handler
        return exchange

    def _checked(self, response: Any) -> Any:
        if not isinstance(response, ClientResponse):
            raise TypeError(
                f"the pipeline of ResilienceMiddleware returned {response!r}; a Fallback in "
                "it must return an aiohttp.ClientResponse"
            )
        return response

    @staticmethod
    async def _close(response: Any) -> None:
        response.close()

    async def _attempt(self, exchange: _AiohttpExchange) -> Any:
        if exchange._failed:  # failed attempts' responses: nobody will read them
            await aclose_all(exchange.discarded(), self._close)
        budget = network_budget(True)
        if budget is None:
            response = await exchange.handler(exchange.request)
        else:
            # aiohttp fixes a request's timeouts before middlewares run: enforce the
            # deadline here, as a shorter timeout would.
            with anyio.move_on_after(budget) as scope:
                response = await exchange.handler(exchange.request)
            if scope.cancelled_caught:
                raise aiohttp.ServerTimeoutError(
                    f"no response from {exchange.host} before the deadline ({budget:.3f}s)"
                )
        if not exchange.receive(response, response.status, response.headers):
            response.close()  # nobody waits for this attempt any more
        return response
