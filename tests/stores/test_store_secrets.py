"""What the stores keep secret: records encrypted at rest by a codec (every store),
and the Redis URL's password (out of frame locals, vars and repr)."""

from __future__ import annotations

import traceback
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from teletracker_async.stores import (
    FileTokenStore,
    MemoryTokenStore,
    RedisTokenStore,
    TokenCodec,
    TokenStoreError,
    new_write_id,
    store_key,
)
from tests.conftest import RedisServer

pytestmark = pytest.mark.anyio

KEY = store_key("https://api.teletracker.test", "ada", 7)
SECRET = b'{"token": "tok-SECRET-1", "refresh": "ref-SECRET-1"}'
URL_PASSWORD = "s3cr3t-url-pw"


@pytest.fixture(params=["memory", "file", "redis"])
def where(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def stores(
    where: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Any]:
    """Make stores of one kind on one place, each with its codec; closed after."""
    prefix = f"t-{uuid.uuid4().hex}"
    made: list[Any] = []
    shared = MemoryTokenStore()  # memory "place": the same instance's records

    def make(codec: TokenCodec | None) -> Any:
        if where == "memory":
            shared._codec = codec  # one process's records, seen through a codec
            return shared
        if where == "file":
            store: Any = FileTokenStore(tmp_path / "s", codec=codec)
        else:
            server: RedisServer = request.getfixturevalue("redis_server")
            store = RedisTokenStore(server.url, prefix=prefix, codec=codec)
        made.append(store)
        return store

    yield make
    for store in made:
        await store.aclose()
    await shared.aclose()


async def write(store: Any, payload: bytes = SECRET) -> str:
    """Commit the first record under KEY; its write id."""
    holder = f"h-{uuid.uuid4().hex}"
    fence = await store.acquire(KEY, holder, 30)
    assert fence is not None
    write_id = new_write_id()
    assert await store.commit(
        KEY, payload, write_id=write_id, expected=None, fence=fence, lifetime=9, age=0
    )
    assert await store.release(KEY, holder)
    return write_id


def leaks(error: BaseException) -> bool:
    """Whether the payload's token shows in what an error reporter capturing frame
    locals sees (the literal lives here: the test's frame is in the report too)."""
    report = traceback.TracebackException.from_exception(error, capture_locals=True)
    return "tok-SECRET" in "".join(report.format())


class Broken:
    """A codec whose methods raise with what they were given in their frames."""

    def encrypt(self, data: bytes, /) -> bytes:
        raise RuntimeError(f"encrypt broke on {len(data)} bytes")

    def decrypt(self, token: bytes, /) -> bytes:
        raise RuntimeError(f"decrypt broke on {len(token)} bytes")


async def test_a_codec_seals_what_the_store_holds(stores: Any) -> None:
    """With a codec, the store's own methods see only the sealed payload; load
    gives back the payload as committed."""
    key = Fernet(Fernet.generate_key())
    store = stores(key)
    write_id = await write(store)
    record = await store.load(KEY)
    assert record is not None
    assert (record.write_id, record.payload) == (write_id, SECRET)
    sealed = await store._load(KEY)
    assert b"SECRET" not in sealed.payload
    assert key.decrypt(sealed.payload) == SECRET


@pytest.mark.parametrize("other", ["another key", "no codec", "broken"])
async def test_a_payload_that_does_not_decrypt_is_a_store_error(
    stores: Any, other: str
) -> None:
    """Sealed with another key, or never sealed, or a codec that raises: load
    raises TokenStoreError (the record is unreadable), its message and frames
    without the payload, and no exception chained."""
    sealer = None if other == "no codec" else Fernet(Fernet.generate_key())
    await write(stores(sealer))
    reader: TokenCodec = (
        Broken() if other == "broken" else Fernet(Fernet.generate_key())
    )
    store = stores(reader)
    with pytest.raises(TokenStoreError, match="does not decrypt") as info:
        await store.load(KEY)
    assert info.value.__context__ is None
    assert info.value.__cause__ is None
    assert not leaks(info.value)


async def test_a_codec_that_fails_to_encrypt_is_a_store_error(stores: Any) -> None:
    """An encrypt that raises: TokenStoreError, nothing written, no payload in the
    frames, no exception chained."""
    store = stores(Broken())
    fence = await store.acquire(KEY, "a", 30)
    with pytest.raises(TokenStoreError, match="could not encrypt") as info:
        await store.commit(
            KEY, SECRET, write_id="w", expected=None, fence=fence, lifetime=9, age=0
        )
    assert info.value.__context__ is None
    assert not leaks(info.value)
    assert await stores(None)._load(KEY) is None


async def test_multifernet_reads_old_keys_and_writes_with_the_first(
    stores: Any,
) -> None:
    """Rotation: MultiFernet([new, old]) reads a record sealed with old and seals
    what it writes with new; old alone can no longer read it."""
    old, new = Fernet(Fernet.generate_key()), Fernet(Fernet.generate_key())
    first = await write(stores(old))
    rotating = stores(MultiFernet([new, old]))
    record = await rotating.load(KEY)
    assert record is not None
    assert record.write_id == first
    fence = await rotating.acquire(KEY, "rotator", 30)
    assert await rotating.commit(
        KEY,
        SECRET,
        write_id="w2",
        expected=first,
        fence=fence,
        lifetime=9,
        age=0,
    )
    sealed = await rotating._load(KEY)
    assert new.decrypt(sealed.payload) == SECRET
    with pytest.raises(InvalidToken):
        old.decrypt(sealed.payload)
    with pytest.raises(TokenStoreError, match="does not decrypt"):
        await stores(old).load(KEY)


def test_a_codec_needs_encrypt_and_decrypt(tmp_path: Path) -> None:
    """Anything without both methods is refused when the store is made."""
    for bad in (b"key", Fernet.generate_key(), object()):
        with pytest.raises(TypeError, match="codec must have encrypt"):
            MemoryTokenStore(codec=bad)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="codec must have encrypt"):
            FileTokenStore(tmp_path / "s", codec=bad)  # type: ignore[arg-type]
    assert isinstance(Fernet(Fernet.generate_key()), TokenCodec)
    assert isinstance(MultiFernet([Fernet(Fernet.generate_key())]), TokenCodec)


# -- the Redis URL's password -------------------------------------------------------------


def frame_locals(error: BaseException) -> str:
    """repr of every local of every frame of *error* and its chained exceptions."""
    texts: list[str] = []
    stack: list[BaseException] = [error]
    while stack:
        current = stack.pop()
        for frame, _ in traceback.walk_tb(current.__traceback__):
            texts += [f"{n}={v!r}" for n, v in frame.f_locals.items()]
        stack += [e for e in (current.__cause__, current.__context__) if e]
    return "\n".join(texts)


@pytest.mark.parametrize(
    ("url", "options", "error"),
    [
        (f"redis://ada:{URL_PASSWORD}@127.0.0.1:1/0", {"prefix": ""}, ValueError),
        (f"redis://:{URL_PASSWORD}@127.0.0.1:1/0", {"timeout": -1}, ValueError),
        (f"redis://:{URL_PASSWORD}@h/0", {"codec": object()}, TypeError),
        (f"ftp://ada:{URL_PASSWORD}@127.0.0.1/0", {}, ValueError),
        (f"redis://ada:{URL_PASSWORD}@[::1/0", {}, ValueError),
        (f"redis://ada:{URL_PASSWORD}@h/0?socket_timeout=x", {}, ValueError),
        (f"redis://ada:{URL_PASSWORD}@h:port/0", {}, ValueError),
        (f"unix:///run/r.sock?password={URL_PASSWORD}&db=x", {}, ValueError),
    ],
)
def test_redis_url_password_is_in_no_frame_of_a_construction_error(
    url: str, options: dict[str, Any], error: type[Exception]
) -> None:
    """Whatever refuses the store's arguments, the URL's password is in no frame
    local of the error (nor of any chained one), nor in its message."""
    with pytest.raises(error) as info:
        RedisTokenStore(url, **options)
    assert URL_PASSWORD not in str(info.value)
    shown = frame_locals(info.value).replace(repr(url), "<the test's own>")
    assert URL_PASSWORD not in shown


async def test_redis_url_password_is_in_no_attribute_of_the_store(
    redis_server: RedisServer,
) -> None:
    """vars(), repr and the link's fields of a store made from a URL with a
    password show it nowhere."""
    url = f"redis://ada:{URL_PASSWORD}@127.0.0.1:1/0"
    store = RedisTokenStore(url, codec=Fernet(Fernet.generate_key()))
    texts = [repr(store), str(store), repr(vars(store))]
    texts += [repr(v) for v in vars(store).values()]
    assert not [t for t in texts if URL_PASSWORD in t]
    await store.aclose()
