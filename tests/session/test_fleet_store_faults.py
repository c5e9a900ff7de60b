"""Adversarial review of the fleet token store (issue 9): each test here fails on
the reviewed code and shows one bug."""

from __future__ import annotations

import contextlib
from typing import Any

import anyio
import attrs
import pytest

from teletracker_async.stores import MemoryTokenStore, StoredRecord, TokenStoreError
from tests.session.test_fleet_protocol import (  # noqa: F401
    KEY,
    LIFETIME,
    Fleet,
    assert_clean,
    fleet,
    write_id,
)

pytestmark = pytest.mark.anyio


@attrs.define
class LostReply:
    """A MemoryTokenStore whose next commit is applied but whose reply is lost
    (a Redis socket timeout after the script ran, a dropped connection, a failing
    directory fsync after os.replace): the caller sees a TokenStoreError."""

    inner: MemoryTokenStore
    lose_next_commit: bool = False

    async def load(self, key: str) -> StoredRecord | None:
        return await self.inner.load(key)

    async def acquire(self, key: str, holder: str, ttl: float) -> int | None:
        return await self.inner.acquire(key, holder, ttl)

    async def release(self, key: str, holder: str) -> bool:
        return await self.inner.release(key, holder)

    async def spend(self, key: str, write_id: str) -> bool:
        return await self.inner.spend(key, write_id)

    async def commit(self, key: str, payload: bytes, **kw: Any) -> bool:
        written = await self.inner.commit(key, payload, **kw)
        if self.lose_next_commit:
            self.lose_next_commit = False
            raise TokenStoreError("Redis token store at x: TimeoutError: Timeout")
        return written

    async def aclose(self) -> None:
        pass


async def test_a_commit_whose_reply_was_lost_never_leads_to_refresh_token_reuse(
    fleet: Fleet,  # noqa: F811
) -> None:
    """A's commit is applied but its reply lost: A keeps the session as 'private'
    (write_id None) although the store published it. B adopts it, spends it and
    is killed after the server rotated. A then 'privately' refreshes with the very
    refresh token B already used: a reuse, fleet-wide (the server revokes the
    session family)."""
    lossy = LostReply(fleet.store)
    a = await fleet.add(store=lossy)
    b = await fleet.add()
    assert (await a.get()).status_code == 200
    assert (await b.get()).status_code == 200
    fleet.clock.advance(LIFETIME - 1)
    lossy.lose_next_commit = True
    assert (await a.get()).status_code == 200  # refreshed; commit applied, reply lost
    assert fleet.fake.stats.refreshes == 1
    record = await fleet.store.load(KEY)
    assert record is not None
    # A does not take its session for private: it may be the published one.
    assert write_id(a) == record.write_id
    assert a.auth.session is not None
    assert a.auth.session.refresh_token.encode() in record.payload  # ...it is not
    assert (await b.get()).status_code == 200  # B adopts the published record
    assert write_id(b) == record.write_id
    # Next expiry: B spends the record and is killed after the server rotated.
    fleet.clock.advance(LIFETIME - 2)
    gate = fleet.fake.pause_next("refresh", after=True)
    async with anyio.create_task_group() as tg:
        tg.start_soon(b.get)
        await gate.arrived.wait()
        tg.cancel_scope.cancel()
    gate.release()
    assert fleet.fake.stats.refreshes == 2
    # A renews: the record is spent, A's lease is 'private' -> PRIVATE_REFRESH.
    await a.get()
    assert_clean(fleet.fake)  # fails: reuse_attempts == 1


async def test_a_fifo_in_place_of_the_record_file_does_not_hang(tmp_path: Any) -> None:
    """FileTokenStore opens <key>.json with O_RDONLY|O_NOFOLLOW and checks that it
    is a regular file only after open() returns: a FIFO there blocks open() forever
    in a worker thread that cannot be cancelled, so every renewal hangs."""
    import os  # noqa: PLC0415

    from teletracker_async.stores import FileTokenStore  # noqa: PLC0415

    store = FileTokenStore(tmp_path / "store")
    os.mkfifo(tmp_path / "store" / f"{KEY}.json", 0o600)
    hung = False

    async def unblock() -> None:
        nonlocal hung
        await anyio.sleep(3)
        hung = True  # load() still blocked in open(): give it a writer
        fd = os.open(tmp_path / "store" / f"{KEY}.json", os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)

    async with anyio.create_task_group() as tg:
        tg.start_soon(unblock)
        with contextlib.suppress(TokenStoreError):
            await store.load(KEY)
        tg.cancel_scope.cancel()
    await store.aclose()
    assert not hung  # fails: load() hung on the FIFO (uncancellable thread)
