"""The client built on httpx splits a large connection limit into small httpcore pools.

Each request goes to a pool with a free connection and holds it until its answer
closes; no pool ever holds more than its share, all of them together no more than
``max_connections``, and whatever httpx hands its own transport reaches each pool.
Routing is checked on pools played by the fake (in-process, each a pool of its own
size), connections and keep-alive on the fake served on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import random
import ssl
from collections.abc import AsyncIterator, Iterator, MutableMapping
from typing import Any

import anyio
import httpx
import pytest

from teletracker_async import TeletrackerAuth, TeletrackerClient, TeletrackerError
from teletracker_async._call.pools import (
    Shard,
    ShardedTransport,
    shard_limits,
)
from teletracker_async._call.pools import (
    _sharded as split_transport,
)
from teletracker_async._config import POOL_SHARD_SIZE
from teletracker_async.testing import FakeClock, FakeTeletracker
from teletracker_async.testing._doors import serving
from tests.conftest import BASE_URL, PASSWORD, USERNAME

pytestmark = pytest.mark.anyio

DAY = {"start_date": "2026-01-01", "end_date": "2026-01-01"}


def _auth(clock: FakeClock | None = None, base_url: str = BASE_URL) -> TeletrackerAuth:
    if clock is None:
        return TeletrackerAuth(USERNAME, PASSWORD, base_url=base_url)
    return TeletrackerAuth(USERNAME, PASSWORD, base_url=base_url, clock=clock)


def _pool_of(shard: Shard) -> Any:
    """The httpcore pool of *shard*'s ``httpx.AsyncHTTPTransport``."""
    transport: Any = shard.transport
    return transport._pool


def _mounted(client: TeletrackerClient) -> Any:
    """The transport *client*'s httpx client sends requests to the API through."""
    http: Any = client.http
    return http._transport_for_url(httpx.URL(BASE_URL))


def _pools(client: TeletrackerClient) -> list[Any]:
    """The httpcore pools of *client*'s own transport."""
    transport = client.http._transport
    assert isinstance(transport, ShardedTransport)
    return [_pool_of(shard) for shard in transport.shards]


# -- how a limit is split ----------------------------------------------------------------


@pytest.mark.parametrize("total", [POOL_SHARD_SIZE + 1, 20, 100, 199, 200, 1000])
def test_a_limit_is_split_evenly_into_pools_of_at_most_the_shard_size(
    total: int,
) -> None:
    """The pools' connections add up to the limit, none above the shard size, and
    no two differ by more than one; so does the keep-alive allowance."""
    keep = total // 3
    parts = shard_limits(
        httpx.Limits(
            max_connections=total, max_keepalive_connections=keep, keepalive_expiry=7.0
        ),
        POOL_SHARD_SIZE,
    )
    sizes = [part.max_connections or 0 for part in parts]
    kept = [part.max_keepalive_connections or 0 for part in parts]
    assert sum(sizes) == total
    assert max(sizes) <= POOL_SHARD_SIZE
    assert max(sizes) - min(sizes) <= 1
    assert sum(kept) == keep
    assert max(kept) - min(kept) <= 1
    assert all(k <= s for k, s in zip(kept, sizes, strict=True))
    assert {part.keepalive_expiry for part in parts} == {7.0}


def test_no_limit_or_a_small_one_stays_one_pool() -> None:
    """No limit cannot be split; a limit within the shard size is one pool already."""
    for limits in (
        httpx.Limits(max_connections=None),
        httpx.Limits(max_connections=POOL_SHARD_SIZE),
    ):
        assert shard_limits(limits, POOL_SHARD_SIZE) == [limits]


async def test_with_200_connections_no_httpcore_pool_is_larger_than_the_shard_size() -> (
    None
):
    """The structure behind the throughput: 200 connections are many small pools."""
    async with TeletrackerClient(
        auth=_auth(), limits=httpx.Limits(max_connections=200)
    ) as client:
        pools = _pools(client)
        assert len(pools) > 1
        assert all(pool._max_connections <= POOL_SHARD_SIZE for pool in pools)
        assert sum(pool._max_connections for pool in pools) == 200


async def test_a_limit_within_one_pool_keeps_httpx_own_transport() -> None:
    """At most the shard size, the client's transport is the one httpx builds."""
    async with TeletrackerClient(
        auth=_auth(), limits=httpx.Limits(max_connections=POOL_SHARD_SIZE)
    ) as client:
        transport = client.http._transport
        assert type(transport) is httpx.AsyncHTTPTransport


# -- what httpx hands its transport reaches every pool ---------------------------------


async def test_verify_false_and_http1_reach_every_pool() -> None:
    """``verify=False`` (no certificate check) and ``http1`` reach each pool."""
    async with TeletrackerClient(
        auth=_auth(), limits=httpx.Limits(max_connections=100), verify=False
    ) as client:
        for pool in _pools(client):
            assert pool._ssl_context.verify_mode == ssl.CERT_NONE
            assert pool._http1 is True
            assert pool._http2 is False


async def test_the_pools_share_one_ssl_context_with_certificate_checks() -> None:
    """By default every pool checks certificates, with one context for all."""
    async with TeletrackerClient(
        auth=_auth(), limits=httpx.Limits(max_connections=100)
    ) as client:
        contexts = {id(pool._ssl_context) for pool in _pools(client)}
        assert len(contexts) == 1
        assert _pools(client)[0]._ssl_context.verify_mode == ssl.CERT_REQUIRED


async def test_a_proxy_reaches_every_pool() -> None:
    """``proxy=`` makes each pool a proxy pool to that proxy."""
    async with TeletrackerClient(
        auth=_auth(),
        limits=httpx.Limits(max_connections=100),
        proxy="http://proxy.test:3128",
    ) as client:
        mounted = _mounted(client)
        assert isinstance(mounted, ShardedTransport)
        pools = [_pool_of(shard) for shard in mounted.shards]
        assert all(type(pool).__name__ == "AsyncHTTPProxy" for pool in pools)
        assert {pool._proxy_url.host for pool in pools} == {b"proxy.test"}
        assert sum(pool._max_connections for pool in pools) == 100


async def test_a_proxy_from_the_environment_reaches_every_pool(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``HTTPS_PROXY`` is honoured as by httpx's own client, pool by pool."""
    monkeypatch.setenv("HTTPS_PROXY", "http://env-proxy.test:3128")
    async with TeletrackerClient(
        auth=_auth(), limits=httpx.Limits(max_connections=100)
    ) as client:
        mounted = _mounted(client)
        assert isinstance(mounted, ShardedTransport)
        hosts = {_pool_of(shard)._proxy_url.host for shard in mounted.shards}
        assert hosts == {b"env-proxy.test"}


async def test_trust_env_false_ignores_proxies_of_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``trust_env=False`` keeps httpx's meaning: no proxy from ``HTTPS_PROXY``."""
    monkeypatch.setenv("HTTPS_PROXY", "http://env-proxy.test:3128")
    async with TeletrackerClient(
        auth=_auth(), limits=httpx.Limits(max_connections=100), trust_env=False
    ) as client:
        assert _mounted(client) is client.http._transport
        assert {type(pool).__name__ for pool in _pools(client)} == {
            "AsyncConnectionPool"
        }


async def test_the_keep_alive_allowance_is_split_over_the_pools() -> None:
    """10 connections kept alive of 100: the pools together keep 10."""
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=10)
    async with TeletrackerClient(auth=_auth(), limits=limits) as client:
        pools = _pools(client)
        assert sum(pool._max_keepalive_connections for pool in pools) == 10
        assert {pool._keepalive_expiry for pool in pools} == {limits.keepalive_expiry}


def test_http2_keeps_one_pool() -> None:
    """HTTP/2 multiplexes requests over a few connections: one pool, built with
    the options httpx gives it, untouched."""
    built: list[dict[str, Any]] = []

    def make(**options: Any) -> httpx.AsyncBaseTransport:
        built.append(options)
        return httpx.MockTransport(lambda _: httpx.Response(200))

    limits = httpx.Limits(max_connections=100)
    split_transport(make, {"http2": True, "http1": False, "limits": limits})
    assert built == [{"http2": True, "http1": False, "limits": limits}]


async def test_mounts_are_used_as_given(
    fake: FakeTeletracker, clock: FakeClock
) -> None:
    """A transport mounted for the API's URL answers, untouched by the split."""
    mounted = fake.transport()
    async with TeletrackerClient(
        auth=_auth(clock),
        limits=httpx.Limits(max_connections=100),
        mounts={BASE_URL: mounted},
    ) as client:
        assert _mounted(client) is mounted
        body = await client.request_json("GET", "/reports/call-data", params=DAY)
        assert body["success"] is True


# -- routing: pools played by the fake --------------------------------------------------


class Pool:
    """An in-process pool of *limit* 'connections' that records its use."""

    def __init__(self, fake: FakeTeletracker, limit: int) -> None:
        self.inner = fake.transport(max_connections=limit)
        self.limit = limit
        #: Requests between entering the pool and their body closing.
        self.in_flight = 0
        self.most = 0
        self.closed = False


def _recording(pool: Pool, totals: dict[str, int]) -> httpx.AsyncBaseTransport:
    class Body(httpx.AsyncByteStream):
        def __init__(self, stream: Any) -> None:
            self.stream = stream
            self.open = True

        async def __aiter__(self) -> AsyncIterator[bytes]:
            async for chunk in self.stream:
                yield chunk

        async def aclose(self) -> None:
            if self.open:
                self.open = False
                pool.in_flight -= 1
                totals["in_flight"] -= 1
            await self.stream.aclose()

    class Recording(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            pool.in_flight += 1
            pool.most = max(pool.most, pool.in_flight)
            totals["in_flight"] += 1
            totals["most"] = max(totals["most"], totals["in_flight"])
            try:
                await anyio.sleep(random.random() / 500)  # a little network time
                response = await pool.inner.handle_async_request(request)
            except BaseException:
                pool.in_flight -= 1
                totals["in_flight"] -= 1
                raise
            response.stream = Body(response.stream)
            return response

        async def aclose(self) -> None:
            pool.closed = True

    return Recording()


def _sharded(
    fake: FakeTeletracker, connections: int
) -> tuple[ShardedTransport, list[Pool], dict[str, int]]:
    totals = {"in_flight": 0, "most": 0}
    parts = shard_limits(httpx.Limits(max_connections=connections), POOL_SHARD_SIZE)
    pools = [Pool(fake, part.max_connections or 0) for part in parts]
    transport = ShardedTransport(
        [Shard(_recording(pool, totals), pool.limit) for pool in pools]
    )
    return transport, pools, totals


async def test_hundreds_of_coroutines_never_overfill_a_pool_or_the_limit(
    fake: FakeTeletracker, clock: FakeClock
) -> None:
    """400 coroutines through 100 connections: no pool ever holds more requests than
    its connections, all pools together never more than 100, and every pool is used."""
    transport, pools, totals = _sharded(fake, 100)
    async with TeletrackerClient(
        auth=_auth(clock),
        transport=transport,
        limits=httpx.Limits(max_connections=100),
    ) as client:
        await client.session()

        async def one() -> None:
            await client.request_json("GET", "/reports/call-data", params=DAY)

        async with anyio.create_task_group() as tg:
            for _ in range(400):
                tg.start_soon(one)
    assert fake.stats.data_requests == 400
    assert all(pool.most <= pool.limit for pool in pools)
    assert all(pool.most > 0 for pool in pools)
    assert totals["most"] <= 100
    assert all(shard.busy == 0 for shard in transport.shards)
    assert all(pool.closed for pool in pools)  # aclose() closed every pool


async def test_a_light_load_stays_in_the_first_pool(
    fake: FakeTeletracker, clock: FakeClock
) -> None:
    """One request at a time reuses the first pool (its kept-alive connection)."""
    transport, pools, _ = _sharded(fake, 100)
    async with TeletrackerClient(
        auth=_auth(clock),
        transport=transport,
        limits=httpx.Limits(max_connections=100),
    ) as client:
        for _ in range(20):
            await client.request_json("GET", "/reports/call-data", params=DAY)
    assert pools[0].most == 1
    assert all(pool.most == 0 for pool in pools[1:])


async def test_cancelled_requests_free_their_pool_slots(
    fake: FakeTeletracker, clock: FakeClock
) -> None:
    """A storm of 300 coroutines, many cancelled mid-request: afterwards every
    pool's every slot is free, and the client still serves its full width."""
    transport, pools, totals = _sharded(fake, 100)
    async with TeletrackerClient(
        auth=_auth(clock),
        transport=transport,
        limits=httpx.Limits(max_connections=100),
    ) as client:
        await client.session()

        async def one() -> None:
            with anyio.move_on_after(random.random() / 100):
                with contextlib.suppress(TeletrackerError):
                    await client.request_json("GET", "/reports/call-data", params=DAY)

        async with anyio.create_task_group() as tg:
            for _ in range(300):
                tg.start_soon(one)
        assert all(shard.busy == 0 for shard in transport.shards)
        assert totals["in_flight"] == 0
        assert all(pool.most <= pool.limit for pool in pools)

        async def full() -> None:
            await client.request_json("GET", "/reports/call-data", params=DAY)

        async with anyio.create_task_group() as tg:  # no slot lost: 200 more go
            for _ in range(200):
                tg.start_soon(full)
    assert all(shard.busy == 0 for shard in transport.shards)


async def test_a_stream_closed_early_frees_its_slots(
    fake: FakeTeletracker, clock: FakeClock
) -> None:
    """Leaving ``stream_call_data`` after one record cancels its requests in flight;
    their pool slots come back."""
    transport, _, totals = _sharded(fake, 40)
    async with TeletrackerClient(
        auth=_auth(clock),
        transport=transport,
        limits=httpx.Limits(max_connections=40),
    ) as client:
        for _ in range(5):
            async with client.stream_call_data(
                "2026-01-01", "2026-03-31", concurrency=40
            ) as stream:
                async for _record in stream:
                    break
        assert all(shard.busy == 0 for shard in transport.shards)
        assert totals["in_flight"] == 0


async def test_a_failed_send_frees_its_slot() -> None:
    """A pool that raises gives its slot back: the error is the caller's, the
    count is not."""

    class Failing(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            raise httpx.ConnectError("refused", request=request)

    transport = ShardedTransport([Shard(Failing(), 2), Shard(Failing(), 2)])
    request = httpx.Request("GET", BASE_URL)
    for _ in range(10):
        with pytest.raises(httpx.ConnectError):
            await transport.handle_async_request(request)
    assert [shard.busy for shard in transport.shards] == [0, 0]


async def test_when_every_pool_is_full_the_least_busy_one_queues() -> None:
    """A request past the client's queue (a login) still goes somewhere: the pool
    with the most room, where it waits as in one pool; its slot, once freed, is
    not counted twice."""

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=httpx.ByteStream(b"{}"))

    shards = [
        Shard(httpx.MockTransport(answer), 2),
        Shard(httpx.MockTransport(answer), 3),
    ]
    transport = ShardedTransport(shards)
    request = httpx.Request("GET", BASE_URL)
    held = [await transport.handle_async_request(request) for _ in range(5)]
    assert [shard.busy for shard in shards] == [2, 3]
    extra = await transport.handle_async_request(request)
    assert [shard.busy for shard in shards] == [3, 3]
    await extra.aclose()
    for response in held:
        await response.aclose()
    assert [shard.busy for shard in shards] == [0, 0]
    again = [await transport.handle_async_request(request) for _ in range(5)]
    assert [shard.busy for shard in shards] == [2, 3]  # five slots, not six
    for response in again:
        await response.aclose()


def test_a_sharded_transport_needs_a_pool() -> None:
    """No pool at all is a clear error, not a transport that fails later."""
    with pytest.raises(ValueError, match="at least one pool"):
        ShardedTransport([])


# -- real connections: the fake served on 127.0.0.1 -------------------------------------


class Ports:
    """The fake, served, and the client ports (connections) it saw."""

    def __init__(self, url: str, fake: FakeTeletracker, ports: set[int]) -> None:
        self.url = url
        self.fake = fake
        self.ports = ports


@pytest.fixture(scope="module")
def served_fake() -> Iterator[Ports]:
    fake = FakeTeletracker(users={USERNAME: (PASSWORD, [1, 2])}, records_per_day=2)
    ports: set[int] = set()

    async def app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope.get("client"):
            ports.add(scope["client"][1])
        await fake.asgi(scope, receive, send)

    with serving(app) as url:
        yield Ports(url, fake, ports)


async def test_connections_are_kept_alive_and_never_exceed_the_limit(
    served_fake: Ports,
) -> None:
    """Two bursts of 100 coroutines over 40 connections in 3 pools: at most 40
    connections are ever opened (each reused), and every pool is emptied on close."""
    served_fake.ports.clear()
    limits = httpx.Limits(max_connections=40, max_keepalive_connections=40)
    async with TeletrackerClient(
        auth=_auth(base_url=served_fake.url), limits=limits
    ) as client:
        pools = _pools(client)
        await client.session()

        async def one() -> None:
            await client.request_json("GET", "/reports/call-data", params=DAY)

        for _ in range(2):
            async with anyio.create_task_group() as tg:
                for _ in range(100):
                    tg.start_soon(one)
        opened = len(served_fake.ports)
        for _ in range(10):  # one at a time: the first pool's connection, kept alive
            await client.request_json("GET", "/reports/call-data", params=DAY)
        assert len(served_fake.ports) == opened
        assert any(pool.connections for pool in pools)
    assert 1 < opened <= 40
    assert all(pool.connections == [] for pool in pools)


async def test_after_a_burst_a_light_load_uses_pools_that_keep_connections(
    fake: FakeTeletracker, clock: FakeClock
) -> None:
    """With fewer kept-alive connections than connections, some pools keep none: a
    burst frees those last, yet a light load after it goes to the pools that keep
    their connection (one pool would reuse an idle kept connection too)."""
    totals = {"in_flight": 0, "most": 0}
    limits = httpx.Limits(max_connections=10, max_keepalive_connections=2)
    parts = shard_limits(limits, POOL_SHARD_SIZE)
    pools = [Pool(fake, part.max_connections or 0) for part in parts]
    keeps = [part.max_keepalive_connections != 0 for part in parts]
    transport = ShardedTransport(
        [
            Shard(_recording(pool, totals), pool.limit, keeps=keep)
            for pool, keep in zip(pools, keeps, strict=True)
        ]
    )
    async with TeletrackerClient(
        auth=_auth(clock), transport=transport, limits=limits
    ) as client:
        await client.session()

        async def one() -> None:
            await client.request_json("GET", "/reports/call-data", params=DAY)

        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(one)
        used_by_burst = [pool.most for pool in pools]
        for pool in pools:
            pool.most = 0
        for _ in range(20):
            await one()
    assert all(used_by_burst)
    assert sum(keeps) == 2
    light = list(zip(pools, keeps, strict=True))
    assert all(pool.most == 0 for pool, keep in light if not keep)
    assert any(pool.most == 1 for pool, keep in light if keep)


async def test_the_client_tells_its_pools_which_keep_connections() -> None:
    """The client's own pools know whether they keep a connection alive."""
    limits = httpx.Limits(max_connections=10, max_keepalive_connections=3)
    async with TeletrackerClient(auth=_auth(), limits=limits) as client:
        transport = client.http._transport
        assert isinstance(transport, ShardedTransport)
        assert [shard.keeps for shard in transport.shards] == [True] * 3 + [False] * 7
