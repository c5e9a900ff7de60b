"""One TeletrackerAuth across successive event loops, asyncio's and trio's."""

from __future__ import annotations

import asyncio

import anyio
import httpx
import trio

from teletracker_async import TeletrackerAuth
from teletracker_async._session import NEED, Start
from teletracker_async.testing import FakeClock, FakeTeletracker

from .conftest import BASE_URL, PASSWORD, USERNAME


def test_same_auth_across_many_event_loops() -> None:
    """asyncio.run three times, then trio.run: no 'different event loop' error."""
    clock = FakeClock()
    fake = FakeTeletracker(users={USERNAME: PASSWORD}, clock=clock)
    auth = TeletrackerAuth(USERNAME, PASSWORD, base_url=BASE_URL, clock=clock)

    async def storm() -> list[int]:
        # Past expiry with a slow refresh: the lock is contended in every loop.
        clock.advance(3600)
        fake.delay_next("refresh", 0.02)
        codes: list[int] = []
        async with httpx.AsyncClient(
            auth=auth, transport=fake.transport(), base_url=BASE_URL
        ) as client:

            async def one() -> None:
                response = await client.post("/echo", content=b"x")
                codes.append(response.status_code)

            async with anyio.create_task_group() as tg:
                for _ in range(200):
                    tg.start_soon(one)
        return codes

    for _ in range(3):
        assert set(asyncio.run(storm())) == {200}
    assert set(trio.run(storm)) == {200}
    assert set(asyncio.run(storm())) == {200}
    assert fake.stats.logins == 1
    assert fake.stats.refreshes == 4
    assert fake.stats.reuse_attempts == 0


def test_renewal_owned_by_a_dead_loop_does_not_block_the_next() -> None:
    """A loop that died mid-login (flight never settled) blocks nothing later: the
    next loop sees its owner is gone and logs in itself."""
    clock = FakeClock()
    fake = FakeTeletracker(users={USERNAME: PASSWORD}, clock=clock)
    auth = TeletrackerAuth(USERNAME, PASSWORD, base_url=BASE_URL, clock=clock)

    async def start_a_login_and_vanish() -> None:
        # As if a loop was torn down mid-exchange without unwinding the flow.
        step = auth._core.plan(NEED)
        assert isinstance(step, Start)

    asyncio.run(start_a_login_and_vanish())
    assert auth._core.busy()

    async def use() -> int:
        async with httpx.AsyncClient(auth=auth, transport=fake.transport()) as client:
            response = await client.post(f"{BASE_URL}/echo", content=b"x")
            return response.status_code

    assert asyncio.run(use()) == 200
    assert trio.run(use) == 200
    assert fake.stats.logins == 1
    assert not auth._core.busy()
