"""One interface over the clients the HTTP integration is tested with, so that each
behaviour is written once and checked with every client: httpx (sync and async),
httpx2 (when installed: it needs Python 3.11) and aiohttp.

A *kind* is ``(library, mode)``: mode ``sync`` (run from an asyncio test, blocking),
``asyncio`` or ``trio``. ``Harness(kind).client(pipeline, **options)`` opens a client
whose requests go through ``pipeline``; its ``request`` returns a ``Reply`` with the
body read.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

from resilience import Policy
from resilience.http import idempotent as idempotent_block

HTTPX2 = importlib.util.find_spec("httpx2") is not None

KINDS = [
    ("httpx", "sync"),
    ("httpx", "asyncio"),
    ("httpx", "trio"),
    ("aiohttp", "asyncio"),
    *([("httpx2", "sync"), ("httpx2", "asyncio"), ("httpx2", "trio")] if HTTPX2 else []),
]
#: One kind per client library and calling style: for behaviours that do not depend on
#: the event loop.
MAIN_KINDS = [("httpx", "sync"), ("httpx", "asyncio"), ("aiohttp", "asyncio")]


def kind_id(kind: tuple[str, str]) -> str:
    return "-".join(kind)


@dataclass
class Request:
    method: str
    url: str
    body: bytes | None
    streamed_body: bool
    idempotent: bool | None
    headers: dict[str, str] | None

    @property
    def extensions(self) -> dict[str, Any]:
        return {} if self.idempotent is None else {"idempotent": self.idempotent}


@dataclass
class Reply:
    status: int
    text: str
    headers: dict[str, str]


class Harness:
    def __init__(self, kind: tuple[str, str]) -> None:
        self.library, self.mode = kind

    @property
    def backend(self) -> str:
        return "trio" if self.mode == "trio" else "asyncio"

    def module(self) -> Any:
        return importlib.import_module(self.library)

    def protection(self, pipeline: Policy, transport: Any = None, **options: Any) -> Any:
        """The transport or middleware under test, not yet in a client."""
        if self.library == "aiohttp":
            from resilience.http.aiohttp import ResilienceMiddleware

            return ResilienceMiddleware(pipeline, **options)
        integration = importlib.import_module(f"resilience.http.{self.library}")
        if self.mode == "sync":
            return integration.ResilientTransport(pipeline, transport, **options)
        return integration.AsyncResilientTransport(pipeline, transport, **options)

    @contextlib.asynccontextmanager
    async def client(
        self, pipeline: Policy, transport: Any = None, **options: Any
    ) -> AsyncIterator[Client]:
        protection = self.protection(pipeline, transport, **options)
        if self.library == "aiohttp":
            import aiohttp

            async with aiohttp.ClientSession(middlewares=[protection]) as session:
                yield AiohttpClient(protection, session)
        elif self.mode == "sync":
            with self.module().Client(transport=protection) as client:
                yield SyncHttpxClient(protection, client)
        else:
            async with self.module().AsyncClient(transport=protection) as client:
                yield AsyncHttpxClient(protection, client)


class Client:
    """A client whose requests go through ``protection``."""

    def __init__(self, protection: Any, client: Any) -> None:
        self.protection = protection
        self.client = client

    async def get(self, url: str, **kw: Any) -> Reply:
        return await self.request("GET", url, **kw)

    async def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None = None,
        streamed_body: bool = False,
        idempotent: bool | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """``streamed_body``: a body from a generator (async for async clients), which
        cannot be sent twice; ``idempotent``: the library's way of saying it."""
        return await self._send(Request(method, url, body, streamed_body, idempotent, headers))

    async def _send(self, request: Request) -> Reply:
        raise NotImplementedError

    def stream(self, url: str) -> contextlib.AbstractAsyncContextManager[AsyncIterator[bytes]]:
        raise NotImplementedError

    def connections_in_use(self) -> int:
        """Connections of the client's pool that a response still holds."""
        raise NotImplementedError


def _chunks() -> Iterator[bytes]:
    yield b"streamed "
    yield b"body"


async def _achunks() -> AsyncIterator[bytes]:
    for chunk in _chunks():
        yield chunk


def _httpx_in_use(client: Any) -> int:
    pool = client._transport.transport._pool
    return sum(not (c.is_idle() or c.is_closed()) for c in pool.connections)


class SyncHttpxClient(Client):
    async def _send(self, r: Request) -> Reply:
        content = _chunks() if r.streamed_body else r.body
        response = self.client.request(
            r.method, r.url, content=content, extensions=r.extensions, headers=r.headers
        )
        return Reply(response.status_code, response.text, dict(response.headers))

    @contextlib.asynccontextmanager
    async def stream(self, url: str) -> AsyncIterator[AsyncIterator[bytes]]:
        with self.client.stream("GET", url) as response:

            async def chunks() -> AsyncIterator[bytes]:
                for chunk in response.iter_bytes():
                    yield chunk

            yield chunks()

    def connections_in_use(self) -> int:
        return _httpx_in_use(self.client)


class AsyncHttpxClient(Client):
    async def _send(self, r: Request) -> Reply:
        content = _achunks() if r.streamed_body else r.body
        response = await self.client.request(
            r.method, r.url, content=content, extensions=r.extensions, headers=r.headers
        )
        return Reply(response.status_code, response.text, dict(response.headers))

    @contextlib.asynccontextmanager
    async def stream(self, url: str) -> AsyncIterator[AsyncIterator[bytes]]:
        async with self.client.stream("GET", url) as response:
            yield response.aiter_bytes()

    def connections_in_use(self) -> int:
        return _httpx_in_use(self.client)


class AiohttpClient(Client):
    async def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None = None,
        streamed_body: bool = False,
        idempotent: bool | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        data: Any = _achunks() if streamed_body else body
        block = contextlib.nullcontext() if idempotent is None else idempotent_block(idempotent)
        with block:
            async with self.client.request(method, url, data=data, headers=headers) as response:
                return Reply(response.status, await response.text(), dict(response.headers))

    @contextlib.asynccontextmanager
    async def stream(self, url: str) -> AsyncIterator[AsyncIterator[bytes]]:
        async with self.client.get(url) as response:
            yield response.content.iter_any()

    def connections_in_use(self) -> int:
        return len(self.client.connector._acquired)
