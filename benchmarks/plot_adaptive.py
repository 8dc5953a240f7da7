"""Draw docs/adaptive-concurrency.png: AdaptiveConcurrency following a server's capacity.

Runs ``adaptive_sim.simulate`` (virtual time, real trio tasks; see that module) for the
Gradient and AIMD algorithms on a server whose capacity drops from 40 to 20 workers
at 40 s and comes back at 80 s, offered 1.5 times what it can serve at full capacity,
and plots the limit (with the capacity, and the gradient's expected settling point
``tolerance * capacity + queue_size``), the latency and the goodput.

    .venv/bin/python benchmarks/plot_adaptive.py            # writes docs/adaptive-concurrency.png
    .venv/bin/python benchmarks/plot_adaptive.py out.png    # elsewhere

Needs matplotlib (in the dev extra, Python 3.11+).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from adaptive_sim import Trace, simulate

from resilience import AIMD, Gradient

ROOT = Path(__file__).resolve().parent.parent
SCHEDULE = ((0.0, 40), (40.0, 20), (80.0, 40))
SERVICE = 0.05


def main(out: Path) -> None:
    gradient = Gradient()
    runs: dict[str, Trace] = {
        "Gradient()": simulate(gradient, schedule=SCHEDULE, service=SERVICE, seconds=120),
        "AIMD(slow_call_duration=0.1)": simulate(
            AIMD(slow_call_duration=0.1), schedule=SCHEDULE, service=SERVICE, seconds=120
        ),
    }
    fig, (limits, latency, goodput) = plt.subplots(
        3, 1, figsize=(8, 8.5), sharex=True, gridspec_kw={"height_ratios": [2, 1, 1]}
    )
    first = next(iter(runs.values()))
    limits.step(first.times, first.capacities, where="post", color="black", label="capacity")
    settle = [
        gradient.tolerance * c + max(4.0, math.sqrt(gradient.tolerance * c))
        for c in first.capacities
    ]
    limits.step(
        first.times,
        settle,
        where="post",
        color="grey",
        linestyle=":",
        label="tolerance x capacity + queue",
    )
    for label, trace in runs.items():
        limits.plot(trace.times, trace.limits, label=label)
        latency.plot(trace.times, [v * 1000 for v in trace.latencies], label=label)
        goodput.plot(trace.times, trace.goodput, label=label)
    limits.set_ylabel("concurrency limit")
    limits.set_title(
        "AdaptiveConcurrency on a server of 40 workers (20 from 40 s to 80 s),\n"
        "offered 1.5x what it can serve; each request takes 50 ms of a worker"
    )
    limits.legend(loc="upper right", fontsize="small")
    latency.axhline(SERVICE * 1000, color="black", linewidth=0.8, label="service time")
    latency.set_ylabel("latency (ms)")
    latency.set_ylim(0, 250)
    latency.legend(loc="upper right", fontsize="small")
    goodput.step(
        first.times,
        [c / SERVICE for c in first.capacities],
        where="post",
        color="black",
        linewidth=0.8,
        label="what the server can serve",
    )
    goodput.set_ylabel("successes / s")
    goodput.set_xlabel("seconds (virtual time)")
    goodput.legend(loc="lower right", fontsize="small")
    for axis in (limits, latency, goodput):
        axis.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    for label, trace in runs.items():
        print(f"{label}: ok={trace.ok} shed={trace.shed} dropped={trace.dropped}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "adaptive-concurrency.png")
