"""Named pipelines from configuration: ``Registry`` reads TOML, YAML, JSON or a dict
(with defaults per kind, inheritance and ``RESILIENCE__`` environment overrides), builds
the pipelines, and reloads them in place.

``registry`` holds the Registry; ``schema`` what each kind of policy accepts and how it
is built and reconfigured; ``values`` the readers of single values (durations, rates).
"""

from __future__ import annotations

from .._core.naming import present_as
from ._registry import ENV_PREFIX, Change, PolicyDescription, Registry

__all__ = ["ENV_PREFIX", "Change", "PolicyDescription", "Registry"]

present_as("resilience.config", globals(), __all__)
