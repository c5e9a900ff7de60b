"""The command line's grammar: the commands, their options, and the checks argparse
cannot express (options that only make sense together)."""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Sequence
from datetime import date
from typing import Any

from teletracker_async._cli.api import token, verify
from teletracker_async._cli.common import DEMO_PASSWORD, DEMO_USER
from teletracker_async._cli.demo import demo
from teletracker_async._cli.export import call_data
from teletracker_async._cli.serve import parse_user, serve
from teletracker_async._config import DEFAULT_BASE_URL
from teletracker_async._secrets import parse_account_id

__all__ = ["FLEET_SECONDS", "HelpFormatter", "build_parser", "parse_args"]

#: How long ``demo --workers N`` runs without ``--seconds``.
FLEET_SECONDS = 12.0
_VERBOSE_HELP = (
    "show the SDK's debug log and the HTTP stack's request lines (httpx or "
    "httpx2) on stderr (no secrets)"
)
_CREDENTIALS = (
    "Credentials: TELETRACKER_USERNAME, TELETRACKER_PASSWORD, "
    "TELETRACKER_ACCOUNT_ID, TELETRACKER_BASE_URL; without a password in "
    "the environment you are asked for it (it is never an argument)."
)


def positive(kind: type[int | float]) -> Any:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value <= 0 or not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    return parse


def account_id(text: str) -> int:
    """An account id: digits 0-9 only (``int`` also takes ``'٣'`` and ``'1_0'``)."""
    try:
        return parse_account_id(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535, got {port}")
    return port


_DAY = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)


def day(text: str) -> date:
    """``YYYY-MM-DD`` and nothing else, on every Python.

    ``date.fromisoformat`` also takes ``20260101`` and ``2026-W01-1`` from 3.11 on.
    """
    try:
        if _DAY.fullmatch(text):
            return date.fromisoformat(text)
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {text!r}")


class NoPasswordArgument(argparse.Action):
    """``--password`` is refused, and its value is never repeated in the message."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,  # noqa: ARG002
        values: Any,  # noqa: ARG002 - the password: never shown
        option_string: str | None = None,  # noqa: ARG002
    ) -> None:
        parser.error(
            "a password is never a command-line argument (shell history, ps): set "
            "TELETRACKER_PASSWORD, pipe it with --password-stdin, or answer the prompt"
        )


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except where the help text says it in words."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text or action.default is None or action.required:
            return text
        return super()._get_help_string(action)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    try:
        return version("teletracker-async")
    except PackageNotFoundError:  # pragma: no cover - a source tree, not installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    """The ``teletracker-async`` parser with every command."""
    return _build()[0]


def _build() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """The parser, and its ``demo`` subparser (for the demo's own usage errors)."""
    parser = argparse.ArgumentParser(
        prog="teletracker-async",
        description="The Teletracker SDK's command line: a demo, a fake server, and "
        "calls to the API.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument("--verbose", action="store_true", help=_VERBOSE_HELP)
    # --verbose after the subcommand too; SUPPRESS keeps it from undoing one before.
    common = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    common.add_argument(
        "--verbose", action="store_true", default=argparse.SUPPRESS, help=_VERBOSE_HELP
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str, **options: Any) -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            help=help_text,
            description=help_text,
            parents=[common],
            formatter_class=HelpFormatter,
            allow_abbrev=False,
            **options,
        )

    demo_parser = command(
        "demo", "pull call data from a local fake under load: one session, proved"
    )
    _add_demo(demo_parser)
    _add_serve(command("serve", "run the fake Teletracker on loopback"))
    for name, help_text, func in (
        ("verify", "check the credentials (exit 0 when accepted, 1 if not)", verify),
        ("token", "log in and print a bearer token, nothing else, to stdout", token),
        ("call-data", "stream call records as JSON lines or CSV", call_data),
    ):
        api = command(name, help_text, epilog=_CREDENTIALS)
        api.set_defaults(func=func)
        _add_credentials(api)
    _add_call_data(commands.choices["call-data"])
    return parser, demo_parser


def _add_demo(demo_parser: argparse.ArgumentParser) -> None:
    demo_parser.set_defaults(func=demo)
    add = demo_parser.add_argument
    add("--requests", type=positive(int), default=15_000, help="requests to send")
    add(
        "--concurrency",
        type=positive(int),
        default=2_000,
        help="coroutines sending them, sharing one client",
    )
    add(
        "--connections",
        type=positive(int),
        default=8,
        help="the client's connection pool (loopback needs few; see docs/guides/data-pullers.md)",
    )
    add(
        "--lifetime",
        type=positive(float),
        default=3.0,
        help="token lifetime in seconds (short, so that tokens expire under load)",
    )
    add(
        "--workers",
        type=positive(int),
        default=None,
        help="processes sharing one session through --store, for --seconds (the "
        "coroutines are split between them; default: one process, no store)",
    )
    add(
        "--store",
        choices=("file", "redis"),
        default=None,
        help="with --workers: the token store (default file; redis starts its own "
        "redis-server unless --redis-url is given)",
    )
    add(
        "--redis-url",
        default=None,
        help="with --store redis: an existing Redis (default: start a private "
        "redis-server)",
    )
    add(
        "--seconds",
        type=positive(float),
        default=None,
        help=f"with --workers: how long the fleet runs (default: {FLEET_SECONDS:g})",
    )


def _add_serve(serve_parser: argparse.ArgumentParser) -> None:
    serve_parser.set_defaults(func=serve)
    add = serve_parser.add_argument
    add("--host", default="127.0.0.1", help="the address to listen on")
    add("--port", type=port, default=8000, help="0 to 65535; 0 picks a free port")
    add(
        "--lifetime",
        type=positive(float),
        default=3600.0,
        help="token lifetime in seconds",
    )
    add(
        "--user",
        action="append",
        type=parse_user,
        metavar="NAME:PASSWORD[:ACCOUNTS]",
        help=f"a fake user (repeatable); default {DEMO_USER}:{DEMO_PASSWORD}:1,2",
    )
    add(
        "--allow-remote",
        action="store_true",
        help="allow a non-loopback --host (the fake has no real security)",
    )


def _add_credentials(api: argparse.ArgumentParser) -> None:
    add = api.add_argument
    add("--username", help="default: $TELETRACKER_USERNAME")
    add("--base-url", help=f"default: $TELETRACKER_BASE_URL, else {DEFAULT_BASE_URL}")
    add(
        "--account-id",
        type=account_id,
        help="default: $TELETRACKER_ACCOUNT_ID, else the user's default account",
    )
    add(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input "
        "(default: $TELETRACKER_PASSWORD, else a prompt)",
    )
    add("--password", nargs="?", action=NoPasswordArgument, help=argparse.SUPPRESS)


def _add_call_data(export: argparse.ArgumentParser) -> None:
    add = export.add_argument
    add("--start", required=True, type=day, metavar="YYYY-MM-DD", help="first day")
    add(
        "--end",
        required=True,
        type=day,
        metavar="YYYY-MM-DD",
        help="last day (included)",
    )
    add("--format", choices=["jsonl", "csv"], default="jsonl", help="output format")
    add(
        "--output",
        metavar="FILE",
        help="write to FILE, replacing it only once every record is in (a temp "
        "file beside it, removed on failure); default: standard output",
    )
    add(
        "--window-days",
        type=positive(int),
        default=1,
        help="days fetched per request",
    )
    add(
        "--concurrency",
        type=positive(int),
        default=8,
        help="requests in flight at once",
    )


def _check_demo(demo_parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Fleet options without ``--workers`` would be ignored: refuse them instead."""
    if args.workers is None:
        for given, option in (
            (args.store, "--store"),
            (args.redis_url, "--redis-url"),
            (args.seconds, "--seconds"),
        ):
            if given is not None:
                demo_parser.error(f"{option} needs --workers N (a fleet of processes)")
        return
    if args.redis_url is not None and args.store != "redis":
        demo_parser.error("--redis-url needs --store redis")
    if args.seconds is None:
        args.seconds = FLEET_SECONDS


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse *argv*; usage errors exit 2 with argparse's usage line."""
    parser, demo_parser = _build()
    args = parser.parse_args(argv)
    if args.command == "demo":
        _check_demo(demo_parser, args)
    return args
