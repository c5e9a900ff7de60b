"""Helpers the file and Redis stores share: argument checks, an opaque payload box,
and running blocking calls in a worker thread without leaking what they held."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

import anyio
import attrs

from teletracker_async.stores._base import TokenStoreError

T = TypeVar("T")

_KEY = re.compile(r"[A-Za-z0-9_-]{1,128}")


def check_key(key: str) -> None:
    """A key is :func:`store_key`'s kind of name: it becomes a file or key name."""
    if not isinstance(key, str):
        raise TypeError(f"key must be a str, not {type(key).__name__}")
    if _KEY.fullmatch(key) is None:
        raise ValueError(
            "key must be 1-128 letters, digits, '-' or '_' (use store_key())"
        )


def check_name(what: str, value: str) -> None:
    """*value* (a holder or a write id) is a non-empty str."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    if not value:
        raise ValueError(f"{what} must not be empty")


def check_expected(expected: str | None) -> None:
    if expected is not None:
        check_name("expected", expected)


def check_fence(fence: int) -> None:
    if isinstance(fence, bool) or not isinstance(fence, int):
        raise TypeError(f"fence must be an int, not {type(fence).__name__}")


def check_payload(payload: bytes) -> None:
    if not isinstance(payload, bytes):
        raise TypeError(f"payload must be bytes, not {type(payload).__name__}")


@attrs.frozen(repr=False)
class Opaque:
    """The payload (tokens inside) under a name whose ``repr`` shows its size only.

    A store method swaps its ``payload`` argument for this box before anything can
    raise, so an error reporter that captures frame locals finds no token.
    """

    data: bytes

    def __repr__(self) -> str:
        return f"<payload: {len(self.data)} bytes>"


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
