"""The CLI tests' fake, served on 127.0.0.1, and the environment that points the
command at it (see tests/support/cli.py for how the command is run)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from teletracker_async.testing import FakeTeletracker
from tests.conftest import PASSWORD, USERNAME
from tests.support.switchboard import Switchboard, answering_as


@pytest.fixture
def fake() -> FakeTeletracker:  # a real clock: this fake is served over sockets
    return FakeTeletracker(users={USERNAME: (PASSWORD, [1, 2])}, records_per_day=2)


@pytest.fixture
def url(fake: FakeTeletracker, _switchboard: tuple[Switchboard, str]) -> Iterator[str]:
    """The served URL of this test's *fake*."""
    with answering_as(fake, _switchboard) as url:
        yield url


@pytest.fixture
def env(url: str) -> dict[str, str]:
    """The command's environment: credentials and the served fake's URL."""
    variables = {
        k: v for k, v in os.environ.items() if not k.startswith("TELETRACKER_")
    }
    variables.update(
        TELETRACKER_USERNAME=USERNAME,
        TELETRACKER_PASSWORD=PASSWORD,
        TELETRACKER_BASE_URL=url,
        PYTHONUNBUFFERED="1",
    )
    return variables
