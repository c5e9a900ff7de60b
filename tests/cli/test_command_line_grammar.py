"""The command line's grammar, in this process: usage errors (exit 2, argparse's usage
line, never a password), help with every default, the version, the missing extra."""

from __future__ import annotations

import argparse
import importlib.metadata
import sys

import pytest

from teletracker_async._cli.parser import HelpFormatter, build_parser
from tests.support.cli import cli


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


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--store", "redis"], "--store needs --workers N (a fleet of processes)"),
        (["--store", "file"], "--store needs --workers N (a fleet of processes)"),
        (["--seconds", "5"], "--seconds needs --workers N (a fleet of processes)"),
        (
            ["--redis-url", "redis://localhost"],
            "--redis-url needs --workers N (a fleet of processes)",
        ),
        (
            ["--workers", "2", "--redis-url", "redis://localhost"],
            "--redis-url needs --store redis",
        ),
    ],
)
def test_fleet_options_need_workers(argv: list[str], message: str) -> None:
    """demo's fleet options are refused without the fleet they set up, in one
    line with demo's usage, instead of being ignored."""
    done = cli("demo", *argv)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith("usage: teletracker-async demo")
    assert done.stderr.splitlines()[-1] == f"teletracker-async demo: error: {message}"


def test_missing_extra_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the cli extra, serve says what to install."""
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # an import of it fails
    done = cli("serve", "--port", "0")
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
