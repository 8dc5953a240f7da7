"""Bulkhead: the policy, its arguments, and thin sync/async drivers.

Slots and the queue belong to the backend the store hands out
(``_bulkhead_core.BulkheadCore`` by default); this module validates
arguments, emits events, and does the waiting: a queued thread sleeps on a lock, a
queued asyncio task on a future, a queued trio task on an event. A slot handed to a
waiter from another thread wakes it thread-safely (``loop.call_soon_threadsafe``, the
trio token's ``run_sync_soon``); from the waiter's own event loop, directly.

``max_wait`` is enforced with real waiting primitives (a lock's timeout, an anyio cancel
scope), so it counts real seconds whatever the clock; the clock only timestamps events
and measures the durations they report.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
import threading
from collections.abc import Awaitable, Mapping
from datetime import timedelta
from types import ModuleType, TracebackType
from typing import Any

import anyio

from .._core.bulkhead import BulkheadCore, Waiter
from .._core.clock import Clock
from .._core.protocols import BulkheadBackend, BulkheadStore
from .._core.validation import (
    MAX_SLOTS,
    check_mode,
    check_name,
    check_positive_int,
    check_wait,
    show,
)
from ..errors import BulkheadFull
from .events import (
    GLOBAL_LISTENERS,
    NO_WAIT,
    Acquired,
    BulkheadRejected,
    Released,
    WaitCancelled,
)
from .mode import ShadowMode
from .policy import AsyncRunner, Runner

sniffio: ModuleType | None
try:
    import sniffio
except ModuleNotFoundError:  # pragma: no cover - trio needs sniffio, so only asyncio is left
    sniffio = None

__all__ = ["Bulkhead"]

_get_ident = threading.get_ident
_allocate_lock = threading.Lock
_running_loop = asyncio._get_running_loop


# -- waiters: how a queued caller sleeps and is woken ---------------------------------------


class _ThreadWaiter(Waiter):
    """A queued thread, asleep on a lock that ``wake`` releases."""

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self.granted = False
        lock = _allocate_lock()
        lock.acquire()
        self._lock = lock

    def wake(self) -> bool:
        self._lock.release()
        return True

    def wait(self, timeout: float | None) -> None:
        self._lock.acquire(True, -1 if timeout is None else timeout)


class _AsyncWaiter(Waiter):
    __slots__ = ()

    def wait(self) -> Awaitable[Any]:
        raise NotImplementedError


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():  # it may have been cancelled with its task
        future.set_result(None)


class _AsyncioWaiter(_AsyncWaiter):
    """A queued asyncio task, awaiting a future of its loop."""

    __slots__ = ("_future", "_loop")

    def __init__(self) -> None:
        self.granted = False
        self._loop = loop = asyncio.get_running_loop()
        self._future: asyncio.Future[None] = loop.create_future()

    def wake(self) -> bool:
        loop = self._loop
        if loop.is_closed():
            return False  # its task is gone and will never release the slot
        if _running_loop() is loop:
            _resolve(self._future)
        else:
            try:
                loop.call_soon_threadsafe(_resolve, self._future)
            except RuntimeError:  # closed since we looked
                return False
        return True

    def wait(self) -> Awaitable[Any]:
        return self._future


class _TrioWaiter(_AsyncWaiter):
    """A queued trio task, waiting on a ``trio.Event``."""

    __slots__ = ("_event", "_thread", "_token")

    def __init__(self) -> None:
        import trio

        self.granted = False
        self._event = trio.Event()
        self._token = trio.lowlevel.current_trio_token()
        self._thread = _get_ident()

    def wake(self) -> bool:
        import trio

        if self._thread == _get_ident() and trio.lowlevel.in_trio_run():
            self._event.set()  # in the waiter's own run (one run per thread)
            return True
        try:
            self._token.run_sync_soon(self._event.set)
        except trio.RunFinishedError:
            return False
        return True

    def wait(self) -> Awaitable[Any]:
        return self._event.wait()


def _async_waiter() -> _AsyncWaiter:
    """A waiter for the async library running in this thread (asyncio or trio)."""
    if sniffio is None:  # pragma: no cover - see the import
        return _AsyncioWaiter()
    try:
        library = sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        library = "asyncio"  # asyncio.get_running_loop() says whether that is right
    if library == "asyncio":
        return _AsyncioWaiter()
    if library == "trio":
        return _TrioWaiter()
    raise RuntimeError(f"Bulkhead can wait in asyncio or trio, not in {library!r}")


# -- the policy ------------------------------------------------------------------------------


class Bulkhead(ShadowMode):
    """At most ``max_concurrent`` calls at once; up to ``max_queue`` more wait, for at most
    ``max_wait`` seconds, in arrival order; the rest get :class:`BulkheadFull` at once.

    See the docs page "Bulkhead". Every argument is checked here; a bad one raises
    ``ValueError`` or ``TypeError`` naming it.
    """

    kind = "bulkhead"
    per_dependency = True
    reconfigurable = frozenset({"max_concurrent", "max_queue", "max_wait", "mode"})

    def __init__(
        self,
        max_concurrent: int,
        max_queue: int = 0,
        max_wait: float | timedelta | None = None,
        *,
        mode: str = "enforce",
        store: BulkheadStore | None = None,
        key: str | None = None,
        name: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(name, clock)
        # Shadow mode lets a call that finds no free slot in at once, over the limit
        # (the core's overdraw). Only the slow path (_acquire) looks at the flag.
        self._shadow = check_mode(mode)
        self._max_concurrent, self._max_queue, self._max_wait = _limits(
            max_concurrent, max_queue, max_wait
        )
        #: The name of the shared slots in a store (the bulkhead's name unless given).
        self.key: str | None = check_name(key, "key") if key is not None else self.name
        core: BulkheadBackend
        if store is None:
            core = BulkheadCore(self._max_concurrent, self._max_queue)
        elif isinstance(store, BulkheadStore):
            core = store.bulkhead(self.key, self._max_concurrent, self._max_queue)
        else:
            raise TypeError(f"store must be a bulkhead store (or None), got {show(store)}")
        self._core = core
        self._blocks: list[None] = []  # see "context managers" below
        self._held: contextvars.ContextVar[tuple[float | None, ...]] = contextvars.ContextVar(
            f"resilience-bulkhead-{id(self)}", default=()
        )
        self._compose()

    # -- configuration and counts ----------------------------------------------------------

    def _reconfigure(self, arguments: Mapping[str, object]) -> None:
        self._resize_to(
            *_limits(arguments["max_concurrent"], arguments["max_queue"], arguments["max_wait"])
        )

    def _resize_to(self, concurrent: int, queue: int, wait: float | None) -> None:
        """New limits (checked), in place: running and queued calls keep their place;
        with fewer slots than running calls, the next releases pay the difference."""
        self._max_wait = wait
        self._max_concurrent, self._max_queue = concurrent, queue
        self._core.resize(concurrent, queue)

    def _live_settings(self) -> dict[str, Any]:
        return {
            "max_concurrent": self._max_concurrent,
            "max_queue": self._max_queue,
            "max_wait": self._max_wait,
        }

    @property
    def max_concurrent(self) -> int:
        """How many calls may run at once."""
        return self._max_concurrent

    @property
    def max_queue(self) -> int:
        """How many more calls may wait for a slot."""
        return self._max_queue

    @property
    def max_wait(self) -> float | None:
        """How long, in seconds, a queued call waits at most (None: as long as it takes)."""
        return self._max_wait

    @property
    def in_flight(self) -> int:
        """Slots taken right now: running calls, plus queued calls just handed a slot (in
        shadow mode, calls let in over the limit too)."""
        return self._core.in_flight

    @property
    def queued(self) -> int:
        """Calls waiting for a slot right now."""
        return self._core.queued

    def __repr__(self) -> str:
        return (
            f"Bulkhead(name={self.name!r}, max_concurrent={self._max_concurrent}, "
            f"max_queue={self._max_queue}, max_wait={self._max_wait!r})"
        )

    # -- events --------------------------------------------------------------------------

    def _rejected(self, waited: float | None) -> BulkheadFull:
        if GLOBAL_LISTENERS or self._listeners:
            self._emit_event("rejected", BulkheadRejected(waited))
        return BulkheadFull(self.name, self._max_concurrent, self._max_queue)

    # -- acquiring and releasing (shared by every driver) ------------------------------------

    def _admitted(self, got: Waiter | bool) -> float | None:
        """After ``core.admit``: None when the slot is ours already; else the time the
        caller started waiting. Raises ``BulkheadFull`` when there is no room to wait."""
        if got is True:
            if GLOBAL_LISTENERS or self._listeners:
                self._emit_event("acquired", NO_WAIT)
            return None
        if got is False:
            raise self._rejected(None)
        start = self._clock.monotonic()
        if GLOBAL_LISTENERS or self._listeners:
            self._emit_event("queued")
        return start

    def _waited(self, waiter: Waiter, start: float) -> None:
        """After the wait: proceed with the slot, or raise ``BulkheadFull`` (timed out)."""
        if not waiter.granted and not self._core.withdraw(waiter):
            raise self._rejected(self._clock.monotonic() - start)
        if GLOBAL_LISTENERS or self._listeners:
            self._emit_event("acquired", Acquired(self._clock.monotonic() - start))

    def _abandoned(self, waiter: Waiter, start: float, exc: BaseException) -> None:
        """The wait was interrupted (cancelled): leave the queue, or pass on the slot
        handed to us in the meantime."""
        if self._core.withdraw(waiter):
            self._core.release()
        if GLOBAL_LISTENERS or self._listeners:
            waited = self._clock.monotonic() - start
            self._emit_event("cancelled", WaitCancelled(waited), exc)

    def _overdraw(self) -> None:
        """Shadow mode, no free slot: let the call in over the limit, and report whether
        an enforcing bulkhead would have queued it or rejected it."""
        over = self._core.overdraw()
        if over and (GLOBAL_LISTENERS or self._listeners):
            if over > self._max_queue or self._max_wait == 0:
                self._emit_event("rejected", BulkheadRejected(None))
            else:
                self._emit_event("queued")

    def _acquire(self) -> None:
        """The sync slow path: queue, wait (blocking this thread), or raise."""
        if self._shadow:
            self._overdraw()
            return
        got = self._core.admit(_ThreadWaiter)
        start = self._admitted(got)
        if start is None:
            return
        assert isinstance(got, _ThreadWaiter)
        try:
            got.wait(self._max_wait)
        except BaseException as exc:  # KeyboardInterrupt in the main thread
            self._abandoned(got, start, exc)
            raise
        self._waited(got, start)

    async def _aacquire(self) -> None:
        """The async slow path: queue, wait (without blocking the loop), or raise."""
        if self._shadow:
            self._overdraw()
            return
        got = self._core.admit(_async_waiter)
        start = self._admitted(got)
        if start is None:
            return
        assert isinstance(got, _AsyncWaiter)
        max_wait = self._max_wait
        try:
            if max_wait is None:
                await got.wait()
            else:
                with anyio.move_on_after(max_wait):
                    await got.wait()
        except BaseException as exc:  # cancelled
            self._abandoned(got, start, exc)
            raise
        self._waited(got, start)

    def _started(self, fast: bool) -> float | None:
        """A slot was taken (``fast``: without waiting, so no event was sent yet); with
        listeners, when."""
        if not GLOBAL_LISTENERS and not self._listeners:
            return None
        if fast:
            self._emit_event("acquired", NO_WAIT)
        return self._clock.monotonic()

    def _leave(self, start: float | None, exc: BaseException | None) -> None:
        """Release the slot (never awaits, so a cancelled caller cannot keep it)."""
        self._core.release()
        if GLOBAL_LISTENERS or self._listeners:
            held = None if start is None else self._clock.monotonic() - start
            self._emit_event("released", Released(held), exc)

    # -- drivers ---------------------------------------------------------------------------

    def _sync_runner(self, inner: Runner) -> Runner:
        core = self._core
        release = core.release
        acquire, try_acquire, started, leave = (
            self._acquire,
            core.try_acquire,
            self._started,
            self._leave,
        )
        listeners = self._listeners

        def observed(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            fast = try_acquire()
            if not fast:
                acquire()
            start = started(fast)
            try:
                result = inner(*args, **kwargs)
            except BaseException as exc:
                leave(start, exc)
                raise
            leave(start, None)
            return result

        def run(*args: Any, **kwargs: Any) -> Any:
            if GLOBAL_LISTENERS or listeners:
                return observed(args, kwargs)
            # Lock-free when a slot is free and nobody waits (see _bulkhead_core).
            if not try_acquire():
                acquire()
            try:
                return inner(*args, **kwargs)
            finally:
                release()

        return run

    def _async_runner(self, inner: AsyncRunner) -> AsyncRunner:
        core = self._core
        release = core.release
        aacquire, try_acquire, started, leave = (
            self._aacquire,
            core.try_acquire,
            self._started,
            self._leave,
        )
        listeners = self._listeners
        nonblocking, atry_acquire = core.nonblocking, core.atry_acquire

        async def observed(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            fast = try_acquire() if nonblocking else await atry_acquire()
            if not fast:
                await aacquire()
            start = started(fast)
            try:
                result = await inner(*args, **kwargs)
            except BaseException as exc:
                leave(start, exc)
                raise
            leave(start, None)
            return result

        if not nonblocking:  # a shared store's slots: acquiring is I/O, awaited

            async def run_blocking_backend(*args: Any, **kwargs: Any) -> Any:
                return await observed(args, kwargs)

            return run_blocking_backend

        async def run(*args: Any, **kwargs: Any) -> Any:
            if GLOBAL_LISTENERS or listeners:
                return await observed(args, kwargs)
            if not try_acquire():
                await aacquire()
            try:
                return await inner(*args, **kwargs)
            finally:
                release()  # never awaits: a cancelled call frees its slot right here

        return run

    # -- context managers ------------------------------------------------------------------

    # ``with`` blocks: ``_blocks`` holds one item per slot taken by a block that has not
    # exited (anywhere), so that an unmatched ``__exit__`` raises instead of freeing a
    # slot it never took (like ``threading.BoundedSemaphore``). ``_held`` (per thread or
    # task) holds the start times of blocks entered while somebody listened, for the
    # ``released`` event's duration; it is left alone in the common case, since setting
    # a context variable costs more than the rest of the block's overhead. A block pushes
    # a start time (or None) when somebody listens or an enclosing block pushed one, and
    # pops one when the stack is not empty: blocks nest (LIFO), so that stays paired.

    def _push_held(self, fast: bool) -> None:
        held = self._held.get()
        if GLOBAL_LISTENERS or self._listeners:
            if fast:
                self._emit_event("acquired", NO_WAIT)
            self._held.set((*held, self._clock.monotonic()))
        else:
            self._held.set((*held, None))

    def _pop_held(self, exc: BaseException | None) -> None:
        held = self._held.get()
        if held:
            self._held.set(held[:-1])
            self._leave(held[-1], exc)
        else:
            self._leave(None, exc)

    def _unmatched(self) -> RuntimeError:
        return RuntimeError(f"{self!r}: __exit__ without a matching __enter__")

    def _entered(self, fast: bool) -> Bulkhead:
        """Bookkeeping once a ``with`` block holds its slot (sync and async alike)."""
        self._blocks.append(None)
        if GLOBAL_LISTENERS or self._listeners or self._held.get():
            self._push_held(fast)
        return self

    def __enter__(self) -> Bulkhead:
        fast = self._core.try_acquire()
        if not fast:
            self._acquire()
        return self._entered(fast)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self._blocks.pop()
        except IndexError:
            raise self._unmatched() from None
        if GLOBAL_LISTENERS or self._listeners or self._held.get():
            self._pop_held(exc)
        else:
            self._core.release()

    async def __aenter__(self) -> Bulkhead:
        core = self._core
        fast = core.try_acquire() if core.nonblocking else await core.atry_acquire()
        if not fast:
            await self._aacquire()
        return self._entered(fast)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Releasing never waits, so leaving an async block is leaving a sync one.
        self.__exit__(exc_type, exc, tb)


def _limits(
    max_concurrent: object, max_queue: object, max_wait: object
) -> tuple[int, int, float | None]:
    # Each slot is an item of a list: more than MAX_SLOTS would not fit in memory.
    concurrent = check_positive_int("max_concurrent", max_concurrent, maximum=MAX_SLOTS)
    # No queue can hold more than sys.maxsize callers (the largest "unbounded" queue).
    queue = check_positive_int("max_queue", max_queue, minimum=0, maximum=sys.maxsize)
    # A lock's timeout: at most threading.TIMEOUT_MAX.
    wait = None if max_wait is None else check_wait("max_wait", max_wait)
    return concurrent, queue, wait
