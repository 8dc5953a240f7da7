from __future__ import annotations

import pytest

from resilience._policies.events import GLOBAL_LISTENERS
from resilience.testing import FakeClock


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(autouse=True)
def _no_leftover_global_listeners():
    """A test that registers a global listener must remove it; leaks would slow or
    change every later test."""
    before = list(GLOBAL_LISTENERS)
    yield
    leaked = [listener for listener in GLOBAL_LISTENERS if listener not in before]
    GLOBAL_LISTENERS[:] = before
    assert not leaked, f"global listeners left registered: {leaked}"
