"""serve and demo, in this process: serve's address checks, the served fake's faults,
the demo's run against a fake served in a thread, its verdict and its report."""

from __future__ import annotations

import contextlib
import io
import socket
import sys
from collections import Counter
from collections.abc import Iterator

import pytest

from teletracker_async import TeletrackerClient
from teletracker_async._cli import demo, fleet
from teletracker_async._cli.common import DEMO_PASSWORD, DEMO_USER
from teletracker_async._cli.demo import DemoResult, report_demo
from teletracker_async._cli.serve import is_loopback
from teletracker_async.testing import FakeStats, FakeTeletracker
from tests.conftest import PASSWORD, USERNAME
from tests.support.cli import cli


def test_serve_refuses_a_public_address_without_the_flag() -> None:
    """Binding beyond loopback needs --allow-remote (usage error otherwise)."""
    done = cli("serve", "--host", "0.0.0.0")  # noqa: S104
    assert done.returncode == 2
    assert "--allow-remote" in done.stderr


def test_serve_warns_when_allowed_beyond_loopback() -> None:
    """--allow-remote lets a public --host through, with a warning first."""
    done = cli("serve", "--host", "192.0.2.1", "--allow-remote", "--port", "0")
    assert done.stderr.startswith(
        "warning: serving the fake on 192.0.2.1, beyond this machine\n"
    )
    assert "cannot listen on 192.0.2.1:0" in done.stderr  # not this machine's address
    assert done.returncode == 1


def test_the_served_socket_listens_before_the_banner() -> None:
    """`serve` prints its address once the socket listens: a client connecting at
    once is queued until the server accepts, never refused."""
    from teletracker_async.testing._doors import bind_socket  # noqa: PLC0415

    sock = bind_socket("127.0.0.1", 0)
    try:
        with socket.create_connection(sock.getsockname()[:2], timeout=5):
            pass  # nobody accepts yet: refused unless the socket listens
    finally:
        sock.close()


def test_loopback_detection() -> None:
    """localhost, 127/8 and ::1 are loopback; anything else is not."""
    assert all(is_loopback(h) for h in ("localhost", "127.0.0.1", "127.9.9.9", "::1"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "10.0.0.1", "example.com"))  # noqa: S104


def test_serve_reports_a_taken_port(url: str) -> None:
    """A port already in use is one clear line, exit 1."""
    port = url.rsplit(":", 1)[1]
    done = cli("serve", "--port", port)
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr


@pytest.mark.anyio
async def test_served_fake_drops_connections_for_real(
    fake: FakeTeletracker, url: str
) -> None:
    """A dropped connection through the ASGI door surfaces as a transport error."""
    fake.drop_next("data")
    async with TeletrackerClient(
        USERNAME, PASSWORD, base_url=url, max_retries=0
    ) as client:
        await client.session()
        with pytest.raises(Exception, match="no answer from Teletracker"):
            await client.call_data("2026-01-01", "2026-01-01")
        assert len(await client.call_data("2026-01-01", "2026-01-01")) == 2


def rows(table: str) -> dict[str, str]:
    """The measure/value rows of a table rich drew."""
    found = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if len(cells) == 2 and cells[0]:
            found[cells[0]] = cells[1]
    return found


def assert_one_session(done_stdout: str, requests: int, coroutines: int) -> None:
    """The demo's table and verdict: every request ok, one login, renewals, no reuse."""
    table = rows(done_stdout)
    assert table["requests ok"] == str(requests)
    assert table["requests failed"] == "0"
    assert table["logins"] == "1"
    # Every full token lifetime that passed needed a renewal (no clock threshold).
    assert int(table["refreshes"]) >= int(float(table["token lifetimes elapsed"]))
    assert table["tokens refreshed twice"] == "0"
    assert table["most refreshes at once"] in {"0", "1"}
    assert table["refresh-token reuse attempts"] == "0"
    assert (
        f"OK: {requests} requests from {coroutines} coroutines shared 1 login"
        in done_stdout
    )


def test_demo_proves_one_session(monkeypatch: pytest.MonkeyPatch) -> None:
    """A small demo against a fake served in a thread: every request ok, one login,
    refreshes, no reuse, exit 0, the password never shown."""

    @contextlib.contextmanager
    def served_here(lifetime: float) -> Iterator[str]:
        fake = FakeTeletracker(
            users={DEMO_USER: DEMO_PASSWORD}, token_lifetime=lifetime
        )
        with fake.serving() as url:
            yield url

    monkeypatch.setattr(demo, "served_elsewhere", served_here)
    done = cli(
        "demo", "--requests", "200", "--concurrency", "50",
        "--lifetime", "0.3", "--connections", "4",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert_one_session(done.stdout, 200, 50)
    assert DEMO_PASSWORD not in done.stdout + done.stderr


def test_demo_verdict_names_each_problem() -> None:
    """The demo fails on failed requests, double refreshes and reuse, and says so."""
    result = DemoResult(
        errors=Counter({"ServerError": 2}),
        latencies=[0.001 * i for i in range(1, 101)],
        elapsed=1.0,
        stats=FakeStats(premature_refreshes=1, reuse_attempts=3),
        lifetime=1.0,
        concurrency=5,
    )
    assert result.problems() == [
        "2 requests failed",
        "a token was refreshed more than once",
        "3 refresh tokens reused",
    ]
    assert result.percentile(0.5) == pytest.approx(50)
    assert result.percentile(0.99) == pytest.approx(99)
    result.latencies = []
    assert result.percentile(0.5) == 0


def test_demo_report_names_failures() -> None:
    """The demo's report prints each error kind and the FAIL verdict, exit 1."""
    rich_console = pytest.importorskip("rich.console")
    out = rich_console.Console(file=io.StringIO(), width=120)
    result = DemoResult(
        errors=Counter({"ServerError": 2}),
        latencies=[0.001],
        elapsed=1.0,
        stats=FakeStats(logins=1),
        lifetime=1.0,
        concurrency=3,
    )
    assert report_demo(result, 2, out) == 1
    text = out.file.getvalue()
    assert "2 x ServerError" in text
    assert "FAIL: 2 requests failed" in text


def test_fleet_workers_use_trio_only_when_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The fleet alternates asyncio and trio, or runs asyncio alone when trio
    cannot be imported (no extra of the package installs it)."""
    assert fleet.available_backends() == ("asyncio", "trio")
    monkeypatch.setitem(sys.modules, "trio", None)
    assert fleet.available_backends() == ("asyncio",)


def test_a_failed_worker_is_reported_in_whole_lines() -> None:
    """A worker's stderr is cut to its last whole lines, never mid-word: the
    exception's own line is always there."""
    traceback = "Traceback (most recent call last):\n" + "  frame\n" * 500
    traceback += "LookupError: Backend 'trio' is not available"
    tail = fleet._tail(traceback, limit=100)
    assert tail.splitlines()[-1] == "LookupError: Backend 'trio' is not available"
    assert all(line in {"  frame", tail.splitlines()[-1]} for line in tail.splitlines())
    assert len(tail) <= 100
    assert fleet._tail("x" * 300, limit=100) == "x" * 300  # one line: kept whole
