"""Decorating with any policy: functions, coroutine functions, methods, classmethods,
staticmethods, callable objects, partials and bound methods.

Every case is run with a CircuitBreaker, a Retry and a Pipeline, so that decoration is
checked as the contract of every policy, not of one of them.
"""

from __future__ import annotations

import functools
import inspect
import pickle
from collections.abc import Callable
from typing import Any

import anyio.lowlevel
import pytest

from resilience import CircuitBreaker, CircuitOpen, Constant, Pipeline, Policy, Retry
from resilience.testing import FakeClock

POLICY_KINDS = ["breaker", "retry", "pipeline"]


def make_policy(kind: str, clock: FakeClock) -> Policy:
    if kind == "breaker":
        return CircuitBreaker("deco", clock=clock)
    if kind == "retry":
        return Retry(3, backoff=Constant(1.0), name="deco", clock=clock)
    return Pipeline(
        Retry(3, backoff=Constant(1.0), clock=clock), CircuitBreaker(clock=clock), name="deco"
    )


@pytest.fixture(params=POLICY_KINDS)
def policy(request: pytest.FixtureRequest, clock: FakeClock) -> Policy:
    return make_policy(request.param, clock)


class RecordingClock(FakeClock):
    """A FakeClock that remembers whether the sync or the async sleep was used."""

    def __init__(self) -> None:
        super().__init__()
        self.used: list[str] = []

    def sleep(self, seconds: float) -> None:
        self.used.append("sleep")
        super().sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        self.used.append("asleep")
        FakeClock.sleep(self, seconds)  # not self.sleep: that would record "sleep" too
        await anyio.lowlevel.checkpoint()


def flaky(fails: int, exc: type[Exception] = ConnectionError) -> Callable[[], None]:
    """A step that raises ``exc`` the first ``fails`` times it is called."""
    calls = [0]

    def step() -> None:
        calls[0] += 1
        if calls[0] <= fails:
            raise exc(f"failure {calls[0]}")

    return step


# -- module-level decorated functions (pickled by reference) --------------------------

MODULE_RETRY = Retry(2, backoff=Constant(0.0), name="module-retry", clock=FakeClock())
MODULE_PIPELINE = Pipeline(
    Retry(2, backoff=Constant(0.0), clock=FakeClock()), CircuitBreaker(clock=FakeClock())
)
MODULE_BREAKER = CircuitBreaker("module-breaker", clock=FakeClock())


@MODULE_RETRY
def module_add(a: int, b: int = 10) -> int:
    """Add two numbers."""
    return a + b


@MODULE_PIPELINE
async def module_amul(a: int, b: int = 3) -> int:
    """Multiply two numbers."""
    return a * b


@MODULE_BREAKER
def module_echo(*args: Any, **kwargs: Any) -> tuple[Any, ...]:
    return args, kwargs


@pytest.mark.parametrize("fn", [module_add, module_amul, module_echo])
def test_module_level_decorated_function_pickles_by_reference(fn: Callable[..., Any]) -> None:
    data = pickle.dumps(fn)
    assert pickle.loads(data) is fn


def test_unpickled_decorated_function_still_goes_through_its_policy() -> None:
    restored = pickle.loads(pickle.dumps(module_echo))
    assert restored(1, k=2) == ((1,), {"k": 2})
    MODULE_BREAKER.open()
    try:
        with pytest.raises(CircuitOpen):
            restored(1)
    finally:
        MODULE_BREAKER.reset()


# -- plain functions and coroutine functions ------------------------------------------


def test_plain_function_results_and_arguments(policy: Policy) -> None:
    def fn(a: int, b: int = 2, *rest: int, c: int = 3, **extra: int) -> tuple[Any, ...]:
        return a, b, rest, c, extra

    decorated = policy(fn)
    assert decorated(1) == (1, 2, (), 3, {})
    assert decorated(1, 5) == (1, 5, (), 3, {})
    assert decorated(1, 5, 6, 7, c=8, d=9) == (1, 5, (6, 7), 8, {"d": 9})
    assert decorated(b=4, a=0) == (0, 4, (), 3, {})


def test_function_with_parameters_named_like_the_runner_arguments(policy: Policy) -> None:
    def fn(fn: int, args: int, kwargs: int, instance: int = 0) -> tuple[int, ...]:
        return fn, args, kwargs, instance

    decorated = policy(fn)
    assert decorated(fn=1, args=2, kwargs=3, instance=4) == (1, 2, 3, 4)
    assert policy.call(fn, fn=1, args=2, kwargs=3) == (1, 2, 3, 0)


def test_plain_function_metadata(policy: Policy) -> None:
    def original(x: int, /, y: str = "y", *, z: float = 1.5) -> str:
        """The docstring."""
        return f"{x}{y}{z}"

    original.custom = "kept"  # type: ignore[attr-defined]
    decorated = policy(original)
    assert decorated is not original
    assert decorated.__name__ == "original"
    assert decorated.__qualname__ == original.__qualname__
    assert decorated.__doc__ == "The docstring."
    assert decorated.__module__ == __name__
    assert decorated.__wrapped__ is original
    assert decorated.__annotations__ == original.__annotations__
    assert decorated.custom == "kept"  # type: ignore[attr-defined]
    assert inspect.signature(decorated) == inspect.signature(original)
    assert not inspect.iscoroutinefunction(decorated)
    assert decorated(1) == "1y1.5"


def test_plain_function_is_called_synchronously(policy: Policy) -> None:
    decorated = policy(lambda: 42)
    result = decorated()
    assert result == 42
    assert not inspect.isawaitable(result)


@pytest.mark.anyio
async def test_coroutine_function_results_metadata_and_arguments(policy: Policy) -> None:
    async def original(a: int, b: int = 2, *, c: int = 3) -> tuple[int, int, int]:
        """Async docstring."""
        return a, b, c

    decorated = policy(original)
    assert inspect.iscoroutinefunction(decorated)
    assert inspect.signature(decorated) == inspect.signature(original)
    assert decorated.__name__ == "original"
    assert decorated.__qualname__ == original.__qualname__
    assert decorated.__doc__ == "Async docstring."
    assert decorated.__module__ == __name__
    assert decorated.__wrapped__ is original
    assert await decorated(1) == (1, 2, 3)
    assert await decorated(1, 5, c=7) == (1, 5, 7)
    assert await decorated(c=0, a=9) == (9, 2, 0)


def test_sync_function_takes_the_sync_path() -> None:
    clock = RecordingClock()
    step = flaky(2)

    @Retry(3, backoff=Constant(0.5), clock=clock)
    def fn() -> str:
        step()
        return "done"

    assert fn() == "done"
    assert clock.used == ["sleep", "sleep"]
    assert clock.sleeps == [0.5, 0.5]


@pytest.mark.anyio
async def test_coroutine_function_takes_the_async_path() -> None:
    clock = RecordingClock()
    step = flaky(2)

    @Retry(3, backoff=Constant(0.5), clock=clock)
    async def fn() -> str:
        step()
        return "done"

    assert await fn() == "done"
    assert clock.used == ["asleep", "asleep"]


def test_breaker_opened_by_hand_rejects_decorated_function_without_calling_it(
    clock: FakeClock,
) -> None:
    breaker = CircuitBreaker("manual", clock=clock)
    calls: list[int] = []

    @breaker
    def fn(x: int) -> int:
        calls.append(x)
        return x

    assert fn(1) == 1
    breaker.open()
    with pytest.raises(CircuitOpen) as info:
        fn(2)
    assert info.value.name == "manual"
    assert calls == [1]
    breaker.close()
    assert fn(3) == 3
    assert calls == [1, 3]


@pytest.mark.anyio
async def test_breaker_opened_by_hand_rejects_decorated_coroutine_function(
    clock: FakeClock,
) -> None:
    breaker = CircuitBreaker("manual", clock=clock)
    calls: list[int] = []

    @breaker
    async def fn(x: int) -> int:
        calls.append(x)
        return x

    breaker.open()
    with pytest.raises(CircuitOpen):
        await fn(2)
    assert calls == []


def test_functions_decorated_by_one_breaker_share_it() -> None:
    """Two functions decorated by one breaker share it: opening it rejects both."""
    breaker = CircuitBreaker(clock=FakeClock())
    first = breaker(lambda: 1)
    second = breaker(lambda: 2)
    breaker.open()
    for fn in (first, second):
        with pytest.raises(CircuitOpen):
            fn()


@pytest.mark.parametrize("kind", [*POLICY_KINDS, "empty-pipeline"])
def test_decoration_never_alters_the_original_function(kind: str, clock: FakeClock) -> None:
    policy = Pipeline() if kind == "empty-pipeline" else make_policy(kind, clock)

    def fn(x: int) -> int:
        """Original."""
        return x + 1

    before = (fn.__name__, fn.__qualname__, fn.__doc__, dict(fn.__dict__))
    first = policy(fn)
    second = policy(fn)
    assert first is not fn
    assert second is not fn
    assert first is not second
    assert not hasattr(fn, "__wrapped__")
    assert (fn.__name__, fn.__qualname__, fn.__doc__, dict(fn.__dict__)) == before
    assert first(1) == second(1) == fn(1) == 2


@pytest.mark.anyio
async def test_empty_pipeline_decorates_coroutine_functions() -> None:
    async def fn(x: int, *, y: int = 1) -> int:
        """Doc."""
        return x + y

    decorated = Pipeline()(fn)
    assert decorated is not fn
    assert inspect.iscoroutinefunction(decorated)
    assert inspect.signature(decorated) == inspect.signature(fn)
    assert decorated.__wrapped__ is fn
    assert await decorated(1, y=2) == 3


def test_stacked_policy_decorators_compose_outermost_first(clock: FakeClock) -> None:
    breaker = CircuitBreaker(clock=clock)
    retry = Retry(3, backoff=Constant(1.0), clock=clock)
    step = flaky(2)

    def original(x: int, *, y: int = 0) -> int:
        """Stacked."""
        step()
        return x + y

    decorated = retry(breaker(original))
    assert decorated(1, y=2) == 3
    assert breaker.metrics().calls == 3  # the breaker, inside, saw every attempt
    assert breaker.metrics().failures == 2
    assert clock.sleeps == [1.0, 1.0]
    assert decorated.__name__ == "original"
    assert decorated.__doc__ == "Stacked."
    assert inspect.signature(decorated) == inspect.signature(original)
    assert inspect.unwrap(decorated) is original
    breaker.open()
    with pytest.raises(CircuitOpen):
        decorated(1)
    assert clock.sleeps == [1.0, 1.0]  # a hand-opened breaker is not retried


@pytest.mark.anyio
async def test_stacked_policy_decorators_on_coroutine_function(clock: FakeClock) -> None:
    breaker = CircuitBreaker(clock=clock)
    retry = Retry(3, backoff=Constant(1.0), clock=clock)
    step = flaky(1)

    @retry
    @breaker
    async def fn(x: int) -> int:
        step()
        return x * 2

    assert inspect.iscoroutinefunction(fn)
    assert await fn(4) == 8
    assert breaker.metrics().calls == 2
    assert clock.sleeps == [1.0]


# -- methods, classmethods, staticmethods ---------------------------------------------


def build_service(deco: Callable[[Any], Any]) -> type:
    """The same class, with every member decorated by ``deco`` (both decorator orders).

    ``build_service(lambda f: f)`` is the undecorated twin that decorated members are
    compared against.
    """

    class Service:
        def __init__(self, tag: str = "svc") -> None:
            self.tag = tag

        @deco
        def method(self, x: int, y: int = 2, *, z: int = 3) -> tuple[Any, ...]:
            """An instance method."""
            return self, x, y, z

        @deco
        async def amethod(self, x: int, y: int = 2, *, z: int = 3) -> tuple[Any, ...]:
            """An async instance method."""
            return self, x, y, z

        @deco
        @classmethod
        def cls_outer(cls, x: int, y: int = 2, *, z: int = 3) -> tuple[Any, ...]:
            """A classmethod, policy above."""
            return cls, x, y, z

        @classmethod
        @deco
        def cls_inner(cls, x: int, y: int = 2, *, z: int = 3) -> tuple[Any, ...]:
            """A classmethod, policy below."""
            return cls, x, y, z

        @deco
        @classmethod
        async def acls_outer(cls, x: int, y: int = 2, *, z: int = 3) -> tuple[Any, ...]:
            """An async classmethod, policy above."""
            return cls, x, y, z

        @classmethod
        @deco
        async def acls_inner(cls, x: int, y: int = 2, *, z: int = 3) -> tuple[Any, ...]:
            """An async classmethod, policy below."""
            return cls, x, y, z

        @deco
        @staticmethod
        def static_outer(x: int, y: int = 2, *, z: int = 3) -> tuple[Any, ...]:
            """A staticmethod, policy above."""
            return None, x, y, z

        @staticmethod
        @deco
        def static_inner(x: int, y: int = 2, *, z: int = 3) -> tuple[Any, ...]:
            """A staticmethod, policy below."""
            return None, x, y, z

        @deco
        @staticmethod
        async def astatic_outer(x: int, y: int = 2, *, z: int = 3) -> tuple[Any, ...]:
            """An async staticmethod, policy above."""
            return None, x, y, z

        @staticmethod
        @deco
        async def astatic_inner(x: int, y: int = 2, *, z: int = 3) -> tuple[Any, ...]:
            """An async staticmethod, policy below."""
            return None, x, y, z

    return Service


SYNC_MEMBERS = ["method", "cls_outer", "cls_inner", "static_outer", "static_inner"]
ASYNC_MEMBERS = ["amethod", "acls_outer", "acls_inner", "astatic_outer", "astatic_inner"]
PLAIN = build_service(lambda f: f)


def expected_binding(member: str, cls: type, instance: object) -> object:
    if member in ("method", "amethod"):
        return instance
    if "cls" in member:
        return cls
    return None


def test_decorated_class_matches_its_undecorated_twin_in_shape() -> None:
    """Sanity check of the fixture: both orders produced the same kinds of members."""
    service = build_service(CircuitBreaker(clock=FakeClock()))
    for name in SYNC_MEMBERS + ASYNC_MEMBERS:
        assert type(service.__dict__[name]) is type(PLAIN.__dict__[name]), name


@pytest.mark.parametrize("member", SYNC_MEMBERS)
@pytest.mark.parametrize("via", ["class", "instance"])
def test_sync_members_bind_and_pass_arguments(policy: Policy, member: str, via: str) -> None:
    service = build_service(policy)
    instance = service("mine")
    if member == "method" and via == "class":
        bound = functools.partial(getattr(service, member), instance)
    else:
        bound = getattr(service if via == "class" else instance, member)
    who = expected_binding(member, service, instance)
    assert bound(1) == (who, 1, 2, 3)
    assert bound(1, 5) == (who, 1, 5, 3)
    assert bound(1, y=6, z=7) == (who, 1, 6, 7)
    assert bound(z=0, x=4) == (who, 4, 2, 0)


@pytest.mark.anyio
@pytest.mark.parametrize("member", ASYNC_MEMBERS)
@pytest.mark.parametrize("via", ["class", "instance"])
async def test_async_members_bind_and_pass_arguments(policy: Policy, member: str, via: str) -> None:
    service = build_service(policy)
    instance = service("mine")
    if member == "amethod" and via == "class":
        bound = functools.partial(getattr(service, member), instance)
    else:
        bound = getattr(service if via == "class" else instance, member)
    who = expected_binding(member, service, instance)
    assert await bound(1) == (who, 1, 2, 3)
    assert await bound(1, 5) == (who, 1, 5, 3)
    assert await bound(1, y=6, z=7) == (who, 1, 6, 7)


@pytest.mark.parametrize("member", SYNC_MEMBERS + ASYNC_MEMBERS)
@pytest.mark.parametrize("via", ["class", "instance"])
def test_members_keep_signature_name_doc_and_coroutine_nature(
    policy: Policy, member: str, via: str
) -> None:
    service = build_service(policy)
    decorated = getattr(service if via == "class" else service(), member)
    original = getattr(PLAIN if via == "class" else PLAIN(), member)
    assert inspect.signature(decorated) == inspect.signature(original)
    assert decorated.__name__ == member
    assert decorated.__qualname__ == original.__qualname__
    assert decorated.__doc__ == original.__doc__
    assert decorated.__doc__
    assert decorated.__module__ == __name__
    assert inspect.iscoroutinefunction(decorated) is member.startswith("a")
    assert inspect.iscoroutinefunction(decorated) is inspect.iscoroutinefunction(original)


@pytest.mark.parametrize("member", SYNC_MEMBERS + ASYNC_MEMBERS)
def test_members_unwrap_to_the_original_function(policy: Policy, member: str) -> None:
    service = build_service(policy)
    raw = service.__dict__[member]
    plain_raw = PLAIN.__dict__[member]
    func = getattr(raw, "__func__", raw)
    plain_func = getattr(plain_raw, "__func__", plain_raw)
    original = inspect.unwrap(func)
    assert original is not func  # there is a wrapper, and __wrapped__ leads through it
    # Both classes were built from the same source: their functions share code objects.
    assert original.__code__ is plain_func.__code__


def test_retry_retries_a_method_with_self_bound(clock: FakeClock) -> None:
    retry = Retry(3, backoff=Constant(2.0), clock=clock)

    class Client:
        def __init__(self) -> None:
            self.calls = 0

        @retry
        def get(self, path: str, *, tries_to_fail: int = 2) -> str:
            self.calls += 1
            if self.calls <= tries_to_fail:
                raise ConnectionError(path)
            return f"{path} after {self.calls}"

    client = Client()
    assert client.get("/a") == "/a after 3"
    assert client.calls == 3
    assert clock.sleeps == [2.0, 2.0]
    other = Client()
    assert Client.get(other, "/b", tries_to_fail=1) == "/b after 2"
    assert client.calls == 3


@pytest.mark.anyio
async def test_retry_retries_an_async_method(clock: FakeClock) -> None:
    retry = Retry(3, backoff=Constant(2.0), clock=clock)

    class Client:
        def __init__(self) -> None:
            self.calls = 0

        @retry
        async def get(self, path: str) -> str:
            self.calls += 1
            if self.calls < 3:
                raise ConnectionError(path)
            return path

    client = Client()
    assert await client.get("/a") == "/a"
    assert client.calls == 3
    assert clock.sleeps == [2.0, 2.0]


@pytest.mark.parametrize("member", ["cls_outer", "cls_inner", "static_outer", "static_inner"])
@pytest.mark.parametrize("via", ["class", "instance"])
def test_breaker_opened_by_hand_rejects_classmethods_and_staticmethods(
    clock: FakeClock, member: str, via: str
) -> None:
    breaker = CircuitBreaker("cls-breaker", clock=clock)
    service = build_service(breaker)
    target = getattr(service if via == "class" else service(), member)
    assert target(1)[1:] == (1, 2, 3)
    breaker.open()
    with pytest.raises(CircuitOpen) as info:
        target(1)
    assert info.value.name == "cls-breaker"
    breaker.close()
    assert target(2)[1] == 2


@pytest.mark.anyio
@pytest.mark.parametrize("member", ["acls_outer", "acls_inner", "astatic_outer", "astatic_inner"])
async def test_breaker_opened_by_hand_rejects_async_classmethods_and_staticmethods(
    clock: FakeClock, member: str
) -> None:
    breaker = CircuitBreaker(clock=clock)
    service = build_service(breaker)
    breaker.open()
    with pytest.raises(CircuitOpen):
        await getattr(service, member)(1)
    with pytest.raises(CircuitOpen):
        await getattr(service(), member)(1)


def test_retry_retries_classmethod_and_staticmethod_in_both_orders(clock: FakeClock) -> None:
    retry = Retry(2, backoff=Constant(1.0), clock=clock)
    failures = {"outer": flaky(1), "inner": flaky(1), "s_outer": flaky(1), "s_inner": flaky(1)}

    class Api:
        @retry
        @classmethod
        def outer(cls) -> type:
            failures["outer"]()
            return cls

        @classmethod
        @retry
        def inner(cls) -> type:
            failures["inner"]()
            return cls

        @retry
        @staticmethod
        def s_outer() -> str:
            failures["s_outer"]()
            return "s_outer"

        @staticmethod
        @retry
        def s_inner() -> str:
            failures["s_inner"]()
            return "s_inner"

    assert Api.outer() is Api
    assert Api().inner() is Api
    assert Api.s_outer() == "s_outer"
    assert Api().s_inner() == "s_inner"
    assert clock.sleeps == [1.0] * 4


def test_classmethod_decorated_above_binds_to_subclass(clock: FakeClock) -> None:
    breaker = CircuitBreaker(clock=clock)

    class Base:
        @breaker
        @classmethod
        def make(cls) -> type:
            return cls

    class Child(Base):
        pass

    assert Child.make() is Child
    assert Child().make() is Child
    assert Base.make() is Base


# -- callable objects, partials, bound methods ----------------------------------------


class SyncCallable:
    """A callable object with state."""

    def __init__(self, fails: int = 0) -> None:
        self.calls = 0
        self.fails = fails
        self.label = "sync-callable"

    def __call__(self, x: int, y: int = 2, *, z: int = 3) -> tuple[Any, ...]:
        self.calls += 1
        if self.calls <= self.fails:
            raise ConnectionError("flaky")
        return self, x, y, z


class AsyncCallable:
    """A callable object whose __call__ is a coroutine function."""

    def __init__(self, fails: int = 0) -> None:
        self.calls = 0
        self.fails = fails

    async def __call__(self, x: int, y: int = 2, *, z: int = 3) -> tuple[Any, ...]:
        self.calls += 1
        if self.calls <= self.fails:
            raise ConnectionError("flaky")
        return self, x, y, z


def is_async_callable(obj: Any) -> bool:
    """How frameworks (Starlette, Django...) decide whether to await a callable."""
    while isinstance(obj, functools.partial):
        obj = obj.func
    return inspect.iscoroutinefunction(obj) or (
        callable(obj) and inspect.iscoroutinefunction(obj.__call__)
    )


def test_sync_callable_object(policy: Policy) -> None:
    obj = SyncCallable()
    decorated = policy(obj)
    assert decorated(1) == (obj, 1, 2, 3)
    assert decorated(1, 4, z=5) == (obj, 1, 4, 5)
    assert decorated(z=0, x=9) == (obj, 9, 2, 0)
    assert inspect.signature(decorated) == inspect.signature(obj)
    assert decorated.__wrapped__ is obj
    assert decorated.label == "sync-callable"  # attributes are reached through the wrapper
    assert not inspect.iscoroutinefunction(decorated)
    assert not is_async_callable(decorated)


def test_retry_applies_to_sync_callable_object(clock: FakeClock) -> None:
    obj = SyncCallable(fails=2)
    decorated = Retry(3, backoff=Constant(1.0), clock=clock)(obj)
    assert decorated(1) == (obj, 1, 2, 3)
    assert obj.calls == 3
    assert clock.sleeps == [1.0, 1.0]


@pytest.mark.anyio
async def test_async_callable_object(policy: Policy) -> None:
    obj = AsyncCallable()
    decorated = policy(obj)
    result = decorated(1, z=4)
    assert inspect.isawaitable(result)
    assert await result == (obj, 1, 2, 4)
    assert inspect.signature(decorated) == inspect.signature(obj)
    assert decorated.__wrapped__ is obj
    assert inspect.iscoroutinefunction(decorated) is inspect.iscoroutinefunction(obj)


def test_async_callable_object_still_looks_async_to_frameworks(policy: Policy) -> None:
    """Frameworks dispatch on ``iscoroutinefunction(obj) or iscoroutinefunction(obj.__call__)``;
    decorating must not turn an async callable object into one that looks sync."""
    obj = AsyncCallable()
    assert is_async_callable(obj)
    assert is_async_callable(policy(obj))


@pytest.mark.anyio
async def test_retry_applies_to_async_callable_object_on_the_async_path() -> None:
    clock = RecordingClock()
    obj = AsyncCallable(fails=1)
    decorated = Retry(2, backoff=Constant(1.0), clock=clock)(obj)
    assert await decorated(7) == (obj, 7, 2, 3)
    assert obj.calls == 2
    assert clock.used == ["asleep"]


def test_decorating_a_class_with_async_call_keeps_construction_sync(clock: FakeClock) -> None:
    """A class is a callable too: calling the decorated class must build an instance,
    even when the instances it builds have an async ``__call__``."""
    decorated = CircuitBreaker(clock=clock)(AsyncCallable)
    instance = decorated(fails=0)
    try:
        assert isinstance(instance, AsyncCallable)
    finally:
        if inspect.iscoroutine(instance):
            instance.close()


def test_decorating_a_class_with_sync_call(clock: FakeClock) -> None:
    breaker = CircuitBreaker(clock=clock)
    decorated = breaker(SyncCallable)
    instance = decorated(fails=1)
    assert isinstance(instance, SyncCallable)
    assert instance.fails == 1
    breaker.open()
    with pytest.raises(CircuitOpen):
        decorated()


def test_functools_partial(policy: Policy) -> None:
    def fn(a: int, b: int, c: int = 3, *, d: int = 4) -> tuple[int, ...]:
        return a, b, c, d

    part = functools.partial(fn, 1, d=9)
    decorated = policy(part)
    assert decorated(2) == (1, 2, 3, 9)
    assert decorated(2, 5, d=0) == (1, 2, 5, 0)
    assert inspect.signature(decorated) == inspect.signature(part)
    assert decorated.__wrapped__ is part
    assert not inspect.iscoroutinefunction(decorated)


@pytest.mark.anyio
async def test_functools_partial_of_coroutine_function(policy: Policy) -> None:
    async def fn(a: int, b: int, *, c: int = 3) -> tuple[int, ...]:
        return a, b, c

    part = functools.partial(fn, 1)
    decorated = policy(part)
    assert inspect.iscoroutinefunction(decorated)
    assert inspect.signature(decorated) == inspect.signature(part)
    assert await decorated(2, c=5) == (1, 2, 5)


@pytest.mark.anyio
async def test_retry_applies_to_partials(clock: FakeClock) -> None:
    retry = Retry(2, backoff=Constant(3.0), clock=clock)
    step = flaky(1)
    astep = flaky(1)

    def fn(a: int, b: int) -> int:
        step()
        return a + b

    async def afn(a: int, b: int) -> int:
        astep()
        return a * b

    assert retry(functools.partial(fn, 1))(2) == 3
    assert await retry(functools.partial(afn, 4))(5) == 20
    assert clock.sleeps == [3.0, 3.0]


class Greeter:
    def __init__(self, greeting: str) -> None:
        self.greeting = greeting

    def greet(self, name: str, *, punct: str = "!") -> str:
        """Greet someone."""
        return f"{self.greeting}, {name}{punct}"

    async def agreet(self, name: str) -> str:
        """Greet someone, asynchronously."""
        return f"{self.greeting}, {name}"


def test_bound_method(policy: Policy) -> None:
    greeter = Greeter("Hello")
    decorated = policy(greeter.greet)
    assert decorated("Ann") == "Hello, Ann!"
    assert decorated(name="Bob", punct="?") == "Hello, Bob?"
    assert inspect.signature(decorated) == inspect.signature(greeter.greet)
    assert decorated.__name__ == "greet"
    assert decorated.__qualname__ == "Greeter.greet"
    assert decorated.__doc__ == "Greet someone."
    assert decorated.__module__ == __name__
    assert decorated.__wrapped__ == greeter.greet
    assert decorated.__self__ is greeter
    assert not inspect.iscoroutinefunction(decorated)


@pytest.mark.anyio
async def test_async_bound_method(policy: Policy) -> None:
    greeter = Greeter("Hi")
    decorated = policy(greeter.agreet)
    assert inspect.iscoroutinefunction(decorated)
    assert is_async_callable(decorated)
    assert inspect.signature(decorated) == inspect.signature(greeter.agreet)
    assert decorated.__name__ == "agreet"
    assert await decorated("Cy") == "Hi, Cy"


def test_breaker_applies_to_bound_method(clock: FakeClock) -> None:
    breaker = CircuitBreaker(clock=clock)
    decorated = breaker(Greeter("Yo").greet)
    breaker.open()
    with pytest.raises(CircuitOpen):
        decorated("Di")


# -- what cannot be decorated ---------------------------------------------------------


def gen_fn() -> Any:
    yield 1


async def agen_fn() -> Any:
    yield 1


class WithGenerators:
    def gen_method(self) -> Any:
        yield 1

    async def agen_method(self) -> Any:
        yield 1


@pytest.mark.parametrize(
    "target",
    [
        gen_fn,
        agen_fn,
        WithGenerators.gen_method,
        WithGenerators.agen_method,
        WithGenerators().gen_method,
        WithGenerators().agen_method,
        staticmethod(gen_fn),
        classmethod(agen_fn),
        functools.partial(gen_fn),
    ],
    ids=[
        "generator",
        "async-generator",
        "generator-method",
        "async-generator-method",
        "bound-generator-method",
        "bound-async-generator-method",
        "staticmethod-generator",
        "classmethod-async-generator",
        "partial-generator",
    ],
)
def test_generator_functions_are_rejected(policy: Policy, target: Any) -> None:
    with pytest.raises(TypeError, match="generator"):
        policy(target)


def test_generator_method_rejected_with_decorator_syntax(policy: Policy) -> None:
    with pytest.raises(TypeError, match="gen_method"):

        class Broken:
            @policy
            def gen_method(self) -> Any:
                yield 1


@pytest.mark.parametrize("target", [None, 3, "fetch", b"x", [len], object()])
def test_non_callables_are_rejected(policy: Policy, target: Any) -> None:
    with pytest.raises(TypeError, match="callable"):
        policy(target)


@pytest.mark.parametrize("wrap", [classmethod, staticmethod])
def test_classmethod_or_staticmethod_of_non_callable_is_rejected(
    policy: Policy, wrap: Callable[[Any], Any]
) -> None:
    with pytest.raises(TypeError):
        policy(wrap(42))
