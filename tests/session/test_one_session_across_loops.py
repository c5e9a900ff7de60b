"""One TeletrackerAuth across event loops: successive ones, and several at once in
threads (asyncio's and trio's mixed)."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import warnings
from collections.abc import Callable, Coroutine
from typing import Any

import anyio
import httpx
import pytest
import trio

from teletracker_async import TeletrackerAuth
from teletracker_async._session.machine import NEED, Start
from teletracker_async.testing import FakeClock, FakeTeletracker
from tests.conftest import BASE_URL, PASSWORD, USERNAME


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
                for _ in range(100):
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


# -- several event loops at once, in several threads ---------------------------------

LIFETIME = 3600
PAST_EXPIRY = LIFETIME  # from a fresh token: past the hard deadline
INTO_EARLY_WINDOW = LIFETIME - 100  # from a fresh token: inside the early window


def run_loop(kind: str, main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    if kind == "asyncio":
        asyncio.run(main())
    else:
        trio.run(main)


def run_loops_in_threads(
    kinds: tuple[str, ...],
    main: Callable[[], Coroutine[Any, Any, None]],
    barrier: threading.Barrier,
) -> list[BaseException]:
    """Run *main* in one thread per kind, each on its own event loop of that kind,
    with threads switched as often as CPython can; return what any of them raised."""
    failures: list[BaseException] = []

    def worker(kind: str) -> None:
        try:
            run_loop(kind, main)
        except BaseException as exc:
            failures.append(exc)
            barrier.abort()  # the others must not wait for this one

    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        threads = [threading.Thread(target=worker, args=(k,)) for k in kinds]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        sys.setswitchinterval(old_interval)
    return failures


@pytest.mark.parametrize(
    ("kinds", "rounds", "per_loop"),
    [
        # The fast tier: every kind of loop, an expiry past the hard deadline and
        # one in the early window, over a hundred requests.
        pytest.param(("asyncio", "trio"), 2, 30, id="asyncio+trio-2-expiries"),
        # The slow tier: many expiries, more loops, more requests.
        pytest.param(
            ("asyncio", "asyncio", "asyncio"),
            12,
            60,
            id="asyncio+asyncio+asyncio",
            marks=pytest.mark.slow,
        ),
        pytest.param(
            ("asyncio", "trio"), 12, 60, id="asyncio+trio", marks=pytest.mark.slow
        ),
        pytest.param(
            ("trio", "trio", "asyncio", "trio"),
            12,
            60,
            id="trio+trio+asyncio+trio",
            marks=pytest.mark.slow,
        ),
    ],
)
def test_one_session_across_event_loops_in_threads(
    kinds: tuple[str, ...], rounds: int, per_loop: int
) -> None:
    """Loops in several threads share one auth: across many expiries (past the hard
    deadline and in the early window, with a slow refresh so that loops wait on each
    other's renewal) there is one login, exactly one refresh per expiry, no refresh
    token presented twice, and every request succeeds."""
    clock = FakeClock()
    fake = FakeTeletracker(users={USERNAME: PASSWORD}, clock=clock)
    codes: list[int] = []
    shifts = [PAST_EXPIRY if r % 2 else INTO_EARLY_WINDOW for r in range(rounds)]

    def next_round() -> None:  # run by the last thread to reach the barrier
        clock.advance(shifts.pop(0))
        fake.delay_next("refresh", 0.05)

    barrier = threading.Barrier(len(kinds), action=next_round, timeout=60)
    with fake.serving() as url:
        auth = TeletrackerAuth(USERNAME, PASSWORD, base_url=url, clock=clock)

        async def main() -> None:
            async with httpx.AsyncClient(auth=auth, base_url=url) as client:
                await client.post("/echo", content=b"first")  # log in
                for _ in range(rounds):
                    await anyio.to_thread.run_sync(barrier.wait)
                    async with anyio.create_task_group() as tg:
                        for _ in range(per_loop):
                            tg.start_soon(one, client)

        async def one(client: httpx.AsyncClient) -> None:
            response = await client.post("/echo", content=b"x")
            codes.append(response.status_code)

        failures = run_loops_in_threads(kinds, main, barrier)
    assert not failures, failures
    assert codes == [200] * (rounds * per_loop * len(kinds))
    stats = fake.stats
    assert stats.logins == 1
    assert stats.refreshes == rounds  # one renewal per expiry, across every loop
    assert stats.reuse_attempts == 0  # no refresh token presented twice
    assert stats.failed_refreshes == 0
    assert stats.premature_refreshes == 0
    assert stats.max_concurrent_refreshes == 1
    assert not auth._core.busy()


# -- forks -------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_children_log_in_themselves() -> None:
    """A session obtained before os.fork is dropped in each child (asyncio and trio):
    every child logs in and refreshes its own session, the parent keeps its own, and
    no refresh token is ever presented twice across the processes."""
    clock = FakeClock()
    fake = FakeTeletracker(users={USERNAME: PASSWORD}, clock=clock)
    kinds = ["asyncio", "trio", "asyncio"]
    with fake.serving() as url:  # one server, in this process, for every process
        auth = TeletrackerAuth(USERNAME, PASSWORD, base_url=url, clock=clock)

        async def request() -> None:
            async with httpx.AsyncClient(auth=auth, base_url=url) as client:
                response = await client.post("/echo", content=b"x")
                assert response.status_code == 200

        asyncio.run(request())
        parent_session = auth.session
        assert parent_session is not None
        children = []
        for kind in kinds:
            with warnings.catch_warnings():  # 3.12+ warns about fork with threads
                warnings.simplefilter("ignore", DeprecationWarning)
                pid = os.fork()
            if pid == 0:  # pragma: no cover - the child's lines are not measured
                code = 1
                try:
                    inherited = auth.session  # must be gone
                    run_loop(kind, request)  # its own login
                    first = auth.session
                    clock.advance(LIFETIME)  # only the child's copy of the clock
                    run_loop(kind, request)  # its own refresh
                    second = auth.session
                    assert inherited is None
                    assert first is not None
                    assert second is not None
                    tokens = {first.token, second.token, parent_session.token}
                    code = 0 if len(tokens) == 3 else 2
                finally:
                    os._exit(code)
            children.append(pid)
        for pid in children:
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0
        assert auth.session is parent_session  # the parent's is untouched
        clock.advance(LIFETIME)
        asyncio.run(request())  # the parent refreshes its own session
    stats = fake.stats
    assert stats.logins == 1 + len(kinds)
    assert stats.refreshes == len(kinds) + 1
    assert stats.reuse_attempts == 0
    assert stats.failed_refreshes == 0


def test_a_loop_whose_thread_is_gone_is_dead_whatever_it_claims() -> None:
    """After a fork, a loop copied from another thread still claims to be running;
    the thread it ran in is gone, so its renewal is abandoned, not waited for."""
    from teletracker_async._session.core import _alive  # noqa: PLC0415 - the unit under test

    loop = asyncio.new_event_loop()
    try:
        loop.is_running = lambda: True  # type: ignore[method-assign]  # as copied
        ended = threading.Thread(target=lambda: None)
        ended.start()
        ended.join()
        assert not _alive((loop, ended))
        assert _alive((loop, threading.current_thread()))
    finally:
        del loop.is_running
        loop.close()
    assert not _alive((loop, threading.current_thread()))  # closed


@pytest.mark.anyio
async def test_a_renewal_aborted_after_a_fork_wakes_its_waiters() -> None:
    """A child forked while its loop ran a renewal: the child's core forgets the
    flight, but that loop's waiters stay registered on it. If the renewal then
    ends without an outcome (cancelled, its connection shared with the parent
    broken), its waiters wake and renew for the child instead of waiting forever."""
    from teletracker_async._session.core import SessionCore  # noqa: PLC0415 - the unit
    from teletracker_async._session.machine import SessionMachine  # noqa: PLC0415

    core = SessionCore(SessionMachine(refresh_margin=60.0), FakeClock())
    step = core.plan(NEED)
    assert isinstance(step, Start)
    exchange = step.exchange
    woken = 0

    async def waiter() -> None:
        nonlocal woken
        await core.wait(exchange.number)
        woken += 1

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for _ in range(200):
                tg.start_soon(waiter)
            await anyio.wait_all_tasks_blocked()
            core._after_fork()  # what os.fork runs in the child
            core.abort(exchange)
    assert woken == 200
    assert not core.busy()
    assert isinstance(core.plan(NEED), Start)  # the child's own login


@pytest.mark.anyio
async def test_a_fork_wakes_the_waiters_of_another_threads_renewal() -> None:
    """The renewal runs on another thread's loop, and 200 coroutines of this loop
    wait on it across loops. This thread forks: in the child the owner's thread
    was never copied and the session forgot the flight, so the waiters' liveness
    check wakes them instead of rechecking forever."""
    from teletracker_async._session.core import SessionCore  # noqa: PLC0415 - the unit
    from teletracker_async._session.machine import SessionMachine  # noqa: PLC0415

    core = SessionCore(SessionMachine(refresh_margin=60.0), FakeClock())
    started: list[Start] = []
    planned, hold = threading.Event(), threading.Event()

    def other_loop() -> None:
        async def owner() -> None:
            step = core.plan(NEED)
            assert isinstance(step, Start)
            started.append(step)
            planned.set()
            await anyio.to_thread.run_sync(hold.wait)

        anyio.run(owner)

    thread = threading.Thread(target=other_loop)
    thread.start()
    planned.wait()
    exchange = started[0].exchange
    woken = 0

    async def waiter() -> None:
        nonlocal woken
        await core.wait(exchange.number)
        woken += 1

    try:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                for _ in range(200):
                    tg.start_soon(waiter)
                await anyio.wait_all_tasks_blocked()
                hold.set()
                thread.join()  # as in the child: the owner's thread is gone
                core._after_fork()  # what os.fork runs in the child
    finally:
        hold.set()
        thread.join()
    assert woken == 200
    assert not core.busy()
