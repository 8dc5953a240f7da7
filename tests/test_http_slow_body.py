"""A Timeout in the pipeline bounds each attempt up to the response's head; the body is
then read under the client's own timeouts, however slowly it arrives. Against a real
server (``servers.Upstream``) with every client library and calling style."""

from __future__ import annotations

import importlib
import time
from collections.abc import Iterator

import pytest
from http_clients import HTTPX2, KINDS, Harness, kind_id
from servers import RawServer, Upstream, running

from resilience import (
    AbandonedFinished,
    Event,
    Pipeline,
    Timeout,
    TimeoutExceeded,
)

#: The pipeline's Timeout, and the server's pause between two chunks of the body: longer
#: than the Timeout (and the moment more a cut network timeout gets), far shorter than
#: the client's own read timeout (httpx: 5 s; aiohttp: none but the 5 minutes in total).
TIMEOUT = 0.2
GAP = 0.4


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    with running(Upstream()) as server:
        yield server


@pytest.fixture(scope="module")
def raw() -> Iterator[RawServer]:
    with running(RawServer()) as server:
        yield server


@pytest.fixture(params=KINDS, ids=kind_id)
def harness(request: pytest.FixtureRequest) -> Harness:
    return Harness(request.param)


@pytest.fixture
def anyio_backend(harness: Harness) -> str:
    return harness.backend


@pytest.mark.anyio
async def test_a_body_slower_than_the_timeout_is_read_whole(
    harness: Harness, upstream: Upstream
) -> None:
    # The head and the first chunk come at once, within the Timeout; each further chunk
    # comes GAP seconds later, after the deadline: no longer the pipeline's business.
    started = time.monotonic()
    async with harness.client(Pipeline(Timeout(TIMEOUT))) as client:
        reply = await client.get(upstream.url + f"/drip?chunks=3&gap={GAP}")
    assert (reply.status, reply.text) == (200, "chunk 1;chunk 2;chunk 3;")
    assert time.monotonic() - started >= 2 * GAP  # the server did drip


@pytest.mark.anyio
async def test_a_server_silent_before_the_head_is_still_cut_off(
    harness: Harness, raw: RawServer
) -> None:
    timeout = Timeout(TIMEOUT)
    finished: list[Event] = []
    timeout.listen(lambda e: finished.append(e) if e.type == "abandoned_finished" else None)
    started = time.monotonic()
    async with harness.client(Pipeline(timeout)) as client:
        with pytest.raises(TimeoutExceeded):
            await client.get(raw.url + "/stall")  # never answers
        assert time.monotonic() - started < 1.0
        if harness.mode == "sync":
            # The sync Timeout's worker, which nothing interrupts, is ended by the network
            # timeout, still cut to the deadline while it waits for the head (the client's
            # own would keep it 5 s).
            deadline = time.monotonic() + 2
            while not finished and time.monotonic() < deadline:
                time.sleep(0.01)
            (event,) = finished
            assert isinstance(event.details, AbandonedFinished)
            assert event.details.duration < 1.0
            assert "timeout" in type(event.exception).__name__.lower()
    assert timeout.abandoned == 0


@pytest.mark.parametrize("library", ["httpx", *(["httpx2"] if HTTPX2 else [])])
def test_the_request_the_caller_gets_keeps_the_clients_timeouts(
    library: str, upstream: Upstream
) -> None:
    lib = importlib.import_module(library)
    transport = importlib.import_module(f"resilience.http.{library}").ResilientTransport
    with lib.Client(transport=transport(Pipeline(Timeout(2))), timeout=7.0) as client:
        response = client.get(upstream.url + "/ok")
    assert response.request.extensions["timeout"] == lib.Timeout(7.0).as_dict()
