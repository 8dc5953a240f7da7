"""Fallback: a substitute result when a call fails or returns something unusable."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from .._core.classify import judge
from .._core.clock import Clock
from .._core.validation import MISSING, check_exception_filter, check_predicate, show
from .events import GLOBAL_LISTENERS
from .policy import AsyncRunner, Policy, Runner

__all__ = ["Fallback"]


_MISSING: Any = MISSING


class Fallback(Policy):
    """Returns ``value`` (or ``handler(exc_or_result)``) instead of failing.

    It steps in when the call raises one of ``on`` (types or a predicate; default any
    ``Exception``, so policy refusals such as ``CircuitOpen`` too) or returns a result for
    which ``if_result`` is true. Cancellation and other ``BaseException``s always pass.
    """

    kind = "fallback"
    reconfigurable = frozenset({"value", "handler", "on", "if_result"})
    _alternatives = (frozenset({"value", "handler"}),)

    #: The substitute result (when no handler is given).
    value: Any
    #: Called with the exception or the unusable result; returns the substitute.
    handler: Callable[[Any], Any] | None

    def __init__(
        self,
        value: Any = _MISSING,
        *,
        handler: Callable[[Any], Any] | None = None,
        on: type[BaseException]
        | tuple[type[BaseException], ...]
        | Callable[[BaseException], bool] = (Exception,),
        if_result: Callable[[Any], bool] | None = None,
        name: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(name, clock)
        self._set(value, handler=handler, on=on, if_result=if_result)
        self._compose()

    def _reconfigure(self, arguments: Mapping[str, object]) -> None:
        self._set(
            arguments["value"],
            handler=arguments["handler"],
            on=arguments["on"],
            if_result=arguments["if_result"],
        )

    def _set(
        self,
        value: object,
        *,
        handler: object,
        on: object,
        if_result: object,
    ) -> None:
        """Check and set every setting (the constructor's, and ``reconfigure()``'s)."""
        if handler is not None and not callable(handler):
            raise TypeError(f"handler must be a callable or None, got {show(handler)}")
        if (value is _MISSING) == (handler is None):
            raise TypeError(
                "Fallback needs exactly one of value and handler, got "
                + ("both" if handler is not None else "neither")
            )
        checked_on = check_exception_filter("on", on)
        checked_if_result = check_predicate("if_result", if_result)
        self.value = value
        self.handler = handler
        self._async_handler = handler is not None and inspect.iscoroutinefunction(handler)
        self._on = checked_on
        self._if_result = checked_if_result

    def _substitute(self, reason: Any, exception: BaseException | None) -> Any:
        """The replacement (possibly an awaitable from an async handler) and its event."""
        if GLOBAL_LISTENERS or self._listeners:
            self._emit_event("fallback", None, exception)
        return self.value if self.handler is None else self.handler(reason)

    def _sync_runner(self, inner: Runner) -> Runner:
        substitute = self._substitute

        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                result = inner(*args, **kwargs)
            except Exception as exc:
                if not judge("on", self._on, exc, False):  # read per failure: reconfigurable
                    raise
                return self._sync_value(substitute(exc, exc))
            check = self._if_result
            if check is not None and judge("if_result", check, result, False):
                return self._sync_value(substitute(result, None))
            return result

        return run

    def _sync_value(self, value: Any) -> Any:
        if self._async_handler or inspect.isawaitable(value):
            if inspect.iscoroutine(value):
                value.close()  # never awaited: close it rather than warn later
            raise TypeError(
                f"Fallback {self.name or '<unnamed>'}: handler {self.handler!r} is async "
                "and cannot serve a sync call; use a sync handler (or call acall)"
            )
        return value

    def _async_runner(self, inner: AsyncRunner) -> AsyncRunner:
        substitute = self._substitute

        async def run(*args: Any, **kwargs: Any) -> Any:
            try:
                result = await inner(*args, **kwargs)
            except Exception as exc:
                if not judge("on", self._on, exc, False):
                    raise
                value = substitute(exc, exc)
            else:
                check = self._if_result
                if check is None or not judge("if_result", check, result, False):
                    return result
                value = substitute(result, None)
            return await value if inspect.isawaitable(value) else value

        return run

    def __repr__(self) -> str:
        what = f"handler={self.handler!r}" if self.handler is not None else f"value={self.value!r}"
        return f"Fallback({what}, name={self.name!r})"
