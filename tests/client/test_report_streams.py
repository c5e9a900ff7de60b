"""stream_call_data: a sliding window of requests, records in date order, no task left."""

from __future__ import annotations

import random
import tracemalloc
from collections.abc import AsyncIterator
from datetime import date, timedelta
from typing import Any, TypeVar

import anyio
import pytest

from teletracker_async import (
    CallDataStream,
    CallDataWindow,
    NotFoundError,
    ServerError,
    TeletrackerClient,
)
from teletracker_async._config import STREAM_AHEAD_PER_REQUEST
from teletracker_async._reports import windows_of
from teletracker_async.testing import (
    FakeClock,
    FakeRequest,
    FakeTeletracker,
    RecordedRequest,
)
from tests.conftest import BASE_URL, PASSWORD, USERNAME, bearer_auth_class

pytestmark = pytest.mark.anyio

START = date(2026, 3, 1)
T = TypeVar("T")


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


async def drain(items: AsyncIterator[T], into: list[T]) -> None:
    """Append what *items* yields to *into*, until it ends or raises."""
    async for item in items:
        into.append(item)  # noqa: PERF401 - what came before an error is kept


async def answered(fake: FakeTeletracker, status: int) -> None:
    """Return once the fake has answered a request with *status*."""
    with anyio.fail_after(30):  # generous: a hang fails, it does not block CI
        while not any(r.status == status for r in fake.requests):  # noqa: ASYNC110 - the fake logs answers, it has no event for them
            await anyio.sleep(0.001)


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
    """One window fails: its own exception (no ExceptionGroup) comes out of the loop
    once the windows before it (held at the server) are handed out, and the windows
    after it are cancelled or never started."""
    await client.session()
    gate = fake.pause_next("data", times=3)
    fake.fail_next("data", 404)
    stream = client.stream_call_data(START, START + timedelta(days=9), concurrency=4)
    got: list[Any] = []
    raised: list[Exception] = []

    async def consume() -> None:
        try:
            async with stream as inside:
                await drain(inside, got)
        except NotFoundError as exc:
            raised.append(exc)

    async def release_when_failed() -> None:
        await gate.arrived.wait()
        await answered(fake, 404)
        await anyio.wait_all_tasks_blocked()
        assert got == []  # the held windows come first
        gate.release()

    async with anyio.create_task_group() as tg:
        tg.start_soon(release_when_failed)
        await consume()
    assert [type(exc) for exc in raised] == [NotFoundError]
    failed = next(day_of(r) for r in fake.requests if r.status == 404)
    assert got == expected(fake, (failed - START).days)
    assert gate.waiting == 0  # nothing left running at the server
    asked = [r for r in fake.requests if r.path.endswith("data")]
    assert len(asked) == 4  # nothing started after the failure
    with pytest.raises(RuntimeError, match="inside its block"):
        await stream.__anext__()  # type: ignore[attr-defined]


@pytest.mark.parametrize("concurrency", [1, 8])
async def test_an_error_comes_after_every_window_before_it(
    client: TeletrackerClient, fake: FakeTeletracker, concurrency: int
) -> None:
    """The sixth request fails (day 5 with one request at a time) while the reader
    still holds day 0's first record: the reader gets every record of the days
    before the failed one, in order, then the failure; none of the days after."""
    await client.session()
    fake.delay_next("data", 0.0, times=5)
    fake.fail_next("data", 500)
    end = START + timedelta(days=29)
    got: list[Any] = []
    stream = client.stream_call_data(START, end, concurrency=concurrency, ahead=8)

    async def read() -> None:
        async with stream as inside:
            got.append(await inside.__anext__())
            await answered(fake, 500)  # the reader "works" while day 5 fails
            await anyio.wait_all_tasks_blocked()
            await drain(inside, got)

    with pytest.raises(ServerError):
        await read()
    failed = next(day_of(r) for r in fake.requests if r.status == 500)
    if concurrency == 1:
        assert failed == START + timedelta(days=5)
    assert got == expected(fake, (failed - START).days)
    assert stream.window == (failed - timedelta(days=1),) * 2


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
    # The one read, and at most `ahead` more (STREAM_AHEAD_PER_REQUEST x 8).
    assert fake.stats.data_requests <= 1 + STREAM_AHEAD_PER_REQUEST * 8
    gate = fake.pause_next("data", times=8)
    with anyio.CancelScope() as scope:
        async with client.stream_call_data(START, end, concurrency=8) as stream:
            await gate.arrived.wait()
            scope.cancel()
            await anyio.sleep_forever()
    assert scope.cancelled_caught
    assert gate.waiting == 0


@pytest.mark.parametrize("ordered", [True, False], ids=["ordered", "unordered"])
async def test_a_range_of_any_length_starts_at_once_in_bounded_memory(
    client: TeletrackerClient, fake: FakeTeletracker, ordered: bool
) -> None:
    """No window list is built: a thousand years cost what one day costs, and the
    whole calendar (3.65 M windows) starts with its first requests and holds at
    most `ahead` windows while it is read."""

    def peak_of(first: date, last: date) -> int:
        tracemalloc.start()
        try:
            options = {} if ordered else {"ordered": False}
            client.stream_call_data(first, last, **options)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    one_day = peak_of(START, START)
    millennium = peak_of(date(1026, 1, 1), date(2025, 12, 31))  # 365 243 windows
    assert millennium < one_day + 64 * 1024
    everything = client.stream_call_data(
        "0001-01-01", "9999-12-31", concurrency=4, ahead=8, ordered=ordered
    )
    assert everything.windows_total == date.max.toordinal()
    async with everything as stream:
        first = await stream.__anext__()
        assert fake.stats.data_requests <= 1 + 8
        for _ in range(199):
            await stream.__anext__()
            assert stream.held <= 8
        await anyio.wait_all_tasks_blocked()
        assert stream.held <= 8
    if ordered:
        assert first == fake.records_for(1, date.min)[0]
        assert stream.window == (date(1, 4, 10),) * 2  # 200 records, 2 a day
    assert fake.stats.data_requests <= 100 + 1 + 8


async def test_ranges_up_to_the_last_day_and_huge_windows_are_valid(
    client: TeletrackerClient, fake: FakeTeletracker
) -> None:
    """A range ending on 9999-12-31 clips its last window; a window wider than the
    range (10**7 or 10**12 days) is one window; never an OverflowError."""
    first = date(9999, 12, 20)
    days = [first + timedelta(days=d) for d in range(12)]
    whole = [r for d in days for r in fake.records_for(1, d)]
    for width, windows in [(7, 2), (10**7, 1), (10**12, 1)]:
        async with client.stream_call_data(
            first, "9999-12-31", window_days=width
        ) as stream:
            assert [r async for r in stream] == whole
        assert stream.windows_total == windows
        assert stream.window == (first + timedelta(days=7 * (windows - 1)), date.max)
        pulled = client.iter_call_data(first, date.max, window_days=width)
        assert [r async for r in pulled] == whole
    assert len(windows_of(date.min, date.max, 10**12)) == 1
    assert windows_of(date.min, date.max, 10**12)[0] == (date.min, date.max)
    assert windows_of(date.min, date.max, 7)[-1] == (date(9999, 12, 27), date.max)
    assert windows_of(date.min, date.max, 1)[-1] == (date.max, date.max)


async def test_unordered_windows_come_whole_as_they_arrive(
    client: TeletrackerClient, fake: FakeTeletracker
) -> None:
    """With ordered=False a slow first day holds back nothing: the other windows
    come out as they arrive, each whole and tagged with its dates, and no more than
    `ahead` of them are held while the reader waits."""
    await client.session()
    fake.set_latency("data", lambda r: 3600.0 if day_of(r) == START else 0.0)
    end = START + timedelta(days=29)
    got: list[CallDataWindow] = []
    async with client.stream_call_data(
        START, end, concurrency=2, ahead=4, ordered=False
    ) as stream:
        await anyio.wait_all_tasks_blocked()
        assert stream.held == 4  # day 0 in flight, three answers waiting
        assert fake.stats.data_requests == 3
        async for window in stream.windows():
            got.append(window)
            assert stream.held <= 4
            if len(got) == 29:
                break
    assert sorted(w.start for w in got) == [
        START + timedelta(days=d) for d in range(1, 30)
    ]
    for window in got:
        assert window.end == window.start
        assert window.records == fake.records_for(1, window.start)
    assert stream.records == 29 * fake.records_per_day
    assert "records" in repr(got[0])


async def test_unordered_records_carry_their_window(
    client: TeletrackerClient, fake: FakeTeletracker
) -> None:
    """Iterating records with ordered=False: each window's records together, in the
    API's order, and `stream.window` names the window of the record just read."""
    rng = random.Random(3)
    delays = {START + timedelta(days=d): rng.random() / 200 for d in range(40)}
    fake.set_latency("data", lambda request: delays[day_of(request)])
    by_window: dict[tuple[date, date], list[Any]] = {}
    order: list[tuple[date, date]] = []
    end = START + timedelta(days=39)
    async with client.stream_call_data(
        START, end, window_days=3, concurrency=6, ordered=False
    ) as stream:
        async for record in stream:
            assert stream.window is not None
            if stream.window not in by_window:
                order.append(stream.window)
            by_window.setdefault(stream.window, []).append(record)
    assert len(order) == len(by_window) == 14  # each window's records together
    for (start, stop), records in by_window.items():
        days = (stop - start).days + 1
        assert records == [
            r
            for d in range(days)
            for r in fake.records_for(1, start + timedelta(days=d))
        ]
    assert stream.records == 40 * fake.records_per_day


async def test_unordered_an_error_comes_after_the_windows_that_arrived(
    client: TeletrackerClient, fake: FakeTeletracker
) -> None:
    """With ordered=False the windows that arrived before a failure are handed out,
    then the failure is raised; the requests still in flight are cancelled."""
    await client.session()
    fake.delay_next("data", 0.0, times=5)
    fake.fail_next("data", 500)
    got: list[CallDataWindow] = []
    stream = client.stream_call_data(
        START, START + timedelta(days=29), concurrency=1, ahead=8, ordered=False
    )

    async def read() -> None:
        async with stream as inside:
            await answered(fake, 500)
            await drain(inside.windows(), got)

    with pytest.raises(ServerError):
        await read()
    assert [w.start for w in got] == [START + timedelta(days=d) for d in range(5)]
    assert len([r for r in fake.requests if r.path.endswith("data")]) == 6


async def test_iter_call_data_yields_the_windows_before_a_failure(
    client: TeletrackerClient, fake: FakeTeletracker
) -> None:
    """iter_call_data: a window failing in a batch raises after the records of the
    windows before it (they finish), never after those of the windows after it."""
    await client.session()
    fake.delay_next("data", 0.0, times=5)
    fake.fail_next("data", 500)
    got: list[Any] = []
    pull = client.iter_call_data(START, START + timedelta(days=29), concurrency=8)
    with pytest.raises(ServerError):
        await drain(pull, got)
    failed = next(day_of(r) for r in fake.requests if r.status == 500)
    assert got == expected(fake, (failed - START).days)


async def test_windows_refuses_a_half_read_window(
    client: TeletrackerClient,
) -> None:
    """windows() after part of a window's records would hand out a window that is
    not whole: a RuntimeError says so."""
    async with client.stream_call_data(START, START + timedelta(days=2)) as stream:
        await stream.__anext__()
        with pytest.raises(RuntimeError, match="part of a window"):
            await stream.windows().__anext__()
        rest = [r async for r in stream]
        assert [w async for w in stream.windows()] == []
    assert len(rest) == 3 * 2 - 1


@pytest.mark.parametrize(
    ("streams", "days"),
    [(100, 5), pytest.param(400, 10, marks=pytest.mark.slow)],
    ids=str,
)
async def test_many_streams_share_one_session(
    client: TeletrackerClient, fake: FakeTeletracker, streams: int, days: int
) -> None:
    """Hundreds of streams at once (a request a day each, three at a time: hundreds
    of coroutines) through one client: one login, every stream complete and in
    order."""
    results: dict[int, list[Any]] = {}

    async def pull(index: int) -> None:
        stream = client.stream_call_data(
            START, START + timedelta(days=days - 1), concurrency=3
        )
        async with stream as inside:
            results[index] = [r async for r in inside]

    async with anyio.create_task_group() as tg:
        for index in range(streams):
            tg.start_soon(pull, index)
    assert fake.stats.logins == 1
    assert fake.stats.data_requests == days * streams
    assert len(results) == streams
    assert all(records == expected(fake, days) for records in results.values())


async def test_misuse_and_bad_arguments_are_clear_errors(
    client: TeletrackerClient, fake: FakeTeletracker
) -> None:
    """Bad knobs fail at the call, before any request; iterating outside the block
    or entering twice is a RuntimeError that says what to do."""
    cases: list[tuple[dict[str, Any], type[Exception]]] = [
        ({"ahead": 0}, ValueError),
        ({"concurrency": 0}, ValueError),
        ({"window_days": True}, TypeError),
        ({"ordered": "yes"}, TypeError),
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
