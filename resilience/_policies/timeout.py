"""Timeout: the policy, its sync driver (a worker pool) and its async driver (a cancel scope).

Which deadline is in force, and how long to wait for it, is decided by
``_deadline.limit`` (the decision core, shared by both drivers). The async driver runs
the call inside an anyio cancel scope whose deadline is on the event loop's clock; the
sync driver runs it on a pooled worker thread and waits for it with a timeout.

A sync call that times out leaves its worker running: Python cannot stop a thread. Such
a worker is *abandoned*: it finishes in the background, then goes back to the pool.
Each Timeout counts its abandoned workers (``Timeout.abandoned``) and reports changes of
that count through events.
"""

from __future__ import annotations

import contextvars
import os
import threading
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from .._core.clock import Clock
from .._core.deadline import CURRENT, current_backend, limit, remaining, worker_context
from .._core.validation import check_wait
from ..errors import TimeoutExceeded
from .events import GLOBAL_LISTENERS, AbandonedFinished, TimedOut
from .policy import AsyncRunner, Policy, Runner

__all__ = ["Timeout", "remaining", "run_detached"]


class Timeout(Policy):
    """Gives a call at most ``seconds`` to finish.

    Async calls are cancelled at the deadline (anyio cancel scope, asyncio and trio);
    sync calls run on a worker thread that the caller stops waiting for at the deadline.
    Either way the caller gets :class:`~resilience.TimeoutExceeded`.
    """

    kind = "timeout"
    reconfigurable = frozenset({"seconds"})

    def __init__(
        self,
        seconds: float | timedelta,
        *,
        name: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(name, clock)
        self._seconds = _check_seconds(seconds)
        self._lock = threading.Lock()  # guards _abandoned and the abandonment of a job
        self._abandoned = 0
        self._compose()

    def _live_settings(self) -> dict[str, Any]:
        return {"seconds": self._seconds}

    @property
    def seconds(self) -> float:
        """The time limit of one call, in seconds."""
        return self._seconds

    def _reconfigure(self, arguments: Mapping[str, object]) -> None:
        """A new time limit, for calls that start from now on."""
        self._seconds = _check_seconds(arguments["seconds"])

    @property
    def abandoned(self) -> int:
        """Worker threads still running a sync call that this Timeout stopped waiting for."""
        return self._abandoned

    def __repr__(self) -> str:
        return f"Timeout(seconds={self._seconds!r}, name={self.name!r})"

    # -- events --------------------------------------------------------------------

    def _timed_out(self, limit: float, abandoned: int | None = None) -> TimeoutExceeded:
        exc = TimeoutExceeded(self.name, max(limit, 0.0))
        if GLOBAL_LISTENERS or self._listeners:
            self._emit_event("timeout", TimedOut(exc.timeout, abandoned), exc)
        return exc

    # -- abandoned workers ---------------------------------------------------------

    def _abandon(self, job: _Job) -> int | None:
        """Claim ``job`` for its caller, who gives up on it: the new count of abandoned
        workers, or None when the worker finished first (its outcome is then ready)."""
        with self._lock:
            try:
                job.claim.pop()
            except IndexError:
                return None
            self._abandoned += 1
            return self._abandoned

    def _abandoned_finished(self, job: _Job) -> None:
        """Called on the worker thread when a call its caller gave up on returns."""
        # The caller popped ``claim`` while holding the lock, so its increment is done
        # before this decrement can start.
        with self._lock:
            self._abandoned -= 1
            count = self._abandoned
        if GLOBAL_LISTENERS or self._listeners:
            ran = self._clock.monotonic() - job.started
            self._emit_event("abandoned_finished", AbandonedFinished(ran, count), job.error)

    # -- drivers -------------------------------------------------------------------

    def _sync_runner(self, inner: Runner) -> Runner:
        clock = self._clock
        now = clock.monotonic
        get = CURRENT.get
        timed_out, abandon = self._timed_out, self._abandon

        def run(*args: Any, **kwargs: Any) -> Any:
            started = now()
            deadline, wait = limit(get(), clock, started, self._seconds, None)
            if wait <= 0.0:  # an enclosing deadline has passed: do not start the call
                raise timed_out(wait)
            job = _Job(self, worker_context(deadline), inner, args, kwargs, started)
            done = job.done
            _submit(job)
            if not done.acquire(True, wait):
                count = abandon(job)
                if count is not None:
                    raise timed_out(wait, count)
                done.acquire()  # it finished at the deadline: take its outcome
            error = job.error
            if error is None:
                return job.result
            job.error = None
            try:
                raise error  # the worker's exception, with its traceback
            finally:
                del error

        return run

    def _async_runner(self, inner: AsyncRunner) -> AsyncRunner:
        clock = self._clock
        now = clock.monotonic
        get, set_deadline, reset = CURRENT.get, CURRENT.set, CURRENT.reset
        backend = current_backend
        thread = threading.get_ident
        timed_out = self._timed_out

        async def run(*args: Any, **kwargs: Any) -> Any:
            async_backend = backend()  # first: it raises when no event loop is running
            # Read per call (reconfigure may change it): within noise of a closure
            # variable, next to arming a cancel scope.
            seconds = self._seconds
            outer = get()
            if outer is None:  # the common case, inlined
                wait = seconds
                token = set_deadline((now() + seconds, clock, thread()))
            else:
                deadline, wait = limit(outer, clock, now(), seconds, thread())
                if wait <= 0.0:  # an enclosing sync deadline has passed
                    raise timed_out(wait)
                token = set_deadline(deadline)
            try:
                with async_backend.create_cancel_scope(
                    deadline=async_backend.current_time() + wait
                ):
                    return await inner(*args, **kwargs)
            finally:
                reset(token)
            # Only reached when our scope caught the cancellation it caused: its deadline
            # passed. A cancellation from an enclosing scope propagates out of the block.
            raise timed_out(wait)

        return run


def _check_seconds(seconds: object) -> float:
    return check_wait("seconds", seconds, positive=True)


# -- the worker pool ----------------------------------------------------------------


class _Job:
    """One sync call handed to a worker, and its outcome.

    ``claim`` holds one item; whoever pops it decides the job's fate: the worker when
    it finishes (it hands the outcome to the waiting caller through ``done``), or the
    caller when it gives up (under the Timeout's lock; the worker is then abandoned).
    """

    __slots__ = (
        "args",
        "claim",
        "context",
        "done",
        "error",
        "fn",
        "kwargs",
        "owner",
        "result",
        "started",
    )

    def __init__(
        self,
        owner: Timeout | _Detached,
        context: contextvars.Context,
        fn: Runner,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        started: float,
    ) -> None:
        self.owner = owner
        self.context = context
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.started = started
        self.result: Any = None
        self.error: BaseException | None = None
        self.claim = [True]
        self.done = threading.Lock()
        self.done.acquire()


class _Detached:
    """The owner of jobs that nobody waits for: they finish like abandoned ones."""

    def _abandoned_finished(self, job: _Job) -> None:
        pass


_DETACHED = _Detached()


def run_detached(fn: Runner, /, *args: Any) -> None:
    """Run ``fn(*args)`` on a pooled worker thread, in a copy of the caller's context
    (as a sync Timeout's call runs), and do not wait for it. ``fn`` reports its own
    outcome; anything it raises is dropped."""
    job = _Job(_DETACHED, worker_context(CURRENT.get()), fn, args, {}, 0.0)
    job.claim.pop()  # nobody will claim the outcome: the worker finishes it as abandoned
    _submit(job)


class _Worker:
    __slots__ = ("job", "wake")

    def __init__(self) -> None:
        self.job: _Job | None = None
        self.wake = threading.Lock()
        self.wake.acquire()


#: Idle workers, most recently used last. ``list.append``/``pop``/``remove`` are atomic,
#: which is all the synchronisation the pool needs.
_idle: list[_Worker] = []
#: More idle workers than this exit instead of waiting for work.
_MAX_IDLE = 32
#: An idle worker exits after this many seconds without work.
_IDLE_SECONDS = 60.0

if hasattr(os, "register_at_fork"):  # a forked child has none of the parent's threads
    os.register_at_fork(after_in_child=_idle.clear)


def _submit(job: _Job) -> None:
    try:
        worker = _idle.pop()
    except IndexError:  # every worker is busy or abandoned: one more
        worker = _Worker()
        threading.Thread(
            target=_work, args=(worker, job), name="resilience-timeout-worker", daemon=True
        ).start()
        return
    worker.job = job
    worker.wake.release()


def _work(worker: _Worker, job: _Job | None) -> None:
    while job is not None:
        # Back in the pool *before* handing the outcome over, so that a caller making
        # its next call at once finds this worker idle instead of starting another.
        keep = len(_idle) < _MAX_IDLE
        _run(job, worker if keep else None)
        job = _next_job(worker) if keep else None


def _run(job: _Job, worker: _Worker | None) -> None:
    try:
        job.result = job.context.run(job.fn, *job.args, **job.kwargs)
    except BaseException as exc:
        job.error = exc
    job.context = job.fn = job.args = job.kwargs = None  # type: ignore[assignment]
    try:
        job.claim.pop()
    except IndexError:  # the caller gave up on this call
        owner = job.owner
        job.result = None
        owner._abandoned_finished(job)
        job.error = None
        if worker is not None:
            _idle.append(worker)
    else:
        if worker is not None:
            _idle.append(worker)
        job.done.release()


def _next_job(worker: _Worker) -> _Job | None:
    wake = worker.wake
    if not wake.acquire(True, _IDLE_SECONDS):
        try:
            _idle.remove(worker)
        except ValueError:  # a caller took this worker just now; its job is on the way
            wake.acquire()
        else:
            return None  # idle too long: exit
    job = worker.job
    worker.job = None
    return job
