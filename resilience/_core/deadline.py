"""The active deadline of a thread or task, and ``remaining()``.

Every :class:`~resilience.Timeout` publishes the deadline it enforces in a context
variable, so code running inside the call (in the same task, in tasks it spawns, or on
the sync driver's worker thread, which runs in a copy of the caller's context) can ask
how much time it has left. This module is the Timeout's decision core: it decides, from
the enclosing deadline and the clock, which deadline is in force and how long the driver
must wait. It does no waiting itself and nothing sync- or async-specific.

A deadline is a tuple ``(at, clock, loop)``:

- ``at``: the instant it passes, on ``clock.monotonic()``;
- ``clock``: the clock of the Timeout that set it; ``remaining()`` reads this clock;
- ``loop``: for an async Timeout, which enforces it with a cancel scope, the id of the
  thread whose event loop that scope belongs to (the scope cancels every await of that
  loop inside it); None for a sync Timeout (a waiting caller gives up; nothing inside
  is interrupted).

Invariant: a nested deadline never ends after the one it is nested in. When the new
Timeout would end later, the enclosing deadline stays the active one.
"""

from __future__ import annotations

import contextvars
from asyncio import current_task as _current_task
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias

from .clock import Clock

if TYPE_CHECKING:
    from anyio.abc import AsyncBackend

__all__ = ["CURRENT", "Deadline", "current_backend", "limit", "remaining", "worker_context"]

Deadline: TypeAlias = tuple[float, Clock, int | None]

#: The innermost active deadline of this context, or None.
CURRENT: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar(
    "resilience-deadline", default=None
)


def remaining() -> float | None:
    """Seconds left before the innermost active deadline, or None when no Timeout is active.

    Never negative: 0.0 once the deadline has passed. Read on the clock of the Timeout that
    set the deadline. Works in sync and async code, in tasks spawned inside the call, and on
    a sync Timeout's worker thread.
    """
    deadline = CURRENT.get()
    if deadline is None:
        return None
    left = deadline[0] - deadline[1].monotonic()
    return left if left > 0.0 else 0.0


def limit(
    outer: Deadline | None, clock: Clock, now: float, seconds: float, loop: int | None
) -> tuple[Deadline, float]:
    """The deadline a new Timeout of ``seconds`` publishes, and how long its driver waits.

    ``outer`` is the enclosing deadline (or None), ``now`` the current time on ``clock``,
    ``loop`` the thread of the event loop for an async Timeout, None for a sync one.

    - No enclosing deadline, or one that ends later: a new deadline ``now + seconds``,
      and the driver waits ``seconds``.
    - An enclosing deadline that ends first (or at the same time) stays active. An async
      Timeout inside an async one of the same event loop still waits its own
      ``seconds``: the enclosing cancel scope fires first and cancels it, and the
      enclosing Timeout reports it. In every other case (a sync Timeout; an async one
      inside a sync one, or inside an async one of another thread's loop, which cannot
      cancel it) the driver waits only what is left of the enclosing deadline (0 or
      less: it has passed).
    """
    if outer is None:
        return (now + seconds, clock, loop), seconds
    at, outer_clock, outer_loop = outer
    left = at - (now if outer_clock is clock else outer_clock.monotonic())
    if left > seconds:
        return (now + seconds, clock, loop), seconds
    if loop is not None and loop == outer_loop:
        return outer, seconds
    return outer, left


def worker_context(deadline: Deadline | None) -> contextvars.Context:
    """A copy of the current context for a worker thread that runs a call under
    ``deadline``. No event loop runs on that thread: like ``anyio.to_thread``, clear the
    name of the running async library that ``anyio.run`` keeps in a context variable."""
    context = contextvars.copy_context()
    context.run(_enter_worker, deadline)
    return context


def _enter_worker(deadline: Deadline | None) -> None:
    CURRENT.set(deadline)
    if _sniffio_cvar is not None and _sniffio_cvar.get() is not None:
        _sniffio_cvar.set(None)


# -- which async library is running ---------------------------------------------------
#
# ``anyio.CancelScope()`` and ``anyio.current_time()`` each find the running library
# through sniffio, which outside ``anyio.run`` (a plain asyncio application) imports
# asyncio and asks for the current task on every call, about 1 us; the public
# ``CancelScope()`` also initialises the scope twice. The async Timeout looks the backend
# up once per call, with sniffio's own checks in sniffio's order, and asks it for both.
# Should anyio's internals move, the public API is used instead.


_sniffio_local: Any = None  # sniffio.thread_local: trio names itself there
_sniffio_cvar: contextvars.ContextVar[str | None] | None = None  # set by anyio.run
try:
    import sniffio
except ImportError:  # pragma: no cover - anyio runs without sniffio (asyncio only)
    pass
else:
    _sniffio_local = sniffio.thread_local
    _sniffio_cvar = sniffio.current_async_library_cvar


def _library() -> str | None:
    """``sniffio.current_async_library()`` without its per-call import; None for none."""
    if _sniffio_cvar is not None:
        name: str | None = _sniffio_local.name or _sniffio_cvar.get()
        if name is not None:
            return name
    try:
        if _current_task() is not None:
            return "asyncio"
    except RuntimeError:  # no event loop running in this thread
        pass
    return None


def _backend_finder() -> Callable[[], type[AsyncBackend]]:
    try:
        from anyio._core._eventloop import get_async_backend
    except ImportError:  # pragma: no cover - a future anyio
        return lambda: _PublicBackend  # type: ignore[return-value]

    def current_backend() -> type[AsyncBackend]:
        """The anyio backend of the running event loop (anyio's error when there is none)."""
        # With no library found, anyio does its own detection and raises its own error.
        return get_async_backend(_library())

    return current_backend


class _PublicBackend:  # pragma: no cover - a future anyio
    """The public anyio API, should anyio's internals move."""

    @staticmethod
    def current_time() -> float:
        import anyio

        return anyio.current_time()

    @staticmethod
    def create_cancel_scope(*, deadline: float, shield: bool = False) -> Any:
        import anyio

        return anyio.CancelScope(deadline=deadline, shield=shield)

    @staticmethod
    def create_task_group() -> Any:
        import anyio

        return anyio.create_task_group()

    @staticmethod
    def cancelled_exception_class() -> type[BaseException]:
        import anyio

        return anyio.get_cancelled_exc_class()

    @staticmethod
    async def sleep(seconds: float) -> None:
        import anyio

        await anyio.sleep(seconds)


current_backend = _backend_finder()
