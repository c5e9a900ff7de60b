"""The client on each wire (httpx, httpx2, aiohttp): the same behaviour, over sockets.

Each test builds a client on a wire against its own FakeTeletracker, served on
127.0.0.1 (one server per worker answering as the current test's fake: a real
clock). The aiohttp wire runs on asyncio only: its trio cases are skipped, and
one test proves that trio gets a clear error. The retry rule ("repeat only what
never left, or what may be repeated") is checked against a raw TCP server that
drops connections before and after the request is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib.util
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import anyio.abc
import attrs
import httpx
import pytest
import trio

from teletracker_async import (
    APIConnectionError,
    APITimeoutError,
    Retry,
    TeletrackerBasicAuth,
    TeletrackerClient,
)
from teletracker_async.testing import FakeTeletracker
from tests.conftest import PASSWORD, USERNAME
from tests.support.switchboard import Switchboard, answering_as

pytestmark = pytest.mark.anyio

HAS_HTTPX2 = importlib.util.find_spec("httpx2") is not None
HAS_AIOHTTP = importlib.util.find_spec("httpx_aiohttp") is not None

WIRES = [
    pytest.param("httpx", id="httpx"),
    pytest.param(
        "httpx2",
        id="httpx2",
        marks=[
            pytest.mark.skipif(not HAS_HTTPX2, reason="httpx2 not installed"),
            pytest.mark.slow,
        ],
    ),
    pytest.param(
        "aiohttp",
        id="aiohttp",
        marks=pytest.mark.skipif(not HAS_AIOHTTP, reason="aiohttp extra not installed"),
    ),
]


@pytest.fixture(params=WIRES)
def wire(request: pytest.FixtureRequest, anyio_backend: str) -> str:
    """The wire under test; aiohttp's trio cases are skipped (asyncio only)."""
    name = str(request.param)
    if name == "aiohttp" and anyio_backend == "trio":
        pytest.skip("the aiohttp wire runs on asyncio only")
    return name


def on_wire(
    wire: str, base_url: str, *, basic: bool = False, **options: Any
) -> TeletrackerClient[Any]:
    """A client on *wire* for *base_url*, with *options*: a bearer session, or
    with *basic* Basic auth (no login in front of the requests)."""
    if wire == "httpx2":
        from teletracker_async import httpx2 as adapters  # noqa: PLC0415

        scheme = adapters.TeletrackerBasicAuth if basic else adapters.TeletrackerAuth
        auth = scheme(USERNAME, PASSWORD, base_url=base_url)
        return TeletrackerClient(auth=auth, **options)
    if wire == "aiohttp":
        options["wire"] = "aiohttp"
    if basic:
        basic_auth = TeletrackerBasicAuth(USERNAME, PASSWORD, base_url=base_url)
        return TeletrackerClient(auth=basic_auth, **options)
    return TeletrackerClient(USERNAME, PASSWORD, base_url=base_url, **options)


@pytest.fixture
def fake() -> FakeTeletracker:  # a real clock: this fake is served over sockets
    return FakeTeletracker(users={USERNAME: (PASSWORD, [1, 2])}, records_per_day=2)


@pytest.fixture
def served(
    fake: FakeTeletracker, _switchboard: tuple[Switchboard, str]
) -> Iterator[str]:
    """The served URL of this test's *fake*."""
    with answering_as(fake, _switchboard) as url:
        yield url


@pytest.fixture
async def client(wire: str, served: str) -> AsyncIterator[TeletrackerClient[Any]]:
    """A client on *wire* against this test's served fake, closed after the test."""
    async with on_wire(wire, served) as client:
        yield client


# -- everything works the same on the wire --------------------------------------------


async def test_logs_in_once_and_calls(
    client: TeletrackerClient[Any], fake: FakeTeletracker
) -> None:
    """A call logs in, then gets its records, on the wire."""
    records = await client.call_data("2026-01-01", "2026-01-02")
    assert len(records) == 4
    assert fake.stats.logins == 1
    assert fake.stats.data_requests == 1


# Hundreds of calls over sockets to a served fake: 0.5 to 2 s.
@pytest.mark.slow
async def test_hundreds_of_coroutines_share_one_login(
    client: TeletrackerClient[Any], fake: FakeTeletracker
) -> None:
    """300 coroutines at once through the queue: one login, every call answered."""
    answers: list[int] = []

    async def call() -> None:
        answers.append(len(await client.call_data("2026-01-01", "2026-01-01")))

    async with anyio.create_task_group() as tg:
        for _ in range(300):
            tg.start_soon(call)
    assert answers == [2] * 300
    assert fake.stats.logins == 1
    assert fake.stats.max_concurrent_logins == 1


# Hundreds of calls over sockets to a served fake: 0.5 to 2 s.
@pytest.mark.slow
async def test_expired_session_is_refreshed_once(
    client: TeletrackerClient[Any], fake: FakeTeletracker
) -> None:
    """With the bearer token expired server-side, 200 coroutines refresh it once."""
    await client.call_data("2026-01-01", "2026-01-01")
    fake.expire_sessions()
    async with anyio.create_task_group() as tg:
        for _ in range(200):
            tg.start_soon(client.call_data, "2026-01-01", "2026-01-01")
    assert fake.stats.logins == 1
    assert fake.stats.refreshes == 1


async def test_report_stream_gives_what_a_call_gives(
    client: TeletrackerClient[Any],
) -> None:
    """The streamed records of three days are those of one call over them."""
    called = await client.call_data("2026-01-01", "2026-01-03")
    async with client.stream_call_data("2026-01-01", "2026-01-03") as stream:
        streamed = [record async for record in stream]
    assert streamed == called
    assert len(streamed) == 6


async def test_account_view_logs_in_for_its_account(
    client: TeletrackerClient[Any], fake: FakeTeletracker
) -> None:
    """A view for account 2 has its own session over the same wire."""
    await client.call_data("2026-01-01", "2026-01-01")
    view = client.for_account(2)
    await view.call_data("2026-01-01", "2026-01-01")
    assert fake.stats.logins == 2
    assert view.http is client.http


async def test_429_and_503_are_retried(
    wire: str, served: str, fake: FakeTeletracker
) -> None:
    """A 429 then a 503 on the data endpoint: two waits, then the records."""
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    fake.fail_next("data", 429, headers={"Retry-After": "0"})
    fake.fail_next("data", 503)
    async with on_wire(wire, served, sleep=sleep) as client:
        records = await client.call_data("2026-01-01", "2026-01-01")
    assert len(records) == 2
    assert len(waits) == 2


async def test_cancelled_calls_leave_the_queue_balanced(
    wire: str, served: str, fake: FakeTeletracker
) -> None:
    """200 calls through 4 connections, cancelled mid-flight: every slot comes
    back, and the next call goes through."""
    fake.set_latency("data", lambda _request: 0.02)
    async with on_wire(wire, served, limits=httpx.Limits(max_connections=4)) as client:
        await client.call_data("2026-01-01", "2026-01-01")
        with anyio.move_on_after(0.1):
            async with anyio.create_task_group() as tg:
                for _ in range(200):
                    tg.start_soon(client.call_data, "2026-01-01", "2026-01-01")
        queue = client._path.link.queue
        assert queue is not None
        assert queue.slots.value == 4
        fake.set_latency("data", None)
        assert len(await client.call_data("2026-01-01", "2026-01-01")) == 2


# -- the retry rule, against a server that drops connections ------------------------


@attrs.define
class RawServer:
    """A raw HTTP/1.1 server on 127.0.0.1 that misbehaves as ``behaviour`` says:

    - ``close_at_once``: accepts, then closes before reading anything;
    - ``no_answer``: reads the whole request, then closes without answering;
    - ``half_body``: reads the request, answers half a body, then closes;
    - ``silent``: reads the request and never answers.
    """

    behaviour: str
    #: Connections accepted.
    accepted: int = 0
    #: The request line of each request read in full.
    seen: list[bytes] = attrs.field(factory=list)

    async def handle(self, stream: anyio.abc.SocketStream) -> None:
        async with stream:
            self.accepted += 1
            if self.behaviour == "close_at_once":
                return
            data = b""
            while b"\r\n\r\n" not in data:
                data += await stream.receive()
            head, _, body = data.partition(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            while len(body) < length:
                body += await stream.receive()
            self.seen.append(lines[0])
            if self.behaviour == "silent":
                await anyio.sleep_forever()
            if self.behaviour == "half_body":
                await stream.send(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b'Content-Length: 40\r\n\r\n{"success": true, "da'
                )


@contextlib.asynccontextmanager
async def raw_server(behaviour: str) -> AsyncIterator[tuple[RawServer, str]]:
    """Serve a :class:`RawServer` for the block; yield it and its base URL."""
    server = RawServer(behaviour)
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)  # noqa: S610
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, server.handle)
        try:
            yield server, f"http://127.0.0.1:{port}"
        finally:
            tg.cancel_scope.cancel()


def closed_port() -> str:
    """The base URL of a port of 127.0.0.1 nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


async def failed_call(
    wire: str, base_url: str, method: str
) -> tuple[APIConnectionError, int]:
    """*method* ``/echo`` on *base_url* with Basic auth and 3 tries: the SDK's
    error, and how many tries it made."""
    tries = 1

    async def sleep(_seconds: float) -> None:
        nonlocal tries
        tries += 1

    body = {"x": 1} if method == "POST" else None
    async with on_wire(
        wire, base_url, basic=True, sleep=sleep, retry=Retry(max_attempts=3)
    ) as client:
        with pytest.raises(APIConnectionError) as caught:
            await client.request_json(method, "/echo", json=body)
    return caught.value, tries


@pytest.mark.parametrize("method", ["POST", "GET"])
async def test_refused_connection_is_retried_for_every_method(
    wire: str, method: str
) -> None:
    """Nothing listens: the request never left, so even a POST is tried 3 times,
    and the error is a connection error, not a timeout."""
    error, tries = await failed_call(wire, closed_port(), method)
    assert tries == 3
    assert not isinstance(error, APITimeoutError)


# httpcore leaves the generator of a request's body open when writing it fails (the
# server closed first), and trio reports it when it is collected: httpcore's, not
# the SDK's (the SDK's own requests are built whole, before they are sent).
@pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <async_generator object ByteStream.__aiter__"
    ":pytest.PytestUnraisableExceptionWarning"
)
@pytest.mark.parametrize(
    ("behaviour", "method", "tries"),
    [
        ("close_at_once", "POST", 1),
        ("close_at_once", "GET", 3),
        ("no_answer", "POST", 1),
        ("no_answer", "GET", 3),
        ("half_body", "POST", 1),
        ("half_body", "GET", 3),
    ],
)
async def test_a_request_that_may_have_left_is_repeated_only_if_idempotent(
    wire: str, behaviour: str, method: str, tries: int
) -> None:
    """A connection dropped once the request may have been sent (before the
    server read it, after, or halfway through the answer): a POST is sent once,
    a GET is tried 3 times; the error is a connection error, not a timeout."""
    async with raw_server(behaviour) as (server, url):
        error, made = await failed_call(wire, url, method)
    assert made == tries
    assert server.accepted == tries
    if behaviour != "close_at_once":
        assert server.seen == [f"{method} /echo HTTP/1.1".encode()] * tries
    assert not isinstance(error, APITimeoutError)


async def test_a_calls_read_timeout_applies_on_the_wire(wire: str) -> None:
    """A server that never answers: the call's own read timeout ends the try, as
    an APITimeoutError, on every wire."""
    once = Retry(max_attempts=1)
    async with (
        raw_server("silent") as (server, url),
        on_wire(wire, url, basic=True, retry=once) as client,
    ):
        with pytest.raises(APITimeoutError):
            await client.request_json(
                "GET", "/echo", timeout=httpx.Timeout(5.0, read=0.2)
            )
    assert len(server.seen) == 1


# -- the aiohttp wire's own rules ----------------------------------------------------

needs_aiohttp = pytest.mark.skipif(
    not HAS_AIOHTTP, reason="aiohttp extra not installed"
)


@needs_aiohttp
def test_aiohttp_wire_under_trio_fails_at_first_use_naming_asyncio(served: str) -> None:
    """Built anywhere, the aiohttp wire refuses trio when it is first used, and
    says that it runs on asyncio."""
    client = on_wire("aiohttp", served)

    async def use() -> None:
        async with client:
            await client.call_data("2026-01-01", "2026-01-01")

    with pytest.raises(RuntimeError, match="asyncio only"):
        trio.run(use)


# The first loop ended with the client open: its sockets went with it, as with any
# aiohttp session left open (reported when collected, below).
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@needs_aiohttp
def test_aiohttp_wire_refuses_a_second_event_loop(served: str) -> None:
    """A client on the aiohttp wire used in a second asyncio.run is refused
    before its session (bound to the first loop) is touched."""
    clients = [on_wire("aiohttp", served)]

    async def use() -> None:
        await clients[0].call_data("2026-01-01", "2026-01-01")

    asyncio.run(use())
    with pytest.raises(RuntimeError, match="another event loop"):
        asyncio.run(use())
    clients.clear()
    gc.collect()


@needs_aiohttp
def test_aiohttp_clients_on_two_loops_share_one_session(
    served: str, fake: FakeTeletracker
) -> None:
    """One client per loop, as the SDK asks: two asyncio.run, each with its own
    aiohttp-wire client over the first one's auth, log in once."""
    first = on_wire("aiohttp", served)

    async def use(client: TeletrackerClient[Any]) -> int:
        async with client:
            return len(await client.call_data("2026-01-01", "2026-01-01"))

    assert asyncio.run(use(first)) == 2
    second = TeletrackerClient(auth=first.auth, wire="aiohttp")
    assert asyncio.run(use(second)) == 2
    assert fake.stats.logins == 1


@needs_aiohttp
@pytest.mark.parametrize(
    ("limits", "expected"),
    [
        (
            httpx.Limits(max_connections=7, keepalive_expiry=12.0),
            {"limit": 7, "limit_per_host": 7, "keepalive_timeout": 12.0},
        ),
        (
            httpx.Limits(max_connections=None, keepalive_expiry=None),
            {"limit": 0, "limit_per_host": 0, "keepalive_timeout": None},
        ),
        (
            httpx.Limits(max_connections=3, max_keepalive_connections=0),
            {"limit": 3, "limit_per_host": 3, "force_close": True},
        ),
    ],
)
def test_aiohttp_connector_is_sized_from_limits(
    limits: httpx.Limits, expected: dict[str, object]
) -> None:
    """max_connections is the connector's limit (per host too), keepalive_expiry
    its keep-alive timeout, and no keep-alive at all is force_close."""
    from teletracker_async._aiohttp_wire import connector_options  # noqa: PLC0415

    assert connector_options(limits) == expected


@needs_aiohttp
async def test_aiohttp_session_is_made_on_first_use_and_closed_with_the_client(
    anyio_backend: str, served: str
) -> None:
    """No aiohttp session until the first request; then one, sized from the
    client's limits, keeping no cookie; closed by the client's aclose."""
    if anyio_backend == "trio":
        pytest.skip("the aiohttp wire runs on asyncio only")
    import aiohttp  # noqa: PLC0415

    from teletracker_async._aiohttp_wire import AiohttpWire  # noqa: PLC0415

    client = on_wire("aiohttp", served, limits=httpx.Limits(max_connections=5))
    transport = client.http._transport
    assert isinstance(transport, AiohttpWire)
    before = transport._session
    assert before is None
    await client.call_data("2026-01-01", "2026-01-01")
    session = transport._session
    assert session is not None
    assert isinstance(session.cookie_jar, aiohttp.DummyCookieJar)
    connector = session.connector
    assert connector is not None
    assert (connector.limit, connector.limit_per_host) == (5, 5)
    await client.aclose()
    assert session.closed


def test_wire_must_be_one_of_the_choices() -> None:
    """An unknown wire is a ValueError naming the choices."""
    with pytest.raises(ValueError, match="'httpx', 'aiohttp'"):
        TeletrackerClient(USERNAME, PASSWORD, wire="curl")  # type: ignore[call-overload]


@pytest.mark.parametrize(
    "given",
    [
        {"transport": httpx.MockTransport(lambda _r: httpx.Response(200))},
        {"http_client": httpx.AsyncClient()},
    ],
    ids=["transport", "http_client"],
)
def test_aiohttp_wire_refuses_a_transport_or_client(given: dict[str, Any]) -> None:
    """wire='aiohttp' builds its own transport: one given too is a TypeError."""
    name = next(iter(given))
    with pytest.raises(TypeError, match=f"wire='aiohttp'.*{name}"):
        TeletrackerClient(USERNAME, PASSWORD, wire="aiohttp", **given)


def test_aiohttp_wire_without_the_extra_names_the_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without httpx-aiohttp, wire='aiohttp' is an ImportError naming the extra."""
    monkeypatch.setitem(sys.modules, "httpx_aiohttp", None)
    monkeypatch.delitem(sys.modules, "teletracker_async._aiohttp_wire", raising=False)
    with pytest.raises(
        ImportError, match=r"pip install 'teletracker-async\[aiohttp\]'"
    ):
        TeletrackerClient(USERNAME, PASSWORD, wire="aiohttp")


@pytest.mark.parametrize(
    "option",
    [
        {"proxy": "http://127.0.0.1:3128"},
        {"mounts": {"all://": httpx.AsyncHTTPTransport()}},
        {"http2": True},
    ],
    ids=["proxy", "mounts", "http2"],
)
def test_aiohttp_wire_refuses_options_it_cannot_carry(option: dict[str, Any]) -> None:
    """A proxy, mounts or HTTP/2 would route requests around aiohttp (or be
    dropped): with wire='aiohttp' each is a TypeError naming it."""
    name = next(iter(option))
    with pytest.raises(TypeError, match=f"wire='aiohttp'.*{name}"):
        TeletrackerClient(USERNAME, PASSWORD, wire="aiohttp", **option)


@pytest.mark.parametrize("trust_env", [True, False])
def test_aiohttp_wire_session_trusts_the_environment_as_asked(trust_env: bool) -> None:
    """trust_env= (True by default, as on httpx) reaches aiohttp's session, so the
    environment's proxies and .netrc apply on this wire as on httpx's."""
    wire = importlib.import_module("teletracker_async._aiohttp_wire").AiohttpWire(
        limits=httpx.Limits(max_connections=4), trust_env=trust_env
    )

    async def session_trusts() -> bool:
        session = wire.get_client()
        try:
            return bool(session.trust_env)
        finally:
            await session.close()

    assert asyncio.run(session_trusts()) is trust_env
