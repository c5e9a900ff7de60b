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
  locks, and logs in itself, instead of sharing its parent's refresh token.
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel

from teletracker_async._config import WAIT_RECHECK
from teletracker_async._session.machine import (
    NEED,
    Event,
    Exchange,
    FleetChoice,
    Lease,
    Seen,
    SessionMachine,
    Start,
    Step,
    Use,
)

if TYPE_CHECKING:
    from teletracker_async._converter import TokenAnswer
    from teletracker_async._errors import TeletrackerError

__all__ = ["SessionCore", "current_loop"]

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


class SessionCore:
    """The session state of one set of credentials, safe across loops and threads.

    Args:
        machine: The renewal policy.
        clock: The auth's monotonic clock.
    """

    def __init__(self, machine: SessionMachine, clock: Callable[[], float]) -> None:
        self.machine = machine
        self._clock = clock
        self._mutex = threading.Lock()
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
        with self._mutex:
            step = self.machine.plan(self._clock(), event, waited)
            if isinstance(step, Start):
                owner = (current_loop(), threading.current_thread())
                self._owners[step.exchange.number] = owner
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
    ) -> Lease:
        with self._mutex:
            lease = self.machine.settle(
                exchange,
                answer,
                self._clock(),
                expires_at=expires_at,
                write_id=write_id,
            )
            woken = self._land(exchange)
        self._wake(woken)
        return lease

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
        with self._mutex:
            lease = self.machine.defer(exchange, self._clock(), seconds)
            woken = self._land(exchange)
        self._wake(woken)
        return lease

    def relogin(self, exchange: Exchange) -> None:
        with self._mutex:
            self.machine.relogin(exchange)

    def fail(self, exchange: Exchange, error: TeletrackerError) -> Lease | None:
        with self._mutex:
            lease = self.machine.fail(exchange, self._clock(), error)
            woken = self._land(exchange)
        self._wake(woken)
        return lease

    def abort(self, exchange: Exchange) -> None:
        """End *exchange* with an unknown outcome, unless it has settled already.

        Its waiters are woken even when the machine no longer flies it: in a child
        forked mid-renewal the machine forgot the flight, but the forking loop's
        waiters stay registered on it and would otherwise wait forever.
        """
        if self.machine.flight is not exchange and exchange.number not in self._waiters:
            return  # settled (only its owner or _abandon end a flight): no lock needed
        with self._mutex:
            self.machine.abort(exchange, self._clock())
            woken = self._land(exchange)
        self._wake(woken)

    def suspect(self, generation: int) -> None:
        with self._mutex:
            self.machine.suspect_generation(generation)

    def _land(self, exchange: Exchange) -> dict[object, anyio.Event]:
        """The flight's owner and waiters, once the machine has ended it; nothing
        while it goes on (a deferral with no usable token keeps the flight): its
        waiters keep waiting on it, and its owner stays known, so that no waiter
        takes it for abandoned and starts a second flight beside it."""
        if self.machine.flight is exchange:
            return {}
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
        self.machine.forget()


def _forget_in_child() -> None:
    for core in list(_CORES):
        core._after_fork()  # noqa: SLF001 - the module's own hook


os.register_at_fork(after_in_child=_forget_in_child)
