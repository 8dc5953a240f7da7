"""What each policy kind accepts in a config file, and how a checked table becomes a
policy (``build``) or changes a live one (``apply``).

A policy's config table is read into *settings*: the constructor's arguments as plain,
comparable values (seconds as floats, exception classes as their names, a backoff as a
small table), with every argument the table leaves out at the constructor's default.
Settings are what ``check-config`` prints and what ``Registry.reload`` compares.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .._core.backoff import Constant, DecorrelatedJitter, Exponential, Linear
from .._core.clock import Clock
from .._core.windows import CountWindow
from .._policies.adaptive import AIMD, AdaptiveConcurrency, Gradient
from .._policies.breaker import CircuitBreaker
from .._policies.bucket import TokenBucket
from .._policies.budget import RetryBudget
from .._policies.bulkhead import Bulkhead
from .._policies.chaos import Chaos
from .._policies.describe import plain
from .._policies.fallback import Fallback
from .._policies.hedge import Hedge, LatencyQuantile
from .._policies.policy import Policy
from .._policies.retry import Retry
from .._policies.throttle import AdaptiveThrottle
from .._policies.timeout import Timeout
from ..errors import ConfigError
from ._values import (
    check_keys,
    exception_types,
    read_bool,
    read_duration,
    read_exceptions,
    read_fraction,
    read_int,
    read_number,
    read_optional,
    read_rate,
    read_str,
    read_table,
)

__all__ = ["KINDS", "PolicySpec", "apply", "build", "read_policy"]

#: Policy kinds, in the recommended order (outermost first).
KINDS = (
    "fallback",
    "retry",
    "hedge",
    "circuit_breaker",
    "adaptive_throttle",
    "token_bucket",
    "bulkhead",
    "adaptive_concurrency",
    "timeout",
    "chaos",
)
_CLASSES: dict[str, type[Policy]] = {
    "fallback": Fallback,
    "retry": Retry,
    "hedge": Hedge,
    "circuit_breaker": CircuitBreaker,
    "adaptive_throttle": AdaptiveThrottle,
    "token_bucket": TokenBucket,
    "bulkhead": Bulkhead,
    "adaptive_concurrency": AdaptiveConcurrency,
    "timeout": Timeout,
    "chaos": Chaos,
}
#: Keys of exception class names, turned into classes for the constructor.
_EXCEPTION_KEYS = ("failure_on", "ignore", "retry_on", "on", "hedge_on", "dropped_on")
#: Keys that are not constructor arguments: whether to use the registry's store.
_SHAREABLE = frozenset({"circuit_breaker", "token_bucket", "bulkhead"})


def read_sync_mode(path: str, value: Any) -> str:
    if value not in ("strict", "local-first"):
        raise ConfigError(path, value, '"strict" or "local-first"')
    return str(value)


#: The store's options that one shared policy may set for itself (``store.with_options``):
#: not constructor arguments either. They need ``shared = true``.
#: How a config file writes each of the Redis store's fleet options (the ``[store]``
#: section takes them all; a shared policy the ones below).
REDIS_OPTIONS: dict[str, Callable[[str, Any], Any]] = {
    "sync_mode": read_sync_mode,
    "flush_interval": lambda path, value: read_duration(path, value, positive=True),
    "poll_interval": lambda path, value: read_duration(path, value, positive=True),
    "min_instances": read_optional(read_int),
    "lease_tokens": read_optional(read_int),
    "slot_lease": lambda path, value: read_duration(path, value, positive=True),
}

#: The store options a shared policy of each kind may set for itself.
STORE_OPTIONS: dict[str, dict[str, Callable[[str, Any], Any]]] = {
    kind: {key: REDIS_OPTIONS[key] for key in keys}
    for kind, keys in {
        "circuit_breaker": ("sync_mode", "flush_interval", "poll_interval", "min_instances"),
        "token_bucket": ("sync_mode", "flush_interval", "lease_tokens"),
        "bulkhead": ("slot_lease",),
    }.items()
}


@dataclass(frozen=True)
class PolicySpec:
    """One policy of a pipeline, read and checked."""

    path: str  # "pipelines.payments.retry"
    entry: str  # the key in the pipeline's table
    kind: str
    name: str
    settings: Mapping[str, Any]
    shared: bool = False
    #: Store options of this policy alone (``STORE_OPTIONS``; only when shared).
    store_options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OpenSteps:
    """``open_for = ["10s", "30s", "2m"]``: the n-th open in a row lasts the n-th duration
    (the last one from then on). Comparable, so stores can tell settings apart."""

    steps: tuple[float, ...]

    def __call__(self, consecutive_opens: int) -> float:
        return self.steps[min(max(consecutive_opens, 1), len(self.steps)) - 1]


# -- readers of composite values ---------------------------------------------------------

_BACKOFFS: dict[str, type[Any]] = {
    "constant": Constant,
    "linear": Linear,
    "exponential": Exponential,
    "decorrelated_jitter": DecorrelatedJitter,
}
_JITTERS = ("none", "full", "equal")


def _read_positive_duration(path: str, value: Any) -> float:
    return read_duration(path, value, positive=True)


def _read_jitter(path: str, value: Any) -> str:
    if value not in _JITTERS:
        raise ConfigError(path, value, 'one of "none", "full", "equal"')
    return str(value)


def _read_factor(path: str, value: Any) -> float:
    factor = read_number(path, value, "a number of at least 1")
    if factor < 1:
        raise ConfigError(path, value, "a number of at least 1")
    return factor


_BACKOFF_KEYS: dict[str, dict[str, Callable[[str, Any], Any]]] = {
    "constant": {"delay": read_duration, "max": read_optional(read_duration)},
    "linear": {
        "base": read_duration,
        "step": read_duration,
        "max": read_optional(read_duration),
    },
    "exponential": {
        "base": read_duration,
        "factor": _read_factor,
        "max": read_optional(read_duration),
        "jitter": _read_jitter,
    },
    "decorrelated_jitter": {"base": read_duration, "max": read_optional(read_duration)},
}


def _defaults_of(cls: type[Any], keys: Mapping[str, Any]) -> dict[str, Any]:
    """The constructor defaults of ``cls`` for ``keys`` (required ones left out)."""
    parameters = inspect.signature(cls).parameters
    return {
        key: parameters[key].default
        for key in keys
        if parameters[key].default is not inspect.Parameter.empty
    }


def _read_backoff(path: str, value: Any) -> dict[str, Any]:
    """A table ``{kind = "exponential", base = "100ms", ...}``, or a duration: constant."""
    if not isinstance(value, Mapping):
        value = {"kind": "constant", "delay": read_duration(path, value)}
    table = read_table(path, value)
    kind = table.get("kind")
    if not isinstance(kind, str) or kind not in _BACKOFFS:
        raise ConfigError(f"{path}.kind", kind, f"a backoff kind: one of {', '.join(_BACKOFFS)}")
    keys = _BACKOFF_KEYS[kind]
    check_keys(path, table, ["kind", *keys], f"a setting of a {kind} backoff")
    params = _defaults_of(_BACKOFFS[kind], keys)
    for key, read in keys.items():
        if key in table:
            params[key] = read(f"{path}.{key}", table[key])
        elif key not in params:
            raise ConfigError(f"{path}.{key}", None, f"a value: a {kind} backoff needs {key}")
    try:
        backoff = _BACKOFFS[kind](**params)
    except (ValueError, TypeError) as exc:  # e.g. max below base
        key = "max" if "max" in str(exc).split(" ", 1)[0] else "kind"
        raise ConfigError(f"{path}.{key}", table.get(key), f"a value that fits ({exc})") from None
    described: dict[str, Any] = backoff._described()  # with the max it actually uses
    return described


def _read_budget(path: str, value: Any) -> dict[str, Any]:
    table = read_table(path, value)
    keys: dict[str, Callable[[str, Any], Any]] = {
        "ratio": read_fraction,
        "min_per_second": _read_non_negative,
        "window": _read_positive_duration,
    }
    check_keys(path, table, [*keys, "shared"], "a setting of a retry budget")
    result = _defaults_of(RetryBudget, keys)
    for key, read in keys.items():
        if key in table:
            result[key] = read(f"{path}.{key}", table[key])
    if "shared" in table and read_bool(f"{path}.shared", table["shared"]):
        # The fleet's budget, in the registry's store, named after its retry policy.
        result["shared"] = True
    return result


def _read_non_negative(path: str, value: Any) -> float:
    number = read_number(path, value, "a number of at least 0")
    if number < 0:
        raise ConfigError(path, value, "a number of at least 0")
    return number


def _read_window(path: str, value: Any) -> float | dict[str, int]:
    """A duration (a time window), or ``{calls = 100}`` (the last 100 calls)."""
    if isinstance(value, Mapping):
        table = read_table(path, value)
        check_keys(path, table, ["calls"], "a count window: calls")
        if "calls" not in table:
            raise ConfigError(f"{path}.calls", None, "the number of calls the window holds")
        return {"calls": read_int(f"{path}.calls", table["calls"])}
    return read_duration(path, value, positive=True)


def _read_open_for(path: str, value: Any) -> float | tuple[float, ...]:
    """A duration, or a list of them: the n-th open in a row lasts the n-th one."""
    if isinstance(value, (list, tuple)):
        if not value:
            raise ConfigError(path, value, "a duration, or a non-empty list of durations")
        return tuple(read_duration(f"{path}[{i}]", item) for i, item in enumerate(value))
    return read_duration(path, value)


def _read_burst(path: str, value: Any) -> float:
    burst = read_number(path, value, "a number of tokens of at least 1")
    if burst < 1:
        raise ConfigError(path, value, "a number of tokens of at least 1")
    return burst


def _read_any(path: str, value: Any) -> Any:
    return value


def _read_rate_value(path: str, value: Any) -> tuple[float, float | None]:
    return read_rate(path, value)


def _read_mode(path: str, value: Any) -> str:
    if value not in ("enforce", "metrics_only") or not isinstance(value, str):
        raise ConfigError(path, value, '"enforce", or "metrics_only" (shadow mode)')
    return value


def _read_small_table(
    path: str,
    value: Any,
    kinds: Mapping[str, tuple[type[Any], Mapping[str, Callable[[str, Any], Any]]]],
    what: str,
) -> dict[str, Any]:
    """``{kind = "...", key = value...}`` for one of ``kinds``: its settings, with the
    class's defaults filled in (an algorithm, a learned delay)."""
    table = read_table(path, value)
    kind = table.get("kind")
    if not isinstance(kind, str) or kind not in kinds:
        raise ConfigError(f"{path}.kind", kind, f"{what}: one of {', '.join(kinds)}")
    cls, keys = kinds[kind]
    check_keys(path, table, ["kind", *keys], f"a setting of {kind}")
    settings: dict[str, Any] = {"kind": kind, **_defaults_of(cls, keys)}
    for key, read in keys.items():
        if key in table:
            settings[key] = read(f"{path}.{key}", table[key])
    try:
        cls(**{k: v for k, v in settings.items() if k != "kind"})
    except (ValueError, TypeError) as exc:
        key = str(exc).split(" ", 1)[0]
        raise ConfigError(
            f"{path}.{key}" if key in keys else path, table.get(key), f"a value that fits ({exc})"
        ) from None
    return settings


def _read_algorithm(path: str, value: Any) -> dict[str, Any]:
    return _read_small_table(path, value, _ALGORITHMS, "an algorithm")


def _read_hedge_delay(path: str, value: Any) -> float | dict[str, Any]:
    """A duration, or ``{kind = "latency_quantile", quantile = 0.95, ...}``."""
    if isinstance(value, Mapping):
        return _read_small_table(path, value, _LEARNED_DELAYS, "a learned delay")
    return read_duration(path, value)


def _read_fault(path: str, value: Any) -> str:
    return read_exceptions(path, value if isinstance(value, str) else [value])[0]


def _read_k(path: str, value: Any) -> float:
    k = read_number(path, value, "a number of at least 1")
    if k < 1:
        raise ConfigError(path, value, "a number of at least 1")
    return k


def _read_seed(path: str, value: Any) -> int:
    return read_int(path, value, minimum=0)


_ALGORITHMS: dict[str, tuple[type[Any], dict[str, Callable[[str, Any], Any]]]] = {
    "gradient": (
        Gradient,
        {
            "tolerance": _read_k,
            "smoothing": read_fraction,
            "backoff_ratio": read_fraction,
            "probe_interval": read_optional(read_int),
            "queue_size": read_optional(read_number),
            "seed": read_optional(_read_seed),
        },
    ),
    "aimd": (
        AIMD,
        {
            "backoff_ratio": read_fraction,
            "slow_call_duration": read_optional(_read_positive_duration),
        },
    ),
}
_LEARNED_DELAYS: dict[str, tuple[type[Any], dict[str, Callable[[str, Any], Any]]]] = {
    "latency_quantile": (
        LatencyQuantile,
        {
            "quantile": read_fraction,
            "samples": read_int,
            "min_samples": read_int,
            "initial": read_duration,
        },
    ),
}


#: Every kind's keys and their readers (``name`` and ``shared`` are added below).
_KEYS: dict[str, dict[str, Callable[[str, Any], Any]]] = {
    "circuit_breaker": {
        "failure_rate": read_optional(read_fraction),
        "minimum_calls": read_int,
        "consecutive_failures": read_optional(read_int),
        "window": _read_window,
        "slow_call_duration": read_optional(_read_positive_duration),
        "slow_call_rate": read_fraction,
        "open_for": _read_open_for,
        "half_open_calls": read_int,
        "failure_on": read_exceptions,
        "ignore": read_exceptions,
    },
    "retry": {
        "attempts": read_int,
        "backoff": _read_backoff,
        "retry_on": read_exceptions,
        "deadline": read_optional(_read_positive_duration),
        "budget": read_optional(_read_budget),
    },
    "timeout": {"seconds": _read_positive_duration},
    "token_bucket": {
        "rate": _read_rate_value,
        "per": _read_positive_duration,
        "burst": read_optional(_read_burst),
        "max_wait": read_optional(read_duration),
        "key": read_optional(read_str),
    },
    "bulkhead": {
        "max_concurrent": read_int,
        "max_queue": lambda path, value: read_int(path, value, minimum=0),
        "max_wait": read_optional(read_duration),
    },
    "fallback": {"value": _read_any, "on": read_exceptions},
    "hedge": {
        "delay": _read_hedge_delay,
        "max_hedges": read_int,
        "hedge_on": read_exceptions,
    },
    "adaptive_concurrency": {
        "algorithm": _read_algorithm,
        "initial_limit": read_int,
        "min_limit": read_int,
        "max_limit": read_int,
        "max_queue": lambda path, value: read_int(path, value, minimum=0),
        "max_wait": read_optional(read_duration),
        "dropped_on": read_exceptions,
        "mode": _read_mode,
    },
    "adaptive_throttle": {
        "k": _read_k,
        "window": _read_positive_duration,
        "failure_on": read_exceptions,
        "ignore": read_exceptions,
        "mode": _read_mode,
        "seed": read_optional(_read_seed),
    },
    "chaos": {
        "rate": lambda path, value: _read_share(path, value),
        "fault": _read_fault,
        "latency": _read_positive_duration,
        "result": _read_any,
        "enabled": read_bool,
        "seed": read_optional(_read_seed),
    },
}
for _kind in ("circuit_breaker", "token_bucket", "bulkhead"):
    _KEYS[_kind]["mode"] = _read_mode


def _read_share(path: str, value: Any) -> float:
    share = read_number(path, value, "a number in [0, 1]")
    if not 0 <= share <= 1:
        raise ConfigError(path, value, "a number in [0, 1]")
    return share


#: Constructor arguments that only code can give (callables), and why config cannot.
_CODE_ONLY = {
    "failure_if": "a callable: set it in code",
    "retry_if_result": "a callable: set it in code",
    "handler": "a callable: set it in code",
    "if_result": "a callable: set it in code",
    "hedge_if_result": "a callable: set it in code",
    "dropped_if": "a callable: set it in code",
    "store": 'the registry\'s [store] section, with "shared = true"',
    "clock": "set in code (Registry.from_dict(..., clock=...))",
}


def _names(types: Any) -> tuple[str, ...]:
    return tuple(t.__name__ for t in types)


def _plain_defaults(kind: str) -> dict[str, Any]:
    """The constructor's defaults, as settings."""
    defaults = _defaults_of(_CLASSES[kind], _KEYS[kind])
    for key in _EXCEPTION_KEYS:
        if key in defaults:
            default = defaults[key]
            defaults[key] = _names(default if isinstance(default, tuple) else (default,))
    if kind == "retry":
        defaults["backoff"] = plain(Retry().backoff)
    if kind == "fallback":
        defaults.pop("value", None)  # required in config: there is no handler there
    if kind == "adaptive_concurrency":
        defaults["algorithm"] = Gradient()._described()
    if kind == "chaos":  # exactly one of them is given
        for key in ("fault", "latency", "result"):
            defaults.pop(key, None)
    return defaults


_DEFAULTS = {kind: _plain_defaults(kind) for kind in KINDS}
_REQUIRED = {
    "timeout": ("seconds",),
    "token_bucket": ("rate",),
    "bulkhead": ("max_concurrent",),
    "fallback": ("value",),
    "hedge": ("delay",),
    "chaos": ("rate",),
}


# -- reading a policy's table --------------------------------------------------------------


def allowed_keys(kind: str, *, in_defaults: bool) -> list[str]:
    keys = list(_KEYS[kind])
    if kind in _SHAREABLE:
        keys.append("shared")
        keys.extend(STORE_OPTIONS.get(kind, ()))
    if not in_defaults:
        keys.append("name")
    return keys


def check_table(path: str, kind: str, table: Mapping[str, Any], *, in_defaults: bool) -> None:
    """Unknown keys (and code-only ones) of a policy table are errors."""
    allowed = allowed_keys(kind, in_defaults=in_defaults)
    extra = [] if in_defaults else ["kind"]
    for key in table:
        if key in _CODE_ONLY and key not in allowed:
            raise ConfigError(f"{path}.{key}", table[key], _CODE_ONLY[key])
    check_keys(path, table, [*allowed, *extra], f"a {kind} setting")


def read_settings(path: str, kind: str, table: Mapping[str, Any]) -> dict[str, Any]:
    """The settings of ``table``'s keys (no defaults filled in)."""
    settings: dict[str, Any] = {}
    for key, read in _KEYS[kind].items():
        if key in table:
            settings[key] = read(f"{path}.{key}", table[key])
    if kind == "token_bucket" and "rate" in settings:
        rate, per = settings["rate"]
        settings["rate"] = rate
        if per is not None:
            if "per" in table:
                raise ConfigError(
                    f"{path}.per",
                    table["per"],
                    f"no per: the rate {table['rate']!r} already says per how long",
                )
            settings["per"] = per
    if "shared" in table:
        settings["shared"] = read_bool(f"{path}.shared", table["shared"])
    for key, read in STORE_OPTIONS.get(kind, {}).items():
        if key in table:
            settings[key] = read(f"{path}.{key}", table[key])
    return settings


def read_policy(
    path: str, entry: str, kind: str, table: Mapping[str, Any], default_name: str
) -> PolicySpec:
    """A pipeline's policy, from its table merged over the defaults of its kind."""
    check_table(path, kind, table, in_defaults=False)
    given = {**_DEFAULTS[kind], **read_settings(path, kind, table)}
    settings = {key: given[key] for key in (*_KEYS[kind], "shared") if key in given}
    for key in _REQUIRED.get(kind, ()):
        if key not in settings:
            raise ConfigError(f"{path}.{key}", None, f"a value: a {kind} needs {key}")
    shared = bool(settings.pop("shared", False))
    options = {key: given[key] for key in STORE_OPTIONS.get(kind, ()) if key in given}
    if options and not shared:
        key = next(iter(options))
        raise ConfigError(
            f"{path}.{key}", options[key], "shared = true: it is an option of the shared store"
        )
    name = read_str(f"{path}.name", table["name"]) if "name" in table else default_name
    return PolicySpec(path, entry, kind, name, settings, shared, options)


# -- building and changing policies --------------------------------------------------------


def _arguments(spec: PolicySpec, clock: Clock | None, store: Any = None) -> dict[str, Any]:
    """Constructor arguments from settings (``store``: the registry's, for a shared
    retry budget)."""
    kwargs = dict(spec.settings)
    for key in _EXCEPTION_KEYS:
        if key in kwargs:
            kwargs[key] = exception_types(kwargs[key])
    if "algorithm" in kwargs:
        algorithm = dict(kwargs["algorithm"])
        kwargs["algorithm"] = _ALGORITHMS[algorithm.pop("kind")][0](**algorithm)
    if isinstance(kwargs.get("delay"), Mapping):
        delay = dict(kwargs["delay"])
        kwargs["delay"] = _LEARNED_DELAYS[delay.pop("kind")][0](**delay)
    if "fault" in kwargs:
        kwargs["fault"] = exception_types((kwargs["fault"],))[0]
    if spec.kind == "circuit_breaker":
        window = kwargs["window"]
        if isinstance(window, Mapping):
            kwargs["window"] = CountWindow(window["calls"])
        if isinstance(kwargs["open_for"], tuple):
            kwargs["open_for"] = OpenSteps(kwargs["open_for"])
    elif spec.kind == "retry":
        backoff = dict(kwargs["backoff"])
        kwargs["backoff"] = _BACKOFFS[backoff.pop("kind")](**backoff)
        if kwargs["budget"] is not None:
            budget = dict(kwargs["budget"])
            if budget.pop("shared", False):
                budget.update(store=store, key=spec.name)
            kwargs["budget"] = RetryBudget(**budget, clock=clock)
    return kwargs


def _constructor_error(spec: PolicySpec, exc: Exception) -> ConfigError:
    """A constructor's ValueError/TypeError as a ConfigError on the key it names."""
    message = str(exc)
    key = message.split(" ", 1)[0].split("=")[0].split("(")[0].split(".")[-1]
    expected = f"a value that fits ({message})"
    if key in spec.settings:
        return ConfigError(f"{spec.path}.{key}", spec.settings[key], expected)
    return ConfigError(spec.path, dict(spec.settings), expected)


def build(spec: PolicySpec, store: Any, clock: Clock | None) -> Policy:
    """A new policy for ``spec`` (``store`` is used when the spec is shared)."""
    extra: dict[str, Any] = {"name": spec.name, "clock": clock}
    if spec.shared:
        extra["store"] = _store_for(spec, store)
    try:
        kwargs = _arguments(spec, clock, store)
        if spec.kind == "fallback":
            return Fallback(kwargs.pop("value"), **kwargs, **extra)
        return _CLASSES[spec.kind](**kwargs, **extra)
    except (ValueError, TypeError, OverflowError) as exc:
        raise _constructor_error(spec, exc) from None


def _store_for(spec: PolicySpec, store: Any) -> Any:
    """The registry's store, or a view of it with the policy's own store options."""
    options = spec.store_options
    if not options:
        return store
    with_options = getattr(store, "with_options", None)
    if with_options is None:
        key = next(iter(options))
        raise ConfigError(
            f"{spec.path}.{key}", options[key], "a Redis store (store.redis_url) to apply to"
        )
    try:
        return with_options(**options)
    except (ValueError, TypeError) as exc:
        key = next((k for k in options if str(exc).startswith(k)), next(iter(options)))
        expected = f"a value that fits ({exc})"
        raise ConfigError(f"{spec.path}.{key}", options[key], expected) from None


def apply(policy: Policy, spec: PolicySpec, clock: Clock | None) -> None:
    """Change a live policy to ``spec``'s settings, keeping its state (``clock``: the
    registry's, for a new retry budget)."""
    settings = dict(spec.settings)
    if spec.kind == "retry":
        settings["budget"] = None  # made below, from the budget in use
    kwargs = _arguments(dataclasses.replace(spec, settings=settings), clock)
    kwargs.pop("key", None)  # a token bucket's key is its identity: not reloadable
    if spec.kind == "retry" and isinstance(policy, Retry):
        old_budget = policy.budget
        wanted = spec.settings["budget"]
        if (
            isinstance(old_budget, RetryBudget)
            and wanted is not None
            and old_budget.window == wanted["window"]
            and (old_budget.store is not None) == bool(wanted.get("shared"))
        ):
            # Same window: keep the one in use (and what it counted), with the new ratios.
            # (A shared budget's window and sharing cannot change: see config.py.)
            old_budget.ratio, old_budget.min_per_second = (
                wanted["ratio"],
                wanted["min_per_second"],
            )
            kwargs["budget"] = old_budget
        elif wanted is not None:  # a private budget over another window: a new one
            kwargs["budget"] = _arguments(spec, clock)["budget"]
    try:
        # In place, for the policy and the copies that follow it (the HTTP integrations'
        # per-host copies); shadow mode (``mode``) too. Later clones take the settings.
        policy.reconfigure(**kwargs)
    except (ValueError, TypeError, OverflowError) as exc:
        raise _constructor_error(spec, exc) from None
