"""Pipelines from configuration: ``Registry.from_file("resilience.toml")``.

A registry reads a config (TOML, YAML with the ``yaml`` extra, JSON, or a dict), applies
``RESILIENCE__...`` environment overrides, checks every value (a :class:`ConfigError`
names the key path, the bad value and what was expected), and builds one live
:class:`Pipeline` per named pipeline. ``reload`` applies a new config to those live
pipelines in place, keeping their state. The shape of a config is in docs/config.md.
"""

from __future__ import annotations

import difflib
import importlib
import json
import logging
import os
import sys
import threading
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._core.clock import Clock
from .._core.validation import check_clock
from .._policies.pipeline import Pipeline
from .._policies.policy import Policy
from .._policies.settings_text import show
from ..errors import ConfigError
from ._schema import (
    KINDS,
    REDIS_OPTIONS,
    PolicySpec,
    apply,
    build,
    check_table,
    read_policy,
    read_settings,
)
from ._values import (
    check_keys,
    read_str,
    read_table,
)

__all__ = ["ENV_PREFIX", "Change", "PolicyDescription", "Registry"]

_log = logging.getLogger("resilience")

#: Environment variables starting with this override config keys:
#: ``RESILIENCE__PIPELINES__PAYMENTS__RETRY__ATTEMPTS=5``.
ENV_PREFIX = "RESILIENCE__"
_SECTIONS = ("store", "defaults", "pipelines")
_STORE_KEYS = ("redis_url", "prefix")
#: Options of the Redis store (see RedisStore.from_url), and how to read them.


@dataclass(frozen=True)
class Change:
    """One difference a :meth:`Registry.reload` applied.

    ``what`` is ``"setting"`` (``path`` is a setting's key path, ``old`` and ``new`` its
    values), ``"added"`` or ``"removed"`` (``path`` is ``pipelines.NAME``, and ``new``
    or ``old`` the pipeline's policies).
    """

    path: str
    old: Any
    new: Any
    what: str = "setting"

    def __str__(self) -> str:
        if self.what == "added":
            return f"{self.path}: added ({', '.join(self.new)})"
        if self.what == "removed":
            return f"{self.path}: removed"
        key = self.path.rsplit(".", 1)[-1]
        return f"{self.path}: {show(key, self.old)} -> {show(key, self.new)}"


@dataclass(frozen=True)
class PolicyDescription:
    """A policy of a configured pipeline: its ``entry`` (key in the pipeline's table),
    ``kind``, ``name``, the ``settings`` in force (every constructor argument config can
    set, defaults included) and whether it shares state through the store."""

    entry: str
    kind: str
    name: str
    settings: Mapping[str, Any]
    shared: bool
    #: The store options this policy sets for itself (``sync_mode``...), if shared.
    store_options: Mapping[str, Any] = field(default_factory=dict)

    def show(self) -> str:
        """The settings as ``key=value`` pairs, as a config file would write them."""
        parts = [f"{key}={show(key, value)}" for key, value in self.settings.items()]
        if self.shared:
            parts.append("shared=true")
        parts.extend(f"{key}={show(key, value)}" for key, value in self.store_options.items())
        return " ".join(parts)


@dataclass(frozen=True)
class _Config:
    store: Mapping[str, Any] | None
    pipelines: Mapping[str, tuple[PolicySpec, ...]]


class Registry:
    """Named pipelines built from a config, live and reloadable.

    ``registry.pipeline("payments")`` is a :class:`Pipeline` (also a decorator:
    ``@registry.pipeline("payments")``). ``registry.reload()`` re-reads the config and
    changes the thresholds of the live policies in place. ``env`` is the mapping
    environment overrides are read from (default ``os.environ``; ``{}`` for none);
    ``clock`` is given to every policy (tests use a ``FakeClock``).
    """

    def __init__(
        self,
        data: Mapping[str, Any] | None = None,
        *,
        env: Mapping[str, str] | None = None,
        clock: Clock | None = None,
        source: str | os.PathLike[str] | None = None,
    ) -> None:
        # Arguments given in code are no config errors: check them before reading the config.
        if env is not None and not isinstance(env, Mapping):
            raise TypeError(
                f"env must be a mapping of str to str, or None, got {type(env).__name__}"
            )
        if source is not None and not isinstance(source, (str, os.PathLike)):
            raise TypeError(
                f"source must be a path (str or os.PathLike), or None, got {type(source).__name__}"
            )
        if clock is not None:
            check_clock(clock)
        self._env = env
        self._clock = clock
        self._source = Path(source) if source is not None else None
        self._data = {} if data is None else data
        self._lock = threading.Lock()
        config = _parse(self._data, self._environment())
        self._store = _make_store(config.store) if config.store is not None else None
        self._pipelines = {
            name: self._build(name, specs) for name, specs in config.pipelines.items()
        }
        self._config = config

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        *,
        env: Mapping[str, str] | None = None,
        clock: Clock | None = None,
    ) -> Registry:
        """A registry from a mapping shaped like a config file."""
        return cls(data, env=env, clock=clock)

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike[str],
        *,
        env: Mapping[str, str] | None = None,
        clock: Clock | None = None,
    ) -> Registry:
        """A registry from a TOML file (``.yaml``/``.yml``: YAML, ``.json``: JSON)."""
        return cls(load_file(path), env=env, clock=clock, source=path)

    # -- using it --------------------------------------------------------------------

    def pipeline(self, name: str) -> Pipeline:
        """The live pipeline ``name``: use it, or decorate with it."""
        try:
            return self._pipelines[name]
        except KeyError:
            known = sorted(self._pipelines)
            close = difflib.get_close_matches(str(name), known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise KeyError(
                f"no pipeline {name!r} in this registry (it has: {', '.join(known) or 'none'})"
                + hint
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._pipelines

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._pipelines))

    def __len__(self) -> int:
        return len(self._pipelines)

    @property
    def store(self) -> Any:
        """The store of the ``[store]`` section (None without one)."""
        return self._store

    @property
    def source(self) -> Path | None:
        """The file this registry was read from (None for a dict)."""
        return self._source

    def describe(self, name: str) -> list[PolicyDescription]:
        """The policies of pipeline ``name``, outermost first, with their settings."""
        self.pipeline(name)  # a KeyError for unknown names
        return [
            PolicyDescription(
                spec.entry, spec.kind, spec.name, spec.settings, spec.shared, spec.store_options
            )
            for spec in self._config.pipelines[name]
        ]

    # -- reloading -------------------------------------------------------------------

    def reload(
        self, source: str | os.PathLike[str] | Mapping[str, Any] | None = None
    ) -> list[Change]:
        """Apply a new config to the live pipelines, in place, and say what changed.

        ``source``: a file, a mapping, or None to read the same file (or mapping) again,
        with the environment as it is now. Policies keep their state (an open breaker
        stays open; window counts are kept when the window's shape is unchanged; tokens
        and slots in use stay taken). New pipelines are built; removed ones leave the
        registry (code holding them keeps working with their last settings).

        Nothing changes unless the whole config is valid and fits the running pipelines:
        changing a pipeline's list of policies, a policy's name, ``shared`` or ``key``,
        or the ``[store]`` section needs a new registry (a restart), and is refused with
        a :class:`ConfigError`.
        """
        with self._lock:
            if source is None:
                data = load_file(self._source) if self._source is not None else self._data
            elif isinstance(source, Mapping):
                data = source
            else:
                data = load_file(source)
            config = _parse(data, self._environment())
            if config.store != self._config.store:
                raise ConfigError(
                    "store",
                    dict(config.store or {}),
                    f"the store the registry runs with ({dict(self._config.store or {})}); "
                    "changing it needs a new registry",
                )
            changes: list[Change] = []
            for name, specs in config.pipelines.items():
                old = self._config.pipelines.get(name)
                if old is None:
                    entries = [s.entry for s in specs]
                    changes.append(Change(f"pipelines.{name}", None, entries, "added"))
                    continue
                _check_same_shape(name, old, specs)
                for before, after in zip(old, specs, strict=True):
                    changes.extend(_differences(before, after))
                    if before.settings != after.settings:
                        build(after, None, self._clock)  # checks the combination first
            for name, specs in self._config.pipelines.items():
                if name not in config.pipelines:
                    entries = [s.entry for s in specs]
                    changes.append(Change(f"pipelines.{name}", entries, None, "removed"))
            # Everything checked: apply.
            pipelines = dict(self._pipelines)
            for name, specs in config.pipelines.items():
                if name not in self._config.pipelines:
                    pipelines[name] = self._build(name, specs)
                    continue
                live = pipelines[name]
                for policy, before, after in zip(
                    live.policies, self._config.pipelines[name], specs, strict=True
                ):
                    if before.settings != after.settings:
                        apply(policy, after, self._clock)
            for name in self._config.pipelines:
                if name not in config.pipelines:
                    del pipelines[name]
            self._pipelines = pipelines
            self._config = config
            if source is not None:
                if isinstance(source, Mapping):
                    self._data, self._source = source, None
                else:
                    self._source = Path(source)
        for change in changes:
            _log.info("resilience config reloaded: %s", change)
        return changes

    # -- internals -------------------------------------------------------------------

    def _environment(self) -> Mapping[str, str]:
        return os.environ if self._env is None else self._env

    def _build(self, name: str, specs: tuple[PolicySpec, ...]) -> Pipeline:
        policies: list[Policy] = [build(spec, self._store, self._clock) for spec in specs]
        return Pipeline(*policies, name=name)

    def __repr__(self) -> str:
        where = f"source={str(self._source)!r}, " if self._source is not None else ""
        return f"Registry({where}pipelines={sorted(self._pipelines)})"


# -- reading files -------------------------------------------------------------------------


def load_file(path: str | os.PathLike[str]) -> Mapping[str, Any]:
    """A config file's content: TOML, or YAML (``.yaml``/``.yml``), or JSON (``.json``).

    A file that cannot be parsed raises :class:`ConfigError`; one that cannot be read,
    ``OSError``.
    """
    file = Path(path)
    suffix = file.suffix.lower()
    raw = file.read_bytes()
    if suffix in (".yaml", ".yml"):
        try:
            yaml: Any = importlib.import_module("yaml")
        except ModuleNotFoundError as exc:  # pragma: no cover - the dev extra has it
            raise ImportError(
                "YAML config files need PyYAML: pip install 'resiliency[yaml]'"
            ) from exc
        try:
            data = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ConfigError(str(file), _first_line(exc), "a valid YAML document") from None
        return {} if data is None else data
    if suffix == ".json":
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise ConfigError(str(file), _first_line(exc), "a valid JSON document") from None
        return data  # type: ignore[no-any-return]
    try:
        return _toml().loads(raw.decode("utf-8"))  # type: ignore[no-any-return]
    except (ValueError, UnicodeDecodeError) as exc:  # TOMLDecodeError is a ValueError
        raise ConfigError(str(file), _first_line(exc), "a valid TOML document") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _toml() -> Any:
    if sys.version_info >= (3, 11):
        import tomllib

        return tomllib
    try:  # pragma: no cover - Python 3.10
        return importlib.import_module("tomli")
    except ModuleNotFoundError as exc:  # pragma: no cover
        raise ImportError("TOML config files on Python 3.10 need tomli: pip install tomli") from exc


# -- the environment -----------------------------------------------------------------------


def _env_value(raw: str) -> Any:
    """An environment value read as a TOML value when it is one ("5", "0.25", "true",
    '["retry", "timeout"]'), "null" as None, and as the string itself otherwise."""
    if raw.strip().lower() == "null":
        return None
    try:
        return _toml().loads(f"value = {raw}")["value"]
    except ValueError:
        return raw


def _same_key(key: object, segment: str) -> bool:
    return isinstance(key, str) and key.lower().replace("-", "_") == segment.lower()


def _overlay(data: MutableMapping[str, Any], env: Mapping[str, str]) -> dict[str, str]:
    """Apply ``RESILIENCE__A__B=value`` to ``data`` (in place); returns the key paths set,
    with the variable that set each."""
    origins: dict[str, str] = {}
    for variable in sorted(env):
        if not variable.startswith(ENV_PREFIX):
            continue
        segments = variable[len(ENV_PREFIX) :].split("__")
        if not all(segments):
            raise ConfigError(
                variable,
                env[variable],
                "RESILIENCE__SECTION__KEY...: key names joined by double underscores",
            )
        node: MutableMapping[str, Any] = data
        path: list[str] = []
        for position, segment in enumerate(segments):
            key = next((k for k in node if _same_key(k, segment)), segment.lower())
            path.append(key)
            if position == len(segments) - 1:
                node[key] = _env_value(env[variable])
                break
            child = node.get(key)
            if child is None:
                child = node[key] = {}
            elif not isinstance(child, MutableMapping):
                # A shorthand (timeout = "2s", backoff = "1s") becomes its table.
                if key == "timeout" and len(path) == 3 and path[0] == "pipelines":
                    child = node[key] = {"seconds": child}
                elif key == "backoff":
                    child = node[key] = {"kind": "constant", "delay": child}
                else:
                    raise ConfigError(
                        ".".join(path), child, f"a table, for {variable} to set a key in it"
                    )
            node = child
        origins[".".join(path)] = variable
    return origins


# -- parsing and checking ------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """A mutable deep copy of the mappings and lists in ``value`` (for overrides)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _parse(data: Mapping[str, Any], env: Mapping[str, str]) -> _Config:
    top = read_table("config", data)
    origins: dict[str, str] = {}
    if any(variable.startswith(ENV_PREFIX) for variable in env):
        document: dict[str, Any] = _plain(top)
        origins = _overlay(document, env)
        top = document
    try:
        return _check(top)
    except ConfigError as exc:
        variable = next(
            (var for path, var in origins.items() if (exc.path + ".").startswith(path + ".")),
            None,
        )
        if variable is None:
            raise
        hint = f"set by the environment variable {variable}"
        raise ConfigError(
            exc.path, exc.value, exc.expected, f"{exc.hint}; {hint}" if exc.hint else hint
        ) from None


def _check(document: Mapping[str, Any]) -> _Config:
    check_keys("", document, _SECTIONS, "a config section")
    store = _read_store(document["store"]) if "store" in document else None
    defaults = _read_defaults(document.get("defaults", {}))
    pipelines_table = read_table("pipelines", document.get("pipelines", {}))
    pipelines: dict[str, tuple[PolicySpec, ...]] = {}
    for name, table in pipelines_table.items():
        path = f"pipelines.{name}"
        read_str(path, name)
        specs = _read_pipeline(path, name, read_table(path, table), defaults)
        for spec in specs:
            if spec.shared and store is None:
                raise ConfigError(
                    f"{spec.path}.shared", True, "a [store] section to share state through"
                )
            if _shared_budget(spec) is not None and store is None:
                raise ConfigError(
                    f"{spec.path}.budget.shared", True, "a [store] section to share state through"
                )
        pipelines[name] = specs
    return _Config(store, pipelines)


def _read_store(value: Any) -> dict[str, Any]:
    table = read_table("store", value)
    check_keys("store", table, [*_STORE_KEYS, *REDIS_OPTIONS], "a store setting")
    store: dict[str, Any] = {}
    for key in _STORE_KEYS:
        if key in table:
            store[key] = read_str(f"store.{key}", table[key])
    for key, read in REDIS_OPTIONS.items():
        if key in table:
            store[key] = read(f"store.{key}", table[key])
    for key in store:
        if key != "redis_url" and "redis_url" not in store:
            raise ConfigError(f"store.{key}", store[key], f"a redis_url for the {key} to apply to")
    return store


def _make_store(settings: Mapping[str, Any]) -> Any:
    if "redis_url" not in settings:
        from ..stores.memory import MemoryStore

        return MemoryStore()
    try:
        redis_store: Any = importlib.import_module("resilience.stores.redis")
    except ImportError as exc:
        raise ConfigError(
            "store.redis_url",
            settings["redis_url"],
            "a store this installation has: Redis needs resilience.stores.redis and the "
            f"redis extra (pip install 'resiliency[redis]'): {exc}",
        ) from None
    kwargs = {key: value for key, value in settings.items() if key != "redis_url"}
    try:
        return redis_store.RedisStore.from_url(settings["redis_url"], **kwargs)
    except (ValueError, TypeError) as exc:
        message = str(exc)
        key = next((k for k in kwargs if message.startswith(k)), "redis_url")
        raise ConfigError(f"store.{key}", settings[key], message) from None


def _read_defaults(value: Any) -> dict[str, Mapping[str, Any]]:
    table = read_table("defaults", value)
    check_keys("defaults", table, KINDS, "a policy kind")
    defaults: dict[str, Mapping[str, Any]] = {}
    for kind, raw in table.items():
        path = f"defaults.{kind}"
        if kind == "timeout" and not isinstance(raw, Mapping):
            raw = {"seconds": raw}
        kind_table = read_table(path, raw)
        check_table(path, kind, kind_table, in_defaults=True)
        read_settings(path, kind, kind_table)  # every value checked here, once
        defaults[kind] = kind_table
    return defaults


def _merge(default: Mapping[str, Any], own: Mapping[str, Any]) -> dict[str, Any]:
    """``own`` over ``default``; a backoff or budget table given in part keeps the other
    keys of the default's (a backoff of another kind replaces it whole)."""
    merged = dict(default)
    for key, value in own.items():
        base = merged.get(key)
        if (
            key in ("backoff", "budget")
            and isinstance(base, Mapping)
            and isinstance(value, Mapping)
            and value.get("kind", base.get("kind")) == base.get("kind")
        ):
            merged[key] = {**base, **value}
        else:
            merged[key] = value
    return merged


def _kind_of(path: str, entry: str, value: Any) -> str:
    declared = value.get("kind") if isinstance(value, Mapping) else None
    if entry in KINDS:
        if declared is not None and declared != entry:
            raise ConfigError(f"{path}.kind", declared, f"{entry!r} (the entry's own kind)")
        return entry
    if declared in KINDS:
        return str(declared)
    close = difflib.get_close_matches(entry, KINDS, n=1, cutoff=0.6)
    raise ConfigError(
        path,
        value,
        f'a policy: a key named after its kind ({", ".join(KINDS)}), or a table with kind = "..."',
        hint=f"did you mean {close[0]!r}?" if close else None,
    )


def _read_pipeline(
    path: str, name: str, table: Mapping[str, Any], defaults: Mapping[str, Mapping[str, Any]]
) -> tuple[PolicySpec, ...]:
    entries = [key for key in table if key != "policies"]
    if "policies" in table:
        order = table["policies"]
        expected = "a list of policy entries, outermost first, each once"
        if not isinstance(order, list) or not all(isinstance(e, str) for e in order):
            raise ConfigError(f"{path}.policies", order, expected)
        if len(set(order)) != len(order):
            raise ConfigError(f"{path}.policies", order, expected)
        for position, entry in enumerate(order):
            if entry not in table and entry not in KINDS:
                close = difflib.get_close_matches(entry, [*entries, *KINDS], n=1, cutoff=0.6)
                raise ConfigError(
                    f"{path}.policies[{position}]",
                    entry,
                    "a policy kind, or the key of a policy table of this pipeline",
                    hint=f"did you mean {close[0]!r}?" if close else None,
                )
        for entry in entries:
            if entry not in order:
                close = difflib.get_close_matches(entry, order, n=1, cutoff=0.6)
                raise ConfigError(
                    f"{path}.{entry}",
                    entry,
                    f"a policy listed in {path}.policies ({', '.join(order)})",
                    hint=f"did you mean {close[0]!r}?" if close else None,
                )
    else:
        kinds = {entry: _kind_of(f"{path}.{entry}", entry, table[entry]) for entry in entries}
        order = sorted(entries, key=lambda entry: KINDS.index(kinds[entry]))
    specs = []
    for entry in order:
        entry_path = f"{path}.{entry}"
        raw = table.get(entry, {})
        kind = _kind_of(entry_path, entry, raw)
        shorthand = not isinstance(raw, Mapping)
        if shorthand:
            if kind != "timeout":
                raise ConfigError(entry_path, raw, f"a table of {kind} settings")
            raw = {"seconds": raw}
        own = read_table(entry_path, raw)
        own = {k: v for k, v in own.items() if k != "kind"}
        merged = _merge(defaults.get(kind, {}), own)
        default_name = name if entry == kind else f"{name}.{entry}"
        try:
            specs.append(read_policy(entry_path, entry, kind, merged, default_name))
        except ConfigError as exc:
            if shorthand and exc.path == f"{entry_path}.seconds":  # say it as it was written
                raise ConfigError(entry_path, exc.value, exc.expected, exc.hint) from None
            raise
    return tuple(specs)


def _check_same_shape(name: str, old: tuple[PolicySpec, ...], new: tuple[PolicySpec, ...]) -> None:
    def shape(specs: tuple[PolicySpec, ...]) -> list[tuple[Any, ...]]:
        return [
            (
                s.entry,
                s.kind,
                s.name,
                s.shared,
                s.settings.get("key"),
                dict(s.store_options),
                _shared_budget(s),
            )
            for s in specs
        ]

    if shape(old) != shape(new):
        raise ConfigError(
            f"pipelines.{name}",
            [f"{s.entry} ({s.name})" for s in new],
            "the policies the pipeline runs with, in the same order, with the same names, "
            "shared and key settings, store options and shared retry budgets' windows "
            f"({', '.join(f'{s.entry} ({s.name})' for s in old)}); "
            "changing them needs a new registry",
        )


def _shared_budget(spec: PolicySpec) -> float | None:
    """The window of a retry policy's shared budget (None: no shared budget)."""
    budget = spec.settings.get("budget") if spec.kind == "retry" else None
    if isinstance(budget, Mapping) and budget.get("shared"):
        return float(budget["window"])
    return None


def _differences(before: PolicySpec, after: PolicySpec) -> list[Change]:
    changes = []
    for key in dict.fromkeys([*before.settings, *after.settings]):
        old, new = before.settings.get(key), after.settings.get(key)
        if old != new:
            changes.append(Change(f"{after.path}.{key}", old, new))
    return changes
