"""Calls that hold a bulkhead's slots in threads of their own until each is let go."""

from __future__ import annotations

import threading
from typing import Any


class Holders:
    """``count`` calls through ``policy.call``, each in its own thread, all running when
    the constructor returns; ``finish(i)`` lets call ``i`` return and waits for it."""

    def __init__(self, policy: Any, count: int) -> None:
        self._release = [threading.Event() for _ in range(count)]
        running = threading.Barrier(count + 1)

        def hold(event: threading.Event) -> None:
            running.wait(5)
            event.wait(5)

        self._threads = [
            threading.Thread(target=policy.call, args=(hold, event)) for event in self._release
        ]
        for thread in self._threads:
            thread.start()
        running.wait(5)

    def finish(self, index: int) -> None:
        self._release[index].set()
        self._threads[index].join(5)
