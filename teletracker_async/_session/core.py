"""One session shared by every coroutine, event loop and thread of a process.

:class:`SessionCore` wraps the pure :class:`~teletracker_async._session.machine.SessionMachine`
with what a process needs around it, and nothing about HTTP:

- a ``threading.Lock`` around each decision and outcome, never held across an await,
  so that the renewal decision and the spending of a refresh token are atomic across
  threads;
- per flight, one ``anyio.Event`` per waiting event loop: every coroutine of a loop
  waits on its loop's event, and the flight's end sets them all at once, from any
  thread (``call_soon_threadsafe`` for asyncio, ``TrioToken.run_sync_soon`` for
  trio), so no loop is ever blocked and no lock is handed along one waiter at a time;
- a check that the loop running a flight is still alive, for waiters in other loops
  (a loop torn down mid-exchange must not hold everyone else forever);
- an ``os.register_at_fork`` hook: a forked child drops the inherited session and
  locks, and logs in itself, instead of sharing its parent's refresh token;
- the session's events (:mod:`teletracker_async.events`) and counters: each counter
  is bumped, and each event built (only while someone listens), where the state
  changes, under the lock; the events are delivered once it is released.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import weakref
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel

from teletracker_async._config import WAIT_RECHECK
from teletracker_async._session.machine import (
    NEED,
    Event,
    Exchange,
    FleetChoice,
    Lease,
    Refused,
    Renewal,
    Seen,
    SessionMachine,
    Start,
    Step,
    Use,
)
from teletracker_async.events import (
    Listener,
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
    Then,
)

if TYPE_CHECKING:
    from teletracker_async._converter import TokenAnswer
    from teletracker_async._errors import TeletrackerError

__all__ = ["SessionCore", "check_listeners", "current_loop"]

logger = logging.getLogger("teletracker_async")

_CORES: weakref.WeakSet[SessionCore] = weakref.WeakSet()


async def _settled() -> None:
    """Nothing to wait for: the flight has settled already."""


def current_loop() -> object | None:
    """The running event loop (asyncio) or trio token, or None outside one."""
    try:
        # anyio's native token on asyncio, in a fraction of a µs (the client asks
        # on every request).
        return asyncio.get_running_loop()
    except RuntimeError:
        pass
    try:
        return anyio.lowlevel.current_token().native_token
    except Exception:  # noqa: BLE001 - sniffio's error type varies; no loop is no loop
        return None


def _call_soon(loop: object, callback: Callable[[], object]) -> bool:
    """Run *callback* in *loop*'s thread soon; False when the loop has ended."""
    try:
        if isinstance(loop, asyncio.AbstractEventLoop):
            loop.call_soon_threadsafe(callback)
        else:
            loop.run_sync_soon(callback)  # type: ignore[attr-defined]  # TrioToken
    except RuntimeError:  # asyncio: loop closed; trio: RunFinishedError
        return False
    return True


def _noop() -> None:
    pass


def _alive(owner: tuple[object | None, threading.Thread] | None) -> bool:
    """Whether the loop that runs a flight can still finish it."""
    if owner is None:
        return False
    loop, thread = owner
    if loop is None or not thread.is_alive():
        # A loop runs in its thread or not at all: once the thread has ended (or,
        # in a forked child, was never copied), a loop that still claims to run is
        # a copy of the parent's state, and nothing will ever settle its renewal.
        return False
    if isinstance(loop, asyncio.AbstractEventLoop):
        return not loop.is_closed()
    return _call_soon(loop, _noop)


def check_listeners(on_event: object) -> tuple[Listener, ...]:
    """*on_event* (None, a callable or a sequence of callables) as a tuple.

    Raises:
        TypeError: Something in it is not callable.
    """
    if on_event is None:
        return ()
    listeners = (on_event,) if callable(on_event) else on_event
    if not isinstance(listeners, (list, tuple)) or not all(
        callable(listener) for listener in listeners
    ):
        raise TypeError(
            "on_event must be a callable taking one event, or a list or tuple of "
            f"them, not {type(on_event).__name__}"
        )
    return tuple(listeners)


def _name(listener: Listener) -> str:
    return getattr(listener, "__qualname__", type(listener).__name__)


class SessionCore:
    """The session state of one set of credentials, safe across loops and threads.

    Args:
        machine: The renewal policy.
        clock: The auth's monotonic clock.
        listeners: Called with each event (see :mod:`teletracker_async.events`).
    """

    def __init__(
        self,
        machine: SessionMachine,
        clock: Callable[[], float],
        listeners: tuple[Listener, ...] = (),
    ) -> None:
        self.machine = machine
        self._clock = clock
        self._mutex = threading.Lock()
        #: Replaced whole, never changed in place: read without the lock.
        self.listeners = listeners
        self.stats = SessionStats()
        #: Listeners whose error was logged already (each is logged once).
        self._noisy: set[int] = set()
        #: Events of a change made where no listener may run (a fork): delivered
        #: by the next plan.
        self._pending: list[SessionEvent] = []
        #: flight number -> {event loop -> the event its waiters wait on}
        self._waiters: dict[int, dict[object, anyio.Event]] = {}
        #: Coroutines that waited for a renewal, ever (read by the benchmarks).
        self.waits = 0
        #: flight number -> (the event loop running it, the thread it ran in)
        self._owners: dict[int, tuple[object | None, threading.Thread]] = {}
        _CORES.add(self)

    def __repr__(self) -> str:
        return f"SessionCore({self.machine!r})"

    @property
    def lease(self) -> Lease | None:
        return self.machine.lease

    def busy(self) -> bool:
        """Whether a renewal is in flight or anyone waits for one (for tests)."""
        with self._mutex:
            return self.machine.flight is not None or bool(self._waiters)

    def plan(self, event: Event, waited: int | None = None) -> Step:
        """Ask the machine what to do, atomically with respect to every thread."""
        notes: list[SessionEvent] = []
        with self._mutex:
            machine = self.machine
            now = self._clock()
            lease = machine.lease
            suspected = machine.suspect
            step = machine.plan(now, event, waited)
            if isinstance(step, Start):
                owner = (current_loop(), threading.current_thread())
                self._owners[step.exchange.number] = owner
                if (
                    isinstance(event, Refused)
                    and lease is not None
                    and lease.generation == event.generation != suspected
                ):
                    self._dropped(notes, now, lease, "token_refused")
                if step.exchange.reason == "refresh_withheld":
                    self.stats.refresh_tokens_withheld += 1
                    if self.listeners:
                        notes.append(RefreshTokenWithheld(**self._stamp(now, lease)))
            if self._pending:
                notes[:0], self._pending = self._pending, []
        if notes:
            self.deliver(notes)
        return step

    def replan(self, event: Event, flight: int) -> Step:
        """:meth:`plan` for a caller that has just waited for *flight*.

        When the renewal brought a token that serves a plain need, that is the
        machine's answer (the fast path's own test, ``fast_until``), given without
        its lock: in a storm every waiter but one comes through here.
        """
        lease = self.machine.lease
        if event is NEED and lease is not None and self._clock() < lease.fast_until:
            return Use(lease)
        return self.plan(event, flight)

    def wait(self, flight: int) -> Awaitable[None]:
        """Wait, without blocking the event loop, until *flight* has settled.

        A plain function returning what to await: in a storm every coroutine but
        one waits here, and on the renewing loop it awaits the event itself, with
        no frame of ours kept alive per waiter (measured: each parked frame costs
        the garbage collector a walk in every full collection).
        """
        loop = current_loop()
        with self._mutex:
            current = self.machine.flight
            if current is None or current.number != flight:
                return _settled()
            self.waits += 1
            current.waiters += 1
            loops = self._waiters.setdefault(flight, {})
            event = loops.get(loop)
            if event is None:
                event = loops[loop] = anyio.Event()
            owner = self._owners.get(flight)
        if owner is not None and owner[0] is loop:
            return event.wait()  # our own loop runs it: it cannot vanish under us
        return self._wait_across(flight, event, owner)

    async def _wait_across(
        self,
        flight: int,
        event: anyio.Event,
        owner: tuple[object | None, threading.Thread] | None,
    ) -> None:
        """Wait for a renewal run by another loop, which may die before it ends."""
        while not event.is_set():
            with anyio.move_on_after(WAIT_RECHECK):
                await event.wait()
            if not event.is_set() and not _alive(owner):
                self._abandon(flight)

    def _abandon(self, flight: int) -> None:
        with self._mutex:
            current = self.machine.flight
            if current is not None and current.number == flight:
                stuck: Exchange | None = current
                woken: dict[object, anyio.Event] = {}
            else:
                # Ended, or forgotten by a forked child whose owner thread was not
                # copied: nobody will settle it, so its waiters are woken here.
                stuck = None
                woken = self._forget_flight(flight)
        if stuck is not None:
            self.abort(stuck)
        self._wake(woken)

    # -- outcomes ---------------------------------------------------------------------

    def settle(
        self,
        exchange: Exchange,
        answer: TokenAnswer,
        *,
        expires_at: float | None = None,
        write_id: str | None = None,
        adopted: bool = False,
    ) -> Lease:
        """Install *exchange*'s answer (*adopted*: another process's session, from
        the token store)."""
        notes: list[SessionEvent] = []
        with self._mutex:
            now = self._clock()
            before = self.machine.lease
            lease = self.machine.settle(
                exchange,
                answer,
                now,
                expires_at=expires_at,
                write_id=write_id,
            )
            if lease is not before:
                self._installed(
                    notes=notes,
                    now=now,
                    exchange=exchange,
                    before=before,
                    lease=lease,
                    adopted=adopted,
                )
            woken = self._land(exchange, now, notes)
        self._wake(woken)
        if notes:
            self.deliver(notes)
        return lease

    def _installed(
        self,
        *,
        notes: list[SessionEvent],
        now: float,
        exchange: Exchange,
        before: Lease | None,
        lease: Lease,
        adopted: bool,
    ) -> None:
        """Count (and describe) a new session; a switch drops the one *before*."""
        stats = self.stats
        if exchange.switch and before is not None:
            self._dropped(notes, now, before, "account_switch")
        seconds = now - exchange.started
        if adopted:
            stats.adopted += 1
        elif exchange.kind is Renewal.LOGIN:
            stats.logins += 1
        else:
            stats.refreshes += 1
        if not self.listeners:
            return
        stamp = self._stamp(now, lease)
        if exchange.kind is Renewal.LOGIN and not adopted:
            notes.append(LoggedIn(reason=exchange.reason, seconds=seconds, **stamp))
        else:
            notes.append(Refreshed(by_other_process=adopted, seconds=seconds, **stamp))

    # -- a session shared through a token store (see ``_fleet``) ------------------------

    def usable(self) -> bool:
        with self._mutex:
            return self.machine.usable(self._clock())

    def adoptable(self, seen: Seen | None, *, forced: bool) -> bool:
        with self._mutex:
            return self.machine.adoptable(seen, self._clock(), forced=forced)

    def fleet_choice(self, exchange: Exchange, seen: Seen | None) -> FleetChoice:
        with self._mutex:
            return self.machine.fleet_choice(exchange, seen, self._clock())

    def defer(self, exchange: Exchange, seconds: float) -> Lease | None:
        notes: list[SessionEvent] = []
        with self._mutex:
            now = self._clock()
            lease = self.machine.defer(exchange, now, seconds)
            woken = self._land(exchange, now, notes)
        self._wake(woken)
        if notes:
            self.deliver(notes)
        return lease

    def relogin(
        self, exchange: Exchange, refusal: Callable[[], TeletrackerError]
    ) -> None:
        """The refresh was refused: the session is revoked, the flight logs in.
        *refusal* builds the refusal's error (only for listeners)."""
        notes: list[SessionEvent] = []
        # Built before the mutex: whatever building it does, the machine relogins.
        error = refusal() if self.listeners else None
        with self._mutex:
            now = self._clock()
            self.stats.failed_refreshes += 1
            lease = self.machine.lease
            if error is not None:
                self._failed(notes, now, exchange, error, "login")
            if lease is not None:
                self._dropped(notes, now, lease, "revoked")
            self.machine.relogin(exchange)
        if notes:
            self.deliver(notes)

    def fail(self, exchange: Exchange, error: TeletrackerError) -> Lease | None:
        notes: list[SessionEvent] = []
        with self._mutex:
            now = self._clock()
            kind = exchange.kind
            lease = self.machine.fail(exchange, now, error)
            self._count_failure(kind)
            if self.listeners:
                then: Then = "give_up" if lease is None else "retry_later"
                self._failed(notes, now, exchange, error, then, kind)
            woken = self._land(exchange, now, notes)
        self._wake(woken)
        if notes:
            self.deliver(notes)
        return lease

    def _count_failure(self, kind: Renewal) -> None:
        if kind is Renewal.LOGIN:
            self.stats.failed_logins += 1
        else:
            self.stats.failed_refreshes += 1

    def _failed(  # noqa: PLR0917 - all under the mutex, each call site's own
        self,
        notes: list[SessionEvent],
        now: float,
        exchange: Exchange,
        error: TeletrackerError | None,
        then: Then,
        kind: Renewal | None = None,
    ) -> None:
        """Describe a failed renewal (under the mutex, for listeners)."""
        machine = self.machine
        notes.append(
            RenewalFailed(
                kind=(exchange.kind if kind is None else kind).value,
                error_type="NoAnswer" if error is None else type(error).__name__,
                error=error,
                status_code=getattr(error, "status_code", None),
                then=then,
                retry_at=machine.backoff_until if then == "retry_later" else None,
                seconds=now - exchange.started,
                **self._stamp(now, machine.lease),
            )
        )

    def abort(self, exchange: Exchange) -> None:
        """End *exchange* with an unknown outcome, unless it has settled already.

        Its waiters are woken even when the machine no longer flies it: in a child
        forked mid-renewal the machine forgot the flight, but the forking loop's
        waiters stay registered on it and would otherwise wait forever.
        """
        if self.machine.flight is not exchange and exchange.number not in self._waiters:
            return  # settled (only its owner or _abandon end a flight): no lock needed
        notes: list[SessionEvent] = []
        with self._mutex:
            machine = self.machine
            now = self._clock()
            flying = machine.flight is exchange
            machine.abort(exchange, now)
            if flying:
                self._count_failure(exchange.kind)
                if self.listeners:
                    lease = machine.lease
                    valid = lease is not None and now < lease.expires_at
                    then: Then = (
                        "retry_later" if valid and not exchange.switch else "give_up"
                    )
                    self._failed(notes, now, exchange, None, then)
            woken = self._land(exchange, now, notes)
        self._wake(woken)
        if notes:
            self.deliver(notes)

    def suspect(self, generation: int) -> None:
        notes: list[SessionEvent] = []
        with self._mutex:
            machine = self.machine
            lease = machine.lease
            if machine.suspect != generation:
                machine.suspect_generation(generation)
                if lease is not None and machine.suspect == generation:
                    self._dropped(notes, self._clock(), lease, "token_refused")
        if notes:
            self.deliver(notes)

    def _land(
        self, exchange: Exchange, now: float, notes: list[SessionEvent]
    ) -> dict[object, anyio.Event]:
        """The flight's owner and waiters, once the machine has ended it; nothing
        while it goes on (a deferral with no usable token keeps the flight): its
        waiters keep waiting on it, and its owner stays known, so that no waiter
        takes it for abandoned and starts a second flight beside it."""
        if self.machine.flight is exchange:
            return {}
        waiters, exchange.waiters = exchange.waiters, 0
        if waiters:
            self.stats.requests_waited += waiters
            if self.listeners:
                notes.append(
                    RenewalShared(
                        waiters=waiters,
                        seconds=now - exchange.started,
                        **self._stamp(now, self.machine.lease),
                    )
                )
        return self._forget_flight(exchange.number)

    def _forget_flight(self, flight: int) -> dict[object, anyio.Event]:
        """Drop *flight*'s owner; its waiters, to wake (under the mutex)."""
        self._owners.pop(flight, None)
        return self._waiters.pop(flight, {})

    @staticmethod
    def _wake(woken: dict[object, anyio.Event]) -> None:
        if not woken:
            return
        here = current_loop()
        for loop, event in woken.items():
            if loop is here:
                event.set()
            else:
                _call_soon(loop, event.set)  # a loop that ended has no waiters left

    def _after_fork(self) -> None:
        # Another thread may have held the lock at the fork: the child gets a new
        # one. Waiters stay registered: a renewal that the forking thread's loop was
        # running goes on in the child and wakes them when it settles.
        self._mutex = threading.Lock()
        lease = self.machine.lease
        self.machine.forget()
        if lease is not None:  # told by the child's next request, not in the hook
            self._dropped(self._pending, self._clock(), lease, "fork")

    # -- events ------------------------------------------------------------------------

    def _stamp(self, now: float, lease: Lease | None) -> dict[str, Any]:
        """The fields every event has, for *lease*'s session (None: no session)."""
        if lease is None:
            guid, account_id = None, self.machine.account_id
            generation = self.machine.generation
        else:
            guid, account_id = lease.session.guid, lease.account_id
            generation = lease.generation
        return {
            "guid": guid,
            "account_id": account_id,
            "generation": generation,
            "at": now,
            "at_utc": datetime.now(timezone.utc),
        }

    def _dropped(
        self, notes: list[SessionEvent], now: float, lease: Lease, reason: Any
    ) -> None:
        self.stats.sessions_dropped += 1
        if self.listeners:
            notes.append(SessionDropped(reason=reason, **self._stamp(now, lease)))

    def retried(self, **fields: Any) -> None:
        """A request is tried again (see :class:`RequestRetried` for *fields*)."""
        notes: list[SessionEvent] = []
        with self._mutex:
            self.stats.retries += 1
            if self.listeners:
                stamp = self._stamp(self._clock(), self.machine.lease)
                notes.append(RequestRetried(**fields, **stamp))
        if notes:
            self.deliver(notes)

    def store_operation(
        self, store: object, op: str, outcome: Any, seconds: float
    ) -> None:
        """A token store operation ended (called only while someone listens)."""
        with self._mutex:
            stamp = self._stamp(self._clock(), self.machine.lease)
        event = StoreOperation(
            store=type(store).__name__, op=op, outcome=outcome, seconds=seconds, **stamp
        )
        self.deliver([event])

    def add_listener(self, listener: Listener) -> None:
        with self._mutex:
            self.listeners = (*self.listeners, *check_listeners(listener))

    def remove_listener(self, listener: Listener) -> None:
        with self._mutex:
            listeners = list(self.listeners)
            index = listeners.index(listener)  # ValueError when it is not there
            self._noisy.discard(id(listeners.pop(index)))
            self.listeners = tuple(listeners)

    def deliver(self, events: Iterable[SessionEvent]) -> None:
        """Call every listener with each event, outside the lock; a listener that
        raises is logged (once) and the rest go on."""
        listeners = self.listeners
        for event in events:
            for listener in listeners:
                self._tell(listener, event)

    def _tell(self, listener: Listener, event: SessionEvent) -> None:
        try:
            listener(event)
        except Exception as exc:
            key = id(listener)
            if key in self._noisy:
                return
            self._noisy.add(key)
            logger.error(  # noqa: TRY400 - exc_info given: the listener's traceback
                "the event listener %s raised on %s; its later errors are not logged",
                _name(listener),
                type(event).__name__,
                exc_info=exc,
            )


def _forget_in_child() -> None:
    for core in list(_CORES):
        core._after_fork()  # noqa: SLF001 - the module's own hook


os.register_at_fork(after_in_child=_forget_in_child)
