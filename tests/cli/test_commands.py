"""The teletracker-async command, run as a real subprocess, on 127.0.0.1 only.

Every test but the few pure helpers starts ``python -m teletracker_async`` (coverage
follows it into the child). Prompts are answered through a pseudo-terminal that is the
child's controlling terminal, as a user's would be.
"""

from __future__ import annotations

import argparse
import csv
import importlib.metadata
import io
import json
import math
import os
import re
import select
import signal
import socket
import stat
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from teletracker_async import CallDataStream, TeletrackerClient
from teletracker_async._cli.demo import DemoResult, report_demo
from teletracker_async._cli.export import CsvSink, PlainProgress, atomic_output
from teletracker_async._cli.parser import HelpFormatter, build_parser
from teletracker_async._cli.serve import is_loopback
from teletracker_async.testing import FakeStats, FakeTeletracker
from tests.conftest import PASSWORD, USERNAME

COMMAND = [sys.executable, "-m", "teletracker_async"]


@pytest.fixture
def fake() -> FakeTeletracker:  # a real clock: this fake is served over sockets
    return FakeTeletracker(users={USERNAME: (PASSWORD, [1, 2])}, records_per_day=2)


@pytest.fixture
def url(fake: FakeTeletracker) -> Iterator[str]:
    with fake.serving() as base_url:
        yield base_url


@pytest.fixture
def env(url: str) -> dict[str, str]:
    """The child's environment: credentials and the served fake's URL."""
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


def cli(
    *argv: str, env: Mapping[str, str] | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """Run the command to its end; its exit code, stdout and stderr."""
    return subprocess.run(  # noqa: S603 - our own module
        [*COMMAND, *argv],
        input=stdin,
        capture_output=True,
        text=True,
        env=None if env is None else dict(env),
        timeout=120,
        check=False,
    )


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


# -- token and verify -----------------------------------------------------------------


def test_token_prints_only_the_token(
    env: dict[str, str], fake: FakeTeletracker
) -> None:
    """stdout is exactly one bearer token the server accepts; stderr is clean."""
    done = cli("token", env=env)
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert done.stdout == token + "\n"
    assert token in fake.token_deadlines()
    assert PASSWORD not in done.stdout + done.stderr
    assert token not in done.stderr


def test_verify_accepts_and_refuses(env: dict[str, str], fake: FakeTeletracker) -> None:
    """verify exits 0 for good credentials and 1 for bad ones, opening no session."""
    assert cli("verify", env=env).returncode == 0
    done = cli("verify", env={**env, "TELETRACKER_PASSWORD": "wrong"})
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.strip() == "credentials refused"
    assert fake.stats.logins == 0


def test_password_from_stdin(env: dict[str, str]) -> None:
    """--password-stdin reads the first line of standard input."""
    env.pop("TELETRACKER_PASSWORD")
    done = cli("verify", "--password-stdin", env=env, stdin=PASSWORD + "\n")
    assert done.returncode == 0, done.stderr


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


# -- call-data ----------------------------------------------------------------------------


def test_call_data_jsonl_to_stdout(env: dict[str, str], fake: FakeTeletracker) -> None:
    """Records stream out as JSON lines, in date order; the count goes to stderr."""
    done = cli("call-data", "--start", "2026-02-01", "--end", "2026-02-05", env=env)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(records) == 10
    assert records[:2] == fake.records_for(1, date(2026, 2, 1))
    assert records[-2:] == fake.records_for(1, date(2026, 2, 5))
    assert done.stderr == "10 call records\n"


def test_call_data_csv_to_a_file(env: dict[str, str], tmp_path: Path) -> None:
    """CSV goes to --output with a header row; --account-id is honoured."""
    target = tmp_path / "calls.csv"
    done = cli(
        "call-data",
        *("--start", "2026-02-01", "--end", "2026-02-02", "--account-id", "2"),
        *("--format", "csv", "--output", str(target), "--window-days", "2"),
        env=env,
    )
    assert (done.returncode, done.stdout) == (0, ""), done.stderr
    with target.open(encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == 4
    assert {row["account_id"] for row in rows} == {"2"}
    assert rows[0]["_extra"] == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calls.csv"]


def test_output_replaces_a_file_keeping_its_mode(
    env: dict[str, str], tmp_path: Path
) -> None:
    """A successful export replaces the old file whole, with the old file's mode."""
    target = tmp_path / "calls.jsonl"
    target.write_text("yesterday\n")
    target.chmod(0o640)
    done = cli(
        "call-data", "--start", "2026-02-01", "--end", "2026-02-01",
        "--output", str(target), env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert len(target.read_text().splitlines()) == 2
    assert "yesterday" not in target.read_text()
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calls.jsonl"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"TELETRACKER_PASSWORD": "wrong"}, "Invalid username or password"),
        ({"TELETRACKER_BASE_URL": "http://127.0.0.1:9"}, "no answer"),
        ({"TELETRACKER_USERNAME": ""}, "no username"),
    ],
    ids=["refused-login", "unreachable-host", "no-username"],
)
def test_a_failed_export_keeps_the_old_file(
    env: dict[str, str], tmp_path: Path, change: dict[str, str], message: str
) -> None:
    """When the export fails, the existing file is byte-identical and no temp is left."""
    target = tmp_path / "calls.csv"
    old = b"id,when\r\n1,yesterday\r\n"
    target.write_bytes(old)
    done = cli(
        "call-data", "--start", "2026-01-01", "--end", "2026-01-02",
        "--format", "csv", "--output", str(target), env={**env, **change},
    )  # fmt: skip
    assert done.returncode == 1
    assert message in done.stderr
    assert target.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calls.csv"]


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


@pytest.mark.parametrize("at", ["open", "mode"])
def test_ctrl_c_while_the_temp_file_is_made_leaves_nothing_behind(
    at: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C just after the temp file was created (before its descriptor was
    returned, or before its mode was set): the temp file is removed, the old file
    kept. (``mkstemp`` left it behind when Ctrl-C came before its name did.)"""
    target = tmp_path / "calls.jsonl"
    target.write_bytes(b"old\n")
    real_open = os.open

    def interrupted_open(*args: Any, **kwargs: Any) -> int:
        fd = real_open(*args, **kwargs)
        if at == "open":
            os.close(fd)
            raise KeyboardInterrupt
        return fd

    monkeypatch.setattr(os, "open", interrupted_open)
    if at == "mode":
        monkeypatch.setattr(stat, "S_IMODE", _interrupt)
    with pytest.raises(KeyboardInterrupt), atomic_output(str(target)):
        pytest.fail("the body must not run")  # pragma: no cover
    assert target.read_bytes() == b"old\n"
    assert list(tmp_path.iterdir()) == [target]


def _interrupt(*args: Any) -> Any:
    raise KeyboardInterrupt


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


def test_csv_keeps_keys_that_appear_later() -> None:
    """A key the first record lacked lands in _extra as JSON, not in the bin."""
    stream = io.StringIO()
    sink = CsvSink(stream)
    sink.write({"id": 1, "tags": ["a"]})
    sink.write({"id": 2, "tags": None, "new": {"x": 1}})
    lines = stream.getvalue().splitlines()
    assert lines == ["id,tags,_extra", '1,"[""a""]",', '2,,"{""new"": {""x"": 1}}"']


@pytest.mark.parametrize(
    "day",
    [
        "20260101",
        "2026-W01-1",
        "2026-13-01",
        "2026-1-01",
        "2026-01-01T00:00",
        "\uff12\uff10\uff12\uff16-01-01",
    ],
)
def test_dates_are_strictly_year_month_day(day: str) -> None:
    """Only YYYY-MM-DD is a date, on every Python; the message names the argument."""
    done = cli("call-data", "--start", day, "--end", "2026-01-02")
    assert (done.returncode, done.stdout) == (2, "")
    assert (
        f"argument --start: expected a date as YYYY-MM-DD, got {day!r}" in done.stderr
    )
    assert "Traceback" not in done.stderr


def test_a_reversed_range_is_a_usage_error() -> None:
    """--end before --start is refused before any password is asked for."""
    done = cli(
        "call-data", "--start", "2026-01-03", "--end", "2026-01-02",
        env={k: v for k, v in os.environ.items() if not k.startswith("TELETRACKER_")},
    )  # fmt: skip
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == "error: --end 2026-01-02 is before --start 2026-01-03\n"


def test_unwritable_output(env: dict[str, str], tmp_path: Path) -> None:
    """An output file that cannot be written is one clear line."""
    done = cli(
        "call-data", "--start", "2026-01-01", "--end", "2026-01-01",
        "--output", str(tmp_path / "missing" / "x.jsonl"), env=env,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.startswith("error: cannot write")
    assert done.stderr.count("\n") == 1


def test_output_onto_a_directory(env: dict[str, str], tmp_path: Path) -> None:
    """--output naming a directory fails in one line and leaves no temp file."""
    (tmp_path / "d").mkdir()
    done = cli(
        "call-data", "--start", "2026-01-01", "--end", "2026-01-01",
        "--output", str(tmp_path / "d"), env=env,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.startswith(f"error: cannot write {tmp_path / 'd'}")
    assert [p.name for p in tmp_path.iterdir()] == ["d"]


# -- error paths ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ({"TELETRACKER_PASSWORD": "wrong"}, "Invalid username or password"),
        ({"TELETRACKER_BASE_URL": "http://127.0.0.1:9"}, "no answer"),
        ({"TELETRACKER_BASE_URL": "nope"}, "base_url"),
        ({"TELETRACKER_USERNAME": ""}, "no username"),
        ({"TELETRACKER_ACCOUNT_ID": "x"}, "TELETRACKER_ACCOUNT_ID"),
        ({"TELETRACKER_ACCOUNT_ID": "9"}, "cannot access account 9"),
        ({"TELETRACKER_PASSWORD": ""}, "no password"),
    ],
)
def test_expected_failures_are_one_line(
    env: dict[str, str], setup: dict[str, str], message: str
) -> None:
    """Each expected failure prints one line on stderr, exit 1, no traceback."""
    done = cli("token", env={**env, **setup})
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.startswith("error: ")
    assert done.stderr.count("\n") == 1
    assert message in done.stderr
    assert PASSWORD not in done.stderr


def test_an_empty_piped_password_is_refused(env: dict[str, str]) -> None:
    """--password-stdin with nothing piped in is one line, exit 1."""
    done = cli("token", "--password-stdin", env=env, stdin="")
    assert (done.returncode, done.stderr) == (1, "error: the password is empty\n")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "the following arguments are required: COMMAND"),
        (["nope"], "invalid choice: 'nope'"),
        (["demo", "--requests", "0"], "must be positive"),
        (["call-data"], "the following arguments are required: --start, --end"),
        (["serve", "--user", "x"], "expected NAME:PASSWORD"),
        (["serve", "--user", "a:b:one"], "accounts must be integers"),
        (["demo", "--requests", "many"], "not a number: 'many'"),
        (["serve", "--port", "99999"], "argument --port: a port is 0 to 65535"),
        (["serve", "--port", "-1"], "argument --port: a port is 0 to 65535"),
        (["serve", "--port", "http"], "argument --port: not a port number"),
        (["token", "--password", "hunter2"], "a password is never a command-line"),
        (["token", "--password=hunter2"], "a password is never a command-line"),
        (["verify", "--pass", "hunter2"], "unrecognized arguments: --pass"),
    ],
)
def test_usage_errors_exit_2(argv: list[str], message: str) -> None:
    """Usage errors exit 2 with argparse's usage line and no traceback."""
    done = cli(*argv)
    assert done.returncode == 2
    assert "usage:" in done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    if "password" in message:
        assert "hunter2" not in done.stderr


@pytest.mark.parametrize("where", ["before", "after"])
def test_verbose_anywhere_and_without_secrets(
    env: dict[str, str], fake: FakeTeletracker, where: str
) -> None:
    """--verbose works before or after the subcommand and never shows a secret."""
    argv = ["call-data", "--start", "2026-01-01", "--end", "2026-01-01"]
    argv = ["--verbose", *argv] if where == "before" else [*argv, "--verbose"]
    done = cli(*argv, env=env)
    assert done.returncode == 0, done.stderr
    assert "logged in: session" in done.stderr
    assert "HTTP Request: POST" in done.stderr
    for secret in {PASSWORD, *fake.issued_secrets()}:
        assert secret not in done.stderr


def test_missing_extra_is_explained(tmp_path: Path) -> None:
    """Without the cli extra, serve says what to install."""
    done = cli("serve", "--port", "0", env=without(tmp_path, os.environ, "uvicorn"))
    assert done.returncode == 1
    assert "pip install 'teletracker-async[cli]'" in done.stderr


def test_version_is_the_package_version() -> None:
    """--version prints the installed distribution's version."""
    done = cli("--version")
    assert done.returncode == 0
    assert done.stdout == (
        f"teletracker-async {importlib.metadata.version('teletracker-async')}\n"
    )


def test_every_option_says_its_default() -> None:
    """Each option's help shows its default, as a value or in words."""
    parser = build_parser()
    formatter = HelpFormatter("teletracker-async")
    subparsers = next(
        a for a in parser._actions if isinstance(a, argparse._SubParsersAction)
    )
    checked = 0
    for command in subparsers.choices.values():
        for action in command._actions:
            if action.dest in ("help", "verbose") or action.help == argparse.SUPPRESS:
                continue
            if action.required:
                continue
            text = formatter._get_help_string(action) or ""
            assert "default" in text, (command.prog, action.dest)
            checked += 1
    assert checked >= 15


def test_help_shows_defaults_through_the_command() -> None:
    """`serve --help` shows the default port and lifetime as the user sees them."""
    done = cli("serve", "--help")
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    assert "0 picks a free port (default: 8000)" in text
    assert "token lifetime in seconds (default: 3600.0)" in text
    assert "--verbose" in text


# -- serve ---------------------------------------------------------------------------------


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


# -- demo --------------------------------------------------------------------------------------


def test_demo_proves_one_session() -> None:
    """A small demo: every request ok, one login, refreshes, no reuse, exit 0."""
    done = cli(
        "demo",
        "--requests",
        "400",
        "--concurrency",
        "200",
        "--lifetime",
        "0.6",
        "--connections",
        "4",
    )
    code, out, err = done.returncode, done.stdout, done.stderr
    assert code == 0, out + err
    rows = dict(_rows(out))
    assert rows["requests ok"] == "400"
    assert rows["requests failed"] == "0"
    assert rows["logins"] == "1"
    # Every full token lifetime that passed needed a renewal (no clock threshold).
    assert int(rows["refreshes"]) >= int(float(rows["token lifetimes elapsed"]))
    assert rows["tokens refreshed twice"] == "0"
    assert rows["most refreshes at once"] in {"0", "1"}
    assert rows["refresh-token reuse attempts"] == "0"
    assert "OK: 400 requests from 200 coroutines shared 1 login" in out
    assert "demo-password" not in err


def _rows(table: str) -> Iterator[tuple[str, str]]:
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if len(cells) == 2 and cells[0]:
            yield cells[0], cells[1]


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


# -- helpers, in-process ----------------------------------------------------------------


def test_plain_progress_rewrites_one_line() -> None:
    """The plain progress line shows records, windows and an ETA, rewrites itself in
    place, and is wiped when done."""
    stream = io.StringIO()
    progress = PlainProgress(stream)
    progress.close()
    assert stream.getvalue() == ""
    pull = CallDataStream(_no_fetch, [], concurrency=1, ahead=1)
    pull.windows_total, pull.records = 4, 3
    progress.update(pull)  # nothing answered yet: no ETA
    pull.started_at, pull.windows_done = time.monotonic() - 30, 1
    progress.update(pull)  # too soon after the last: not drawn
    progress._last = -math.inf
    progress.update(pull)  # 1 window in 30 s, 3 to go
    pull.started_at, pull.windows_done = time.monotonic() - 3600 * 3, 1
    progress._last = -math.inf
    progress.update(pull)
    progress.close()
    lines = stream.getvalue().split("\r")
    assert lines[1] == "3 call records, 0/4 windows, ETA -:--"
    assert re.fullmatch(r"3 call records, 1/4 windows, ETA 1:(29|30|31)", lines[2])
    assert lines[3].startswith("3 call records, 1/4 windows, ETA 9:")
    assert not lines[4].strip()
    assert len(lines[4]) == max(map(len, lines[1:4]))
    assert lines[5] == ""


async def _no_fetch(_: date, __: date) -> list[dict[str, Any]]:  # pragma: no cover
    raise AssertionError


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
