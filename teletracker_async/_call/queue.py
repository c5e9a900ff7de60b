"""The FIFO queue in front of the connection pool, and its last-byte hand-over.

Coroutines queue here, not in httpcore's pool: its queue rescans every connection on
each change (70 % of the CPU with 2000 waiters, measured), and a request waiting here
has not been given a token yet, so a long wait cannot make it arrive with an expired
one (or, after ``switch_account``, with the other account's). httpx2 keeps it too,
though its pool has no herd to spare; there the queue hands a connection over before
it goes idle (``Stack.hand_over``), which makes it cost nothing
(``benchmarks/bench_loopback.py``, ours_httpx2_sem).
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator

import anyio
import anyio.lowlevel
import attrs

from teletracker_async._errors import APITimeoutError
from teletracker_async._http import ByteStream, Request, Response, Stack

__all__ = ["Queue"]


@attrs.define(eq=False)
class Queue:
    """At most *connections* requests in the pool; the others wait here, in order."""

    stack: Stack
    connections: int
    #: Whether the pool behind the queue is the stack's own, so that a slot is
    #: handed over before its connection frees (:meth:`hand_over_at_last_byte`).
    handover: bool = False
    slots: anyio.Semaphore = attrs.field(init=False)
    #: Coroutines waiting in the queue now.
    queued: int = 0

    def __attrs_post_init__(self) -> None:
        self.slots = anyio.Semaphore(self.connections, fast_acquire=True)

    def took(self) -> bool:
        """Take a free connection without a yield (the caller checked for
        cancellation); False when every one is busy."""
        try:
            self.slots.acquire_nowait()
        except anyio.WouldBlock:
            return False
        return True

    async def wait(self, request: Request, pool: float | None) -> anyio.Semaphore:
        """Wait for a free connection, at most *pool* seconds; return the queue's
        semaphore, acquired.

        Raises:
            APITimeoutError: No connection freed within *pool* seconds.
        """
        slots = self.slots
        self.queued += 1
        try:
            if pool is None:
                await slots.acquire()
                return slots
            with anyio.move_on_after(pool) as waiting:
                await slots.acquire()
        finally:
            self.queued -= 1
        if waiting.cancelled_caught:
            raise APITimeoutError(
                f"{request.method} {request.url.path}: no free connection to "
                f"{request.url.host} within timeout.pool={pool:g} s (all "
                f"{self.connections} busy); nothing was sent",
                host=request.url.host,
            )
        return slots

    def hand_over_at_last_byte(self, response: Response) -> anyio.Semaphore | None:
        """Let *response*'s body free its queue slot when its last byte is in.

        Returns the slot, still the caller's to release, when the answer has no
        Content-Length to tell its last byte by; None when the body took it over.

        At the last byte the connection is still busy (its answer is not closed), so
        the request at the head of the queue, let in right then, waits in the pool
        and is handed the connection when the answer closes. Released after the
        close instead, the connection sits idle until that request arrives, and
        every pool pass in between probes each idle connection: on httpx2 that
        halved the throughput at 100 connections (``benchmarks/bench_loopback.py``).
        A request still takes its token only when a connection is about to be free.
        """
        length = response.headers.get("content-length")
        if length is None or not length.isdigit() or int(length) == 0:
            return self.slots
        response.stream = _handing_over(self.stack.module.AsyncByteStream)(
            response.stream, int(length), self
        )
        return None


@functools.cache
def _handing_over(base: type) -> type:
    """The body stream of :meth:`Queue.hand_over_at_last_byte`, on *base*: the
    stack's ``AsyncByteStream``."""

    class HandingOver(base):  # type: ignore[misc]
        def __init__(self, stream: ByteStream, length: int, queue: Queue) -> None:
            self.stream = stream
            self.remaining = length
            self.slots: anyio.Semaphore | None = queue.slots
            self.queue = queue

        def free(self) -> None:
            slots, self.slots = self.slots, None
            if slots is not None:
                slots.release()

        async def __aiter__(self) -> AsyncIterator[bytes]:
            try:
                async for chunk in self.stream:
                    self.remaining -= len(chunk)
                    if self.remaining <= 0 and self.slots is not None:
                        self.free()
                        waiting = self.queue.queued
                        if waiting:
                            # The next request goes into the pool now, while
                            # this connection is busy until the answer closes.
                            await anyio.lowlevel.checkpoint()
                            if self.queue.queued >= waiting:
                                # It has not run yet: trio may run this task
                                # first in their batch.
                                await anyio.lowlevel.checkpoint()
                    yield chunk
            finally:
                self.free()

        async def aclose(self) -> None:
            self.free()
            await self.stream.aclose()

    return HandingOver
