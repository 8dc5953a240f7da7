"""The ``resilience`` command."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..config._registry import ENV_PREFIX, Registry, load_file
from ..config._registry import _parse as parse_config
from ..errors import ConfigError

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


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be greater than 0: {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
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
        redis=args.redis,
        workers=args.workers,
    )
    try:
        return run(options)
    except (ConfigError, KeyError, OSError) as exc:
        print(f"resilience demo: {exc}", file=sys.stderr)
        return 1


# -- status and manual control, against a Redis store ----------------------------------------


class _NoStore(Exception):
    """The command was not told which store to use."""


def _store_settings(args: argparse.Namespace) -> tuple[str, str]:
    """The Redis URL and key prefix: ``--redis`` (and ``--prefix``), else the ``[store]``
    section of ``--config``, else the RESILIENCE__STORE__REDIS_URL environment."""
    if args.redis is not None:
        return args.redis, args.prefix or "resilience"
    if args.config is not None:
        store = dict(parse_config(load_file(args.config), os.environ).store or {})
        if store.get("redis_url") is None:
            raise _NoStore(f"{args.config} has no [store] redis_url")
        return str(store["redis_url"]), args.prefix or str(store.get("prefix", "resilience"))
    url = os.environ.get(f"{ENV_PREFIX}STORE__REDIS_URL")
    if url:
        prefix = os.environ.get(f"{ENV_PREFIX}STORE__PREFIX", "resilience")
        return url, args.prefix or prefix
    raise _NoStore(
        "which Redis? give --redis URL, or --config FILE with a [store] redis_url, "
        f"or set {ENV_PREFIX}STORE__REDIS_URL"
    )


def _with_store(run: Any) -> Any:
    """Run ``run(args, store, where)`` with the store the arguments name; errors become
    a message and exit status 1."""

    def command(args: argparse.Namespace) -> int:
        try:
            url, prefix = _store_settings(args)
        except (_NoStore, ConfigError) as exc:
            print(f"resilience {args.command}: {exc}", file=sys.stderr)
            return 1
        except OSError as exc:
            print(f"resilience {args.command}: cannot read {args.config}: {exc}", file=sys.stderr)
            return 1
        try:
            from ..stores.redis import RedisStore
        except ImportError as exc:
            print(f"resilience {args.command}: {exc}", file=sys.stderr)
            return 1
        import redis

        where = f"{_redact(url)} (prefix {prefix!r})"
        try:
            store = RedisStore.from_url(url, prefix, timeout=args.timeout)
        except (ValueError, TypeError) as exc:
            print(f"resilience {args.command}: {exc}", file=sys.stderr)
            return 1
        try:
            return int(run(args, store, where))
        except redis.RedisError as exc:
            print(f"resilience {args.command}: Redis at {where}: {exc}", file=sys.stderr)
            return 1
        finally:
            store.close()

    return command


def _redact(url: str) -> str:
    """The URL without its password."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not sep or not at:
        return url
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user + ':***' if user else '***'}@{host}"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"


def _status(args: argparse.Namespace, store: Any, where: str) -> int:
    breakers = store.breakers()
    buckets = store.buckets()
    bulkheads = store.bulkheads()
    if args.json:
        print(
            json.dumps(
                {
                    "store": where,
                    "breakers": [dataclasses.asdict(b) for b in breakers],
                    "buckets": [dataclasses.asdict(b) for b in buckets],
                    "bulkheads": [dataclasses.asdict(b) for b in bulkheads],
                },
                indent=2,
            )
        )
        return 0
    print(f"store: Redis at {where}")
    if breakers:
        rows = [
            [
                b.name,
                b.state,
                _seconds(b.retry_after),
                str(b.calls),
                str(b.failures),
                f"{b.failure_rate:.0%}",
                str(b.slow_calls),
                b.window or "-",
                str(b.consecutive_opens),
            ]
            for b in breakers
        ]
        headers = ["BREAKER", "STATE", "TRIAL IN", "CALLS", "FAILURES", "RATE", "SLOW"]
        print(table([*headers, "WINDOW", "OPENS"], rows))
    else:
        print("no circuit breakers")
    if buckets:
        rows = [[b.key, f"{b.tokens:.1f}", f"{b.burst:g}", f"{b.rate:g}/s"] for b in buckets]
        print(table(["TOKEN BUCKET", "TOKENS", "BURST", "RATE"], rows))
    else:
        print("no token buckets below their burst (a full bucket has no state in Redis)")
    if bulkheads:
        rows = [[b.key, str(b.held), str(b.instances)] for b in bulkheads]
        print(table(["BULKHEAD", "HELD", "INSTANCES"], rows))
    else:
        print("no shared bulkheads in use")
    return 0


def _force(args: argparse.Namespace, store: Any, where: str) -> int:
    before = store.breaker_status(args.name)
    after = store.force_breaker(args.name, args.command)
    was = before.state if before is not None else "unknown to Redis until now"
    print(f"circuit breaker {args.name}: {after.state} (was {was}) in {where}")
    return 0


def _store_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--redis", metavar="URL", help="the Redis store (redis://host:port/db)")
    parser.add_argument("--prefix", help="the store's key prefix (default resilience)")
    parser.add_argument(
        "--config", type=Path, metavar="FILE", help="take the store from this config's [store]"
    )
    parser.add_argument(
        "--timeout", type=_positive, default=2.0, help="seconds to wait for Redis (default 2)"
    )


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
        "--redis",
        metavar="URL",
        help="run the clients in worker processes that share their breaker and token "
        "bucket through this Redis",
    )
    demo.add_argument(
        "--workers",
        type=_positive_int,
        default=3,
        help="worker processes with --redis (default 3)",
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
    status = commands.add_parser(
        "status",
        help="show the shared breakers and token buckets of a Redis store",
        description="List every circuit breaker and token bucket that a Redis store holds "
        "under its prefix, with its state as callers meet it now.",
    )
    _store_options(status)
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(run=_with_store(_status))
    for action, text in (
        ("open", "force a shared breaker open (every instance rejects until closed)"),
        ("close", "close a shared breaker, with a fresh window"),
        ("reset", "reset a shared breaker: closed, its open streak forgotten"),
    ):
        force = commands.add_parser(action, help=text, description=text[0].upper() + text[1:] + ".")
        force.add_argument("name", help="the breaker's name (or key) in the store")
        _store_options(force)
        force.set_defaults(run=_with_store(_force))
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
