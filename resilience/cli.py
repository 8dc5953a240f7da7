"""The ``resilience`` command."""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Sequence

from . import CircuitBreaker, CircuitOpen, Constant, Event, Pipeline, Retry, listen

__all__ = ["main"]


def _demo(args: argparse.Namespace) -> int:
    """A flaky dependency behind Retry + CircuitBreaker, narrated through events."""
    rng = random.Random(args.seed)
    healthy = True

    def dependency(i: int) -> str:
        if not healthy or rng.random() < 0.2:
            raise ConnectionError(f"request {i}: connection refused")
        return f"request {i}: ok"

    breaker = CircuitBreaker(
        "dependency", minimum_calls=5, failure_rate=0.5, window=10.0, open_for=0.2
    )
    pipeline = Pipeline(Retry(3, backoff=Constant(0.01), name="dependency"), breaker)

    def narrate(event: Event) -> None:
        if event.type == "state_change":
            print(f"  [breaker] {event.from_state} -> {event.to_state}")
        elif event.type == "retry":
            print(f"  [retry]   attempt {event.attempt} failed ({event.exception}); retrying")

    stop = listen(narrate)
    try:
        for i in range(args.calls):
            healthy = not (args.calls // 3 <= i < 2 * args.calls // 3)
            if i == args.calls // 3:
                print("-- the dependency goes down --")
            if i == 2 * args.calls // 3:
                print("-- the dependency recovers --")
                import time

                time.sleep(0.25)  # let the breaker's open period pass
            try:
                print(pipeline.call(dependency, i))
            except CircuitOpen as exc:
                print(f"request {i}: rejected by the open breaker: {exc}")
            except ConnectionError as exc:
                print(f"request {i}: failed after retries: {exc}")
    finally:
        stop()
    print(f"breaker at the end: {breaker.state}; window: {breaker.metrics()}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="resilience", description="Resilience policies for outbound calls."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="watch retry and a circuit breaker at work")
    demo.add_argument("--calls", type=int, default=30, help="number of calls (default 30)")
    demo.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    demo.set_defaults(run=_demo)
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
