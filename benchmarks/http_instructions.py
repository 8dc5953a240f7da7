"""Instructions per request through the HTTP integrations against the bare clients,
counted with valgrind's callgrind: a measure that other work on the machine does not
move, unlike the timings of ``test_bench_http.py``.

Usage (from the repository root; needs valgrind)::

    .venv/bin/python benchmarks/http_instructions.py            # prints a markdown table
    .venv/bin/python benchmarks/http_instructions.py aiohttp    # only the kinds named

For each client it runs a child process twice under callgrind, sending ``SMALL`` and
then ``LARGE`` requests to the local server of ``test_bench_http.py``, and divides the
difference of the two instruction counts by ``LARGE - SMALL``: what one more request
costs, start-up and warm-up excluded. Only the client process is counted (the server
runs in a process of its own, outside valgrind).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import re
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SMALL, LARGE = 200, 1200

KINDS = {
    "httpx-sync": ["bare", "ours"],
    "httpx-async": ["bare", "ours"],
    "aiohttp": ["bare", "noop-middleware", "ours"],
}


def client(kind: str, variant: str, url: str, n: int) -> None:
    """Send ``n`` GET requests (run in the measured child process)."""
    sys.path.insert(0, str(HERE))
    from test_bench_http import _noop_middleware, pipeline

    if kind == "httpx-sync":
        import httpx

        from resilience.http.httpx import ResilientTransport

        transport: Any = httpx.HTTPTransport()
        if variant == "ours":
            transport = ResilientTransport(pipeline(), transport)
        with httpx.Client(transport=transport) as sync_client:
            for _ in range(n):
                sync_client.get(url).read()
        return

    async def main() -> None:
        if kind == "httpx-async":
            import httpx

            from resilience.http.httpx import AsyncResilientTransport

            transport: Any = httpx.AsyncHTTPTransport()
            if variant == "ours":
                transport = AsyncResilientTransport(pipeline(), transport)
            async with httpx.AsyncClient(transport=transport) as async_client:
                for _ in range(n):
                    (await async_client.get(url)).read()
            return
        import aiohttp

        from resilience.http.aiohttp import ResilienceMiddleware

        middlewares: Any = {
            "bare": (),
            "noop-middleware": (_noop_middleware,),
            "ours": (ResilienceMiddleware(pipeline()),),
        }[variant]
        async with aiohttp.ClientSession(middlewares=middlewares) as session:
            for _ in range(n):
                async with session.get(url) as response:
                    await response.read()

    asyncio.run(main())


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


def main(kinds: list[str]) -> None:
    sys.path.insert(0, str(HERE))
    from test_bench_http import _serve

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/"
    server = multiprocessing.get_context("fork").Process(target=_serve, args=(sock,))
    server.start()
    sock.close()
    try:
        print("| Client | Instructions per request | ÷ bare |")
        print("|---|---:|---:|")
        for kind, variants in KINDS.items():
            if kinds and kind not in kinds:
                continue
            per_request = {}
            for variant in variants:
                small = count(kind, variant, url, SMALL)
                large = count(kind, variant, url, LARGE)
                per_request[variant] = (large - small) / (LARGE - SMALL)
            for variant, value in per_request.items():
                ratio = value / per_request["bare"]
                print(f"| {kind}, {variant} | {value:,.0f} | {ratio:.3f} |")
    finally:
        server.terminate()
        server.join(5)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        client(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    else:
        main(sys.argv[1:])
