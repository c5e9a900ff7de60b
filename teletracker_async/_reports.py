"""``CallDataStream``: a long report pulled through a sliding window of requests.

A task group cannot span a ``yield`` of an async generator (the generator may be
suspended in one task and closed from another), so the stream is an async context
manager: the task group lives between ``__aenter__`` and ``__aexit__``, in the
caller's task, and ``__anext__`` only waits on events. No task outlives the
``async with`` block, whatever ends it.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import date, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast, overload

import anyio
import attrs

from teletracker_async._call.answers import records as records_of
from teletracker_async._call.options import NOT_GIVEN, NotGiven, TimeoutArg
from teletracker_async._config import STREAM_AHEAD_PER_REQUEST
from teletracker_async._errors import TeletrackerError
from teletracker_async._secrets import check_account_id, check_positive_int

if TYPE_CHECKING:
    from typing_extensions import Self

    from teletracker_async._call.send import RequestPath

__all__ = [
    "CallDataStream",
    "CallDataWindow",
    "CallWindows",
    "ReportCalls",
    "call_data",
    "date_range",
    "iter_call_data",
    "windows_of",
]

#: A day: a ``date`` or ``"YYYY-MM-DD"``.
DateLike = date | str

#: A window's first and last day, both included.
Window = tuple[date, date]
Records = list[dict[str, Any]]


class CallWindows(Sequence[Window]):
    """*first* to *last* (both included) cut into windows of *days* days, computed
    on demand: the length and any window in constant time and memory, whatever the
    range (the last window is clipped to *last*; *days* may exceed the range)."""

    __slots__ = ("_days", "_first", "_last", "_len")

    def __init__(self, first: date, last: date, days: int) -> None:
        self._first, self._last = first.toordinal(), last.toordinal()
        self._days = days
        span = self._last - self._first + 1
        self._len = max(0, -(-span // days))

    def __len__(self) -> int:
        return self._len

    @overload
    def __getitem__(self, index: int) -> Window: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Window]: ...
    def __getitem__(self, index: int | slice) -> Window | Sequence[Window]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._len))]
        if index < 0:
            index += self._len
        if not 0 <= index < self._len:
            raise IndexError("window index out of range")
        # Ordinals, not date arithmetic: no date past 9999-12-31 is ever formed.
        start = self._first + index * self._days
        end = min(start + self._days - 1, self._last)
        return date.fromordinal(start), date.fromordinal(end)

    def __repr__(self) -> str:
        return (
            f"CallWindows({date.fromordinal(self._first)}, "
            f"{date.fromordinal(self._last)}, days={self._days})"
        )


def windows_of(first: date, last: date, days: int) -> CallWindows:
    """*first* to *last* (both included) cut into windows of *days* days (lazily)."""
    return CallWindows(first, last, days)


@attrs.frozen
class CallDataWindow:
    """One window of a report pull, whole: its first and last day (both included)
    and every call record the API returned for them, in the API's order."""

    start: date
    end: date
    records: list[dict[str, Any]] = attrs.field(repr=lambda r: f"<{len(r)} records>")


class CallDataStream:
    """Call records of a long range, fetched through a sliding window of requests.

    Built by :meth:`TeletrackerClient.stream_call_data`; use it as::

        async with client.stream_call_data("2026-01-01", "2026-11-26") as stream:
            async for record in stream:
                ...

    Iterate what ``async with ... as`` gives: type checkers see ``async for`` only
    there, as the stream raises ``RuntimeError`` when iterated outside its block.

    As soon as one window's answer arrives the next window starts, so up to
    ``concurrency`` requests stay in flight, also while your loop body works on the
    records already there. The windows are computed as they start, so a range of
    any length starts at once in constant memory.

    ``ordered=True`` (the default): records come out in date order. A window starts
    only while it is fewer than ``ahead`` windows past the one you are reading, so
    at most ``ahead`` windows are held or in flight besides it.
    ``ordered=False``: each window's records come out, whole and together, as soon
    as that window's answer arrives; at most ``ahead`` windows are held or in flight
    besides the one you are reading. Either way :attr:`window` names the window of
    the record last handed out, and :meth:`windows` hands out whole windows
    (:class:`CallDataWindow`) instead of records.

    Leaving the block (the loop's end, a ``break``, an exception in your loop body,
    a cancellation) cancels every request still running before it returns.
    A failed window's error is raised by the loop as itself, never as an
    ``ExceptionGroup``, and no record already fetched is lost: in date order, every
    window before the failed one is handed out first (their requests still in
    flight finish), then its error is raised; the windows after it are cancelled.
    Unordered, the windows that arrived before the failure are handed out, then the
    error; the requests still in flight are cancelled.

    Attributes:
        windows_total: How many windows (requests) the range is cut into.
        windows_done: Windows whose answer has arrived.
        records: Records handed to you so far.
        started_at: ``time.monotonic()`` when the block was entered.
        ordered: Whether records come out in date order.
    """

    def __init__(
        self,
        fetch: Callable[[date, date], Awaitable[Records]],
        windows: Sequence[Window],
        *,
        concurrency: int,
        ahead: int,
        ordered: bool = True,
    ) -> None:
        self._fetch = fetch
        # A CallWindows is computed on demand; anything else is the caller's own.
        self._windows = windows if isinstance(windows, CallWindows) else tuple(windows)
        self._concurrency = concurrency
        self._ahead = ahead
        self.ordered: bool = ordered
        self.windows_total: int = len(self._windows)
        self.windows_done: int = 0
        self.records: int = 0
        self.started_at: float | None = None
        # Answers not yet handed out: by index (in order) or as they came (not).
        self._results: dict[int, Records] = {}
        self._arrivals: deque[tuple[int, Records]] = deque()
        self._running: dict[int, anyio.CancelScope] = {}  # windows in flight
        self._started = 0  # windows started (they start in date order)
        self._next = 0  # in order: the next window the reader takes
        self._handed = 0  # windows handed to the reader
        self._window: Window | None = None
        self._current: Records = []
        self._position = 0
        self._error: Exception | None = None
        self._failed_at: int | None = None  # the earliest failed window
        self._state = "new"  # new -> open -> done / failed -> closed
        self._task_group: Any = None
        self._arrived = anyio.Event()  # an answer or an error came in
        self._room = anyio.Event()  # a request ended or the reader moved on

    def __repr__(self) -> str:
        return (
            f"CallDataStream(windows_done={self.windows_done}, "
            f"windows_total={self.windows_total}, records={self.records}, "
            f"ordered={self.ordered}, state={self._state!r})"
        )

    @property
    def fraction_done(self) -> float:
        """Windows answered, as a fraction of all (1.0 for an empty range)."""
        if not self.windows_total:
            return 1.0
        return self.windows_done / self.windows_total

    @property
    def window(self) -> Window | None:
        """The first and last day of the window of the record last handed out
        (None before the first)."""
        return self._window

    @property
    def held(self) -> int:
        """Windows fetched or in flight and not yet handed out (the one being read
        excluded): never more than ``ahead``."""
        return len(self._results) + len(self._arrivals) + len(self._running)

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

    def _check_open(self) -> None:
        if self._state in ("new", "closed"):
            raise RuntimeError(
                "iterate a CallDataStream inside its block: "
                "`async with client.stream_call_data(...) as stream: "
                "async for record in stream: ...`"
            )

    async def _next_record(self) -> dict[str, Any]:
        self._check_open()
        while self._position >= len(self._current):
            self._current, self._position = await self._take(), 0
        record = self._current[self._position]
        self._position += 1
        self.records += 1
        return record

    if not TYPE_CHECKING:
        # An alias, not a wrapper: one call per record, as before.
        __anext__ = _next_record

    def windows(self) -> AsyncIterator[CallDataWindow]:
        """Whole windows instead of records: each :class:`CallDataWindow` as the
        stream hands it out (in date order, or as they arrive with
        ``ordered=False``). Use it inside the block, instead of iterating records::

            async with client.stream_call_data(start, end, ordered=False) as s:
                async for window in s.windows():
                    save(window.start, window.end, window.records)

        Raises:
            RuntimeError: Outside the block, or with a window's records half read.
        """
        return _Windows(self)

    async def _next_window(self) -> CallDataWindow:
        self._check_open()
        if self._position < len(self._current):
            raise RuntimeError(
                "windows() after reading part of a window's records: "
                "iterate either records or windows"
            )
        records = await self._take()
        self.records += len(records)
        self._current, self._position = [], 0
        assert self._window is not None  # noqa: S101 - set by _take
        return CallDataWindow(*self._window, records)

    async def _take(self) -> Records:
        """The next window's records (the window in ``_window``), its error, or
        StopAsyncIteration when every window was handed out or one failed."""
        self._check_open()
        while True:
            if self._state == "failed" or self._handed >= self.windows_total:
                self._current = []
                raise StopAsyncIteration
            if self.ordered:
                found = self._results.pop(self._next, None)
                index = self._next
                failed = self._failed_at == index
            else:
                found = None
                if self._arrivals:
                    index, found = self._arrivals.popleft()
                failed = found is None and self._error is not None
            if failed:
                error, self._error = self._error, None
                self._state = "failed"
                assert error is not None  # noqa: S101 - set with _failed_at
                raise error
            if found is None:
                await self._arrived.wait()
                self._arrived = anyio.Event()
                continue
            self._window = self._windows[index]
            self._next = index + 1
            self._handed += 1
            self._room.set()  # one more window may start
            return found

    # -- the fetchers -------------------------------------------------------------------

    def _has_room(self) -> bool:
        if len(self._running) >= self._concurrency:
            return False
        if self.ordered:
            return self._started < self._next + self._ahead
        return self.held < self._ahead

    async def _feed(self) -> None:
        """Start windows in date order while there is room, until all have started
        or one failed."""
        async with anyio.create_task_group() as fetchers:
            while self._started < self.windows_total and self._failed_at is None:
                if not self._has_room():
                    await self._room.wait()
                    self._room = anyio.Event()
                    continue
                index = self._started
                self._started += 1
                self._running[index] = scope = anyio.CancelScope()
                fetchers.start_soon(self._one, index, scope)

    async def _one(self, index: int, scope: anyio.CancelScope) -> None:
        try:
            with scope:
                records = await self._fetch(*self._windows[index])
        except Exception as exc:  # noqa: BLE001 - handed to the reader as itself
            self._failed(index, exc)
            return
        finally:
            self._running.pop(index, None)
            self._room.set()
        if scope.cancelled_caught:
            return
        self.windows_done += 1
        if self._failed_at is not None and (
            not self.ordered or index > self._failed_at
        ):
            return  # after the failure: never handed out
        if self.ordered:
            self._results[index] = records
        else:
            self._arrivals.append((index, records))
        self._arrived.set()

    def _failed(self, index: int, exc: Exception) -> None:
        """Keep the error of the earliest failed window (in order) or of the first
        failure (unordered), and cancel the requests that can no longer count."""
        if self._state != "open":
            return
        if self._failed_at is None or (self.ordered and index < self._failed_at):
            self._failed_at, self._error = index, exc
        for other, scope in list(self._running.items()):
            if not self.ordered or other > self._failed_at:
                scope.cancel()
        if self.ordered:  # answers past the failure are never handed out
            for later in [i for i in self._results if i > self._failed_at]:
                del self._results[later]
        self._room.set()  # the feeder sees the failure and stops
        self._arrived.set()


class _Windows:
    """What :meth:`CallDataStream.windows` returns: an iterator object, not an
    async generator, so that a ``break`` leaves nothing to finalize."""

    __slots__ = ("_stream",)

    def __init__(self, stream: CallDataStream) -> None:
        self._stream = stream

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> CallDataWindow:
        return await self._stream._next_window()  # noqa: SLF001 - its own stream


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
    path: RequestPath, windows: Sequence[Window], account_id: int | None, width: int
) -> AsyncIterator[dict[str, Any]]:
    """The records of *windows*, *width* windows fetched at a time, in order; when
    one fails, the records of the windows before it, then its error."""
    for batch_start in range(0, len(windows), width):
        batch = windows[batch_start : batch_start + width]
        results, error = await _fetch_batch(path, batch, account_id)
        for found in results:
            for record in found:
                yield record
        if error is not None:
            raise error


async def _fetch_batch(
    path: RequestPath, batch: Sequence[Window], account_id: int | None
) -> tuple[list[Records], TeletrackerError | None]:
    """The records of the windows before the first that failed (all of them when
    none did), and that window's error. The windows after it are cancelled; those
    before it finish."""
    results: list[Records | None] = [None] * len(batch)
    scopes = [anyio.CancelScope() for _ in batch]
    failed: list[tuple[int, TeletrackerError]] = []

    async def fetch(index: int, window: Window) -> None:
        with scopes[index]:
            try:
                results[index] = await call_data(path, *window, account_id)
            except TeletrackerError as exc:
                if failed and failed[0][0] < index:
                    return
                failed[:] = [(index, exc)]
                for later in scopes[index + 1 :]:
                    later.cancel()

    async with anyio.create_task_group() as tg:
        for index, window in enumerate(batch):
            tg.start_soon(fetch, index, window)
    if failed:
        index, error = failed[0]
        return [r for r in results[:index] if r is not None], error
    return [r for r in results if r is not None], None


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
        ordered: bool = True,
        timeout: TimeoutArg | NotGiven = NOT_GIVEN,
    ) -> CallDataStream:
        """Call records of a long range through a sliding window of requests.

        ::

            async with client.stream_call_data(start, end) as stream:
                async for record in stream:
                    ...

        The range is cut into windows of ``window_days`` (the last one clipped to
        ``end_date``; any range and width work, computed as they start, so the
        first request leaves at once). As soon as one window's answer arrives the
        next one starts, keeping up to ``concurrency`` requests in flight, also
        while your loop body works. Records come out in date order, or with
        ``ordered=False`` each window whole as soon as it arrives
        (``stream.window`` names the window of the last record;
        ``stream.windows()`` hands out :class:`CallDataWindow` objects). At most
        ``ahead`` windows besides the one being read are fetched or in flight
        (default ``STREAM_AHEAD_PER_REQUEST * concurrency``), which bounds memory.
        Leaving the block cancels whatever still runs. A failed window's error is
        raised as itself, after the records of every window before it.
        ``stream.windows_done``, ``stream.windows_total``, ``stream.records`` and
        ``stream.eta()`` tell how far it is.

        Raises:
            ValueError, TypeError: Bad arguments, here, before any request.
            AccountMismatchError: A bearer session of another account, here.
            TeletrackerError: From the loop: the failed window's error.
        """
        first, last = date_range(start_date, end_date)
        account = check_account_id(account_id)
        step = check_positive_int("window_days", window_days)
        width = check_positive_int("concurrency", concurrency)
        lookahead = (
            STREAM_AHEAD_PER_REQUEST * width
            if ahead is None
            else check_positive_int("ahead", ahead)
        )
        if not isinstance(ordered, bool):
            raise TypeError(f"ordered must be a bool, not {type(ordered).__name__}")
        self._path.check_account("stream_call_data", account)
        path = self._path.with_timeout(timeout)

        async def fetch(start: date, end: date) -> list[dict[str, Any]]:
            return await call_data(path, start, end, account)

        return CallDataStream(
            fetch,
            windows_of(first, last, step),
            concurrency=width,
            ahead=lookahead,
            ordered=ordered,
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
            TeletrackerError: The earliest failed window's error, after the records
                of the windows before it; the windows after it are cancelled.
        """
        first, last = date_range(start_date, end_date)
        account = check_account_id(account_id)
        step = check_positive_int("window_days", window_days)
        width = check_positive_int("concurrency", concurrency)
        self._path.check_account("iter_call_data", account)
        path = self._path.with_timeout(timeout)
        return iter_call_data(path, windows_of(first, last, step), account, width)
