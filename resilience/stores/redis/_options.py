"""The options of a Redis store, and the one place they are checked.

:class:`StoreOptions` is the store's parameter object: the keywords of ``RedisStore``,
``AsyncRedisStore`` and their ``from_url`` become one (:func:`merge_options`), and so do
the changes of a view (``with_options``). Making one checks it (``__post_init__``), so a
bad option gets the same message whichever way it came, and no other code checks one.
Backends are handed the store's ``StoreOptions`` and read what they need from it.

Separate from the store: the option names are written out here once, in the dataclass,
and once more for type checkers in :class:`StoreOptionArgs`, the type of the stores'
``**options`` (its base :class:`ViewOptionArgs` names those a view may change).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypedDict

from ..._core.backoff import Backoff, Exponential
from ..._core.validation import check_duration, check_positive_int

__all__ = [
    "LOCAL_FIRST",
    "OPTION_NAMES",
    "STRICT",
    "UNSET",
    "VIEW_OPTION_NAMES",
    "StoreOptionArgs",
    "StoreOptions",
    "Unset",
    "ViewOptionArgs",
    "default_reconnect",
    "merge_options",
    "view_changes",
]

STRICT = "strict"
LOCAL_FIRST = "local-first"
_SYNC_MODES = (STRICT, LOCAL_FIRST)
_ON_STORE_ERROR = ("local", "closed")


@dataclass(frozen=True, slots=True)
class StoreOptions:
    """The options of a Redis store (or of a view of it, ``store.with_options``).

    Checked when made: a bad value raises ``ValueError`` or ``TypeError`` naming the
    option. Durations are seconds (a ``timedelta`` is taken too, and kept as seconds).
    ``RedisStore(client, options=StoreOptions(...), prefix=...)``: keywords given with
    ``options`` override its values.
    """

    #: The first part of every key and channel: stores with the same prefix share state.
    prefix: str = "resilience"
    #: "local": decide from local state when Redis fails; "closed": refuse.
    on_store_error: str = "local"
    #: Failed calls in a row after which the store stops asking Redis.
    errors_to_cut_off: int = 3
    #: The backoff of the probes while cut off (None: exponential, 0.1 s to 5 s).
    reconnect: Backoff | None = None
    #: Seconds a half-open trial keeps its slot if its process never reports.
    trial_lease: float = 10.0
    #: Seconds an idle policy's keys live.
    key_ttl: float = 86400.0
    #: "strict": every decision asks Redis; "local-first": breakers decide from a
    #: local copy and report in batches, token buckets lease tokens.
    sync_mode: str = STRICT
    flush_interval: float = 0.1
    poll_interval: float = 1.0
    #: Breakers open only when at least this many instances reported failures.
    min_instances: int | None = None
    #: Local-first token buckets: the most tokens one lease takes (None: one flush
    #: interval's worth of the bucket's rate).
    lease_tokens: int | None = None
    #: Bulkhead slots are leases of this many seconds, renewed while the call runs.
    slot_lease: float = 5.0

    def __post_init__(self) -> None:
        # In the order the store checked them before it had a parameter object, so that
        # of two bad options the same one is reported.
        _check_prefix(self.prefix)
        if self.on_store_error not in _ON_STORE_ERROR:
            raise ValueError(
                f"on_store_error must be 'local' or 'closed', got {self.on_store_error!r}"
            )
        if self.reconnect is not None and not isinstance(self.reconnect, Backoff):
            raise TypeError(f"reconnect must be a backoff strategy, got {self.reconnect!r}")
        self._set("trial_lease", check_duration("trial_lease", self.trial_lease, positive=True))
        self._set("key_ttl", check_duration("key_ttl", self.key_ttl, positive=True))
        if self.sync_mode not in _SYNC_MODES:
            raise ValueError(f"sync_mode must be 'strict' or 'local-first', got {self.sync_mode!r}")
        flush = check_duration("flush_interval", self.flush_interval, positive=True)
        poll = check_duration("poll_interval", self.poll_interval, positive=True)
        if poll < flush:
            raise ValueError(
                f"poll_interval must be at least flush_interval ({flush!r}), "
                f"got {self.poll_interval!r}"
            )
        self._set("flush_interval", flush)
        self._set("poll_interval", poll)
        if self.min_instances is not None:
            self._set("min_instances", check_positive_int("min_instances", self.min_instances))
        if self.lease_tokens is not None:
            self._set("lease_tokens", check_positive_int("lease_tokens", self.lease_tokens))
        self._set("slot_lease", check_duration("slot_lease", self.slot_lease, positive=True))
        self._set(
            "errors_to_cut_off", check_positive_int("errors_to_cut_off", self.errors_to_cut_off)
        )

    def _set(self, name: str, value: object) -> None:
        """Keep the checked form of an option (seconds for a ``timedelta``)."""
        object.__setattr__(self, name, value)


def _check_prefix(prefix: object) -> str:
    if not isinstance(prefix, str):
        raise TypeError(f"prefix must be a str, got {prefix!r} ({type(prefix).__name__})")
    if not prefix or prefix != prefix.strip() or "{" in prefix or "}" in prefix:
        raise ValueError(
            f"prefix must be non-empty, without surrounding spaces or braces "
            f"(braces are Redis Cluster hash tags), got {prefix!r}"
        )
    return prefix


class ViewOptionArgs(TypedDict, total=False):
    """The keywords of ``store.with_options``: the options a view may change (the
    same connections, threads and outage handling serve every view)."""

    sync_mode: str
    flush_interval: float | timedelta
    poll_interval: float | timedelta
    min_instances: int | None
    lease_tokens: int | None
    slot_lease: float | timedelta


class StoreOptionArgs(ViewOptionArgs, total=False):
    """The option keywords of the store constructors and ``from_url``: every field
    of :class:`StoreOptions`."""

    prefix: str
    on_store_error: str
    errors_to_cut_off: int
    reconnect: Backoff | None
    trial_lease: float | timedelta
    key_ttl: float | timedelta


OPTION_NAMES = frozenset(field.name for field in dataclasses.fields(StoreOptions))
VIEW_OPTION_NAMES = frozenset(ViewOptionArgs.__annotations__)
#: Options whose ``None`` is a value (their default): for the others, ``None`` given to
#: ``with_options`` keeps the store's value, as it always has.
_NONE_IS_A_VALUE = frozenset(
    field.name for field in dataclasses.fields(StoreOptions) if field.default is None
)


def merge_options(
    options: StoreOptions | None,
    changes: Mapping[str, object],
    *,
    caller: str,
    allowed: frozenset[str] = OPTION_NAMES,
) -> StoreOptions:
    """``options`` (the defaults if None) with ``changes``, checked. A name not in
    ``allowed`` is a ``TypeError``, as an unknown keyword argument of ``caller`` is."""
    for name in changes:
        if name not in allowed:
            raise TypeError(f"{caller}() got an unexpected keyword argument {name!r}")
    if options is not None and not isinstance(options, StoreOptions):
        raise TypeError(f"options must be a StoreOptions, got {options!r}")
    kwargs: dict[str, Any] = dict(changes)
    if options is None:
        return StoreOptions(**kwargs)
    return dataclasses.replace(options, **kwargs)


def view_changes(changes: Mapping[str, object]) -> dict[str, object]:
    """What ``with_options(**changes)`` changes: ``None`` keeps the store's value of an
    option whose default is not ``None`` (``flush_interval=None``)."""
    return {
        name: value
        for name, value in changes.items()
        if value is not None or name in _NONE_IS_A_VALUE
    }


def default_reconnect() -> Backoff:
    return Exponential(base=0.1, factor=2.0, max=5.0, jitter="full")


class Unset:
    """The default of an argument whose ``None`` means something (``from_url``'s
    ``prefix``: ``None`` is a bad prefix, and not giving one keeps ``options``')."""

    def __repr__(self) -> str:
        return "<unset>"


UNSET = Unset()
