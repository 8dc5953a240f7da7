"""The flaky upstream of ``resilience demo``: a real HTTP server on 127.0.0.1.

It goes through phases (healthy, an outage, recovery, slowness, overload) spread over
the demo's duration, so every policy of the demo's pipeline has something to do: its
errors come in bursts, some answers are slow, and when it is overloaded it answers 429
with a ``Retry-After``. Two identical upstreams serve the two clients of the demo (with
and without the pipeline), so neither client's traffic changes what the other meets.
"""

from __future__ import annotations

import math
import random
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["PHASES", "Phase", "Upstream"]


@dataclass(frozen=True)
class Phase:
    """From ``start`` (a fraction of the demo's duration) on, the upstream fails
    ``errors`` of the requests (503), makes ``slow`` of them wait ``SLOW_SECONDS``, does
    not answer ``hangs`` of them (for a while), and answers 429 past ``limit`` requests
    per second (None: no limit)."""

    start: float
    name: str
    description: str
    errors: float = 0.1
    slow: float = 0.0
    hangs: float = 0.0
    limit: int | None = None


SLOW_SECONDS = 1.5
PHASES = (
    Phase(0.00, "healthy", "answers in 5-20 ms; 1 in 10 requests fails with 503"),
    Phase(0.15, "down", "does not answer: connections hang", errors=0.0, hangs=1.0),
    Phase(0.30, "flaky", "3 in 10 requests fail with 503", errors=0.3),
    Phase(0.45, "slow", f"3 in 10 requests take {SLOW_SECONDS:g} s", slow=0.3),
    Phase(0.65, "overloaded", "above 20 requests/s: 429 with Retry-After", limit=20),
    Phase(0.80, "healthy", "answers in 5-20 ms; 1 in 10 requests fails with 503"),
)


class Upstream:
    """One flaky HTTP server, started on a free port of 127.0.0.1."""

    def __init__(self, duration: float, seed: int) -> None:
        self.duration = duration
        self._hang = min(6.0, 0.3 * duration)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._second = -1
        self._in_second = 0
        #: Requests that reached the server, by the status it answered.
        self.requests: dict[int, int] = {}
        server = _Server(("127.0.0.1", 0), _Handler)
        server.upstream = self  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self, at: float | None = None) -> Upstream:
        """Serve; the phases count from ``at`` (monotonic; default now)."""
        self._started = time.monotonic() if at is None else at
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def phase(self, elapsed: float | None = None) -> Phase:
        if elapsed is None:
            elapsed = time.monotonic() - self._started
        fraction = max(elapsed, 0.0) / self.duration
        return [phase for phase in PHASES if phase.start <= fraction][-1]

    def decide(self) -> tuple[int, float, dict[str, str]]:
        """Status, delay before answering, and extra headers for one request."""
        now = time.monotonic() - self._started
        phase = self.phase(now)
        with self._lock:
            roll, slow_roll, jitter = self._rng.random(), self._rng.random(), self._rng.random()
            second = math.floor(now)
            if second != self._second:
                self._second, self._in_second = second, 0
            self._in_second += 1
            over = phase.limit is not None and self._in_second > phase.limit
        delay = 0.005 + 0.015 * jitter
        if over:
            retry_after = max(1, math.ceil(second + 1 - now))
            return 429, delay, {"Retry-After": str(retry_after)}
        if roll < phase.hangs:
            # Hung until the phase is over (clients give up long before), then a 503.
            return 503, self._hang, {}
        if roll < phase.errors:
            return 503, delay, {}
        if slow_roll < phase.slow:
            delay = SLOW_SECONDS
        return 200, delay, {}

    def count(self, status: int) -> None:
        with self._lock:
            self.requests[status] = self.requests.get(status, 0) + 1


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        return None  # a client that gave up on a slow answer closed its end: fine


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Any

    def do_GET(self) -> None:
        upstream: Upstream = self.server.upstream
        status, delay, headers = upstream.decide()
        upstream.count(status)
        time.sleep(delay)
        body = b'{"ok": true}\n' if status == 200 else b'{"error": "try later"}\n'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return None  # quiet: the demo shows what matters
