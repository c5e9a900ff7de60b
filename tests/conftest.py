"""Shared fixtures: every async test runs under asyncio and under trio."""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import AsyncIterator, Callable, Iterator
from types import ModuleType
from typing import Any

import attrs
import httpx
import pytest

from teletracker_async import TeletrackerAuth
from teletracker_async._cli.serve import served_elsewhere
from teletracker_async.testing import FakeClock, FakeTeletracker
from teletracker_async.testing._doors import serving
from tests.support.redis_server import RedisServer as _RedisServer
from tests.support.redis_server import find_redis_server
from tests.support.switchboard import Switchboard

USERNAME = "ada"
PASSWORD = "pw-Sup3r-s3cret"  # distinctive, so that tests can grep for leaks
BASE_URL = "https://api.teletracker.test"


@pytest.fixture(
    params=[
        pytest.param("asyncio", id="asyncio"),
        pytest.param("trio", id="trio"),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def _switchboard() -> Iterator[tuple[Switchboard, str]]:
    """One fake served on 127.0.0.1 per worker (see :class:`Switchboard`)."""
    board = Switchboard()
    with serving(board) as base_url:
        yield board, base_url


#: The HTTP stacks the auth-flow and client suites run on (httpx2 needs 3.11+). The
#: httpx2 twins of these suites are the slow tier; what is httpx2's own (the
#: hand-over, one session across stacks, the adapters) runs in the fast one.
STACKS = [
    pytest.param("httpx", id="httpx"),
    pytest.param(
        "httpx2",
        id="httpx2",
        marks=[
            pytest.mark.skipif(
                importlib.util.find_spec("httpx2") is None,
                reason="httpx2 not installed",
            ),
            pytest.mark.slow,
        ],
    ),
]


@pytest.fixture(params=STACKS)
def stack(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def bearer_auth_class(stack: str) -> Any:
    """TeletrackerAuth for *stack*: teletracker_async's, or its httpx2 twin."""
    if stack == "httpx":
        return TeletrackerAuth
    return importlib.import_module("teletracker_async.httpx2").TeletrackerAuth


@attrs.define
class Env:
    """A fake server, an auth on the same fake clock, and a client wired to both,
    on one HTTP stack (``http`` is its module: httpx or httpx2)."""

    clock: FakeClock
    fake: FakeTeletracker
    auth: TeletrackerAuth
    client: httpx.AsyncClient
    http: ModuleType

    async def call_data(self) -> httpx.Response:
        return await self.client.get(
            "/reports/call-data",
            params={"start_date": "2026-01-01", "end_date": "2026-01-01"},
        )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake(clock: FakeClock) -> FakeTeletracker:
    return FakeTeletracker(
        users={USERNAME: (PASSWORD, [1, 2])},
        clock=clock,
        token_lifetime=3600,
        records_per_day=2,
    )


@pytest.fixture
def auth(clock: FakeClock) -> TeletrackerAuth:
    return TeletrackerAuth(USERNAME, PASSWORD, base_url=BASE_URL, clock=clock)


@pytest.fixture
async def env(
    clock: FakeClock, fake: FakeTeletracker, stack: str
) -> AsyncIterator[Env]:
    http = importlib.import_module(stack)
    auth = bearer_auth_class(stack)(USERNAME, PASSWORD, base_url=BASE_URL, clock=clock)
    transport = fake.transport(stack=stack)  # type: ignore[call-overload]
    async with http.AsyncClient(
        auth=auth, transport=transport, base_url=BASE_URL
    ) as client:
        yield Env(clock, fake, auth, client, http)


# -- a real Redis server (no mocks: it must run scripts, die, restart and freeze) ----


def redis_binary() -> str | None:
    """$TELETRACKER_TEST_REDIS_SERVER, else redis-server or valkey-server on PATH."""
    return find_redis_server()


def need_redis_binary() -> str:
    """The server binary; none: skip here, but fail in CI, which must never skip."""
    binary = redis_binary()
    if binary is None:
        message = (
            "no redis-server or valkey-server on PATH "
            "(or set TELETRACKER_TEST_REDIS_SERVER)"
        )
        if os.environ.get("CI"):
            pytest.fail(message + ": CI must run the Redis tests")
        pytest.skip(message)
    return binary


class RedisServer(_RedisServer):
    """The tests' server (tests/support), with a redis-py client."""

    def client(self) -> Any:
        return redis_lib().Redis(unix_socket_path=str(self.socket))


def redis_lib() -> Any:
    return importlib.import_module("redis")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """The session's shared server (tests keep apart by key prefix)."""
    server = RedisServer(need_redis_binary(), tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def redis_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[[], RedisServer]]:
    """Private servers for fault tests (killed, restarted, frozen), stopped after."""
    binary = need_redis_binary()
    servers: list[RedisServer] = []

    def make() -> RedisServer:
        server = RedisServer(binary, tmp_path_factory.mktemp("redis-private"))
        servers.append(server)
        server.start()
        return server

    try:
        yield make
    finally:
        for server in servers:
            server.close()


@pytest.fixture(scope="module")
def served() -> Iterator[str]:
    """The fake on 127.0.0.1, served by ``teletracker-async serve`` in its own process
    (users: USERNAME with PASSWORD, accounts 1 and 2); yields its base URL."""
    with served_elsewhere(600, user=f"{USERNAME}:{PASSWORD}:1,2") as url:
        yield url
