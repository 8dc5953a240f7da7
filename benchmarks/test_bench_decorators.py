"""Why our decorator is what it is: the same breaker runner behind four wrappers.

Every row but the bare call goes through the runner of a default ``CircuitBreaker()``
(what every call through the breaker ends in), so the rows differ only in the wrapper:

- our decorator, ``breaker(f)``, whatever it builds (see ``resilience/_policy.py``);
- a bare ``functools.wraps`` closure around the runner;
- ``wrapt.FunctionWrapper(f, wrapper)`` (what ``@wrapt.decorator`` builds);
- a ``wrapt.ObjectProxy`` subclass with a Python ``__call__``.

The runner is private API, so this module adapts to its two shapes: composed around
the function (``breaker._sync_runner(f)``, called as ``run(*args, **kwargs)``) or shared
by every function (``breaker._run``, called as ``run(f, args, kwargs)``).

The wrapt wrappers of coroutine functions return the runner's awaitable without a
coroutine frame of their own (they stay coroutine functions to ``inspect`` anyway); a
closure has to be an ``async def`` for that, which costs one more frame per call.
"""

from __future__ import annotations

import functools
import inspect

import wrapt

from resilience import CircuitBreaker


def f(x: int) -> int:
    return x + 1


async def af(x: int) -> int:
    return x + 1


def _runner_takes_function() -> bool:
    """True when a runner is built around one function (``_sync_runner(fn)``)."""
    params = inspect.signature(CircuitBreaker()._run).parameters
    return "fn" not in params


PER_FUNCTION = _runner_takes_function()


def runner(fn, is_async):
    """A fresh breaker's runner, for ``fn`` alone if ``PER_FUNCTION`` else for any function."""
    breaker = CircuitBreaker()
    if PER_FUNCTION:
        return (breaker._async_runner if is_async else breaker._sync_runner)(fn)
    return breaker._arun if is_async else breaker._run


class RunnerProxy(wrapt.ObjectProxy):
    """An object proxy whose Python ``__call__`` hands the call to a runner."""

    def __init__(self, wrapped, run):
        super().__init__(wrapped)
        self._self_run = run

    if PER_FUNCTION:

        def __call__(self, *args, **kwargs):
            return self._self_run(*args, **kwargs)

    else:

        def __call__(self, *args, **kwargs):
            return self._self_run(self.__wrapped__, args, kwargs)


def closure(fn):
    run = runner(fn, is_async=False)
    if PER_FUNCTION:

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            return run(*args, **kwargs)

    else:

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            return run(fn, args, kwargs)

    return wrapper


def async_closure(fn):
    arun = runner(fn, is_async=True)
    if PER_FUNCTION:

        @functools.wraps(fn)
        async def wrapper(*args, **kwargs):
            return await arun(*args, **kwargs)

    else:

        @functools.wraps(fn)
        async def wrapper(*args, **kwargs):
            return await arun(fn, args, kwargs)

    return wrapper


def function_wrapper(fn, is_async):
    run = runner(fn, is_async)
    if PER_FUNCTION:

        def wrapper(wrapped, instance, args, kwargs):
            return run(*args, **kwargs)

    else:

        def wrapper(wrapped, instance, args, kwargs):
            return run(wrapped, args, kwargs)

    return wrapt.FunctionWrapper(fn, wrapper)


def object_proxy(fn, is_async):
    return RunnerProxy(fn, runner(fn, is_async))


CASES = {
    "decorator-sync": [
        ("bare", "bare call `f(x)`", "baseline", lambda: f),
        ("ours", "resilience decorator `breaker(f)`", "ours", lambda: CircuitBreaker()(f)),
        ("closure", "`functools.wraps` closure", "alternative", lambda: closure(f)),
        (
            "wrapt-function-wrapper",
            "`wrapt.FunctionWrapper`",
            "alternative",
            lambda: function_wrapper(f, is_async=False),
        ),
        (
            "wrapt-object-proxy",
            "`wrapt.ObjectProxy` subclass, Python `__call__`",
            "alternative",
            lambda: object_proxy(f, is_async=False),
        ),
    ],
    "decorator-async": [
        ("bare", "bare call `await af(x)`", "baseline", lambda: af),
        ("ours", "resilience decorator `breaker(af)`", "ours", lambda: CircuitBreaker()(af)),
        (
            "closure",
            "`functools.wraps` closure (`async def`)",
            "alternative",
            lambda: async_closure(af),
        ),
        (
            "wrapt-function-wrapper",
            "`wrapt.FunctionWrapper`",
            "alternative",
            lambda: function_wrapper(af, is_async=True),
        ),
        (
            "wrapt-object-proxy",
            "`wrapt.ObjectProxy` subclass, Python `__call__`",
            "alternative",
            lambda: object_proxy(af, is_async=True),
        ),
    ],
}


def test_decorator(case, run_case):
    run_case(case)
