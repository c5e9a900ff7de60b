"""One fake served on 127.0.0.1 for a worker's tests, answering as the current test's."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import Any

import attrs

from teletracker_async.testing import FakeTeletracker

_Message = MutableMapping[str, Any]


@attrs.define
class Switchboard:
    """One server for a worker's tests, answering as the current test's fake.

    A server per test cost 0.2 s of uvicorn's shutdown ticks, 90 times over; a
    request reaches only the fake of the test that is running (``current``)."""

    current: FakeTeletracker | None = None

    async def __call__(
        self,
        scope: _Message,
        receive: Callable[[], Awaitable[_Message]],
        send: Callable[[_Message], Awaitable[None]],
    ) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if self.current is None:
            raise RuntimeError("a request reached the tests' served fake between tests")
        await self.current.asgi(scope, receive, send)


@contextlib.contextmanager
def answering_as(
    fake: FakeTeletracker, switchboard: tuple[Switchboard, str]
) -> Iterator[str]:
    """The served URL, answering as *fake* until the block ends."""
    board, base_url = switchboard
    board.current = fake
    try:
        yield base_url
    finally:
        board.current = None
