"""Test-only helpers around real Redis servers: a 3-node cluster, a TCP proxy that
can blackhole traffic, and worker processes (``redis_worker.py``). (A single server is
``resilience.testing.RedisServer``.)"""

from __future__ import annotations

import contextlib
import json
import selectors
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from resilience import CircuitBreaker
from resilience.testing._redis_server import RedisServer, command, find_redis_binary, free_port


class Cluster:
    """Three primaries on loopback, created with ``redis-cli --cluster create``."""

    def __init__(self, size: int = 3) -> None:
        self.nodes = [
            RedisServer(
                free_port(with_bus=True),
                args=["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"],
            )
            for _ in range(size)
        ]

    def start(self) -> Cluster:
        try:
            for node in self.nodes:
                node.start()
            addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
            result = subprocess.run(
                [find_redis_binary("cli"), "--cluster", "create", *addresses, "--cluster-yes"],
                capture_output=True,
                text=True,
                timeout=60,
            )
            if result.returncode != 0:
                raise RuntimeError(
                    f"redis-cli --cluster create failed:\n{result.stdout}{result.stderr}"
                )
            deadline = time.monotonic() + 30
            while not all(self._ready(node) for node in self.nodes):
                if time.monotonic() > deadline:
                    raise RuntimeError("the cluster did not reach cluster_state:ok in 30s")
                time.sleep(0.05)
        except BaseException:
            self.cleanup()
            raise
        return self

    @staticmethod
    def _ready(node: RedisServer) -> bool:
        info = command(node.port, "CLUSTER", "INFO")
        assert isinstance(info, str)
        return "cluster_state:ok" in info

    @property
    def url(self) -> str:
        return self.nodes[0].url.rsplit("/", 1)[0]

    def cleanup(self) -> None:
        for node in self.nodes:
            node.cleanup()


class Proxy:
    """A TCP proxy on a free loopback port in front of ``port``.

    ``blackhole()``: from now on, bytes in either direction are swallowed and new
    connections are accepted but never answered (a silent network: no RST, no FIN).
    ``heal()``: connections made from then on pass again; blackholed ones stay dead, as
    they would after a real partition.
    """

    def __init__(self, port: int) -> None:
        self.target = port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.setblocking(False)
        self.port: int = self._listener.getsockname()[1]
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ, None)
        self._lock = threading.Lock()
        self._generation = 0  # connections of older generations are blackholed
        self._blackholed = False
        self._stop = threading.Event()
        self._sockets: list[socket.socket] = []
        self._thread = threading.Thread(target=self._run, daemon=True, name="test-proxy")
        self._thread.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def blackhole(self) -> None:
        with self._lock:
            self._blackholed = True
            self._generation += 1

    def heal(self) -> None:
        with self._lock:
            self._blackholed = False

    def _run(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._selector.select(timeout=0.05):
                if key.data is None:
                    self._accept()
                else:
                    self._pump(key.fileobj, *key.data)  # type: ignore[arg-type]

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except BlockingIOError:
            return
        self._sockets.append(client)
        with self._lock:
            generation, dead = self._generation, self._blackholed
        if dead:  # accepted, never answered
            client.setblocking(False)
            self._selector.register(client, selectors.EVENT_READ, (None, generation))
            return
        upstream = socket.create_connection(("127.0.0.1", self.target))
        self._sockets.append(upstream)
        client.setblocking(False)
        upstream.setblocking(False)
        self._selector.register(client, selectors.EVENT_READ, (upstream, generation))
        self._selector.register(upstream, selectors.EVENT_READ, (client, generation))

    def _pump(self, source: socket.socket, peer: socket.socket | None, generation: int) -> None:
        try:
            data = source.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(source)
            if peer is not None:
                self._drop(peer)
            return
        with self._lock:
            dead = self._blackholed or generation != self._generation
        if peer is None or dead:
            return  # swallowed
        with contextlib.suppress(OSError):
            peer.setblocking(True)
            peer.sendall(data)
            peer.setblocking(False)

    def _drop(self, sock: socket.socket) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(sock)
        sock.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for sock in self._sockets:
            sock.close()
        self._listener.close()
        self._selector.close()


WORKER = Path(__file__).with_name("redis_worker.py")


class Workers:
    def __init__(self) -> None:
        self.processes: list[subprocess.Popen[str]] = []

    def spawn(self, count: int, mode: str, args: dict[str, Any]) -> list[subprocess.Popen[str]]:
        started = [
            subprocess.Popen(
                [sys.executable, str(WORKER), mode, json.dumps(args)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(count)
        ]
        self.processes += started
        for process in started:
            assert process.stdout is not None
            line = process.stdout.readline().strip()
            assert line == "ready", f"worker said {line!r}"
        return started

    @staticmethod
    def start(processes: list[subprocess.Popen[str]], delay: float = 0.2) -> float:
        """Tell every worker to begin at the same instant, ``delay`` from now."""
        start = time.time() + delay
        for process in processes:
            assert process.stdin is not None
            process.stdin.write(f"{start}\n")
            process.stdin.flush()
        return start

    def fleet(self, count: int, mode: str, args: dict[str, Any]) -> list[Any]:
        """``count`` processes forked from one worker, each with its own store, started
        at the same instant: their results."""
        [parent] = self.spawn(1, "fleet", {**args, "inner": mode, "count": count})
        self.start([parent])
        [results] = self.results([parent])
        assert len(results) == count
        return results  # type: ignore[no-any-return]

    @staticmethod
    def results(processes: list[subprocess.Popen[str]], timeout: float = 30) -> list[Any]:
        out = []
        for process in processes:
            stdout, _ = process.communicate(timeout=timeout)
            assert process.returncode == 0
            out.append(json.loads(stdout.strip().splitlines()[-1]))
        return out

    def kill_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait()
            for stream in (process.stdin, process.stdout):
                if stream is not None:
                    stream.close()


def store_args(redis_url: str, prefix: str, **store: Any) -> dict[str, Any]:
    return {"url": redis_url, "store": {"prefix": prefix, "timeout": 2.0, **store}}


class Boom(Exception):
    pass


def boom() -> None:
    raise Boom


def fail(breaker: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        with pytest.raises(Boom):
            breaker.call(boom)


def eventually(
    check: Callable[[], bool],
    timeout: float = 5.0,
    message: Callable[[], str] = lambda: "condition not met in time",
) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, message()
        time.sleep(0.005)
