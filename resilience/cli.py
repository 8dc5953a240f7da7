"""The ``resilience`` command."""

from __future__ import annotations

import argparse
import os
import random
import sys
from collections.abc import Sequence

from . import CircuitBreaker, CircuitOpen, Constant, Event, Pipeline, Retry, listen
from .config import ENV_PREFIX, Registry
from .errors import ConfigError

__all__ = ["main"]


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Rows under headers, in columns as wide as their widest cell."""
    lines = [headers, *rows]
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(headers))]
    return "\n".join(
        "  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def _check_config(args: argparse.Namespace) -> int:
    """Read a config file, build its pipelines, and print them (or the first error)."""
    try:
        registry = Registry.from_file(args.file, env={} if args.no_env else None)
    except ConfigError as exc:
        print(f"{args.file}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"{args.file}: cannot read it: {exc.strerror or exc}", file=sys.stderr)
        return 1
    rows = []
    for name in registry:
        for position, policy in enumerate(registry.describe(name), start=1):
            rows.append(
                [
                    name if position == 1 else "",
                    str(position),
                    policy.entry,
                    policy.name,
                    policy.show(),
                ]
            )
    print(table(["PIPELINE", "#", "POLICY", "NAME", "SETTINGS"], rows))
    # The live pipelines' own description: the order mistakes it finds.
    for name in registry:
        for warning in registry.pipeline(name).describe().warnings:
            print(f"warning: pipelines.{name}: {warning}")
    store = registry.store
    if store is not None:
        print(f"store: {store!r}")
    count = len(registry)
    overrides = [] if args.no_env else [v for v in os.environ if v.startswith(ENV_PREFIX)]
    print(
        f"{args.file}: OK, {count} pipeline{'' if count == 1 else 's'}"
        + (f", with {len(overrides)} environment override(s)" if overrides else "")
    )
    return 0


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
    check = commands.add_parser(
        "check-config",
        help="check a config file and print its pipelines",
        description="Check a config file (TOML, YAML or JSON) and print the pipelines it "
        "defines, with every setting in force. Exits with 1 and the error on bad input.",
    )
    check.add_argument("file", help="the config file")
    check.add_argument(
        "--no-env", action="store_true", help="ignore RESILIENCE__* environment overrides"
    )
    check.set_defaults(run=_check_config)
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
