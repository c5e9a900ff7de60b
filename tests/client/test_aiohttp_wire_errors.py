"""The aiohttp wire's errors say how far a request went (teletracker_async/_aiohttp_wire.py).

Only a failure to get a connection is "never sent" (the SDK repeats any method
then); a failure on a connection may come after the request left, and is repeated
for idempotent calls only. Pure: each aiohttp error as its stage raises it.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from teletracker_async._http import HTTPX

pytest.importorskip("httpx_aiohttp", reason="the aiohttp extra is not installed")

import aiohttp

from teletracker_async import _aiohttp_wire as wire


def _connect_timeout() -> BaseException:
    inner = aiohttp.ConnectionTimeoutError("Connection timeout to host")
    outer = aiohttp.ConnectionTimeoutError("Connection timeout to host")
    outer.__cause__ = inner
    return outer


def _pool_timeout() -> BaseException:
    outer = aiohttp.ConnectionTimeoutError("Connection timeout to host")
    outer.__cause__ = asyncio.TimeoutError()
    return outer


KEY: Any = SimpleNamespace(host="127.0.0.1", port=9, ssl=True)
INFO: Any = SimpleNamespace(real_url="http://127.0.0.1:9/echo")

CASES = [
    # Getting a connection: never sent.
    (
        aiohttp.ClientConnectorError(KEY, ConnectionRefusedError(111, "refused")),
        httpx.ConnectError,
    ),
    (
        aiohttp.ClientConnectorDNSError(KEY, OSError(-2, "no such host")),
        httpx.ConnectError,
    ),
    (aiohttp.ClientProxyConnectionError(KEY, OSError(1, "proxy")), httpx.ConnectError),
    (aiohttp.ServerFingerprintMismatch(b"a", b"b", "h", 443), httpx.ConnectError),
    (_connect_timeout(), httpx.ConnectTimeout),
    (_pool_timeout(), httpx.PoolTimeout),
    # On a connection: the request may have left.
    (aiohttp.ServerDisconnectedError(), httpx.RemoteProtocolError),
    (
        aiohttp.ClientPayloadError("Response payload is not completed"),
        httpx.RemoteProtocolError,
    ),
    (
        aiohttp.SocketTimeoutError("Timeout on reading data from socket"),
        httpx.ReadTimeout,
    ),
    (aiohttp.ServerTimeoutError("Timeout"), httpx.ReadTimeout),
    (aiohttp.ClientOSError(104, "Connection reset by peer"), httpx.ReadError),
    (aiohttp.ClientOSError(32, "Can not write request body"), httpx.WriteError),
    (
        aiohttp.ClientConnectionResetError("Cannot write to closing transport"),
        httpx.WriteError,
    ),
    (aiohttp.ClientConnectionError("Connection closed"), httpx.RemoteProtocolError),
    (
        aiohttp.ClientResponseError(INFO, (), status=400, message="Bad status line"),
        httpx.RemoteProtocolError,
    ),
    # Neither: the SDK gives up at once.
    (aiohttp.InvalidURL("http://"), httpx.UnsupportedProtocol),
    (aiohttp.ClientError("other"), httpx.TransportError),
]


#: The httpx errors that say "never sent" to the SDK.
NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@pytest.mark.parametrize(("error", "expected"), CASES, ids=lambda c: type(c).__name__)
def test_each_aiohttp_error_maps_to_the_httpx_error_of_its_stage(
    error: BaseException, expected: type[httpx.TransportError]
) -> None:
    """Each aiohttp error becomes the httpx error of the stage it is raised in,
    and only the connect stage's say "never sent" (``Stack.not_sent``):
    ServerDisconnectedError is not among them, where httpx-aiohttp 0.2.0 says
    ConnectTimeout for every ClientConnectionError."""
    mapped = wire.httpx_error_for(error)
    assert type(mapped) is expected
    assert isinstance(mapped, HTTPX.not_sent) is (expected in NEVER_SENT)
