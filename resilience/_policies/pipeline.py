"""Pipeline: policies composed once, outermost first."""

from __future__ import annotations

from collections.abc import Callable

from .._core.validation import show
from .events import Listener
from .policy import AsyncRunner, Policy, Runner

__all__ = ["Pipeline"]


class Pipeline(Policy):
    """``Pipeline(p1, p2, ...)`` runs a call through ``p1``, which runs it through ``p2``...

    The recommended order is ``Fallback, Retry, CircuitBreaker, TokenBucket, Bulkhead,
    Timeout``. A pipeline is a policy itself: it decorates, has ``call``/``acall``, and
    can be nested in another pipeline. Its runners are composed here, once.
    """

    kind = "pipeline"

    def __init__(self, *policies: Policy, name: str | None = None) -> None:
        for position, policy in enumerate(policies):
            if not isinstance(policy, Policy):
                raise TypeError(
                    f"Pipeline arguments must be policies; argument {position} is {show(policy)}"
                )
        super().__init__(name, None)
        self.policies = policies
        self._compose()

    def _sync_runner(self, inner: Runner) -> Runner:
        for policy in reversed(self.policies):
            inner = policy._sync_runner(inner)
        return inner

    def _async_runner(self, inner: AsyncRunner) -> AsyncRunner:
        for policy in reversed(self.policies):
            inner = policy._async_runner(inner)
        return inner

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Send the events of every policy in this pipeline (nested ones too) to
        ``listener``; returns a function that stops it. A pipeline emits no events of
        its own."""
        stops = [policy.listen(listener) for policy in self.policies]

        def unsubscribe() -> None:
            for stop in stops:
                stop()

        return unsubscribe

    def __repr__(self) -> str:
        inner = ", ".join(repr(p) for p in self.policies)
        return f"Pipeline({inner}, name={self.name!r})"
