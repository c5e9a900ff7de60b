"""The aiohttp wire: an httpx transport that sends through an aiohttp session.

``TeletrackerClient(wire="aiohttp")`` builds an httpx ``AsyncClient`` over
:class:`AiohttpWire`, so the auth flow, the queue in front of the pool and the
tries loop are the same as on httpx; only the sockets are aiohttp's. It needs the
``aiohttp`` extra (``httpx-aiohttp`` and ``aiohttp``) and runs on asyncio only.

What this module changes from ``httpx_aiohttp.AiohttpTransport`` (0.2.0):

- **Errors.** httpx-aiohttp maps every ``aiohttp.ClientConnectionError`` (a server
  that disconnects after the request was written included) to
  ``httpx.ConnectTimeout``, which says "never sent": the SDK would repeat a POST that
  may have reached the server. Here only a failure to get a connection says so
  (:func:`httpx_error_for`); a failure on a connection says "may have left".
- **The connector** is sized from the client's ``limits`` (:func:`connector_options`),
  keeps no cookie from an answer (as the SDK's httpx client), and never repeats a
  request itself: aiohttp repeats an idempotent method once on a reused connection
  that drops, behind the SDK's retry policy and its count of tries.
- **Timeouts** come from each request's ``timeout`` extension (the client's
  ``httpx.Timeout`` or the call's): ``connect`` bounds opening a connection,
  ``read`` each read, ``pool`` the wait for a free connection in aiohttp's own pool
  (the SDK's queue in front bounds the wait before it with the same figure).
  aiohttp has no write timeout: ``write`` is not applied.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

__all__ = ["AiohttpWire", "connector_options", "httpx_error_for"]


def connector_options(limits: httpx.Limits) -> dict[str, Any]:
    """``aiohttp.TCPConnector`` options for *limits*.

    - ``max_connections`` -> ``limit`` and ``limit_per_host`` (the API is one host;
      None: no limit, aiohttp's 0);
    - ``keepalive_expiry`` -> ``keepalive_timeout`` (None: an idle connection never
      expires, in both);
    - ``max_keepalive_connections``: aiohttp keeps every released connection for
      reuse, as many as ``limit`` allows, and has no separate cap on idle ones;
      0 (keep none) is honoured as ``force_close=True``, any other figure is
      bounded by ``max_connections`` instead.
    """
    most = limits.max_connections or 0
    options: dict[str, Any] = {"limit": most, "limit_per_host": most}
    if limits.max_keepalive_connections == 0:
        options["force_close"] = True
    else:
        options["keepalive_timeout"] = limits.keepalive_expiry
    return options


@functools.lru_cache(maxsize=64)
def _client_timeout(
    connect: float | None, read: float | None, pool: float | None
) -> aiohttp.ClientTimeout:
    # aiohttp's ``connect`` covers the wait for a free connection *and* opening
    # one; ``sock_connect`` the opening alone.
    return aiohttp.ClientTimeout(
        total=None,
        connect=None if pool is None or connect is None else pool + connect,
        sock_connect=connect,
        sock_read=read,
    )


def httpx_error_for(exc: BaseException) -> httpx.TransportError:
    """The httpx error that tells the SDK how far a request went before *exc*.

    aiohttp raises ``ClientConnectorError`` (and its subclasses),
    ``ConnectionTimeoutError`` and ``ServerFingerprintMismatch`` only while getting
    a connection, before anything is written: those alone are "never sent"
    (``ConnectError``, ``ConnectTimeout``, ``PoolTimeout``). Any other failure
    comes on a connection, where the request may have left, and says so
    (``RemoteProtocolError``, ``ReadError``, ``WriteError``, ``ReadTimeout``):
    the SDK repeats those for idempotent calls only.
    """
    text = str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        # Raised by the session around getting a connection: the socket's own
        # connect timeout (chained as the cause), or the whole wait, pool first.
        if isinstance(exc.__cause__, aiohttp.ServerTimeoutError):
            return httpx.ConnectTimeout(text)
        return httpx.PoolTimeout(text)
    if isinstance(exc, aiohttp.ClientOSError) and not isinstance(
        exc, aiohttp.ClientConnectorError
    ):
        on: type[httpx.TransportError] = (
            httpx.WriteError if "write" in text.lower() else httpx.ReadError
        )
        return on(text)
    for classes, kind in _KINDS:
        if isinstance(exc, classes):
            return kind(text)
    return httpx.TransportError(text)


#: The rest of :func:`httpx_error_for`, first match wins.
_KINDS: tuple[tuple[Any, type[httpx.TransportError]], ...] = (
    # DNS, refused, TLS, proxy: all while connecting.
    (
        aiohttp.ClientConnectorError | aiohttp.ServerFingerprintMismatch,
        httpx.ConnectError,
    ),
    (asyncio.TimeoutError, httpx.ReadTimeout),  # SocketTimeoutError: a read
    (aiohttp.ClientConnectionResetError, httpx.WriteError),
    (
        aiohttp.ServerDisconnectedError
        | aiohttp.ClientPayloadError
        | aiohttp.ClientResponseError
        | aiohttp.ClientConnectionError,
        httpx.RemoteProtocolError,
    ),
    (aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError, httpx.UnsupportedProtocol),
)


class _Body(httpx.AsyncByteStream):
    """An aiohttp answer's body, its failures mapped by :func:`httpx_error_for`."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise httpx_error_for(exc) from exc

    async def aclose(self) -> None:
        self._response.release()


def _asyncio_only() -> None:
    """Raises:
    RuntimeError: Not in an asyncio event loop (trio), naming the way out.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError(
            "TeletrackerClient(wire='aiohttp') runs on asyncio only (aiohttp is "
            "asyncio's): under trio, use the default wire='httpx'"
        ) from None


class AiohttpWire(AiohttpTransport):
    """``httpx_aiohttp.AiohttpTransport`` with the SDK's error mapping, connector
    and timeouts (see the module's docstring).

    Its ``aiohttp.ClientSession`` is made on first use, on the running loop, and
    closed by :meth:`aclose` (the client's ``aclose``).
    """

    def __init__(
        self,
        *,
        limits: httpx.Limits,
        verify: Any = True,
        cert: Any = None,
        trust_env: bool = True,
    ) -> None:
        super().__init__(verify=verify, cert=cert, trust_env=trust_env, limits=limits)
        #: Whether the environment's proxies and ``.netrc`` apply, as on httpx.
        self.trust_env = trust_env
        self._session: aiohttp.ClientSession | None = None

    def get_client(self) -> aiohttp.ClientSession:
        """A new session on the running loop, with the SDK's connector."""
        connector = aiohttp.TCPConnector(
            ssl=self.ssl_context, **connector_options(self.limits)
        )
        session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=self.trust_env,
            auto_decompress=False,
            timeout=_client_timeout(None, None, None),
        )
        if hasattr(session, "_retry_connection"):
            # The SDK decides every repeat (its retry policy, per call).
            session._retry_connection = False  # noqa: SLF001
        return session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send *request* through the aiohttp session; its errors mapped."""
        session = self._session
        if session is None:
            _asyncio_only()
            session = self._session = self.get_client()
        timeout: Mapping[str, float | None] = request.extensions.get("timeout", {})
        try:
            data: Any = request.content or None
        except httpx.RequestNotRead:
            data = request.stream
            request.headers.pop("transfer-encoding", None)  # aiohttp's own
        try:
            response = await session.request(
                request.method,
                str(request.url),
                headers=request.headers,
                data=data,
                allow_redirects=False,
                compress=False,
                timeout=_client_timeout(
                    timeout.get("connect"), timeout.get("read"), timeout.get("pool")
                ),
                server_hostname=request.extensions.get("sni_hostname"),
            )
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise httpx_error_for(exc) from exc
        extensions: dict[str, Any] = {"http_version": b"HTTP/1.1"}
        if response.reason:
            extensions["reason_phrase"] = response.reason.encode()
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=_Body(response),
            request=request,
            extensions=extensions,
        )

    async def aclose(self) -> None:
        """Close the aiohttp session and its connections (if one was made)."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()
