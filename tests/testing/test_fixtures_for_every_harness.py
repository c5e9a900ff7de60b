"""The kit's fixtures serve a user's tests under every async harness pytest has.

Each harness is a small user project run by a child pytest (``runpytest_subprocess``),
with only the package and the harness installed: anyio's plugin on asyncio and trio,
pytest-asyncio in strict mode, in auto mode and with a session-scoped loop, and
pytest-xdist with two workers. The user project has its own ``pytest.ini`` so that
none of this repository's settings reach it.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

#: No setting but the harness's own mode: installing the package is all it takes.
STRICT_INI = "[pytest]\n"
AUTO_INI = STRICT_INI + "asyncio_mode = auto\n"
#: In process, pytest-asyncio's start-up advice (set this scope) would reach this
#: run's own warnings; the child runs above show it works without.
QUIET = "asyncio_default_fixture_loop_scope = function\n"

ANYIO_CONFTEST = textwrap.dedent(
    """
    import pytest


    @pytest.fixture(params=["asyncio", "trio"])
    def anyio_backend(request):
        return request.param
    """
)

ANYIO_TESTS = textwrap.dedent(
    """
    import httpx
    import pytest

    pytestmark = pytest.mark.anyio


    async def test_client(teletracker_client, teletracker_fake, teletracker_clock):
        await teletracker_client.call_data("2026-01-01", "2026-01-01")
        teletracker_clock.advance(3600)
        await teletracker_client.call_data("2026-01-02", "2026-01-02")
        assert (teletracker_fake.stats.logins, teletracker_fake.stats.refreshes) == (1, 1)


    async def test_factory(teletracker_make_client, teletracker_fake):
        async with teletracker_make_client() as client:
            await client.call_data("2026-01-01", "2026-01-01")
        assert teletracker_fake.stats.logins == 1


    async def test_server(teletracker_server, teletracker_fake):
        async with httpx.AsyncClient(base_url=teletracker_server) as http:
            response = await http.post(
                "/auth/login", json={"username": "user", "password": "fake-password"}
            )
        assert response.status_code == 200
        assert teletracker_fake.stats.logins == 1
    """
)

ASYNCIO_TESTS = textwrap.dedent(
    """
    import asyncio

    import httpx
    import pytest

    MARK = pytest.mark.asyncio{marker_args}


    @MARK
    async def test_factory(teletracker_make_client, teletracker_fake, teletracker_clock):
        async with teletracker_make_client() as client:
            await client.call_data("2026-01-01", "2026-01-01")
            teletracker_clock.advance(3600)
            await client.call_data("2026-01-02", "2026-01-02")
        assert (teletracker_fake.stats.logins, teletracker_fake.stats.refreshes) == (1, 1)


    @MARK
    async def test_two_clients_share_the_fake(teletracker_make_client, teletracker_fake):
        async with teletracker_make_client() as a, teletracker_make_client() as b:
            await asyncio.gather(
                a.call_data("2026-01-01", "2026-01-01"),
                b.call_data("2026-01-01", "2026-01-01"),
            )
        assert teletracker_fake.stats.logins == 2


    @MARK
    async def test_server(teletracker_server, teletracker_fake):
        async with httpx.AsyncClient(base_url=teletracker_server) as http:
            response = await http.post(
                "/auth/login", json={{"username": "user", "password": "fake-password"}}
            )
        assert response.status_code == 200
        assert teletracker_fake.stats.logins == 1
    """
)

CLIENT_OUTSIDE_ANYIO = textwrap.dedent(
    """
    import pytest


    @pytest.mark.asyncio
    async def test_asks_for_the_anyio_fixture(teletracker_client):
        pass
    """
)


def _project(pytester: pytest.Pytester, ini: str, **files: str) -> None:
    pytester.makefile(".ini", pytest=ini)
    pytester.makepyfile(**files)


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-c", "pytest.ini", *args
    )


@pytest.mark.slow
def test_anyio_plugin_runs_every_fixture_on_asyncio_and_trio(
    pytester: pytest.Pytester,
) -> None:
    """Under anyio's plugin the client, the factory and the server serve both backends."""
    _project(pytester, STRICT_INI, conftest=ANYIO_CONFTEST, test_user=ANYIO_TESTS)
    _run(pytester).assert_outcomes(passed=6)


def test_anyio_plugin_runs_the_client_fixture_in_process(
    pytester: pytest.Pytester,
) -> None:
    """The client fixture is built on the anyio runner that then runs the test."""
    _project(
        pytester, STRICT_INI + QUIET, conftest=ANYIO_CONFTEST, test_user=ANYIO_TESTS
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-k", "test_client")
    result.assert_outcomes(passed=2)


@pytest.mark.slow
def test_pytest_asyncio_strict_mode_serves_marked_tests(
    pytester: pytest.Pytester,
) -> None:
    """With @pytest.mark.asyncio (strict mode) the factory, fake, clock and server work."""
    tests = ASYNCIO_TESTS.format(marker_args="")
    _project(pytester, STRICT_INI, test_user=tests)
    _run(pytester).assert_outcomes(passed=3)


@pytest.mark.slow
def test_pytest_asyncio_auto_mode_serves_unmarked_tests(
    pytester: pytest.Pytester,
) -> None:
    """In auto mode plain async tests get the same fixtures."""
    tests = ASYNCIO_TESTS.format(marker_args="").replace("@MARK\n", "")
    _project(pytester, AUTO_INI, test_user=tests)
    _run(pytester).assert_outcomes(passed=3)


@pytest.mark.slow
def test_pytest_asyncio_auto_mode_takes_anyio_tests_and_the_client_says_so(
    pytester: pytest.Pytester,
) -> None:
    """Auto mode runs anyio-marked tests on its loop: the client fixture says so."""
    _project(pytester, AUTO_INI, conftest=ANYIO_CONFTEST, test_user=ANYIO_TESTS)
    result = _run(pytester)
    result.assert_outcomes(passed=4, errors=2)
    result.stdout.fnmatch_lines(["*marked both anyio and asyncio*"] * 2)
    result.stdout.no_fnmatch_line("*must be called from async context*")


@pytest.mark.slow
def test_pytest_asyncio_session_loop_serves_tests_sharing_one_loop(
    pytester: pytest.Pytester,
) -> None:
    """With loop_scope="session" every test, and its clients, run on one loop."""
    tests = ASYNCIO_TESTS.format(
        marker_args='(loop_scope="session")'
    ) + textwrap.dedent(
        """

        LOOPS = set()


        @MARK
        @pytest.mark.parametrize("n", range(2))
        async def test_one_loop(n, teletracker_make_client):
            LOOPS.add(id(asyncio.get_running_loop()))
            async with teletracker_make_client() as client:
                assert await client.verify_credentials()
            assert len(LOOPS) == 1
        """
    )
    _project(pytester, STRICT_INI, test_user=tests)
    _run(pytester).assert_outcomes(passed=5)


@pytest.mark.slow
def test_xdist_workers_each_get_their_own_fixtures(pytester: pytest.Pytester) -> None:
    """With -n 2, anyio and pytest-asyncio tests pass on two worker processes."""
    _project(
        pytester,
        STRICT_INI,
        conftest=ANYIO_CONFTEST,
        test_anyio=ANYIO_TESTS,
        test_asyncio=ASYNCIO_TESTS.format(marker_args=""),
    )
    result = _run(pytester, "-n", "2")
    result.assert_outcomes(passed=9)
    result.stdout.fnmatch_lines(["*2 workers*"])


def test_client_fixture_outside_anyio_names_the_factory(
    pytester: pytest.Pytester,
) -> None:
    """A non-anyio test asking for the client gets an error naming the factory."""
    _project(pytester, STRICT_INI + QUIET, test_user=CLIENT_OUTSIDE_ANYIO)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*teletracker_make_client*"])


def test_client_fixture_in_an_auto_mode_anyio_test_says_auto_mode_took_it(
    pytester: pytest.Pytester,
) -> None:
    """An anyio test that auto mode also marks asyncio gets an error saying so."""
    _project(pytester, AUTO_INI + QUIET, conftest=ANYIO_CONFTEST, test_user=ANYIO_TESTS)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-k", "test_client")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*marked both anyio and asyncio*"])


@pytest.mark.slow
def test_a_misused_client_fixture_does_not_break_later_tests(
    pytester: pytest.Pytester,
) -> None:
    """After a strict-mode test errors on the client fixture, later tests still pass."""
    tests = CLIENT_OUTSIDE_ANYIO + ASYNCIO_TESTS.format(marker_args="").replace(
        "import asyncio", "import asyncio  # noqa"
    )
    _project(pytester, STRICT_INI, test_user=tests)
    result = _run(pytester)
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.no_fnmatch_line("*AssertionError*")


GUIDE = Path(__file__).parents[2] / "docs" / "guides" / "test-harnesses.md"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def _harness(ini: str, body: str) -> str:
    if "asyncio_mode = auto" in ini:
        return "auto"
    if "mark.anyio" in body:
        return "anyio"
    return "session-loop" if 'loop_scope="session"' in body else "strict"


def _guide_test_files() -> list[tuple[str, str, str]]:
    """Each python test file of the guide, with the ini block just before it."""
    files = []
    ini = "[pytest]\n"
    for language, body in FENCE.findall(GUIDE.read_text(encoding="utf-8")):
        if language == "ini":
            ini = body
        elif language == "python" and "def test_" in body:
            files.append((_harness(ini, body), ini, body))
            ini = "[pytest]\n"
    return files


def test_the_guide_shows_every_harness() -> None:
    """The guide has a test file for anyio, strict, auto and the session loop."""
    files = _guide_test_files()
    assert len(files) == 4
    assert sorted(f[0] for f in files) == ["anyio", "auto", "session-loop", "strict"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("ini", "body"), [pytest.param(i, b, id=h) for h, i, b in _guide_test_files()]
)
def test_the_guides_test_files_pass_as_written(
    ini: str, body: str, pytester: pytest.Pytester
) -> None:
    """Every test file in docs/guides/test-harnesses.md passes in a bare project."""
    _project(pytester, ini, test_guide=body)
    result = _run(pytester)
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) >= body.count("def test_"), result.stdout.str()
    assert set(outcomes) <= {"passed", "warnings", "seconds"}, result.stdout.str()
