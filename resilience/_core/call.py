"""What an integration tells the policies about the call it runs through them.

The HTTP integrations run each request through a pipeline of ordinary policies, which
know nothing of statuses, methods or hosts. Around each request the integration
publishes a :class:`CallContext` in a context variable: how to classify the request's
outcomes (a 503 response is a failure; a POST must not be sent twice) and what to put on
the events of the call (host, method, status). Policies read it only on their slow
paths (an exception to classify, an event to build), so calls made outside an
integration pay nothing for it.
"""

from __future__ import annotations

from contextvars import ContextVar

__all__ = ["CURRENT_CALL", "CallContext"]


class CallContext:
    """The call in progress, as an integration describes it. The base class overrides
    nothing: every verdict is None, so the policies' own settings decide."""

    __slots__ = ("host", "method", "status")

    def __init__(self, host: str | None = None, method: str | None = None) -> None:
        self.host = host
        self.method = method
        self.status: int | None = None

    def failure(self, exc: BaseException) -> bool | None:
        """Whether ``exc`` is a failure for a circuit breaker (False: a success), or
        None to let the breaker's ``failure_on`` and ``ignore`` decide."""
        return None

    def retryable(self, outcome: object) -> bool | None:
        """Whether a Retry may try again after ``outcome`` (an exception, or a result
        its ``retry_if_result`` matched): False forbids it, True allows it whatever
        ``retry_on`` says, None lets the Retry's own settings decide."""
        return None

    def may_duplicate(self) -> bool:
        """Whether the call may run twice at the same time (a Hedge's extra attempts):
        False for a request that must not be sent twice, or whose body cannot be."""
        return True


#: The call in progress in this thread or task, or None outside any integration.
CURRENT_CALL: ContextVar[CallContext | None] = ContextVar("resilience-call", default=None)
