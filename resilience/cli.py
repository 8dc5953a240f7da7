"""The ``resilience`` command."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

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


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be greater than 0: {text!r}")
    return value


def _demo(args: argparse.Namespace) -> int:
    """The demo: see ``_demo``."""
    from ._demo import DemoOptions, run

    options = DemoOptions(
        duration=args.duration,
        rate=args.rate,
        seed=args.seed,
        config=args.config,
        pipeline=args.pipeline,
        live=args.live,
    )
    try:
        return run(options)
    except (ConfigError, KeyError) as exc:
        print(f"resilience demo: {exc}", file=sys.stderr)
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="resilience", description="Resilience policies for outbound calls."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo",
        help="watch a pipeline protect a client from a flaky upstream",
        description="Start two flaky HTTP upstreams on 127.0.0.1 and send them the same "
        "requests, through a pipeline and without one; show live what every policy does, "
        "then compare success rate and latency. Needs the cli extra.",
    )
    demo.add_argument(
        "--duration", type=_positive, default=20.0, help="seconds to run (default 20)"
    )
    demo.add_argument(
        "--rate", type=_positive, default=30.0, help="requests per second per client (default 30)"
    )
    demo.add_argument("--seed", type=int, default=1, help="random seed of the upstream (default 1)")
    demo.add_argument(
        "--config",
        type=Path,
        default=None,
        help="a config file to take the pipeline from (default: the bundled demo.toml)",
    )
    demo.add_argument(
        "--pipeline",
        default="upstream",
        help="the pipeline of the config to use (default upstream)",
    )
    demo.add_argument(
        "--live",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="redraw in place (default: when the output is a terminal)",
    )
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
