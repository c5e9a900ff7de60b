"""The ``TokenStore`` protocol, its record, and the in-process reference store.

A store is a dumb, atomic holder of one record per key. It does not know what a
session is: the auth hands it an opaque ``payload`` (the session, tokens included)
and the few fields its atomic operations need. Every operation is one atomic step
on the store's side (a Lua script for Redis, a short ``flock``-guarded
read-modify-write for the file store, a ``threading.Lock`` here), so the safety of
the fleet protocol never rests on time:

- :meth:`TokenStore.spend` flips ``spent`` from false to true on the record with
  that exact ``write_id``, written by the store instance running now, at most once
  ever. Only its winner may send the record's refresh token.
- :meth:`TokenStore.commit` is fenced: it writes only if no lease was handed out
  after the writer's, and the record is still the one the writer read.
- :meth:`TokenStore.acquire` / :meth:`TokenStore.release` are a lease that only
  prevents stampedes (a paused holder can outlive it: the fence catches that).

Expiry is stamped with the store's own clock (``lifetime`` minus the ``age`` of
the answer), and :meth:`TokenStore.load` returns the time *remaining*: host clocks
are never compared.

A store may hold its records encrypted: give it a :class:`TokenCodec` (a
``cryptography`` ``Fernet`` or ``MultiFernet``). :class:`CheckedStore` encrypts the
payload before ``_commit`` and decrypts it after ``_load``; a payload that does not
decrypt is a :class:`TokenStoreError`, like an unreadable record.
"""

from __future__ import annotations

import abc
import hashlib
import json
import math
import re
import threading
import time
import uuid
from collections.abc import Callable
from typing import Literal, Protocol, runtime_checkable

import attrs

from teletracker_async._errors import TokenCodecError, TokenStoreError

__all__ = [
    "MemoryTokenStore",
    "StoreErrors",
    "StoreStats",
    "StoredRecord",
    "TokenCodec",
    "TokenCodecError",
    "TokenStore",
    "TokenStoreError",
    "new_write_id",
    "store_key",
]

#: What an unreachable store costs: a private login ("login") or the error ("raise").
StoreErrors = Literal["login", "raise"]


def store_key(base_url: str, username: str, account_id: int | None) -> str:
    """The record key of one (API, user, account): hashed, so a key names nobody."""
    material = json.dumps([base_url, username, account_id], separators=(",", ":"))
    return hashlib.sha256(material.encode()).hexdigest()[:32]


def new_write_id() -> str:
    """A fresh id for one write: never reused, so compare-and-swap on it is exact."""
    return uuid.uuid4().hex


@attrs.frozen(repr=False)
class StoredRecord:
    """One record as :meth:`TokenStore.load` returns it.

    Attributes:
        write_id: The id of the write that produced it (unique per write).
        payload: The session, tokens included, as the auth encoded it: opaque to
            the store, never shown in ``repr``.
        spent: Its refresh token was handed to a refresher (or must be treated so).
        trusted: Written by the store instance running now. A record restored from
            an old snapshot or a failed-over replica is not: it may hold a refresh
            token that was used since, so it is never spent nor adopted.
        fence: The lease fence of its writer.
        remaining: Seconds the token had left when the store read it, by the
            store's clock (may be negative).
    """

    write_id: str
    payload: bytes
    spent: bool
    trusted: bool
    fence: int
    remaining: float

    def __repr__(self) -> str:
        return (
            f"StoredRecord(write_id={self.write_id!r}, spent={self.spent}, "
            f"trusted={self.trusted}, fence={self.fence}, "
            f"remaining={self.remaining:.3f}, payload=<{len(self.payload)} bytes>)"
        )


@runtime_checkable
class TokenStore(Protocol):
    """Where processes share one session: see the module docstring for the rules.

    Every method may raise :class:`TokenStoreError` when the store cannot be reached.
    ``key`` is :func:`store_key`'s; ``ttl``, ``lifetime`` and ``age`` are seconds.
    """

    async def load(self, key: str) -> StoredRecord | None:
        """The record under *key*, or None."""
        ...

    async def acquire(self, key: str, holder: str, ttl: float) -> int | None:
        """Take (or, for its holder, extend) the renewal lease for *ttl* seconds.

        Returns the lease's fence: a number larger than any handed out before for
        this key, the same one again when *holder* already holds the lease. None
        when another holder has it.
        """
        ...

    async def release(self, key: str, holder: str) -> bool:
        """Drop the lease if *holder* holds it (compare-and-delete)."""
        ...

    async def spend(self, key: str, write_id: str) -> bool:
        """Flip ``spent`` to true on the trusted record *write_id*; True only for the
        one call that did it."""
        ...

    async def commit(
        self,
        key: str,
        payload: bytes,
        *,
        write_id: str,
        expected: str | None,
        fence: int,
        lifetime: float,
        age: float,
    ) -> bool:
        """Write a new, unspent record, fenced.

        Written only when *fence* is still the newest fence handed out for *key*
        and the record is still *expected* (None: no record). Returns whether it
        was written; a refused writer loads and adopts the winner's record.

        Args:
            write_id: The new record's id (:func:`new_write_id`).
            lifetime: The token's lifetime, in seconds.
            age: How long ago the answer that brought the token arrived.
        """
        ...

    async def aclose(self) -> None:
        """Release the store's connections (a no-op for stores without any)."""
        ...


@runtime_checkable
class TokenCodec(Protocol):
    """What encrypts a store's records at rest: ``cryptography``'s ``Fernet`` and
    ``MultiFernet`` are codecs as they are (the ``crypto`` extra).

    ``decrypt`` must authenticate what it reads and raise when it was not made by
    ``encrypt`` with one of its keys (a wrong key, an altered record): the store
    then refuses the record as unreadable, and it is never used.
    """

    def encrypt(self, data: bytes, /) -> bytes:
        """*data* sealed: unreadable and unalterable without the key."""
        ...

    def decrypt(self, token: bytes, /) -> bytes:
        """What :meth:`encrypt` sealed; raises when *token* is not such a seal."""
        ...


def check_codec(codec: TokenCodec | None) -> TokenCodec | None:
    """*codec* when it has ``encrypt`` and ``decrypt`` methods (or is None)."""
    if codec is not None and not (
        callable(getattr(codec, "encrypt", None))
        and callable(getattr(codec, "decrypt", None))
    ):
        raise TypeError(
            "codec must have encrypt(bytes) -> bytes and decrypt(bytes) -> bytes "
            f"methods (a cryptography Fernet, say), not {type(codec).__name__}"
        )
    return codec


class CheckedStore(abc.ABC):
    """The base of the SDK's stores: each argument is checked here, once, and the
    payload boxed before anything can raise; a store implements the record
    operations only (the underscored methods), on arguments known to be good.

    With a codec (:class:`TokenCodec`), the payload is encrypted before ``_commit``
    and decrypted after ``_load``: the underscored methods only see it sealed."""

    _codec: TokenCodec | None = None

    async def load(self, key: str) -> StoredRecord | None:
        """The record under *key*, or None (see :class:`TokenStore`).

        Raises:
            TokenStoreError: Also when the store has a codec and the record does
                not decrypt with it (another key, or altered).
        """
        check_key(key)
        record = await self._load(key)
        if record is None or self._codec is None:
            return record
        return attrs.evolve(record, payload=_unseal(self._codec, record, self))

    async def acquire(self, key: str, holder: str, ttl: float) -> int | None:
        """Take or extend the renewal lease (see :class:`TokenStore`)."""
        check_key(key)
        check_name("holder", holder)
        check_ttl(ttl)
        return await self._acquire(key, holder, float(ttl))

    async def release(self, key: str, holder: str) -> bool:
        """Drop the lease if *holder* holds it (see :class:`TokenStore`)."""
        check_key(key)
        check_name("holder", holder)
        return await self._release(key, holder)

    async def spend(self, key: str, write_id: str) -> bool:
        """Mark the record's refresh token spent, once (see :class:`TokenStore`)."""
        check_key(key)
        check_name("write_id", write_id)
        return await self._spend(key, write_id)

    async def commit(
        self,
        key: str,
        payload: bytes,
        *,
        write_id: str,
        expected: str | None,
        fence: int,
        lifetime: float,
        age: float,
    ) -> bool:
        """Write a new record, fenced (see :class:`TokenStore`)."""
        if not isinstance(payload, bytes):
            raise TypeError(f"payload must be bytes, not {type(payload).__name__}")
        box = Opaque(payload)
        del payload  # error reporters show frame locals: keep the box only
        check_key(key)
        check_name("write_id", write_id)
        if expected is not None:
            check_name("expected", expected)
        if isinstance(fence, bool) or not isinstance(fence, int):
            raise TypeError(f"fence must be an int, not {type(fence).__name__}")
        check_times(lifetime, age)
        if self._codec is not None:
            box = _seal(self._codec, box, self)
        return await self._commit(
            key,
            box,
            write_id=write_id,
            expected=expected,
            fence=fence,
            lifetime=float(lifetime),
            age=float(age),
        )

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Release the store's connections (a no-op for stores without any)."""

    @abc.abstractmethod
    async def _load(self, key: str) -> StoredRecord | None: ...

    @abc.abstractmethod
    async def _acquire(self, key: str, holder: str, ttl: float) -> int | None: ...

    @abc.abstractmethod
    async def _release(self, key: str, holder: str) -> bool: ...

    @abc.abstractmethod
    async def _spend(self, key: str, write_id: str) -> bool: ...

    @abc.abstractmethod
    async def _commit(
        self,
        key: str,
        box: Opaque,
        *,
        write_id: str,
        expected: str | None,
        fence: int,
        lifetime: float,
        age: float,
    ) -> bool: ...


@attrs.frozen(repr=False)
class Opaque:
    """The payload (tokens inside) under a name whose ``repr`` shows its size only.

    :meth:`CheckedStore.commit` swaps its ``payload`` argument for this box before
    anything can raise, so an error reporter that captures frame locals finds no
    token.
    """

    data: bytes

    def __repr__(self) -> str:
        return f"<payload: {len(self.data)} bytes>"


def _seal(codec: TokenCodec, box: Opaque, store: object) -> Opaque:
    """*box*'s payload encrypted; a codec that fails is a :class:`TokenCodecError`
    raised after its exception is gone (its frames hold the payload)."""
    try:
        sealed: object = codec.encrypt(box.data)  # a third party's: checked
    except Exception as exc:  # noqa: BLE001 - whatever the codec raised
        failure = type(exc).__name__
    else:
        if isinstance(sealed, bytes):
            return Opaque(sealed)
        failure = f"encrypt returned {type(sealed).__name__}, not bytes"
        del sealed  # whatever it is, not in the raising frame
    raise TokenCodecError(
        f"The codec of {store!r} could not encrypt: {failure}; nothing was written"
    )


def _unseal(codec: TokenCodec, record: StoredRecord, store: object) -> bytes:
    """*record*'s payload decrypted; one that does not decrypt (a wrong key, an
    altered record) is a :class:`TokenCodecError`: the record is unreadable."""
    try:
        opened: object = codec.decrypt(record.payload)  # a third party's: checked
    except Exception as exc:  # noqa: BLE001 - InvalidToken, or whatever else
        failure = type(exc).__name__
    else:
        if isinstance(opened, bytes):
            return opened
        failure = f"decrypt returned {type(opened).__name__}, not bytes"
        del opened  # whatever it is, not in the raising frame
    raise TokenCodecError(
        f"The record {record.write_id!r} of {store!r} does not decrypt with the "
        f"store's codec ({failure}: another key, or altered): not used"
    )


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
    """*value* (a holder, a write id, a prefix) is a non-empty str."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    if not value:
        raise ValueError(f"{what} must not be empty")


@attrs.define
class StoreStats:
    """What one auth did with its token store (``TeletrackerAuth.store_stats``).

    Attributes:
        calls: Store operations (load, acquire, spend, commit, release).
        adopted: Sessions taken from the store that another process published.
        published: Sessions this auth renewed and published.
        refused_commits: Publications refused because a later lease holder won.
        private_renewals: Renewals done without the store (unreachable, or its
            lease stuck): never with the shared refresh token.
        store_errors: Times the store could not be reached.
    """

    calls: int = 0
    adopted: int = 0
    published: int = 0
    refused_commits: int = 0
    private_renewals: int = 0
    store_errors: int = 0


@attrs.define
class _Entry:
    write_id: str
    payload: bytes
    spent: bool
    fence: int
    expires: float  # on the store's clock


class MemoryTokenStore(CheckedStore):
    """A store in this process's memory: the reference implementation.

    It lets several auth objects of one process (several clients, several
    stacks) share one session, and it is what the conformance suite holds the
    other stores to.

    Args:
        clock: The store's clock (monotonic seconds); inject a fake one in tests.
        codec: Encrypts the payloads it holds (:class:`TokenCodec`), as the other
            stores do.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        codec: TokenCodec | None = None,
    ) -> None:
        if not callable(clock):
            raise TypeError("clock must be a callable returning seconds as a float")
        self._codec = check_codec(codec)
        self._clock = clock
        self._mutex = threading.Lock()  # auths in several threads may share it
        self._records: dict[str, _Entry] = {}
        self._leases: dict[str, tuple[str, float]] = {}  # key -> (holder, until)
        self._fences: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"MemoryTokenStore(records={len(self._records)})"

    async def _load(self, key: str) -> StoredRecord | None:
        with self._mutex:
            entry = self._records.get(key)
            if entry is None:
                return None
            return StoredRecord(
                write_id=entry.write_id,
                payload=entry.payload,
                spent=entry.spent,
                trusted=True,
                fence=entry.fence,
                remaining=entry.expires - self._clock(),
            )

    async def _acquire(self, key: str, holder: str, ttl: float) -> int | None:
        with self._mutex:
            now = self._clock()
            current = self._leases.get(key)
            if current is not None and current[1] > now and current[0] != holder:
                return None
            if current is None or current[1] <= now:
                self._fences[key] = self._fences.get(key, 0) + 1
            self._leases[key] = (holder, now + ttl)
            return self._fences[key]

    async def _release(self, key: str, holder: str) -> bool:
        with self._mutex:
            current = self._leases.get(key)
            if current is None or current[0] != holder:
                return False
            del self._leases[key]
            return True

    async def _spend(self, key: str, write_id: str) -> bool:
        with self._mutex:
            entry = self._records.get(key)
            if entry is None or entry.write_id != write_id or entry.spent:
                return False
            entry.spent = True
            return True

    async def _commit(
        self,
        key: str,
        box: Opaque,
        *,
        write_id: str,
        expected: str | None,
        fence: int,
        lifetime: float,
        age: float,
    ) -> bool:
        with self._mutex:
            if fence < self._fences.get(key, 0):
                return False
            entry = self._records.get(key)
            if (None if entry is None else entry.write_id) != expected:
                return False
            self._records[key] = _Entry(
                write_id,
                box.data,
                spent=False,
                fence=fence,
                expires=self._clock() - age + lifetime,
            )
            return True

    async def aclose(self) -> None:
        """Nothing to release."""


def check_ttl(ttl: float) -> None:
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)):
        raise TypeError(f"ttl must be a number of seconds, not {type(ttl).__name__}")
    if not (math.isfinite(ttl) and ttl > 0):
        raise ValueError(f"ttl must be a positive number of seconds, got {ttl!r}")


def check_times(lifetime: float, age: float) -> None:
    for name, value in (("lifetime", lifetime), ("age", age)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name} must be a number, not {type(value).__name__}")
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
