"""What the httpx transports and the aiohttp middleware share: settings, the per-host
pipeline, and the two drivers (sync and async) that run one request through it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any, TypeVar

import anyio

from .._core.call import CURRENT_CALL
from .._core.validation import check_bool, check_positive_int
from .._policies.events import Listener
from .._policies.policy import Policy
from ._exchange import IDEMPOTENT_METHODS, RETRY_STATUSES, Exchange, Rules, origin_of
from ._hosts import Hosts, compose, has_per_dependency

__all__ = ["Protected", "aclose_all"]

P = TypeVar("P", bound=Policy)


class Protected:
    """Runs requests through ``pipeline``: per host (``per_host=True``: each
    scheme://host:port gets its own breakers, limiters and bulkheads, copied from the
    pipeline's) or all through the pipeline as it is."""

    #: Exceptions of the client library that prove a request was never sent.
    _unsent: tuple[type[BaseException], ...] = ()
    #: Whether ``_attempt`` is a coroutine function (async clients).
    _async: bool = False

    def _attempt(self, exchange: Any) -> Any:
        """Send one attempt of ``exchange``'s request: the call the policies protect."""
        raise NotImplementedError

    def __init__(
        self,
        pipeline: Policy,
        *,
        per_host: bool = True,
        retry_statuses: Collection[int] = RETRY_STATUSES,
        failure_statuses: Collection[int] | None = None,
        retry_methods: Collection[str] = IDEMPOTENT_METHODS,
        max_hosts: int = 1024,
    ) -> None:
        if not isinstance(pipeline, Policy):
            raise TypeError(f"pipeline must be a policy or a Pipeline, got {pipeline!r}")
        check_bool("per_host", per_host)
        max_hosts = check_positive_int("max_hosts", max_hosts)
        self._rules = Rules(retry_statuses, failure_statuses, retry_methods, self._unsent)
        #: The pipeline as given: with ``per_host``, the template of every host's policies.
        self.pipeline = pipeline
        self.per_host = per_host
        #: None when every host shares the pipeline as it is.
        self._hosts = (
            Hosts(pipeline, max_hosts, self._attempt, self._async)
            if per_host and has_per_dependency(pipeline)
            else None
        )
        #: ``runner(exchange)``: the policies composed, once, around ``_attempt`` (sync or
        #: async, as the client is): the pipeline's, or a function that hands the
        #: exchange to its host's (returning its coroutine: no frame of its own).
        self._runner: Callable[[Any], Any] = (
            compose(pipeline, self._attempt, self._async)
            if self._hosts is None
            else self._hosts.runner()
        )

    @property
    def retry_statuses(self) -> frozenset[int]:
        """Statuses whose responses are retried (when the request may be sent again)."""
        return self._rules.retry_statuses

    @property
    def failure_statuses(self) -> frozenset[int]:
        """Statuses whose responses count as failures for circuit breakers."""
        return self._rules.failure_statuses

    @property
    def retry_methods(self) -> frozenset[str]:
        """Methods whose requests may be retried without being told."""
        return self._rules.retry_methods

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Hear the events of every policy requests go through, every host's copies
        included (present and future); returns a function that stops it."""
        if self._hosts is None:
            return self.pipeline.listen(listener)
        return self._hosts.listen(listener)

    def policy_for(self, policy: P, url: object) -> P:
        """The policy that protects requests to ``url``'s host in place of ``policy``
        (a policy of the pipeline): with ``per_host``, the host's own copy of a
        breaker, limiter or bulkhead (made now if the host has none yet); otherwise,
        and for shared policies, ``policy`` itself."""
        if not _contains(self.pipeline, policy):
            raise ValueError(f"{policy!r} is not a policy of this client's pipeline")
        host = origin_of(url)
        copy = None if self._hosts is None else self._hosts.copy_of(policy, host)
        return policy if copy is None else copy  # type: ignore[return-value]

    def hosts(self) -> list[str]:
        """The hosts (``scheme://host:port``) that have their own policies now."""
        return [] if self._hosts is None else sorted(map(str, self._hosts.keyed.keys()))

    # -- drivers ---------------------------------------------------------------------

    def _exchange(self, request: Any, handler: Any = None) -> Exchange:
        """The exchange of ``request`` (``handler``: the next aiohttp handler)."""
        raise NotImplementedError

    def _checked(self, response: Any) -> Any:
        """``response``, once checked to be one the client can return."""
        raise NotImplementedError

    @staticmethod
    def _close(response: Any) -> Any:
        """Close a response nobody will read (a coroutine for async clients)."""
        raise NotImplementedError

    # The two drivers below are the clients' entry points themselves (each client class
    # names one ``handle_request``, ``handle_async_request`` or ``__call__``): one
    # frame from the client to the policies.

    def _handle(self, request: Any) -> Any:
        """Run ``request``'s attempts through the pipeline; the response to return."""
        exchange = self._exchange(request)
        token = CURRENT_CALL.set(exchange)
        final = None
        try:
            try:
                final = self._runner(exchange)
            except Exception as exc:
                final = exchange.unwrap(exc)
        finally:
            CURRENT_CALL.reset(token)
            for response in exchange.end(final):
                self._close(response)
        return self._checked(final)

    async def _ahandle(self, request: Any, handler: Any = None) -> Any:
        """The async twin of ``_handle``."""
        exchange = self._exchange(request, handler)
        token = CURRENT_CALL.set(exchange)
        final = None
        try:
            try:
                final = await self._runner(exchange)
            except Exception as exc:
                final = exchange.unwrap(exc)
        finally:
            CURRENT_CALL.reset(token)
            await aclose_all(exchange.end(final), self._close)
        return self._checked(final)


async def aclose_all(responses: Sequence[Any], aclose: Callable[[Any], Awaitable[object]]) -> None:
    """Close responses nobody will read; shielded, so that a cancelled request still
    gives its connections back."""
    if responses:
        with anyio.CancelScope(shield=True):
            for response in responses:
                await aclose(response)


def _contains(template: Policy, policy: Policy) -> bool:
    if template is policy:
        return True
    return any(_contains(inner, policy) for inner in getattr(template, "policies", ()))
