"""The HTTP stacks the SDK runs on: httpx, and httpx2 (the maintained fork) when present.

The auth flow, the schemes and the client are written once against a :class:`Stack`:
the module whose ``Auth``, ``Request``, ``ByteStream`` and error types they use. httpx2
is imported only when something asks for it, so it costs nothing when absent.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import AsyncIterator, Awaitable, Mapping
from types import ModuleType
from typing import Any, Protocol

import attrs
import httpx

__all__ = [
    "HTTPX",
    "URL",
    "ByteStream",
    "HTTPClient",
    "Headers",
    "Request",
    "Response",
    "Stack",
    "TimeoutLike",
    "httpx2_stack",
    "stack_of",
]


# The parts of either stack's objects the SDK touches, as small Protocols: the rest
# of the package is written against these, never against a module of its own.
class URL(Protocol):
    """A URL of either stack."""

    @property
    def scheme(self) -> str: ...
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int | None: ...
    @property
    def path(self) -> str: ...


class Headers(Protocol):
    """Headers of either stack."""

    def get(self, key: str, default: Any = None) -> Any: ...
    def __getitem__(self, key: str) -> str: ...
    def __setitem__(self, key: str, value: str) -> None: ...
    def multi_items(self) -> list[tuple[str, str]]: ...


class Request(Protocol):
    """A request of either stack."""

    @property
    def method(self) -> str: ...
    @property
    def url(self) -> URL: ...
    @property
    def headers(self) -> Headers: ...
    @property
    def extensions(self) -> Mapping[str, Any]: ...


class ByteStream(Protocol):
    """An answer's body stream."""

    def __aiter__(self) -> AsyncIterator[bytes]: ...
    async def aclose(self) -> None: ...


class Response(Protocol):
    """An answer of either stack, read (``aread``) before the SDK looks at it."""

    stream: Any  # replaced by the queue's hand-over stream (see _call/queue.py)

    @property
    def status_code(self) -> int: ...
    @property
    def headers(self) -> Headers: ...
    @property
    def content(self) -> bytes: ...
    @property
    def request(self) -> Request: ...
    @property
    def is_success(self) -> bool: ...
    async def aread(self) -> bytes: ...
    async def aclose(self) -> None: ...


class TimeoutLike(Protocol):
    """A ``Timeout`` of either stack."""

    @property
    def connect(self) -> float | None: ...
    @property
    def read(self) -> float | None: ...
    @property
    def write(self) -> float | None: ...
    @property
    def pool(self) -> float | None: ...


class HTTPClient(Protocol):
    """The ``AsyncClient`` of either stack, as far as the request path uses it."""

    @property
    def timeout(self) -> TimeoutLike: ...
    @property
    def headers(self) -> Headers: ...
    def build_request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: Any = None,
    ) -> Request: ...
    def send(
        self, request: Any, *, auth: Any, follow_redirects: bool, stream: bool
    ) -> Awaitable[Response]: ...
    async def aclose(self) -> None: ...


@attrs.frozen
class Stack:
    """One HTTP stack: its module and the types the SDK needs from it."""

    name: str
    module: ModuleType = attrs.field(repr=False)
    Request: Any = attrs.field(repr=False)
    ByteStream: Any = attrs.field(repr=False)
    DecodingError: type[Exception] = attrs.field(repr=False)
    TransportError: type[Exception] = attrs.field(repr=False)
    TimeoutException: type[Exception] = attrs.field(repr=False)
    RequestError: type[Exception] = attrs.field(repr=False)
    #: Transport failures where the request provably never left.
    not_sent: tuple[type[Exception], ...] = attrs.field(repr=False)
    #: Transport failures worth retrying for idempotent requests.
    retryable: tuple[type[Exception], ...] = attrs.field(repr=False)
    #: The ``AsyncClient`` the SDK builds for itself: the module's, keeping no
    #: cookie from an answer (see :func:`_keeping_no_answer_cookies`).
    AsyncClient: Any = attrs.field(repr=False)
    #: Whether the client's queue lets its next request into this stack's own pool
    #: before a connection frees (see ``Queue.hand_over_at_last_byte`` in _call/queue.py).
    #: Measured (``benchmarks/bench_loopback.py``): twice the throughput on httpx2
    #: at 100 connections, where the pool probes every idle connection on each
    #: pass; on httpx, 5 to 8 % less at 8 connections x 2000 coroutines and the same
    #: at 100 (measured with the slot given back at the answer's head).
    hand_over: bool = False

    @classmethod
    def of(cls, module: ModuleType, *, hand_over: bool = False) -> Stack:
        return cls(
            name=module.__name__,
            module=module,
            Request=module.Request,
            ByteStream=module.ByteStream,
            DecodingError=module.DecodingError,
            TransportError=module.TransportError,
            TimeoutException=module.TimeoutException,
            RequestError=module.RequestError,
            not_sent=(module.ConnectError, module.ConnectTimeout, module.PoolTimeout),
            retryable=(
                module.NetworkError,
                module.TimeoutException,
                module.RemoteProtocolError,
            ),
            hand_over=hand_over,
            AsyncClient=_keeping_no_answer_cookies(module),
        )


def _keeping_no_answer_cookies(module: ModuleType) -> type[Any]:
    """*module*'s ``AsyncClient``, with a cookie jar that no answer writes to.

    The client a ``TeletrackerClient`` builds is one of these (yours, passed as
    ``http_client``, is left as it is):

    - the API authenticates by bearer token and sets no cookie;
    - one client serves every account's view and session, so a jar would carry a
      cookie one account's answer set onto every other account's requests;
    - httpx copies each answer into a urllib cookie jar: most of the difference
      between the two by-hand floors of ``benchmarks/bench_request_json.py`` (a
      plain client against this one; docs/benchmarks.md includes the run).

    Cookies you give (``cookies=``, or set on ``client.http.cookies``) are sent as
    with any client. Both stacks read the jar through the ``cookies`` property only
    (``__init__`` and the setter aside), which is what this overrides.
    """

    class Cookies(module.Cookies):  # type: ignore[misc, name-defined]
        def extract_cookies(self, response: Any) -> None:
            """Keep no cookie from an answer."""

    class AsyncClient(module.AsyncClient):  # type: ignore[misc, name-defined]
        @property
        def cookies(self) -> Any:
            return self._given_cookies

        @cookies.setter
        def cookies(self, cookies: Any) -> None:
            self._given_cookies = Cookies(cookies)

        def __init__(self, *, cookies: Any = None, **options: Any) -> None:
            self.cookies = cookies  # the base's __init__ reads no cookie
            super().__init__(**options)

    AsyncClient.__qualname__ = AsyncClient.__name__ = "AsyncClient"
    AsyncClient.__module__ = __name__
    return AsyncClient


HTTPX = Stack.of(httpx)


@functools.cache
def httpx2_stack() -> Stack:
    """The httpx2 stack; raises ImportError with the extra to install when absent."""
    try:
        module = importlib.import_module("httpx2")
    except ImportError as exc:
        raise ImportError(
            "httpx2 is not installed: pip install 'teletracker-async[httpx2]' "
            "(httpx2 needs Python >= 3.11)"
        ) from exc
    return Stack.of(module, hand_over=True)


def stack_of(obj: object) -> Stack | None:
    """The stack *obj* (a client, transport or auth) belongs to, or None."""
    for klass in type(obj).__mro__:
        top = klass.__module__.partition(".")[0]
        if top == "httpx":
            return HTTPX
        if top == "httpx2":
            return httpx2_stack()
    return None
