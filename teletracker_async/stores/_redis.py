"""``RedisTokenStore``: one session shared by processes on many hosts.

Every operation is one Lua script (EVALSHA, loaded again after a restart), so each
is atomic on the server. Per key, under ``<prefix>:{<key>}:`` (one hash slot):

- ``rec``: a hash: ``write_id``, ``payload``, ``spent``, ``fence``, ``expires``
  (the server's ``TIME`` in ms) and ``run_id`` (the server's ``INFO`` run id when
  it was written). A record whose run id is not the running server's came from a
  snapshot or a failed-over replica: untrusted, never spent.
- ``lease``: ``<fence>:<holder>`` with a ``PX`` time to live.
- ``fence``: the fence counter (``INCR``), floored at the server's clock in ms so
  fences keep growing across a restart that lost or rewound it.

The default adapter runs the sync ``redis`` client in a worker thread: it works under
asyncio and trio alike. A ``redis.asyncio.Redis`` client is accepted too (asyncio only).
"""

from __future__ import annotations

import asyncio
import contextlib
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio
import attrs

from teletracker_async._config import (
    LEASE_RELEASE_TIMEOUT,
    MAX_RECORD_BYTES,
    REDIS_TIMEOUT,
)
from teletracker_async.stores._base import (
    CheckedStore,
    Opaque,
    StoredRecord,
    TokenCodec,
    TokenStoreError,
    check_codec,
    check_name,
    check_ttl,
)
from teletracker_async.stores._util import (
    Failed,
    in_thread,
)

if TYPE_CHECKING:
    import redis
    import redis.asyncio

__all__ = ["REDIS_TIMEOUT", "RedisTokenStore"]


_SCHEMES = ("redis", "rediss", "unix")

_PRELUDE = """
local function run_id()
  return string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function num(x)
  return string.format('%.0f', x)
end
"""

# KEYS: rec, lease, fence (all three, always: the cluster-safe way to name them).
_LOAD = (
    _PRELUDE
    + """
local r = redis.call('HMGET', KEYS[1], 'write_id', 'payload', 'spent', 'fence',
                     'expires', 'run_id')
if not r[1] then return false end
if string.len(r[2] or '') > tonumber(ARGV[2]) then return -1 end
local trusted = 1
if ARGV[1] == '1' and r[6] ~= run_id() then trusted = 0 end
return {r[1], r[2], tonumber(r[3]), tonumber(r[4]), tonumber(r[5]) - now_ms(), trusted}
"""
)
_ACQUIRE = (
    _PRELUDE
    + """
local cur = redis.call('GET', KEYS[2])
if cur then
  local f, h = string.match(cur, '^(%d+):(.*)$')
  if h == ARGV[1] then
    redis.call('PEXPIRE', KEYS[2], ARGV[2])
    return tonumber(f)
  end
  return false
end
local f = redis.call('INCR', KEYS[3])
local floor = now_ms()
if f < floor then
  f = floor
  redis.call('SET', KEYS[3], num(f))
end
redis.call('SET', KEYS[2], num(f) .. ':' .. ARGV[1], 'PX', ARGV[2])
return f
"""
)
_RELEASE = """
local cur = redis.call('GET', KEYS[2])
if cur then
  local f, h = string.match(cur, '^(%d+):(.*)$')
  if h == ARGV[1] then
    redis.call('DEL', KEYS[2])
    return 1
  end
end
return 0
"""
_SPEND = (
    _PRELUDE
    + """
local r = redis.call('HMGET', KEYS[1], 'write_id', 'spent', 'run_id')
if r[1] ~= ARGV[1] or r[2] ~= '0' then return 0 end
if ARGV[2] == '1' and r[3] ~= run_id() then return 0 end
redis.call('HSET', KEYS[1], 'spent', '1')
return 1
"""
)
_COMMIT = (
    _PRELUDE
    + """
local counter = tonumber(redis.call('GET', KEYS[3]) or '0')
if tonumber(ARGV[5]) < counter then return 0 end
local cur = redis.call('HGET', KEYS[1], 'write_id')
if ARGV[3] == '1' then
  if cur ~= ARGV[4] then return 0 end
elseif cur then
  return 0
end
local expires = now_ms() - tonumber(ARGV[7]) + tonumber(ARGV[6])
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'write_id', ARGV[2], 'payload', ARGV[1], 'spent', '0',
           'fence', ARGV[5], 'expires', num(expires), 'run_id', run_id())
return 1
"""
)
_SCRIPTS = {
    "load": _LOAD,
    "acquire": _ACQUIRE,
    "release": _RELEASE,
    "spend": _SPEND,
    "commit": _COMMIT,
}


def redact_url(url: str) -> str:
    """*url* with any password (in the user info or the query) shown as ``***``."""
    parts = urllib.parse.urlsplit(url)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    pairs = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    hidden = [name for name, _ in pairs if name.lower() == "password"]
    if not (at and ":" in userinfo) and not hidden:
        return url
    netloc = parts.netloc
    if at and ":" in userinfo:
        netloc = f"{userinfo.split(':', 1)[0]}:***@{hostport}"
    shown = f"{parts.scheme}://{netloc}{parts.path}"
    if parts.query:
        safe = [(n, "***" if n.lower() == "password" else v) for n, v in pairs]
        shown += "?" + urllib.parse.urlencode(safe, safe="*")
    return shown


@attrs.frozen(repr=False)
class _Given:
    """``url_or_client`` as given, boxed before anything can raise: a URL may hold
    the server's password, and error reporters show frame locals."""

    value: object

    def __repr__(self) -> str:
        if isinstance(self.value, str):
            try:
                return f"<{redact_url(self.value)!r}>"
            except ValueError:
                return "<a Redis URL>"
        return f"<{type(self.value).__name__}>"


def _scheme(given: _Given) -> str | None:
    """The scheme of the URL in *given*, or None when it is not a URL (never raises
    from urllib's frames, which hold the URL)."""
    assert isinstance(given.value, str)  # noqa: S101 - the caller checked it
    try:
        return urllib.parse.urlsplit(given.value).scheme
    except ValueError:
        return None


def _where_url(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "unix":
        return parts.path
    return parts.netloc.rpartition("@")[2] or "localhost"


def _where_client(client: Any) -> str:
    try:
        kwargs = client.connection_pool.connection_kwargs
    except AttributeError:
        return type(client).__name__
    if kwargs.get("path"):
        return str(kwargs["path"])
    return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"


@attrs.frozen
class _Link:
    """The Redis client a store talks through, and how to name it in messages."""

    redis: Any = attrs.field(repr=False)
    #: Not shown: a client's connection settings hold the server's password.
    client: Any = attrs.field(repr=False)
    #: What ``repr`` shows (a URL without its password, or the client's type).
    shown: str
    #: Host and port (or socket path), for error messages.
    where: str
    #: A ``redis.asyncio`` client (asyncio only) rather than a sync one.
    is_async: bool = False
    #: Made here from a URL, so the store closes it.
    owned: bool = False

    @classmethod
    def to(cls, given: _Given, timeout: float) -> _Link:
        try:
            import redis  # noqa: PLC0415 - an optional extra
            import redis.asyncio  # noqa: PLC0415
        except ImportError:
            raise ModuleNotFoundError(
                "RedisTokenStore needs the redis package: "
                "pip install 'teletracker-async[redis]'"
            ) from None
        if isinstance(given.value, str):
            return cls._from_url(redis, given, timeout)
        if not isinstance(given.value, redis.Redis | redis.asyncio.Redis):
            raise TypeError(
                "url_or_client must be a Redis URL (str), a redis.Redis or a "
                f"redis.asyncio.Redis client, not {type(given.value).__name__}"
            )
        client = given.value
        if client.connection_pool.connection_kwargs.get("decode_responses"):
            raise ValueError(
                "the Redis client must not decode responses (payloads are bytes): "
                "make it with decode_responses=False"
            )
        where = _where_client(client)
        return cls(
            redis,
            client,
            shown=f"<{type(client).__module__}.{type(client).__name__} at {where}>",
            where=where,
            is_async=isinstance(client, redis.asyncio.Redis),
        )

    @classmethod
    def _from_url(cls, redis: Any, given: _Given, timeout: float) -> _Link:
        """A client made from the URL in *given*; the URL itself is never a local
        (nor in a chained exception), only its box."""
        from redis.backoff import NoBackoff  # noqa: PLC0415 - an optional extra
        from redis.retry import Retry  # noqa: PLC0415

        if _scheme(given) not in _SCHEMES:
            raise ValueError(
                f"url must start with redis://, rediss:// or unix://, got {given!r}"
            )
        try:
            client = redis.Redis.from_url(
                given.value,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                decode_responses=False,
                retry=Retry(NoBackoff(), 0),
            )
        except ValueError:
            client = None  # raised below, once redis's frames (the URL) are gone
        if client is None:
            raise ValueError(f"not a usable Redis URL: {given!r}")
        assert isinstance(given.value, str)  # noqa: S101 - _scheme() checked it
        return cls(
            redis,
            client,
            shown=repr(redact_url(given.value)),
            where=_where_url(given.value),
            owned=True,
        )


class RedisTokenStore(CheckedStore):
    """A token store in Redis (>= 6.2) or Valkey, for processes on many hosts.

    Args:
        url_or_client: A ``redis://``, ``rediss://`` or ``unix://`` URL (the store
            makes and owns its client), or a ``redis.Redis`` client (used in a
            worker thread: asyncio and trio), or a ``redis.asyncio.Redis`` client
            (asyncio only). A client must not decode responses; the store never
            closes a client it was given.
        prefix: The start of every key the store writes (``<prefix>:{<key>}:...``).
        timeout: Seconds to connect and to wait for an answer (URL only: a client
            keeps its own settings). With a ``redis.asyncio`` client, a cancelled
            ``acquire`` waits up to this long for its answer, so that a lease the
            server granted is released rather than left behind.
        codec: Encrypts every record's payload (the session) before it is sent
            to Redis and decrypts it when read: a :class:`TokenCodec`, such as
            ``cryptography.fernet.Fernet(key)``, or ``MultiFernet([new, old])``
            to rotate keys. A record that does not decrypt (another key, altered)
            is refused as unreadable: never used.

    Raises:
        ModuleNotFoundError: ``redis`` is not installed (``teletracker-async[redis]``).

    Every failure to reach the server, or an error it answers, raises
    :class:`TokenStoreError` naming the server, never its password; so does a
    record larger than ``MAX_RECORD_BYTES``.
    """

    def __init__(
        self,
        url_or_client: str | redis.Redis | redis.asyncio.Redis,
        *,
        prefix: str = "teletracker",
        timeout: float = REDIS_TIMEOUT,
        codec: TokenCodec | None = None,
        _check_instance: bool = True,
    ) -> None:
        given = _Given(url_or_client)  # a URL may hold a password: keep it boxed
        del url_or_client
        check_name("prefix", prefix)
        check_ttl(timeout)
        self._codec = check_codec(codec)
        self._prefix = prefix
        self._timeout = float(timeout)
        self._check = "1" if _check_instance else "0"
        link = _Link.to(given, timeout)
        self._redis = link.redis
        self._async, self._owned = link.is_async, link.owned
        self._shown, self._where = link.shown, link.where
        client = link.client
        self._client = client
        self._scripts = {
            name: client.register_script(source) for name, source in _SCRIPTS.items()
        }

    def __repr__(self) -> str:
        # getattr: an error reporter may show a store that __init__ refused.
        shown = getattr(self, "_shown", "<not made>")
        return f"RedisTokenStore({shown}, prefix={getattr(self, '_prefix', None)!r})"

    def _keys(self, key: str) -> list[str]:
        base = f"{self._prefix}:{{{key}}}:"
        return [base + "rec", base + "lease", base + "fence"]

    # -- the protocol ------------------------------------------------------------------

    async def _load(self, key: str) -> StoredRecord | None:
        answer = await self._run("load", key, [self._check, MAX_RECORD_BYTES])
        if answer is None:
            return None
        if answer == -1:
            raise TokenStoreError(
                f"Redis token store at {self._where}: the record "
                f"{self._keys(key)[0]} is larger than {MAX_RECORD_BYTES} bytes "
                "(MAX_RECORD_BYTES): not a token record, refused; delete it to "
                "start over"
            )
        write_id, payload, spent, fence, remaining_ms, trusted = answer
        return StoredRecord(
            write_id=bytes(write_id).decode(),
            payload=bytes(payload),
            spent=bool(spent),
            trusted=bool(trusted),
            fence=int(fence),
            remaining=int(remaining_ms) / 1000,
        )

    async def _acquire(self, key: str, holder: str, ttl: float) -> int | None:
        args = [holder, max(1, round(ttl * 1000))]
        if not self._async:  # a worker thread: a cancelled caller gets its answer
            answer = await self._run("acquire", key, args)
            return None if answer is None else int(answer)
        # A redis.asyncio call cancelled after its script was sent may still run on
        # the server, granting a lease nobody would use or release: the call is
        # finished under a shield (bounded), and a lease won by a cancelled caller
        # is released before the cancellation goes on.
        answer = None
        try:
            with anyio.CancelScope(shield=True), anyio.fail_after(self._timeout):
                answer = await self._run("acquire", key, args)
        except TimeoutError:
            await self._release_quietly(key, holder)
            raise TokenStoreError(
                f"Redis token store at {self._where}: no answer to acquire within "
                f"{self._timeout:g} s"
            ) from None
        try:
            await anyio.lowlevel.checkpoint_if_cancelled()
        except anyio.get_cancelled_exc_class():
            if answer is not None:
                await self._release_quietly(key, holder)
            raise
        return None if answer is None else int(answer)

    async def _release_quietly(self, key: str, holder: str) -> None:
        with (
            anyio.CancelScope(shield=True),
            anyio.move_on_after(LEASE_RELEASE_TIMEOUT),
            contextlib.suppress(TokenStoreError),  # it runs out on its own
        ):
            await self._run("release", key, [holder])

    async def _release(self, key: str, holder: str) -> bool:
        return bool(await self._run("release", key, [holder]))

    async def _spend(self, key: str, write_id: str) -> bool:
        return bool(await self._run("spend", key, [write_id, self._check]))

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
        args = [
            box,
            write_id,
            "0" if expected is None else "1",
            expected or "",
            str(fence),
            round(lifetime * 1000),
            round(age * 1000),
        ]
        return bool(await self._run("commit", key, args))

    async def aclose(self) -> None:
        """Close the client the store made from a URL (a given client stays open)."""
        if self._owned:
            await in_thread(self._close)

    # -- talking to the server ---------------------------------------------------------

    async def _run(self, name: str, key: str, args: list[Any]) -> Any:
        keys = self._keys(key)
        if not self._async:
            return await in_thread(lambda: self._call(name, keys, args))
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                "RedisTokenStore was given a redis.asyncio client, which runs on "
                "asyncio only: under trio, give it a URL or a redis.Redis client"
            ) from None
        outcome = await self._call_async(name, keys, args)
        if isinstance(outcome, Failed):
            raise TokenStoreError(outcome.message)
        return outcome

    def _call(self, name: str, keys: list[str], args: list[Any]) -> Any:
        real = [a.data if isinstance(a, Opaque) else a for a in args]
        try:
            return self._scripts[name](keys=keys, args=real)
        except self._redis.ConnectionError:
            pass  # a pooled connection the server dropped (a restart): once more
        except self._redis.RedisError as exc:
            return self._failed(exc)
        try:
            return self._scripts[name](keys=keys, args=real)
        except self._redis.RedisError as exc:
            return self._failed(exc)

    async def _call_async(self, name: str, keys: list[str], args: list[Any]) -> Any:
        real = [a.data if isinstance(a, Opaque) else a for a in args]
        try:
            return await self._scripts[name](keys=keys, args=real)
        except self._redis.ConnectionError:
            pass  # a pooled connection the server dropped (a restart): once more
        except self._redis.RedisError as exc:
            return self._failed(exc)
        try:
            return await self._scripts[name](keys=keys, args=real)
        except self._redis.RedisError as exc:
            return self._failed(exc)

    def _failed(self, exc: Exception) -> Failed:
        text = str(exc)
        password = self._client.connection_pool.connection_kwargs.get("password")
        if password:
            text = text.replace(str(password), "***")
        return Failed(
            f"Redis token store at {self._where}: {type(exc).__name__}: {text}"
        )

    def _close(self) -> Failed | None:
        close: Callable[[], object] = self._client.close
        try:
            close()
        except self._redis.RedisError as exc:  # pragma: no cover - close does not talk
            return self._failed(exc)
        return None
