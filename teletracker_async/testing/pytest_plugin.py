"""pytest fixtures for testing code that uses teletracker_async, against the fake.

pytest loads this module through the package's ``pytest11`` entry point (named
``teletracker_async``: ``-p teletracker_async`` loads it when plugin autoloading is
off, ``-p no:teletracker_async`` keeps it out). Importing ``teletracker_async`` never
imports it, nor pytest.

Every fixture but ``teletracker_client`` is a plain (sync) fixture, so every harness
can use it: anyio's plugin, pytest-asyncio in any mode and loop scope, pytest-xdist.
The kit never picks an event loop: ``teletracker_make_client`` returns a factory that
the test enters on its own running loop. ``teletracker_client`` is the shorthand for
anyio-run tests (``@pytest.mark.anyio``; the backends are those ``anyio_backend``
names); asked for by a test another harness runs, it fails with an error naming
``teletracker_make_client``. docs/guides/test-harnesses.md shows each harness.

Fixtures:

- ``teletracker_clock``: a :class:`~teletracker_async.testing.FakeClock`.
- ``teletracker_fake``: a :class:`~teletracker_async.testing.FakeTeletracker` on that
  clock, knowing one user, :data:`USERNAME` / :data:`PASSWORD`, with the accounts
  :data:`ACCOUNT_IDS`. Override it in your ``conftest.py`` to change that.
- ``teletracker_make_client``: a factory of async context managers, each opening a
  :class:`~teletracker_async.TeletrackerClient` logged in as that user through the
  fake's in-process transport, on the same clock; its retry waits advance the clock
  instead of sleeping.
- ``teletracker_client``: one such client, opened for an anyio-run test.
- ``teletracker_server``: the fake served over real HTTP on a free 127.0.0.1 port,
  for code that builds its own HTTP client; yields the base URL (needs the ``cli``
  extra for uvicorn). Tokens expire when the fake clock says so.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from teletracker_async import TeletrackerClient
    from teletracker_async.testing import FakeClock, FakeTeletracker

__all__ = [
    "ACCOUNT_IDS",
    "BASE_URL",
    "PASSWORD",
    "USERNAME",
    "teletracker_client",
    "teletracker_clock",
    "teletracker_fake",
    "teletracker_make_client",
    "teletracker_server",
]

#: The user ``teletracker_fake`` knows and ``teletracker_client`` logs in as.
USERNAME = "user"
PASSWORD = "fake-password"  # noqa: S105 - the fake's own test credential
ACCOUNT_IDS = (1, 2)
#: The base URL ``teletracker_client`` uses; its transport never leaves the process.
BASE_URL = "https://api.teletracker.test"


@pytest.fixture
def teletracker_clock() -> FakeClock:
    """A fake monotonic clock shared by the fake and the client."""
    from teletracker_async.testing import FakeClock  # noqa: PLC0415 - lazy for pytest

    return FakeClock()


@pytest.fixture
def teletracker_fake(teletracker_clock: FakeClock) -> FakeTeletracker:
    """A FakeTeletracker on ``teletracker_clock`` that knows USERNAME / PASSWORD."""
    from teletracker_async.testing import FakeTeletracker  # noqa: PLC0415

    return FakeTeletracker(
        users={USERNAME: (PASSWORD, ACCOUNT_IDS)}, clock=teletracker_clock
    )


@pytest.fixture
def teletracker_make_client(
    teletracker_fake: FakeTeletracker, teletracker_clock: FakeClock
) -> Callable[[], AbstractAsyncContextManager[TeletrackerClient]]:
    """Open clients wired to ``teletracker_fake`` and ``teletracker_clock``.

    A plain fixture that returns an async context manager factory: the test enters it
    on its own running loop, so it works under any harness (anyio's plugin on asyncio
    or trio, pytest-asyncio in any mode and loop scope). Each call opens a new client,
    which logs in as :data:`USERNAME`; its retry waits advance the clock::

        async with teletracker_make_client() as client:
            await client.call_data("2026-01-01", "2026-01-01")
    """
    return functools.partial(_open_client, teletracker_fake, teletracker_clock)


@pytest.fixture
def teletracker_client(
    request: pytest.FixtureRequest,
    teletracker_make_client: Callable[
        [], AbstractAsyncContextManager[TeletrackerClient]
    ],
) -> Iterator[TeletrackerClient]:
    """An open client from ``teletracker_make_client``, for anyio-run tests only.

    The client is opened and closed on the anyio test runner that runs the test (the
    backend ``anyio_backend`` names). A test run by another harness gets an error
    that names ``teletracker_make_client``, which works everywhere.
    """
    if "anyio_backend" not in request.fixturenames:
        pytest.fail(_NOT_UNDER_ANYIO.format(test=request.node.nodeid), pytrace=False)
    if request.node.get_closest_marker("asyncio") is not None:
        pytest.fail(_TAKEN_BY_ASYNCIO.format(test=request.node.nodeid), pytrace=False)
    # A sync fixture that enters anyio's shared test runner itself (as anyio's own
    # fixture hook does): pytest-asyncio's auto mode claims every async fixture and
    # would open the client on its asyncio loop, even for a trio test.
    from anyio.pytest_plugin import (  # noqa: PLC0415
        extract_backend_and_options,
        get_runner,
    )

    backend, options = extract_backend_and_options(
        request.getfixturevalue("anyio_backend")
    )

    async def entered() -> AsyncGenerator[TeletrackerClient, None]:
        async with teletracker_make_client() as client:
            yield client

    with get_runner(backend, options) as runner:
        yield from runner.run_asyncgen_fixture(entered, {})


_NOT_UNDER_ANYIO = """\
{test} asks for teletracker_client, an async fixture that runs only under anyio's \
pytest plugin (mark the test with @pytest.mark.anyio). Under pytest-asyncio or any \
other harness, ask for teletracker_make_client and open the client in the test:
    async with teletracker_make_client() as client: ..."""

_TAKEN_BY_ASYNCIO = """\
{test} asks for teletracker_client and is marked both anyio and asyncio (the \
asyncio_mode = auto of pytest-asyncio marks every async test): pytest-asyncio runs \
it on its own loop, not on the anyio backend. Ask for teletracker_make_client and \
open the client in the test, or leave anyio-marked tests to anyio (strict mode)."""


@asynccontextmanager
async def _open_client(
    fake: FakeTeletracker, clock: FakeClock
) -> AsyncIterator[TeletrackerClient]:
    import anyio.lowlevel  # noqa: PLC0415

    from teletracker_async import TeletrackerAuth, TeletrackerClient  # noqa: PLC0415

    async def sleep(seconds: float) -> None:
        clock.advance(max(seconds, 0.0))
        await anyio.lowlevel.checkpoint()

    auth = TeletrackerAuth(USERNAME, PASSWORD, base_url=BASE_URL, clock=clock)
    async with TeletrackerClient(
        auth=auth, transport=fake.transport(), sleep=sleep
    ) as client:
        yield client


@pytest.fixture
def teletracker_server(teletracker_fake: FakeTeletracker) -> Iterator[str]:
    """``teletracker_fake`` served on 127.0.0.1; yields its base URL."""
    with teletracker_fake.serving() as url:
        yield url
