"""Checked by mypy (see pyproject's [tool.mypy] files), never run: decoration and
``call``/``acall`` keep the wrapped callable's types."""

from __future__ import annotations

from collections.abc import Awaitable, Coroutine
from typing import Any

from typing_extensions import assert_type

from resilience import CircuitBreaker, Pipeline, Retry

breaker = CircuitBreaker("typed")
pipeline = Pipeline(Retry(), breaker)


@breaker
def add(x: int, y: int = 1) -> int:
    return x + y


@pipeline
async def fetch(url: str, *, timeout: float = 1.0) -> bytes:
    return b""


class Client:
    @pipeline
    def get(self, path: str) -> str:
        return path

    @breaker
    @classmethod
    def make(cls, name: str) -> Client:
        return cls()

    @breaker
    @staticmethod
    def version() -> tuple[int, int]:
        return (1, 0)


assert_type(add(1), int)
pending: Coroutine[Any, Any, bytes] = fetch("u")
pending.close()
assert_type(Client().get("/"), str)
assert_type(Client.make("n"), Client)
assert_type(Client.version(), tuple[int, int])
assert_type(breaker.call(add, 1, y=2), int)


async def use() -> None:
    assert_type(await breaker.acall(fetch, "u", timeout=2.0), bytes)
    result: Awaitable[bytes] = fetch("u")
    await result


# Wrong arguments are still caught through the decorator and through call().
add("x")  # type: ignore[arg-type]
breaker.call(add, "x")  # type: ignore[arg-type]
