"""Per-host isolation: a pipeline's breakers, limiters and bulkheads, one per host.

The user's pipeline is a *template*. Each host gets a pipeline of its own, built from
the template on the host's first request, in which each policy that keeps state about
its dependency (``Policy.per_dependency``: CircuitBreaker, TokenBucket, Bulkhead,
AdaptiveThrottle) is replaced by a copy (``policy.follower``), so one dead host does not
open the breaker, spend the tokens or fill the bulkhead of the others. The other
policies (Retry, Timeout, Fallback...) are shared as they are. A keyed policy keeps
the hosts' pipelines (least recently used dropped beyond ``max_hosts``): one lookup per
request.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from .._policies.events import Listener
from .._policies.keyed import KeyedPolicy
from .._policies.pipeline import Pipeline
from .._policies.policy import Policy

__all__ = ["Hosts", "compose", "has_per_dependency"]


def has_per_dependency(template: Policy) -> bool:
    """Whether ``template`` holds a policy that each host needs its own copy of."""
    if isinstance(template, Pipeline):
        return any(has_per_dependency(policy) for policy in template.policies)
    return template.per_dependency


def compose(policy: Policy, attempt: Callable[..., Any], is_async: bool) -> Callable[..., Any]:
    """``policy``'s runner around ``attempt``: ``runner(exchange)``."""
    return policy._async_runner(attempt) if is_async else policy._sync_runner(attempt)


class HostPipeline(Pipeline):
    """One host's pipeline. Listening to it reaches only the host's own copies: the
    shared policies are listened to once, by the transport."""

    copies: dict[int, Policy]  # id of a template policy -> the host's copy
    runner: Callable[..., Any]  # its policies composed around the transport's attempt

    def listen(self, listener: Listener) -> Callable[[], None]:
        stops = [copy.listen(listener) for copy in self.copies.values()]

        def unsubscribe() -> None:
            for stop in stops:
                stop()

        return unsubscribe


class Hosts:
    """The hosts' pipelines, made from ``template`` on first use."""

    def __init__(
        self,
        template: Policy,
        max_hosts: int,
        attempt: Callable[..., Any],
        is_async: bool,
    ) -> None:
        self.template = template
        self._attempt = attempt
        self._async = is_async
        self.keyed = KeyedPolicy(
            self._pipeline_for, key=operator.attrgetter("host"), max_keys=max_hosts
        )

    def _pipeline_for(self, host: str) -> HostPipeline:
        copies: dict[int, Policy] = {}
        template = self.template
        parts = template.policies if isinstance(template, Pipeline) else (template,)
        pipeline = HostPipeline(*(_rebuild(policy, host, copies) for policy in parts))
        pipeline.copies = copies
        pipeline.runner = compose(pipeline, self._attempt, self._async)
        return pipeline

    def runner(self) -> Callable[[Any], Any]:
        """``runner(exchange)``: the exchange's host's runner, called on it."""
        get = self.keyed.get

        def run(exchange: Any) -> Any:
            host_pipeline: Any = get(exchange.host)
            return host_pipeline.runner(exchange)

        return run

    def shared(self) -> list[Policy]:
        """The template's policies that every host shares (each once)."""
        found: dict[int, Policy] = {}
        _shared(self.template, found)
        return list(found.values())

    def listen(self, listener: Listener) -> Callable[[], None]:
        stops = [policy.listen(listener) for policy in self.shared()]
        stops.append(self.keyed.listen(listener))

        def unsubscribe() -> None:
            for stop in stops:
                stop()

        return unsubscribe

    def copy_of(self, policy: Policy, host: str) -> Policy | None:
        """The host's copy of a template policy (made now if the host has none yet), or
        None when the policy is shared."""
        if not policy.per_dependency:
            return None
        host_pipeline = self.keyed.get(host)
        assert isinstance(host_pipeline, HostPipeline)
        return host_pipeline.copies.get(id(policy))


def _rebuild(policy: Policy, host: str, copies: dict[int, Policy]) -> Policy:
    if isinstance(policy, Pipeline):
        return Pipeline(*(_rebuild(inner, host, copies) for inner in policy.policies))
    if not policy.per_dependency:
        return policy
    copy = copies.get(id(policy))  # the same policy twice in a template: one copy
    if copy is None:
        copy = copies[id(policy)] = _copy(policy, host)
    return copy


def _shared(policy: Policy, found: dict[int, Policy]) -> None:
    if isinstance(policy, Pipeline):
        for inner in policy.policies:
            _shared(inner, found)
    elif not policy.per_dependency:
        found[id(policy)] = policy


def _copy(template: Policy, host: str) -> Policy:
    """The host's copy of ``template``: its own state, under its own store key, the
    listeners the template has now, and following the template (a reconfigure, a config
    reload or a mode switch of the template reaches the hosts too)."""
    base: Any = getattr(template, "key", None)
    return template.follower(key=f"{base}@{host}") if base is not None else template.follower()
