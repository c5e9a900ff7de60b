"""pytest fixtures for testing code that uses teletracker_async, against the fake.

pytest loads this module through the package's ``pytest11`` entry point (named
``teletracker_async``: ``-p teletracker_async`` loads it when plugin autoloading is
off, ``-p no:teletracker_async`` keeps it out). Importing ``teletracker_async`` never
imports it, nor pytest.

The async fixture runs under anyio's pytest plugin: mark the test with
``@pytest.mark.anyio``, and it runs on whichever backends ``anyio_backend`` names.

Fixtures:

- ``teletracker_clock``: a :class:`~teletracker_async.testing.FakeClock`.
- ``teletracker_fake``: a :class:`~teletracker_async.testing.FakeTeletracker` on that
  clock, knowing one user, :data:`USERNAME` / :data:`PASSWORD`, with the accounts
  :data:`ACCOUNT_IDS`. Override it in your ``conftest.py`` to change that.
- ``teletracker_client``: a :class:`~teletracker_async.TeletrackerClient` logged in
  as that user through the fake's in-process transport, on the same clock; its retry
  waits advance the clock instead of sleeping.
- ``teletracker_server``: the fake served over real HTTP on a free 127.0.0.1 port,
  for code that builds its own HTTP client; yields the base URL (needs the ``cli``
  extra for uvicorn). Tokens expire when the fake clock says so.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
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
async def teletracker_client(
    teletracker_fake: FakeTeletracker, teletracker_clock: FakeClock
) -> AsyncIterator[TeletrackerClient]:
    """A TeletrackerClient wired to ``teletracker_fake`` and ``teletracker_clock``."""
    import anyio.lowlevel  # noqa: PLC0415

    from teletracker_async import TeletrackerAuth, TeletrackerClient  # noqa: PLC0415

    async def sleep(seconds: float) -> None:
        teletracker_clock.advance(max(seconds, 0.0))
        await anyio.lowlevel.checkpoint()

    auth = TeletrackerAuth(
        USERNAME, PASSWORD, base_url=BASE_URL, clock=teletracker_clock
    )
    async with TeletrackerClient(
        auth=auth, transport=teletracker_fake.transport(), sleep=sleep
    ) as client:
        yield client


@pytest.fixture
def teletracker_server(teletracker_fake: FakeTeletracker) -> Iterator[str]:
    """``teletracker_fake`` served on 127.0.0.1; yields its base URL."""
    with teletracker_fake.serving() as url:
        yield url
