"""What the file and Redis stores share: running blocking calls in a worker thread
without leaking what they held."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.lowlevel
import attrs

from teletracker_async._config import STORE_THREADS
from teletracker_async.stores._base import TokenStoreError

T = TypeVar("T")


@attrs.frozen
class Failed:
    """What a worker-thread call returns instead of raising: a message that names
    the store and the failure, never a secret, and no traceback holding one."""

    message: str


_LIMITER: anyio.lowlevel.RunVar[anyio.CapacityLimiter] = anyio.lowlevel.RunVar(
    "teletracker_async store threads"
)


def _limiter() -> anyio.CapacityLimiter:
    """This event loop's limiter of store threads (:data:`STORE_THREADS`)."""
    try:
        return _LIMITER.get()
    except LookupError:
        limiter = anyio.CapacityLimiter(STORE_THREADS)
        _LIMITER.set(limiter)
        return limiter


async def in_thread(function: Callable[[], T | Failed]) -> T:
    """Run *function* in a worker thread (trio and asyncio alike); a :class:`Failed`
    becomes a :class:`TokenStoreError` raised here, with no chained exception.

    The threads are the stores' own (:data:`STORE_THREADS`), not anyio's default
    pool: an application that fills that one must not stall a lease's heartbeat.
    """
    outcome = await anyio.to_thread.run_sync(function, limiter=_limiter())
    if isinstance(outcome, Failed):
        raise TokenStoreError(outcome.message)
    return outcome
