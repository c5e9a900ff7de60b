"""The pytest plugin: its fixtures work here, and in a project that only installs us."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import textwrap
from datetime import date

import pytest

from teletracker_async import TeletrackerClient
from teletracker_async.testing import FakeClock, FakeTeletracker
from teletracker_async.testing.pytest_plugin import PASSWORD, USERNAME

pytest_plugins = ["pytester"]


@pytest.mark.anyio
async def test_client_fixture_shares_the_fake_and_the_clock(
    teletracker_client: TeletrackerClient,
    teletracker_fake: FakeTeletracker,
    teletracker_clock: FakeClock,
) -> None:
    """The client logs in to the fixture's fake, and the clock drives its expiry."""
    records = await teletracker_client.call_data("2026-01-01", "2026-01-01")
    assert records == teletracker_fake.records_for(1, date(2026, 1, 1))
    teletracker_clock.advance(3600)
    await teletracker_client.call_data("2026-01-02", "2026-01-02")
    assert (teletracker_fake.stats.logins, teletracker_fake.stats.refreshes) == (1, 1)
    assert [r.path for r in teletracker_fake.requests] == [
        "/auth/login",
        "/reports/call-data",
        "/auth/refresh",
        "/reports/call-data",
    ]


@pytest.mark.anyio
async def test_client_fixture_retries_on_the_fake_clock(
    teletracker_client: TeletrackerClient,
    teletracker_fake: FakeTeletracker,
    teletracker_clock: FakeClock,
) -> None:
    """A retry's wait advances the fake clock instead of sleeping."""
    before = teletracker_clock()
    teletracker_fake.fail_next("data", 503, headers={"retry-after": "7"})
    await teletracker_client.call_data("2026-01-01", "2026-01-01")
    assert teletracker_clock() == before + 7


@pytest.mark.anyio
async def test_server_fixture_serves_the_same_fake(
    teletracker_server: str, teletracker_fake: FakeTeletracker
) -> None:
    """Code with its own HTTP client reaches the fixture's fake over real sockets."""
    assert teletracker_server.startswith("http://127.0.0.1:")
    async with TeletrackerClient(
        USERNAME, PASSWORD, base_url=teletracker_server
    ) as client:
        assert await client.verify_credentials()
    assert teletracker_fake.stats.auth_only_checks == 1
    assert [r.keys for r in teletracker_fake.requests] == [
        ("username", "password", "auth_only")
    ]


def test_the_entry_point_names_the_plugin(pytestconfig: pytest.Config) -> None:
    """pytest11 registers the plugin module under the name teletracker_async."""
    (entry,) = [
        e
        for e in importlib.metadata.entry_points(group="pytest11")
        if e.name == "teletracker_async"
    ]
    assert entry.value == "teletracker_async.testing.pytest_plugin"
    assert pytestconfig.pluginmanager.get_plugin("teletracker_async") is entry.load()


@pytest.mark.slow
def test_importing_the_package_does_not_import_pytest() -> None:
    """The library and its testing kit load without pytest (and without the plugin)."""
    code = (
        "import sys, teletracker_async, teletracker_async.testing; "
        "print(sorted(m for m in sys.modules if m.startswith(('pytest', '_pytest')) "
        "or m.endswith('pytest_plugin')))"
    )
    done = subprocess.run(  # noqa: S603 - our own interpreter, fixed code
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == "[]"


USER_TEST = textwrap.dedent(
    """
    import pytest

    pytestmark = pytest.mark.anyio


    @pytest.fixture(params=["asyncio", "trio"])
    def anyio_backend(request):
        return request.param


    async def test_uses_the_fixtures(teletracker_client, teletracker_fake):
        await teletracker_client.call_data("2026-01-01", "2026-01-01")
        assert teletracker_fake.stats.logins == 1
    """
)


@pytest.mark.slow
def test_a_users_project_gets_the_fixtures(pytester: pytest.Pytester) -> None:
    """Installed, the plugin serves a plain project's tests on asyncio and trio."""
    pytester.makepyfile(test_user=USER_TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


@pytest.mark.slow
def test_dash_p_loads_it_when_autoload_is_off(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With plugin autoloading off, -p teletracker_async (and only it) brings them."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile(test_user=USER_TEST)
    without = pytester.runpytest_subprocess("-p", "anyio", "-p", "no:cacheprovider")
    without.assert_outcomes(errors=2)
    with_it = pytester.runpytest_subprocess(
        "-p", "anyio", "-p", "teletracker_async", "-p", "no:cacheprovider"
    )
    with_it.assert_outcomes(passed=2)
