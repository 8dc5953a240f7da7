"""What every policy shares: composition into runners, ``call``/``acall``, decoration.

A *runner* is ``run(fn, args, kwargs) -> result``: the policy's behaviour around a call
of ``fn(*args, **kwargs)``. ``Policy._sync_runner(inner)`` builds one around an inner
runner, or around the call itself when ``inner`` is None (so the innermost policy calls
``fn`` directly, without an extra frame). A pipeline composes its policies' runners once,
at construction; each call then goes through plain closures.

Decoration keeps what wrapt guarantees (binding on methods, classmethods and
staticmethods, introspection through ``__wrapped__``) but uses a plain closure for
functions, the common case, because ``wrapt.FunctionWrapper`` alone costs more per call
than a whole closed breaker. Other callables (callable objects, partials, bound methods)
go through ``wrapt.FunctionWrapper``, whose proxying they need.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, ParamSpec, TypeAlias, TypeVar, overload

import wrapt

from ._clock import SYSTEM_CLOCK, Clock
from ._events import Listener, _subscribe
from ._validation import check_name

__all__ = ["AsyncRunner", "Policy", "Runner"]

Runner: TypeAlias = Callable[[Callable[..., Any], tuple[Any, ...], dict[str, Any]], Any]
AsyncRunner: TypeAlias = Callable[
    [Callable[..., Awaitable[Any]], tuple[Any, ...], dict[str, Any]], Awaitable[Any]
]

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")
R = TypeVar("R")
P = ParamSpec("P")


def _invoke(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return fn(*args, **kwargs)


async def _ainvoke(
    fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    return await fn(*args, **kwargs)


class Policy:
    """Base of every policy and of :class:`~resilience.Pipeline`.

    Subclasses implement ``_sync_runner`` and ``_async_runner`` and call ``_compose()``
    at the end of ``__init__``.
    """

    kind: ClassVar[str] = "policy"

    name: str | None
    _clock: Clock
    _listeners: list[Listener]
    _run: Runner
    _arun: AsyncRunner

    def __init__(self, name: str | None, clock: Clock | None) -> None:
        self.name = check_name(name)
        if clock is None:
            clock = SYSTEM_CLOCK
        elif not (
            callable(getattr(clock, "monotonic", None))
            and callable(getattr(clock, "sleep", None))
            and callable(getattr(clock, "asleep", None))
        ):
            raise TypeError(f"clock must have monotonic(), sleep() and asleep(), got {clock!r}")
        self._clock = clock
        self._listeners = []

    # -- composition -------------------------------------------------------------

    def _sync_runner(self, inner: Runner | None) -> Runner:
        raise NotImplementedError

    def _async_runner(self, inner: AsyncRunner | None) -> AsyncRunner:
        raise NotImplementedError

    def _compose(self) -> None:
        self._run = self._sync_runner(None)
        self._arun = self._async_runner(None)

    # -- using the policy --------------------------------------------------------

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call ``fn(*args, **kwargs)`` through this policy."""
        return self._run(fn, args, kwargs)  # type: ignore[no-any-return]

    async def acall(self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Await ``fn(*args, **kwargs)`` through this policy."""
        return await self._arun(fn, args, kwargs)  # type: ignore[no-any-return]

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Send this policy's events to ``listener``; returns a function that stops it."""
        if not callable(listener):
            raise TypeError(f"listener must be callable, got {listener!r}")
        return _subscribe(self._listeners, listener)

    @overload
    def __call__(self, fn: classmethod[T, ..., R]) -> classmethod[T, ..., R]: ...
    @overload
    def __call__(self, fn: staticmethod[..., R]) -> staticmethod[..., R]: ...
    @overload
    def __call__(self, fn: F) -> F: ...
    def __call__(self, fn: Any) -> Any:
        """Decorate a function, coroutine function, method, classmethod or staticmethod."""
        return decorate(self, fn)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def _is_async_callable(fn: object) -> bool:
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004 - we want the method, not callable()
    return not inspect.isfunction(fn) and inspect.iscoroutinefunction(call)


def decorate(policy: Policy, fn: Any) -> Any:
    """Wrap ``fn`` so that every call goes through ``policy``."""
    if isinstance(fn, (classmethod, staticmethod)):
        return type(fn)(decorate(policy, fn.__func__))
    if not callable(fn):
        raise TypeError(f"{type(policy).__name__} can only decorate callables, got {fn!r}")
    if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
        raise TypeError(
            f"{type(policy).__name__} cannot decorate generator function "
            f"{getattr(fn, '__qualname__', fn)!r}: its body runs after the call returns, "
            "outside the policy; decorate the function that consumes it instead"
        )
    is_async = _is_async_callable(fn)

    if inspect.isfunction(fn):
        # The policy's runner is looked up on each call (not captured) so that a pipeline
        # recomposed by a config reload is picked up by functions decorated earlier.
        if is_async:

            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                return await policy._arun(fn, args, kwargs)

            return functools.update_wrapper(async_wrapper, fn)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return policy._run(fn, args, kwargs)

        return functools.update_wrapper(wrapper, fn)

    if is_async:

        async def async_proxy(
            wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Any:
            return await policy._arun(wrapped, args, kwargs)

        return wrapt.FunctionWrapper(fn, async_proxy)

    def proxy(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return policy._run(wrapped, args, kwargs)

    return wrapt.FunctionWrapper(fn, proxy)
