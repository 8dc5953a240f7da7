"""Where public objects say they live.

A class or function defined in a private module (``resilience._policies.breaker``) but
meant to be imported from a public one (``resilience``) reports the public module as its
``__module__``, as httpx does: reprs, tracebacks, docs and pickles then name the path
users import from, and the private layout can change without them noticing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = ["present_as"]


def _private(module: str) -> bool:
    return any(part.startswith("_") for part in module.split("."))


def present_as(public: str, namespace: Mapping[str, object], names: Iterable[str]) -> None:
    """Make each of ``names`` in ``namespace`` report ``public`` as its module when it is
    defined below it, in a private module or a public one further down (the shortest
    public path wins: ``resilience.CircuitOpen``, not ``resilience.errors.CircuitOpen``).
    Objects from elsewhere (another library's) keep theirs."""
    for name in names:
        obj = namespace[name]
        module = getattr(obj, "__module__", None)
        if not isinstance(module, str) or not (isinstance(obj, type) or callable(obj)):
            continue
        if module.startswith(public + ".") or (module != public and _private(module)):
            obj.__module__ = public
