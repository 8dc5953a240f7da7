"""``policy.describe()``: a pipeline's policies in order, their settings, and warnings.

Settings are read from each policy's constructor arguments (kept as given for
``clone()``, and brought up to date by ``reconfigure()``), with the constructor's
defaults filled in, as plain values: seconds as floats, exception classes as names, a
backoff or an algorithm as a small table. Some policies add what they learned at run
time (an adaptive limit, a learned hedging delay).

The warnings are the order mistakes that the libraries' issue trackers keep seeing
(resilience4j's annotation order, Polly's pipelines): a breaker outside a retry, a
fallback inside one, a single timeout outside a retry with none inside, a timeout
nested in a shorter one, chaos outside the policies it is meant to exercise.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from .settings_text import show

__all__ = ["Describable", "DescribedPolicy", "PipelineDescription", "describe", "plain"]


class Describable(Protocol):
    """What ``describe()`` reads of a policy (``Policy`` has all of it; a pipeline also
    has ``policies``, a timeout ``seconds``)."""

    @property
    def kind(self) -> str: ...

    @property
    def name(self) -> str | None: ...

    def _description(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class DescribedPolicy:
    """One policy of a description: its ``kind``, ``name`` and ``settings`` in force
    (constructor argument -> plain value)."""

    kind: str
    name: str | None
    settings: Mapping[str, Any]

    def show(self) -> str:
        """The settings as ``key=value`` pairs, as a config file would write them."""
        return " ".join(f"{key}={show(key, value)}" for key, value in self.settings.items())

    def __str__(self) -> str:
        label = self.kind if self.name is None else f"{self.kind} {self.name!r}"
        settings = self.show()
        return f"{label}: {settings}" if settings else label


@dataclass(frozen=True)
class PipelineDescription:
    """What ``describe()`` returns: the policies a call goes through, outermost first
    (nested pipelines flattened), and ``warnings`` about their order."""

    name: str | None
    policies: tuple[DescribedPolicy, ...]
    warnings: tuple[str, ...]

    def __str__(self) -> str:
        title = "pipeline" if self.name is None else f"pipeline {self.name!r}"
        lines = [f"{title}, outermost first:"]
        lines += [f"  {n}. {policy}" for n, policy in enumerate(self.policies, start=1)]
        if not self.policies:
            lines.append("  (no policies: calls go straight through)")
        lines += [f"warning: {warning}" for warning in self.warnings]
        return "\n".join(lines)


def describe(policy: Describable) -> PipelineDescription:
    """The description of ``policy`` (a pipeline, or a single policy)."""
    flat = _flatten(policy)
    described = tuple(DescribedPolicy(p.kind, p.name, p._description()) for p in flat)
    return PipelineDescription(policy.name, described, tuple(_order_warnings(flat)))


def _flatten(policy: Describable) -> list[Describable]:
    policies: Sequence[Describable] | None = getattr(policy, "policies", None)
    if policy.kind == "pipeline" and policies is not None:
        return [inner for p in policies for inner in _flatten(p)]
    return [policy]


# -- settings ----------------------------------------------------------------------------


def _exception_name(cls: type) -> str:
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def plain(value: Any) -> Any:
    """A constructor argument as a plain value for a description."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, type) and issubclass(value, BaseException):
        return (_exception_name(value),)
    if isinstance(value, (tuple, list, frozenset, set)):
        items = list(value)
        if all(isinstance(v, type) and issubclass(v, BaseException) for v in items):
            return tuple(_exception_name(v) for v in items)
        return tuple(plain(v) for v in items)
    described = getattr(value, "_described", None)
    if callable(described):  # the library's own small value objects (backoffs too)
        return described()
    if inspect.isroutine(value) or isinstance(value, type):
        return f"{getattr(value, '__qualname__', value)!s}()"
    return repr(value)


# -- warnings ----------------------------------------------------------------------------

_LABELS = {
    "circuit_breaker": "circuit breaker",
    "adaptive_concurrency": "adaptive concurrency",
    "adaptive_throttle": "adaptive throttle",
    "token_bucket": "token bucket",
}


def _label(policies: Sequence[Describable], index: int) -> str:
    policy = policies[index]
    what = _LABELS.get(policy.kind, policy.kind)
    name = f" {policy.name!r}" if policy.name is not None else ""
    return f"{what}{name} (#{index + 1})"


def _seconds(policy: Describable) -> float | None:
    seconds = getattr(policy, "seconds", None)
    return float(seconds) if isinstance(seconds, (int, float)) else None


def _order_warnings(policies: Sequence[Describable]) -> list[str]:
    kinds = [p.kind for p in policies]
    warnings: list[str] = []

    def label(i: int) -> str:
        return _label(policies, i)

    for i, kind in enumerate(kinds):
        inner = range(i + 1, len(kinds))
        if kind == "circuit_breaker":
            for j in inner:
                if kinds[j] in ("retry", "hedge"):
                    warnings.append(
                        f"{label(i)} is outside {label(j)}: it sees one outcome per call, after "
                        f"every attempt, so failed attempts do not count and an open breaker "
                        f"does not stop the attempts; put the breaker inside the {kinds[j]}"
                    )
        elif kind == "retry":
            for j in inner:
                if kinds[j] == "fallback":
                    warnings.append(
                        f"{label(j)} is inside {label(i)}: it answers every failure before the "
                        "retry sees it, so nothing is ever retried; put the fallback outside "
                        "the retry"
                    )
        elif kind == "timeout":
            for j in inner:
                if kinds[j] == "retry" and "timeout" not in kinds[j + 1 :]:
                    warnings.append(
                        f"{label(i)} is outside {label(j)} and no timeout is inside it: one "
                        "slow attempt uses up the whole time and is never retried; add a "
                        "per-attempt Timeout inside the retry (and keep this one as the "
                        "deadline of the whole call)"
                    )
            outer = _seconds(policies[i])
            for j in inner:
                seconds = _seconds(policies[j]) if kinds[j] == "timeout" else None
                if outer is not None and seconds is not None and seconds >= outer:
                    warnings.append(
                        f"{label(j)} ({seconds:g}s) is inside {label(i)} ({outer:g}s) and not "
                        "shorter: it can never fire"
                    )
        elif kind == "chaos":
            for j in inner:
                if kinds[j] in ("retry", "circuit_breaker", "hedge", "fallback", "timeout"):
                    warnings.append(
                        f"{label(i)} is outside {label(j)}: what it injects never reaches the "
                        f"{kinds[j].replace('_', ' ')}; put chaos innermost, where the "
                        "dependency is"
                    )
    return warnings
