"""What a fleet puts in its token store: the session's own fields, re-encoded by the
SDK (never anything else the server said), encrypted when the store has a codec;
and what it does when a store fails or a record does not decrypt.

Each test reads the store's raw bytes (the file, the Redis hash) the way whoever
can read the directory, the keyspace or a snapshot would.
"""

from __future__ import annotations

import base64
import json
import logging
import traceback
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet, MultiFernet

from teletracker_async import TeletrackerAuth, TokenStoreError
from teletracker_async.stores import (
    FileTokenStore,
    MemoryTokenStore,
    RedisTokenStore,
    StoredRecord,
    TokenCodec,
    TokenStore,
    store_key,
)
from teletracker_async.testing import FakeClock, FakeTeletracker
from tests.conftest import BASE_URL, PASSWORD, USERNAME, RedisServer

pytestmark = pytest.mark.anyio

DAY = {"start_date": "2026-01-01", "end_date": "2026-01-01"}
KEY = store_key(BASE_URL, USERNAME, None)
#: What a record may hold, at most: the session's fields, nothing the server added.
SESSION_FIELDS = {
    "success",
    "guid",
    "token",
    "tokenExpiration",
    "tokenLifetime",
    "refreshToken",
    "refreshTokenExpiration",
    "accountId",
}


class Echoing(httpx.AsyncBaseTransport):
    """A server (or a proxy) that echoes the login and refresh forms, password
    included, in an unknown field of its answers."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.echoed = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        response = await self.inner.handle_async_request(request)
        if not request.url.path.startswith("/auth/") or response.status_code != 200:
            return response
        await response.aread()
        body = json.loads(response.content)
        body["debug"] = {"form": dict(urllib.parse.parse_qsl(request.content.decode()))}
        self.echoed += 1
        return httpx.Response(200, json=body, request=request)


@pytest.fixture
def fake(clock: FakeClock) -> FakeTeletracker:
    return FakeTeletracker(
        users={USERNAME: (PASSWORD, [1, 2]), "bob": ("bob-pw", [3])},
        clock=clock,
        records_per_day=1,
    )


StoreMaker = Callable[..., Any]


@pytest.fixture(params=["file", "redis"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def make_store(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[StoreMaker]:
    """Stores of one kind on one place (a directory, a Redis prefix): *kind* is a
    fixture param of the test, or given."""
    prefix = f"t-{uuid.uuid4().hex}"
    made: list[Any] = []

    def make(kind: str, codec: TokenCodec | None = None) -> Any:
        if kind == "memory":
            store: Any = MemoryTokenStore(clock=clock, codec=codec)
        elif kind == "file":
            store = FileTokenStore(tmp_path / "store", codec=codec)
        else:
            server: RedisServer = request.getfixturevalue("redis_server")
            store = RedisTokenStore(server.url, prefix=prefix, codec=codec)
        made.append(store)
        return store

    make.prefix = prefix  # type: ignore[attr-defined]
    make.directory = tmp_path / "store"  # type: ignore[attr-defined]
    yield make
    for store in made:
        await store.aclose()


def raw_record(
    kind: str, make_store: StoreMaker, request: pytest.FixtureRequest
) -> bytes:
    """Every byte the store holds for KEY's record, base64 payloads decoded too."""
    if kind == "file":
        path: Path = make_store.directory / f"{KEY}.json"  # type: ignore[attr-defined]
        raw = path.read_bytes()
        payload = base64.b64decode(json.loads(raw)["payload"])
        return raw + b"\n" + payload
    server: RedisServer = request.getfixturevalue("redis_server")
    with server.client() as client:
        fields = client.hgetall(f"{make_store.prefix}:{{{KEY}}}:rec")  # type: ignore[attr-defined]
    return b"\n".join(k + b"=" + v for k, v in sorted(fields.items()))


async def get(
    fake: FakeTeletracker,
    clock: FakeClock,
    store: TokenStore | TeletrackerAuth,
    transport: httpx.AsyncBaseTransport | None = None,
) -> TeletrackerAuth:
    """One request through the auth given, or a new one (a new 'process') on the
    store given."""
    auth = (
        store
        if isinstance(store, TeletrackerAuth)
        else TeletrackerAuth(
            USERNAME, PASSWORD, base_url=BASE_URL, clock=clock, store=store
        )
    )
    async with httpx.AsyncClient(
        auth=auth, transport=transport or fake.transport(), base_url=BASE_URL
    ) as client:
        response = await client.get("/reports/call-data", params=DAY)
    assert response.status_code == 200
    return auth


def secrets_of(fake: FakeTeletracker) -> set[str]:
    return {PASSWORD, *fake._by_token, *fake._by_refresh, *fake._spent_refresh}


# -- only the session's fields reach the store ---------------------------------------


@pytest.mark.parametrize("where", ["memory", "file", "redis"])
async def test_a_store_holds_no_field_the_sdk_does_not_use(
    where: str,
    fake: FakeTeletracker,
    clock: FakeClock,
    make_store: StoreMaker,
    request: pytest.FixtureRequest,
) -> None:
    """A server that echoes the form (password included) in an unknown field: the
    record holds the session's fields only, re-encoded; the password's bytes are
    nowhere in what is stored (raw file, base64 payload, Redis hash)."""
    store = make_store(where)
    echoing = Echoing(fake.transport())
    auth = await get(fake, clock, store, echoing)
    clock.advance(3600 - 1)  # a refresh, published too
    await get(fake, clock, auth, echoing)
    assert echoing.echoed >= 2
    assert fake.stats.refreshes == 1
    record = await store.load(KEY)
    assert record is not None
    assert PASSWORD.encode() not in record.payload
    answer = json.loads(record.payload)["answer"]
    assert set(answer) <= SESSION_FIELDS
    if where != "memory":
        raw = raw_record(where, make_store, request)
        assert PASSWORD.encode() not in raw
        assert b"debug" not in raw
    adopter = await get(fake, clock, store)  # and the record is still whole
    assert adopter.store_stats is not None
    assert adopter.store_stats.adopted == 1
    assert fake.stats.logins == 1
    await store.aclose()


# -- a store that fails its own way ------------------------------------------------------


class Failing:
    """A third-party store (no CheckedStore) whose *broken* method raises something
    else than TokenStoreError, with the payload it was given in its frame."""

    def __init__(self, inner: TokenStore, broken: str) -> None:
        self.inner = inner
        self.broken = broken

    def __repr__(self) -> str:
        return f"Failing({self.broken})"

    def _fail(self, name: str, payload: bytes | None = None) -> None:
        if name == self.broken:
            note = payload  # noqa: F841 - what a careless store keeps in its frame
            raise RuntimeError("the third-party store broke")

    async def load(self, key: str) -> StoredRecord | None:
        record = await self.inner.load(key)
        self._fail("load", None if record is None else record.payload)
        return record

    async def acquire(self, key: str, holder: str, ttl: float) -> int | None:
        self._fail("acquire")
        return await self.inner.acquire(key, holder, ttl)

    async def release(self, key: str, holder: str) -> bool:
        self._fail("release")
        return await self.inner.release(key, holder)

    async def spend(self, key: str, write_id: str) -> bool:
        self._fail("spend")
        return await self.inner.spend(key, write_id)

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
        self._fail("commit", payload)
        return await self.inner.commit(
            key,
            payload,
            write_id=write_id,
            expected=expected,
            fence=fence,
            lifetime=lifetime,
            age=age,
        )

    async def aclose(self) -> None:
        await self.inner.aclose()


def frames_show(error: BaseException) -> str:
    """The repr of every local of every frame of *error*'s traceback and of every
    exception chained to it: what an error reporter (Sentry's default) sees."""
    texts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = error
    stack = [error]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        for frame, _ in traceback.walk_tb(current.__traceback__):
            texts += [f"{name}={value!r}" for name, value in frame.f_locals.items()]
        stack += [e for e in (current.__cause__, current.__context__) if e is not None]
    return "\n".join(texts)


@pytest.mark.parametrize("broken", ["load", "acquire", "spend", "commit", "release"])
async def test_a_third_party_store_error_becomes_a_store_error_without_secrets(
    broken: str,
    fake: FakeTeletracker,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Whatever a store raises from any method becomes a TokenStoreError naming the
    method, from frames holding no token: with errors="raise" it is raised (its
    frames, and any chained exception's, hold no secret); with "login" the renewal
    goes on and the warning names the store."""
    inner = MemoryTokenStore(clock=clock)
    await get(fake, clock, inner)  # a published session: the load has a payload
    clock.advance(3600 - 1)  # a refresh is due: load, acquire, spend, commit, release
    store = Failing(inner, broken)
    errors: list[BaseException] = []
    auth = TeletrackerAuth(
        USERNAME,
        PASSWORD,
        base_url=BASE_URL,
        clock=clock,
        store=store,
        store_errors="raise",
    )
    async with httpx.AsyncClient(
        auth=auth, transport=fake.transport(), base_url=BASE_URL
    ) as client:
        with caplog.at_level(logging.WARNING):
            try:
                response = await client.get("/reports/call-data", params=DAY)
            except TokenStoreError as exc:
                errors.append(exc)
            else:
                assert response.status_code == 200
    if broken in {"load", "acquire", "spend"}:  # before the exchange: raised
        assert len(errors) == 1
        error = errors[0]
        assert f"Failing.{broken}" in str(error)
        assert "RuntimeError" in str(error)
        assert error.__cause__ is None
        assert error.__context__ is None
        shown = frames_show(error)
        assert not sorted(s for s in secrets_of(fake) if s in shown)
    else:  # with the answer (kept, its publication unknown) or after it: a warning
        assert errors == []
        assert f"Failing.{broken}" in caplog.text
    assert not sorted(s for s in secrets_of(fake) if s in caplog.text)


async def test_publish_keeps_no_payload_in_its_frame(
    fake: FakeTeletracker, clock: FakeClock
) -> None:
    """A commit that raises what is no Exception (a test's way of seeing publish's
    frame as it was): neither the answer's content nor the payload is a local of
    the SDK's frames; only the store's own frame holds what it was given."""

    class Abort(BaseException):
        pass

    class Grabbing(Failing):
        async def commit(self, key: str, payload: bytes, **_: Any) -> bool:
            raise Abort(key, len(payload))

    with pytest.raises(Abort) as info:
        await get(fake, clock, Grabbing(MemoryTokenStore(clock=clock), "none"))
    texts = []
    for frame, _ in traceback.walk_tb(info.value.__traceback__):
        if frame.f_code.co_name == "commit" and isinstance(
            frame.f_locals.get("self"), Grabbing
        ):
            continue  # the store's own frame
        texts += [f"{n}={v!r}" for n, v in frame.f_locals.items()]
    shown = "\n".join(texts)
    assert "publish" in {
        f.f_code.co_name for f, _ in traceback.walk_tb(info.value.__traceback__)
    }
    assert not sorted(s for s in secrets_of(fake) if s in shown)


# -- records at rest, encrypted ------------------------------------------------------------


async def test_an_encrypted_record_is_unreadable_at_rest_and_shared(
    kind: str,
    fake: FakeTeletracker,
    clock: FakeClock,
    make_store: StoreMaker,
    request: pytest.FixtureRequest,
) -> None:
    """With a Fernet codec, no token, refresh token nor guid is readable in what
    the store holds; a second process with the key adopts the session."""
    key = Fernet.generate_key()
    first = make_store(kind, Fernet(key))
    await get(fake, clock, first)
    raw = raw_record(kind, make_store, request)
    shown = [*secrets_of(fake), *(s.guid for s in fake._sessions.values())]
    assert not sorted(s for s in shown if s.encode() in raw)
    second = await get(fake, clock, make_store(kind, Fernet(key)))
    assert second.store_stats is not None
    assert second.store_stats.adopted == 1
    assert fake.stats.logins == 1


@pytest.mark.parametrize("damage", ["wrong key", "tampered", "plain"])
async def test_a_record_that_does_not_decrypt_is_never_used(
    kind: str,
    damage: str,
    fake: FakeTeletracker,
    clock: FakeClock,
    make_store: StoreMaker,
    request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Another key, an altered ciphertext, or a record written without the codec:
    like an unreadable record, it is never used (its refresh token never sent, not
    even at refresh time), the process logs in privately with a warning, and the
    record is left as it is."""
    key = Fernet.generate_key()
    writer = make_store(kind, None if damage == "plain" else Fernet(key))
    session = (await get(fake, clock, writer)).session
    assert session is not None
    if damage == "tampered":
        tamper(kind, make_store, request)
    before = raw_record(kind, make_store, request)
    reader_codec = Fernet(Fernet.generate_key() if damage == "wrong key" else key)
    reader = make_store(kind, reader_codec)
    with caplog.at_level(logging.WARNING):
        auth = await get(fake, clock, reader)
        clock.advance(3600 + 1)
        await get(fake, clock, auth)  # a renewal due: still never that record's
    assert fake.stats.reuse_attempts == 0
    assert session.refresh_token in fake._by_refresh  # never sent, still valid
    assert session.refresh_token not in fake._spent_refresh
    assert auth.store_stats is not None
    assert auth.store_stats.adopted == 0
    assert auth.store_stats.private_renewals == 2  # one per renewal
    # The writer's login; then the reader's own login, and its own refresh.
    assert (fake.stats.logins, fake.stats.refreshes) == (2, 1)
    assert "does not decrypt" in caplog.text
    assert "renewing privately" in caplog.text
    assert raw_record(kind, make_store, request) == before
    assert not sorted(s for s in secrets_of(fake) if s in caplog.text)


def tamper(kind: str, make_store: StoreMaker, request: pytest.FixtureRequest) -> None:
    """Flip one bit of the ciphertext in place (the rest of the record intact)."""
    if kind == "file":
        path: Path = make_store.directory / f"{KEY}.json"  # type: ignore[attr-defined]
        record = json.loads(path.read_bytes())
        sealed = bytearray(base64.b64decode(record["payload"]))
        sealed[len(sealed) // 2] ^= 0x01
        record["payload"] = base64.b64encode(bytes(sealed)).decode()
        path.write_text(json.dumps(record))
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    name = f"{make_store.prefix}:{{{KEY}}}:rec"  # type: ignore[attr-defined]
    with server.client() as client:
        sealed = bytearray(client.hget(name, "payload"))
        sealed[len(sealed) // 2] ^= 0x01
        client.hset(name, "payload", bytes(sealed))


async def test_keys_rotate_with_multifernet(
    kind: str,
    fake: FakeTeletracker,
    clock: FakeClock,
    make_store: StoreMaker,
    request: pytest.FixtureRequest,
) -> None:
    """MultiFernet([new, old]): a process with it adopts a record sealed with the
    old key, and what it publishes is sealed with the new one (readable by a
    process with the new key alone, no longer by one with the old key alone)."""
    old, new = Fernet.generate_key(), Fernet.generate_key()
    await get(fake, clock, make_store(kind, Fernet(old)))
    rotating = make_store(kind, MultiFernet([Fernet(new), Fernet(old)]))
    adopter = await get(fake, clock, rotating)
    assert adopter.store_stats is not None
    assert adopter.store_stats.adopted == 1
    clock.advance(3600 - 1)
    await get(fake, clock, adopter)  # it refreshes and publishes, with the new key
    assert (fake.stats.logins, fake.stats.refreshes) == (1, 1)
    record = await make_store(kind, Fernet(new)).load(KEY)
    assert record is not None
    assert json.loads(record.payload)["key"] == KEY
    with pytest.raises(TokenStoreError, match="does not decrypt"):
        await make_store(kind, Fernet(old)).load(KEY)
    newcomer = await get(fake, clock, make_store(kind, Fernet(new)))
    assert newcomer.store_stats is not None
    assert newcomer.store_stats.adopted == 1
    assert fake.stats.logins == 1
    assert fake.stats.reuse_attempts == 0


async def test_a_record_copied_under_another_key_is_refused(
    fake: FakeTeletracker, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """The key a record was written under is inside its payload (inside the
    encryption, with a codec): a record copied under another user's key is not
    adopted there (that user would send the first one's token); a login renews
    over it."""
    store = MemoryTokenStore(clock=clock)
    await get(fake, clock, store)
    record = await store.load(KEY)
    assert record is not None
    other = store_key(BASE_URL, "bob", None)
    fence = await store.acquire(other, "copier", 10)
    assert fence is not None
    assert await store.commit(
        other,
        record.payload,
        write_id="copied",
        expected=None,
        fence=fence,
        lifetime=3600,
        age=0,
    )
    assert await store.release(other, "copier")
    auth = TeletrackerAuth("bob", "bob-pw", base_url=BASE_URL, clock=clock, store=store)
    with caplog.at_level(logging.WARNING):
        await get(fake, clock, auth)
    assert auth.store_stats is not None
    assert auth.store_stats.adopted == 0
    assert fake.stats.logins == 2
    assert "written under another key" in caplog.text
    copied = await store.load(other)
    assert copied is not None
    assert copied.write_id != "copied"  # renewed over


class FailsOnce:
    """A codec whose first encrypt fails (a KMS call that timed out), then works."""

    def __init__(self) -> None:
        self.inner = Fernet(Fernet.generate_key())
        self.failed = False

    def encrypt(self, data: bytes, /) -> bytes:
        if not self.failed:
            self.failed = True
            raise TimeoutError
        return self.inner.encrypt(data)

    def decrypt(self, token: bytes, /) -> bytes:
        return self.inner.decrypt(token)


async def test_a_session_whose_record_failed_to_encrypt_is_refreshed_not_relogged(
    fake: FakeTeletracker, clock: FakeClock
) -> None:
    """The codec failed before anything was written: the commit cannot have
    landed, so the session is this process's alone and its next renewal is a
    refresh, not a login (a failure to encrypt counted as "publication unknown")."""
    store = MemoryTokenStore(clock=clock, codec=FailsOnce())
    auth = await get(fake, clock, store)
    assert await store.load(KEY) is None  # nothing was written
    clock.advance(fake.token_lifetime - 1)
    await get(fake, clock, auth)
    assert (fake.stats.logins, fake.stats.refreshes) == (1, 1)
