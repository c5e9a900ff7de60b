"""What the file and Redis stores share: running blocking calls in a worker thread
without leaking what they held."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import anyio
import attrs

from teletracker_async.stores._base import TokenStoreError

T = TypeVar("T")


@attrs.frozen
class Failed:
    """What a worker-thread call returns instead of raising: a message that names
    the store and the failure, never a secret, and no traceback holding one."""

    message: str


async def in_thread(function: Callable[[], T | Failed]) -> T:
    """Run *function* in a worker thread (trio and asyncio alike); a :class:`Failed`
    becomes a :class:`TokenStoreError` raised here, with no chained exception."""
    outcome = await anyio.to_thread.run_sync(function)
    if isinstance(outcome, Failed):
        raise TokenStoreError(outcome.message)
    return outcome
