"""Bulkhead through a Redis store: a fleet-wide concurrency limit whose slots are leases,
renewed while their calls run."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import anyio
import pytest
from redis_helpers import eventually

from resilience import Bulkhead, BulkheadFull, Event
from resilience.stores.redis import AsyncRedisStore, RedisStore
from resilience.testing import RedisServer


def held(store: RedisStore, key: str) -> int:
    return store.bulkhead_status(key).held


def admitted(bulkhead: Bulkhead) -> bool:
    """Whether a call gets in now."""
    try:
        bulkhead.call(lambda: None)
    except BulkheadFull:
        return False
    return True


def test_the_limit_is_the_fleets(make_store: Callable[..., RedisStore]) -> None:
    stores = [make_store(), make_store()]
    one, two = (Bulkhead(2, name="db", store=s) for s in stores)
    with one, two:
        assert held(stores[0], "db") == 2
        assert one.in_flight == two.in_flight == 1  # this process's share of them
        with pytest.raises(BulkheadFull):
            one.call(lambda: "third")
        with pytest.raises(BulkheadFull):
            two.call(lambda: "third")
    eventually(lambda: held(stores[0], "db") == 0)  # released in the background
    assert one.call(lambda: 1) == 1
    assert stores[1].bulkhead_status("db").instances == 2


def test_a_queued_caller_gets_a_slot_freed_elsewhere(
    make_store: Callable[..., RedisStore],
) -> None:
    here = Bulkhead(1, name="q", store=make_store())
    there = Bulkhead(1, max_queue=1, max_wait=5, name="q", store=make_store())
    entered, leave = threading.Event(), threading.Event()

    def hold() -> None:
        entered.set()
        leave.wait(5)

    holder = threading.Thread(target=lambda: here.call(hold))
    holder.start()
    entered.wait(5)
    threading.Timer(0.3, leave.set).start()
    started = time.monotonic()
    assert there.call(lambda: "mine") == "mine"
    waited = time.monotonic() - started
    holder.join()
    assert 0.25 <= waited < 2.0


def test_a_wait_that_times_out_leaves_nothing_behind(
    make_store: Callable[..., RedisStore],
) -> None:
    store = make_store()
    bulkhead = Bulkhead(1, max_queue=1, max_wait=0.2, name="t", store=store)
    other = Bulkhead(1, name="t", store=make_store())
    with other:
        with pytest.raises(BulkheadFull):
            bulkhead.call(lambda: None)
        assert bulkhead.queued == 0
    eventually(lambda: admitted(bulkhead))
    eventually(lambda: held(store, "t") == 0)


def test_a_long_call_keeps_its_slot(make_store: Callable[..., RedisStore]) -> None:
    store = make_store(slot_lease=0.3)
    long = Bulkhead(1, name="long", store=store)
    other = Bulkhead(1, name="long", store=make_store(slot_lease=0.3))
    with long:  # three leases long: renewed in the background
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            with pytest.raises(BulkheadFull):
                other.call(lambda: None)
            time.sleep(0.05)
    eventually(lambda: admitted(other))


def test_a_name_needs_a_key_and_one_shape(make_store: Callable[..., RedisStore]) -> None:
    store = make_store()
    with pytest.raises(ValueError, match="needs a key"):
        Bulkhead(1, store=store)
    kept = Bulkhead(2, name="shape", store=store)
    with pytest.raises(ValueError, match="already exists"):
        Bulkhead(3, name="shape", store=store)
    assert kept.call(lambda: 1) == 1


def test_shadow_mode_lets_calls_in_over_the_fleets_limit(
    make_store: Callable[..., RedisStore],
) -> None:
    events: list[Event] = []
    shadow = Bulkhead(1, name="s", store=make_store(), mode="metrics_only")
    shadow.listen(events.append)
    with Bulkhead(1, name="s", store=make_store()):
        assert shadow.call(lambda: "anyway") == "anyway"
    assert [e.type for e in events if e.type == "rejected"] == ["rejected"]
    assert shadow.in_flight == 0


def test_cut_off_from_redis_each_instance_takes_its_share(own_server: RedisServer) -> None:
    options = {"prefix": "share", "timeout": 0.2, "errors_to_cut_off": 1}
    stores = [RedisStore.from_url(own_server.url, **options) for _ in range(2)]  # type: ignore[arg-type]
    try:
        bulkheads = [Bulkhead(4, name="split", store=s) for s in stores]
        assert stores[0].bulkhead_status("split").instances == 2
        stores[0].flush()  # a heartbeat: this instance learns there are two
        own_server.kill()
        stores[0].flush()  # the heartbeat fails: cut off
        assert not stores[0].available
        here = bulkheads[0]
        with here, here, pytest.raises(BulkheadFull):  # ceil(4 / 2 instances)
            here.call(lambda: None)
        assert here.call(lambda: "local") == "local"
    finally:
        for store in stores:
            store.close()


def test_close_gives_back_what_it_held(redis_url: str, prefix: str) -> None:
    before = {t.name for t in threading.enumerate()}
    store = RedisStore.from_url(redis_url, prefix=prefix)
    bulkhead = Bulkhead(3, name="closing", store=store)
    with bulkhead:
        pass
    store.close()  # the release still pending goes out with the last round
    assert {t.name for t in threading.enumerate()} - before == set()
    with RedisStore.from_url(redis_url, prefix=prefix) as reader:
        assert reader.bulkhead_status("closing").held == 0


@pytest.mark.anyio
async def test_async_callers_queue_and_cancel(make_store: Callable[..., RedisStore]) -> None:
    store = make_store()
    bulkhead = Bulkhead(1, max_queue=2, name="async", store=store)
    running = 0
    most = 0

    async def work() -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await anyio.sleep(0.05)
        running -= 1

    async with anyio.create_task_group() as tasks:
        for _ in range(3):
            tasks.start_soon(bulkhead.acall, work)
    assert most == 1
    with anyio.move_on_after(0.1):  # cancelled while queued behind a holder
        async with bulkhead:
            await bulkhead.acall(work)
    assert bulkhead.queued == 0
    eventually(lambda: held(store, "async") == 0)
    assert await bulkhead.acall(anyio.sleep, 0) is None


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_the_asyncio_store(make_async_store: Callable[..., AsyncRedisStore]) -> None:
    store = make_async_store()
    bulkhead = Bulkhead(1, name="aio", store=store)
    async with bulkhead:
        with pytest.raises(BulkheadFull):
            await bulkhead.acall(anyio.sleep, 0)
    deadline = time.monotonic() + 5
    while True:
        try:
            await bulkhead.acall(anyio.sleep, 0)
            break
        except BulkheadFull:
            assert time.monotonic() < deadline
            await anyio.sleep(0.01)


def test_failing_closed_the_bulkhead_is_full_while_redis_cannot_be_asked(
    own_server: RedisServer,
) -> None:
    store = RedisStore.from_url(
        own_server.url, prefix="closed", timeout=0.2, on_store_error="closed", errors_to_cut_off=1
    )
    try:
        bulkhead = Bulkhead(4, name="closed", store=store)
        assert bulkhead.call(lambda: "up") == "up"
        own_server.kill()
        with pytest.raises(BulkheadFull):
            bulkhead.call(lambda: None)  # this call's script fails
        assert not store.available
        with pytest.raises(BulkheadFull):
            bulkhead.call(lambda: None)  # cut off
    finally:
        store.close()
