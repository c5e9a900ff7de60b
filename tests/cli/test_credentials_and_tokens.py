"""verify and token, in this process: where the password comes from, what is printed,
and how each expected failure reads (one line, exit 1, no secret)."""

from __future__ import annotations

import getpass
from collections import deque

import pytest

from teletracker_async.testing import FakeTeletracker
from tests.client.test_client_options import BAD_ACCOUNT_IDS, BAD_BASE_URLS
from tests.conftest import PASSWORD, USERNAME
from tests.support.cli import cli


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


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (PASSWORD, (0, "", "credentials accepted\n")),
        (KeyboardInterrupt, (130, "", "interrupted\n")),
        (EOFError, (1, "", "\nerror: no password given (end of input)\n")),
    ],
    ids=["typed", "ctrl-c", "ctrl-d"],
)
def test_a_terminal_user_is_asked_for_the_password(
    env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    answer: str | type[BaseException],
    expected: tuple[int, str, str],
) -> None:
    """Without a password in the environment, a terminal user is asked for it by
    name: the answer is used, Ctrl-C exits 130 and Ctrl-D is one line, exit 1.
    (tests/cli/test_in_real_processes.py types them on a real terminal.)"""
    asked: list[str] = []

    def prompt(text: str) -> str:
        asked.append(text)
        if isinstance(answer, str):
            return answer
        raise answer

    monkeypatch.setattr(getpass, "getpass", prompt)
    env.pop("TELETRACKER_PASSWORD")
    done = cli("verify", env=env, tty=True)
    assert (done.returncode, done.stdout, done.stderr) == expected
    assert asked == [f"Teletracker password for {USERNAME}: "]


def test_no_password_and_no_terminal_is_one_line(env: dict[str, str]) -> None:
    """Without a password and without a terminal to ask in, one line says how to
    give it."""
    env.pop("TELETRACKER_PASSWORD")
    done = cli("verify", env=env)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.startswith("error: no password: set TELETRACKER_PASSWORD")
    assert done.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ({"TELETRACKER_PASSWORD": "wrong"}, "Invalid username or password"),
        ({"TELETRACKER_BASE_URL": "http://127.0.0.1:9"}, "no answer"),
        ({"TELETRACKER_USERNAME": ""}, "no username"),
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


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        *[("TELETRACKER_ACCOUNT_ID", v) for v in BAD_ACCOUNT_IDS.values()],
        *[("TELETRACKER_BASE_URL", v) for v in BAD_BASE_URLS.values()],
    ],
    ids=[
        *[f"account-{k}" for k in BAD_ACCOUNT_IDS],
        *[f"url-{k}" for k in BAD_BASE_URLS],
    ],
)
@pytest.mark.parametrize("command", ["token", "call-data"])
def test_a_bad_environment_value_is_one_usage_line_naming_the_variable(
    env: dict[str, str],
    fake: FakeTeletracker,
    command: str,
    variable: str,
    value: str,
) -> None:
    """A bad account id or URL in the environment (non-ASCII digits, zero, huge,
    blank, set but empty) is one line naming the variable, exit 2, no password,
    nothing sent, and no prompt: it is checked before the password is asked for."""
    env.pop("TELETRACKER_PASSWORD")
    argv = [command]
    if command == "call-data":
        argv += ["--start", "2026-01-01", "--end", "2026-01-01"]
    done = cli(*argv, env={**env, variable: value}, tty=True)
    assert (done.returncode, done.stdout) == (2, ""), done.stderr
    assert done.stderr.startswith(f"error: ${variable} ")
    assert done.stderr.count("\n") == 1
    assert "invalid literal" not in done.stderr
    assert "hunter2" not in done.stderr
    assert fake.requests == deque()


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--account-id", "\u0663", "argument --account-id: must be a positive integer"),
        (
            "--account-id",
            str(2**63),
            "argument --account-id: must be a positive integer",
        ),
        ("--base-url", "ftp://x", "--base-url must be an http(s) URL"),
        ("--base-url", "", "--base-url must be an http(s) URL"),
    ],
)
def test_a_bad_account_or_url_option_is_a_usage_error(
    env: dict[str, str], option: str, value: str, message: str
) -> None:
    """The options are held to the variables' rules ('٣' is no longer account 3)."""
    done = cli("token", option, value, env=env)
    assert (done.returncode, done.stdout) == (2, "")
    assert message in done.stderr.splitlines()[-1]  # argparse: usage, then the error


def test_an_empty_piped_password_is_refused(env: dict[str, str]) -> None:
    """--password-stdin with nothing piped in is one line, exit 1."""
    done = cli("token", "--password-stdin", env=env, stdin="")
    assert (done.returncode, done.stderr) == (1, "error: the password is empty\n")


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
