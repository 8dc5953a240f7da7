"""The backends a store has made, by name: one registry per kind of policy.

Every kind (breakers, token buckets, retry budgets, bulkheads) is kept the same way:
made once per name and store, held weakly, and compared on reuse, so that two policies
of one name agree on their settings and on how the store shares them. Apart from the
store, because the transition listener reads the breakers' registry too, and because a
forked child resets every registry and backend through :class:`Backend`'s
``after_fork``, each resetting its own state.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

__all__ = ["Backend", "Registry"]


class Backend(Protocol):
    """What a registry needs of a backend."""

    @property
    def settings(self) -> object:
        """What two policies of one name must agree on."""
        ...

    def after_fork(self) -> None:
        """In a forked child (threads do not fork): reset this backend's own state,
        its locks (another thread may have held one at the fork) and whatever is the
        parent's (counts to report, leased tokens, slots held). No I/O here."""
        ...


B = TypeVar("B", bound=Backend)


class Registry(Generic[B]):
    """Backends by name: one per name and store, shared by policies of that name.

    Held weakly: a policy dropped by its owner (say, a per-host breaker evicted by
    ``per_key``) takes its backend with it, so a store serving many names does not grow
    without bound.
    """

    def __init__(self, what: str) -> None:
        self._what = what
        self._lock = threading.Lock()
        self.items: weakref.WeakValueDictionary[str, B] = weakref.WeakValueDictionary()
        self.variants: dict[int, object] = {}

    def get(
        self, name: str, settings: object, make: Callable[[], B], variant: object = None
    ) -> tuple[B, bool]:
        """The backend of ``name``, made if there is none. ``variant``: how the store
        shares it (say, ``sync_mode``), which must match too."""
        with self._lock:
            backend = self.items.get(name)
            if backend is None:
                backend = self.items[name] = make()
                self.variants[id(backend)] = variant
                weakref.finalize(backend, self.variants.pop, id(backend), None)
                return backend, True
        if backend.settings != settings:
            raise ValueError(
                f"{self._what} {name!r} already exists in this store with other settings "
                f"({backend.settings}); give this one another name or the same settings"
            )
        if self.variants.get(id(backend)) != variant:
            raise ValueError(
                f"{self._what} {name!r} already exists in this store with other store "
                f"options ({self.variants.get(id(backend))}, not {variant}); give this one "
                "another name or the same options"
            )
        return backend, False

    def after_fork(self) -> None:
        """In a forked child: a fresh lock, and every backend resets its own state."""
        self._lock = threading.Lock()
        for backend in list(self.items.values()):
            backend.after_fork()
