"""Adversarial review of the request path (issue 13): cancellation before the queue,
the queue balanced after every failure, the second-loop check on both backends, the
fast `_read` path against the strict one, and no secret in the frames of an auth failure."""

from __future__ import annotations

import asyncio
import traceback
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import trio

import teletracker_async
from teletracker_async import (
    APITimeoutError,
    ServerError,
    TeletrackerAuth,
    TeletrackerClient,
    TeletrackerError,
)
from teletracker_async.testing import FakeClock, FakeTeletracker
from tests.conftest import BASE_URL, PASSWORD, USERNAME

pytestmark = pytest.mark.anyio


def _client(fake: FakeTeletracker, clock: FakeClock, **kw: Any) -> TeletrackerClient:
    auth = TeletrackerAuth(USERNAME, PASSWORD, base_url=BASE_URL, clock=clock)
    return TeletrackerClient(auth=auth, transport=fake.transport(), **kw)


async def test_a_call_in_a_cancelled_scope_sends_nothing(
    fake: FakeTeletracker, clock: FakeClock
) -> None:
    """A POST made in an already-cancelled scope (an expired deadline, a
    cancelled task group) is not sent. Before the inlined try, ``async with slots``
    (anyio's fast acquire still checks for cancellation) raised Cancelled first;
    ``acquire_nowait()`` does not, so with a transport that does not checkpoint
    before sending (the SDK's own FakeTeletracker, MockTransport, ASGITransport)
    the POST is executed and its answer returned inside the cancelled scope."""
    async with _client(fake, clock, limits=httpx.Limits(max_connections=4)) as client:
        await client.session()
        echoes: list[Any] = []
        with anyio.CancelScope() as scope:
            scope.cancel()
            echoes.append(await client.request_json("POST", "/echo", json={"x": 1}))
        assert echoes == []
        assert fake.stats.data_requests == 0  # the server never saw the POST


async def test_a_cancelled_scope_wins_over_every_other_check(
    fake: FakeTeletracker, clock: FakeClock
) -> None:
    """In an already-cancelled scope a call is cancelled before anything else is
    checked: on a closed client (no RuntimeError through the scope, as at shutdown
    after ``aclose()``), and as a fresh client's first call, which binds no loop."""
    client = _client(fake, clock)
    with anyio.CancelScope() as scope:
        scope.cancel()
        await client.request_json("GET", "/echo")
    assert scope.cancelled_caught
    assert client._path.link.loop is None  # nothing was bound
    async with client:
        await client.session()
    with anyio.CancelScope() as scope:
        scope.cancel()
        await client.request_json("GET", "/echo")
    assert scope.cancelled_caught
    assert fake.stats.data_requests == 0
    with pytest.raises(RuntimeError, match="closed"):
        await client.request_json("GET", "/echo")


async def test_slots_balance_after_every_failure(
    fake: FakeTeletracker, clock: FakeClock
) -> None:
    """Cancelled while queued, cancelled mid-send, pool timeouts, auth failures,
    dropped answers: every slot comes back, none twice."""

    async def nap(_: float) -> None:
        await anyio.lowlevel.checkpoint()

    async with _client(
        fake,
        clock,
        limits=httpx.Limits(max_connections=2),
        sleep=nap,
        # Generous, so that only the pool-timeout step below times out, however
        # loaded the machine.
        timeout=httpx.Timeout(5.0, pool=30.0),
    ) as client:
        queue = client._path.link.queue
        assert queue is not None
        slots = queue.slots
        assert slots is not None
        await client.session()
        # cancelled mid-send and while queued
        gate = fake.pause_next("data", times=2)
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                for _ in range(5):
                    tg.start_soon(client.call_data, "2026-01-01", "2026-01-01")
                await gate.arrived.wait()
                await anyio.wait_all_tasks_blocked()
                tg.cancel_scope.cancel()
        assert slots.value == 2
        gate.release()
        # pool timeout while both busy
        gate = fake.pause_next("data", times=2)
        results: list[Any] = []

        impatient = client.with_options(timeout=httpx.Timeout(5.0, pool=0.05))

        async def call() -> None:
            try:
                results.append(await impatient.call_data("2026-01-01", "2026-01-01"))
            except APITimeoutError as exc:
                results.append(exc)

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                for _ in range(3):
                    tg.start_soon(call)
                await gate.arrived.wait()
                await anyio.sleep(0.2)
                gate.release()
        assert sum(isinstance(r, APITimeoutError) for r in results) == 1
        assert slots.value == 2
        # auth failures (retried), dropped answers (retried)
        clock.advance(10_000)
        fake.fail_next("refresh", 503)
        fake.drop_next("data")
        await client.call_data("2026-01-01", "2026-01-01")
        assert slots.value == 2


def test_second_loop_refused_on_each_backend() -> None:
    """A client first used in one run is refused in a second: trio then trio,
    asyncio then asyncio, trio then asyncio, asyncio then trio."""
    clock = FakeClock()
    fake = FakeTeletracker(users={USERNAME: PASSWORD}, clock=clock)
    for first, second in [
        ("trio", "trio"),
        ("asyncio", "asyncio"),
        ("trio", "asyncio"),
        ("asyncio", "trio"),
    ]:
        client = _client(fake, clock, limits=httpx.Limits(max_connections=2))

        async def use(client: TeletrackerClient = client) -> Any:
            return await client.call_data("2026-01-01", "2026-01-01")

        run = {"trio": trio.run, "asyncio": lambda f: asyncio.run(f())}
        run[first](use)
        with pytest.raises(RuntimeError, match="another event loop"):
            run[second](use)


#: The SDK's own source folder: its frames, whatever the checkout's folder is named.
PACKAGE = Path(teletracker_async.__file__).parent


def _captured(error: BaseException) -> str:
    """The SDK's frames' locals (not the test's), as a reporter shows them, and
    the error's chain."""
    texts: list[str] = []
    seen: BaseException | None = error
    while seen is not None:
        report = traceback.TracebackException.from_exception(seen, capture_locals=True)
        texts.append(str(seen))
        texts.extend(
            repr(frame.locals)
            for frame in report.stack
            if Path(frame.filename).is_relative_to(PACKAGE)
        )
        seen = seen.__cause__ or seen.__context__
    return "\n".join(texts)


@pytest.mark.parametrize(
    ("status", "content", "kind"),
    [
        (200, b'{"success": true, "x": 1}', None),
        (201, b'{"success": true, "x": 1}', None),
        (200, b'{"success": 1}', "ResponseFormatError"),
        (200, b'{"success": "true"}', "ResponseFormatError"),
        (200, b"[1, 2]", "ResponseFormatError"),
        (200, b"", "ResponseFormatError"),
        (204, b"", "ResponseFormatError"),
        (200, b"<html>", "ResponseFormatError"),
        (200, b"\xff\xfe\x00", "ResponseFormatError"),
        (200, b"[" * 100_000, "ResponseFormatError"),
        (200, b'{"success": false, "message": "SECRET-ECHO"}', "APIError"),
        (202, b'{"success": false, "message": "SECRET-ECHO"}', "APIError"),
        (200, b'{"success": true}\n', None),
        (200, b'\xef\xbb\xbf{"success": true}', None),
    ],
)
async def test_read_outcomes_match_the_strict_path(
    fake: FakeTeletracker,
    clock: FakeClock,
    status: int,
    content: bytes,
    kind: str | None,
) -> None:
    async with _client(fake, clock, max_retries=0) as client:
        session = await client.session()
        content = content.replace(b"SECRET-ECHO", session.token.encode())
        fake.garble_next("data", content, status=status)
        if kind is None:
            body = await client.request_json("POST", "/echo", json={})
            assert body["success"] is True
            return
        with pytest.raises(TeletrackerError) as info:
            await client.request_json("POST", "/echo", json={})
        assert type(info.value).__name__ == kind, info.value
        text = _captured(info.value)
        assert session.token not in text
        assert session.refresh_token not in text


async def test_auth_failure_frames_hold_no_secret(
    fake: FakeTeletracker, clock: FakeClock
) -> None:
    """A refresh that fails (echoing the refresh token) through TeletrackerClient:
    no frame of the traceback (now through _after_auth_failure) shows a secret."""
    async with _client(fake, clock, max_retries=0) as client:
        session = await client.session()
        clock.advance(3600)
        fake.fail_next(
            "refresh", 500, body={"message": f"no {session.refresh_token} {PASSWORD}"}
        )
        with pytest.raises(ServerError) as info:
            await client.request_json("POST", "/echo", json={})
        text = _captured(info.value)
        for secret in (session.refresh_token, session.token, PASSWORD):
            assert secret not in text
