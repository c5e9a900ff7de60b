"""``verify`` and ``token``, and the credentials every command against an API uses."""

from __future__ import annotations

import argparse
import getpass
import os
import sys

import anyio

from teletracker_async._cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CommandError
from teletracker_async._client import TeletrackerClient
from teletracker_async._config import DEFAULT_BASE_URL
from teletracker_async._options import account_id_from_env, base_url_from_env
from teletracker_async._secrets import check_base_url
from teletracker_async._session.flow import TeletrackerAuth

__all__ = ["resolve_auth", "token", "verify"]


def resolve_auth(args: argparse.Namespace) -> TeletrackerAuth:
    """The credentials, resolved before any event loop starts.

    The password prompt runs here, outside the loop: Ctrl-C stops it at the first
    press, and Ctrl-D ends it with one line instead of a traceback. The account and
    the URL are checked first: a bad one is a usage error (exit 2) naming the
    option or the variable, before any password is asked for.
    """
    try:
        account = args.account_id
        if account is None:
            account = account_id_from_env()
        base_url = (
            base_url_from_env() or DEFAULT_BASE_URL
            if args.base_url is None
            else check_base_url(args.base_url, "--base-url")
        )
    except ValueError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None
    username = args.username or os.environ.get("TELETRACKER_USERNAME")
    if not username:
        raise CommandError("no username: pass --username or set TELETRACKER_USERNAME")
    password = os.environ.get("TELETRACKER_PASSWORD")
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif not password:
        if not sys.stdin.isatty():
            raise CommandError(
                "no password: set TELETRACKER_PASSWORD, pipe it with "
                "--password-stdin, or run in a terminal to be asked"
            )
        try:
            password = getpass.getpass(f"Teletracker password for {username}: ")
        except EOFError:
            print(file=sys.stderr)  # end the prompt's line
            raise CommandError("no password given (end of input)") from None
    if not password:
        raise CommandError("the password is empty")
    try:
        return TeletrackerAuth(
            username, password, account_id=account, base_url=base_url
        )
    except (TypeError, ValueError) as exc:
        raise CommandError(str(exc)) from None


def verify(args: argparse.Namespace) -> int:
    auth = resolve_auth(args)

    async def verify() -> bool:
        async with TeletrackerClient(auth=auth) as client:
            return await client.verify_credentials()

    accepted = anyio.run(verify)
    print(
        "credentials accepted" if accepted else "credentials refused", file=sys.stderr
    )
    return EXIT_OK if accepted else EXIT_FAILED


def token(args: argparse.Namespace) -> int:
    auth = resolve_auth(args)

    async def token() -> str:
        async with TeletrackerClient(auth=auth) as client:
            return (await client.session()).token

    # The one place a token is printed: stdout, on request, for the user's shell.
    print(anyio.run(token))
    return EXIT_OK
