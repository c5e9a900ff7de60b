"""stream_call_data: a sliding window of requests, records in date order, no task left."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import date, timedelta
from typing import Any

import anyio
import pytest

from teletracker_async import (
    CallDataStream,
    NotFoundError,
    TeletrackerClient,
)
from teletracker_async.testing import (
    FakeClock,
    FakeRequest,
    FakeTeletracker,
    RecordedRequest,
)
from tests.conftest import BASE_URL, PASSWORD, USERNAME, bearer_auth_class

pytestmark = pytest.mark.anyio

START = date(2026, 3, 1)


async def _no_sleep(_: float) -> None:
    await anyio.lowlevel.checkpoint()


@pytest.fixture
async def client(
    fake: FakeTeletracker, clock: FakeClock, stack: str
) -> AsyncIterator[TeletrackerClient]:
    """A client on the fake, on each HTTP stack (httpx, httpx2)."""
    auth = bearer_auth_class(stack)(USERNAME, PASSWORD, base_url=BASE_URL, clock=clock)
    transport = fake.transport(stack=stack)  # type: ignore[call-overload]
    async with TeletrackerClient(auth=auth, transport=transport, sleep=_no_sleep) as c:
        yield c


def expected(fake: FakeTeletracker, days: int, account: int = 1) -> list[Any]:
    return [
        r
        for d in range(days)
        for r in fake.records_for(account, START + timedelta(days=d))
    ]


def day_of(request: FakeRequest | RecordedRequest) -> date:
    return date.fromisoformat(request.query["start_date"])


async def test_records_come_out_in_date_order_whatever_order_answers_arrive(
    client: TeletrackerClient, fake: FakeTeletracker
) -> None:
    """Answers arriving out of order (random latencies) still yield in date order."""
    rng = random.Random(7)
    delays = {START + timedelta(days=d): rng.random() / 200 for d in range(60)}
    fake.set_latency("data", lambda request: delays[day_of(request)])
    end = START + timedelta(days=59)
    async with client.stream_call_data(START, end, concurrency=8) as stream:
        records = [r async for r in stream]
    assert records == expected(fake, 60)
    assert (stream.windows_done, stream.windows_total) == (60, 60)
    assert stream.records == len(records)
    weekly = client.stream_call_data(START, end, window_days=7, concurrency=3)
    async with weekly as stream:
        assert [r async for r in stream] == expected(fake, 60)
    assert stream.windows_total == 9  # 8 weeks and 4 days


async def test_a_slow_window_does_not_stop_the_others(
    client: TeletrackerClient, fake: FakeTeletracker
) -> None:
    """The first window hangs; the window slides past it up to `ahead`, not in
    lock-step batches of `concurrency`, and leaving cancels the one still held."""
    await client.session()
    fake.set_latency("data", lambda r: 3600.0 if day_of(r) == START else 0.0)
    end = START + timedelta(days=29)
    async with client.stream_call_data(START, end, concurrency=4, ahead=8) as stream:
        await anyio.wait_all_tasks_blocked()
        # Batches of 4 would have started 4; the sliding window keeps 4 in flight
        # until 8 windows past the reader's are fetched or in flight.
        assert stream.windows_done == 7
        assert fake.stats.data_requests == 7
        assert stream.eta() is not None
    data = [r for r in fake.requests if r.path.endswith("data")]
    answered = sorted(day_of(r) for r in data if r.status == 200)
    assert answered == [START + timedelta(days=d) for d in range(1, 8)]
    cancelled = [day_of(r) for r in data if r.status is None]
    assert cancelled == [START]  # the held one, cancelled when the block ended
    assert stream.records == 0


async def test_the_next_windows_are_fetched_while_the_reader_works(
    client: TeletrackerClient, fake: FakeTeletracker
) -> None:
    """While the reader holds its first record, windows go on arriving, up to
    `ahead` windows past the one it reads, and no further."""
    end = START + timedelta(days=99)
    async with client.stream_call_data(START, end, concurrency=3, ahead=6) as stream:
        first = await stream.__anext__()
        await anyio.wait_all_tasks_blocked()  # the reader is "working" here
        assert first == expected(fake, 1)[0]
        assert stream.windows_done == 1 + 6
        rest = [r async for r in stream]
    assert [first, *rest] == expected(fake, 100)


async def test_the_first_error_is_raised_as_itself_and_the_rest_cancelled(
    client: TeletrackerClient, fake: FakeTeletracker
) -> None:
    """One window fails: its own exception (no ExceptionGroup) comes out of the loop,
    and the windows held at the server are cancelled."""
    await client.session()
    gate = fake.pause_next("data", times=3)
    fake.fail_next("data", 404)
    stream = client.stream_call_data(START, START + timedelta(days=9), concurrency=4)

    async def consume() -> None:
        async with stream as inside:
            async for _ in inside:
                pass  # pragma: no cover - the first window never arrives

    with pytest.raises(NotFoundError) as info:
        await consume()
    assert type(info.value) is NotFoundError
    assert gate.arrived.is_set()
    assert gate.waiting == 0  # nothing left running at the server
    with pytest.raises(RuntimeError, match="inside its block"):
        await stream.__anext__()  # type: ignore[attr-defined]


async def test_an_error_in_the_loop_body_comes_out_as_itself(
    client: TeletrackerClient, fake: FakeTeletracker
) -> None:
    """An exception in the consumer's code leaves the block unwrapped and cancels
    the requests in flight."""
    await client.session()
    gate = fake.pause_next("data", times=4)
    stream = client.stream_call_data(START, START + timedelta(days=30), concurrency=4)

    async def consume() -> None:
        async with stream:
            await gate.arrived.wait()
            raise KeyError("the consumer's own bug")

    with pytest.raises(KeyError) as info:
        await consume()
    assert type(info.value) is KeyError
    assert gate.waiting == 0


async def test_break_and_outer_cancellation_leave_nothing_running(
    client: TeletrackerClient, fake: FakeTeletracker
) -> None:
    """A break, or a cancel scope around the block, ends every request at once."""
    end = START + timedelta(days=364)
    async with client.stream_call_data(START, end, concurrency=8) as stream:
        async for _ in stream:
            break
    assert fake.stats.data_requests <= 1 + 16  # the one read, and `ahead` more
    gate = fake.pause_next("data", times=8)
    with anyio.CancelScope() as scope:
        async with client.stream_call_data(START, end, concurrency=8) as stream:
            await gate.arrived.wait()
            scope.cancel()
            await anyio.sleep_forever()
    assert scope.cancelled_caught
    assert gate.waiting == 0


@pytest.mark.parametrize(
    "streams", [100, pytest.param(400, marks=pytest.mark.slow)], ids=str
)
async def test_many_streams_share_one_session(
    client: TeletrackerClient, fake: FakeTeletracker, streams: int
) -> None:
    """Hundreds of streams at once (ten requests each) through one client: one
    login, every stream complete and in order."""
    results: dict[int, list[Any]] = {}

    async def pull(index: int) -> None:
        stream = client.stream_call_data(
            START, START + timedelta(days=9), concurrency=3
        )
        async with stream as inside:
            results[index] = [r async for r in inside]

    async with anyio.create_task_group() as tg:
        for index in range(streams):
            tg.start_soon(pull, index)
    assert fake.stats.logins == 1
    assert fake.stats.data_requests == 10 * streams
    assert len(results) == streams
    assert all(records == expected(fake, 10) for records in results.values())


async def test_misuse_and_bad_arguments_are_clear_errors(
    client: TeletrackerClient, fake: FakeTeletracker
) -> None:
    """Bad knobs fail at the call, before any request; iterating outside the block
    or entering twice is a RuntimeError that says what to do."""
    cases: list[tuple[dict[str, Any], type[Exception]]] = [
        ({"ahead": 0}, ValueError),
        ({"concurrency": 0}, ValueError),
        ({"window_days": True}, TypeError),
    ]
    for kwargs, error in cases:
        with pytest.raises(error):
            client.stream_call_data(START, START, **kwargs)
    with pytest.raises(ValueError, match="before start_date"):
        client.stream_call_data(START, START - timedelta(days=1))
    stream = client.stream_call_data(START, START + timedelta(days=2))
    assert isinstance(stream, CallDataStream)
    with pytest.raises(RuntimeError, match=r"async with client\.stream_call_data"):
        await stream.__anext__()  # type: ignore[attr-defined]
    assert stream.eta() is None
    assert stream.fraction_done == 0.0
    async with stream as inside:
        assert inside is stream
        assert len([r async for r in inside]) == 6
        assert [r async for r in inside] == []  # exhausted stays exhausted
        assert inside.fraction_done == 1.0
    assert "windows_done=3" in repr(stream)
    with pytest.raises(RuntimeError, match="entered once"):
        async with stream:
            pass  # pragma: no cover
    assert fake.stats.data_requests == 3


def test_an_empty_range_is_done_at_once() -> None:
    """A stream with no window reports itself complete."""
    stream = CallDataStream(_never, [], concurrency=1, ahead=1)
    assert stream.fraction_done == 1.0


async def _never(_: date, __: date) -> list[dict[str, Any]]:  # pragma: no cover
    raise AssertionError
