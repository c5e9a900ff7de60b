"""The benchmark workloads. Every figure is a ratio to a floor measured in the same run.

Each workload is a coroutine taking its sizes, so the smoke tests can run it tiny.
"""

from __future__ import annotations

import contextlib
import gc
import resource
import statistics
import time
import tracemalloc
import warnings
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

import anyio
import anyio.to_thread
import httpx

from benchmarks._oauth import oauth_serving
from benchmarks.bench_auth import _static
from benchmarks.bench_auth import measure as per_request_cost
from benchmarks.bench_loopback import pull as _pull
from teletracker_async import TeletrackerAuth
from teletracker_async.testing import FakeClock, FakeTeletracker

USER, PASSWORD = "bench", "bench-pw"
BASE = "https://api.teletracker.test"
DAY = {"start_date": "2026-01-01", "end_date": "2026-01-01"}

__all__ = [
    "contended_storms",
    "early_window",
    "expiry_storm",
    "memory",
    "peers",
    "per_request",
    "threads",
]


@dataclass
class Batch:
    """One batch of concurrent requests: wall time, failures, per request the time
    its task first ran and the Authorization header it went out with, and when each
    finished, counted from the moment the whole batch was launched.

    Counting from the launch, not from each task's first step, is what shows a
    client that blocks the event loop: its other tasks cannot even start."""

    seconds: float
    failed: int
    seen: list[tuple[float, str]]
    finished: list[float]

    def median_ms(self) -> float:
        return statistics.median(self.finished) * 1000 if self.finished else 0.0


async def _batch(n: int, job: Callable[[], Awaitable[httpx.Response]]) -> Batch:
    """Run *job* in *n* tasks at once."""
    failures = 0
    seen: list[tuple[float, str]] = []
    finished: list[float] = []
    launched = time.perf_counter()

    async def one() -> None:
        nonlocal failures
        started = time.perf_counter()
        try:
            response = await job()
        except Exception:
            failures += 1
            return
        finished.append(time.perf_counter() - launched)
        if response.status_code != 200:
            failures += 1
        seen.append((started, response.request.headers.get("authorization", "")))

    async with anyio.create_task_group() as tg:
        for _ in range(n):
            tg.start_soon(one)
    return Batch(time.perf_counter() - launched, failures, seen, finished)


# -- 1. per-request cost -------------------------------------------------------------


async def per_request(requests: int = 5000, rounds: int = 5) -> dict[str, Any]:
    """TeletrackerAuth vs a static header on MockTransport, at 1 and 100 coroutines,
    on httpx and on httpx2 (when installed)."""
    results: dict[str, Any] = {
        f"c{c}": await per_request_cost(requests, rounds, c) for c in (1, 100)
    }
    if _has_httpx2():
        for c in (1, 100):
            results[f"httpx2_c{c}"] = await per_request_cost(
                requests, rounds, c, stack="httpx2"
            )
    return results


def _bearer(stack: str) -> Any:
    if stack == "httpx":
        return TeletrackerAuth
    from teletracker_async import httpx2 as adapters  # noqa: PLC0415

    return adapters.TeletrackerAuth


def _has_httpx2() -> bool:
    try:
        import httpx2  # noqa: F401, PLC0415
    except ImportError:  # Python 3.10, or the extra is not installed
        return False
    return True


# -- 1b. several event loops in several threads ----------------------------------------


async def threads(
    loops: tuple[str, ...] = ("asyncio", "trio", "asyncio", "trio"),
    coroutines: int = 250,
    expiries: int = 10,
    refresh_s: float = 0.05,
) -> dict[str, Any]:
    """One TeletrackerAuth shared by *loops* event loops, each in its own thread with
    *coroutines* coroutines, across *expiries* expiries (alternately past the hard
    deadline and inside the early window), with a refresh that takes *refresh_s*
    so that loops wait on each other. The fake is served on loopback."""
    return await anyio.to_thread.run_sync(
        _threads, loops, coroutines, expiries, refresh_s
    )


@dataclass
class _Threads:
    """What the threads of the ``threads`` workload share."""

    url: str
    auth: TeletrackerAuth
    barrier: Any  # threading.Barrier
    coroutines: int
    expiries: int
    refreshes: list[int]
    codes: list[int]
    errors: list[BaseException]

    def run(self, kind: str) -> None:
        import asyncio  # noqa: PLC0415

        import trio  # noqa: PLC0415

        try:
            if kind == "asyncio":
                asyncio.run(self.main())
            else:
                trio.run(self.main)
        except BaseException as exc:
            self.errors.append(exc)
            self.barrier.abort()

    async def main(self) -> None:
        limits = httpx.Limits(max_connections=self.coroutines)
        async with httpx.AsyncClient(
            auth=self.auth, base_url=self.url, limits=limits, timeout=60
        ) as client:
            await client.post("/echo", content=b"x")
            while True:
                await anyio.to_thread.run_sync(self.barrier.wait)
                if len(self.refreshes) == self.expiries:
                    return
                async with anyio.create_task_group() as tg:
                    for _ in range(self.coroutines):
                        tg.start_soon(self.one, client)

    async def one(self, client: httpx.AsyncClient) -> None:
        self.codes.append((await client.post("/echo", content=b"x")).status_code)


def _threads(
    loops: tuple[str, ...], coroutines: int, expiries: int, refresh_s: float
) -> dict[str, Any]:
    import threading  # noqa: PLC0415

    clock = FakeClock()
    lifetime = 3600.0
    fake = FakeTeletracker(users={USER: PASSWORD}, clock=clock, records_per_day=0)
    shifts = [lifetime if n % 2 else lifetime - 100 for n in range(expiries)]
    refreshes: list[int] = []
    seconds: list[float] = []
    marks: dict[str, float] = {}

    def next_round() -> None:  # the last thread to arrive moves the clock
        if "start" in marks:
            seconds.append(time.perf_counter() - marks["start"])
            refreshes.append(fake.stats.refreshes - int(marks["refreshes"]))
        if shifts:
            clock.advance(shifts.pop(0))
            fake.delay_next("refresh", refresh_s)
        marks["start"] = time.perf_counter()
        marks["refreshes"] = fake.stats.refreshes

    barrier = threading.Barrier(len(loops), action=next_round, timeout=120)
    with fake.serving() as url:
        auth = TeletrackerAuth(USER, PASSWORD, base_url=url, clock=clock)
        shared = _Threads(url, auth, barrier, coroutines, expiries, refreshes, [], [])
        workers = [threading.Thread(target=shared.run, args=(k,)) for k in loops]
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join()
    return {
        "loops": "+".join(loops),
        "coroutines": coroutines,
        "expiries": expiries,
        "logins": fake.stats.logins,
        "refreshes_per_expiry_max": max(refreshes, default=0),
        "refreshes_per_expiry_min": min(refreshes, default=0),
        "reuse_attempts": fake.stats.reuse_attempts,
        "failed": sum(code != 200 for code in shared.codes) + len(shared.errors),
        "round_s": statistics.median(seconds) if seconds else 0.0,
    }


# -- 2. expiry storm and early window -------------------------------------------------


@dataclass
class _Storm:
    """A logged-in auth on a fake clock, and the request every storm sends."""

    clock: FakeClock
    fake: FakeTeletracker
    auth: TeletrackerAuth
    job: Callable[[], Awaitable[httpx.Response]]


@contextlib.asynccontextmanager
async def _storm_setup() -> AsyncIterator[_Storm]:
    clock = FakeClock()
    fake = FakeTeletracker(users={USER: PASSWORD}, clock=clock, records_per_day=0)
    auth = TeletrackerAuth(USER, PASSWORD, base_url=BASE, clock=clock)
    async with httpx.AsyncClient(
        auth=auth, transport=fake.transport(), base_url=BASE
    ) as client:

        def job() -> Awaitable[httpx.Response]:
            return client.post("/echo", content=b"x")

        await job()  # logs in
        yield _Storm(clock, fake, auth, job)


async def expiry_storm(coroutines: int = 10_000, rounds: int = 3) -> dict[str, Any]:
    """*coroutines* requests the moment the token passes its hard deadline."""
    fresh: list[float] = []
    storm: list[float] = []
    refreshes: list[int] = []
    failed = 0
    async with _storm_setup() as setup:
        clock, fake, auth, job = setup.clock, setup.fake, setup.auth, setup.job
        for _ in range(rounds):
            batch = await _batch(coroutines, job)
            fresh.append(batch.seconds)
            failed += batch.failed
            session = auth.session
            assert session is not None
            clock.now = session.expires_at - 1  # past the hard deadline (-5 s)
            before = fake.stats.refreshes
            batch = await _batch(coroutines, job)
            storm.append(batch.seconds)
            failed += batch.failed
            refreshes.append(fake.stats.refreshes - before)
    return {
        "coroutines": coroutines,
        "refreshes_per_storm": max(refreshes),
        "failed": failed,
        "fresh_s": statistics.median(fresh),
        "storm_s": statistics.median(storm),
        "ratio": statistics.median(storm) / statistics.median(fresh),
    }


async def contended_storms(
    sizes: tuple[int, ...] = (10_000, 50_000, 100_000),
    refresh_times: tuple[float, ...] = (0.05, 0.5),
    *,
    collector: bool = True,
) -> list[dict[str, Any]]:
    """Storms that contend: *n* requests at once with a refresh that takes
    *refresh_s*, the token past its hard deadline or already expired. Reports how
    many coroutines waited, storm / (fresh batch + refresh time), and storm / the
    parked floor: the same *n* requests through the same client with a static
    header, each parked in its auth flow on one event that opens after
    *refresh_s* (what any auth that makes *n* requests wait for one renewal pays).
    ``collector=False`` measures with the cyclic garbage collector off, to show
    what of the gap is the collector walking the parked coroutines. Every measured
    batch starts on a collected heap, and each row's floor is measured right
    before it (not once per size, first, on a cleaner heap than the storms).
    """
    if not collector:
        gc.collect()
        gc.disable()
        try:
            return await contended_storms(sizes, refresh_times)
        finally:
            gc.enable()
    rows: list[dict[str, Any]] = []
    for n in sizes:
        fresh: float | None = None  # one fresh batch per size (the run must fit)
        for refresh_s in refresh_times:
            for where in ("past deadline", "expired"):
                # The floor right before its row, each batch on a collected heap:
                # measured once per size and first, the floor ran on a cleaner
                # heap than the storms after it (1.64 s against 1.77 to 1.85 s
                # for the same floor later in one process, 10 000 coroutines).
                gc.collect()
                floor = await _parked_floor(n, refresh_s)
                row = await _contended_storm(n, refresh_s, where, fresh)
                fresh = row["fresh_s"]
                row["parked_s"] = floor
                row["parked_ratio"] = row["storm_s"] / floor
                rows.append(row)
    return rows


class _ParkedBearer(httpx.Auth):
    """A static header, sent once *gate* (when set) has opened: the floor of a
    storm in which every request waits for one renewal."""

    def __init__(self, token: str) -> None:
        self._value = f"Bearer {token}"
        self.gate: anyio.Event | None = None

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        gate = self.gate
        if gate is not None and not gate.is_set():
            await gate.wait()
        request.headers["Authorization"] = self._value
        yield request


async def _parked_floor(n: int, refresh_s: float) -> float:
    """Seconds for *n* static-header requests parked for *refresh_s* on one event."""
    fake = FakeTeletracker(users={USER: PASSWORD}, records_per_day=0)
    async with httpx.AsyncClient(transport=fake.transport(), base_url=BASE) as raw:
        login = await raw.post(
            "/auth/login", data={"username": USER, "password": PASSWORD}
        )
    auth = _ParkedBearer(login.json()["token"])
    async with httpx.AsyncClient(
        auth=auth, transport=fake.transport(), base_url=BASE
    ) as client:
        assert (await client.post("/echo", content=b"x")).status_code == 200
        gate = auth.gate = anyio.Event()

        async def open_gate() -> None:
            await anyio.sleep(refresh_s)
            gate.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(open_gate)
            batch = await _batch(n, lambda: client.post("/echo", content=b"x"))
    assert batch.failed == 0, batch.failed
    return batch.seconds


async def _contended_storm(
    n: int, refresh_s: float, where: str, fresh_s: float | None
) -> dict[str, Any]:
    async with _storm_setup() as setup:
        clock, fake, auth, job = setup.clock, setup.fake, setup.auth, setup.job
        failed = 0
        if fresh_s is None:
            gc.collect()
            fresh = await _batch(n, job)
            fresh_s, failed = fresh.seconds, fresh.failed
        session = auth.session
        assert session is not None
        shift = -1 if where == "past deadline" else 1
        clock.now = session.expires_at + shift
        fake.delay_next("refresh", refresh_s)
        refreshes, waits = fake.stats.refreshes, auth._core.waits  # noqa: SLF001
        gc.collect()
        storm = await _batch(n, job)
    return {
        "coroutines": n,
        "refresh_s": refresh_s,
        "where": where,
        "refreshes": fake.stats.refreshes - refreshes,
        "waited": auth._core.waits - waits,  # noqa: SLF001
        "failed": failed + storm.failed,
        "fresh_s": fresh_s,
        "storm_s": storm.seconds,
        "ratio": storm.seconds / (fresh_s + refresh_s),
    }


async def early_window(
    coroutines: int = 10_000, refresh_s: float = 0.05
) -> dict[str, Any]:
    """In the early window, with a refresh that takes *refresh_s*: who waited?"""
    clock = FakeClock()
    fake = FakeTeletracker(users={USER: PASSWORD}, clock=clock, records_per_day=0)
    auth = TeletrackerAuth(USER, PASSWORD, base_url=BASE, clock=clock)
    done: list[float] = []

    async def on_response(response: httpx.Response) -> None:
        if response.request.url.path == "/auth/refresh":
            done.append(time.perf_counter())

    async with httpx.AsyncClient(
        auth=auth,
        transport=fake.transport(),
        base_url=BASE,
        event_hooks={"response": [on_response]},
    ) as client:
        await client.post("/echo", content=b"x")
        session = auth.session
        assert session is not None
        old = f"Bearer {session.token}"
        clock.advance(3600 - 200)
        fake.delay_next("refresh", refresh_s)
        batch = await _batch(coroutines, lambda: client.post("/echo", content=b"x"))
    failed = batch.failed
    delayed = _delayed(batch.seen, old, done)
    return {
        "coroutines": coroutines,
        "refreshes": fake.stats.refreshes,
        "failed": failed,
        "delayed": delayed,
        "not_delayed_share": 1 - delayed / coroutines,
    }


def _delayed(seen: list[tuple[float, str]], old: str, done: list[float]) -> int:
    """Requests that started before the refresh ended yet went out with the new token."""
    if not done:
        return 0
    return sum(1 for started, used in seen if used != old and started < done[0])


# -- 3. loopback: see bench_loopback.py ---------------------------------------------


# -- 4. peers -------------------------------------------------------------------------


async def peers(
    coroutines: int = 1000, cost_requests: int = 600, lifetime: float = 6.0
) -> dict[str, Any]:
    """Ours, authlib's AsyncOAuth2Client and httpx-auth, on an OAuth2 door to the fake
    (benchmarks/_oauth.py)."""
    return {
        name: await _peer(name, coroutines, cost_requests, lifetime)
        for name in ("teletracker_async", "authlib", "httpx_auth")
    }


async def _peer(
    name: str, coroutines: int, cost_requests: int, lifetime: float
) -> dict[str, Any]:
    fake = FakeTeletracker(users={USER: PASSWORD}, token_lifetime=lifetime)
    margin = lifetime / 2
    result: dict[str, Any] = {}
    with oauth_serving(fake) as url:
        async with _peer_client(name, url, margin) as client:

            def job() -> Awaitable[httpx.Response]:
                return cast(
                    "Awaitable[httpx.Response]",
                    client.get("/reports/call-data", params=DAY),
                )

            await job()  # logs in
            result["cost_ratio"] = await _peer_cost(client, url, cost_requests)
            # Expiry storm: everyone arrives once the token has expired.
            await anyio.sleep(max(0.0, _remaining(fake) + 0.05))
            before = (fake.stats.refreshes, fake.stats.logins)
            storm = await _batch(coroutines, job)
            result["storm_refreshes"] = fake.stats.refreshes - before[0]
            result["storm_logins"] = fake.stats.logins - before[1]
            result["storm_failed"] = storm.failed
            # Early window: a control batch on a fresh token, then the same batch
            # past half the lifetime with a refresh that takes 0.5 s. The stall is
            # what the refresh added to the median request (not to the refresher).
            control = await _batch(coroutines, job)
            # Start a third of the way into our early window: authlib, whose
            # expiry is in whole seconds, has decided to refresh by then as well.
            await anyio.sleep(max(0.0, _remaining(fake) - 0.65 * margin))
            fake.delay_next("refresh", 0.5)
            refreshes = fake.stats.refreshes
            early = await _batch(coroutines, job)
            result["early_refreshes"] = fake.stats.refreshes - refreshes
            result["early_failed"] = control.failed + early.failed
            result["early_stall_ms"] = early.median_ms() - control.median_ms()
    result["reuse_attempts"] = fake.stats.reuse_attempts
    result["premature_refreshes"] = fake.stats.premature_refreshes
    return result


def _remaining(fake: FakeTeletracker) -> float:
    """Seconds until the newest token the fake issued expires."""
    newest = max(b.expires for b in fake._by_token.values())  # noqa: SLF001
    return newest - fake.clock()


class _peer_client:  # noqa: N801 - used as a context manager factory
    """Builds each peer's async client, logged in or ready to log in."""

    def __init__(self, name: str, url: str, margin: float) -> None:
        self.name, self.url, self.margin = name, url, margin
        self._close: list[Callable[[], Awaitable[None]]] = []

    async def __aenter__(self) -> Any:
        if self.name == "teletracker_async":
            auth = TeletrackerAuth(
                USER, PASSWORD, base_url=self.url, refresh_margin=self.margin
            )
            client = httpx.AsyncClient(auth=auth, base_url=self.url)
            self._close.append(client.aclose)
            return client
        if self.name == "authlib":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # it warns that httpx is deprecated
                from authlib.integrations.httpx_client import (  # type: ignore[import-untyped]  # noqa: PLC0415
                    AsyncOAuth2Client,
                )
            oauth = AsyncOAuth2Client(
                token_endpoint=f"{self.url}/oauth/token",
                # authlib keeps expires_at in whole seconds, so it may act up to 1 s
                # early: a leeway 1 s short keeps it from refreshing before half-life.
                leeway=max(0, int(self.margin) - 1),
                base_url=self.url,
            )
            self._close.append(oauth.aclose)
            await oauth.fetch_token(username=USER, password=PASSWORD)
            return oauth
        import httpx_auth  # noqa: PLC0415

        httpx_auth.OAuth2.token_cache.clear()
        sync = httpx.Client()
        auth_ = httpx_auth.OAuth2ResourceOwnerPasswordCredentials(
            f"{self.url}/oauth/token",
            USER,
            PASSWORD,
            early_expiry=self.margin,
            client=sync,
        )
        client = httpx.AsyncClient(auth=auth_, base_url=self.url)
        self._close.append(client.aclose)

        async def close_sync() -> None:
            await anyio.to_thread.run_sync(sync.close)

        self._close.append(close_sync)
        return client

    async def __aexit__(self, *exc: object) -> None:
        for close in self._close:
            await close()


async def _peer_cost(client: Any, url: str, requests: int) -> float:
    """Valid-session cost over loopback: the peer's time per request over a static
    header's (a fresh token per round, so that the floor never meets expiry)."""
    async with httpx.AsyncClient(base_url=url) as plain:

        async def via_peer() -> None:
            (await client.get("/reports/call-data", params=DAY)).raise_for_status()

        ratios = []
        for _ in range(3):
            login = await plain.post(
                "/auth/login", data={"username": USER, "password": PASSWORD}
            )
            header = {"authorization": f"Bearer {login.json()['token']}"}

            async def via_plain(header: dict[str, str] = header) -> None:
                response = await plain.get(
                    "/reports/call-data", params=DAY, headers=header
                )
                response.raise_for_status()

            peer = await _pull(via_peer, requests, 10)
            floor = await _pull(via_plain, requests, 10)
            ratios.append(floor["rps"] / peer["rps"])
    return statistics.median(ratios)


# -- 5. memory --------------------------------------------------------------------------


async def memory(
    requests: int = 100_000, refreshes: int = 100, static: bool = False
) -> dict[str, Any]:
    """Growth over *requests* requests with *refreshes* refreshes (tracemalloc, RSS).

    Run it in a fresh process (the runner does): peak RSS only ever rises, so an
    earlier workload in the same process would hide any growth. With *static*, the
    same requests carry a static header (the floor; no refresh)."""
    clock = FakeClock()
    fake = FakeTeletracker(users={USER: PASSWORD}, clock=clock, records_per_day=0)
    auth: httpx.Auth = TeletrackerAuth(USER, PASSWORD, base_url=BASE, clock=clock)
    if static:
        async with httpx.AsyncClient(transport=fake.transport(), base_url=BASE) as raw:
            login = await raw.post(
                "/auth/login", data={"username": USER, "password": PASSWORD}
            )
        auth = _static("httpx", login.json()["token"])
    every = max(1, requests // refreshes)
    async with httpx.AsyncClient(
        auth=auth, transport=fake.transport(), base_url=BASE
    ) as client:
        for _ in range(2000):  # warm caches, pools and the first session
            await client.post("/echo", content=b"x")
        gc.collect()
        tracemalloc.start()
        start = tracemalloc.take_snapshot()
        rss_start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        for i in range(requests):
            if not static and i % every == every - 1:
                clock.advance(3600)
            response = await client.post("/echo", content=b"x")
            assert response.status_code == 200
        gc.collect()
        end = tracemalloc.take_snapshot()
        tracemalloc.stop()
    rss_end = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    diff = end.compare_to(start, "filename")
    total = sum(d.size_diff for d in diff)
    sdk = sum(
        d.size_diff
        for d in diff
        if "teletracker_async" in str(d.traceback)
        and "teletracker_async/testing/" not in str(d.traceback)
    )
    return {
        "requests": requests,
        "refreshes": fake.stats.refreshes,
        "static": static,
        "growth_total_kib": total / 1024,
        "growth_sdk_kib": sdk / 1024,
        "peak_rss_growth_kib": rss_end - rss_start,
    }
