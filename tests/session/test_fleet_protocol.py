"""The fleet protocol, in one process: several auths, each with its own core (as
separate processes have), sharing one session through a ``MemoryTokenStore``.

The multi-process suite (real processes, real Redis) is ``test_fleet_processes``;
here every interleaving is driven by hand on a fake clock.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Any

import anyio
import attrs
import httpx
import pytest
import trio

from teletracker_async import TeletrackerAuth
from teletracker_async._config import FLEET_WAIT, LEASE_TAKEOVER, LEASE_TTL
from teletracker_async._session.machine import NEED, Start
from teletracker_async.stores import (
    FileTokenStore,
    MemoryTokenStore,
    StoredRecord,
    StoreStats,
    TokenStore,
    TokenStoreError,
    store_key,
)
from teletracker_async.testing import FakeClock, FakeGate, FakeTeletracker
from tests.conftest import BASE_URL, PASSWORD, USERNAME

pytestmark = pytest.mark.anyio


@pytest.fixture
def recheck(monkeypatch: pytest.MonkeyPatch) -> float:
    """A waiter's liveness recheck, shortened so that a test can wait out several
    of them (the rule is the same whatever the period)."""
    period = 0.1
    monkeypatch.setattr("teletracker_async._session.core.WAIT_RECHECK", period)
    return period


LIFETIME = 3600.0
DAY = {"start_date": "2026-01-01", "end_date": "2026-01-01"}
KEY = store_key(BASE_URL, USERNAME, None)


@attrs.define
class Proc:
    """One 'process': its own auth (own core) and client."""

    auth: TeletrackerAuth
    client: httpx.AsyncClient

    async def get(self) -> httpx.Response:
        return await self.client.get("/reports/call-data", params=DAY)


@attrs.define
class Fleet:
    clock: FakeClock
    fake: FakeTeletracker
    store: Any
    procs: list[Proc]
    stack: AsyncExitStack

    async def add(self, store: Any = None, **options: Any) -> Proc:
        auth = TeletrackerAuth(
            USERNAME,
            PASSWORD,
            base_url=BASE_URL,
            clock=self.clock,
            store=self.store if store is None else store,
            **options,
        )
        client = await self.stack.enter_async_context(
            httpx.AsyncClient(
                auth=auth, transport=self.fake.transport(), base_url=BASE_URL
            )
        )
        proc = Proc(auth, client)
        self.procs.append(proc)
        return proc

    def store_calls(self) -> int:
        return sum(stats(p).calls for p in self.procs)


@pytest.fixture
async def fleet(clock: FakeClock) -> AsyncIterator[Fleet]:
    fake = FakeTeletracker(
        users={USERNAME: (PASSWORD, [1, 2])},
        clock=clock,
        token_lifetime=LIFETIME,
        records_per_day=1,
    )
    async with AsyncExitStack() as stack:
        yield Fleet(clock, fake, MemoryTokenStore(clock=clock), [], stack)


def stats(proc: Proc) -> StoreStats:
    found = proc.auth.store_stats
    assert found is not None
    return found


def write_id(proc: Proc) -> str | None:
    lease = proc.auth._core.lease
    assert lease is not None
    return lease.write_id


def assert_clean(fake: FakeTeletracker) -> None:
    """Nothing a fleet must never do happened."""
    assert fake.stats.reuse_attempts == 0
    assert fake.stats.premature_refreshes == 0
    assert fake.stats.max_concurrent_refreshes <= 1
    assert fake.stats.max_concurrent_logins <= 1


# -- the whole protocol -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("expiries", "per_process"),
    [(1, 25), pytest.param(6, 100, marks=pytest.mark.slow)],
    ids=str,
)
async def test_processes_share_one_login_and_one_refresh_per_expiry(
    fleet: Fleet, expiries: int, per_process: int
) -> None:
    """Eight 'processes' x 25 coroutines over an expiry (x 100 over six in the slow
    tier): one login, one refresh per expiry fleet-wide, no refused request, and no
    store call on the request path."""
    procs = [await fleet.add() for _ in range(8)]
    failed = 0

    async def burst() -> None:
        nonlocal failed

        async def one(proc: Proc) -> None:
            nonlocal failed
            if (await proc.get()).status_code != 200:
                failed += 1

        async with anyio.create_task_group() as tg:
            for proc in procs:
                for _ in range(per_process):
                    tg.start_soon(one, proc)

    await burst()
    assert fleet.fake.stats.logins == 1
    for expiry in range(1, expiries + 1):
        fleet.clock.advance(LIFETIME - 60)  # inside every process's early window
        await burst()
        assert fleet.fake.stats.refreshes == expiry
        calls = fleet.store_calls()
        await burst()  # no renewal due: the store is not touched
        assert fleet.store_calls() == calls
        fleet.clock.advance(60)
    assert failed == 0
    assert fleet.fake.stats.logins == 1
    assert fleet.fake.stats.rejected_requests == 0
    assert_clean(fleet.fake)
    adopted = sum(stats(p).adopted for p in procs)
    assert adopted == 7 + expiries * 7  # every other process adopted every session


async def test_a_process_adopts_a_published_session_without_an_exchange(
    fleet: Fleet,
) -> None:
    """The second process's first request uses the first's session: no login."""
    a, b = await fleet.add(), await fleet.add()
    assert (await a.get()).status_code == 200
    assert (await b.get()).status_code == 200
    assert fleet.fake.stats.logins == 1
    assert b.auth.session is not None
    assert a.auth.session is not None
    assert b.auth.session.guid == a.auth.session.guid
    assert stats(b).adopted == 1


async def test_an_adopted_session_keeps_the_stores_deadline(fleet: Fleet) -> None:
    """A session adopted late expires when the publisher's does, not a lifetime
    after the adoption: the store's remaining time is what counts."""
    a, b = await fleet.add(), await fleet.add()
    await a.get()
    fleet.clock.advance(1000)
    await b.get()
    assert a.auth.session is not None
    assert b.auth.session is not None
    assert b.auth.session.expires_at == pytest.approx(a.auth.session.expires_at)


async def test_a_refused_token_adopts_a_newer_record_and_retries_once(
    fleet: Fleet,
) -> None:
    """After the server revoked the session and one process logged in again, the
    others' refused requests adopt its record instead of logging in themselves."""
    a, b = await fleet.add(), await fleet.add()
    await a.get()
    await b.get()
    fleet.fake.revoke_sessions()
    assert (await a.get()).status_code == 200  # refused, renewed (a login)
    assert (await b.get()).status_code == 200  # refused, adopted a's record
    assert fleet.fake.stats.logins == 2
    assert b.auth.session is not None
    assert a.auth.session is not None
    assert b.auth.session.guid == a.auth.session.guid


# -- the lease ------------------------------------------------------------------------------


async def test_early_window_with_the_lease_held_elsewhere_keeps_the_token(
    fleet: Fleet,
) -> None:
    """While another process renews, an early request goes on with the valid token
    instead of waiting."""
    a, b = await fleet.add(), await fleet.add()
    await a.get()
    await b.get()
    fleet.clock.advance(LIFETIME - 60)
    gate = fleet.fake.pause_next("refresh")
    async with anyio.create_task_group() as tg:
        tg.start_soon(a.get)
        await gate.arrived.wait()  # a holds the lease and is refreshing
        old = b.auth.session
        assert (await b.get()).status_code == 200
        assert b.auth.session is old  # b kept its token, and did not wait
        gate.release()
    assert fleet.fake.stats.refreshes == 1
    assert_clean(fleet.fake)


async def test_past_the_deadline_a_process_waits_for_the_holders_session(
    fleet: Fleet, recheck: float
) -> None:
    """Past the hard deadline, the lease held elsewhere: one poller waits for the
    holder's new session and adopts it (no second refresh, no login)."""
    a, b = await fleet.add(), await fleet.add()
    await a.get()
    await b.get()
    fleet.clock.advance(LIFETIME - 1)
    gate = fleet.fake.pause_next("refresh")
    results: list[int] = []

    async with anyio.create_task_group() as tg:
        tg.start_soon(a.get)
        await gate.arrived.wait()
        tg.start_soon(_burst, b, results)
        # b polls the store meanwhile, past several of its waiters' liveness
        # rechecks: they must keep waiting on b's one flight.
        await anyio.sleep(4 * recheck)
        assert not results
        gate.release()
    assert results == [200] * 200
    assert fleet.fake.stats.refreshes == 1
    assert fleet.fake.stats.logins == 1
    assert stats(b).adopted == 2
    assert_clean(fleet.fake)


async def _status(proc: Proc, into: list[int]) -> None:
    into.append((await proc.get()).status_code)


async def _burst(proc: Proc, into: list[int], n: int = 200) -> None:
    """*n* requests at once from *proc*, their statuses appended to *into*."""
    async with anyio.create_task_group() as tg:
        for _ in range(n):
            tg.start_soon(_status, proc, into)


async def test_a_stale_lease_holder_cannot_publish_over_the_winner(
    fleet: Fleet,
) -> None:
    """A holder paused past its lease refreshes (it spent the record), but a later
    holder found the record spent, logged in and published: the late commit is
    refused and the late writer adopts the winner's session."""
    a, b = await fleet.add(), await fleet.add()
    await a.get()
    await b.get()
    fleet.clock.advance(LIFETIME - 1)
    gate = fleet.fake.pause_next("refresh")
    async with anyio.create_task_group() as tg:
        tg.start_soon(a.get)
        await gate.arrived.wait()  # a spent the record; its answer is held
        fleet.clock.advance(LEASE_TTL + 1)  # a's lease ran out; the token expired
        assert (await b.get()).status_code == 200  # b: spent -> login, published
        gate.release()
    assert fleet.fake.stats.logins == 2
    assert fleet.fake.stats.refreshes == 1
    assert stats(a).refused_commits == 1
    assert a.auth.session is not None
    assert b.auth.session is not None
    assert a.auth.session.guid == b.auth.session.guid  # a adopted b's
    record = await fleet.store.load(KEY)
    assert record is not None
    assert record.write_id == write_id(b)
    assert_clean(fleet.fake)


async def test_a_refresher_cancelled_after_spending_leaves_a_login(
    fleet: Fleet,
) -> None:
    """Unknown outcome: the refresher is cancelled after the server rotated. The
    record stays spent, so the next renewal anywhere logs in: the used refresh
    token is never sent again."""
    a, b = await fleet.add(), await fleet.add()
    await a.get()
    await b.get()
    fleet.clock.advance(LIFETIME - 1)
    gate = fleet.fake.pause_next("refresh", after=True)
    with anyio.move_on_after(5) as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(a.get)
            await gate.arrived.wait()
            tg.cancel_scope.cancel()
    assert not scope.cancelled_caught
    gate.release()
    assert (await b.get()).status_code == 200
    assert (await a.get()).status_code == 200
    assert fleet.fake.stats.refreshes == 1  # the cancelled one, never repeated
    assert fleet.fake.stats.logins == 2
    assert_clean(fleet.fake)
    lease = await fleet.store.acquire(KEY, "someone-else", 5.0)
    assert lease is not None  # the cancelled holder released its lease


async def test_a_cancelled_exchange_stops_its_heartbeat_and_frees_the_lease(
    fleet: Fleet, heartbeat: float
) -> None:
    """The holder's exchange is cancelled mid-flight: its heartbeat stops with it
    (no store call afterwards) and its lease is released."""
    beats, a, gate = await due_for_a_refresh(fleet)
    with anyio.fail_after(HANG_GUARD):
        async with anyio.create_task_group() as tg:
            tg.start_soon(a.get)
            await gate.arrived.wait()
            beats.acquired = anyio.Event()
            await beats.acquired.wait()  # it beats
            tg.cancel_scope.cancel()
    calls = list(beats.calls)
    await anyio.sleep(20 * heartbeat)
    assert beats.calls == calls
    assert calls[-1] == "release"
    gate.release()
    assert await fleet.store.acquire(KEY, "someone-else", LEASE_TTL) is not None


async def test_a_beat_that_lands_after_the_exchange_leaves_no_lease_behind(
    fleet: Fleet, heartbeat: float
) -> None:
    """A beat still in the store (a worker thread: it cannot be cancelled) when the
    exchange ends lands before the lease is released, not after it: no lease is
    left behind to stall the next renewal."""
    beats, a, gate = await due_for_a_refresh(fleet)
    with anyio.fail_after(HANG_GUARD):
        async with anyio.create_task_group() as tg:
            tg.start_soon(a.get)
            await gate.arrived.wait()  # a holds the lease, its refresh in flight
            beats.stuck = anyio.Event()
            beats.acquired = anyio.Event()
            await beats.acquired.wait()  # a beat is in the store, stuck
            gate.release()
            await anyio.wait_all_tasks_blocked()  # the flight ends around it
            beats.stuck.set()
    assert beats.calls[-1] == "release"
    assert await fleet.store.acquire(KEY, "someone-else", LEASE_TTL) is not None


# -- the lease: short, kept alive by its holder's heartbeat ------------------------------------

HANG_GUARD = 30.0  # seconds: a failure mode (a lease never handed over), not a measure


async def due_for_a_refresh(fleet: Fleet) -> tuple[Flaky, Proc, FakeGate]:
    """A process on a watched store, logged in, its token due: its next request
    refreshes, and the refresh is held at the server until the gate opens."""
    beats = Flaky(fleet.store)
    a = await fleet.add(store=beats)
    await a.get()
    fleet.clock.advance(LIFETIME - 1)
    return beats, a, fleet.fake.pause_next("refresh")


@pytest.fixture
def heartbeat(monkeypatch: pytest.MonkeyPatch) -> float:
    """A heartbeat many times a second of real time, so that a test on the fake
    clock can wait for the next beat (the rule is the same whatever the period)."""
    period = 0.01
    monkeypatch.setattr("teletracker_async._session.fleet.FleetLink.heartbeat", period)
    return period


async def test_a_live_holder_keeps_its_lease_past_the_ttl_while_its_exchange_runs(
    fleet: Fleet, heartbeat: float
) -> None:
    """The holder's heartbeat extends its short lease for as long as its exchange
    runs (here ten lease lifetimes): nobody else gets it, and its commit is
    published, not refused."""
    beats, a, gate = await due_for_a_refresh(fleet)
    with anyio.fail_after(HANG_GUARD):
        async with anyio.create_task_group() as tg:
            tg.start_soon(a.get)
            await gate.arrived.wait()  # a holds the lease, its refresh in flight
            for _ in range(20):
                fleet.clock.advance(LEASE_TTL / 2)
                beats.acquired = anyio.Event()
                await beats.acquired.wait()  # the next beat
                assert await fleet.store.acquire(KEY, "another", LEASE_TTL) is None
            gate.release()
    calls = list(beats.calls)
    await anyio.sleep(20 * heartbeat)
    assert beats.calls == calls  # the heartbeat ended with the exchange
    assert stats(a).refused_commits == 0
    assert stats(a).published == 2
    assert fleet.fake.stats.refreshes == 1
    assert_clean(fleet.fake)


async def test_a_frozen_holder_is_taken_over_within_the_takeover_time(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A holder that stops beating (a stuck event loop, SIGSTOP) loses its lease
    LEASE_TAKEOVER (<= 2 s) after it took it: another process takes over (the record
    is spent: a login) and the frozen holder's late commit is refused by the fence;
    it adopts the winner's session. No refresh token is sent twice."""
    assert LEASE_TAKEOVER <= 2.0
    monkeypatch.setattr(
        "teletracker_async._session.fleet.FleetLink.heartbeat", 10 * HANG_GUARD
    )
    a, b = await fleet.add(), await fleet.add()
    await a.get()
    await b.get()
    fleet.clock.advance(LIFETIME - 1)
    gate = fleet.fake.pause_next("refresh")
    with anyio.fail_after(HANG_GUARD):
        async with anyio.create_task_group() as tg:
            tg.start_soon(a.get)
            await gate.arrived.wait()  # a spent the record, then froze
            fleet.clock.advance(LEASE_TAKEOVER)  # b's token has expired too
            assert (await b.get()).status_code == 200  # took over: a login
            gate.release()
    assert stats(a).refused_commits == 1
    assert stats(b).published == 1
    assert a.auth.session is not None
    assert b.auth.session is not None
    assert a.auth.session.guid == b.auth.session.guid
    assert fleet.fake.stats.logins == 2
    assert fleet.fake.stats.refreshes == 1
    assert_clean(fleet.fake)


async def test_a_holder_whose_beat_was_late_publishes_when_nobody_took_over(
    fleet: Fleet, heartbeat: float
) -> None:
    """The holder's loop stalls past the TTL mid-exchange (a GC pause, CPU work)
    and nobody else takes its lease meanwhile: its heartbeat must not mint itself
    a new lease (a new fence) that then refuses its own commit. The refreshed
    session is published and the other process adopts it: one login in all."""
    beats = Flaky(fleet.store)
    a, b = await fleet.add(store=beats), await fleet.add()
    await a.get()
    await b.get()
    fleet.clock.advance(LIFETIME - 1)
    gate = fleet.fake.pause_next("refresh")
    with anyio.fail_after(HANG_GUARD):
        async with anyio.create_task_group() as tg:
            tg.start_soon(a.get)
            await gate.arrived.wait()  # a spent the record, its refresh in flight
            beats.acquired = anyio.Event()
            await beats.acquired.wait()  # it beats
            fleet.clock.advance(2 * LEASE_TTL)  # a stall: the lease ran out
            beats.acquired = anyio.Event()
            await beats.acquired.wait()  # the first beat after the stall
            await anyio.sleep(5 * heartbeat)
            gate.release()
    assert stats(a).refused_commits == 0
    assert stats(a).published == 2
    assert (await b.get()).status_code == 200
    assert fleet.fake.stats.logins == 1  # b adopted a's refreshed session
    assert_clean(fleet.fake)


@pytest.mark.parametrize("kind", ["memory", "file"])
@pytest.mark.parametrize("runner", ["asyncio", "trio"])
def test_a_flight_whose_loop_died_holding_the_lease_shares_it_with_nobody(
    kind: str,
    runner: str,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
    recheck: float,
) -> None:
    """A flight takes the lease and its event loop is torn down mid-exchange (its
    heartbeat dies with it, no release). Its lease runs out: another process gets
    it, and the next flight of the same process waits for it too and renews under
    a new fence, instead of sharing the dead flight's. (The lease lasts 0.2 s of
    real time here, and waiters recheck the dead loop every 0.1 s: the rules are
    the same whatever the periods.)"""
    ttl = 0.2
    monkeypatch.setattr("teletracker_async._session.fleet.FleetLink.lease_ttl", ttl)
    clock = FakeClock()
    fake = FakeTeletracker(users={USERNAME: PASSWORD}, clock=clock)
    store: TokenStore = (
        MemoryTokenStore() if kind == "memory" else FileTokenStore(tmp_path / "s")
    )
    auth = TeletrackerAuth(
        USERNAME, PASSWORD, base_url=BASE_URL, clock=clock, store=store
    )
    fleet_link = auth._fleet
    assert fleet_link is not None

    async def start_a_login_and_vanish() -> None:
        step = auth._core.plan(NEED)
        assert isinstance(step, Start)
        assert await fleet_link.prepare(step.exchange) is None  # the lease is ours

    asyncio.run(start_a_login_and_vanish())

    async def another_process_gets_the_lease() -> int:
        with anyio.fail_after(HANG_GUARD):
            while (fence := await store.acquire(KEY, "another", ttl)) is None:  # noqa: ASYNC110
                await anyio.sleep(0.01)  # polling the store is the point
        assert await store.release(KEY, "another")
        return fence

    async def use() -> int:
        async with httpx.AsyncClient(auth=auth, transport=fake.transport()) as client:
            with anyio.fail_after(HANG_GUARD):
                response = await client.post(f"{BASE_URL}/echo", content=b"x")
            return response.status_code

    run: Callable[[Callable[[], Any]], Any] = (
        (lambda main: asyncio.run(main())) if runner == "asyncio" else trio.run
    )
    fence = run(another_process_gets_the_lease)
    assert fence == 2  # the dead flight's was 1
    assert run(use) == 200
    record = run(lambda: store.load(KEY))
    assert record is not None
    assert record.fence == 3
    assert fake.stats.logins == 1
    assert fake.stats.reuse_attempts == 0


def test_the_heartbeat_beats_when_trio_runs_as_a_guest_of_asyncio(
    heartbeat: float,
) -> None:
    """trio run as a guest of an asyncio loop (``trio.lowlevel.start_guest_run``,
    as GUI and asyncio hosts do): the flight is a trio task while asyncio's loop
    runs too. Its heartbeat must run as a trio task: made an asyncio task, it died
    at its first line (a trio cancel scope outside trio), and the live holder lost
    its lease one TTL into any exchange."""
    clock = FakeClock()
    fake = FakeTeletracker(users={USERNAME: PASSWORD}, clock=clock)
    beats = Flaky(MemoryTokenStore(clock=clock))

    async def main() -> None:
        auth = TeletrackerAuth(
            USERNAME, PASSWORD, base_url=BASE_URL, clock=clock, store=beats
        )
        gate = fake.pause_next("login")
        async with httpx.AsyncClient(
            auth=auth, transport=fake.transport(), base_url=BASE_URL
        ) as client:
            with trio.fail_after(HANG_GUARD):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(client.get, "/echo")
                    await gate.arrived.wait()  # the lease is held, the login paused
                    for _ in range(3):
                        beats.acquired = anyio.Event()
                        await beats.acquired.wait()  # a beat
                    gate.release()
        assert fake.stats.logins == 1

    async def host() -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Any] = loop.create_future()
        trio.lowlevel.start_guest_run(
            main,
            run_sync_soon_threadsafe=loop.call_soon_threadsafe,
            done_callback=done.set_result,
        )
        (await done).unwrap()

    asyncio.run(host())


async def test_a_busy_thread_pool_does_not_stop_the_heartbeat(
    heartbeat: float, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """The application fills anyio's default thread pool (40 blocking calls: a web
    framework's sync endpoints run there) while a file-store holder's exchange is
    in flight: its heartbeat, which runs the store in a worker thread, must not
    queue behind them and let its live lease run out to another process."""
    monkeypatch.setattr(
        "teletracker_async._session.fleet.FleetLink.lease_ttl", 20 * heartbeat
    )
    store = FileTokenStore(tmp_path / "s")
    other = FileTokenStore(tmp_path / "s")  # "another process": called directly
    fake = FakeTeletracker(users={USERNAME: PASSWORD})
    auth = TeletrackerAuth(USERNAME, PASSWORD, base_url=BASE_URL, store=store)
    gate = fake.pause_next("login")
    unblock = threading.Event()
    taken = None
    async with httpx.AsyncClient(
        auth=auth, transport=fake.transport(), base_url=BASE_URL
    ) as client:
        with anyio.fail_after(HANG_GUARD):
            async with anyio.create_task_group() as tg:
                tg.start_soon(client.get, "/echo")
                await gate.arrived.wait()  # the lease is held, the login paused
                limiter = anyio.to_thread.current_default_thread_limiter()

                async def block() -> None:  # an application's blocking call
                    await anyio.to_thread.run_sync(unblock.wait)

                for _ in range(int(limiter.total_tokens)):
                    tg.start_soon(block)
                while limiter.borrowed_tokens < limiter.total_tokens:  # noqa: ASYNC110
                    await anyio.sleep(heartbeat)
                for _ in range(60):  # 3 lease lifetimes
                    await anyio.sleep(heartbeat)
                    taken = other._guard(other._acquire_locked, KEY, "other", 1.0)
                    if taken is not None:
                        break
                unblock.set()
                gate.release()
    assert taken is None  # the live holder kept its lease


# -- the store itself failing ---------------------------------------------------------------


@attrs.define
class Flaky:
    """A MemoryTokenStore that can be unplugged, lie about trust, or answer loads
    only once ``thawed`` is set (a frozen server)."""

    inner: MemoryTokenStore
    down: bool = False
    distrust: bool = False
    thawed: anyio.Event | None = None
    acquired: anyio.Event | None = None  # set on the next acquire
    #: Acquires wait for it, uncancellable (a store call in a worker thread).
    stuck: anyio.Event | None = None
    calls: list[str] = attrs.field(factory=list)

    def _check(self, name: str) -> None:
        self.calls.append(name)
        if self.down:
            raise TokenStoreError("The token store memory://flaky is unreachable")

    async def load(self, key: str) -> StoredRecord | None:
        self._check("load")
        if self.thawed is not None:
            await self.thawed.wait()
        record = await self.inner.load(key)
        if record is not None and self.distrust:
            record = attrs.evolve(record, trusted=False)
        return record

    async def acquire(self, key: str, holder: str, ttl: float) -> int | None:
        self._check("acquire")
        if self.acquired is not None:
            self.acquired.set()
        if self.stuck is not None:
            with anyio.CancelScope(shield=True):
                await self.stuck.wait()
        return await self.inner.acquire(key, holder, ttl)

    async def release(self, key: str, holder: str) -> bool:
        self._check("release")
        return await self.inner.release(key, holder)

    async def spend(self, key: str, write_id: str) -> bool:
        self._check("spend")
        if self.distrust:
            return False
        return await self.inner.spend(key, write_id)

    async def commit(self, key: str, payload: bytes, **kw: Any) -> bool:
        self._check("commit")
        return await self.inner.commit(key, payload, **kw)

    async def aclose(self) -> None:
        pass


async def test_a_frozen_store_keeps_one_flight_per_process(
    fleet: Fleet, recheck: float
) -> None:
    """No token yet, the lease held elsewhere, and the store stops answering while
    the process polls it for the holder's session: its 200 waiters keep waiting
    on its one flight across several of their liveness rechecks, and it adopts the
    session once the store answers. A second flight would spend the adopted
    record at once: a refresh of a session seconds old (the fleet suite saw it
    with Redis frozen by SIGSTOP)."""
    a = await fleet.add()
    flaky = Flaky(fleet.store)
    b = await fleet.add(store=flaky)
    gate = fleet.fake.pause_next("login")
    flaky.acquired = anyio.Event()
    results: list[int] = []

    async with anyio.create_task_group() as tg:
        tg.start_soon(a.get)
        await gate.arrived.wait()  # a holds the lease, its login in flight
        tg.start_soon(_burst, b, results)
        await flaky.acquired.wait()  # b found the lease taken: it polls
        flaky.thawed = anyio.Event()  # the store freezes
        await anyio.sleep(4 * recheck)
        gate.release()
        await anyio.sleep(0.1)
        assert not results
        assert b.auth._core.machine.flights == 1
        flaky.thawed.set()
    assert results == [200] * 200
    assert b.auth._core.machine.flights == 1
    assert stats(b).adopted == 1
    assert fleet.fake.stats.logins == 1
    assert fleet.fake.stats.refreshes == 0
    assert_clean(fleet.fake)


async def test_an_unreachable_store_keeps_the_token_then_logs_in_privately(
    fleet: Fleet, caplog: pytest.LogCaptureFixture
) -> None:
    """Store down: the valid token goes on through the early window; past the hard
    deadline one private login (never the shared refresh token), with a warning;
    then the process runs on its private session."""
    flaky = Flaky(fleet.store)
    a = await fleet.add(store=flaky)
    await a.get()
    flaky.down = True
    fleet.clock.advance(LIFETIME - 60)
    caplog.set_level(logging.WARNING, "teletracker_async")
    assert (await a.get()).status_code == 200
    assert fleet.fake.stats.logins == 1
    assert fleet.fake.stats.refreshes == 0
    assert "keeping the valid token" in caplog.text
    fleet.clock.advance(59)
    for _ in range(3):
        assert (await a.get()).status_code == 200
    assert fleet.fake.stats.logins == 2  # one private login, not one per request
    assert fleet.fake.stats.refreshes == 0  # the shared refresh token untouched
    assert "renewing privately" in caplog.text
    assert stats(a).private_renewals == 1
    assert write_id(a) is None
    # Back up: the next renewal refreshes the private session and publishes it.
    flaky.down = False
    fleet.clock.advance(LIFETIME - 1)
    assert (await a.get()).status_code == 200
    assert fleet.fake.stats.refreshes == 1
    assert stats(a).published == 2
    assert_clean(fleet.fake)


async def test_store_errors_raise_mode_raises_instead_of_a_private_login(
    fleet: Fleet,
) -> None:
    """``store_errors="raise"``: an unreachable store past the deadline is an
    error, never a second session."""
    flaky = Flaky(fleet.store)
    a = await fleet.add(store=flaky, store_errors="raise")
    await a.get()
    flaky.down = True
    fleet.clock.advance(LIFETIME - 1)
    with pytest.raises(TokenStoreError, match="unreachable"):
        await a.get()
    assert fleet.fake.stats.logins == 1


async def test_an_untrusted_record_is_neither_spent_nor_adopted(fleet: Fleet) -> None:
    """A record from another store instance (an old snapshot) may hold a used
    refresh token: a renewal logs in over it."""
    a = await fleet.add()
    await a.get()
    flaky = Flaky(fleet.store, distrust=True)
    b = await fleet.add(store=flaky)
    assert (await b.get()).status_code == 200  # no adoption: a login
    assert fleet.fake.stats.logins == 2
    fleet.clock.advance(LIFETIME - 1)
    assert (await b.get()).status_code == 200
    assert "spend" not in flaky.calls
    assert fleet.fake.stats.refreshes == 0
    assert_clean(fleet.fake)


async def test_a_corrupt_record_is_renewed_over(fleet: Fleet) -> None:
    """A record whose payload cannot be read is replaced by a fresh session."""
    lease = await fleet.store.acquire(KEY, "vandal", 1.0)
    assert lease is not None
    await fleet.store.commit(
        KEY, b"{not json", write_id="w0", expected=None, fence=lease, lifetime=60, age=0
    )
    await fleet.store.release(KEY, "vandal")
    a = await fleet.add()
    assert (await a.get()).status_code == 200
    record = await fleet.store.load(KEY)
    assert record is not None
    assert record.write_id != "w0"


async def test_a_lease_stuck_elsewhere_ends_in_one_private_renewal(
    fleet: Fleet,
) -> None:
    """A lease whose holder never returns (on a store without TTL, like a frozen
    flock holder) delays a renewal by at most FLEET_WAIT, then one private login."""
    a = await fleet.add()
    await a.get()
    fleet.clock.advance(LIFETIME - 1)
    assert await fleet.store.acquire(KEY, "frozen", 10 * FLEET_WAIT) is not None

    async def tick() -> None:
        while True:  # the fake clock moves as the poller sleeps
            await anyio.sleep(0.01)
            fleet.clock.advance(1.0)

    async with anyio.create_task_group() as tg:
        tg.start_soon(tick)
        assert (await a.get()).status_code == 200
        tg.cancel_scope.cancel()
    assert fleet.fake.stats.logins == 2
    assert stats(a).private_renewals == 1


# -- construction -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"store": object()}, TypeError, "token store"),
        ({"store": "redis://x"}, TypeError, "token store"),
        ({"store_errors": "ignore"}, ValueError, "'login' or 'raise'"),
    ],
)
def test_bad_store_arguments_are_refused(
    options: dict[str, Any], error: type[Exception], match: str
) -> None:
    """A store that is not one, or an unknown failure mode, fails at construction."""
    with pytest.raises(error, match=match):
        TeletrackerAuth(USERNAME, PASSWORD, **options)


def test_the_protocol_is_runtime_checkable() -> None:
    """Every store of the package, and a hand-written one, is a TokenStore."""
    store: Callable[[], Any]
    for store in (MemoryTokenStore, lambda: Flaky(MemoryTokenStore())):
        assert isinstance(store(), TokenStore)


async def test_no_store_means_no_store_stats(fleet: Fleet) -> None:
    """Without a store the auth reports no store statistics."""
    assert TeletrackerAuth(USERNAME, PASSWORD).store_stats is None


async def test_secrets_in_the_store_stay_out_of_reprs(fleet: Fleet) -> None:
    """The record holds the tokens; no repr around the store shows them."""
    a = await fleet.add()
    await a.get()
    record = await fleet.store.load(KEY)
    assert record is not None
    session = a.auth.session
    assert session is not None
    assert session.token.encode() in record.payload  # it is there...
    for text in (
        repr(record),
        str(record),
        repr(fleet.store),
        repr(a.auth._fleet),
        repr(a.auth.store_stats),
    ):
        assert session.token not in text
        assert session.refresh_token not in text
        assert PASSWORD not in text
    assert PASSWORD.encode() not in record.payload  # the password is never stored


async def test_an_account_switch_adopts_the_accounts_published_session(
    fleet: Fleet,
) -> None:
    """Switching accounts logs in once fleet-wide: the second process to switch to
    account 2 adopts the first one's session for it."""
    a, b = await fleet.add(), await fleet.add()
    await a.get()
    await b.get()

    def sender(proc: Proc) -> Any:
        async def send(request: httpx.Request) -> httpx.Response:
            return await proc.client.send(request, auth=None, stream=True)

        return send

    first = await a.auth.switch_account(2, sender(a))
    second = await b.auth.switch_account(2, sender(b))
    assert first.account_id == second.account_id == 2
    assert first.guid == second.guid
    assert fleet.fake.stats.logins == 2
    assert stats(b).adopted == 2
    record = await fleet.store.load(store_key(BASE_URL, USERNAME, 2))
    assert record is not None


async def test_an_answer_naming_the_account_keeps_the_record_key(
    fleet: Fleet,
) -> None:
    """A server that reports ``accountId`` in its answers does not move the fleet to
    another record key: renewals stay on the account asked for."""
    fleet.fake.account_id_in_answers = True
    a, b = await fleet.add(), await fleet.add()
    for _ in range(3):
        assert (await a.get()).status_code == 200
        assert (await b.get()).status_code == 200
        fleet.clock.advance(LIFETIME - 1)
    assert fleet.fake.stats.logins == 1
    assert fleet.fake.stats.refreshes == 2
    assert a.auth.session is not None
    assert a.auth.session.account_id == 1
    assert_clean(fleet.fake)


async def test_clients_share_a_session_through_the_store(fleet: Fleet) -> None:
    """``TeletrackerClient(store=...)`` builds its auth with the store; two clients
    (two 'processes') log in once; their account views share per-account records."""
    from teletracker_async import TeletrackerClient  # noqa: PLC0415

    def client() -> TeletrackerClient:
        return TeletrackerClient(
            USERNAME,
            PASSWORD,
            base_url=BASE_URL,
            transport=fleet.fake.transport(),
            store=fleet.store,
        )

    async with client() as one, client() as two:
        assert await one.call_data("2026-01-01", "2026-01-01")
        assert await two.call_data("2026-01-01", "2026-01-01")
        assert fleet.fake.stats.logins == 1
        assert await one.for_account(2).call_data(
            "2026-01-01", "2026-01-01", account_id=2
        )
        assert await two.for_account(2).call_data(
            "2026-01-01", "2026-01-01", account_id=2
        )
        assert fleet.fake.stats.logins == 2  # one more, for account 2, fleet-wide


def test_a_client_given_an_auth_refuses_store_arguments() -> None:
    """The store belongs to the auth: with ``auth=``, ``store=`` is a TypeError."""
    from teletracker_async import TeletrackerClient  # noqa: PLC0415

    auth = TeletrackerAuth(USERNAME, PASSWORD)
    with pytest.raises(TypeError, match="pass them to TeletrackerAuth"):
        TeletrackerClient(auth=auth, store=MemoryTokenStore())  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="pass them to TeletrackerAuth"):
        TeletrackerClient(auth=auth, store_errors="raise")  # type: ignore[call-overload]
