"""Misuses that fail at run time are type errors too; the right uses type-check.

The misuse lines sit in functions that are never called, each with the ignore comment
of the error it must raise: mypy --strict (warn_unused_ignores) fails on this file if
one of them stops being that error. Pyright reads a ``type: ignore`` as its own (for
any rule), and the setting below makes it fail on one that is unused:
``uv run --with pyright pyright tests/client/test_typing_catches_misuse.py``. The
tests at the end check that the same misuses still fail at run time, for untyped
callers.
"""
# pyright: reportUnnecessaryTypeIgnoreComment=true

from __future__ import annotations

import importlib
from collections.abc import AsyncIterable, AsyncIterator
from datetime import date
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from teletracker_async import (
    CallDataStream,
    IntegratorAuth,
    TeletrackerAuth,
    TeletrackerBasicAuth,
    TeletrackerClient,
)
from teletracker_async.testing import FakeClock, FakeTeletracker
from tests.conftest import BASE_URL, PASSWORD, USERNAME

if TYPE_CHECKING:
    import httpx2
    from teletracker_async import httpx2 as adapters

pytestmark = pytest.mark.anyio

DAY = date(2026, 3, 1)


# -- 1. A report stream is iterated inside its block ----------------------------------


async def _iterating_a_stream_outside_its_block(client: TeletrackerClient) -> None:
    stream = client.stream_call_data(DAY, DAY)
    async for _ in stream:  # type: ignore[attr-defined]
        pass
    _ = [r async for r in client.stream_call_data(DAY, DAY)]  # type: ignore[attr-defined]
    _records: AsyncIterable[dict[str, Any]] = stream  # type: ignore[assignment]


async def _iterating_the_stream_its_block_gives(client: TeletrackerClient) -> None:
    async with client.stream_call_data(DAY, DAY) as stream:
        async for record in stream:
            _record: dict[str, Any] = record
        _stream: CallDataStream = stream
        _iterator: AsyncIterator[dict[str, Any]] = stream
        _done: int = stream.windows_done
        _total: int = stream.windows_total
        _handed: int = stream.records
        _started: float | None = stream.started_at
        _fraction: float = stream.fraction_done
        _eta: float | None = stream.eta()


# -- 2. One HTTP stack per client -----------------------------------------------------


def _mixing_http_stacks(
    http: httpx.AsyncClient,
    transport: httpx.AsyncBaseTransport,
    http2: httpx2.AsyncClient,
    transport2: httpx2.AsyncBaseTransport,
) -> None:
    bearer, bearer2 = TeletrackerAuth("u", "p"), adapters.TeletrackerAuth("u", "p")
    TeletrackerClient(auth=bearer, http_client=http2)  # type: ignore[call-overload]
    TeletrackerClient(auth=bearer, transport=transport2)  # type: ignore[call-overload]
    TeletrackerClient(auth=TeletrackerBasicAuth("u", "p"), http_client=http2)  # type: ignore[call-overload]
    TeletrackerClient(auth=IntegratorAuth("u", "p", account_id=1), transport=transport2)  # type: ignore[call-overload]
    TeletrackerClient(auth=bearer2, http_client=http)  # type: ignore[call-overload]
    TeletrackerClient(auth=bearer2, transport=transport)  # type: ignore[call-overload]
    TeletrackerClient(auth=adapters.TeletrackerBasicAuth("u", "p"), http_client=http)  # type: ignore[call-overload]
    TeletrackerClient(auth=bearer2, http_client=http2, transport=transport)  # type: ignore[call-overload]
    TeletrackerClient("u", "p", http_client=http, transport=transport2)  # type: ignore[call-overload]
    TeletrackerClient("u", "p", http_client=http2, transport=transport)  # type: ignore[call-overload]


def _each_stack_types_its_client(
    http: httpx.AsyncClient,
    transport: httpx.AsyncBaseTransport,
    http2: httpx2.AsyncClient,
    transport2: httpx2.AsyncBaseTransport,
) -> None:
    # Credentials: the bearer auth of the stack (httpx when no object names one).
    _default: TeletrackerAuth = TeletrackerClient("u", "p").auth
    _with_client: TeletrackerAuth = TeletrackerClient("u", "p", http_client=http).auth
    _with_transport: TeletrackerAuth = TeletrackerClient(transport=transport).auth
    _client2: adapters.TeletrackerAuth = TeletrackerClient(http_client=http2).auth
    _transport2: adapters.TeletrackerAuth = TeletrackerClient(transport=transport2).auth
    _not_httpx2: adapters.TeletrackerAuth = TeletrackerClient().auth  # type: ignore[assignment]
    # auth=: the class given, kept by views.
    basic = TeletrackerClient(auth=TeletrackerBasicAuth("u", "p"), transport=transport)
    _basic: TeletrackerBasicAuth = basic.with_options(timeout=5).for_account(2).auth
    integrator2 = TeletrackerClient(
        auth=adapters.IntegratorAuth("u", "p", account_id=1), http_client=http2
    )
    _integrator2: adapters.IntegratorAuth = integrator2.auth
    _bearer2: adapters.TeletrackerAuth = TeletrackerClient(
        auth=adapters.TeletrackerAuth("u", "p")
    ).auth


# -- 3. Settings keep their types -----------------------------------------------------


def _a_timeout_as_text(client: TeletrackerClient) -> None:
    client.with_options(timeout="5")  # type: ignore[arg-type]


# -- 4. The wire is one of the choices, under httpx ----------------------------------


def _a_wire_out_of_the_choices(http2: httpx2.AsyncClient) -> None:
    TeletrackerClient("u", "p", wire="curl")  # type: ignore[call-overload]
    TeletrackerClient(auth=adapters.TeletrackerAuth("u", "p"), wire="aiohttp")  # type: ignore[call-overload]
    TeletrackerClient(http_client=http2, wire="aiohttp")  # type: ignore[call-overload]


def _the_aiohttp_wire_types_its_client() -> None:
    _aio: TeletrackerAuth = TeletrackerClient("u", "p", wire="aiohttp").auth
    _basic: TeletrackerBasicAuth = TeletrackerClient(
        auth=TeletrackerBasicAuth("u", "p"), wire="aiohttp"
    ).auth


# -- The same misuses at run time -----------------------------------------------------


async def test_the_misuses_fail_at_run_time(
    fake: FakeTeletracker, clock: FakeClock
) -> None:
    """Iterating a stream outside its block is a RuntimeError, a timeout as text a
    TypeError, as for a caller without a type checker."""
    auth = TeletrackerAuth(USERNAME, PASSWORD, base_url=BASE_URL, clock=clock)
    async with TeletrackerClient(auth=auth, transport=fake.transport()) as client:
        stream: Any = client.stream_call_data(DAY, DAY)
        with pytest.raises(RuntimeError, match="inside its block"):
            async for _ in stream:
                pass  # pragma: no cover
        text: Any = "5"
        with pytest.raises(TypeError, match="timeout"):
            client.with_options(timeout=text)
    assert fake.stats.data_requests == 0


async def test_mixed_stacks_fail_at_run_time() -> None:
    """Objects of httpx and of httpx2 in one client are a TypeError."""
    stack2 = pytest.importorskip("httpx2")  # Python 3.10 has no httpx2
    twins = importlib.import_module("teletracker_async.httpx2")
    mixes: list[dict[str, Any]] = [
        {"auth": TeletrackerAuth("u", "p"), "transport": stack2.MockTransport(_no)},
        {
            "auth": twins.TeletrackerAuth("u", "p"),
            "transport": httpx.MockTransport(_no),
        },
        {
            "username": "u",
            "password": "p",
            "http_client": stack2.AsyncClient(),
            "transport": httpx.MockTransport(_no),
        },
    ]
    make: Any = TeletrackerClient
    for mix in mixes:
        with pytest.raises(TypeError, match="mixed HTTP stacks"):
            make(**mix)
        if "http_client" in mix:
            await mix["http_client"].aclose()


def _no(_: object) -> Any:  # pragma: no cover - nothing is sent
    raise AssertionError
