"""Time and timing for tests: a clock that moves when told, and gates that hold requests."""

from __future__ import annotations

import anyio

__all__ = ["FakeClock", "FakeGate"]


class FakeClock:
    """A clock that moves only when told to: ``clock()`` reads it, ``advance`` moves it.

    Share one between ``TeletrackerAuth(clock=...)`` and ``FakeTeletracker(clock=...)``
    to step through token lifetimes without waiting.
    """

    def __init__(self, start: float = 1_000.0) -> None:
        self.now: float = float(start)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by *seconds* (never backwards)."""
        if seconds < 0:
            raise ValueError("a monotonic clock does not go backwards")
        self.now += seconds

    def __repr__(self) -> str:
        return f"FakeClock(now={self.now!r})"


class FakeGate:
    """Holds requests at a point of their handling until :meth:`release`.

    ``await gate.arrived.wait()`` returns once the expected number of requests got
    there; cancel the client then, or release them. ``after=True`` gates hold the
    answer after the server has done its work (a refresh has rotated): the client
    cannot know what happened.
    """

    def __init__(self, *, after: bool, expected: int = 1) -> None:
        self.after = after
        self.expected = expected
        self.waiting: int = 0
        self.arrived: anyio.Event = anyio.Event()
        self._released = anyio.Event()

    def release(self) -> None:
        """Let the held requests go on (and any later ones through this gate)."""
        self._released.set()

    async def _hold(self) -> None:
        self.waiting += 1
        if self.waiting >= self.expected:
            self.arrived.set()
        try:
            await self._released.wait()
        finally:
            self.waiting -= 1
