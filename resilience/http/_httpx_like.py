"""The httpx transports, written once for httpx and for its fork httpx2, whose
transport interfaces are the same: each library's module (``resilience.http.httpx``,
``resilience.http.httpx2``) binds these classes to its own types."""

from __future__ import annotations

from collections.abc import Collection
from types import ModuleType
from typing import Any

from .._core.deadline import CURRENT
from .._policies.policy import Policy
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


_UNCHANGED: Any = object()  # an exchange whose request's timeouts were never cut


class _HttpxExchange(Exchange):
    __slots__ = ("timeouts",)

    #: The request's own network timeouts, kept when an attempt first cuts them to a
    #: deadline (``_UNCHANGED`` until then; None when it had none).
    timeouts: Any

    def may_retry(self) -> bool:
        request = self.request
        explicit = request.extensions.get("idempotent")
        return self.rules.may_retry(request.method, request.headers, explicit)

    def can_resend(self) -> bool:
        return isinstance(self.request.stream, self.rules.replayable)

    def can_duplicate(self) -> bool:
        return isinstance(self.request.stream, self.rules.duplicable)


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
        self._rules.replayable = self._replayable
        self._rules.duplicable = (self._lib.ByteStream,)

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

    def _exchange(self, request: Any, handler: Any = None) -> _HttpxExchange:
        url = request.url
        sent = getattr(url, "_uri_reference", url)  # the host in its ASCII (IDNA) form
        exchange = _HttpxExchange(
            self._rules, origin(sent.scheme, sent.host, sent.port), request.method, request
        )
        exchange.timeouts = _UNCHANGED
        return exchange

    def _checked(self, response: Any) -> Any:
        if not isinstance(response, self._lib.Response):
            raise TypeError(
                f"the pipeline of {type(self).__name__} returned {response!r}; a Fallback in "
                f"it must return a {self._lib.__name__}.Response"
            )
        return response


def _request(exchange: _HttpxExchange, in_async: bool) -> dict[str, Any] | None:
    """Prepare the request of the next attempt: its own network timeouts, cut to what is
    left of the active deadline (see ``network_budget``), in a new extensions dict of
    its own. Returns that dict when it cut them (for ``_restore``), else None."""
    request = exchange.request
    given = exchange.timeouts
    if given is _UNCHANGED:
        if CURRENT.get() is None:
            return None  # the common case: no deadline, nothing to undo
        given = exchange.timeouts = request.extensions.get("timeout")
    budget = network_budget(in_async)
    extensions = {k: v for k, v in request.extensions.items() if k != "timeout"}
    if budget is not None:
        extensions["timeout"] = {
            kind: budget if (given or {}).get(kind) is None else min(given[kind], budget)
            for kind in _TIMEOUT_KINDS
        }
    elif given is not None:
        extensions["timeout"] = given
    request.extensions = extensions
    return None if budget is None else extensions


def _restore(exchange: _HttpxExchange, extensions: dict[str, Any]) -> None:
    """Give the attempt's request its own timeouts back, once its transport returned
    (the response's head is in, or the attempt failed).

    The deadline bounds an attempt up to the response's head only; the body is read
    under the client's own timeouts. The transport (httpx's, httpx2's) hands this very
    dict to httpcore, whose response stream reads its ``"timeout"`` again at every body
    read, after we return: so the timeouts are put back in place, in the same dict,
    rather than on a new one (which httpcore would never see), and the request the
    caller gets shows its own timeouts too. Each attempt has a dict of its own: a
    hedged attempt still waiting keeps its cut."""
    given = exchange.timeouts
    if given is None:
        extensions.pop("timeout", None)
    else:
        extensions["timeout"] = given


class TransportBase(_Common):
    """The sync transport: ``handle_request`` runs each request through the pipeline."""

    _transport_kinds = ("HTTPTransport", "BaseTransport")

    #: ``httpx.BaseTransport``'s entry point: ``request`` through the pipeline.
    handle_request = Protected._handle

    @staticmethod
    def _close(response: Any) -> None:
        response.close()

    def _attempt(self, exchange: _HttpxExchange) -> Any:
        if exchange._failed:  # failed attempts' responses: nobody will read them
            for response in exchange.discarded():
                response.close()
        cut = _request(exchange, False)
        try:
            response = self.transport.handle_request(exchange.request)
        finally:
            if cut is not None:
                _restore(exchange, cut)
        if not exchange.receive(response, response.status_code, response.headers):
            response.close()  # nobody waits for this attempt any more
        return response

    def close(self) -> None:
        self.transport.close()


class AsyncTransportBase(_Common):
    """The async transport (asyncio and trio): ``handle_async_request``."""

    _async = True
    _transport_kinds = ("AsyncHTTPTransport", "AsyncBaseTransport")

    #: ``httpx.AsyncBaseTransport``'s entry point: ``request`` through the pipeline.
    handle_async_request = Protected._ahandle

    @staticmethod
    async def _close(response: Any) -> None:
        await response.aclose()

    async def _attempt(self, exchange: _HttpxExchange) -> Any:
        if exchange._failed:  # failed attempts' responses: nobody will read them
            await aclose_all(exchange.discarded(), self._close)
        cut = _request(exchange, True)  # cut only with a deadline of another thread
        try:
            response = await self.transport.handle_async_request(exchange.request)
        finally:
            if cut is not None:
                _restore(exchange, cut)
        if not exchange.receive(response, response.status_code, response.headers):
            await aclose_all([response], self._close)
        return response

    async def aclose(self) -> None:
        await self.transport.aclose()
