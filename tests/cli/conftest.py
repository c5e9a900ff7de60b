"""The CLI tests' fake, served on 127.0.0.1, and the environment that points the
command at it (see tests/support/cli.py for how the command is run)."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import Any

import attrs
import pytest

from teletracker_async.testing import FakeTeletracker
from teletracker_async.testing._doors import serving
from tests.conftest import PASSWORD, USERNAME

_Message = MutableMapping[str, Any]


@attrs.define
class Switchboard:
    """One server for a worker's CLI tests, answering as the current test's fake.

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
            raise RuntimeError("a request reached the CLI tests' server between tests")
        await self.current.asgi(scope, receive, send)


@pytest.fixture(scope="session")
def _switchboard() -> Iterator[tuple[Switchboard, str]]:
    board = Switchboard()
    with serving(board) as base_url:
        yield board, base_url


@pytest.fixture
def fake() -> FakeTeletracker:  # a real clock: this fake is served over sockets
    return FakeTeletracker(users={USERNAME: (PASSWORD, [1, 2])}, records_per_day=2)


@pytest.fixture
def url(fake: FakeTeletracker, _switchboard: tuple[Switchboard, str]) -> Iterator[str]:
    """The served URL of this test's *fake*."""
    board, base_url = _switchboard
    board.current = fake
    try:
        yield base_url
    finally:
        board.current = None


@pytest.fixture
def env(url: str) -> dict[str, str]:
    """The command's environment: credentials and the served fake's URL."""
    variables = {
        k: v for k, v in os.environ.items() if not k.startswith("TELETRACKER_")
    }
    variables.update(
        TELETRACKER_USERNAME=USERNAME,
        TELETRACKER_PASSWORD=PASSWORD,
        TELETRACKER_BASE_URL=url,
        PYTHONUNBUFFERED="1",
    )
    return variables
