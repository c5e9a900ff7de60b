"""``CallDataStream``: a long report pulled through a sliding window of requests.

A task group cannot span a ``yield`` of an async generator (the generator may be
suspended in one task and closed from another), so the stream is an async context
manager: the task group lives between ``__aenter__`` and ``__aexit__``, in the
caller's task, and ``__anext__`` only waits on events. No task outlives the
``async with`` block, whatever ends it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import date, datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast

import anyio

from teletracker_async._call.answers import records as records_of
from teletracker_async._call.options import NOT_GIVEN, NotGiven, TimeoutArg
from teletracker_async._errors import TeletrackerError
from teletracker_async._secrets import check_account_id, check_positive_int

if TYPE_CHECKING:
    from typing_extensions import Self

    from teletracker_async._call.send import RequestPath

__all__ = [
    "CallDataStream",
    "ReportCalls",
    "call_data",
    "date_range",
    "iter_call_data",
    "windows_of",
]

#: A day: a ``date`` or ``"YYYY-MM-DD"``.
DateLike = date | str

Window = tuple[date, date]
Records = list[dict[str, Any]]


def windows_of(first: date, last: date, days: int) -> list[Window]:
    """*first* to *last* (both included) cut into windows of *days* days."""
    windows: list[Window] = []
    day = first
    while day <= last:
        end = min(day + timedelta(days=days - 1), last)
        windows.append((day, end))
        day = end + timedelta(days=1)
    return windows


class CallDataStream:
    """Call records of a long range, in date order, fetched through a sliding window.

    Built by :meth:`TeletrackerClient.stream_call_data`; use it as::

        async with client.stream_call_data("2026-01-01", "2026-11-26") as stream:
            async for record in stream:
                ...

    Iterate what ``async with ... as`` gives: type checkers see ``async for`` only
    there, as the stream raises ``RuntimeError`` when iterated outside its block.

    As soon as one window's answer arrives the next window starts, so up to
    ``concurrency`` requests stay in flight, also while your loop body works on the
    records already there. Records come out in date order. Memory stays bounded:
    a window starts only while it is fewer than ``ahead`` windows past the one you
    are reading, so at most ``ahead`` windows are held or in flight besides it.

    Leaving the block (the loop's end, a ``break``, an exception in your loop body,
    a cancellation) cancels every request still running before it returns. The
    first failed window's error is raised by the loop as itself, never as an
    ``ExceptionGroup``, and the other requests are cancelled.

    Attributes:
        windows_total: How many windows (requests) the range is cut into.
        windows_done: Windows whose answer has arrived.
        records: Records handed to you so far.
        started_at: ``time.monotonic()`` when the block was entered.
    """

    def __init__(
        self,
        fetch: Callable[[date, date], Awaitable[Records]],
        windows: Sequence[Window],
        *,
        concurrency: int,
        ahead: int,
    ) -> None:
        self._fetch = fetch
        self._windows = tuple(windows)
        self._concurrency = concurrency
        self._ahead = ahead
        self.windows_total: int = len(self._windows)
        self.windows_done: int = 0
        self.records: int = 0
        self.started_at: float | None = None
        self._results: dict[int, Records] = {}
        self._started = 0  # windows started (they start in date order)
        self._in_flight = 0
        self._next = 0  # the next window the reader takes
        self._current: Records = []
        self._position = 0
        self._error: Exception | None = None
        self._state = "new"  # new -> open -> done / failed -> closed
        self._task_group: Any = None
        self._fetching: anyio.CancelScope | None = None
        self._arrived = anyio.Event()  # an answer or an error came in
        self._room = anyio.Event()  # a request ended or the reader moved on

    def __repr__(self) -> str:
        return (
            f"CallDataStream(windows_done={self.windows_done}, "
            f"windows_total={self.windows_total}, records={self.records}, "
            f"state={self._state!r})"
        )

    @property
    def fraction_done(self) -> float:
        """Windows answered, as a fraction of all (1.0 for an empty range)."""
        if not self.windows_total:
            return 1.0
        return self.windows_done / self.windows_total

    def eta(self, now: float | None = None) -> float | None:
        """Seconds until every window is answered, at the pace so far; None before
        the first answer (or before the block is entered)."""
        if self.started_at is None or not self.windows_done:
            return None
        elapsed = (time.monotonic() if now is None else now) - self.started_at
        left = self.windows_total - self.windows_done
        return elapsed / self.windows_done * left

    # -- the block ----------------------------------------------------------------------

    async def __aenter__(self) -> _OpenCallDataStream:
        if self._state != "new":
            raise RuntimeError(
                "a CallDataStream can be entered once: call stream_call_data() again"
            )
        self._state = "open"
        self.started_at = time.monotonic()
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        self._task_group.start_soon(self._feed)
        return cast("_OpenCallDataStream", self)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._state = "closed"
        self._task_group.cancel_scope.cancel()
        # The body's own exception is not handed to the task group: its tasks never
        # raise, so it ends cleanly, and the body's exception (or cancellation)
        # goes on as itself, not wrapped in an ExceptionGroup (trio would wrap it).
        await self._task_group.__aexit__(None, None, None)

    # -- the reader ---------------------------------------------------------------------

    # Type checkers see iteration only on what ``__aenter__`` returns, so that an
    # ``async for`` over a stream outside its block is a type error. It stays at run
    # time, where it raises a RuntimeError that names the fix for untyped callers.
    if not TYPE_CHECKING:

        def __aiter__(self) -> Self:
            return self

    async def _next_record(self) -> dict[str, Any]:
        if self._state in ("new", "closed"):
            raise RuntimeError(
                "iterate a CallDataStream inside its block: "
                "`async with client.stream_call_data(...) as stream: "
                "async for record in stream: ...`"
            )
        while True:
            if self._position < len(self._current):
                record = self._current[self._position]
                self._position += 1
                self.records += 1
                return record
            if self._error is not None:
                error, self._error = self._error, None
                self._state = "failed"
                raise error
            if self._state == "failed" or self._next >= self.windows_total:
                self._current = []
                raise StopAsyncIteration
            records = self._results.pop(self._next, None)
            if records is None:
                await self._arrived.wait()
                self._arrived = anyio.Event()
                continue
            self._current, self._position = records, 0
            self._next += 1
            self._room.set()  # one more window may start

    if not TYPE_CHECKING:
        # An alias, not a wrapper: one call per record, as before.
        __anext__ = _next_record

    # -- the fetchers -------------------------------------------------------------------

    async def _feed(self) -> None:
        """Start windows in date order while there is room, until all have started."""
        with anyio.CancelScope() as self._fetching:
            async with anyio.create_task_group() as fetchers:
                while self._started < self.windows_total:
                    if (
                        self._in_flight >= self._concurrency
                        or self._started >= self._next + self._ahead
                    ):
                        await self._room.wait()
                        self._room = anyio.Event()
                        continue
                    self._in_flight += 1
                    self._started += 1
                    fetchers.start_soon(self._one, self._started - 1)

    async def _one(self, index: int) -> None:
        try:
            records = await self._fetch(*self._windows[index])
        except Exception as exc:  # noqa: BLE001 - handed to the reader as itself
            if self._error is None and self._state == "open":
                self._error = exc
            if self._fetching is not None:
                self._fetching.cancel()  # the rest is not worth fetching
            self._arrived.set()
            return
        self._results[index] = records
        self.windows_done += 1
        self._in_flight -= 1
        self._room.set()
        self._arrived.set()


if TYPE_CHECKING:

    class _OpenCallDataStream(CallDataStream):
        """A :class:`CallDataStream` inside its ``async with`` block: iterable."""

        def __aiter__(self) -> Self: ...
        async def __anext__(self) -> dict[str, Any]: ...

else:
    _OpenCallDataStream = CallDataStream


def _as_date(name: str, value: object) -> date:
    if isinstance(value, datetime):
        raise TypeError(f"{name} must be a date, not a datetime (which day is meant?)")
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{name} must be YYYY-MM-DD, got {value!r}") from None
    raise TypeError(
        f"{name} must be a datetime.date or a 'YYYY-MM-DD' string, "
        f"not {type(value).__name__}"
    )


def date_range(start: object, end: object) -> tuple[date, date]:
    """*start* and *end* as dates, *end* not before *start*.

    Raises:
        TypeError, ValueError: Not a day, or *end* before *start*.
    """
    first, last = _as_date("start_date", start), _as_date("end_date", end)
    if last < first:
        raise ValueError(f"end_date {last} is before start_date {first}")
    return first, last


async def call_data(
    path: RequestPath, first: date, last: date, account_id: int | None
) -> Records:
    """The call records from *first* to *last*, through *path*.

    Raises:
        TeletrackerError: As ``TeletrackerClient.call_data``.
    """
    params: dict[str, Any] = {
        "start_date": first.isoformat(),
        "end_date": last.isoformat(),
    }
    if account_id is not None:
        params["account_id"] = account_id
    where = "/reports/call-data"
    url = path.link.url(where)
    build, extra = path.link.http.build_request, path.extra
    response = await path.send(
        lambda: build("GET", url, params=params, **extra),
        what=("GET", where),
        idempotent=None,
    )
    result = records_of(where, response, path.auth)
    if isinstance(result, TeletrackerError):
        raise result
    return result


async def iter_call_data(
    path: RequestPath, windows: list[Window], account_id: int | None, width: int
) -> AsyncIterator[dict[str, Any]]:
    """The records of *windows*, *width* windows fetched at a time, in order."""
    for batch_start in range(0, len(windows), width):
        batch = windows[batch_start : batch_start + width]
        for found in await _fetch_batch(path, batch, account_id):
            for record in found:
                yield record


async def _fetch_batch(
    path: RequestPath, batch: list[Window], account_id: int | None
) -> list[Records]:
    results: list[Records] = [[] for _ in batch]
    errors: list[BaseException] = []

    async def fetch(index: int, window: Window) -> None:
        try:
            results[index] = await call_data(path, *window, account_id)
        except TeletrackerError as exc:
            if not errors:
                errors.append(exc)
            tg.cancel_scope.cancel()

    async with anyio.create_task_group() as tg:
        for index, window in enumerate(batch):
            tg.start_soon(fetch, index, window)
    if errors:
        raise errors[0]
    return results


class ReportCalls:
    """The report pulls of ``TeletrackerClient`` (a base of it): each goes through
    the client's request path."""

    _path: RequestPath

    async def call_data(
        self,
        start_date: DateLike,
        end_date: DateLike,
        *,
        account_id: int | None = None,
        timeout: TimeoutArg | NotGiven = NOT_GIVEN,  # noqa: ASYNC109 - the request's
    ) -> list[dict[str, Any]]:
        """Call records between two dates, both included.

        Args:
            start_date: A ``date`` or ``"YYYY-MM-DD"``.
            end_date: A ``date`` or ``"YYYY-MM-DD"``, not before ``start_date``.
            account_id: The account to report on. With a bearer session it must be
                the session's own (use :meth:`for_account` for others); Basic and
                Integrator auth send it with the request.
            timeout: This call's timeouts instead of the client's.

        Returns:
            The records as the API sends them (plain dicts).

        Raises:
            ValueError, TypeError: Bad dates or account id (before any request).
            AccountMismatchError: A bearer session of another account.
            TeletrackerError: As :meth:`request_json`; ``ResponseFormatError`` when
                ``data`` is not a list of objects.
        """
        first, last = date_range(start_date, end_date)
        account = check_account_id(account_id)
        self._path.check_account("call_data", account)
        return await call_data(self._path.with_timeout(timeout), first, last, account)

    def stream_call_data(
        self,
        start_date: DateLike,
        end_date: DateLike,
        *,
        account_id: int | None = None,
        window_days: int = 1,
        concurrency: int = 8,
        ahead: int | None = None,
        timeout: TimeoutArg | NotGiven = NOT_GIVEN,
    ) -> CallDataStream:
        """Call records of a long range, in date order, through a sliding window.

        ::

            async with client.stream_call_data(start, end) as stream:
                async for record in stream:
                    ...

        The range is cut into windows of ``window_days``. As soon as one window's
        answer arrives the next one starts, keeping up to ``concurrency`` requests
        in flight, also while your loop body works. Records come out in date
        order. At most ``ahead`` windows past the one being read are fetched or
        in flight (default ``2 * concurrency``), which bounds memory. Leaving the
        block cancels whatever still runs; the first error is raised as itself.
        ``stream.windows_done``, ``stream.windows_total``, ``stream.records`` and
        ``stream.eta()`` tell how far it is.

        Raises:
            ValueError, TypeError: Bad arguments, here, before any request.
            AccountMismatchError: A bearer session of another account, here.
            TeletrackerError: From the loop: the first window that failed.
        """
        first, last = date_range(start_date, end_date)
        account = check_account_id(account_id)
        step = check_positive_int("window_days", window_days)
        width = check_positive_int("concurrency", concurrency)
        lookahead = 2 * width if ahead is None else check_positive_int("ahead", ahead)
        self._path.check_account("stream_call_data", account)
        path = self._path.with_timeout(timeout)

        async def fetch(start: date, end: date) -> list[dict[str, Any]]:
            return await call_data(path, start, end, account)

        return CallDataStream(
            fetch, windows_of(first, last, step), concurrency=width, ahead=lookahead
        )

    def iter_call_data(
        self,
        start_date: DateLike,
        end_date: DateLike,
        *,
        account_id: int | None = None,
        window_days: int = 1,
        concurrency: int = 8,
        timeout: TimeoutArg | NotGiven = NOT_GIVEN,
    ) -> AsyncIterator[dict[str, Any]]:
        """Yield call records of a long range in date order, a batch at a time.

        The simple form of :meth:`stream_call_data`, usable without a block: the
        range is cut into windows of ``window_days``; ``concurrency`` windows are
        fetched together, then their records are yielded in order before the next
        batch starts. An async generator cannot hold a task group across its
        ``yield``, so each batch's tasks end before its records are yielded: a
        ``break`` leaves nothing running, and the first error is raised as itself.
        The price: a batch waits for its slowest window, and nothing is fetched
        while you consume it. :meth:`stream_call_data` has neither cost.

        Raises:
            ValueError, TypeError: Bad arguments, before any request.
            AccountMismatchError: A bearer session of another account.
            TeletrackerError: The first error of a batch; the rest are cancelled.
        """
        first, last = date_range(start_date, end_date)
        account = check_account_id(account_id)
        step = check_positive_int("window_days", window_days)
        width = check_positive_int("concurrency", concurrency)
        self._path.check_account("iter_call_data", account)
        path = self._path.with_timeout(timeout)
        return iter_call_data(path, windows_of(first, last, step), account, width)
