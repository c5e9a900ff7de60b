"""``FileTokenStore``: one session shared by many processes on one host.

A directory (mode 0700, owned by the user) holds, per key:

- ``<key>.json``: the record. Every write goes to a fresh 0600 temp file in the same
  directory, is fsynced, renamed over the record (``os.replace``: atomic) and the
  directory is fsynced, so a reader sees the old record or the new one, never a mix.
- ``<key>.owner``: the renewal lease: its fence, holder, and end (on
  ``time.monotonic()``, extended by its holder's heartbeat). A holder that dies or
  freezes stops extending it, and it runs out after its time to live.
- ``<key>.lease``: an ``flock`` held by the process of the lease's holder, when it
  could take it. The kernel frees it when that process dies, even by ``kill -9``:
  a lease whose holder held it, with the lock free, is over at once. The file is
  never unlinked (unlinking a locked file would let a second process lock a new
  file of the same name).
- ``<key>.lock``: a short ``flock`` taken around every read-modify-write
  (``spend``, ``commit``, ``acquire`` and ``release``).
- ``<key>.fence``: the fence counter.

Trust: a record carries the host's boot id, and its expiry is on
``time.monotonic()`` (on Linux, ``CLOCK_MONOTONIC``: system-wide, since boot). A
record written before the last reboot is untrusted: never spent, never adopted.
Processes sharing a directory must share the host's clock (no containers with their
own time namespace).
"""

from __future__ import annotations

import base64
import contextlib
import errno
import json
import math
import os
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs

from teletracker_async._config import (
    FILE_LOCK_MAX_POLL,
    FILE_LOCK_POLL,
    FILE_LOCK_TIMEOUT,
    MAX_RECORD_BYTES,
)
from teletracker_async.stores._base import (
    CheckedStore,
    Opaque,
    StoredRecord,
    TokenCodec,
    TokenStoreError,
    check_codec,
)
from teletracker_async.stores._util import (
    Failed,
    T,
    in_thread,
)

if sys.platform != "win32":  # pragma: no branch - the tests run on POSIX
    import fcntl

__all__ = [
    "BOOT_ID_PATH",
    "FILE_LOCK_POLL",
    "FILE_LOCK_TIMEOUT",
    "FileTokenStore",
]

#: Where Linux keeps the id of the current boot.
BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"

_RECORD_VERSION = 1
# O_NONBLOCK: opening a FIFO planted in the directory returns at once (and the
# regular-file check refuses it) instead of blocking an uncancellable thread.
_OPEN_FLAGS = (
    getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_NONBLOCK", 0)
)
_READ_FLAGS = os.O_RDONLY | _OPEN_FLAGS
_LOCK_FLAGS = os.O_RDWR | os.O_CREAT | _OPEN_FLAGS
_TEMP_FLAGS = (
    os.O_WRONLY
    | os.O_CREAT
    | os.O_EXCL
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
)


def boot_id(
    path: str = BOOT_ID_PATH, sysctl: Callable[[], str | None] | None = None
) -> str | None:
    """This boot's identity: Linux's boot id, else the BSD/macOS boot time, else None."""
    try:
        text = Path(path).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        text = ""
    if text:
        return text
    stamp = (sysctl or _sysctl_boottime)()
    return f"boottime:{stamp}" if stamp else None


def _sysctl_boottime() -> str | None:
    try:
        done = subprocess.run(
            ["sysctl", "-n", "kern.boottime"],  # noqa: S607 - a system tool, on PATH
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


@attrs.frozen
class _Record:
    write_id: str
    payload: bytes
    spent: bool
    fence: int
    boot_id: str
    expires: float  # time.monotonic() of boot *boot_id*

    def encode(self) -> bytes:
        return json.dumps(
            {
                "v": _RECORD_VERSION,
                "write_id": self.write_id,
                "payload": base64.b64encode(self.payload).decode("ascii"),
                "spent": self.spent,
                "fence": self.fence,
                "boot_id": self.boot_id,
                "expires": self.expires,
            },
            separators=(",", ":"),
        ).encode()


def _decode(raw: bytes) -> _Record | None:
    """The record in *raw*, or None when it is not one (never raises: the caller
    raises without *raw* in any frame or chained exception)."""
    try:
        data = json.loads(raw)
        if not isinstance(data, dict) or data.get("v") != _RECORD_VERSION:
            return None
        fields: dict[str, Any] = data
        write_id, payload = fields["write_id"], fields["payload"]
        spent, fence = fields["spent"], fields["fence"]
        boot, expires = fields["boot_id"], fields["expires"]
        if not (
            isinstance(write_id, str)
            and write_id
            and isinstance(payload, str)
            and isinstance(spent, bool)
            and isinstance(fence, int)
            and not isinstance(fence, bool)
            and isinstance(boot, str)
            and isinstance(expires, (int, float))
            and not isinstance(expires, bool)
            and math.isfinite(expires)
        ):
            return None
        return _Record(
            write_id,
            base64.b64decode(payload, validate=True),
            spent,
            fence,
            boot,
            float(expires),
        )
    except Exception:  # noqa: BLE001 - any way of being unreadable is the same answer
        return None


@attrs.define
class _Lease:
    holder: str
    fd: int
    fence: int


@attrs.frozen
class _Owner:
    """The ``<key>.owner`` file: who holds the renewal lease, until when."""

    fence: int
    holder: str
    until: float  # time.monotonic() of boot *boot_id*
    locked: bool  # its process holds the ``<key>.lease`` flock
    boot_id: str

    def encode(self) -> bytes:
        return json.dumps(attrs.asdict(self), separators=(",", ":")).encode()


def _decode_owner(raw: bytes) -> _Owner | None:
    try:
        data = json.loads(raw)
        fields: dict[str, Any] = data if isinstance(data, dict) else {}
        fence, holder = fields["fence"], fields["holder"]
        until, locked, boot = fields["until"], fields["locked"], fields["boot_id"]
    except Exception:  # noqa: BLE001 - any way of being unreadable is the same answer
        return None
    if (
        isinstance(fence, int)
        and not isinstance(fence, bool)
        and isinstance(holder, str)
        and isinstance(until, (int, float))
        and not isinstance(until, bool)
        and isinstance(locked, bool)
        and isinstance(boot, str)
    ):
        return _Owner(fence, holder, float(until), locked, boot)
    return None


# The lease flocks held by this process, by (directory device, inode, key), with
# the lease they were taken for: whichever FileTokenStore instance on the same
# directory a holder goes through, a flock is taken once per process.
_LEASES: dict[tuple[int, int, str], _Lease] = {}
_LEASES_LOCK = threading.Lock()
# Threads of this process take a key's mutation lock one at a time (flock alone
# would make them spin against each other).
_MUTEXES: dict[tuple[int, int, str], threading.Lock] = {}
_MUTEXES_LOCK = threading.Lock()


def _forget_leases_in_child() -> None:
    # A forked child shares its parent's flocks: closing its copies leaves the
    # parent's lease held (never LOCK_UN here: that would drop the parent's lock).
    global _LEASES_LOCK, _MUTEXES_LOCK  # noqa: PLW0603 - the parent's may be held
    for lease in _LEASES.values():
        with contextlib.suppress(OSError):
            os.close(lease.fd)
    _LEASES.clear()
    _MUTEXES.clear()
    _LEASES_LOCK = threading.Lock()
    _MUTEXES_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):  # pragma: no branch - POSIX
    os.register_at_fork(after_in_child=_forget_leases_in_child)


class FileTokenStore(CheckedStore):
    """A token store in a directory, for many processes on one host.

    Args:
        path: The directory. Created with mode 0700 when missing; an existing one
            must be a real directory (not a symbolic link) owned by the current user
            and closed to group and others.
        codec: Encrypts every record's payload (the session) before it is
            written and decrypts it when read: a :class:`TokenCodec`, such as
            ``cryptography.fernet.Fernet(key)``, or ``MultiFernet([new, old])``
            to rotate keys. A record that does not decrypt (another key, altered)
            is refused as unreadable: never used.

    Raises:
        TokenStoreError: The directory is unsafe (what is wrong is in the message),
            cannot be created, or this host's boot cannot be identified; or the
            platform has no ``flock`` (Windows).

    The lease lasts ``acquire``'s *ttl*, extended by each ``acquire`` of its holder
    (the heartbeat), and ends at once when its holder's process dies (``kill -9``
    included: the kernel frees the flock that marks it alive). A frozen holder
    (SIGSTOP) loses it when the *ttl* runs out; commits are fenced, so its late
    commit is refused. A record larger than ``MAX_RECORD_BYTES`` is refused like
    an unreadable one. An unreadable record file is an error
    (:class:`TokenStoreError` naming the file), never silently replaced: our own
    writes are atomic, so such a file was put there by something else. Delete it to
    let the fleet start over.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, codec: TokenCodec | None = None
    ) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or a path, not {type(path).__name__}")
        self._codec = check_codec(codec)
        self._path = Path(os.fsdecode(path)).absolute()
        if sys.platform == "win32":  # pragma: no cover - the tests run on POSIX
            raise TokenStoreError("FileTokenStore needs flock (POSIX); use Redis")
        identity = boot_id()
        if identity is None:  # pragma: no cover - Linux, BSD and macOS all have one
            raise TokenStoreError(
                "FileTokenStore cannot tell this host's boot apart from the last one "
                "(no /proc boot id, no kern.boottime): use RedisTokenStore"
            )
        self._boot_id = identity
        self._dir_fd = self._open_directory()
        info = os.fstat(self._dir_fd)
        self._dev, self._ino = info.st_dev, info.st_ino
        self._closed = False

    def __repr__(self) -> str:
        return f"FileTokenStore({str(self._path)!r})"

    @property
    def path(self) -> Path:
        """The directory."""
        return self._path

    def _open_directory(self) -> int:
        path = self._path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                path.mkdir(0o700)
            except FileExistsError:
                created = False
            else:
                created = True
        except OSError as exc:
            raise TokenStoreError(
                f"cannot create the token store directory {path}: {exc.strerror}"
            ) from None
        if created:
            path.chmod(0o700)  # whatever the umask took away or left
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(path, flags)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                kind = "a symbolic link" if path.is_symlink() else "not a directory"
                raise TokenStoreError(
                    f"the token store path {path} is {kind}: refused"
                ) from None
            raise TokenStoreError(
                f"cannot open the token store directory {path}: {exc.strerror}"
            ) from None
        info = os.fstat(fd)
        problem = _ownership_problem(info)
        if problem:
            os.close(fd)
            raise TokenStoreError(
                f"the token store directory {path} {problem}: refused (it must be "
                "yours and mode 0700)"
            )
        return fd

    # -- the protocol ------------------------------------------------------------------

    async def _load(self, key: str) -> StoredRecord | None:
        return await in_thread(lambda: self._guard(self._load_locked, key))

    async def _acquire(self, key: str, holder: str, ttl: float) -> int | None:
        return await in_thread(
            lambda: self._guard(self._acquire_locked, key, holder, ttl)
        )

    async def _release(self, key: str, holder: str) -> bool:
        return await in_thread(lambda: self._guard(self._release_locked, key, holder))

    async def _spend(self, key: str, write_id: str) -> bool:
        return await in_thread(lambda: self._guard(self._spend_locked, key, write_id))

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
        return await in_thread(
            lambda: self._guard(
                self._commit_locked, key, box, write_id, expected, fence, lifetime, age
            )
        )

    async def aclose(self) -> None:
        """Close the directory handle; leases still held stay held until released."""
        if not self._closed:
            self._closed = True
            os.close(self._dir_fd)

    # -- in a worker thread ------------------------------------------------------------

    def _guard(self, function: Callable[..., T], *args: Any) -> T | Failed:
        if self._closed:
            return Failed(f"{self!r} is closed")
        try:
            return function(*args)
        except TokenStoreError as exc:
            return Failed(str(exc))
        except OSError as exc:
            where = self._path / exc.filename if exc.filename else self._path
            reason = exc.strerror or type(exc).__name__
            return Failed(f"file token store: {where}: {reason}")

    def _load_locked(self, key: str) -> StoredRecord | None:
        record = self._read_record(key)
        if record is None:
            return None
        trusted = record.boot_id == self._boot_id
        return StoredRecord(
            write_id=record.write_id,
            payload=record.payload,
            spent=record.spent,
            trusted=trusted,
            fence=record.fence,
            # Another boot's monotonic clock means nothing here: call it expired.
            remaining=record.expires - time.monotonic() if trusted else 0.0,
        )

    def _acquire_locked(self, key: str, holder: str, ttl: float) -> int | None:
        ident = (self._dev, self._ino, key)
        with _LEASES_LOCK, self._mutation(key):
            now = time.monotonic()
            fence = self._read_fence(key)
            owner = self._read_owner(key)
            if owner is not None and owner.fence == fence:
                live = owner.until > now and owner.boot_id == self._boot_id
                if live and owner.holder == holder:  # its heartbeat: extend
                    extended = attrs.evolve(owner, until=now + ttl)
                    self._write(f"{key}.owner", extended.encode())
                    return fence
                if live and not (owner.locked and self._holder_died(ident, owner)):
                    return None
            # Free, run out, or its holder's process died: a new lease, a new fence.
            fence += 1
            self._write(f"{key}.fence", str(fence).encode())
            locked = self._lock_lease(ident, key, holder, fence)
            new = _Owner(fence, holder, now + ttl, locked, self._boot_id)
            self._write(f"{key}.owner", new.encode())
            return fence

    def _holder_died(self, ident: tuple[int, int, str], owner: _Owner) -> bool:
        """Whether the process of *owner*, which held the flock, has ended: the
        flock is free (taken here, then kept for the next lease)."""
        mine = _LEASES.get(ident)
        if mine is not None:
            # This process holds the flock: the holder is here, and alive (a flight
            # whose loop died stops beating: its lease runs out).
            return mine.fence != owner.fence
        fd = self._flock_lease(ident[2])
        if fd is None:
            return False
        _LEASES[ident] = _Lease(owner.holder, fd, owner.fence)
        return True

    def _lock_lease(
        self, ident: tuple[int, int, str], key: str, holder: str, fence: int
    ) -> bool:
        """Mark the new lease's process alive with the flock, when it can be taken
        (a frozen process that lost its lease may still hold it)."""
        mine = _LEASES.get(ident)
        if mine is None:
            fd = self._flock_lease(key)
            if fd is None:
                return False
            mine = _LEASES[ident] = _Lease(holder, fd, fence)
        mine.holder, mine.fence = holder, fence
        return True

    def _flock_lease(self, key: str) -> int | None:
        """An open descriptor of ``<key>.lease`` holding its flock, or None when
        another descriptor holds it."""
        fd = self._open(f"{key}.lease", _LOCK_FLAGS)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _release_locked(self, key: str, holder: str) -> bool:
        ident = (self._dev, self._ino, key)
        with _LEASES_LOCK, self._mutation(key):
            owner = self._read_owner(key)
            mine = _LEASES.get(ident)
            if mine is not None and mine.holder == holder:
                del _LEASES[ident]
                os.close(mine.fd)  # the only handle on it: the flock goes with it
            if (
                owner is None
                or owner.holder != holder
                or owner.fence != self._read_fence(key)
            ):
                return False
            os.unlink(f"{key}.owner", dir_fd=self._dir_fd)
            return True

    def _read_owner(self, key: str) -> _Owner | None:
        raw = self._read(f"{key}.owner")
        if raw is None:
            return None
        owner = _decode_owner(raw)
        if owner is None:
            raise TokenStoreError(
                f"file token store: {self._path / (key + '.owner')} is not a lease "
                "file: delete it to start over"
            )
        return owner

    def _spend_locked(self, key: str, write_id: str) -> bool:
        with self._mutation(key):
            record = self._read_record(key)
            if (
                record is None
                or record.write_id != write_id
                or record.spent
                or record.boot_id != self._boot_id
            ):
                return False
            self._write(f"{key}.json", attrs.evolve(record, spent=True).encode())
            return True

    def _commit_locked(  # noqa: PLR0917 - the protocol's arguments, passed through
        self,
        key: str,
        box: Opaque,
        write_id: str,
        expected: str | None,
        fence: int,
        lifetime: float,
        age: float,
    ) -> bool:
        with self._mutation(key):
            if fence < self._read_fence(key):
                return False
            record = self._read_record(key)
            if (None if record is None else record.write_id) != expected:
                return False
            expires = time.monotonic() - age + lifetime
            new = _Record(
                write_id,
                box.data,
                spent=False,
                fence=fence,
                boot_id=self._boot_id,
                expires=expires,
            )
            self._write(f"{key}.json", new.encode())
            return True

    # -- files -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _mutation(self, key: str) -> Iterator[None]:
        ident = (self._dev, self._ino, key)
        deadline = time.monotonic() + FILE_LOCK_TIMEOUT
        with _MUTEXES_LOCK:
            mutex = _MUTEXES.setdefault(ident, threading.Lock())
        if not mutex.acquire(timeout=FILE_LOCK_TIMEOUT):
            raise TokenStoreError(self._stuck(key))
        try:
            fd = self._open(f"{key}.lock", _LOCK_FLAGS)
            try:
                pause = FILE_LOCK_POLL
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() >= deadline:
                            raise TokenStoreError(self._stuck(key)) from None
                        time.sleep(pause)
                        pause = min(pause * 2, FILE_LOCK_MAX_POLL)
                yield  # the lock goes with the file's last close
            finally:
                os.close(fd)
        finally:
            mutex.release()

    def _stuck(self, key: str) -> str:
        return (
            f"file token store: {self._path / (key + '.lock')} stayed locked for "
            f"{FILE_LOCK_TIMEOUT:g} s (a stuck or frozen process holds it)"
        )

    def _open(self, name: str, flags: int) -> int:
        try:
            fd = os.open(name, flags, 0o600, dir_fd=self._dir_fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise TokenStoreError(
                    f"file token store: {self._path / name} is a symbolic link: refused"
                ) from None
            raise
        try:
            info = os.fstat(fd)
            problem = (
                "is not a regular file"
                if not stat.S_ISREG(info.st_mode)
                else _ownership_problem(info)
            )
        except BaseException:
            os.close(fd)
            raise
        if problem:
            os.close(fd)
            raise TokenStoreError(
                f"file token store: {self._path / name} {problem}: refused (it must "
                "be yours and mode 0600)"
            )
        return fd

    def _read(self, name: str) -> bytes | None:
        try:
            fd = self._open(name, _READ_FLAGS)
        except FileNotFoundError:
            return None
        try:
            chunks = []
            size = 0
            while chunk := os.read(fd, 65536):
                size += len(chunk)
                if size > MAX_RECORD_BYTES:
                    raise TokenStoreError(
                        f"file token store: {self._path / name} is larger than "
                        f"{MAX_RECORD_BYTES} bytes (MAX_RECORD_BYTES): not a token "
                        "record, refused; delete it to start over"
                    )
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)

    def _read_record(self, key: str) -> _Record | None:
        raw = self._read(f"{key}.json")
        if raw is None:
            return None
        record = _decode(raw)
        del raw  # it may hold tokens: not in the raising frame's locals
        if record is None:
            raise TokenStoreError(
                f"file token store: {self._path / (key + '.json')} is not a readable "
                "token record (not written by this version?): delete it to start over"
            )
        return record

    def _read_fence(self, key: str) -> int:
        raw = self._read(f"{key}.fence")
        if raw is None:
            return 0
        text = raw.decode("ascii", "replace")
        if not text.isdigit():
            raise TokenStoreError(
                f"file token store: {self._path / (key + '.fence')} is not a fence "
                "counter: delete it to start over"
            )
        return int(text)

    def _write(self, name: str, data: bytes) -> None:
        temp = f".{name}.{uuid.uuid4().hex}.tmp"
        fd = os.open(temp, _TEMP_FLAGS, 0o600, dir_fd=self._dir_fd)
        try:
            try:
                os.fchmod(fd, 0o600)  # whatever the umask left
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, name, src_dir_fd=self._dir_fd, dst_dir_fd=self._dir_fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=self._dir_fd)
            raise
        os.fsync(self._dir_fd)  # the rename itself survives a crash


def _ownership_problem(info: os.stat_result) -> str:
    if info.st_uid != os.geteuid():
        return f"belongs to uid {info.st_uid}, not to this user ({os.geteuid()})"
    if stat.S_IMODE(info.st_mode) & 0o077:
        return f"is open to group or others (mode {stat.S_IMODE(info.st_mode):04o})"
    return ""
