"""The session's events (teletracker_async.events) and ``auth.stats``: each event
fires exactly when it should, is delivered outside the lock, and holds no secret."""

from __future__ import annotations

import asyncio
import importlib
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import attrs
import httpx
import pytest
import trio

from teletracker_async import (
    APIConnectionError,
    ServerError,
    TeletrackerAuth,
    TeletrackerBasicAuth,
    TeletrackerClient,
)
from teletracker_async.events import (
    LoggedIn,
    Refreshed,
    RefreshTokenWithheld,
    RenewalFailed,
    RenewalShared,
    RequestRetried,
    SessionDropped,
    SessionEvent,
    SessionStats,
    StoreOperation,
)
from teletracker_async.stores import FileTokenStore, MemoryTokenStore, StoredRecord
from teletracker_async.testing import FakeClock, FakeTeletracker
from tests.conftest import BASE_URL, PASSWORD, USERNAME, Env, bearer_auth_class

pytestmark = pytest.mark.anyio

DAY = ("2026-01-01", "2026-01-01")


@attrs.define
class Heard:
    """A listener that keeps what it is told."""

    events: list[SessionEvent] = attrs.Factory(list)

    def __call__(self, event: SessionEvent) -> None:
        self.events.append(event)

    def kinds(self) -> list[type[SessionEvent]]:
        return [type(event) for event in self.events]

    def take(self) -> list[type[SessionEvent]]:
        kinds = self.kinds()
        self.events.clear()
        return kinds

    def one(self, cls: type[Any]) -> Any:
        found = [event for event in self.events if isinstance(event, cls)]
        assert len(found) == 1, self.kinds()
        return found[0]


@pytest.fixture
def heard(env: Env) -> Heard:
    listener = Heard()
    env.auth.add_listener(listener)
    return listener


async def _no_sleep(_: float) -> None:
    await anyio.lowlevel.checkpoint()


@pytest.fixture
async def client(env: Env) -> AsyncIterator[TeletrackerClient[Any]]:
    """A TeletrackerClient on the env's auth (its stack), retries without sleeping."""
    transport = env.fake.transport(stack=env.http.__name__)  # type: ignore[call-overload]
    async with TeletrackerClient(
        auth=env.auth, transport=transport, sleep=_no_sleep
    ) as made:
        yield made


# -- renewals ---------------------------------------------------------------------------


async def test_a_login_then_a_refresh_are_one_event_each(
    env: Env, heard: Heard
) -> None:
    """The first request logs in (LoggedIn, reason "first"); one past expiry
    refreshes (Refreshed); requests in between tell nothing."""
    await env.call_data()
    await env.call_data()
    assert heard.kinds() == [LoggedIn]
    login = heard.one(LoggedIn)
    session = env.auth.session
    assert session is not None
    assert (login.guid, login.generation, login.reason) == (session.guid, 1, "first")
    assert login.at == env.clock()
    assert login.at_utc.tzinfo is timezone.utc
    heard.events.clear()
    env.clock.advance(3600)
    await env.call_data()
    refreshed = heard.one(Refreshed)
    assert heard.kinds() == [Refreshed]
    assert refreshed.generation == 2
    assert refreshed.by_other_process is False
    assert env.auth.stats == SessionStats(logins=1, refreshes=1)


async def test_a_refresh_storm_is_one_refresh_shared_by_every_waiter(
    env: Env, heard: Heard
) -> None:
    """Three hundred requests past expiry: one Refreshed, one RenewalShared counting
    the 299 that waited for it."""
    await env.call_data()
    heard.events.clear()
    env.clock.advance(3600)
    gate = env.fake.pause_next("refresh")
    statuses: list[int] = []

    async def one() -> None:
        statuses.append((await env.call_data()).status_code)

    async with anyio.create_task_group() as tg:
        for _ in range(300):
            tg.start_soon(one)
        await gate.arrived.wait()
        await anyio.wait_all_tasks_blocked()
        gate.release()
    assert set(statuses) == {200}
    assert sorted(k.__name__ for k in heard.kinds()) == ["Refreshed", "RenewalShared"]
    assert heard.one(RenewalShared).waiters == 299
    assert env.auth.stats.requests_waited == 299
    assert env.fake.stats.refreshes == 1


async def test_a_failed_refresh_then_a_login_that_withholds_the_refresh_token(
    env: Env, heard: Heard
) -> None:
    """A refresh answered 503 past expiry fails (RenewalFailed, give_up); the next
    renewal does not send that refresh token again (RefreshTokenWithheld) and logs
    in (LoggedIn, reason "refresh_withheld")."""
    await env.call_data()
    heard.events.clear()
    env.clock.advance(3600)
    env.fake.fail_next("refresh", 503)
    with pytest.raises(ServerError):
        await env.call_data()
    failed = heard.one(RenewalFailed)
    assert heard.kinds() == [RenewalFailed]
    assert (failed.kind, failed.error_type, failed.status_code, failed.then) == (
        "refresh",
        "ServerError",
        503,
        "give_up",
    )
    assert isinstance(failed.error, ServerError)
    assert failed.retry_at is None
    heard.events.clear()
    await env.call_data()
    assert heard.kinds() == [RefreshTokenWithheld, LoggedIn]
    assert heard.one(LoggedIn).reason == "refresh_withheld"
    stats = env.auth.stats
    assert (stats.failed_refreshes, stats.refresh_tokens_withheld) == (1, 1)
    assert (stats.logins, stats.refreshes) == (2, 0)


async def test_an_early_refresh_that_fails_keeps_the_token_until_retry_at(
    env: Env, heard: Heard
) -> None:
    """In the early window a failed refresh says the valid token goes on, and
    when the next try comes."""
    await env.call_data()
    heard.events.clear()
    env.clock.advance(3600 - 200)
    env.fake.fail_next("refresh", 503)
    assert (await env.call_data()).status_code == 200
    failed = heard.one(RenewalFailed)
    assert failed.then == "retry_later"
    assert failed.retry_at is not None
    assert failed.retry_at > env.clock()


async def test_a_refused_refresh_drops_the_revoked_session_and_logs_in(
    env: Env, heard: Heard
) -> None:
    """A revoked session's refresh is refused: RenewalFailed (then "login"),
    SessionDropped (revoked), LoggedIn (reason "refresh_refused")."""
    await env.call_data()
    first = env.auth.session
    assert first is not None
    heard.events.clear()
    env.fake.revoke_sessions()
    env.clock.advance(3600)
    assert (await env.call_data()).status_code == 200
    assert heard.kinds() == [RenewalFailed, SessionDropped, LoggedIn]
    failed, dropped, login = heard.events
    assert isinstance(failed, RenewalFailed)
    assert (failed.kind, failed.then, failed.error_type) == (
        "refresh",
        "login",
        "AuthenticationError",
    )
    assert isinstance(dropped, SessionDropped)
    assert (dropped.reason, dropped.guid) == ("revoked", first.guid)
    assert isinstance(login, LoggedIn)
    assert login.reason == "refresh_refused"


async def test_a_refused_token_drops_its_session(env: Env, heard: Heard) -> None:
    """A request whose valid-looking token is refused drops that session
    (token_refused) before renewing."""
    await env.call_data()
    heard.events.clear()
    env.fake.revoke_sessions()
    assert (await env.call_data()).status_code == 200
    assert heard.kinds()[:2] == [SessionDropped, RenewalFailed]
    assert heard.events[0].generation == 1
    assert isinstance(heard.events[0], SessionDropped)
    assert heard.events[0].reason == "token_refused"
    assert heard.kinds()[-1] is LoggedIn


async def test_a_fork_drops_the_session_and_the_child_logs_in(
    env: Env, heard: Heard
) -> None:
    """A forked child (its hook called here) tells SessionDropped(fork) with its
    next request, which logs in."""
    await env.call_data()
    heard.events.clear()
    env.auth._core._after_fork()
    await env.call_data()
    assert heard.kinds() == [SessionDropped, LoggedIn]
    dropped = heard.events[0]
    assert isinstance(dropped, SessionDropped)
    assert (dropped.reason, dropped.generation) == ("fork", 1)


async def test_an_account_switch_drops_the_old_session(
    env: Env, heard: Heard, client: TeletrackerClient[Any]
) -> None:
    """switch_account drops the old account's session and logs in to the new one."""
    await client.session()
    heard.events.clear()
    await client.switch_account(2)
    assert heard.kinds() == [SessionDropped, LoggedIn]
    dropped, login = heard.events
    assert isinstance(dropped, SessionDropped)
    assert isinstance(login, LoggedIn)
    assert dropped.reason == "account_switch"
    assert (login.reason, login.account_id, login.generation) == (
        "account_switch",
        2,
        2,
    )


# -- retries ----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 503])
async def test_a_retried_request_says_why_and_how_long_it_waits(
    env: Env, heard: Heard, client: TeletrackerClient[Any], status: int
) -> None:
    """A data request answered 429/503 is tried again: RequestRetried with the
    attempt, the reason, the wait, and on_exchange=False."""
    await client.session()
    heard.events.clear()
    env.fake.fail_next("data", status, headers={"Retry-After": "2"})
    await client.call_data(*DAY)
    retried = heard.one(RequestRetried)
    assert heard.kinds() == [RequestRetried]
    assert (retried.attempt, retried.reason, retried.wait) == (1, f"HTTP {status}", 2)
    assert retried.on_exchange is False
    assert (retried.method, retried.path) == ("GET", "/reports/call-data")
    assert env.auth.stats.retries == 1


async def test_a_dropped_login_is_retried_as_a_failure_on_the_exchange(
    env: Env, heard: Heard, client: TeletrackerClient[Any]
) -> None:
    """The login in front of a request is dropped: RenewalFailed (NoAnswer), then
    RequestRetried(on_exchange=True), then the login of the next try."""
    env.fake.drop_next("login")
    await client.call_data(*DAY)
    assert heard.kinds() == [RenewalFailed, RequestRetried, LoggedIn]
    failed, retried, _ = heard.events
    assert isinstance(failed, RenewalFailed)
    assert isinstance(retried, RequestRetried)
    assert (failed.kind, failed.error_type, failed.error) == ("login", "NoAnswer", None)
    assert failed.then == "give_up"
    assert retried.on_exchange is True
    assert env.auth.stats.failed_logins == 1


async def test_a_login_refused_with_503_is_retried_on_the_exchange(
    env: Env, heard: Heard, client: TeletrackerClient[Any]
) -> None:
    """A login answered 503 fails (RenewalFailed) and its request is tried again
    (RequestRetried, on_exchange=True, the auth endpoint's status)."""
    env.fake.fail_next("login", 503)
    await client.call_data(*DAY)
    assert heard.kinds() == [RenewalFailed, RequestRetried, LoggedIn]
    retried = heard.one(RequestRetried)
    assert retried.on_exchange is True
    assert retried.reason == "HTTP 503 from the auth endpoint"


# -- a token store ----------------------------------------------------------------------


async def test_a_session_renewed_by_another_process_is_adopted_as_refreshed(
    clock: FakeClock, fake: FakeTeletracker, stack: str, tmp_path: Path
) -> None:
    """Two auths on one FileTokenStore file stand for two processes: the second
    adopts the first's session (Refreshed, by_other_process=True) and then its
    refresh; each store operation is told (StoreOperation)."""
    auth_class = bearer_auth_class(stack)
    http = importlib.import_module(stack)
    heard = [Heard(), Heard()]
    auths = [
        auth_class(
            USERNAME,
            PASSWORD,
            base_url=BASE_URL,
            clock=clock,
            store=FileTokenStore(tmp_path / "tokens"),
            on_event=listener,
        )
        for listener in heard
    ]
    clients = [
        http.AsyncClient(
            auth=auth,
            transport=fake.transport(stack=stack),  # type: ignore[call-overload]
            base_url=BASE_URL,
        )
        for auth in auths
    ]
    params = {"start_date": DAY[0], "end_date": DAY[1]}
    for made in clients:
        assert (await made.get("/reports/call-data", params=params)).status_code == 200
    first, second = heard
    assert first.one(LoggedIn).reason == "first"
    adopted = second.one(Refreshed)
    assert adopted.by_other_process is True
    assert adopted.guid == auths[0].session.guid
    ops = [(e.op, e.outcome) for e in first.events if isinstance(e, StoreOperation)]
    assert ops == [
        ("load", "ok"),
        ("acquire", "ok"),
        ("load", "ok"),
        ("commit", "ok"),
        ("release", "ok"),
    ]
    assert all(
        e.store == "FileTokenStore"
        for e in first.events
        if isinstance(e, StoreOperation)
    )
    clock.advance(3600)  # the first refreshes; the second adopts that
    for made in clients:
        await made.get("/reports/call-data", params=params)
    assert [e.by_other_process for e in second.events if isinstance(e, Refreshed)] == [
        True,
        True,
    ]
    assert auths[1].stats.adopted == 2
    assert auths[1].stats.logins == 0
    assert fake.stats.logins == 1
    assert fake.stats.refreshes == 1
    ours, theirs = auths[0].session, auths[1].session
    assert theirs.expires_at_utc == ours.expires_at_utc  # through the record
    assert theirs.refresh_expires_at_utc == ours.refresh_expires_at_utc
    for made in clients:
        await made.aclose()


class _Unreachable(MemoryTokenStore):
    """A store whose every load fails, as a store that cannot be reached does."""

    async def load(self, key: str) -> StoredRecord | None:
        raise OSError(f"connection refused loading {key}")


async def test_a_failing_store_operation_is_told_and_the_login_is_private(
    clock: FakeClock, fake: FakeTeletracker
) -> None:
    """A store that fails: StoreOperation(outcome="error"), then a private login
    (LoggedIn, reason "private")."""
    heard = Heard()
    auth = TeletrackerAuth(
        USERNAME,
        PASSWORD,
        base_url=BASE_URL,
        clock=clock,
        store=_Unreachable(),
        on_event=heard,
    )
    async with httpx.AsyncClient(auth=auth, transport=fake.transport()) as made:
        assert (await made.post(f"{BASE_URL}/echo", content=b"x")).status_code == 200
    assert heard.kinds() == [StoreOperation, LoggedIn]
    operation, login = heard.events
    assert isinstance(operation, StoreOperation)
    assert isinstance(login, LoggedIn)
    assert (operation.op, operation.outcome) == ("load", "error")
    assert login.reason == "private"


# -- listeners --------------------------------------------------------------------------


async def test_with_no_listener_no_event_is_built_and_stats_still_count(
    env: Env, client: TeletrackerClient[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a listener, a login, a refresh storm, a failed refresh, a withheld
    refresh token, a refusal and a retry build no event at all (every event class
    replaced by one that fails), and auth.stats counts them all the same."""

    def never(**_: object) -> None:
        raise AssertionError("an event was built with nobody listening")

    for name in (
        "LoggedIn",
        "Refreshed",
        "RenewalFailed",
        "RenewalShared",
        "RefreshTokenWithheld",
        "SessionDropped",
        "RequestRetried",
        "StoreOperation",
    ):
        monkeypatch.setattr(f"teletracker_async._session.core.{name}", never)
    await client.call_data(*DAY)
    env.clock.advance(3600)
    gate = env.fake.pause_next("refresh")
    async with anyio.create_task_group() as tg:
        for _ in range(100):
            tg.start_soon(env.call_data)
        await gate.arrived.wait()
        await anyio.wait_all_tasks_blocked()
        gate.release()
    env.clock.advance(3600)
    env.fake.fail_next("refresh", 503)  # retried: a login, its token withheld
    await client.call_data(*DAY)
    env.fake.revoke_sessions()  # the token refused, the refresh too: a login
    await client.call_data(*DAY)
    env.fake.fail_next("data", 503)
    await client.call_data(*DAY)
    stats = env.auth.stats
    assert (stats.logins, stats.refreshes, stats.failed_refreshes) == (3, 1, 2)
    assert stats.refresh_tokens_withheld == 1
    assert stats.requests_waited == 99
    assert (stats.retries, stats.sessions_dropped) == (2, 2)


async def test_a_raising_listener_is_logged_once_and_breaks_nothing(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    """A listener that raises on every event is logged once, at ERROR with its
    traceback; the requests succeed and the other listeners hear everything."""

    def broken(event: SessionEvent) -> None:
        raise RuntimeError(f"listener bug on {type(event).__name__}")

    after = Heard()
    env.auth.add_listener(broken)
    env.auth.add_listener(after)
    with caplog.at_level(logging.ERROR, logger="teletracker_async"):
        for _ in range(3):
            assert (await env.call_data()).status_code == 200
            env.clock.advance(3600)
    assert after.kinds() == [LoggedIn, Refreshed, Refreshed]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert errors[0].exc_info is not None
    assert "broken" in errors[0].getMessage()


async def test_a_listener_runs_with_the_session_lock_free(
    env: Env, client: TeletrackerClient[Any]
) -> None:
    """Every event is delivered after the core's lock is released: a listener can
    take it at once (it could not if another thread's change held it)."""
    free: list[bool] = []

    def try_lock(_: SessionEvent) -> None:
        mutex = env.auth._core._mutex
        took = mutex.acquire(blocking=False)
        if took:
            mutex.release()
        free.append(took)

    env.auth.add_listener(try_lock)
    await client.call_data(*DAY)
    env.clock.advance(3600)
    env.fake.fail_next("refresh", 503)
    await client.call_data(*DAY)
    env.fake.revoke_sessions()
    env.fake.fail_next("data", 503)
    await client.call_data(*DAY)
    assert len(free) >= 6
    assert all(free)


async def test_listeners_are_added_and_removed(env: Env) -> None:
    """A removed listener hears nothing more; removing one twice is a ValueError;
    on_event refuses what is not callable."""
    heard = Heard()
    env.auth.add_listener(heard)
    await env.call_data()
    env.auth.remove_listener(heard)
    env.clock.advance(3600)
    await env.call_data()
    assert heard.kinds() == [LoggedIn]
    with pytest.raises(ValueError, match="not in"):
        env.auth.remove_listener(heard)
    with pytest.raises(TypeError, match="on_event"):
        TeletrackerAuth(USERNAME, PASSWORD, on_event=42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="on_event"):
        env.auth.add_listener("print")  # type: ignore[arg-type]


async def test_the_client_gives_its_listeners_to_its_auth(
    fake: FakeTeletracker,
) -> None:
    """TeletrackerClient(on_event=...) builds an auth that tells them; with
    auth=... they are added to that auth; a basic auth has no session to tell."""
    heard, more = Heard(), Heard()
    async with TeletrackerClient(
        USERNAME,
        PASSWORD,
        base_url=BASE_URL,
        transport=fake.transport(),
        on_event=[heard, more],
    ) as made:
        await made.call_data(*DAY)
        given = TeletrackerAuth(USERNAME, PASSWORD, base_url=BASE_URL)
        async with TeletrackerClient(
            auth=given, transport=fake.transport(), on_event=more
        ) as other:
            await other.call_data(*DAY)
    assert heard.kinds() == [LoggedIn]
    assert more.kinds() == [LoggedIn, LoggedIn]
    with pytest.raises(TypeError, match="on_event needs a TeletrackerAuth"):
        TeletrackerClient(
            auth=TeletrackerBasicAuth(USERNAME, PASSWORD, base_url=BASE_URL),
            on_event=heard,
        )


def test_one_auth_in_two_threads_tells_each_change_once_in_the_thread_making_it() -> (
    None
):
    """An asyncio loop and a trio run in two threads share one auth: 200 requests
    past expiry in each make one Refreshed and one RenewalShared counting every
    request that waited (the renewing loop's 199 at least), each told in a thread
    that made it, never the main one."""
    clock = FakeClock()
    fake = FakeTeletracker(users={USERNAME: PASSWORD}, clock=clock)
    told: list[tuple[SessionEvent, str]] = []
    auth = TeletrackerAuth(
        USERNAME,
        PASSWORD,
        base_url=BASE_URL,
        clock=clock,
        on_event=lambda e: told.append((e, threading.current_thread().name)),
    )
    ready = threading.Barrier(2)
    failures: list[BaseException] = []

    async def storm(together: bool = True) -> None:
        async with httpx.AsyncClient(
            auth=auth, transport=fake.transport(), base_url=BASE_URL
        ) as made:

            async def one() -> None:
                assert (await made.post("/echo", content=b"x")).status_code == 200

            if together:
                await anyio.to_thread.run_sync(ready.wait)
            async with anyio.create_task_group() as tg:
                for _ in range(200):
                    tg.start_soon(one)

    def run(runner: Callable[[], Awaitable[None]] | Any) -> None:
        try:
            runner()
        except BaseException as exc:
            failures.append(exc)

    asyncio.run(storm(together=False))  # the login
    told.clear()
    clock.advance(3600)
    fake.delay_next("refresh", 0.2)
    threads = [
        threading.Thread(target=run, args=(lambda: asyncio.run(storm()),), name="aio"),
        threading.Thread(target=run, args=(lambda: trio.run(storm),), name="trio"),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    kinds = sorted(type(event).__name__ for event, _ in told)
    assert kinds == ["Refreshed", "RenewalShared"]
    assert {name for _, name in told} <= {"aio", "trio"}
    shared = next(e for e, _ in told if isinstance(e, RenewalShared))
    assert 199 <= shared.waiters == auth.stats.requests_waited <= 399
    assert fake.stats.refreshes == 1


# -- no secret in any event -------------------------------------------------------------


def _texts(value: object, depth: int = 0) -> list[str]:
    """repr() and str() of *value* and, recursively, of every field it holds."""
    texts = [repr(value), str(value)]
    if depth > 6:
        return texts
    children: list[object] = []
    if attrs.has(type(value)):
        fields = attrs.fields(type(value))  # type: ignore[arg-type]
        children = [getattr(value, f.name) for f in fields]
    elif isinstance(value, BaseException):
        children = [*value.args, *vars(value).values(), value.__cause__]
    elif isinstance(value, dict):
        children = [*value.keys(), *value.values()]
    elif isinstance(value, (list, tuple, set, frozenset)):
        children = list(value)
    for child in children:
        texts += _texts(child, depth + 1)
    return texts


async def test_no_event_of_a_full_fault_scenario_holds_a_secret(
    env: Env, heard: Heard, client: TeletrackerClient[Any]
) -> None:
    """Login, refresh, failed and refused refreshes, an echoing error, a dropped
    login, retries: every field of every event, walked, names no token, refresh
    token or password the fake issued."""
    await client.call_data(*DAY)
    env.clock.advance(3600)
    await client.call_data(*DAY)
    env.fake.revoke_sessions()  # its token refused, its refresh too: a login
    await client.call_data(*DAY)
    env.clock.advance(3600 - 200)
    env.fake.fail_next("refresh", 503)
    await client.call_data(*DAY)
    env.fake.revoke_sessions()
    env.clock.advance(3600)
    await client.call_data(*DAY)
    session = env.auth.session
    assert session is not None
    env.clock.advance(3600)
    env.fake.fail_next(
        "refresh",
        500,
        times=3,
        body={
            "message": f"cannot refresh {session.refresh_token} for {PASSWORD}",
            "refreshToken": session.refresh_token,
        },
    )
    with pytest.raises(ServerError):
        await client.call_data(*DAY)
    env.fake.drop_next("login", times=3)
    with pytest.raises(APIConnectionError):
        await client.call_data(*DAY)
    env.fake.fail_next("data", 503)
    await client.call_data(*DAY)
    assert {type(e) for e in heard.events} >= {
        LoggedIn,
        Refreshed,
        RenewalFailed,
        RefreshTokenWithheld,
        SessionDropped,
        RequestRetried,
    }
    secrets = {PASSWORD, *env.fake.issued_secrets()}
    assert len(secrets) > 5
    for event in heard.events:
        for text in _texts(event):
            leaked = [s for s in secrets if s in text]
            assert not leaked, f"{type(event).__name__} holds a secret"


# -- readable expiry ----------------------------------------------------------------------


async def test_a_session_tells_its_expiry_on_both_clocks(env: Env) -> None:
    """expires_at_utc is the server's tokenExpiration in UTC, refresh_expires_at_utc
    its refreshTokenExpiration; expires_in() counts on the auth's own clock."""
    await env.call_data()
    session = env.auth.session
    assert session is not None
    assert session.expires_at_utc == session.token_expiration
    assert session.expires_at_utc.tzinfo is timezone.utc
    assert isinstance(session.refresh_expires_at_utc, datetime)
    assert session.refresh_expires_at_utc == session.refresh_token_expiration
    assert session.expires_in() == pytest.approx(3600)
    env.clock.advance(600)
    assert session.expires_in() == pytest.approx(3000)
    assert session.expires_in(now=env.clock() + 3000) == pytest.approx(0)
