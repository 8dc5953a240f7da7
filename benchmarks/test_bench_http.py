"""Requests per second through the HTTP integrations against the bare clients.

A local HTTP/1.1 server in a process of its own (a minimal asyncio responder: it answers
every request at once with a fixed ``200 OK`` on a kept-alive connection, so the round
trip is as short as a local server makes it and the client's own cost, ours included,
is as large a share of it as it can be). Each round sends ``HTTP_BATCH`` GET requests
one after the other through one client and reads each body:

- ``http-sync``: ``httpx.Client`` with its default transport, against the same client
  with ``ResilientTransport(pipeline)`` around that transport;
- ``http-async``: the same with ``httpx.AsyncClient`` and ``AsyncResilientTransport``
  (asyncio);
- ``http-aiohttp-async``: ``aiohttp.ClientSession`` against the same session with
  ``ResilienceMiddleware(pipeline)``.

The pipeline is the recommended one without its ``Timeout`` (``Retry()``,
``CircuitBreaker()``, ``TokenBucket`` that never runs dry, ``Bulkhead``), per host;
other rows add the ``Timeout`` or turn ``per_host`` off. Every request succeeds, so
this is what the protection costs when nothing goes wrong. The target: at least 95% of
the bare client's requests per second (time per request at most 1/0.95 of the bare
one's).

The report divides a round's time by ``HTTP_BATCH``: its "ns per call" are per request.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import httpx
import pytest
from conftest import CASE_SECONDS, Case, async_batch, sync_batch

from resilience import Bulkhead, CircuitBreaker, Pipeline, Policy, Retry, Timeout, TokenBucket
from resilience.http.aiohttp import ResilienceMiddleware
from resilience.http.httpx import AsyncResilientTransport, ResilientTransport

HTTP_BATCH = int(os.environ.get("BENCH_HTTP_BATCH", "200"))
MIN_ROUNDS = 8

_RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: text/plain\r\n\r\nok"


class _Responder(asyncio.Protocol):
    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:  # GETs without bodies: one head per request
            _, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            self.transport.write(_RESPONSE)


def _serve(sock: socket.socket) -> None:
    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(_Responder, sock=sock)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    process = multiprocessing.get_context("fork").Process(target=_serve, args=(sock,))
    process.start()
    sock.close()  # the server process has its own copy
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        process.terminate()
        process.join(5)


def pipeline(*, timeout: bool = False) -> Policy:
    policies: list[Policy] = [
        Retry(),
        CircuitBreaker("bench"),
        TokenBucket(1e9, burst=1e9),
        Bulkhead(1000),
    ]
    if timeout:
        policies.append(Timeout(60))
    return Pipeline(*policies)


# -- cases: make(url) returns (g, close); g(1) sends one request and returns 2 ------------

Made = tuple[Callable[[int], Any], Callable[[], Any]]


def sync_client(transport: httpx.BaseTransport) -> Callable[[str], Made]:
    def make(url: str) -> Made:
        client = httpx.Client(transport=transport)

        def g(x: int) -> int:
            client.get(url).read()
            return x + 1

        return g, client.close

    return make


def async_client(transport: httpx.AsyncBaseTransport) -> Callable[[str], Made]:
    def make(url: str) -> Made:
        client = httpx.AsyncClient(transport=transport)

        async def g(x: int) -> int:
            (await client.get(url)).read()
            return x + 1

        return g, client.aclose

    return make


def aiohttp_session(middleware: Any = None) -> Callable[[str], Made]:
    def make(url: str) -> Made:
        session: aiohttp.ClientSession | None = None

        async def g(x: int) -> int:
            nonlocal session
            if session is None:  # made on the loop that runs the batches
                middlewares = () if middleware is None else (middleware,)
                session = aiohttp.ClientSession(middlewares=middlewares)
            async with session.get(url) as response:
                await response.read()
            return x + 1

        async def close() -> None:
            if session is not None:
                await session.close()

        return g, close

    return make


async def _noop_middleware(request: Any, handler: Any) -> Any:
    return await handler(request)


def _sync(transport: Callable[[], httpx.BaseTransport]) -> Callable[[str], Made]:
    return lambda url: sync_client(transport())(url)


def _async(transport: Callable[[], httpx.AsyncBaseTransport]) -> Callable[[str], Made]:
    return lambda url: async_client(transport())(url)


def _aiohttp(middleware: Callable[[], Any] | None) -> Callable[[str], Made]:
    return lambda url: aiohttp_session(None if middleware is None else middleware())(url)


CASES: dict[str, list[tuple[Any, ...]]] = {
    "http-sync": [
        ("bare", "`httpx.Client()`", "baseline", _sync(httpx.HTTPTransport)),
        (
            "ours",
            "`httpx.Client(transport=ResilientTransport(pipeline))`",
            "ours",
            _sync(lambda: ResilientTransport(pipeline())),
            "primary",
        ),
        (
            "ours-one",
            "`ResilientTransport(pipeline, per_host=False)`",
            "alternative",
            _sync(lambda: ResilientTransport(pipeline(), per_host=False)),
        ),
        (
            "ours-timeout",
            "`ResilientTransport(pipeline + Timeout(60))`: a worker thread per attempt",
            "alternative",
            _sync(lambda: ResilientTransport(pipeline(timeout=True))),
        ),
    ],
    "http-async": [
        ("bare", "`httpx.AsyncClient()`", "baseline", _async(httpx.AsyncHTTPTransport)),
        (
            "ours",
            "`httpx.AsyncClient(transport=AsyncResilientTransport(pipeline))`",
            "ours",
            _async(lambda: AsyncResilientTransport(pipeline())),
            "primary",
        ),
        (
            "ours-timeout",
            "`AsyncResilientTransport(pipeline + Timeout(60))`",
            "alternative",
            _async(lambda: AsyncResilientTransport(pipeline(timeout=True))),
        ),
    ],
    "http-aiohttp-async": [
        ("bare", "`aiohttp.ClientSession()`", "baseline", _aiohttp(None)),
        (
            "noop-middleware",
            "`aiohttp.ClientSession(middlewares=[noop])`: aiohttp's cost of a middleware",
            "alternative",
            _aiohttp(lambda: _noop_middleware),
        ),
        (
            "ours",
            "`aiohttp.ClientSession(middlewares=[ResilienceMiddleware(pipeline)])`",
            "ours",
            _aiohttp(lambda: ResilienceMiddleware(pipeline())),
            "primary",
        ),
        (
            "ours-timeout",
            "`ResilienceMiddleware(pipeline + Timeout(60))`",
            "alternative",
            _aiohttp(lambda: ResilienceMiddleware(pipeline(timeout=True))),
        ),
    ],
}


def test_http(
    case: Case,
    url: str,
    benchmark: Any,
    event_loop_for_batches: asyncio.AbstractEventLoop,
) -> None:
    g, close = case.make(url)  # type: ignore[call-arg]
    if case.is_async:
        batch = async_batch(g, HTTP_BATCH, event_loop_for_batches)
    else:
        batch = sync_batch(g, HTTP_BATCH)
    try:
        result = batch()  # validates the case, warms up the connection
        if result != 2:
            raise AssertionError(f"{case.label} returned {result!r}, expected 2")
        benchmark.group = case.group
        benchmark.extra_info.update(
            group=case.group,
            id=case.id,
            case=case.label,
            role=case.role,
            primary=case.primary,
            form="client",
            batch=HTTP_BATCH,
        )
        if benchmark.disabled:
            benchmark.pedantic(batch, rounds=1, iterations=1)
            return
        start = time.perf_counter()
        batch()
        rounds = max(MIN_ROUNDS, int(CASE_SECONDS / max(time.perf_counter() - start, 1e-9)))
        benchmark.extra_info["rounds"] = rounds
        benchmark.pedantic(batch, rounds=rounds, iterations=1, warmup_rounds=1)
    finally:
        closing = close()
        if closing is not None:
            event_loop_for_batches.run_until_complete(closing)
