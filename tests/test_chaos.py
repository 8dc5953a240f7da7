"""Chaos: faults, latency and substitute results injected into a share of calls."""

from __future__ import annotations

import contextlib
from typing import Any

import anyio
import pytest

from resilience import (
    Chaos,
    Event,
    Fallback,
    LatencyInjected,
    Pipeline,
    Retry,
    Timeout,
    TimeoutExceeded,
)
from resilience._policies.chaos import INJECTED
from resilience.testing import FakeClock


def ok() -> str:
    return "ok"


async def aok() -> str:
    return "ok"


def outcomes(chaos: Chaos, n: int) -> list[str]:
    seen = []
    for _ in range(n):
        try:
            seen.append(chaos.call(ok))
        except ConnectionError:
            seen.append("fault")
    return seen


# -- arguments -------------------------------------------------------------------------


def test_exactly_one_kind_of_chaos() -> None:
    with pytest.raises(TypeError, match="exactly one of fault, latency and result, got none"):
        Chaos(0.5)
    with pytest.raises(TypeError, match="got fault and latency"):
        Chaos(0.5, fault=ValueError, latency=1)
    with pytest.raises(TypeError, match="got latency and result"):
        Chaos(0.5, latency=1, result=None)
    assert Chaos(0.5, result=None).injects == "result"  # None is a value like any other


@pytest.mark.parametrize("rate", [-0.1, 1.5, float("nan")])
def test_rate_must_be_a_share(rate: float) -> None:
    with pytest.raises(ValueError, match="rate must be"):
        Chaos.fault(rate, ValueError)


def test_bad_arguments_name_the_parameter() -> None:
    with pytest.raises(TypeError, match=r"rate must be a number, got '10%' \(str\)"):
        Chaos.fault("10%", ValueError)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="fault must be an exception, an exception class"):
        Chaos(0.5, fault=42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="latency must be greater than 0 seconds, got 0"):
        Chaos(0.5, latency=0)
    # The class methods name their own arguments.
    with pytest.raises(TypeError, match="exc must be an exception, an exception class"):
        Chaos.fault(0.5, 42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="seconds must be greater than 0 seconds, got 0"):
        Chaos.latency(0.5, 0)
    with pytest.raises(ValueError, match=r"seconds must be at most .* \(threading.TIMEOUT_MAX\)"):
        Chaos.latency(0.5, 1e12)
    with pytest.raises(TypeError, match="enabled must be True, False or a callable"):
        Chaos.result(0.5, 1, enabled="yes")
    with pytest.raises(TypeError, match=r"seed must be an int or None, got 1.5 \(float\)"):
        Chaos.result(0.5, 1, seed=1.5)
    chaos = Chaos.result(0.5, 1)
    with pytest.raises(TypeError, match="enabled must be True, False or a callable"):
        chaos.enabled = 1  # type: ignore[assignment]


# -- which calls -----------------------------------------------------------------------


def test_rate_zero_never_and_rate_one_always() -> None:
    assert outcomes(Chaos.fault(0.0, ConnectionError), 200) == ["ok"] * 200
    assert outcomes(Chaos.fault(1.0, ConnectionError), 200) == ["fault"] * 200


def test_share_of_calls_follows_the_rate_and_the_seed_repeats_it() -> None:
    first = outcomes(Chaos.fault(0.3, ConnectionError, seed=7), 10_000)
    again = outcomes(Chaos.fault(0.3, ConnectionError, seed=7), 10_000)
    other = outcomes(Chaos.fault(0.3, ConnectionError, seed=8), 10_000)
    assert first == again
    assert first != other
    share = first.count("fault") / len(first)
    assert abs(share - 0.3) < 0.015  # ~3.3 standard deviations of a binomial share


def test_enabled_switches_at_run_time() -> None:
    chaos = Chaos.fault(1.0, ConnectionError)
    assert chaos.enabled is True
    chaos.enabled = False
    assert chaos.enabled is False
    assert outcomes(chaos, 3) == ["ok"] * 3
    chaos.enabled = True
    assert outcomes(chaos, 3) == ["fault"] * 3
    flag = {"on": False}
    chaos.enabled = lambda: flag["on"]  # asked on every call: a feature flag, say
    assert outcomes(chaos, 2) == ["ok", "ok"]
    flag["on"] = True
    assert chaos.enabled is True
    assert outcomes(chaos, 2) == ["fault", "fault"]


def test_disabled_at_construction() -> None:
    assert outcomes(Chaos.fault(1.0, ConnectionError, enabled=False), 5) == ["ok"] * 5


# -- what is injected ------------------------------------------------------------------


def test_fault_from_a_class_is_a_new_exception_each_time() -> None:
    chaos = Chaos.fault(1.0, ConnectionError)
    raised = []
    for _ in range(2):
        with pytest.raises(ConnectionError) as info:
            chaos.call(ok)
        raised.append(info.value)
    assert raised[0] is not raised[1]
    assert str(raised[0]) == INJECTED


def test_fault_from_an_instance_is_copied() -> None:
    original = ConnectionError("db down")
    chaos = Chaos.fault(1.0, original)
    with pytest.raises(ConnectionError, match="db down") as info:
        chaos.call(ok)
    assert info.value is not original
    assert original.__traceback__ is None


def test_fault_from_a_class_that_needs_other_arguments() -> None:
    class Picky(Exception):
        def __init__(self) -> None:
            super().__init__("picky")

    with pytest.raises(Picky, match="picky"):
        Chaos.fault(1.0, Picky).call(ok)


def test_fault_from_a_callable() -> None:
    made = []

    def make() -> BaseException:
        made.append(1)
        return TimeoutError(f"fault {len(made)}")

    chaos = Chaos.fault(1.0, make)
    with pytest.raises(TimeoutError, match="fault 1"):
        chaos.call(ok)
    with pytest.raises(TimeoutError, match="fault 2"):
        chaos.call(ok)
    broken = Chaos.fault(1.0, lambda: "not an exception")  # type: ignore[arg-type,return-value]
    with pytest.raises(TypeError, match="fault\\(\\) must return an exception"):
        broken.call(ok)


def test_the_function_does_not_run_on_a_fault_or_a_result() -> None:
    ran = []

    def tracked() -> str:
        ran.append(1)
        return "real"

    with pytest.raises(ValueError):
        Chaos.fault(1.0, ValueError).call(tracked)
    assert Chaos.result(1.0, "fake").call(tracked) == "fake"
    assert ran == []


def test_latency_sleeps_on_the_clock_then_calls(clock: FakeClock) -> None:
    chaos = Chaos.latency(1.0, 2.5, clock=clock)
    assert chaos.call(ok) == "ok"
    assert clock.sleeps == [2.5]
    assert clock.monotonic() == 2.5


async def test_async_chaos(clock: FakeClock, anyio_backend: str) -> None:
    assert await Chaos.result(1.0, "fake").acall(aok) == "fake"
    with pytest.raises(ConnectionError):
        await Chaos.fault(1.0, ConnectionError).acall(aok)
    assert await Chaos.latency(1.0, 3, clock=clock).acall(aok) == "ok"
    assert clock.sleeps == [3.0]
    assert await Chaos.fault(0.0, ConnectionError).acall(aok) == "ok"


async def test_injected_latency_is_cut_by_a_timeout(anyio_backend: str) -> None:
    slow = Pipeline(Timeout(0.05), Chaos.latency(1.0, 30))
    with anyio.fail_after(5), pytest.raises(TimeoutExceeded):
        await slow.acall(aok)


def test_decorated_function_keeps_its_identity() -> None:
    @Chaos.result(1.0, 0)
    def compute(x: int) -> int:
        """Doubles."""
        return 2 * x

    assert compute(21) == 0
    assert compute.__name__ == "compute"
    assert compute.__doc__ == "Doubles."


# -- events and pipelines ----------------------------------------------------------------


def test_events_report_each_injection(clock: FakeClock) -> None:
    seen: list[Event] = []
    for chaos in (
        Chaos.fault(1.0, ConnectionError, name="f", clock=clock),
        Chaos.latency(1.0, 1.5, name="l", clock=clock),
        Chaos.result(1.0, 1, name="r", clock=clock),
        Chaos.result(0.0, 1, name="never", clock=clock),
    ):
        chaos.listen(seen.append)
        with contextlib.suppress(ConnectionError):
            chaos.call(ok)
    summary = [(e.kind, e.name, e.type, e.details, type(e.exception).__name__) for e in seen]
    assert summary == [
        ("chaos", "f", "fault", None, "ConnectionError"),
        ("chaos", "l", "latency", LatencyInjected(delay=1.5), "NoneType"),
        ("chaos", "r", "result", None, "NoneType"),
    ]


def test_retry_and_fallback_around_chaos(clock: FakeClock) -> None:
    # The point of chaos: check that the policies around the dependency cope.
    chaos = Chaos.fault(0.5, ConnectionError, seed=3)
    pipeline = Pipeline(Fallback("cached"), Retry(4, retry_on=ConnectionError, clock=clock), chaos)
    results: list[Any] = [pipeline.call(ok) for _ in range(200)]
    assert results.count("ok") > 180  # four tries each: 1 in 16 calls falls back
    assert "cached" in results


def test_repr() -> None:
    assert repr(Chaos.latency(0.25, 2, name="x")) == (
        "Chaos(0.25, latency=2.0, enabled=True, name='x')"
    )
