"""Found by an adversarial review of the round-2 core: redirects, retired tokens,
encoded echoes, stopped loops, deep bodies, constructor errors, suspected tokens,
and a random-cancellation stress run across loops in threads."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
import threading
import traceback
from typing import Any
from urllib.parse import quote_plus

import anyio
import anyio.lowlevel
import httpx
import pytest
import trio

from teletracker_async import TeletrackerAuth, TeletrackerClient, TeletrackerError
from teletracker_async._errors import ServerError
from teletracker_async._session.machine import NEED, Share, Wait
from teletracker_async.testing import FakeClock, FakeTeletracker
from tests.conftest import BASE_URL, PASSWORD, USERNAME
from tests.session.test_one_session_across_loops import run_loops_in_threads
from tests.session.test_renewal_machine import answer, machine, started

pytestmark = pytest.mark.anyio

EVIL = "https://evil.example"


class _RedirectingLogin(httpx.AsyncBaseTransport):
    """/auth/login answers 307 to another origin; that origin records what it gets.

    It streams request bodies as a real connection does (httpx's MockTransport
    reads them into memory first, which makes any body replayable)."""

    def __init__(self, fake: FakeTeletracker, seen: list[bytes]) -> None:
        self.inner = fake.transport()
        self.seen = seen

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == "evil.example":
            body = b"".join([chunk async for chunk in request.stream])  # type: ignore[union-attr]
            self.seen.append(body)
            return httpx.Response(500, json={"success": False})
        if request.url.path == "/auth/login":
            _ = [chunk async for chunk in request.stream]  # type: ignore[union-attr]
            return httpx.Response(307, headers={"Location": f"{EVIL}/collect"})
        return await self.inner.handle_async_request(request)


def _redirecting_login(
    fake: FakeTeletracker, seen: list[bytes]
) -> httpx.AsyncBaseTransport:
    return _RedirectingLogin(fake, seen)


async def test_login_redirect_does_not_carry_password_to_other_origin(
    fake: FakeTeletracker, auth: TeletrackerAuth
) -> None:
    """A login answered 307 to another origin, through an httpx client that follows
    redirects, is not replayed there: the one-shot body refuses to be sent again."""
    seen: list[bytes] = []
    async with httpx.AsyncClient(
        auth=auth,
        transport=_redirecting_login(fake, seen),
        base_url=BASE_URL,
        follow_redirects=True,
    ) as client:
        with pytest.raises(TeletrackerError):
            await client.post("/echo", content=b"x")
    assert not any(PASSWORD.encode() in body for body in seen), seen


async def test_client_session_redirect_does_not_carry_password(
    fake: FakeTeletracker, clock: FakeClock
) -> None:
    """TeletrackerClient never follows redirects, so session() sends the password
    nowhere but the API, whatever follow_redirects says."""
    seen: list[bytes] = []
    auth = TeletrackerAuth(USERNAME, PASSWORD, base_url=BASE_URL, clock=clock)
    async with TeletrackerClient(
        auth=auth, transport=_redirecting_login(fake, seen), follow_redirects=True
    ) as client:
        with pytest.raises(TeletrackerError):
            await client.session()
    assert not any(PASSWORD.encode() in body for body in seen), seen


async def test_data_error_quoting_the_token_it_was_sent_with_is_redacted(
    fake: FakeTeletracker, auth: TeletrackerAuth
) -> None:
    """A data error quoting the token its request carried is redacted even when a
    renewal (here an account switch) replaced that token while it was out."""
    inner = fake.transport()
    arrived = anyio.Event()
    answer = anyio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/quote":
            arrived.set()
            await answer.wait()
            token = request.headers["Authorization"].removeprefix("Bearer ")
            return httpx.Response(
                400, json={"success": False, "message": f"bad filter for {token}"}
            )
        return await inner.handle_async_request(request)

    errors: list[BaseException] = []
    async with TeletrackerClient(
        auth=auth, transport=httpx.MockTransport(handler)
    ) as client:
        first = (await client.session()).token

        async def call() -> None:
            try:
                await client.request_json("GET", "/quote")
            except TeletrackerError as exc:
                errors.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            await arrived.wait()
            await client.switch_account(2)
            answer.set()
    assert errors
    shown = f"{errors[0]} {errors[0]!r} {getattr(errors[0], 'body', '')}"
    assert first not in shown, shown


def test_renewal_owned_by_a_stopped_asyncio_loop_does_not_block_others() -> None:
    """An asyncio loop that stopped (run_until_complete returned) in a thread that
    ended, holding a renewal, blocks no other loop: it is seen as dead although
    nobody closed it."""

    clock = FakeClock()
    fake = FakeTeletracker(users={USERNAME: PASSWORD}, clock=clock)
    auth = TeletrackerAuth(USERNAME, PASSWORD, base_url=BASE_URL, clock=clock)
    inner = fake.transport()
    login_arrived = threading.Event()
    keep: list[Any] = []

    async def stuck(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/auth/login":
            login_arrived.set()
            await asyncio.Event().wait()  # the answer never comes while it runs
        return await inner.handle_async_request(request)

    def worker() -> None:
        loop = asyncio.new_event_loop()
        keep.append(loop)

        async def main() -> None:
            client = httpx.AsyncClient(auth=auth, transport=httpx.MockTransport(stuck))
            keep.append(client)
            keep.append(asyncio.ensure_future(client.post(f"{BASE_URL}/echo")))
            await asyncio.to_thread(login_arrived.wait)

        loop.run_until_complete(main())  # returns; the loop is stopped, not closed

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert auth._core.busy()

    async def use() -> int:
        with trio.fail_after(3):  # README: noticed within 0.5 s
            async with httpx.AsyncClient(auth=auth, transport=inner) as client:
                response = await client.post(f"{BASE_URL}/echo", content=b"x")
                return response.status_code

    assert trio.run(use) == 200
    loop, _, pending = keep
    pending.cancel()  # tidy up the abandoned loop, so that nothing leaks later
    loop.run_until_complete(asyncio.gather(pending, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()


async def test_redirect_loop_is_in_the_tree(
    fake: FakeTeletracker, auth: TeletrackerAuth
) -> None:
    """A redirecting endpoint gives a TeletrackerError (the client does not follow
    redirects), never httpx.TooManyRedirects or an ExceptionGroup."""
    inner = fake.transport()

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/reports/call-data":
            return httpx.Response(302, headers={"Location": str(request.url)})
        return await inner.handle_async_request(request)

    async with TeletrackerClient(
        auth=auth, transport=httpx.MockTransport(handler), follow_redirects=True
    ) as client:
        with pytest.raises(TeletrackerError):
            await client.call_data("2026-01-01", "2026-01-01")
        with pytest.raises(TeletrackerError):
            async for _ in client.iter_call_data("2026-01-01", "2026-01-02"):
                pass


async def test_post_is_not_repeated_after_a_redirect_fails(
    fake: FakeTeletracker, auth: TeletrackerAuth
) -> None:
    """A POST is not sent again after a transport error: only a failure of the
    SDK's own login/refresh (marked as such) proves that the request never left."""
    inner = fake.transport()
    posts: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/orders":
            posts.append(request.method)
            return httpx.Response(307, headers={"Location": f"{BASE_URL}/orders/1"})
        if request.url.path == "/orders/1":
            raise httpx.ReadTimeout("slow", request=request)
        return await inner.handle_async_request(request)

    async with TeletrackerClient(
        auth=auth,
        transport=httpx.MockTransport(handler),
        follow_redirects=True,
        sleep=lambda _s: anyio.lowlevel.checkpoint(),
    ) as client:
        with pytest.raises(TeletrackerError):
            await client.request_json("POST", "/orders", data={"n": 1})
    assert posts == ["POST"], posts


@pytest.mark.parametrize("where", ["data", "login"])
async def test_moderately_nested_error_body_is_in_the_tree(
    fake: FakeTeletracker, auth: TeletrackerAuth, where: str
) -> None:
    """An error body nested a few hundred levels deep gives the status's error,
    never a RecursionError from redaction."""
    inner = fake.transport()
    body = b"[" * 650 + b"]" * 650
    path = "/reports/call-data" if where == "data" else "/auth/login"
    status = 400 if where == "data" else 503

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == path:
            return httpx.Response(status, content=body)
        return await inner.handle_async_request(request)

    async with TeletrackerClient(
        auth=auth, transport=httpx.MockTransport(handler), max_retries=0
    ) as client:
        with pytest.raises(TeletrackerError):
            await client.call_data("2026-01-01", "2026-01-01")


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.slow
@pytest.mark.parametrize("kinds", [("asyncio", "trio", "asyncio", "trio")])
def test_threads_with_random_cancellation(kinds: tuple[str, ...]) -> None:
    """Stress: loops in threads, expiries, slow refreshes/logins, and requests
    cancelled at random moments (waiters and exchange owners alike). Afterwards:
    nothing stuck, no refresh token presented twice, a final request succeeds."""

    rounds, per_loop = 8, 40
    clock = FakeClock()
    fake = FakeTeletracker(users={USERNAME: PASSWORD}, clock=clock)

    def next_round() -> None:
        clock.advance(3600 if random.random() < 0.5 else 3500)
        fake.delay_next("refresh", 0.05)
        fake.delay_next("login", 0.05)

    barrier = threading.Barrier(len(kinds), action=next_round, timeout=60)
    with fake.serving() as url:
        auth = TeletrackerAuth(USERNAME, PASSWORD, base_url=url, clock=clock)

        async def main() -> None:
            async with httpx.AsyncClient(auth=auth, base_url=url) as client:
                for _ in range(rounds):
                    await anyio.to_thread.run_sync(barrier.wait)
                    async with anyio.create_task_group() as tg:
                        for _ in range(per_loop):
                            tg.start_soon(one, client)
                with anyio.fail_after(10):
                    response = await client.post("/echo", content=b"z")
                assert response.status_code == 200

        async def one(client: httpx.AsyncClient) -> None:
            with anyio.move_on_after(random.random() * 0.12):
                with contextlib.suppress(TeletrackerError):
                    await client.post("/echo", content=b"x")

        failures = run_loops_in_threads(kinds, main, barrier)
    # httpx leaves the sockets of cancelled requests to the garbage collector:
    # collect them here, where this test's filters apply, not in the next test.
    gc.collect()
    assert not failures, failures
    assert fake.stats.reuse_attempts == 0
    assert not auth._core.busy()


async def test_echoed_form_encoded_password_is_redacted(
    fake: FakeTeletracker, clock: FakeClock
) -> None:
    """A proxy page that echoes the login body shows the password form-encoded:
    that spelling is redacted too."""
    password = "p@ss w0rd&more!"
    fake.add_user("bob", password)
    auth = TeletrackerAuth("bob", password, base_url=BASE_URL, clock=clock)
    inner = fake.transport()

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/auth/login":
            body = (await request.aread()).decode()
            return httpx.Response(502, text=f"Bad gateway while forwarding: {body}")
        return await inner.handle_async_request(request)

    async with TeletrackerClient(
        auth=auth, transport=httpx.MockTransport(handler), max_retries=0
    ) as client:
        with pytest.raises(TeletrackerError) as info:
            await client.session()

    shown = f"{info.value} {getattr(info.value, 'body', '')}"
    assert quote_plus(password) not in shown, shown


def test_failed_renewal_of_a_suspect_token_one_attempt_two_outcomes() -> None:
    """A failed renewal of a suspected token has one outcome for everyone: it is
    raised to the owner and shared with its waiters, never papered over with the
    token the server refused."""

    m = machine()
    first = started(m.plan(0.0, NEED))
    m.settle(first, answer(), 0.0)
    m.suspect_generation(1)
    owner = started(m.plan(10.0, NEED))
    waiter = m.plan(10.0, NEED)
    assert isinstance(waiter, Wait)
    kept = m.fail(owner, 11.0, ServerError(503, "down"))
    after_wait = m.plan(11.0, NEED, waited=waiter.flight)
    owner_outcome = "raise" if kept is None else "use suspected token"
    waiter_outcome = "raise" if isinstance(after_wait, Share) else type(after_wait)
    assert owner_outcome == waiter_outcome, (owner_outcome, waiter_outcome)


@pytest.mark.parametrize(
    "kwargs",
    [{"refresh_margin": -1}, {"clock": 5}, {"base_url": "ftp://x"}],
    ids=["margin", "clock", "base_url"],
)
def test_constructor_errors_can_be_reported_with_frame_locals(
    kwargs: dict[str, Any],
) -> None:
    """A constructor error can be reported with frame locals (the half-built auth's
    repr works) and the report holds no password."""

    with pytest.raises((TypeError, ValueError)) as info:
        TeletrackerAuth(USERNAME, PASSWORD, **kwargs)
    report = "".join(
        traceback.TracebackException.from_exception(
            info.value, capture_locals=True
        ).format()
    )
    assert PASSWORD not in report


@pytest.mark.anyio
async def test_a_stalled_login_times_out_instead_of_hanging(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Login and refresh requests are built by the auth, not by the client, so they
    carry their own timeouts: without them a server that never answers a login
    held every request forever (httpcore waits without limit by default)."""
    monkeypatch.setattr(
        "teletracker_async._secrets.EXCHANGE_TIMEOUT",
        {"connect": 5.0, "read": 0.1, "write": 5.0, "pool": None},
    )
    fake = FakeTeletracker(users={USERNAME: PASSWORD})
    fake.delay_next("login", 0.5)  # long past the read timeout
    with fake.serving() as url:
        auth = TeletrackerAuth(USERNAME, PASSWORD, base_url=url)
        async with httpx.AsyncClient(auth=auth, base_url=url, timeout=None) as client:  # noqa: S113 - the point
            with anyio.fail_after(2.5), pytest.raises(httpx.ReadTimeout):
                await client.post("/echo", content=b"x")
            fake.clear_faults()
            assert (await client.post("/echo", content=b"y")).status_code == 200
    assert not auth._core.busy()
