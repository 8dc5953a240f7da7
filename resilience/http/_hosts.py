"""Per-host isolation: a pipeline's breakers, limiters and bulkheads, one per host.

The user's pipeline is a *template*. ``per_host`` rebuilds it once, with each policy
that keeps state about its dependency (``Policy.per_dependency``: CircuitBreaker,
TokenBucket, Bulkhead, AdaptiveThrottle) replaced by a keyed policy that makes a copy of
it for each host on first use (``policy.clone``), so one dead host does not open the
breaker, spend the tokens or fill the bulkhead of the others. The other policies
(Retry, Timeout, Fallback...) are shared as they are.
"""

from __future__ import annotations

from typing import Any

from .._keyed import KeyedPolicy
from .._pipeline import Pipeline
from .._policy import Policy

__all__ = ["per_host"]


def _host_of(exchange: Any, *_: Any, **__: Any) -> str:
    # The transports call the pipeline as ``call(attempt, exchange)``.
    return str(exchange.host)


def per_host(template: Policy, max_hosts: int, keyed: dict[int, KeyedPolicy]) -> Policy:
    """``template`` with every ``per_dependency`` policy replaced by a per-host keyed policy
    (``keyed`` maps each replaced policy's id to its keyed policy); ``template`` itself
    when it has none."""
    if isinstance(template, Pipeline):
        parts = tuple(per_host(policy, max_hosts, keyed) for policy in template.policies)
        if all(new is old for new, old in zip(parts, template.policies, strict=True)):
            return template
        return Pipeline(*parts, name=template.name)
    if template.per_dependency:
        replaced = keyed.get(id(template))
        if replaced is None:  # the same policy twice in a template: one keyed policy
            replaced = keyed[id(template)] = KeyedPolicy(
                lambda host: _copy(template, host),
                key=_host_of,
                max_keys=max_hosts,
                name=template.name,
            )
        return replaced
    return template


def _copy(template: Policy, host: str) -> Policy:
    """The host's copy of ``template``: its own state, under its own store key, and
    the listeners the template has now."""
    base = getattr(template, "key", None)
    copy = template.clone(key=f"{base}@{host}") if base is not None else template.clone()
    for listener in tuple(template._listeners):
        copy.listen(listener)
    return copy
