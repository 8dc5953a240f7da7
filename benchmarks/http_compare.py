"""Each HTTP integration against its bare client, two ways that a busy machine does not
skew, and the 95% target checked on both.

Usage (from the repository root)::

    .venv/bin/python benchmarks/http_compare.py                 # both measures, all clients
    .venv/bin/python benchmarks/http_compare.py --time          # wall time only (seconds)
    .venv/bin/python benchmarks/http_compare.py --instructions  # callgrind only (minutes)
    .venv/bin/python benchmarks/http_compare.py --check aiohttp # exit 1 on a miss; kinds

Both send GET requests, one after the other, to the local server of
``test_bench_http.py`` (a process of its own) through the pipeline of that file
(``Retry, CircuitBreaker, TokenBucket, Bulkhead``, per host):

- *interleaved wall time*: ``ROUNDS`` rounds; in each, every client of a kind sends
  ``PER_ROUND`` requests, one client after the other, so that load from other work
  falls on all of them alike. A client's ratio is the median over rounds of its round
  time divided by the bare client's in the same round; requests per second relative
  to bare are its inverse.
- *instructions per request* (valgrind's callgrind, needs valgrind): a child process
  per client runs ``SMALL`` and then ``LARGE`` requests under callgrind; the
  difference of the counts divided by ``LARGE - SMALL`` is what one more request costs,
  start-up excluded. Only the client is counted (the server runs outside valgrind).

The target: through the resilient transport, at least 95% of the bare client's
requests per second (a ratio of at most 1/0.95); checked on httpx, sync and async.
aiohttp's rows are shown for comparison (its own cost of any middleware is a row).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SMALL, LARGE = 200, 1200
ROUNDS, PER_ROUND = 40, 100
TARGET = 1 / 0.95
CHECKED = ("httpx-sync", "httpx-async")

KINDS = {
    "httpx-sync": ["bare", "ours"],
    "httpx-async": ["bare", "ours"],
    "aiohttp": ["bare", "noop-middleware", "ours"],
}


def opened(kind: str, variant: str, url: str) -> tuple[Callable[[int], Any], Any]:
    """``(send, close)``: ``send(n)`` sends ``n`` requests through the client (a
    coroutine for async kinds); ``close()`` closes it (a coroutine too, then)."""
    sys.path.insert(0, str(HERE))
    from test_bench_http import _noop_middleware, pipeline

    if kind == "httpx-sync":
        import httpx

        from resilience.http.httpx import ResilientTransport

        transport: Any = httpx.HTTPTransport()
        if variant == "ours":
            transport = ResilientTransport(pipeline(), transport)
        sync_client = httpx.Client(transport=transport)

        def send(n: int) -> None:
            for _ in range(n):
                sync_client.get(url).read()

        return send, sync_client.close
    if kind == "httpx-async":
        import httpx

        from resilience.http.httpx import AsyncResilientTransport

        transport = httpx.AsyncHTTPTransport()
        if variant == "ours":
            transport = AsyncResilientTransport(pipeline(), transport)
        async_client = httpx.AsyncClient(transport=transport)

        async def asend(n: int) -> None:
            for _ in range(n):
                (await async_client.get(url)).read()

        return asend, async_client.aclose
    import aiohttp

    from resilience.http.aiohttp import ResilienceMiddleware

    middlewares: Any = {
        "bare": (),
        "noop-middleware": (_noop_middleware,),
        "ours": (ResilienceMiddleware(pipeline()),),
    }[variant]
    session: list[aiohttp.ClientSession] = []

    async def aiohttp_send(n: int) -> None:
        if not session:  # made on the running loop
            session.append(aiohttp.ClientSession(middlewares=middlewares))
        for _ in range(n):
            async with session[0].get(url) as response:
                await response.read()

    async def aiohttp_close() -> None:
        if session:
            await session[0].close()

    return aiohttp_send, aiohttp_close


def client(kind: str, variant: str, url: str, n: int) -> None:
    """Send ``n`` requests (in the child process that callgrind measures)."""
    send, close = opened(kind, variant, url)
    if kind == "httpx-sync":
        send(n)
        close()
        return

    async def run() -> None:
        await send(n)
        await close()

    asyncio.run(run())


def interleaved(kind: str, url: str) -> dict[str, float]:
    """Each variant's median round-time ratio to bare, rounds interleaved."""
    clients = {variant: opened(kind, variant, url) for variant in KINDS[kind]}
    loop = asyncio.new_event_loop()

    def timed(send: Callable[[int], Any], n: int) -> float:
        start = time.perf_counter()
        if kind == "httpx-sync":
            send(n)
        else:
            loop.run_until_complete(send(n))
        return time.perf_counter() - start

    try:
        for send, _ in clients.values():
            timed(send, PER_ROUND)  # connect and warm up
        ratios: dict[str, list[float]] = {variant: [] for variant in clients}
        for _ in range(ROUNDS):
            times = {variant: timed(send, PER_ROUND) for variant, (send, _) in clients.items()}
            for variant, seconds in times.items():
                ratios[variant].append(seconds / times["bare"])
        return {variant: statistics.median(values) for variant, values in ratios.items()}
    finally:
        for _, close in clients.values():
            closing = close()
            if closing is not None:
                loop.run_until_complete(closing)
        loop.close()


def count(kind: str, variant: str, url: str, n: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={tmp}/out",
                sys.executable,
                __file__,
                "--client",
                kind,
                variant,
                url,
                str(n),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count in callgrind's output:\n{done.stderr}")
    return int(found.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kinds", nargs="*", help=f"any of {', '.join(KINDS)} (default: all)")
    parser.add_argument("--time", action="store_true", help="interleaved wall time only")
    parser.add_argument("--instructions", action="store_true", help="callgrind only")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args()
    kinds = args.kinds or list(KINDS)
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        parser.error(f"unknown kinds: {', '.join(unknown)}")
    both = not (args.time or args.instructions)
    sys.path.insert(0, str(HERE))
    from test_bench_http import _serve

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/"
    server = multiprocessing.get_context("fork").Process(target=_serve, args=(sock,))
    server.start()
    sock.close()
    missed = []
    try:
        print("| Client | Wall time ÷ bare (interleaved) | Instructions per request | ÷ bare |")
        print("|---|---:|---:|---:|")
        for kind in kinds:
            walls = interleaved(kind, url) if both or args.time else {}
            counts: dict[str, float] = {}
            if both or args.instructions:
                for variant in KINDS[kind]:
                    small = count(kind, variant, url, SMALL)
                    large = count(kind, variant, url, LARGE)
                    counts[variant] = (large - small) / (LARGE - SMALL)
            for variant in KINDS[kind]:
                wall = walls.get(variant)
                per = counts.get(variant)
                cells = [
                    "—" if wall is None else f"{wall:.3f}",
                    "—" if per is None else f"{per:,.0f}",
                    "—" if per is None else f"{per / counts['bare']:.3f}",
                ]
                print(f"| {kind}, {variant} | {' | '.join(cells)} |")
                if kind in CHECKED and variant == "ours":
                    for measure, value in (("wall time", wall), ("instructions", per)):
                        if value is None:
                            continue
                        ratio = value if measure == "wall time" else value / counts["bare"]
                        if ratio > TARGET:
                            missed.append(f"{kind} {measure}: {ratio:.3f} > {TARGET:.3f}")
    finally:
        server.terminate()
        server.join(5)
    for miss in missed:
        print(f"MISS: {miss}", file=sys.stderr)
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        client(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    else:
        sys.exit(main())
