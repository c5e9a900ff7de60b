"""The queue's hand-over on a real pool: the fake served on 127.0.0.1 by the CLI.

On httpx2 (``Stack.hand_over``) a request gives its slot back when its answer's last
byte is in (by Content-Length), and the next queued request enters the pool before
that answer closes, so the pool hands the connection straight over instead of letting
it idle.
These tests drive hundreds of coroutines through a few real connections.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from teletracker_async import TeletrackerClient
from tests.conftest import PASSWORD, USERNAME, bearer_auth_class

pytestmark = pytest.mark.anyio

DAY = {"start_date": "2026-01-01", "end_date": "2026-01-01"}


class Watch:
    """What the pool saw: requests that entered it while an answer was being read."""

    def __init__(self) -> None:
        self.reading = 0
        self.entered = 0
        self.entered_while_reading = 0


def watching(module: Any, watch: Watch, connections: int) -> Any:
    """The stack's own pooled transport, counting what enters it and what it reads."""

    class Body(module.AsyncByteStream):  # type: ignore[misc]
        def __init__(self, stream: Any) -> None:
            self.stream = stream
            self.open = True

        async def __aiter__(self) -> AsyncIterator[bytes]:
            async for chunk in self.stream:
                yield chunk

        async def aclose(self) -> None:
            if self.open:
                self.open = False
                watch.reading -= 1
            await self.stream.aclose()

    class Transport(module.AsyncHTTPTransport):  # type: ignore[misc]
        async def handle_async_request(self, request: Any) -> Any:
            watch.entered += 1
            watch.entered_while_reading += watch.reading > 0
            response = await super().handle_async_request(request)
            watch.reading += 1
            response.stream = Body(response.stream)
            return response

    return Transport(limits=module.Limits(max_connections=connections))


async def fetch(client: Any) -> None:
    body = await client.request_json("GET", "/reports/call-data", params=DAY)
    assert len(body["data"]) == 24


def client_on(stack: str, url: str, transport: Any, connections: int) -> Any:
    module = importlib.import_module(stack)
    return TeletrackerClient(
        auth=bearer_auth_class(stack)(USERNAME, PASSWORD, base_url=url),
        transport=transport,
        limits=module.Limits(max_connections=connections),
    )


@pytest.mark.parametrize("stack", ["httpx2"])
@pytest.mark.parametrize(
    "coroutines", [100, pytest.param(1000, marks=pytest.mark.slow)], ids=str
)
async def test_the_queue_hands_connections_over_on_httpx2(
    stack: str, served: str, coroutines: int
) -> None:
    """Hundreds of coroutines through 4 connections on httpx2: every request
    succeeds, and queued requests enter the pool while the answer ahead of them is
    read (which is what lets the pool hand the connection over instead of idling
    it)."""
    pytest.importorskip("httpx2")
    module = importlib.import_module(stack)
    watch = Watch()
    results: list[int] = []
    async with client_on(stack, served, watching(module, watch, 4), 4) as client:
        assert client._path.link.queue.handover

        async def one() -> None:
            body = await client.request_json("GET", "/reports/call-data", params=DAY)
            results.append(len(body["data"]))

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for _ in range(coroutines):
                    tg.start_soon(one)
    assert results == [24] * coroutines
    assert watch.entered == coroutines + 1  # and the login
    assert watch.reading == 0  # every answer closed
    # Without the hand-over each answer is closed before the next request gets in.
    assert watch.entered_while_reading > coroutines // 5
    assert client._path.link.queue.slots.value == 4  # every slot back, none twice


@pytest.mark.parametrize(
    "coroutines", [100, pytest.param(1000, marks=pytest.mark.slow)], ids=str
)
async def test_the_same_load_on_httpx(served: str, coroutines: int) -> None:
    """On httpx (no hand-over: measured slower there) the same load is as correct.
    (That the slot is held until the body is read, on both stacks, is specified
    in test_queue_guarantees.py, with answers slow to read.)"""
    import httpx  # noqa: PLC0415

    watch = Watch()
    async with client_on("httpx", served, watching(httpx, watch, 4), 4) as client:
        assert not client._path.link.queue.handover
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for _ in range(coroutines):
                    tg.start_soon(fetch, client)
        assert client._path.link.queue.slots.value == 4
    assert watch.entered == coroutines + 1
    assert watch.reading == 0


@pytest.mark.parametrize(
    "stack", ["httpx", pytest.param("httpx2", marks=pytest.mark.slow)]
)
async def test_cancelled_while_handing_over_leaks_no_connection(
    stack: str, served: str
) -> None:
    """Requests cancelled at every point (in the queue, in the pool, while their
    answer is read) leave no connection behind: afterwards the 2 connections still
    serve 100 requests."""
    module = pytest.importorskip(stack)
    watch = Watch()
    async with client_on(stack, served, watching(module, watch, 2), 2) as client:
        await client.session()
        completed = 0

        async def counted() -> None:
            nonlocal completed
            await fetch(client)
            completed += 1

        for round_ in range(10):  # each cancellation point twice
            async with anyio.create_task_group() as tg:
                for _ in range(20):
                    tg.start_soon(counted)
                for _ in range(round_ % 5):
                    await anyio.lowlevel.checkpoint()
                tg.cancel_scope.cancel()
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for _ in range(100):
                    tg.start_soon(fetch, client)
        assert client._path.link.queue.queued == 0
        assert (
            client._path.link.queue.slots.value == 2
        )  # none leaked, none released twice
    assert completed < 200  # calls were cut short, at the rounds' checkpoints
    assert watch.reading == 0  # every answer read or cancelled was closed
