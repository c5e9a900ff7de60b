"""Several small httpcore pools in place of one large one, on the httpx stack.

httpcore 1.0's ``AsyncConnectionPool`` scans every connection for each request it
assigns (``len([c.is_idle() ...])`` per request, and a ``poll()`` probe of each idle
socket on each pass): its cost per request grows with its size, so 100 connections
served fewer requests per second than 8 (``benchmarks/bench_loopback.py``). The
client the SDK builds on httpx therefore holds ``ceil(max_connections /
POOL_SHARD_SIZE)`` pools (``httpx.AsyncHTTPTransport`` instances, each built exactly
as ``AsyncClient`` builds its own, so ``verify=``, ``cert=``, ``http1=``,
``trust_env=`` and proxies reach every one) and sends each request to a pool with a
free connection: the one freed last. The FIFO queue in front
(``_call/queue.py``) admits at most ``max_connections`` requests, so an admitted
request always finds one: no pool ever queues.

HTTP/2 multiplexes requests over a few connections, and a limit of at most
``POOL_SHARD_SIZE`` is one pool already: both keep the single pool httpx builds.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Any

import httpx

from teletracker_async._config import POOL_SHARD_SIZE
from teletracker_async._http import HTTPX, Stack

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["Shard", "ShardedTransport", "client_class", "shard_limits"]


def shard_limits(limits: httpx.Limits, size: int) -> list[httpx.Limits]:
    """*limits* split into pools of at most *size* connections, as evenly as can be.

    The keep-alive allowance is split the same way, its remainder to the first
    pools (the ones a light load uses). No limit, or one within *size*: one pool.
    """
    total = limits.max_connections
    if total is None or total <= size:
        return [limits]
    count = -(-total // size)
    keep = limits.max_keepalive_connections
    parts = []
    for index in range(count):
        connections = total // count + (index < total % count)
        kept = None
        if keep is not None:
            kept = min(connections, keep // count + (index < keep % count))
        parts.append(
            httpx.Limits(
                max_connections=connections,
                max_keepalive_connections=kept,
                keepalive_expiry=limits.keepalive_expiry,
            )
        )
    return parts


class Shard:
    """One pool of a :class:`ShardedTransport` and its requests in flight."""

    __slots__ = ("busy", "keeps", "limit", "slots", "transport")

    def __init__(
        self, transport: httpx.AsyncBaseTransport, limit: int, *, keeps: bool = True
    ) -> None:
        self.transport = transport
        #: The pool's ``max_connections``.
        self.limit = limit
        #: Whether the pool keeps a connection alive (``max_keepalive_connections``).
        self.keeps = keeps
        #: Requests sent to the pool whose answers are not closed yet.
        self.busy = 0
        #: The free slots this pool goes back to (set by the transport): the pools
        #: that keep connections share one stack, those that keep none another.
        self.slots: list[Shard] = []

    def free(self) -> None:
        """One answer closed (or one request failed): its connection is free."""
        self.busy -= 1
        if self.busy < self.limit:
            self.slots.append(self)


class ShardedTransport(httpx.AsyncBaseTransport):
    """Sends each request to a pool with a free connection: the one freed last.

    Free connections are a stack, one entry per free slot (the first pools on top
    to begin with), so a request goes where a connection went idle last: kept
    alive, warm, and a light load stays on a few connections. Pools that keep no
    connection alive (a keep-alive allowance below the limit) have a stack of
    their own, used only when the others are busy: after a burst, a light load
    goes back to connections that were kept. A request counts
    against its pool from the send until its answer's stream is closed (or the
    send fails or is cancelled): the span for which httpcore holds the connection.
    When every pool is full (a login sent past the client's queue) the least busy
    one takes the request and queues it, as one pool would.
    """

    def __init__(self, shards: Sequence[Shard]) -> None:
        if not shards:
            raise ValueError("a ShardedTransport needs at least one pool")
        self.shards = tuple(shards)
        self._kept: list[Shard] = []
        self._unkept: list[Shard] = []
        for shard in reversed(self.shards):
            shard.slots = self._kept if shard.keeps else self._unkept
            shard.slots.extend([shard] * shard.limit)

    def _pick(self) -> Shard:
        if self._kept:
            return self._kept.pop()
        if self._unkept:
            return self._unkept.pop()
        return min(self.shards, key=lambda shard: shard.busy / max(shard.limit, 1))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send *request* through a pool with a free connection."""
        shard = self._pick()
        shard.busy += 1
        try:
            response = await shard.transport.handle_async_request(request)
        except BaseException:
            shard.free()
            raise
        response.stream = _Freeing(response.stream, shard)
        return response

    async def __aenter__(self) -> Self:
        for shard in self.shards:
            await shard.transport.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every pool (each one even when another fails to close)."""
        await _close(self.shards)


async def _close(shards: Sequence[Shard]) -> None:
    if shards:
        try:
            await shards[0].transport.aclose()
        finally:
            await _close(shards[1:])


class _Freeing(httpx.AsyncByteStream):
    """An answer's body that frees its pool's connection count when closed."""

    __slots__ = ("shard", "stream")

    def __init__(self, stream: Any, shard: Shard) -> None:
        self.stream = stream
        self.shard: Shard | None = shard

    def __aiter__(self) -> AsyncIterator[bytes]:
        iterator: AsyncIterator[bytes] = self.stream.__aiter__()
        return iterator

    async def aclose(self) -> None:
        try:
            await self.stream.aclose()
        finally:
            shard, self.shard = self.shard, None
            if shard is not None:
                shard.free()


def _sharded(
    make: Callable[..., httpx.AsyncBaseTransport], options: dict[str, Any]
) -> httpx.AsyncBaseTransport:
    """The transport ``make(**options)`` builds, split into pools when it is large."""
    limits = options.get("limits")
    if options.get("http2") or not isinstance(limits, httpx.Limits):
        return make(**options)
    parts = shard_limits(limits, POOL_SHARD_SIZE)
    if len(parts) == 1:
        return make(**options)
    # One SSL context for every pool, as one pool's connections share one: built
    # as each pool would build it (loading the CA bundle once, not once a pool).
    shared = {
        **options,
        "verify": httpx.create_ssl_context(
            verify=options.get("verify", True),
            cert=options.get("cert"),
            trust_env=options.get("trust_env", True),
        ),
        "cert": None,
    }
    return ShardedTransport(
        [
            Shard(
                make(**{**shared, "limits": part}),
                part.max_connections or 0,
                keeps=part.max_keepalive_connections != 0,
            )
            for part in parts
        ]
    )


@functools.cache
def client_class(stack: Stack) -> type[Any]:
    """The ``AsyncClient`` class the SDK builds for itself on *stack*.

    On httpx, its default transport and each proxy's are split into pools of at
    most ``POOL_SHARD_SIZE`` connections; httpx2's pool has no cost growing with
    its size, so it keeps one. A ``transport=`` or ``mounts=`` given is used as it is.
    """
    base: type[Any] = stack.AsyncClient
    if stack is not HTTPX:
        return base

    class AsyncClient(base):  # type: ignore[misc]
        def _init_transport(self, **options: Any) -> httpx.AsyncBaseTransport:
            given: httpx.AsyncBaseTransport | None = options.get("transport")
            if given is not None:
                return given
            return _sharded(super()._init_transport, options)

        def _init_proxy_transport(
            self, proxy: httpx.Proxy, **options: Any
        ) -> httpx.AsyncBaseTransport:
            make = functools.partial(super()._init_proxy_transport, proxy)
            return _sharded(make, options)

    AsyncClient.__qualname__ = AsyncClient.__name__ = "AsyncClient"
    AsyncClient.__module__ = base.__module__
    return AsyncClient
