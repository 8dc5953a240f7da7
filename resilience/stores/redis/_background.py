"""The store's background worker: one thread that does what no caller should wait for.

Local-first breakers flush their outcome counts and poll their state, retry budgets
report their calls and retries, bulkheads renew their slot leases, hand back released
slots and fetch slots for queued callers. Each of these is a *participant*: an object
whose ``sync(now, force)`` does whatever work is due and answers when it next wants to
run. The worker runs every participant in rounds, sleeping until the earliest of those
times, or until a participant wakes it (``wake()``: a failure burst to report, a slot to
hand back).

Participants are held weakly (a policy dropped by its owner takes its backend with it)
and run one round at a time, never concurrently with each other: a ``flush()`` from a
caller's thread waits for the worker's round to end. The thread starts with the first
participant, and ``close()`` stops it after one last round, so counts still pending
reach Redis.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from typing import Protocol

__all__ = ["Participant", "Worker"]

_log = logging.getLogger("resilience")
#: The longest the worker sleeps when nobody asked for anything sooner.
_IDLE = 1.0


class Participant(Protocol):
    def sync(self, now: float, force: bool) -> float:
        """Do the work due at ``now`` (all of it when ``force``); return the monotonic
        time at which there will be more."""
        ...

    def link_changed(self) -> None:
        """The store was cut off from Redis, or is back (no I/O here)."""
        ...


class Worker:
    """The store's background thread (started when first needed)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._participants: weakref.WeakSet[Participant] = weakref.WeakSet()
        self._round = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    def add(self, participant: Participant) -> None:
        self._participants.add(participant)
        if self._thread is None and not self._closed:
            thread = threading.Thread(
                target=self._run, name=f"resilience-redis-worker-{self.name}", daemon=True
            )
            self._thread = thread
            thread.start()
        self._wake.set()

    def wake(self) -> None:
        """Run a round now (from any thread; never blocks)."""
        self._wake.set()

    def flush(self) -> None:
        """Run one round in this thread with everything due now (``force``)."""
        self._run_round(force=True)

    def link_changed(self) -> None:
        for participant in list(self._participants):
            try:
                participant.link_changed()
            except Exception:
                _log.exception("redis store %s: reacting to the link failed", self.name)
        self._wake.set()

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def _run_round(self, force: bool) -> float:
        with self._round:
            now = time.monotonic()
            due = now + _IDLE
            for participant in list(self._participants):
                try:
                    due = min(due, participant.sync(now, force))
                except Exception:
                    _log.exception("redis store %s: background work failed", self.name)
            return due

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            due = self._run_round(force=False)
            delay = due - time.monotonic()
            if delay > 0:
                self._wake.wait(delay)

    def close(self) -> None:
        """Stop the thread, after a last round that sends what is pending."""
        self._closed = True
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        if self._participants:
            self._run_round(force=True)

    def after_fork(self) -> None:
        """In a forked child (threads do not fork): fresh locks, and a thread again."""
        self._round = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = None
        if self._participants and not self._closed:
            self.add(next(iter(self._participants)))
