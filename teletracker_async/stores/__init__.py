"""Token stores: one Teletracker session shared by many processes and hosts.

Pass one to ``TeletrackerAuth(..., store=...)`` (or ``TeletrackerClient``):

- :class:`MemoryTokenStore`: several auth objects of one process;
- :class:`FileTokenStore`: many processes on one host (a directory, ``flock``);
- :class:`RedisTokenStore`: many hosts (Redis >= 6.2 or Valkey; the ``redis`` extra).

Each takes a ``codec`` (:class:`TokenCodec`: a ``cryptography`` ``Fernet`` or
``MultiFernet``, the ``crypto`` extra) that encrypts its records at rest.

Without a store (the default) a session is shared by the coroutines, loops and
threads of one process, with no I/O beyond the login and refresh themselves.
"""

import typing

from teletracker_async.stores._base import (
    MemoryTokenStore,
    StoredRecord,
    StoreStats,
    TokenCodec,
    TokenCodecError,
    TokenStore,
    TokenStoreError,
    new_write_id,
    store_key,
)

if typing.TYPE_CHECKING:
    from teletracker_async.stores._file import FileTokenStore
    from teletracker_async.stores._redis import RedisTokenStore

__all__ = [
    "FileTokenStore",
    "MemoryTokenStore",
    "RedisTokenStore",
    "StoreStats",
    "StoredRecord",
    "TokenCodec",
    "TokenCodecError",
    "TokenStore",
    "TokenStoreError",
    "new_write_id",
    "store_key",
]


def __getattr__(name: str) -> object:
    # The file and Redis stores are imported when a user names one, not by every
    # ``import teletracker_async`` (the session imports this package's base).
    if name == "FileTokenStore":
        from teletracker_async.stores._file import FileTokenStore  # noqa: PLC0415

        return FileTokenStore
    if name == "RedisTokenStore":
        from teletracker_async.stores._redis import RedisTokenStore  # noqa: PLC0415

        return RedisTokenStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
