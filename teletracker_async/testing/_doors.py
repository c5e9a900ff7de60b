"""The doors to a fake: an in-process transport (httpx or httpx2), an ASGI app, loopback
serving.

Each door turns what it receives into a :class:`FakeRequest`, awaits a
:data:`Handler` and turns the :class:`FakeResponse` back. None of them knows a rule
of the API; a :class:`Dropped` from the handler becomes a dropped connection.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import anyio

from teletracker_async.testing._wire import Dropped, FakeRequest, Handler

if TYPE_CHECKING:
    import uvicorn

__all__ = [
    "ASGIApp",
    "InProcessTransport",
    "asgi_server",
    "bind_socket",
    "in_process_transport",
    "serve_asgi",
    "serving",
    "socket_url",
]

ASGIApp = Callable[
    [
        MutableMapping[str, Any],
        Callable[[], Awaitable[MutableMapping[str, Any]]],
        Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ],
    Awaitable[None],
]


# -- in process -----------------------------------------------------------------------


class _PooledBody:
    """A response body that holds its 'connection' until it is closed."""

    def __init__(self, body: bytes, release: Callable[[], None]) -> None:
        self._body = body
        self._release: Callable[[], None] | None = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self._body

    async def aclose(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()


class InProcessTransport:
    """A transport that hands each request to *handler*, in-process.

    Written once for both stacks: :func:`in_process_transport` makes it an httpx or
    an httpx2 ``AsyncBaseTransport``. With *max_connections* it behaves like a pool
    of that size: a request waits for a free 'connection' and holds it until its
    answer's body is read or closed.
    """

    _http: Any  # the stack's module

    def __init__(self, handler: Handler, max_connections: int | None = None) -> None:
        self._handler = handler
        self._pool = (
            None if max_connections is None else anyio.Semaphore(max_connections)
        )

    async def handle_async_request(self, request: Any) -> Any:
        # Iterate rather than aread(): aread() would make a one-shot stream replayable,
        # which a real connection does not.
        body = b"".join([chunk async for chunk in request.stream])
        fake_request = FakeRequest(
            method=request.method,
            path=request.url.path,
            query=dict(request.url.params),
            headers={k.decode().lower(): v.decode() for k, v in request.headers.raw},
            body=body,
        )
        pool = self._pool
        if pool is not None:
            await pool.acquire()
        try:
            answer = await self._handler(fake_request)
        except BaseException as exc:
            if pool is not None:
                pool.release()
            if isinstance(exc, Dropped):
                raise self._http.RemoteProtocolError(
                    "Server disconnected without sending a response.", request=request
                ) from None
            raise
        headers = {**answer.headers, "content-length": str(len(answer.body))}
        # stream=, not content=: like a real connection, nothing is read up front,
        # and the connection is held until the body is read or closed.
        stream = (
            self._http.ByteStream(answer.body)
            if pool is None
            else _pooled_body(self._http)(answer.body, pool.release)
        )
        return self._http.Response(
            answer.status, headers=headers, stream=stream, request=request
        )


@functools.cache
def _pooled_body(module: Any) -> type[_PooledBody]:
    return type("PooledBody", (_PooledBody, module.AsyncByteStream), {})


@functools.cache
def _transport_class(module: Any) -> type[InProcessTransport]:
    return type(
        "InProcessTransport",
        (InProcessTransport, module.AsyncBaseTransport),
        {"_http": module},
    )


def in_process_transport(
    handler: Handler, max_connections: int | None, stack: str
) -> Any:
    """An in-process transport of *stack* (``"httpx"`` or ``"httpx2"``)."""
    if stack not in ("httpx", "httpx2"):
        raise ValueError(f"stack must be 'httpx' or 'httpx2', not {stack!r}")
    module = importlib.import_module(stack)
    return _transport_class(module)(handler, max_connections)


# -- ASGI -------------------------------------------------------------------------------


async def serve_asgi(
    handler: Handler,
    scope: MutableMapping[str, Any],
    receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
    send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
) -> None:
    """Answer one ASGI connection with *handler*.

    A dropped connection is played by announcing a body and never sending it, which
    the server turns into a closed connection.
    """
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] != "http":  # pragma: no cover - websockets are not served
        return
    request = await _read_request(scope, receive)
    try:
        answer = await handler(request)
    except Dropped:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", b"1")],
            }
        )
        return  # the server closes a connection whose body came up short
    await send(
        {
            "type": "http.response.start",
            "status": answer.status,
            "headers": [
                (k.encode("latin-1"), v.encode("latin-1"))
                for k, v in answer.headers.items()
            ]
            # A length, not chunks: one write for the body, no trailing
            # zero-chunk write for Nagle and delayed ACKs to stall (44 ms).
            + [(b"content-length", str(len(answer.body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": answer.body})


async def _lifespan(
    receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
    send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
) -> None:
    """Acknowledge the server's start and stop: the fake has nothing to set up."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        else:
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _read_request(
    scope: MutableMapping[str, Any],
    receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
) -> FakeRequest:
    """The whole request of one ASGI connection, body included."""
    chunks: list[bytes] = []
    more = True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return FakeRequest(
        method=scope["method"],
        path=scope["path"],
        query=dict(
            parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
        ),
        headers={
            k.decode("latin-1").lower(): v.decode("latin-1")
            for k, v in scope["headers"]
        },
        body=b"".join(chunks),
    )


def asgi_server(app: ASGIApp, **options: object) -> uvicorn.Server:
    """A ``uvicorn.Server`` for *app* (needs the ``cli`` extra)."""
    try:
        import uvicorn  # noqa: PLC0415
    except ImportError:
        raise RuntimeError(
            "serving the fake needs uvicorn: pip install 'teletracker-async[cli]'"
        ) from None
    settings: dict[str, Any] = {
        "log_level": "warning",
        "access_log": False,
        "lifespan": "on",
        "interface": "asgi3",
        "timeout_keep_alive": 30,
        **options,
    }
    return uvicorn.Server(uvicorn.Config(app, **settings))


@contextlib.contextmanager
def serving(app: ASGIApp, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve *app* over real HTTP on a free port of *host*, in a thread; yield its URL."""
    sock = bind_socket(host, 0)
    server = asgi_server(app)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="fake-teletracker"
    )
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fake server did not start")
            time.sleep(0.01)
        yield socket_url(sock)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


# -- sockets ----------------------------------------------------------------------------


def bind_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to *host*:*port* (0: a free port), already listening.

    Listening at once makes a banner printed right after it true: a client that
    connects before the server has started accepting waits in the backlog instead
    of being refused (``serve`` printed its address before uvicorn listened, and a
    test that connected at once under load was refused)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY on accepted sockets only
    # when the protocol is spelled out, and without it Nagle's algorithm and
    # delayed ACKs add 40 ms to every keep-alive answer (measured: 44 ms -> 1 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        sock.listen()  # the server raises the backlog when it starts
    except OSError:
        sock.close()
        raise
    return sock


def socket_url(sock: socket.socket) -> str:
    """The http:// base URL of a bound socket."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
