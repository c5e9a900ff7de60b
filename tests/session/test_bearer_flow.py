"""TeletrackerAuth end to end against FakeTeletracker, under asyncio and trio."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Literal, cast
from urllib.parse import parse_qs

import anyio
import httpx
import pytest

from teletracker_async import (
    AuthenticationError,
    IntegratorAuth,
    OriginMismatchError,
    ResponseFormatError,
    ServerError,
    TeletrackerAuth,
    TeletrackerBasicAuth,
)
from teletracker_async.testing import FakeClock, FakeGate, FakeTeletracker
from tests.conftest import BASE_URL, PASSWORD, USERNAME, Env

pytestmark = pytest.mark.anyio


@pytest.fixture(params=[100, pytest.param(3000, marks=pytest.mark.slow)], ids=str)
def many(request: pytest.FixtureRequest) -> int:
    """How many coroutines a concurrency claim is proved with: a hundred in the fast
    tier, thousands in the slow one (which CI runs too)."""
    return int(request.param)


async def gather(
    n: int, job: Callable[[], Awaitable[object]], gate: FakeGate | None = None
) -> list[object]:
    """Run *job* in *n* concurrent tasks and return the results (or exceptions).

    With a *gate*, release it only once it is reached and every other task is
    blocked: then all *n* provably overlap, however slow the machine.
    """
    results: list[object] = []

    async def one() -> None:
        try:
            results.append(await job())
        except Exception as exc:
            results.append(exc)

    async with anyio.create_task_group() as tg:
        for _ in range(n):
            tg.start_soon(one)
        if gate is not None:
            await gate.arrived.wait()
            await anyio.wait_all_tasks_blocked()
            gate.release()
    return results


async def cancel_one_of_many(env: Env, gate: FakeGate, others: int) -> list[object]:
    """Start one request that reaches *gate*, then *others*; cancel the first one
    once everybody is blocked. Returns the others' results."""
    results: list[object] = []
    scopes: list[anyio.CancelScope] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(_run_in_scope, scopes, env)
        await gate.arrived.wait()
        for _ in range(others):
            tg.start_soon(_collect, results, env)
        await anyio.wait_all_tasks_blocked()
        scopes[0].cancel()
    return results


def statuses(results: list[object]) -> set[object]:
    return {
        type(r) if isinstance(r, BaseException) else cast("Any", r).status_code
        for r in results
    }


def settled(auth: TeletrackerAuth) -> bool:
    """No renewal in flight and nobody registered as waiting for one.

    False while an exchange is running or a waiter was left behind (a leak)."""
    return not auth._core.busy()


# -- a. first use -------------------------------------------------------------------


async def test_first_request_logs_in_with_a_form(env: Env) -> None:
    """The first request posts a form login, then carries the bearer token."""
    seen: list[httpx.Request] = []
    env.client.event_hooks["request"].append(lambda r: _record(seen, r))
    response = await env.call_data()
    assert response.status_code == 200
    login, data = seen
    assert str(login.url) == f"{BASE_URL}/auth/login"
    assert login.headers["content-type"] == "application/x-www-form-urlencoded"
    assert parse_qs(login.content.decode()) == {
        "username": [USERNAME],
        "password": [PASSWORD],
    }
    assert env.auth.session is not None
    assert data.headers["authorization"] == f"Bearer {env.auth.session.token}"
    assert env.fake.stats.logins == 1


async def _record(seen: list[httpx.Request], request: httpx.Request) -> None:
    await request.aread()  # the login's body is streamed: a hook reads it like this
    seen.append(request)


async def test_login_sends_account_id(clock: FakeClock, fake: FakeTeletracker) -> None:
    """account_id goes into the login form, and the session remembers it."""
    auth = TeletrackerAuth(
        USERNAME, PASSWORD, account_id=2, base_url=BASE_URL, clock=clock
    )
    async with httpx.AsyncClient(auth=auth, transport=fake.transport()) as client:
        response = await client.get(
            f"{BASE_URL}/reports/call-data",
            params={"start_date": "2026-01-01", "end_date": "2026-01-01"},
        )
    assert response.json()["data"][0]["account_id"] == 2
    assert auth.session is not None
    assert auth.session.account_id == 2


async def test_concurrent_first_requests_share_one_login(env: Env, many: int) -> None:
    """Hundreds (or thousands) of coroutines that start together cause exactly one
    login."""
    gate = env.fake.pause_next("login")  # all of them arrive while it is in flight
    results = await gather(many, env.call_data, gate)
    assert statuses(results) == {200}
    assert env.fake.stats.logins == 1
    assert env.fake.stats.max_concurrent_logins == 1
    assert settled(env.auth)


# -- b. local expiry --------------------------------------------------------------------


async def test_expiry_is_local_whatever_the_server_clock_says(clock: FakeClock) -> None:
    """A server clock ten days off changes nothing: the lifetime decides."""
    fake = FakeTeletracker(
        users={USERNAME: PASSWORD}, clock=clock, wall_clock_skew=-10 * 86400
    )
    auth = TeletrackerAuth(USERNAME, PASSWORD, base_url=BASE_URL, clock=clock)
    async with httpx.AsyncClient(auth=auth, transport=fake.transport()) as client:
        await client.post(f"{BASE_URL}/echo", content=b"x")
        assert auth.session is not None
        assert auth.session.expires_at == clock() + 3600
        clock.advance(3000)  # before the early window: no renewal
        await client.post(f"{BASE_URL}/echo", content=b"x")
    assert (fake.stats.logins, fake.stats.refreshes) == (1, 0)


# -- c. early window --------------------------------------------------------------------


async def test_early_window_refreshes_once_without_stalling_others(
    env: Env, many: int
) -> None:
    """In the early window one request refreshes; the others go out at once."""
    await env.call_data()
    old = env.auth.session
    assert old is not None
    env.clock.advance(3600 - 200)  # inside [expires - 300, expires - 5)
    gate = env.fake.pause_next("refresh")
    async with anyio.create_task_group() as tg:
        tg.start_soon(env.call_data)
        await gate.arrived.wait()
        # The refresh is held at the server: everyone else must still get through.
        results = await gather(many, env.call_data)
        assert statuses(results) == {200}
        assert env.auth.session is old
        gate.release()
    assert env.fake.stats.refreshes == 1
    assert env.auth.session is not old
    assert settled(env.auth)


async def test_failed_early_refresh_keeps_token_and_backs_off(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    """A 5xx early refresh keeps serving the valid token, warns, and waits ~30 s."""
    await env.call_data()
    env.clock.advance(3600 - 200)
    env.fake.fail_next("refresh", 503)
    with caplog.at_level(logging.WARNING, logger="teletracker_async"):
        results = await gather(50, env.call_data)
    assert statuses(results) == {200}
    assert env.fake.stats.failed_refreshes == 0  # the injected fault answered
    assert env.fake.stats.injected_faults == 1
    assert "keeping the valid token" in caplog.text
    env.clock.advance(10)  # still inside the backoff: nobody tries again
    await gather(50, env.call_data)
    assert env.fake.stats.injected_faults == 1
    assert (env.fake.stats.logins, env.fake.stats.refreshes) == (1, 0)
    env.clock.advance(30)  # backoff over: the spent refresh token is not resent
    await env.call_data()
    assert (env.fake.stats.logins, env.fake.stats.refreshes) == (2, 0)
    assert env.fake.stats.reuse_attempts == 0


async def test_early_refresh_lost_to_the_network(env: Env, many: int) -> None:
    """A dropped early refresh fails only its requester; the rest keep going."""
    await env.call_data()
    env.clock.advance(3600 - 200)
    env.fake.drop_next("refresh")
    with pytest.raises(env.http.RemoteProtocolError):
        await env.call_data()
    env.clock.advance(1)
    results = await gather(many, env.call_data)  # backing off: no new try
    assert statuses(results) == {200}
    assert (env.fake.stats.logins, env.fake.stats.injected_faults) == (1, 1)
    env.clock.advance(40)
    assert (await env.call_data()).status_code == 200
    assert (env.fake.stats.logins, env.fake.stats.reuse_attempts) == (2, 0)
    assert settled(env.auth)


async def test_cancel_the_early_refresher(env: Env, many: int) -> None:
    """Cancelling the request that refreshes early leaves the others untouched."""
    await env.call_data()
    env.clock.advance(3600 - 200)
    results = await cancel_one_of_many(env, env.fake.pause_next("refresh"), many)
    assert statuses(results) == {200}
    assert settled(env.auth)
    env.clock.advance(200)
    assert (await env.call_data()).status_code == 200
    assert env.fake.stats.reuse_attempts == 0


# -- d. hard deadline -------------------------------------------------------------------


@pytest.mark.parametrize("past", [2.0, 3600.0], ids=["before-expiry", "expired"])
async def test_expiry_storm_causes_exactly_one_refresh(
    env: Env, past: float, many: int
) -> None:
    """Hundreds (or thousands) of coroutines past the hard deadline wait for one
    single refresh."""
    await env.call_data()
    env.clock.advance(3600 - 5 + past)
    gate = env.fake.pause_next("refresh")
    results = await gather(many, env.call_data, gate)
    assert statuses(results) == {200}
    assert (env.fake.stats.logins, env.fake.stats.refreshes) == (1, 1)
    assert env.fake.stats.rejected_requests == 0
    assert env.fake.stats.max_concurrent_refreshes == 1


@pytest.mark.parametrize(
    "per_lifetime", [40, pytest.param(1000, marks=pytest.mark.slow)], ids=str
)
async def test_many_expiries_one_refresh_each_and_no_reuse(
    env: Env, per_lifetime: int
) -> None:
    """Ten lifetimes in a row, each with a wave of concurrent requests: one refresh
    per expiry, never an old refresh token."""
    for _ in range(10):
        await gather(per_lifetime, env.call_data)
        env.clock.advance(3600)
    assert env.fake.stats.logins == 1
    assert env.fake.stats.refreshes == 9
    assert env.fake.stats.reuse_attempts == 0
    assert env.fake.stats.rejected_requests == 0


# -- e. rotation and unknown outcomes ---------------------------------------------------


async def test_refresh_with_unknown_outcome_burns_the_refresh_token(env: Env) -> None:
    """A refresh cancelled after the server rotated is never resent: log in instead."""
    await env.call_data()
    env.clock.advance(3600)
    gate = env.fake.pause_next("refresh", after=True)
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(env.call_data)
            await gate.arrived.wait()
            scope.cancel()
    assert env.fake.stats.refreshes == 1  # the server did rotate
    assert settled(env.auth)
    assert (await env.call_data()).status_code == 200
    assert env.fake.stats.logins == 2
    assert env.fake.stats.reuse_attempts == 0


async def test_dropped_refresh_burns_the_refresh_token(env: Env) -> None:
    """A refresh whose connection drops raises for its requester, then logs in."""
    await env.call_data()
    env.clock.advance(3600)
    env.fake.drop_next("refresh")
    with pytest.raises(env.http.RemoteProtocolError):
        await env.call_data()
    assert (await env.call_data()).status_code == 200
    assert (env.fake.stats.logins, env.fake.stats.refreshes) == (2, 0)
    assert env.fake.stats.reuse_attempts == 0


async def test_expired_refresh_token_is_not_sent(clock: FakeClock) -> None:
    """Past the refresh token's local deadline the SDK logs in without trying it."""
    fake = FakeTeletracker(
        users={USERNAME: PASSWORD},
        clock=clock,
        token_lifetime=60,
        refresh_token_lifetime=120,
    )
    auth = TeletrackerAuth(USERNAME, PASSWORD, base_url=BASE_URL, clock=clock)
    async with httpx.AsyncClient(auth=auth, transport=fake.transport()) as client:
        await client.post(f"{BASE_URL}/echo", content=b"x")
        session = auth.session
        assert session is not None
        assert session.refresh_expires_at == pytest.approx(clock() + 120)
        clock.advance(121)
        await client.post(f"{BASE_URL}/echo", content=b"x")
    assert (fake.stats.logins, fake.stats.refreshes, fake.stats.failed_refreshes) == (
        2,
        0,
        0,
    )


# -- f. refused refresh -------------------------------------------------------------------


async def test_refused_refresh_leads_to_one_login(env: Env) -> None:
    """A session revoked server-side: the refresh is refused, one login follows."""
    await env.call_data()
    env.fake.revoke_sessions()
    env.clock.advance(3600)
    results = await gather(300, env.call_data)
    assert statuses(results) == {200}
    assert env.fake.stats.failed_refreshes == 1
    assert env.fake.stats.logins == 2


# -- g. 401/403 on a user request -------------------------------------------------------


@pytest.mark.parametrize("expired_status", [401, 403])
async def test_rejected_token_renews_once_and_retries(
    clock: FakeClock, expired_status: Literal[401, 403], many: int
) -> None:
    """Tokens the server expired early: one shared renewal, every request retried."""
    fake = FakeTeletracker(
        users={USERNAME: PASSWORD}, clock=clock, expired_status=expired_status
    )
    auth = TeletrackerAuth(USERNAME, PASSWORD, base_url=BASE_URL, clock=clock)
    async with httpx.AsyncClient(
        auth=auth, transport=fake.transport(), base_url=BASE_URL
    ) as client:
        await client.post("/echo", content=b"warm-up")
        fake.expire_sessions()  # the server disagrees with our clock
        gate = fake.pause_next("data", times=many)  # all of them carry the old token
        results = await gather(
            many, lambda: client.post("/echo", content=b"again"), gate
        )
    assert statuses(results) == {200}
    assert fake.stats.refreshes == 1
    assert fake.stats.logins == 1
    assert fake.stats.rejected_requests == many


@pytest.mark.parametrize("connections", [1, 5])
async def test_renewal_after_401_does_not_starve_the_pool(
    clock: FakeClock, fake: FakeTeletracker, connections: int, many: int
) -> None:
    """Refused requests free their connection before waiting for the renewal."""
    auth = TeletrackerAuth(USERNAME, PASSWORD, base_url=BASE_URL, clock=clock)
    transport = fake.transport(max_connections=connections)
    async with httpx.AsyncClient(
        auth=auth, transport=transport, base_url=BASE_URL
    ) as client:
        await client.post("/echo", content=b"warm-up")
        fake.expire_sessions()
        with anyio.fail_after(30):  # a deadlock would hang here forever
            results = await gather(many, lambda: client.post("/echo", content=b"x"))
    assert statuses(results) == {200}
    assert fake.stats.refreshes == 1


async def test_persistent_403_costs_one_shared_renewal_per_wave(
    env: Env, many: int
) -> None:
    """A 403 that a fresh token does not cure is returned after one retry; each wave
    of such requests shares one renewal (at most one per token generation)."""
    await env.call_data()

    async def forbidden() -> httpx.Response:
        return await env.client.get(
            "/reports/call-data",
            params={
                "start_date": "2026-01-01",
                "end_date": "2026-01-01",
                "account_id": 9,
            },
        )

    gate = env.fake.pause_next("data", times=many)
    results = await gather(many, forbidden, gate)
    assert statuses(results) == {403}
    assert env.fake.stats.refreshes == 1  # one check that the token was not the cause
    gate = env.fake.pause_next("data", times=many)
    results = await gather(many, forbidden, gate)
    assert statuses(results) == {403}
    assert env.fake.stats.refreshes == 2  # one per generation, not one per request
    assert env.fake.stats.reuse_attempts == 0
    assert settled(env.auth)


async def test_a_refusal_never_stops_a_later_renewal(clock: FakeClock) -> None:
    """After a genuine 403 on one endpoint, a session the server revokes is still
    renewed by the next request whose token is refused (with 403 for expiry too)."""
    fake = FakeTeletracker(
        users={USERNAME: (PASSWORD, [1, 2])}, clock=clock, expired_status=403
    )
    auth = TeletrackerAuth(USERNAME, PASSWORD, base_url=BASE_URL, clock=clock)
    async with httpx.AsyncClient(
        auth=auth, transport=fake.transport(), base_url=BASE_URL
    ) as client:
        forbidden = await client.get(
            "/reports/call-data",
            params={
                "start_date": "2026-01-01",
                "end_date": "2026-01-01",
                "account_id": 9,
            },
        )
        assert forbidden.status_code == 403
        fake.revoke_sessions()  # a server restart or an admin logout
        for _ in range(3):
            response = await client.post("/echo", content=b"x")
            assert response.status_code == 200
    assert fake.stats.failed_refreshes == 1  # the revoked session's refresh...
    assert fake.stats.logins == 2  # ...then one login, and nothing more


async def test_refusal_after_a_switch_is_not_retried_with_the_new_account(
    env: Env,
) -> None:
    """A request sent with account A's token and refused after a switch to B comes
    back refused: it is never retried with B's token (no B records for an A call)."""
    await env.call_data()

    async def send(request: httpx.Request) -> httpx.Response:
        return await env.client.send(request, auth=None, stream=True)

    gate = env.fake.pause_next("data")  # before the server looks at the token
    responses: list[httpx.Response] = []

    async def old_account_call() -> None:
        responses.append(await env.call_data())

    async with anyio.create_task_group() as tg:
        tg.start_soon(old_account_call)
        await gate.arrived.wait()
        env.clock.advance(3000)
        session = await env.auth.switch_account(2, send)
        assert session.account_id == 2
        env.clock.advance(700)  # A's token has expired, B's has not
        gate.release()
    assert [r.status_code for r in responses] == [401]
    assert env.auth.account_id == 2
    assert (env.fake.stats.logins, env.fake.stats.refreshes) == (2, 0)
    assert (await env.call_data()).json()["data"][0]["account_id"] == 2


async def test_refused_switch_fails_only_the_switch(env: Env) -> None:
    """Requests that waited for a refused account switch renew for their own
    account instead of sharing the switch's AuthenticationError."""
    await env.call_data()
    env.clock.advance(3600)  # expired: every request must wait for a renewal

    async def send(request: httpx.Request) -> httpx.Response:
        return await env.client.send(request, auth=None, stream=True)

    errors: list[BaseException] = []

    async def switch() -> None:
        try:
            await env.auth.switch_account(7, send)
        except AuthenticationError as exc:
            errors.append(exc)

    gate = env.fake.pause_next("login")
    results: list[object] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(switch)
        await gate.arrived.wait()
        for _ in range(300):
            tg.start_soon(_collect, results, env)
        await anyio.wait_all_tasks_blocked()
        gate.release()
    assert len(errors) == 1
    assert "cannot access account 7" in str(errors[0])
    assert statuses(results) == {200}
    assert env.fake.stats.refreshes == 1  # their own renewal, shared by all 300
    assert env.auth.account_id is None
    assert settled(env.auth)


async def test_non_replayable_body_renews_but_returns_the_401(env: Env) -> None:
    """A streamed body cannot be sent twice: the 401 comes back, the session is new."""
    await env.call_data()
    first = env.auth.session
    env.fake.revoke_sessions()

    async def body() -> AsyncIterator[bytes]:
        yield b"streamed"

    response = await env.client.post("/echo", content=body())
    assert response.status_code == 401
    assert env.auth.session is first  # no answer but the 401 can come back...
    # ...so the next request renews first, even a streamed one on the fast path.
    assert (await env.client.post("/echo", content=body())).status_code == 200
    assert env.auth.session is not first
    assert (env.fake.stats.logins, env.fake.stats.failed_refreshes) == (2, 1)
    assert (await env.client.post("/echo", content=body())).status_code == 200
    assert env.fake.stats.logins == 2


async def test_retry_with_a_newer_token_needs_no_renewal(env: Env) -> None:
    """A 401 for a token already replaced retries with the new one, no renewal."""
    await env.call_data()
    gate = env.fake.pause_next("data")
    env.fake.expire_sessions()
    async with anyio.create_task_group() as tg:
        tg.start_soon(env.call_data)  # carries the old token, held at the server
        await gate.arrived.wait()
        assert (await env.call_data()).status_code == 200  # renews
        gate.release()
    assert env.fake.stats.refreshes == 1


# -- h. refused login -------------------------------------------------------------------


async def test_refused_login_is_shared_by_every_waiter(
    clock: FakeClock, fake: FakeTeletracker, many: int
) -> None:
    """One refused login, one shared AuthenticationError: no login storm."""
    auth = TeletrackerAuth(USERNAME, "wrong-password", base_url=BASE_URL, clock=clock)
    async with httpx.AsyncClient(
        auth=auth, transport=fake.transport(), base_url=BASE_URL
    ) as client:
        gate = fake.pause_next("login")
        results = await gather(many, lambda: client.post("/echo", content=b"x"), gate)
        assert statuses(results) == {AuthenticationError}
        assert fake.stats.failed_logins == 1
        error = results[0]
        assert isinstance(error, AuthenticationError)
        assert error.status_code == 401
        assert "Invalid username or password" in str(error)
        with pytest.raises(AuthenticationError):  # a later request tries again
            await client.post("/echo", content=b"x")
        assert fake.stats.failed_logins == 2
    assert settled(auth)


@pytest.mark.parametrize(
    ("status", "error"), [(500, ServerError), (403, AuthenticationError)]
)
async def test_failed_login_raises_the_mapped_error(
    env: Env, status: int, error: type[Exception]
) -> None:
    """A login answered with an error status raises the matching typed error."""
    env.fake.fail_next("login", status, body={"success": False, "message": "nope"})
    with pytest.raises(error, match="nope"):
        await env.call_data()
    assert (await env.call_data()).status_code == 200


async def test_password_changed_while_token_valid(env: Env) -> None:
    """An early renewal whose login is refused keeps the valid token until expiry."""
    await env.call_data()
    env.fake.revoke_sessions()  # refresh will be refused...
    env.fake.set_password(USERNAME, "changed")  # ...and so will the login
    env.clock.advance(3600 - 200)
    # The token is revoked too, so the request is refused and renewal is forced.
    with pytest.raises(AuthenticationError):
        await env.call_data()


# -- i. cancellation --------------------------------------------------------------------


async def test_cancel_while_waiting_for_the_lock(env: Env) -> None:
    """A waiter cancelled at the lock leaves it free and the login goes on."""
    gate = env.fake.pause_next("login")
    async with anyio.create_task_group() as tg:
        tg.start_soon(env.call_data)
        await gate.arrived.wait()
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as waiters:
                for _ in range(100):
                    waiters.start_soon(env.call_data)
                await anyio.wait_all_tasks_blocked()
                scope.cancel()
        gate.release()
    assert settled(env.auth)
    assert (await env.call_data()).status_code == 200
    assert env.fake.stats.logins == 1


async def test_cancel_the_login_lets_a_waiter_take_over(env: Env) -> None:
    """Cancelling the coroutine that logs in: one waiter logs in, all succeed."""
    gate = env.fake.pause_next("login")
    results: list[object] = []
    with anyio.CancelScope() as victim:
        async with anyio.create_task_group() as tg:
            tg.start_soon(env.call_data)
            await gate.arrived.wait()
            async with anyio.create_task_group() as others:
                others.start_soon(_collect, results, env)
                for _ in range(99):
                    others.start_soon(_collect, results, env)
                await anyio.wait_all_tasks_blocked()
                victim.cancel()
    # The victim's scope also held the others: run a fresh batch to prove recovery.
    assert settled(env.auth)
    results = await gather(100, env.call_data)
    assert statuses(results) == {200}
    assert env.fake.stats.logins == 1


async def _collect(results: list[object], env: Env) -> None:
    results.append(await env.call_data())


async def test_cancel_the_login_only(env: Env, many: int) -> None:
    """Only the logging-in coroutine is cancelled: the waiters carry on by themselves."""
    results = await cancel_one_of_many(env, env.fake.pause_next("login"), many)
    assert statuses(results) == {200}
    assert len(results) == many
    assert env.fake.stats.logins == 1
    assert settled(env.auth)


async def _run_in_scope(scopes: list[anyio.CancelScope], env: Env) -> None:
    with anyio.CancelScope() as scope:
        scopes.append(scope)
        await env.call_data()


async def test_cancel_during_the_users_request(env: Env) -> None:
    """Cancelling a user's request never touches the session or the lock."""
    await env.call_data()
    session = env.auth.session
    gate = env.fake.pause_next("data")
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(env.call_data)
            await gate.arrived.wait()
            scope.cancel()
    assert env.auth.session is session
    assert settled(env.auth)
    assert (await env.call_data()).status_code == 200


async def test_cancel_during_a_slow_login(env: Env) -> None:
    """A timeout that lands while the login is in flight leaves things consistent."""
    env.fake.delay_next("login", 0.05)
    with anyio.move_on_after(0.01):
        await env.call_data()
    assert settled(env.auth)
    assert env.auth.session is None
    assert (await env.call_data()).status_code == 200


# -- k. streaming -----------------------------------------------------------------------


async def test_responses_can_stream(env: Env) -> None:
    """The flow reads no user body: a streamed response is still unread."""
    assert env.auth.requires_request_body is False
    assert env.auth.requires_response_body is False
    request = env.client.build_request(
        "GET",
        "/reports/call-data",
        params={"start_date": "2026-01-01", "end_date": "2026-01-02"},
    )
    response = await env.client.send(request, stream=True)
    try:
        assert not response.is_stream_consumed
        chunks = [chunk async for chunk in response.aiter_bytes()]
    finally:
        await response.aclose()
    assert b"".join(chunks).startswith(b'{"success": true')


# -- malformed answers ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"<html><body>502 Bad Gateway</body></html>", "HTML, not JSON"),
        (b"", "empty body"),
        (b"[1, 2]", "not a JSON object but list"),
        (b'{"success": false}', "success: false"),
        (b'{"success": true, "token": "t"}', "guid: missing"),
        (
            json.dumps(
                {
                    "success": True,
                    "guid": "g",
                    "token": 5,
                    "tokenExpiration": "x",
                    "tokenLifetime": "3600",
                    "refreshToken": "r",
                }
            ).encode(),
            "token: expected a string, got int",
        ),
        (
            json.dumps(
                {
                    "success": True,
                    "guid": "g",
                    "token": "t",
                    "tokenLifetime": 0,
                    "tokenExpiration": "2026-01-01T00:00:00+00:00",
                    "refreshToken": "r",
                }
            ).encode(),
            "tokenLifetime: must be positive",
        ),
    ],
    ids=["html", "empty", "list", "success-false", "missing", "types", "lifetime"],
)
async def test_malformed_login_answer(env: Env, content: bytes, match: str) -> None:
    """Every unreadable login answer raises ResponseFormatError naming the problem."""
    env.fake.garble_next("login", content)
    with pytest.raises(ResponseFormatError, match=match) as info:
        await env.call_data()
    assert info.value.status_code == 200
    assert settled(env.auth)
    assert (await env.call_data()).status_code == 200


async def test_malformed_refresh_answer_keeps_valid_token(env: Env) -> None:
    """A garbled early refresh is logged and the valid token keeps working."""
    await env.call_data()
    env.clock.advance(3600 - 200)
    env.fake.garble_next("refresh", b"<html>oops</html>")
    assert (await env.call_data()).status_code == 200
    env.clock.advance(200)
    assert (await env.call_data()).status_code == 200
    assert env.fake.stats.logins == 2  # the garbled refresh spent its token


# -- m. sync use ------------------------------------------------------------------------


def test_sync_client_gets_a_clear_error(auth: TeletrackerAuth) -> None:
    """httpx.Client cannot use the auth: the error points to AsyncClient."""
    with (
        httpx.Client(transport=httpx.MockTransport(lambda _: httpx.Response(200))) as c,
        pytest.raises(TypeError, match="AsyncClient"),
    ):
        c.get(f"{BASE_URL}/echo", auth=auth)


# -- the token goes only where it belongs ------------------------------------------------


class Recorder(httpx.AsyncBaseTransport):
    """Records what would have left the process, and answers 200."""

    def __init__(self) -> None:
        self.sent: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        return httpx.Response(200, json={"success": True})


async def test_auth_refuses_an_origin_it_was_not_made_for() -> None:
    """An auth left on the default base URL, used by a client for 127.0.0.1, raises
    before anything is sent: the password never goes to the public API, and the
    message names both origins and the fix."""
    recorder = Recorder()
    auth = TeletrackerAuth(USERNAME, PASSWORD)
    async with httpx.AsyncClient(
        base_url="http://127.0.0.1:8000", auth=auth, transport=recorder
    ) as client:
        with pytest.raises(OriginMismatchError) as info:
            await client.get("/reports/call-data")
    assert recorder.sent == []
    message = str(info.value)
    assert "http://127.0.0.1:8000" in message
    assert "https://api.teletracker.net" in message
    assert "base_url='http://127.0.0.1:8000'" in message
    assert PASSWORD not in message
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.test/reports/call-data",  # another host
        "http://api.teletracker.test/echo",  # another scheme
        "https://api.teletracker.test:8443/echo",  # another port
    ],
)
async def test_no_token_for_another_origin_even_with_a_session(
    env: Env, url: str
) -> None:
    """Once a session exists, a request to another origin through the same client
    still gets no bearer token: it is refused before it is sent."""
    await env.call_data()
    with pytest.raises(OriginMismatchError):
        await env.client.post(url, content=b"x")
    response = await env.client.post(f"{BASE_URL}:443/echo", content=b"x")
    assert response.status_code == 200  # the default port is the same origin


@pytest.mark.parametrize("scheme", [TeletrackerBasicAuth, IntegratorAuth])
async def test_header_schemes_refuse_other_origins(
    scheme: type[TeletrackerBasicAuth | IntegratorAuth],
) -> None:
    """Basic and Integrator send their password-bearing header to base_url only."""
    recorder = Recorder()
    auth = scheme(USERNAME, PASSWORD, account_id=1, base_url=BASE_URL)
    async with httpx.AsyncClient(auth=auth, transport=recorder) as client:
        await client.get(f"{BASE_URL}/echo")
        with pytest.raises(OriginMismatchError):
            await client.get("https://elsewhere.test/echo")
    assert [str(r.url.host) for r in recorder.sent] == ["api.teletracker.test"]


def test_base_url_with_white_space_is_refused() -> None:
    """' https://…' would become a host with %20 in it: refused, naming base_url."""
    with pytest.raises(ValueError, match="base_url must not hold white space"):
        TeletrackerAuth(USERNAME, PASSWORD, base_url="https://api.teletracker.net ")
