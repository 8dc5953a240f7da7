"""The breaker reference model of ``tests/test_breaker_model.py``, against Redis.

The same hypothesis state machine drives a breaker whose state lives in Redis (on the
machine's FakeClock, which the scripts then use instead of Redis ``TIME``) and must
agree with the model, and so with the in-memory breaker, at every step: admissions,
``retry_after``, states, metrics and events.
"""

from __future__ import annotations

import uuid

import pytest
import test_breaker_model as model
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from resilience.stores.redis import RedisStore

SETTINGS = settings(
    max_examples=25,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def machine_on(url: str, base: type[model.BreakerMachine]) -> type[model.BreakerMachine]:
    class RedisMachine(base):  # type: ignore[valid-type,misc]
        def make_store(self) -> RedisStore:
            # Trials held across steps must not lose their lease on virtual time.
            self.store = RedisStore.from_url(
                url, prefix=f"model-{uuid.uuid4().hex[:8]}", timeout=2.0, trial_lease=1e6
            )
            return self.store

        def teardown(self) -> None:
            try:
                super().teardown()
            finally:
                if self.breaker is not None:
                    self.store.close()

    return RedisMachine


@pytest.mark.parametrize(
    "base", [model.TimeWindowMachine, model.CountWindowMachine], ids=["time", "count"]
)
def test_redis_breaker_agrees_with_the_model(
    redis_url: str, base: type[model.BreakerMachine]
) -> None:
    run_state_machine_as_test(machine_on(redis_url, base), settings=SETTINGS)


@pytest.mark.parametrize("name", list(model.SCENARIOS))
def test_replayed_scenario_on_redis(redis_url: str, name: str) -> None:
    model.replay(machine_on(redis_url, model.BreakerMachine)(), name)
