"""Shared fixtures: every async test runs under asyncio and under trio."""

from __future__ import annotations

from collections.abc import AsyncIterator

import attrs
import httpx
import pytest

from teletracker_async import TeletrackerAuth
from teletracker_async.testing import FakeClock, FakeTeletracker

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


@attrs.define
class Env:
    """A fake server, an auth on the same fake clock, and a client wired to both."""

    clock: FakeClock
    fake: FakeTeletracker
    auth: TeletrackerAuth
    client: httpx.AsyncClient

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
    clock: FakeClock, fake: FakeTeletracker, auth: TeletrackerAuth
) -> AsyncIterator[Env]:
    async with httpx.AsyncClient(
        auth=auth, transport=fake.transport(), base_url=BASE_URL
    ) as client:
        yield Env(clock, fake, auth, client)
