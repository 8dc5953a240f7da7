"""Chaos: inject faults, latency or substitute results into a share of calls, on purpose.

For testing resilience: put a ``Chaos`` policy innermost in a pipeline (where the
dependency would fail) and check that the retries, breakers, timeouts and fallbacks
around it do their job. Polly v8 calls these chaos strategies (formerly Simmy).

The decision per call is one draw from the policy's own ``random.Random`` (seeded for
reproducible runs), made only while the policy is enabled.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from .._core.clock import Clock
from .._core.random import make_random
from .._core.validation import MISSING, check_number, check_wait, show
from .events import GLOBAL_LISTENERS, LatencyInjected
from .policy import AsyncRunner, Policy, Runner

__all__ = ["Chaos"]


_MISSING: Any = MISSING

#: The message of an exception that ``Chaos`` instantiates from a class.
INJECTED = "injected by a chaos policy"


def _check_rate(rate: object) -> float:
    value = check_number("rate", rate)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"rate must be a number in [0, 1], got {rate!r}")
    return value


def _check_latency(param: str, value: object) -> float:
    return check_wait(param, value, positive=True)  # time.sleep can't wait longer


def _fault_maker(fault: object, param: str = "fault") -> Callable[[], BaseException]:
    """A function making the exception to raise for each injected fault (``fault`` is
    the argument ``param``)."""
    if isinstance(fault, type) and issubclass(fault, BaseException):
        cls = fault

        def instantiate() -> BaseException:
            try:
                return cls(INJECTED)
            except TypeError:  # a class that wants other arguments: try none
                return cls()

        return instantiate
    if isinstance(fault, BaseException):
        instance = fault

        def duplicate() -> BaseException:
            # A fresh copy per fault, so tracebacks and notes do not pile up on one object.
            try:
                return copy.copy(instance)
            except Exception:
                return instance

        return duplicate
    if callable(fault):
        make = fault

        def call() -> BaseException:
            exc = make()
            if not isinstance(exc, BaseException):
                raise TypeError(f"fault() must return an exception, got {exc!r}")
            return exc

        return call
    raise TypeError(
        f"{param} must be an exception, an exception class, or a callable returning an "
        f"exception, got {show(fault)} ({type(fault).__name__})"
    )


def _check_enabled(enabled: object) -> bool | Callable[[], object]:
    if isinstance(enabled, bool) or callable(enabled):
        return enabled
    raise TypeError(
        f"enabled must be True, False or a callable returning a bool, got {show(enabled)} "
        f"({type(enabled).__name__})"
    )


class Chaos(Policy):
    """Injects a fault, latency or a substitute result into ``rate`` of the calls.

    Build one with ``Chaos.fault(rate, exc)``, ``Chaos.latency(rate, seconds)`` or
    ``Chaos.result(rate, value)`` (or ``Chaos(rate, fault=...)`` and so on: exactly one
    of ``fault``, ``latency`` and ``result``). ``enabled`` (True, False, or a callable
    asked on every call) switches it on and off at run time; ``seed`` makes the choice
    of calls reproducible.
    """

    kind = "chaos"
    reconfigurable = frozenset({"rate", "fault", "latency", "result", "enabled", "seed"})
    _alternatives = (frozenset({"fault", "latency", "result"}),)

    def __init__(
        self,
        rate: float,
        *,
        fault: BaseException | type[BaseException] | Callable[[], BaseException] | None = None,
        latency: float | timedelta | None = None,
        result: Any = _MISSING,
        enabled: bool | Callable[[], object] = True,
        seed: int | None = None,
        name: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(name, clock)
        self._seed: object = MISSING
        self._set(rate, fault=fault, latency=latency, result=result, enabled=enabled, seed=seed)
        self._compose()

    def _arguments_in_force(self) -> dict[str, object]:
        # ``enabled`` may have been switched at run time (the property): keep that.
        return {**super()._arguments_in_force(), "enabled": self._enabled}

    def _reconfigure(self, arguments: Mapping[str, object]) -> None:
        self._set(
            arguments["rate"],
            fault=arguments["fault"],
            latency=arguments["latency"],
            result=arguments["result"],
            enabled=arguments["enabled"],
            seed=arguments["seed"],
        )

    def _set(
        self,
        rate: object,
        *,
        fault: object,
        latency: object,
        result: object,
        enabled: object,
        seed: object,
    ) -> None:
        """Check and set the settings (the constructor's, and ``reconfigure()``'s). The
        random sequence goes on unless ``seed`` changes."""
        checked_rate = _check_rate(rate)
        given = [
            what
            for what, value in (("fault", fault), ("latency", latency), ("result", result))
            if value is not (_MISSING if what == "result" else None)
        ]
        if len(given) != 1:
            raise TypeError(
                "Chaos needs exactly one of fault, latency and result, got "
                + (" and ".join(given) if given else "none")
            )
        make_fault = _fault_maker(fault) if fault is not None else None
        checked_latency = None if latency is None else _check_latency("latency", latency)
        checked_enabled = _check_enabled(enabled)
        if seed != self._seed:
            self._random = make_random(seed).random
        self._rate, self._what, self._fault = checked_rate, given[0], fault
        self._make_fault = make_fault
        self._latency, self._result, self._enabled = checked_latency, result, checked_enabled
        self._seed = seed

    # -- the three kinds of chaos ------------------------------------------------------

    @classmethod
    def fault(
        cls,
        rate: float,
        exc: BaseException | type[BaseException] | Callable[[], BaseException],
        **options: Any,
    ) -> Chaos:
        """Raise ``exc`` (an exception, a class instantiated per fault, or a callable
        returning one) instead of calling, in ``rate`` of the calls."""
        _fault_maker(exc, "exc")  # a bad one is named as this method's argument
        return cls(rate, fault=exc, **options)

    @classmethod
    def latency(cls, rate: float, seconds: float | timedelta, **options: Any) -> Chaos:
        """Wait ``seconds`` (on the policy's clock) before calling, in ``rate`` of the calls."""
        _check_latency("seconds", seconds)  # a bad one is named as this method's argument
        return cls(rate, latency=seconds, **options)

    @classmethod
    def result(cls, rate: float, value: Any, **options: Any) -> Chaos:
        """Return ``value`` instead of calling, in ``rate`` of the calls."""
        return cls(rate, result=value, **options)

    # -- reading and switching ---------------------------------------------------------

    @property
    def rate(self) -> float:
        """The share of calls that get the chaos, in [0, 1]."""
        return self._rate

    @property
    def injects(self) -> str:
        """What this policy injects: ``"fault"``, ``"latency"`` or ``"result"``."""
        return self._what

    @property
    def enabled(self) -> bool:
        """Whether calls get chaos now (asks the ``enabled`` callable, if one was given).
        Assign True, False or a callable to switch it at run time."""
        enabled = self._enabled
        return enabled if isinstance(enabled, bool) else bool(enabled())

    @enabled.setter
    def enabled(self, value: bool | Callable[[], object]) -> None:
        self._enabled = _check_enabled(value)

    def _description(self) -> dict[str, Any]:
        settings = super()._description()
        for what in ("fault", "latency", "result"):  # only the one it injects
            if what != self._what:
                settings.pop(what, None)
        return settings

    def __repr__(self) -> str:
        value = {"fault": self._fault, "latency": self._latency, "result": self._result}
        return (
            f"Chaos({self._rate!r}, {self._what}={value[self._what]!r}, "
            f"enabled={self._enabled!r}, name={self.name!r})"
        )

    # -- deciding and injecting ----------------------------------------------------------

    def _strikes(self) -> bool:
        """Whether this call gets the chaos."""
        enabled = self._enabled
        if enabled is False or (enabled is not True and not enabled()):
            return False
        return self._random() < self._rate

    def _injected(self) -> tuple[Any, float | None]:
        """Inject: raise the fault, or return ``(result, None)`` for a result, or
        ``(None, seconds)`` for latency (the runner waits, then calls)."""
        what = self._what
        exc = self._make_fault() if what == "fault" and self._make_fault is not None else None
        if GLOBAL_LISTENERS or self._listeners:
            latency = self._latency
            self._emit_event(what, None if latency is None else LatencyInjected(latency), exc)
        if exc is not None:
            raise exc
        if what == "result":
            return self._result, None
        return None, self._latency

    def _sync_runner(self, inner: Runner) -> Runner:
        strikes, injected, sleep = self._strikes, self._injected, self._clock.sleep

        def run(*args: Any, **kwargs: Any) -> Any:
            if strikes():
                result, latency = injected()
                if latency is None:
                    return result
                sleep(latency)
            return inner(*args, **kwargs)

        return run

    def _async_runner(self, inner: AsyncRunner) -> AsyncRunner:
        strikes, injected, asleep = self._strikes, self._injected, self._clock.asleep

        async def run(*args: Any, **kwargs: Any) -> Any:
            if strikes():
                result, latency = injected()
                if latency is None:
                    return result
                await asleep(latency)
            return await inner(*args, **kwargs)

        return run
