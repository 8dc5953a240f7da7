"""per_key: one policy per key (per host, per tenant...), created on first use."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

from .._core.validation import check_positive_int, show
from .events import Event, Listener
from .policy import AsyncRunner, Policy, Runner, composing_call_chain

__all__ = ["KeyedPolicy", "per_key"]


class KeyedPolicy(Policy):
    """A policy per key, built by ``factory(key)`` on first use and kept for the
    ``max_keys`` most recently used keys (the least recently used is dropped, state
    and all, when a new key would exceed it).

    ``key(*args, **kwargs)`` sees the protected call's arguments (decorated or through
    ``call``/``acall``) and returns a hashable key. Listeners of the keyed policy hear the
    events of every per-key policy, present and future.
    """

    kind = "keyed"

    def __init__(
        self,
        factory: Callable[[Any], Policy],
        *,
        key: Callable[..., Hashable],
        max_keys: int = 1024,
        name: str | None = None,
    ) -> None:
        super().__init__(name, None)
        if not callable(factory):
            raise TypeError(f"factory must be a callable returning a policy, got {show(factory)}")
        if not callable(key):
            raise TypeError(f"key must be a callable of the call's arguments, got {show(key)}")
        self._factory = factory
        self._key = key
        self.max_keys = check_positive_int("max_keys", max_keys)
        self._lock = threading.Lock()
        self._policies: OrderedDict[Hashable, Policy] = OrderedDict()
        # While this keyed policy has listeners, each per-key policy forwards its events
        # here; without listeners nothing is attached, so per-key calls build no events.
        self._unforward: dict[Hashable, Callable[[], None]] = {}
        self._compose()

    def get(self, key: Hashable) -> Policy:
        """The policy for ``key``, created (and the oldest key dropped) if needed."""
        with self._lock:
            policy = self._policies.get(key)
            if policy is not None:
                self._policies.move_to_end(key)
                return policy
            policy = self._factory(key)
            if not isinstance(policy, Policy):
                raise TypeError(f"factory({key!r}) must return a policy, got {policy!r}")
            if self._listeners:
                self._unforward[key] = policy.listen(self._forward)
            self._policies[key] = policy
            if len(self._policies) > self.max_keys:
                oldest, _ = self._policies.popitem(last=False)
                self._unforward.pop(oldest, None)
            return policy

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Hear the events of every per-key policy, present and future."""
        stop = super().listen(listener)
        with self._lock:
            for key, policy in self._policies.items():
                if key not in self._unforward:
                    self._unforward[key] = policy.listen(self._forward)

        def unsubscribe() -> None:
            stop()
            with self._lock:
                if not self._listeners:
                    for unforward in self._unforward.values():
                        unforward()
                    self._unforward.clear()

        return unsubscribe

    def _description(self) -> dict[str, Any]:
        settings = super()._description()
        settings["keys"] = len(self._policies)
        return settings

    def keys(self) -> list[Hashable]:
        """The keys that have a policy now, least recently used first."""
        with self._lock:
            return list(self._policies)

    def __len__(self) -> int:
        return len(self._policies)

    def _forward(self, event: Event) -> None:
        # Per-key policies' events for this keyed policy's own listeners; global
        # listeners already hear them from the per-key policy itself.
        for listener in tuple(self._listeners):
            listener(event)

    def _sync_runner(self, inner: Runner) -> Runner:
        skip = 1 if composing_call_chain() else 0
        key, get = self._key, self.get

        def run(*args: Any, **kwargs: Any) -> Any:
            policy = get(key(*args[skip:], **kwargs) if skip else key(*args, **kwargs))
            # The per-key policy runs ``inner`` as its call target, through the chain it
            # composed once for call(); nothing is composed per call.
            return policy._run(inner, *args, **kwargs)

        return run

    def _async_runner(self, inner: AsyncRunner) -> AsyncRunner:
        skip = 1 if composing_call_chain() else 0
        key, get = self._key, self.get

        async def run(*args: Any, **kwargs: Any) -> Any:
            policy = get(key(*args[skip:], **kwargs) if skip else key(*args, **kwargs))
            return await policy._arun(inner, *args, **kwargs)

        return run

    def __repr__(self) -> str:
        return (
            f"KeyedPolicy(keys={len(self._policies)}, max_keys={self.max_keys}, name={self.name!r})"
        )


def per_key(
    factory: Callable[[Any], Policy],
    *,
    key: Callable[..., Hashable],
    max_keys: int = 1024,
    name: str | None = None,
) -> KeyedPolicy:
    """One policy per key: ``per_key(lambda host: CircuitBreaker(host), key=host_of)``."""
    return KeyedPolicy(factory, key=key, max_keys=max_keys, name=name)
