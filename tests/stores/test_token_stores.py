"""Token stores: one conformance suite for the memory, file and Redis stores (the
memory store's semantics are the spec), then what each real store adds: file
permissions, torn reads, killed lock holders, boot ids; Redis restarts, stale
snapshots, a frozen server, hidden passwords, a user's asyncio client."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import traceback
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from teletracker_async._config import MAX_RECORD_BYTES
from teletracker_async.stores import (
    FileTokenStore,
    MemoryTokenStore,
    RedisTokenStore,
    TokenStore,
    TokenStoreError,
    _file,
    new_write_id,
    store_key,
)
from teletracker_async.stores._redis import redact_url
from tests.conftest import RedisServer

pytestmark = pytest.mark.anyio

KEY = store_key("https://api.teletracker.test", "ada", 7)
SECRET = b'{"token": "tok-SECRET-1", "refresh": "ref-SECRET-1"}'
HANG_GUARD = 60  # seconds: a failure mode, not a measurement


@pytest.fixture(params=["memory", "file", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    if request.param == "memory":
        made: Any = MemoryTokenStore()
    elif request.param == "file":
        made = FileTokenStore(tmp_path / "store")
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        made = RedisTokenStore(server.url, prefix=f"t-{uuid.uuid4().hex}")
    try:
        yield made
    finally:
        await made.aclose()


async def commit(
    store: TokenStore,
    fence: int,
    expected: str | None,
    *,
    payload: bytes = SECRET,
    lifetime: float = 100.0,
    age: float = 0.0,
) -> str | None:
    """Commit a new record; its write id when it was written, else None."""
    write_id = new_write_id()
    done = await store.commit(
        KEY,
        payload,
        write_id=write_id,
        expected=expected,
        fence=fence,
        lifetime=lifetime,
        age=age,
    )
    return write_id if done else None


# -- conformance ----------------------------------------------------------------------


async def test_is_a_token_store(store: Any) -> None:
    """Every store satisfies the protocol and starts empty."""
    assert isinstance(store, TokenStore)
    assert await store.load(KEY) is None
    assert await store.spend(KEY, "nope") is False


async def test_commit_then_load_round_trips(store: TokenStore) -> None:
    """A committed record comes back whole: payload, unspent, trusted, its fence."""
    fence = await store.acquire(KEY, "a", 30)
    assert fence is not None
    write_id = await commit(store, fence, None)
    assert write_id is not None
    record = await store.load(KEY)
    assert record is not None
    assert (record.write_id, record.payload, record.spent, record.trusted) == (
        write_id,
        SECRET,
        False,
        True,
    )
    assert record.fence == fence
    assert "SECRET" not in repr(record)


async def test_remaining_comes_from_lifetime_and_age(store: TokenStore) -> None:
    """remaining = lifetime - age - the time since the commit (store clock, ms)."""
    fence = await store.acquire(KEY, "a", 30)
    assert fence is not None
    before = time.monotonic()
    assert await commit(store, fence, None, lifetime=100, age=10) is not None
    record = await store.load(KEY)
    elapsed = time.monotonic() - before
    assert record is not None
    assert 90 - elapsed - 0.002 <= record.remaining <= 90 + 0.002


async def test_spend_succeeds_once_per_write_id(store: TokenStore) -> None:
    """spend flips spent once; a wrong write id or a second call is refused."""
    fence = await store.acquire(KEY, "a", 30)
    assert fence is not None
    write_id = await commit(store, fence, None)
    assert write_id is not None
    assert await store.spend(KEY, "another") is False
    assert await store.spend(KEY, write_id) is True
    assert await store.spend(KEY, write_id) is False
    record = await store.load(KEY)
    assert record is not None
    assert record.spent
    # A new record is unspent again, and only its own id spends it.
    newer = await commit(store, fence, write_id)
    assert newer is not None
    assert await store.spend(KEY, write_id) is False
    assert await store.spend(KEY, newer) is True


@pytest.mark.parametrize(
    "spenders", [100, pytest.param(1000, marks=pytest.mark.slow)], ids=str
)
async def test_spend_has_one_winner_among_hundreds(
    store: TokenStore, spenders: int
) -> None:
    """Hundreds of concurrent spenders of one record (a thousand in the slow tier):
    exactly one wins, three times over."""
    fence = await store.acquire(KEY, "a", 60)
    assert fence is not None
    expected: str | None = None
    for _ in range(3):
        write_id = await commit(store, fence, expected)
        assert write_id is not None
        wins: list[bool] = []

        async def spender(write_id: str = write_id, wins: list[bool] = wins) -> None:
            wins.append(await store.spend(KEY, write_id))

        with anyio.fail_after(HANG_GUARD):
            async with anyio.create_task_group() as group:
                for _ in range(spenders):
                    group.start_soon(spender)
        assert len(wins) == spenders
        assert wins.count(True) == 1
        expected = write_id


async def test_commits_are_fenced(store: TokenStore) -> None:
    """A stale fence, a changed expected record, or expected None over a record:
    each commit is refused and leaves the record as it was."""
    old = await store.acquire(KEY, "a", 30)
    assert old is not None
    assert await store.release(KEY, "a")
    new = await store.acquire(KEY, "b", 30)
    assert new is not None
    assert new > old
    assert await commit(store, old, None) is None  # stale fence
    first = await commit(store, new, None)
    assert first is not None
    assert await commit(store, new, None) is None  # a record is there
    assert await commit(store, new, "not-the-record") is None  # changed expected
    record = await store.load(KEY)
    assert record is not None
    assert record.write_id == first
    second = await commit(store, new, first, payload=b"newer")
    assert second is not None
    assert await commit(store, new, first) is None  # the record moved on
    assert await commit(store, old, second) is None  # still stale
    record = await store.load(KEY)
    assert record is not None
    assert (record.write_id, record.payload) == (second, b"newer")


async def test_acquire_is_idempotent_and_exclusive(store: TokenStore) -> None:
    """The holder gets its fence back; another holder is refused until release,
    which only the holder can do; the next lease has a larger fence."""
    fence = await store.acquire(KEY, "a", 30)
    assert fence is not None
    assert await store.acquire(KEY, "a", 30) == fence
    assert await store.acquire(KEY, "b", 30) is None
    assert await store.release(KEY, "b") is False
    assert await store.acquire(KEY, "a", 30) == fence  # b's release did nothing
    assert await store.release(KEY, "a") is True
    assert await store.release(KEY, "a") is False
    other = await store.acquire(KEY, "b", 30)
    assert other is not None
    assert other > fence
    assert await store.acquire(KEY, "a", 30) is None
    assert await store.release(KEY, "b") is True


@pytest.mark.parametrize(
    "holders", [100, pytest.param(1000, marks=pytest.mark.slow)], ids=str
)
async def test_acquire_among_hundreds_has_one_holder(
    store: TokenStore, holders: int
) -> None:
    """Hundreds of holders (a thousand in the slow tier) race for one free lease:
    exactly one gets it."""
    fences: list[int | None] = []

    async def contender(holder: str) -> None:
        fences.append(await store.acquire(KEY, holder, 30))

    with anyio.fail_after(HANG_GUARD):
        async with anyio.create_task_group() as group:
            for n in range(holders):
                group.start_soon(contender, f"h{n}")
    assert len([f for f in fences if f is not None]) == 1


async def test_an_expired_lease_lets_another_holder_in(store: Any) -> None:
    """Every store's lease ends after its ttl unless its holder extends it (the
    file store's too: its holder may be frozen), and the next holder gets a larger
    fence."""
    fence = await store.acquire(KEY, "a", 0.05)
    assert fence is not None
    with anyio.fail_after(HANG_GUARD):
        while (other := await store.acquire(KEY, "b", 30)) is None:  # noqa: ASYNC110
            await anyio.sleep(0.02)  # polling the store is the point
    assert other > fence
    assert await store.release(KEY, "a") is False  # compare-and-delete: not a's


async def test_a_record_larger_than_the_cap_is_refused_on_reading(store: Any) -> None:
    """A 5 MB record (planted, or a bug) is refused with a TokenStoreError naming
    MAX_RECORD_BYTES, like a corrupt record, rather than loaded into memory."""
    if isinstance(store, MemoryTokenStore):
        pytest.skip("the memory store holds only what this process committed")
    fence = await store.acquire(KEY, "a", 30)
    assert fence is not None
    assert MAX_RECORD_BYTES < 5_000_000
    assert await commit(store, fence, None, payload=b"x" * 5_000_000) is not None
    with pytest.raises(TokenStoreError, match="MAX_RECORD_BYTES"):
        await store.load(KEY)


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda s: s.acquire(KEY, "a", 0), ValueError),
        (lambda s: s.acquire(KEY, "a", float("nan")), ValueError),
        (lambda s: s.acquire(KEY, "a", "1"), TypeError),
        (
            lambda s: s.commit(
                KEY, b"x", write_id="w", expected=None, fence=1, lifetime=-1, age=0
            ),
            ValueError,
        ),
        (
            lambda s: s.commit(
                KEY, b"x", write_id="w", expected=None, fence=1, lifetime=1, age=None
            ),
            TypeError,
        ),
    ],
)
async def test_bad_arguments_are_refused(store: Any, call: Any, error: Any) -> None:
    """A ttl, lifetime or age that is not a sane number raises a typed error."""
    with pytest.raises(error):
        await call(store)


# -- what every store checks, once, in their base ------------------------------------


@pytest.mark.parametrize("kind", ["memory", "file", "redis"])
@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda s: s.load("a/b"), ValueError, "key must be"),
        (lambda s: s.load(5), TypeError, "key must be a str"),
        (lambda s: s.acquire(KEY, "", 1), ValueError, "holder must not be empty"),
        (lambda s: s.release(KEY, 5), TypeError, "holder must be a str"),
        (lambda s: s.spend(KEY, None), TypeError, "write_id must be a str"),
        (
            lambda s: s.commit(
                KEY, "x", write_id="w", expected=None, fence=1, lifetime=1, age=0
            ),
            TypeError,
            "payload must be bytes",
        ),
        (
            lambda s: s.commit(
                KEY, b"x", write_id="w", expected="", fence=1, lifetime=1, age=0
            ),
            ValueError,
            "expected must not be empty",
        ),
        (
            lambda s: s.commit(
                KEY, b"x", write_id="w", expected=None, fence=True, lifetime=1, age=0
            ),
            TypeError,
            "fence must be an int",
        ),
    ],
)
async def test_every_store_checks_its_arguments_once(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    kind: str,
    call: Any,
    error: Any,
    match: str,
) -> None:
    """Every store refuses the same bad arguments with the same message (keys
    become file and key names: only store_key()'s alphabet is accepted)."""
    made: Any
    if kind == "memory":
        made = MemoryTokenStore()
    elif kind == "file":
        made = FileTokenStore(tmp_path / "s")
    else:
        made = RedisTokenStore(request.getfixturevalue("redis_server").url)
    try:
        with pytest.raises(error, match=match):
            await call(made)
    finally:
        await made.aclose()


# -- the file store -------------------------------------------------------------------


def mode(path: Path) -> int:
    return path.lstat().st_mode & 0o777


async def test_file_store_modes(tmp_path: Path) -> None:
    """A 0700 directory (made with its parents) and 0600 files, whatever the umask."""
    old = os.umask(0)
    try:
        store = FileTokenStore(tmp_path / "deep" / "store")
    finally:
        os.umask(old)
    fence = await store.acquire(KEY, "a", 30)
    assert fence is not None
    assert await commit(store, fence, None) is not None
    assert mode(store.path) == 0o700
    names = sorted(p.name for p in store.path.iterdir())
    exts = ("fence", "json", "lease", "lock", "owner")
    assert names == [f"{KEY}.{ext}" for ext in exts]
    for name in names:
        assert mode(store.path / name) == 0o600
    assert str(store.path) in repr(store)
    await store.aclose()
    await store.aclose()  # twice is fine
    with pytest.raises(TokenStoreError, match="closed"):
        await store.load(KEY)


@pytest.mark.parametrize("problem", ["symlink", "file", "loose", "foreign"])
def test_file_store_refuses_an_unsafe_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, problem: str
) -> None:
    """A symlink, a non-directory, a directory open to others or someone else's."""
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    target = tmp_path / "target"
    match = {
        "symlink": "is a symbolic link",
        "file": "is not a directory",
        "loose": r"open to group or others \(mode 0755\)",
        "foreign": "belongs to uid",
    }[problem]
    if problem == "symlink":
        target.symlink_to(real)
    elif problem == "file":
        target.write_text("x")
    elif problem == "loose":
        target.mkdir()
        target.chmod(0o755)
    else:
        target = real
        uid = os.geteuid() + 1
        monkeypatch.setattr(os, "geteuid", lambda: uid)
    with pytest.raises(TokenStoreError, match=match):
        FileTokenStore(target)


def test_file_store_reports_a_directory_it_cannot_create(tmp_path: Path) -> None:
    """A path under a file cannot become a directory: a clear TokenStoreError."""
    (tmp_path / "file").write_text("x")
    with pytest.raises(TokenStoreError, match="cannot create"):
        FileTokenStore(tmp_path / "file" / "store")
    with pytest.raises(TypeError, match="path must be"):
        FileTokenStore(5)  # type: ignore[arg-type]


def captured(error: BaseException) -> str:
    """What an error reporter that captures frame locals sees."""
    report = traceback.TracebackException.from_exception(error, capture_locals=True)
    return "".join(report.format())


def keeps_secrets(error: BaseException) -> bool:
    """No token nor password in the error, its chain or its frames' locals (the
    literals live here, not in the test's frame, which the report shows too)."""
    text = captured(error)
    return all(secret not in text for secret in ("tok-SECRET", "s3cr3t"))


@pytest.mark.parametrize("problem", ["loose", "symlink", "corrupt", "directory"])
async def test_file_store_refuses_an_unsafe_or_unreadable_record(
    tmp_path: Path, problem: str
) -> None:
    """A record open to others, a symlink, garbage or a directory: a TokenStoreError
    naming the file, never its content (which may hold tokens), even in locals."""
    store = FileTokenStore(tmp_path / "s")
    record = store.path / f"{KEY}.json"
    if problem == "loose":
        fence = await store.acquire(KEY, "a", 30)
        assert fence is not None
        assert await commit(store, fence, None) is not None
        record.chmod(0o644)
    elif problem == "symlink":
        (tmp_path / "elsewhere").write_bytes(SECRET)
        record.symlink_to(tmp_path / "elsewhere")
    elif problem == "corrupt":
        record.write_bytes(SECRET[:20])
        record.chmod(0o600)
    else:
        record.mkdir(mode=0o700)
    for call in (lambda: store.load(KEY), lambda: store.spend(KEY, "w")):
        with pytest.raises(TokenStoreError, match=str(record)) as info:
            await call()
        assert keeps_secrets(info.value)
    with pytest.raises(TokenStoreError) as info:
        await store.commit(
            KEY, SECRET, write_id="w", expected=None, fence=10, lifetime=1, age=0
        )
    assert keeps_secrets(info.value)
    await store.aclose()


@pytest.mark.parametrize(
    "content", [b"[]", b'{"v": 2}', b'{"v": 1}', b'{"v": 1, "write_id": 5}']
)
async def test_file_store_refuses_records_it_did_not_write(
    tmp_path: Path, content: bytes
) -> None:
    """Valid JSON that is not a record of this version is refused too."""
    store = FileTokenStore(tmp_path / "s")
    (store.path / f"{KEY}.json").write_bytes(content)
    (store.path / f"{KEY}.json").chmod(0o600)
    with pytest.raises(TokenStoreError, match="not a readable token record"):
        await store.load(KEY)


async def test_file_store_refuses_a_corrupt_fence(tmp_path: Path) -> None:
    """A fence counter that is not a number is an error, not a zero."""
    store = FileTokenStore(tmp_path / "s")
    (store.path / f"{KEY}.fence").write_bytes(b"-1")
    (store.path / f"{KEY}.fence").chmod(0o600)
    with pytest.raises(TokenStoreError, match="not a fence counter"):
        await store.acquire(KEY, "a", 1)
    # The failed acquire left no lease behind.
    (store.path / f"{KEY}.fence").write_bytes(b"41")
    assert await store.acquire(KEY, "b", 1) == 42


async def test_file_store_trusts_only_records_of_this_boot(tmp_path: Path) -> None:
    """A record written before a reboot is untrusted, never spent, and replaceable."""
    before = FileTokenStore(tmp_path / "s")
    before._boot_id = "an-earlier-boot"
    fence = await before.acquire(KEY, "a", 30)
    assert fence is not None
    old = await commit(before, fence, None)
    assert old is not None
    now = FileTokenStore(tmp_path / "s")
    record = await now.load(KEY)
    assert record is not None
    assert (record.trusted, record.spent, record.remaining) == (False, False, 0.0)
    assert await now.spend(KEY, old) is False
    newer = await commit(now, fence, old)
    assert newer is not None
    assert await now.spend(KEY, newer) is True


async def test_file_store_lease_is_per_holder_across_instances(tmp_path: Path) -> None:
    """Two store objects on one directory in one process: same holder, same fence;
    another holder is refused (flock is per open file, not per process)."""
    one = FileTokenStore(tmp_path / "s")
    two = FileTokenStore(tmp_path / "s")
    fence = await one.acquire(KEY, "a", 30)
    assert await two.acquire(KEY, "a", 30) == fence
    assert await two.acquire(KEY, "b", 30) is None
    assert await two.release(KEY, "a") is True
    assert await one.acquire(KEY, "b", 30) == (fence or 0) + 1


@pytest.mark.parametrize(
    "rounds", [20, pytest.param(200, marks=pytest.mark.slow)], ids=str
)
async def test_file_store_reads_are_never_torn(tmp_path: Path, rounds: int) -> None:
    """Readers loading while writers commit (threads of the worker pool) see the
    old record or the new one: never an unparseable one."""
    store = FileTokenStore(tmp_path / "s")
    fence = await store.acquire(KEY, "a", 30)
    assert fence is not None
    payloads = [bytes([65 + n % 26]) * (2000 + 997 * n) for n in range(8)]
    seen: list[bytes] = []
    refused = 0

    async def writer(n: int) -> None:
        nonlocal refused
        for round_ in range(rounds):
            record = await store.load(KEY)
            expected = None if record is None else record.write_id
            payload = payloads[(n + round_) % len(payloads)]
            if await commit(store, fence, expected, payload=payload) is None:
                refused += 1

    async def reader() -> None:
        for _ in range(4 * rounds):
            record = await store.load(KEY)
            if record is not None:
                seen.append(record.payload)

    with anyio.fail_after(HANG_GUARD):
        async with anyio.create_task_group() as group:
            for n in range(4):
                group.start_soon(writer, n)
            for _ in range(4):
                group.start_soon(reader)
    assert seen
    assert all(payload in payloads for payload in seen)


HOLDER = """
import asyncio, sys
from teletracker_async.stores import FileTokenStore

async def main():
    store = FileTokenStore(sys.argv[1])
    print(await store.acquire(sys.argv[2], "child", 1), flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


@pytest.mark.slow  # a real child process
async def test_file_store_frees_the_lease_of_a_killed_holder(tmp_path: Path) -> None:
    """A process holding the lease is kill -9'd: the kernel frees the flock and the
    next holder gets a larger fence (the lease file stays: it is never unlinked)."""
    store = FileTokenStore(tmp_path / "s")
    child = subprocess.Popen(  # noqa: S603, ASYNC220 - this test's own script
        [sys.executable, "-c", textwrap.dedent(HOLDER), str(store.path), KEY],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert child.stdout is not None
        line = await anyio.to_thread.run_sync(child.stdout.readline)
        child_fence = int(line)
        assert await store.acquire(KEY, "parent", 30) is None
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
    fence = await store.acquire(KEY, "parent", 30)
    assert fence == child_fence + 1
    assert (store.path / f"{KEY}.lease").exists()


async def test_file_store_gives_up_on_a_stuck_mutation_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process stuck inside a read-modify-write (its lock held) costs a
    TokenStoreError after FILE_LOCK_TIMEOUT, not a hang."""
    import fcntl  # noqa: PLC0415 - POSIX only

    store = FileTokenStore(tmp_path / "s")
    monkeypatch.setattr(_file, "FILE_LOCK_TIMEOUT", 0.2)
    fd = os.open(store.path / f"{KEY}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with (
            anyio.fail_after(HANG_GUARD),
            pytest.raises(TokenStoreError, match="stayed locked"),
        ):
            await store.spend(KEY, "w")
    finally:
        os.close(fd)
    assert await store.spend(KEY, "w") is False


def test_boot_id_sources(tmp_path: Path) -> None:
    """Linux's boot id, else the BSD/macOS boot time, else None (no store then)."""
    boot = tmp_path / "boot_id"
    boot.write_text("abc\n")
    assert _file.boot_id(str(boot)) == "abc"
    missing = str(tmp_path / "missing")
    assert _file.boot_id(missing, lambda: "{ sec = 1 }") == "boottime:{ sec = 1 }"
    assert _file.boot_id(missing, lambda: None) is None
    stamp = _file._sysctl_boottime()  # no kern.boottime on Linux: None
    assert stamp is None or stamp


# -- the Redis store ------------------------------------------------------------------


async def test_redis_store_survives_a_restart_empty(
    redis_factory: Any,
) -> None:
    """kill -9 and an empty restart: the record is gone, the store reconnects, and
    fences keep growing (they start at the server's clock)."""
    server: RedisServer = redis_factory()
    store = RedisTokenStore(server.url)
    fence = await store.acquire(KEY, "a", 30)
    assert fence is not None
    assert await commit(store, fence, None) is not None
    server.kill()
    with pytest.raises(TokenStoreError, match=str(server.socket)):
        await store.load(KEY)
    server.start()
    assert await store.load(KEY) is None
    newer = await store.acquire(KEY, "b", 30)
    assert newer is not None
    assert newer > fence
    await store.aclose()


async def test_redis_store_distrusts_a_stale_snapshot(
    redis_factory: Any, tmp_path: Path
) -> None:
    """Restarted from a snapshot taken before the spend: the old record is back,
    unspent, but untrusted, and spend refuses it; the control run, with the
    instance check disabled, spends it again: a refresh-token reuse."""
    server: RedisServer = redis_factory()
    store = RedisTokenStore(server.url)
    control = RedisTokenStore(server.url, _check_instance=False)
    fence = await store.acquire(KEY, "a", 30)
    assert fence is not None
    write_id = await commit(store, fence, None)
    assert write_id is not None
    snapshot = server.snapshot(tmp_path / "stale.rdb")
    assert await store.spend(KEY, write_id) is True
    server.kill()
    server.start(snapshot)
    record = await store.load(KEY)
    assert record is not None
    assert (record.write_id, record.spent, record.trusted) == (write_id, False, False)
    assert await store.spend(KEY, write_id) is False
    seen = await control.load(KEY)
    assert seen is not None
    assert seen.trusted
    assert await control.spend(KEY, write_id) is True  # the reuse the guard prevents
    # The snapshot's lease came back too; once released, a new lease has a larger
    # fence than any before, and a fresh login replaces the stale record.
    assert await store.release(KEY, "a") is True
    newer = await store.acquire(KEY, "b", 30)
    assert newer is not None
    assert newer > fence
    fresh = await commit(store, newer, write_id)
    assert fresh is not None
    assert await store.spend(KEY, fresh) is True
    await store.aclose()
    await control.aclose()


async def test_redis_store_fails_fast_on_a_frozen_server(redis_factory: Any) -> None:
    """A SIGSTOP'd server: a TokenStoreError once the socket timeout runs out (not
    a hang), and the store works again once the server runs."""
    server: RedisServer = redis_factory()
    store = RedisTokenStore(server.url, timeout=0.3)
    assert await store.load(KEY) is None
    server.signal(signal.SIGSTOP)
    try:
        with (
            anyio.fail_after(HANG_GUARD),
            pytest.raises(TokenStoreError, match="Timeout"),
        ):
            await store.acquire(KEY, "a", 30)
    finally:
        server.signal(signal.SIGCONT)
    with anyio.fail_after(HANG_GUARD):
        while True:  # the frozen call may still land: the holder may be "a"
            try:
                assert await store.acquire(KEY, "a", 30) is not None
                break
            except TokenStoreError:
                await anyio.sleep(0.05)
    await store.aclose()


async def test_redis_store_reloads_flushed_scripts(redis_server: RedisServer) -> None:
    """After SCRIPT FLUSH (or a restart) EVALSHA misses and the script is sent again."""
    store = RedisTokenStore(redis_server.url, prefix=f"t-{uuid.uuid4().hex}")
    assert await store.load(KEY) is None
    with redis_server.client() as client:
        client.script_flush()
    assert await store.load(KEY) is None
    await store.aclose()


async def test_redis_store_keeps_prefixes_apart(redis_server: RedisServer) -> None:
    """Two prefixes on one server are two stores; keys live under the prefix."""
    prefix = f"t-{uuid.uuid4().hex}"
    one = RedisTokenStore(redis_server.url, prefix=prefix)
    two = RedisTokenStore(redis_server.url, prefix=prefix + "x")
    fence = await one.acquire(KEY, "a", 30)
    assert fence is not None
    assert await commit(one, fence, None) is not None
    assert await two.load(KEY) is None
    assert await two.acquire(KEY, "b", 30) is not None
    with redis_server.client() as client:
        keys = sorted(k.decode() for k in client.keys(f"{prefix}:*"))
    assert keys == [f"{prefix}:{{{KEY}}}:{name}" for name in ("fence", "lease", "rec")]
    await one.aclose()
    await two.aclose()


async def test_redis_store_hides_passwords() -> None:
    """A password in the URL (user info or query) is never in repr, nor in the
    error when the server cannot be reached, which names the server."""
    store = RedisTokenStore("redis://ada:s3cr3t-pw@127.0.0.1:1/0", timeout=5)
    assert "s3cr3t" not in repr(store)
    assert "ada:***@127.0.0.1:1" in repr(store)
    with pytest.raises(TokenStoreError, match=r"127\.0\.0\.1:1") as info:
        await store.load(KEY)
    assert "s3cr3t" not in str(info.value)
    assert keeps_secrets(info.value)
    await store.aclose()
    socket = RedisTokenStore("unix:///nowhere/redis.sock?password=s3cr3t-pw&db=0")
    assert "s3cr3t" not in repr(socket)
    assert redact_url("rediss://h:6380") == "rediss://h:6380"
    assert redact_url("redis://:pw@h?password=pw") == "redis://:***@h?password=***"


def test_redis_store_refuses_what_it_cannot_use(redis_server: RedisServer) -> None:
    """A URL of another scheme, an object that is no client, a decoding client."""
    redis = pytest.importorskip("redis")
    with pytest.raises(ValueError, match="redis://, rediss:// or unix://"):
        RedisTokenStore("http://:pw@localhost")
    with pytest.raises(ValueError, match="not a usable Redis URL"):
        RedisTokenStore("redis://localhost:notaport")
    with pytest.raises(TypeError, match="url_or_client must be"):
        RedisTokenStore(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must not be empty"):
        RedisTokenStore(redis_server.url, prefix="")
    client = redis.Redis(
        unix_socket_path=str(redis_server.socket), decode_responses=True
    )
    with pytest.raises(ValueError, match="decode_responses=False"):
        RedisTokenStore(client)
    client.close()


@pytest.mark.slow  # a real child process
def test_redis_store_needs_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without redis installed, the stores import and RedisTokenStore says what to
    install."""
    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(ModuleNotFoundError, match=r"teletracker-async\[redis\]"):
        RedisTokenStore("redis://localhost")
    code = (
        "import sys; sys.modules['redis'] = None; "
        "import teletracker_async.stores as s; print(s.RedisTokenStore.__name__)"
    )
    done = subprocess.run(  # noqa: S603 - this interpreter
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "RedisTokenStore"


async def test_redis_store_takes_a_sync_client(redis_server: RedisServer) -> None:
    """A user's redis.Redis runs in a worker thread (trio too) and stays open."""
    client = redis_server.client()
    store = RedisTokenStore(client, prefix=f"t-{uuid.uuid4().hex}")
    assert str(redis_server.socket) in repr(store)
    assert await store.acquire(KEY, "a", 30) is not None
    await store.aclose()
    assert client.ping()
    client.close()


async def test_redis_store_takes_an_asyncio_client(
    redis_server: RedisServer, anyio_backend: str
) -> None:
    """A user's redis.asyncio client works under asyncio; under trio, a clear error."""
    redis_asyncio = pytest.importorskip("redis.asyncio")
    client = redis_asyncio.Redis(unix_socket_path=str(redis_server.socket))
    store = RedisTokenStore(client, prefix=f"t-{uuid.uuid4().hex}")
    if anyio_backend == "trio":
        with pytest.raises(RuntimeError, match="asyncio only"):
            await store.load(KEY)
        return
    try:
        fence = await store.acquire(KEY, "a", 30)
        assert fence is not None
        write_id = await commit(store, fence, None)
        assert write_id is not None
        assert await store.spend(KEY, write_id) is True
        record = await store.load(KEY)
        assert record is not None
        assert record.spent
        await client.script_flush()
        assert await store.release(KEY, "a") is True
    finally:
        await store.aclose()
        await (client.aclose() if hasattr(client, "aclose") else client.close())


async def test_a_cancelled_asyncio_client_acquire_leaves_no_lease(
    redis_factory: Any, anyio_backend: str
) -> None:
    """A redis.asyncio acquire cancelled while the server has its script (here: a
    frozen server) must not leave a lease behind when the server runs it: the call
    is finished and the lease released before the cancellation goes on."""
    if anyio_backend == "trio":
        pytest.skip("a redis.asyncio client runs on asyncio only")
    redis_asyncio = pytest.importorskip("redis.asyncio")
    server: RedisServer = redis_factory()
    client = redis_asyncio.Redis(unix_socket_path=str(server.socket))
    prefix = f"t-{uuid.uuid4().hex}"
    store = RedisTokenStore(client, prefix=prefix)
    other = RedisTokenStore(server.url, prefix=prefix)
    assert await store.acquire(KEY, "warm", 30) is not None  # scripts loaded
    assert await store.release(KEY, "warm") is True
    assert await other.load(KEY) is None
    try:
        with anyio.fail_after(HANG_GUARD):
            async with anyio.create_task_group() as group:
                server.signal(signal.SIGSTOP)
                try:
                    group.start_soon(store.acquire, KEY, "cancelled", 600)
                    await anyio.sleep(0.3)  # the script is in the server's socket
                    group.cancel_scope.cancel()
                    await anyio.sleep(0.1)
                finally:
                    server.signal(signal.SIGCONT)
        # Let the server run what it received while frozen (the cancelled script).
        await anyio.sleep(0.5)
        with anyio.fail_after(HANG_GUARD):
            while True:  # the frozen server answers again
                try:
                    fence = await other.acquire(KEY, "other", 30)
                    break
                except TokenStoreError:
                    await anyio.sleep(0.05)
        assert fence is not None
    finally:
        await store.aclose()
        await other.aclose()
        await client.aclose()


async def test_redis_asyncio_client_errors_are_store_errors(anyio_backend: str) -> None:
    """An asyncio client that cannot connect: TokenStoreError naming the server."""
    redis_asyncio = pytest.importorskip("redis.asyncio")
    from redis.asyncio.retry import Retry  # noqa: PLC0415 - with the skip above
    from redis.backoff import NoBackoff  # noqa: PLC0415

    # No client-side retries: redis-py's default backs off for seconds first.
    client = redis_asyncio.Redis(
        host="127.0.0.1", port=1, password="s3cr3t-pw", retry=Retry(NoBackoff(), 0)
    )
    store = RedisTokenStore(client)
    if anyio_backend == "trio":
        with pytest.raises(RuntimeError, match="asyncio only"):
            await store.load(KEY)
        return
    with pytest.raises(TokenStoreError, match=r"127\.0\.0\.1:1") as info:
        await store.load(KEY)
    assert keeps_secrets(info.value)
    await (client.aclose() if hasattr(client, "aclose") else client.close())


#: The README's ACL recipe, word for word (Redis >= 7.2 also wants +client|setinfo).
README_ACL = (
    "on >{password} resetkeys ~{prefix}:* resetchannels -@all +evalsha +eval "
    "+script|load +get +set +del +incr +pexpire +hget +hmget +hset +time +info +ping"
)


async def test_the_readme_acl_recipe_is_enough_and_confines_the_user(
    redis_server: RedisServer,
) -> None:
    """A user limited by the README's ACL runs every store operation under its
    prefix, and is refused any other prefix."""
    name, password, prefix = f"tt{uuid.uuid4().hex[:8]}", "acl-pw-Xy9", "ttacl"
    key = uuid.uuid4().hex
    rules = README_ACL.format(password=password, prefix=prefix).split()
    with redis_server.client() as admin:
        admin.execute_command("ACL", "SETUSER", name, *rules)
    url = f"unix://{name}:{password}@{redis_server.socket}"
    store = RedisTokenStore(url, prefix=prefix)
    other = RedisTokenStore(url, prefix="elsewhere")
    try:
        assert await store.load(key) is None
        fence = await store.acquire(key, "holder", 5.0)
        assert fence is not None
        write_id = new_write_id()
        assert await store.commit(
            key,
            b"{}",
            write_id=write_id,
            expected=None,
            fence=fence,
            lifetime=60,
            age=0,
        )
        assert await store.spend(key, write_id)
        assert await store.release(key, "holder")
        with pytest.raises(TokenStoreError, match="permission"):
            await other.load(key)
        assert password not in repr(store)
    finally:
        await store.aclose()
        await other.aclose()
