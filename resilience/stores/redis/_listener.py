"""The transition listener: a thread that hears the fleet's breaker transitions.

Apart from the store: it is the one piece that holds a pub/sub connection, with its own
loop of subscribing, reading and resubscribing after an outage. It gets the few parts of
the store it needs (its prefix, sync client, link and breakers), not the store itself.
"""

from __future__ import annotations

import logging
import threading

from ._breaker import RedisBreaker
from ._clients import SyncClient, as_text, open_pubsub
from ._layout import breaker_name, glob_escape
from ._link import Link
from ._registry import Registry

__all__ = ["TransitionListener"]

_log = logging.getLogger("resilience")


class TransitionListener:
    """A thread that hears every breaker transition under the store's prefix (pub/sub)
    and tells the backend of that name, so each process emits ``state_change`` events
    for the fleet's transitions and answers ``state`` without asking Redis. Best
    effort: a lost message is made up for by the next reply."""

    def __init__(
        self, prefix: str, client: SyncClient, link: Link, breakers: Registry[RedisBreaker]
    ) -> None:
        self._prefix = prefix
        self._client = client
        self._link = link
        self._breakers = breakers
        self._stop = threading.Event()
        #: Set once the first subscription is in place, or failed.
        self.settled = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"resilience-redis-listener-{prefix}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        prefix = self._prefix
        link = self._link
        pattern = f"{glob_escape(prefix)}:cb:*:ev"
        failures = 0
        while not self._stop.is_set():
            if not link.up:
                self._stop.wait(0.1)
                continue
            generation = link.generation
            pubsub = None
            try:
                pubsub = open_pubsub(self._client)
                pubsub.psubscribe(pattern)
                failures = 0
                # A new link generation (Redis came back) means a new connection too.
                while not self._stop.is_set() and link.generation == generation:
                    message = pubsub.get_message(timeout=0.05)
                    if message is None:
                        continue
                    if message.get("type") == "pmessage":
                        self._deliver(as_text(message["channel"]), as_text(message["data"]))
                    elif message.get("type") == "psubscribe":
                        self._refresh_all()
                        self.settled.set()
            except Exception as exc:
                self.settled.set()
                failures += 1
                _log.debug("redis store %s: transition listener: %r", prefix, exc)
                self._stop.wait(min(0.1 * 2**failures, 5.0))
            finally:
                if pubsub is not None:
                    try:
                        pubsub.close()
                    except Exception:  # a broken connection may fail to close
                        _log.debug("redis store %s: closing pub/sub failed", prefix)

    def _refresh_all(self) -> None:
        """Messages may have been missed before (re)subscribing: learn the state now.
        (A function of its own, so that this thread's frame keeps no backend alive.)"""
        for backend in list(self._breakers.items.values()):
            backend.refresh()

    def _deliver(self, channel: str, data: str) -> None:
        backend = self._breakers.items.get(breaker_name(self._prefix, channel))
        if backend is None:
            return
        try:
            code, epoch, remaining, _ = (int(part) for part in data.split())
        except ValueError:
            _log.warning("redis store %s: bad transition message %r", self._prefix, data)
            return
        backend.learn(code, epoch, remaining)
