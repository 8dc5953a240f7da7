"""Shared machinery of the benchmark suite: cases, batches, calibration, machine facts.

Every benchmark measures one *case*: a way of calling ``f(x) = x + 1`` (bare, through one
of our policies, or through a peer library). A case is timed in *batches*: one round runs
``BATCH`` calls in a tight loop (sync), or ``BATCH`` awaits inside one coroutine driven by
``loop.run_until_complete`` on an event loop created once for the session (async;
pytest-benchmark has no async support). ``benchmark.pedantic`` runs many rounds, and
``benchmarks/report.py`` divides each round's time by the batch size (stored in
``extra_info``) to get nanoseconds per call. The loop (and for async the task that
runs the batch) costs the same in every case, so it cancels out of the overhead,
``time per call - time per bare call``.

Run with ``pytest benchmarks --benchmark-only --benchmark-json=out.json``. Knobs (environment):

- ``BENCH_BATCH``: calls per round (default 1000);
- ``BENCH_SECONDS``: target time per case, warm-up included (default 1.5);
- ``BENCH_MAX_ROUNDS`` / ``BENCH_MIN_ROUNDS``: bounds on rounds per case (default 1500 / 20).
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
import platform
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import stamina

BATCH = int(os.environ.get("BENCH_BATCH", "1000"))
CASE_SECONDS = float(os.environ.get("BENCH_SECONDS", "1.5"))
MAX_ROUNDS = int(os.environ.get("BENCH_MAX_ROUNDS", "1500"))
MIN_ROUNDS = int(os.environ.get("BENCH_MIN_ROUNDS", "20"))

#: Distributions whose versions go into the JSON (and so into the report).
VERSIONED = (
    "resiliency",
    "pybreaker",
    "circuitbreaker",
    "tenacity",
    "stamina",
    "backoff",
    "wrapt",
    "anyio",
    "limits",
    "pyrate-limiter",  # imported as pyrate_limiter
    "aiolimiter",
    "hyx",  # optional: "not installed" if absent (its benchmark row is then skipped)
    "pytest-benchmark",
)


# -- cases ---------------------------------------------------------------------------

#: What a case's ``make()`` returns: a callable ``g`` called as ``g(1)`` (a decorated
#: function, or a coroutine function for async cases), or a pair ``(call, fn)`` called as
#: ``call(fn, 1)`` (``policy.call`` / ``policy.acall`` and the peers' equivalents).
Target = Callable[..., Any] | tuple[Callable[..., Any], Callable[..., Any]]

ROLES = ("baseline", "ours", "peer", "peer-stack", "alternative")


@dataclass(frozen=True)
class Case:
    """One row of the report.

    ``role`` is ``baseline`` (the bare call), ``ours``, ``peer`` (another library doing
    the same work), ``peer-stack`` (peers composed into the equivalent of our pipeline)
    or ``alternative`` (another way to build our decorator). ``primary`` marks our row
    that the targets are checked on.
    """

    group: str
    id: str
    label: str
    role: str
    make: Callable[[], Target]
    primary: bool = False

    @property
    def is_async(self) -> bool:
        return self.group.endswith("-async")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize ``case`` from the module's ``CASES``, in report order.

    ``CASES`` maps a group (``breaker-sync``...; a name ending in ``-async`` times
    coroutine functions) to rows ``(id, label, role, make)``, plus ``"primary"`` as a
    fifth item on the row the targets are checked on. Every group has one ``baseline``.
    """
    if "case" not in metafunc.fixturenames:
        return
    params = []
    for group, rows in metafunc.module.CASES.items():
        for row in rows:
            id_, label, role, make, *flags = row
            if role not in ROLES:
                raise ValueError(f"{group}/{id_}: unknown role {role!r}")
            case = Case(group, id_, label, role, make, primary="primary" in flags)
            params.append(pytest.param(case, id=f"{group}:{id_}"))
    metafunc.parametrize("case", params)


# -- batches -------------------------------------------------------------------------


def sync_batch(target: Target, n: int) -> Callable[[], Any]:
    rng = range(n)
    if isinstance(target, tuple):
        call, fn = target

        def call_batch() -> Any:
            result = None
            for _ in rng:
                result = call(fn, 1)
            return result

        return call_batch

    g = target

    def batch() -> Any:
        result = None
        for _ in rng:
            result = g(1)
        return result

    return batch


def async_batch(target: Target, n: int, loop: asyncio.AbstractEventLoop) -> Callable[[], Any]:
    rng = range(n)
    run = loop.run_until_complete
    if isinstance(target, tuple):
        acall, afn = target

        async def acall_batch() -> Any:
            result = None
            for _ in rng:
                result = await acall(afn, 1)
            return result

        return lambda: run(acall_batch())

    ag: Callable[[int], Awaitable[Any]] = target

    async def abatch() -> Any:
        result = None
        for _ in rng:
            result = await ag(1)
        return result

    return lambda: run(abatch())


# -- fixtures ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def event_loop_for_batches() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(scope="session", autouse=True)
def _stamina_is_active() -> None:
    # stamina can be switched off (or into test mode) globally; then it would not retry
    # and its numbers would not be comparable. It is on by default: make sure.
    if not stamina.is_active() or stamina.is_testing():
        raise RuntimeError("stamina is inactive or in testing mode; its numbers would lie")


@pytest.fixture
def run_case(
    benchmark: Any, event_loop_for_batches: asyncio.AbstractEventLoop
) -> Callable[[Case], None]:
    """Time one case: validate it, pick the number of rounds, and run them."""

    def run(case: Case) -> None:
        target = case.make()
        if case.is_async:
            batch = async_batch(target, BATCH, event_loop_for_batches)
        else:
            batch = sync_batch(target, BATCH)
        # One batch validates the case (and warms it up) before anything is timed.
        result = batch()
        if result != 2:
            raise AssertionError(f"{case.label} returned {result!r}, expected 2")
        benchmark.group = case.group
        benchmark.extra_info.update(
            group=case.group,
            id=case.id,
            case=case.label,
            role=case.role,
            primary=case.primary,
            form="call" if isinstance(target, tuple) else "decorated",
            batch=BATCH,
        )
        if benchmark.disabled:  # --benchmark-disable: a smoke run, validation only
            benchmark.pedantic(batch, rounds=1, iterations=1)
            return
        start = time.perf_counter()
        batch()
        per_round = max(time.perf_counter() - start, 1e-9)
        rounds = int(CASE_SECONDS / per_round)
        rounds = max(MIN_ROUNDS, min(MAX_ROUNDS, rounds))
        warmup = max(1, rounds // 20)
        benchmark.extra_info["rounds"] = rounds
        benchmark.pedantic(batch, rounds=rounds, iterations=1, warmup_rounds=warmup)

    return run


# -- machine facts, for the report -----------------------------------------------------

_load_at_start: tuple[float, float, float] | None = None


def pytest_sessionstart(session: pytest.Session) -> None:
    global _load_at_start
    if hasattr(os, "getloadavg"):
        _load_at_start = os.getloadavg()


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def pytest_benchmark_update_machine_info(config: Any, machine_info: dict[str, Any]) -> None:
    versions = {}
    for dist in VERSIONED:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    machine_info["resilience_bench"] = {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "loadavg_at_start": _load_at_start,
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "versions": versions,
        "stamina_active": stamina.is_active(),
        "batch": BATCH,
        "case_seconds": CASE_SECONDS,
    }


def pytest_benchmark_update_json(config: Any, benchmarks: Any, output_json: dict[str, Any]) -> None:
    facts = output_json.get("machine_info", {}).get("resilience_bench")
    if facts is not None and hasattr(os, "getloadavg"):
        facts["loadavg_at_end"] = os.getloadavg()
