"""What only a real process shows: the entry point, Ctrl-C as a real SIGINT, a
password typed on a real terminal (the child's controlling terminal, as a user's
would be), a progress line drawn on one, a closed pipe, serve listening and the
demo's and the fleet's child processes. The slow tier: each starts Python."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from teletracker_async import TeletrackerClient
from teletracker_async.testing import FakeRequest, FakeTeletracker
from tests.cli.test_serve_and_demo import assert_one_session, rows
from tests.conftest import PASSWORD, USERNAME
from tests.support.cli import COMMAND, run_child

pytestmark = pytest.mark.slow


def without(tmp_path: Path, env: Mapping[str, str], *modules: str) -> dict[str, str]:
    """*env* with *modules* made unimportable, as when an extra is not installed."""
    shadow = tmp_path / "shadow"
    for name in modules:
        (shadow / name).mkdir(parents=True)
        (shadow / name / "__init__.py").write_text(
            f"raise ImportError({'No module named ' + name!r}, name={name!r})\n"
        )
    return {**env, "PYTHONPATH": str(shadow)}


# The child takes the pseudo-terminal on its stdin as its controlling terminal, so that
# getpass opens /dev/tty and Ctrl-C, typed there, is a SIGINT, as in a real terminal.
_IN_A_TERMINAL = (
    "import fcntl, runpy, sys, termios; "
    "fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
    "runpy.run_module('teletracker_async', run_name='__main__', alter_sys=True)"
)


def _read_until(fd: int, marker: bytes) -> bytes:
    seen = b""
    deadline = time.monotonic() + 60  # a hang guard, not a measurement
    while marker not in seen:
        ready, _, _ = select.select([fd], [], [], max(deadline - time.monotonic(), 0))
        if not ready:
            raise AssertionError(f"no {marker!r} on the terminal, got {seen!r}")
        seen += os.read(fd, 1024)
    return seen


def _drain(fd: int) -> bytes:
    seen = b""
    while True:
        try:
            chunk = os.read(fd, 1024)
        except OSError:  # EIO: every end of the terminal is closed
            return seen
        if not chunk:
            return seen
        seen += chunk


def at_a_prompt(
    env: Mapping[str, str], keys: bytes, *argv: str
) -> tuple[int, str, str, bytes]:
    """Run the command in a terminal, type *keys* at the password prompt.

    Returns:
        Exit code, stdout, stderr, and what the terminal showed.
    """
    termios = pytest.importorskip("termios")
    pty = pytest.importorskip("pty")
    env = {k: v for k, v in env.items() if k != "TELETRACKER_PASSWORD"}
    controller, terminal = pty.openpty()
    child = subprocess.Popen(  # noqa: S603 - our own module
        [sys.executable, "-c", _IN_A_TERMINAL, *argv],
        stdin=terminal,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    os.close(terminal)
    try:
        shown = _read_until(controller, b"password for")
        termios.tcdrain(controller)
        os.write(controller, keys)
        out, err = child.communicate(timeout=60)
        shown += _drain(controller)
    finally:
        os.close(controller)
        if child.poll() is None:  # pragma: no cover - only when a test fails
            child.kill()
            child.wait()
    return child.returncode, out.decode(), err.decode(), shown


def test_password_prompt_in_a_terminal(env: dict[str, str]) -> None:
    """A terminal user is asked for the password, which is not echoed."""
    code, out, err, shown = at_a_prompt(env, PASSWORD.encode() + b"\r", "verify")
    assert (code, out) == (0, "")
    assert err.strip() == "credentials accepted"
    assert f"Teletracker password for {USERNAME}: ".encode() in shown
    assert PASSWORD.encode() not in shown


def test_ctrl_c_at_the_prompt_stops_at_once(env: dict[str, str]) -> None:
    """One Ctrl-C at the password prompt ends the command: exit 130, no traceback."""
    code, out, err, _ = at_a_prompt(env, b"\x03", "verify")
    assert (code, out, err) == (130, "", "interrupted\n")


def test_ctrl_d_at_the_prompt_is_one_line(env: dict[str, str]) -> None:
    """End of input at the password prompt: one line on stderr, exit 1."""
    code, out, err, _ = at_a_prompt(env, b"\x04", "token")
    assert (code, out) == (1, "")
    assert err.strip() == "error: no password given (end of input)"
    assert "Traceback" not in err


def test_ctrl_c_during_an_export_keeps_the_old_file(
    env: dict[str, str], tmp_path: Path
) -> None:
    """Ctrl-C while the export waits on the server removes the temp file, keeps the old."""
    target = tmp_path / "calls.jsonl"
    target.write_bytes(b"old\n")
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        host, port = silent.getsockname()
        child = subprocess.Popen(  # noqa: S603 - our own module
            [*COMMAND, "call-data", "--start", "2026-01-01", "--end", "2026-01-01",
             "--output", str(target)],
            env={**env, "TELETRACKER_BASE_URL": f"http://{host}:{port}"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        try:
            # The export waits on the server once its request has connected (the
            # run, and its Ctrl-C handling, are up by then).
            silent.settimeout(60)  # a hang guard, not a measurement
            connection, _ = silent.accept()  # held open, never answered
            (temp,) = [p for p in tmp_path.iterdir() if p != target]
            assert temp.name.startswith(".calls.jsonl.")
            assert temp.name.endswith(".partial")
            child.send_signal(signal.SIGINT)
            out, err = child.communicate(timeout=60)
            connection.close()
        finally:
            if child.poll() is None:  # pragma: no cover - only when a test fails
                child.kill()
                child.wait()
    assert (child.returncode, out, err) == (130, "", "interrupted\n")
    assert target.read_bytes() == b"old\n"
    assert list(tmp_path.iterdir()) == [target]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full here")
def test_standard_output_on_dev_full_is_one_line(env: dict[str, str]) -> None:
    """`call-data > /dev/full`: one line naming standard output and the reason,
    exit 1, and nothing more at exit (no second error from flushing stdout)."""
    with Path("/dev/full").open("w", encoding="utf-8") as full:
        done = subprocess.run(  # noqa: S603 - our own module
            [*COMMAND, "call-data", "--start", "2026-01-01", "--end", "2026-03-31"],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
    assert (done.returncode, done.stderr) == (
        1,
        "error: cannot write standard output: No space left on device\n",
    )


def test_sigterm_during_an_export_keeps_the_old_file(
    env: dict[str, str], tmp_path: Path
) -> None:
    """SIGTERM while records are being written, as Ctrl-C: the temp file removed,
    the old file kept, "terminated", exit 143 (it killed the process where it
    stood and left the .partial file behind)."""
    fake = FakeTeletracker(users={USERNAME: (PASSWORD, [1])}, records_per_day=300)
    asked, release = threading.Event(), threading.Event()

    def latency(request: FakeRequest) -> float:
        """The first day answers at once; the next holds the server (a stall) until
        the test is done with the child."""
        if request.query.get("start_date") != "2026-01-01":
            asked.set()
            release.wait(60)  # a hang guard, not a measurement
        return 0.0

    fake.set_latency("data", latency)
    target = tmp_path / "calls.jsonl"
    target.write_bytes(b"old\n")
    with fake.serving() as url:
        child = subprocess.Popen(  # noqa: S603 - our own module
            [*COMMAND, "call-data", "--start", "2026-01-01", "--end", "2026-01-03",
             "--concurrency", "1", "--output", str(target)],
            env={**env, "TELETRACKER_BASE_URL": url},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        try:
            assert asked.wait(60), "the second day was never asked for"
            deadline = time.monotonic() + 60  # a hang guard, not a measurement
            while not any(p.stat().st_size for p in tmp_path.glob(".*.partial")):
                assert time.monotonic() < deadline, "no record reached the temp file"
                time.sleep(0.01)
            child.send_signal(signal.SIGTERM)
            out, err = child.communicate(timeout=60)
        finally:
            release.set()
            if child.poll() is None:  # pragma: no cover - only when a test fails
                child.kill()
                child.wait()
    assert (child.returncode, out, err) == (143, "", "terminated\n")
    assert target.read_bytes() == b"old\n"
    assert list(tmp_path.iterdir()) == [target]


def test_a_closed_pipe_ends_the_command_quietly(
    env: dict[str, str], tmp_path: Path
) -> None:
    """`call-data | head -2` prints two records; the command exits 141, silently."""
    errors = tmp_path / "stderr"
    command = " ".join(
        [
            *COMMAND,
            "call-data --start 2026-01-01 --end 2027-01-31 --window-days 31",
            f"2>{errors} | head -2",
        ]
    )
    done = subprocess.run(  # noqa: S603 - our own module, fixed arguments
        ["/bin/bash", "-c", command + '; exit "${PIPESTATUS[0]}"'],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert len(done.stdout.splitlines()) == 2
    assert done.returncode == 141
    assert errors.read_text() == ""


def test_call_data_progress_only_on_a_terminal(env: dict[str, str]) -> None:
    """With stderr a terminal, rich draws a progress line there; stdout stays records."""
    code, out, shown = in_a_terminal_stderr(env)
    assert code == 0
    assert len(out.splitlines()) == 6
    assert all(line.startswith("{") for line in out.splitlines())
    assert b"6 call records" in shown


def test_call_data_on_a_terminal_without_rich(
    env: dict[str, str], tmp_path: Path
) -> None:
    """Without the cli extra, a terminal gets a plain progress line instead of rich's."""
    code, out, shown = in_a_terminal_stderr(without(tmp_path, env, "rich", "uvicorn"))
    assert code == 0, shown
    assert len(out.splitlines()) == 6
    assert b"\r6 call records" in shown or shown.startswith(b"6 call records")
    assert b"6 call records\r\n" in shown


def in_a_terminal_stderr(env: Mapping[str, str]) -> tuple[int, str, bytes]:
    """call-data with stderr on a pseudo-terminal and stdout piped."""
    pty = pytest.importorskip("pty")
    controller, terminal = pty.openpty()
    child = subprocess.Popen(  # noqa: S603 - our own module
        [*COMMAND, "call-data", "--start", "2026-02-01", "--end", "2026-02-03"],
        stdout=subprocess.PIPE,
        stderr=terminal,
        env=dict(env),
    )
    os.close(terminal)
    try:
        shown = _drain(controller)
        out, _ = child.communicate(timeout=60)
    finally:
        os.close(controller)
    return child.returncode, out.decode(), shown


@pytest.fixture
def served_command() -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "teletracker_async",
            "serve",
            "--port",
            "0",
            "--lifetime",
            "60",
            "--user",
            "alice:alice-pw:3,4",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert child.stdout is not None
    banner = [child.stdout.readline() for _ in range(3)]
    yield child, banner
    if child.poll() is None:  # pragma: no cover - the test stops it
        child.kill()
        child.wait()


@pytest.mark.anyio
async def test_serve_answers_the_sdk_over_real_sockets(
    served_command: tuple[subprocess.Popen[str], list[str]],
) -> None:
    """`serve` on 127.0.0.1 is reached by the SDK; Ctrl-C stops it cleanly."""
    child, banner = served_command
    base_url = banner[0].split("listening on ")[1].split()[0]
    assert banner[1:] == [
        "token lifetime: 60 s\n",
        "user: alice  password: alice-pw  accounts: [3, 4]\n",
    ]
    assert base_url.startswith("http://127.0.0.1:")
    async with TeletrackerClient("alice", "alice-pw", base_url=base_url) as client:
        assert await client.verify_credentials()
        records = await client.call_data("2026-01-01", "2026-01-03")
        await client.switch_account(4)
        other = await client.call_data("2026-01-01", "2026-01-01")
        stats = await client.request_json("GET", "/_fake/stats")
    assert len(records) == 3 * 24
    assert {r["account_id"] for r in records} == {3}
    assert {r["account_id"] for r in other} == {4}
    assert stats["data"]["logins"] == 2
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=20)
    assert child.returncode == 0
    assert out.endswith("stopped\n")
    assert "Traceback" not in err


def test_demo_proves_one_session() -> None:
    """The demo as shipped, its fake served in a child: every request ok, one login,
    refreshes, no reuse, exit 0."""
    done = run_child(
        "demo", "--requests", "400", "--concurrency", "200",
        "--lifetime", "0.6", "--connections", "4",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert_one_session(done.stdout, 400, 200)
    assert "demo-password" not in done.stderr


def test_python_dash_m_runs_the_command() -> None:
    """`python -m teletracker_async --help` works like the console script."""
    done = subprocess.run(
        [sys.executable, "-m", "teletracker_async", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0
    assert "demo" in done.stdout
    assert "call-data" in done.stdout


def test_fleet_demo_without_trio(tmp_path: Path) -> None:
    """`demo --workers 2` where trio cannot be imported (a plain install with the cli
    extra): every worker runs asyncio, the output says why, one session holds."""
    shim = tmp_path / "no-trio"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text("import sys\nsys.modules['trio'] = None\n")
    done = run_child(
        "demo", "--workers", "2", "--seconds", "2", "--concurrency", "8",
        "--lifetime", "1", env={**os.environ, "PYTHONPATH": str(shim)},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "trio is not installed: every worker runs asyncio." in done.stderr
    table = rows(done.stdout)
    assert table["processes (asyncio / trio)"] == "2 / 0"
    assert (table["requests failed"], table["logins"]) == ("0", "1")
    assert "Traceback" not in done.stderr
