"""Real HTTP servers for the HTTP integration tests, on 127.0.0.1 and free ports.

- :class:`Upstream`: an ASGI app under uvicorn, in a thread, listening on two ports (two
  hosts). What it answers is chosen by the URL, so tests need no shared set-up:

  - ``/ok``: 200, the body names the port;
  - ``/status/{code}?times=N&id=X``: ``code`` for the first N requests of ``id`` X (every
    request without ``times``), then 200; ``retry_after=...`` adds that ``Retry-After``,
    ``retry_after_date=S`` one that is an HTTP-date S seconds after the ``Date`` it sends;
  - ``/stall?seconds=S``: answers after S seconds;
  - ``/slow_first?seconds=S&id=X``: the first request of ``id`` X answers after S
    seconds, the others at once (the body says which request of X it answers);
  - ``/stream?id=X``: sends ``first``, then ``second`` once the test calls ``release(X)``;
  - ``/drip?chunks=N&gap=S``: sends the head and ``chunk 1`` at once, then each further
    chunk (up to N) S seconds after the last;
  - ``/echo``: 200 with the request body.

  ``hits[id]`` counts the requests per ``id`` (or path), ``open_connections()`` the
  connections open now and ``connections`` those accepted so far.
- :class:`RawServer`: a socket server for what no HTTP server does on purpose:
  ``/reset`` (reads the request, then resets the connection) and ``/stall`` (reads the
  request and never answers).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import parse_qs

import uvicorn

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def _listening_socket() -> socket.socket:
    # proto given explicitly: asyncio disables Nagle only on sockets that say TCP.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(512)
    return sock


class Upstream:
    """The ASGI app and the uvicorn server that runs it."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.connections = 0
        self._released: set[str] = set()
        self._sockets = [_listening_socket(), _listening_socket()]
        self.ports = [sock.getsockname()[1] for sock in self._sockets]
        self.urls = [f"http://127.0.0.1:{port}" for port in self.ports]
        self.url = self.urls[0]
        config = uvicorn.Config(
            self.app,
            log_level="error",
            lifespan="off",
            interface="asgi3",
            date_header=False,
            server_header=False,
            timeout_keep_alive=30,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": self._sockets}, daemon=True
        )

    def start(self) -> Upstream:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        for sock in self._sockets:
            sock.close()

    def open_connections(self) -> int:
        return len(self._server.server_state.connections)

    def release(self, stream_id: str) -> None:
        self._released.add(stream_id)

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        query = {k: v[-1] for k, v in parse_qs(scope["query_string"].decode()).items()}
        path: str = scope["path"]
        key = query.get("id", path)
        self.hits[key] += 1
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if path == "/ok":
            await _respond(send, 200, f"ok from {scope['server'][1]}".encode())
        elif path.startswith("/status/"):
            await self._status(int(path.rsplit("/", 1)[1]), query, key, send)
        elif path == "/stall":
            await asyncio.sleep(float(query.get("seconds", "30")))
            await _respond(send, 200, b"late")
        elif path == "/slow_first":
            if self.hits[key] == 1:
                await asyncio.sleep(float(query.get("seconds", "30")))
            await _respond(send, 200, f"answer {self.hits[key]}".encode())
        elif path == "/stream":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"first", "more_body": True})
            while key not in self._released:
                await asyncio.sleep(0.002)
            await send({"type": "http.response.body", "body": b"second"})
        elif path == "/drip":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            chunks = int(query.get("chunks", "3"))
            for n in range(1, chunks + 1):
                if n > 1:
                    await asyncio.sleep(float(query.get("gap", "0.5")))
                more = n < chunks
                await send(
                    {"type": "http.response.body", "body": b"chunk %d;" % n, "more_body": more}
                )
        elif path == "/echo":
            await _respond(send, 200, body)
        else:
            await _respond(send, 404, b"no such path")

    async def _status(self, code: int, query: dict[str, str], key: str, send: Send) -> None:
        times = query.get("times")
        if times is not None and self.hits[key] > int(times):
            await _respond(send, 200, b"ok")
            return
        headers = []
        if "retry_after" in query:
            headers.append((b"retry-after", query["retry_after"].encode()))
        if "retry_after_date" in query:
            now = time.time()
            later = now + float(query["retry_after_date"])
            headers.append((b"date", email.utils.formatdate(now, usegmt=True).encode()))
            headers.append((b"retry-after", email.utils.formatdate(later, usegmt=True).encode()))
        await _respond(send, code, f"status {code}".encode(), headers)


async def _respond(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [*(headers or []), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RawServer:
    """Accepts connections and misbehaves on them, as the request's path says."""

    def __init__(self) -> None:
        self._sock = _listening_socket()
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self.connections = 0
        self._stop = threading.Event()
        self._open: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def start(self) -> RawServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._sock.close()
        for conn in self._open:
            with contextlib.suppress(OSError):
                conn.close()
        self._thread.join(10)

    def _serve(self) -> None:
        self._sock.settimeout(0.05)
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            self._open.append(conn)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        head = b""
        with contextlib.suppress(OSError):
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                head += chunk
            path = head.split(b" ", 2)[1] if head.count(b" ") >= 2 else b""
            if path.startswith(b"/reset"):
                # SO_LINGER 0: close() sends a RST instead of a FIN.
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
                return
            # /stall: never answer; wait for the client (or the server) to go away.
            while not self._stop.is_set() and conn.recv(4096):
                pass
            conn.close()


@contextlib.contextmanager
def running(server: Any) -> Iterator[Any]:
    server.start()
    try:
        yield server
    finally:
        server.stop()
